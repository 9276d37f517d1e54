//! `berth admin hosts`: the `/etc/hosts` lines that make registry names
//! (`<account>.dkr.ecr.<region>.<domain>`) resolve to this machine without DNS.
//!
//! Every account gets a line for every AWS region (so a tutorial's other region works
//! before its first repository exists), plus any other region in use. `--install`
//! replaces Berth's block in the hosts file and leaves every other line alone.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context as _;

use crate::public_url::PublicUrl;

/// AWS's commercial regions: the names the tutorials and SDK examples use.
const AWS_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

const BEGIN: &str = "# BEGIN berth registry hosts";
const END: &str = "# END berth registry hosts";

/// The hosts-file block for these accounts and registries in use.
pub fn block(
    public: &PublicUrl,
    address: std::net::IpAddr,
    accounts: &[String],
    in_use: &[(String, String)],
) -> String {
    let mut names = BTreeSet::new();
    for account in accounts {
        for region in AWS_REGIONS {
            names.insert(registry_name(public, account, region));
        }
    }
    for (account, region) in in_use {
        names.insert(registry_name(public, account, region));
    }
    let mut out = format!("{BEGIN} (written by `berth admin hosts --install`)\n");
    for name in names {
        out += &format!("{address} {name}\n");
    }
    out += END;
    out.push('\n');
    out
}

fn registry_name(public: &PublicUrl, account: &str, region: &str) -> String {
    format!("{account}.dkr.ecr.{region}.{}", public.domain)
}

/// `text` with Berth's block replaced by `block` (or appended), other lines kept. A
/// block whose end marker is missing is not Berth's to remove: refused.
pub fn merged(text: &str, block: &str) -> anyhow::Result<String> {
    let mut out = String::with_capacity(text.len() + block.len());
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.starts_with(BEGIN) {
            if !lines.any(|l| l.trim_end() == END) {
                anyhow::bail!("the hosts file has \"{BEGIN}\" without \"{END}\"; fix it by hand");
            }
            continue;
        }
        out += line;
        out.push('\n');
    }
    out += block;
    Ok(out)
}

/// Replace Berth's block in the hosts file at `path`: a new file renamed over it, with
/// the old one's mode; in place only where a rename cannot replace it (in containers
/// `/etc/hosts` is often a bind mount).
pub fn install(path: &Path, block: &str) -> anyhow::Result<()> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let text = String::from_utf8(bytes).map_err(|_| {
        anyhow::anyhow!(
            "{} is not UTF-8 text; add the lines by hand",
            path.display()
        )
    })?;
    let new = merged(&text, block)?;
    if new == text {
        return Ok(());
    }
    replace(path, new.as_bytes()).with_context(|| {
        format!(
            "writing {} (run it as root, or add the printed lines yourself)",
            path.display()
        )
    })
}

fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o777);
    let tmp = path.with_file_name(".hosts.berth.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    match std::fs::rename(&tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EXDEV)) => {
            let _ = std::fs::remove_file(&tmp);
            std::fs::write(path, bytes)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::public_url::Scheme;

    #[test]
    fn every_region_of_every_account_and_what_is_in_use() {
        let public = PublicUrl::new(Scheme::Http, "localhost", 5000);
        let b = block(
            &public,
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            &["000000000000".into()],
            &[("111122223333".into(), "xx-test-1".into())],
        );
        assert!(b.contains("127.0.0.1 000000000000.dkr.ecr.ap-northeast-2.localhost\n"));
        assert!(b.contains("127.0.0.1 000000000000.dkr.ecr.us-east-1.localhost\n"));
        assert!(b.contains("127.0.0.1 111122223333.dkr.ecr.xx-test-1.localhost\n"));
        assert!(!b.contains(":5000"), "host names carry no port");
    }

    #[test]
    fn install_replaces_only_its_own_block() {
        let before = "127.0.0.1 localhost\n# BEGIN berth registry hosts (old)\n127.0.0.1 old.name\n# END berth registry hosts\n10.0.0.1 other\n";
        let after = merged(
            before,
            "# BEGIN berth registry hosts\n127.0.0.1 new.name\n# END berth registry hosts\n",
        )
        .expect("merged");
        assert_eq!(
            after,
            "127.0.0.1 localhost\n10.0.0.1 other\n# BEGIN berth registry hosts\n127.0.0.1 new.name\n# END berth registry hosts\n"
        );
        let again = merged(
            &after,
            "# BEGIN berth registry hosts\n127.0.0.1 new.name\n# END berth registry hosts\n",
        );
        assert_eq!(again.expect("merged"), after);
        let broken =
            "127.0.0.1 localhost\n# BEGIN berth registry hosts\n127.0.0.1 old\n10.0.0.1 other\n";
        assert!(
            merged(broken, "x").is_err(),
            "an unterminated block is not removed"
        );
    }
}
