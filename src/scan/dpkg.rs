//! Debian's package database: `var/lib/dpkg/status`, and the one-file-per-package
//! `var/lib/dpkg/status.d/` that distroless images use instead.

use super::{Package, PackageKind};

pub const STATUS: &str = "var/lib/dpkg/status";
pub const STATUS_DIR: &str = "var/lib/dpkg/status.d";

/// The installed packages of a status file (paragraphs of `Field: value` lines).
pub fn parse(text: &str) -> Vec<Package> {
    text.split("\n\n").filter_map(paragraph).collect()
}

fn paragraph(p: &str) -> Option<Package> {
    let mut name = None;
    let mut version = None;
    let mut source = None;
    let mut installed = true;
    for line in p.lines() {
        if line.starts_with([' ', '\t']) {
            continue; // a continuation of a multi-line field (Description, Conffiles)
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "Package" => name = Some(value.to_owned()),
            "Version" => version = Some(value.to_owned()),
            "Source" => source = Some(value.to_owned()),
            // "install ok installed"; removed packages keep "deinstall ok config-files".
            "Status" => installed = value.split_whitespace().nth(2) == Some("installed"),
            _ => {}
        }
    }
    let (name, version) = (name?, version?);
    if !installed {
        return None;
    }
    // `Source: openssl (3.0.11-1~deb12u1)` when the source version differs.
    let (source, source_version) = match source {
        None => (None, None),
        Some(s) => match s.split_once(' ') {
            Some((n, v)) => (
                Some(n.to_owned()),
                Some(
                    v.trim()
                        .trim_start_matches('(')
                        .trim_end_matches(')')
                        .to_owned(),
                ),
            ),
            None => (Some(s), None),
        },
    };
    Some(Package {
        kind: PackageKind::Dpkg,
        name,
        version,
        source,
        source_version,
        location: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_installed_packages_and_their_sources() {
        let status = "Package: libssl3\nStatus: install ok installed\nVersion: 3.0.9-1\nSource: openssl (3.0.9-1a)\nDescription: x\n more\n\n\
                      Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n\
                      Package: zlib1g\nStatus: install ok installed\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\n";
        let got = parse(status);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].source_name(), "openssl");
        assert_eq!(got[0].source_version(), "3.0.9-1a");
        assert_eq!(got[1].source_name(), "zlib");
        assert_eq!(got[1].source_version(), "1:1.2.13.dfsg-1");
    }
}
