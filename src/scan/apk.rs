//! Alpine's package database, `lib/apk/db/installed`: records of `X:value` lines.

use super::{Package, PackageKind};

pub const INSTALLED: &str = "lib/apk/db/installed";

pub fn parse(text: &str) -> Vec<Package> {
    text.split("\n\n").filter_map(record).collect()
}

fn record(r: &str) -> Option<Package> {
    let (mut name, mut version, mut origin) = (None, None, None);
    for line in r.lines() {
        match line.split_once(':') {
            Some(("P", v)) => name = Some(v.to_owned()),
            Some(("V", v)) => version = Some(v.to_owned()),
            // The origin is the APKBUILD (source) the package was built from.
            Some(("o", v)) => origin = Some(v.to_owned()),
            _ => {}
        }
    }
    Some(Package {
        kind: PackageKind::Apk,
        name: name?,
        version: version?,
        source: origin,
        source_version: None,
        location: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_versions_and_origins() {
        let db = "C:Q1abc=\nP:libcrypto3\nV:3.1.4-r0\nA:x86_64\no:openssl\n\nP:musl\nV:1.2.4-r2\n";
        let got = parse(db);
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].source_name(), got[0].source_version()),
            ("openssl", "3.1.4-r0")
        );
        assert_eq!(got[1].source_name(), "musl");
    }
}
