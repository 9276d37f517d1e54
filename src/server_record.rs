//! `<data-dir>/server.json`: where the server that uses a data directory was last
//! reached, so that `berth env` and `berth admin` find it without being told.

use crate::aws::{AccountId, Region};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const FILE: &str = "server.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRecord {
    /// The URL of the API (ECR, IAM, STS) for clients on this machine.
    pub endpoint: String,
    /// What the server advertises (`--public-url`, or derived from the listener).
    pub public_url: String,
    /// The server's default registry: what `berth env` points the CLI at.
    pub account_id: AccountId,
    pub region: Region,
    pub pid: u32,
}

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

impl ServerRecord {
    /// The API endpoint for a listener: a wildcard address is reached on loopback.
    pub fn endpoint_for(listen: std::net::SocketAddr) -> String {
        let ip = match listen.ip() {
            std::net::IpAddr::V4(v4) if v4.is_unspecified() => "127.0.0.1".to_owned(),
            std::net::IpAddr::V6(v6) if v6.is_unspecified() => "[::1]".to_owned(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            ip => ip.to_string(),
        };
        format!("http://{ip}:{}", listen.port())
    }

    /// The IP address of `endpoint`, for hosts-file lines (loopback if unreadable).
    pub fn address(&self) -> std::net::IpAddr {
        let host = self
            .endpoint
            .trim_start_matches("http://")
            .rsplit_once(':')
            .map_or("", |(h, _)| h);
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
    }

    /// Write the record (replacing it whole: a reader never sees half of it).
    pub fn write(&self, data_dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        crate::fsutil::write_private_atomic(&path(data_dir), text.as_bytes())
    }

    /// The last server's record, if a server has ever run on this data directory.
    pub fn read(data_dir: &Path) -> Option<ServerRecord> {
        let text = std::fs::read_to_string(path(data_dir)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listeners_are_reached_on_loopback() {
        let e = |s: &str| ServerRecord::endpoint_for(s.parse().expect("addr"));
        assert_eq!(e("0.0.0.0:5000"), "http://127.0.0.1:5000");
        assert_eq!(e("127.0.0.1:5001"), "http://127.0.0.1:5001");
        assert_eq!(e("[::]:80"), "http://[::1]:80");
    }

    #[test]
    fn round_trips_through_the_data_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(ServerRecord::read(dir.path()), None);
        let r = ServerRecord {
            endpoint: "http://127.0.0.1:5000".into(),
            public_url: "http://localhost:5000".into(),
            account_id: "000000000000".parse().expect("an account id"),
            region: "eu-west-1".parse().expect("a region"),
            pid: 7,
        };
        r.write(dir.path()).expect("write");
        assert_eq!(ServerRecord::read(dir.path()), Some(r.clone()));
        assert_eq!(r.address().to_string(), "127.0.0.1");
    }
}
