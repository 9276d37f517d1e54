//! Rust crates from `Cargo.lock`: each locked package that came from a registry
//! (crates.io or another). Path and git dependencies have no registry version to
//! match and are left out. Binaries built with `cargo auditable` are read by auditable.rs.

use std::io::Read;

use serde::Deserialize;

const MAX_LOCKFILE: u64 = 16 << 20;

pub fn is_lockfile(path: &str) -> bool {
    path.rsplit('/').next() == Some("Cargo.lock")
}

#[derive(Deserialize)]
struct Lockfile {
    #[serde(default)]
    package: Vec<Locked>,
}

#[derive(Deserialize)]
struct Locked {
    name: String,
    version: String,
    source: Option<String>,
}

pub fn read_lockfile(data: &mut dyn Read) -> Vec<(String, String)> {
    let mut text = String::new();
    if data.take(MAX_LOCKFILE).read_to_string(&mut text).is_err() {
        return Vec::new();
    }
    let Ok(lock) = toml::from_str::<Lockfile>(&text) else {
        return Vec::new();
    };
    lock.package
        .into_iter()
        .filter(|p| {
            p.source
                .as_deref()
                .is_some_and(|s| s.starts_with("registry+") || s.starts_with("sparse+"))
        })
        .map(|p| (p.name, p.version))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_packages_only() {
        let lock = br#"version = 3
[[package]]
name = "app"
version = "0.1.0"

[[package]]
name = "smallvec"
version = "1.6.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "abc"

[[package]]
name = "forked"
version = "0.2.0"
source = "git+https://example.com/forked#abc"
"#;
        assert_eq!(
            read_lockfile(&mut &lock[..]),
            vec![("smallvec".to_owned(), "1.6.0".to_owned())]
        );
        assert!(read_lockfile(&mut &b"not toml ["[..]).is_empty());
    }
}
