//! Rust binaries built with `cargo auditable`: the crates compiled in, as the JSON that
//! the tool stores zlib-compressed in the `.dep-v0` section. Crates from a registry are
//! reported; the binary's own crate, path and git dependencies have no registry
//! version, and build-time dependencies are not in the binary.

use std::io::Read;

use serde::Deserialize;

pub const SECTION: &str = ".dep-v0";
/// Bounds on the section and on what it inflates to.
pub const MAX_COMPRESSED: u64 = 4 << 20;
const MAX_JSON: u64 = 32 << 20;

#[derive(Deserialize)]
struct Info {
    packages: Vec<Crate>,
}

#[derive(Deserialize)]
struct Crate {
    name: String,
    version: String,
    source: String,
    #[serde(default)]
    kind: Option<String>,
}

/// (crate, version) of each registry crate the section lists.
pub fn parse(section: &[u8]) -> Vec<(String, String)> {
    let mut json = Vec::new();
    let inflated = flate2::read::ZlibDecoder::new(section)
        .take(MAX_JSON)
        .read_to_end(&mut json);
    if inflated.is_err() {
        return Vec::new();
    }
    let Ok(info) = serde_json::from_slice::<Info>(&json) else {
        return Vec::new();
    };
    info.packages
        .into_iter()
        .filter(|c| c.source == "crates.io" || c.source == "registry")
        .filter(|c| c.kind.as_deref() != Some("build"))
        .map(|c| (c.name, c.version))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn registry_runtime_crates_only() {
        let json = br#"{"packages":[
            {"name":"app","version":"0.1.0","source":"local","dependencies":[1,2],"root":true},
            {"name":"smallvec","version":"1.6.0","source":"crates.io"},
            {"name":"cc","version":"1.0.0","source":"crates.io","kind":"build"},
            {"name":"forked","version":"0.2.0","source":"git"}]}"#;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(json).expect("in memory");
        let section = z.finish().expect("in memory");
        assert_eq!(
            parse(&section),
            vec![("smallvec".to_owned(), "1.6.0".to_owned())]
        );
        assert!(parse(b"not zlib").is_empty());
    }
}
