//! Python packages: the `METADATA` of a package installed from a wheel
//! (`NAME.dist-info/METADATA`) and the `PKG-INFO` of an egg (`NAME.egg-info/PKG-INFO`,
//! or an `NAME.egg-info` file), whose RFC 822 style headers name it.

use std::io::{BufRead, BufReader, Read};

/// Headers come first; a description in the body can be long and is not read.
const MAX_HEADERS: u64 = 1 << 20;

pub fn is_metadata(path: &str) -> bool {
    let Some((dir, base)) = path.rsplit_once('/') else {
        return false;
    };
    (base == "METADATA" && dir.ends_with(".dist-info"))
        || (base == "PKG-INFO" && dir.ends_with(".egg-info"))
        || base.ends_with(".egg-info")
}

/// (name, version) from a metadata file's headers.
pub fn read(data: &mut dyn Read) -> Option<(String, String)> {
    let reader = BufReader::new(data.take(MAX_HEADERS));
    let (mut name, mut version) = (None, None);
    for line in reader.split(b'\n') {
        let line = line.ok()?;
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        if let Some((key, value)) = line.split_once(':') {
            let value = value.trim();
            match key {
                "Name" if name.is_none() => name = Some(value.to_owned()),
                "Version" if version.is_none() => version = Some(value.to_owned()),
                _ => {}
            }
        }
        if name.is_some() && version.is_some() {
            break;
        }
    }
    Some((
        name.filter(|n| !n.is_empty())?,
        version.filter(|v| !v.is_empty())?,
    ))
}

/// A project name as PyPI compares it (PEP 503): lower case, runs of `-`, `_` and `.`
/// as one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            separator = true;
            continue;
        }
        if separator && !out.is_empty() {
            out.push('-');
        }
        separator = false;
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_name_and_version_from_the_headers() {
        let meta =
            b"Metadata-Version: 2.1\nName: Jinja2\nVersion: 2.10\nSummary: x\n\nName: body\n";
        assert_eq!(read(&mut &meta[..]), Some(("Jinja2".into(), "2.10".into())));
        assert_eq!(read(&mut &b"Metadata-Version: 2.1\n\nName: x\n"[..]), None);
        assert!(is_metadata(
            "usr/lib/python3/dist-packages/jinja2-2.10.dist-info/METADATA"
        ));
        assert!(is_metadata(
            "app/venv/lib/python3.11/site-packages/six-1.0.egg-info/PKG-INFO"
        ));
        assert!(is_metadata(
            "usr/lib/python3/dist-packages/six-1.0.egg-info"
        ));
        assert!(!is_metadata("app/METADATA"));
        assert_eq!(normalize("Zope.Interface__x"), "zope-interface-x");
        assert_eq!(normalize("PyYAML"), "pyyaml");
    }
}
