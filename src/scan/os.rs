//! Which operating system an image is: `os-release` (systemd's format, which every
//! current distribution ships), with the older release files as a fallback.

use super::layers::ImageFiles;

/// Files that tell the OS, in the order they are believed.
pub const RELEASE_FILES: [&str; 4] = [
    "etc/os-release",
    "usr/lib/os-release",
    "etc/alpine-release",
    "etc/debian_version",
];

/// An image's operating system, as `os-release` names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OsRelease {
    /// `ID`: debian, ubuntu, alpine, rhel, amzn, ...
    pub id: String,
    /// `VERSION_ID`: 12, 22.04, 3.18.4, 9.3, 2023, ...
    pub version_id: Option<String>,
    pub pretty_name: Option<String>,
}

impl OsRelease {
    pub fn detect(files: &ImageFiles) -> Option<OsRelease> {
        for path in ["etc/os-release", "usr/lib/os-release"] {
            if let Some(found) = files
                .read(path)
                .and_then(|d| parse(&String::from_utf8_lossy(&d)))
            {
                return Some(found);
            }
        }
        let first_line = |path: &str| {
            files.read(path).map(|d| {
                String::from_utf8_lossy(&d)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            })
        };
        if let Some(v) = first_line("etc/alpine-release") {
            return Some(OsRelease {
                id: "alpine".into(),
                version_id: Some(v),
                pretty_name: None,
            });
        }
        // debian_version holds "12.4" on a release, "trixie/sid" on testing.
        let v = first_line("etc/debian_version")?;
        let major = v
            .split('.')
            .next()
            .filter(|m| m.chars().all(|c| c.is_ascii_digit()) && !m.is_empty());
        Some(OsRelease {
            id: "debian".into(),
            version_id: major.map(str::to_owned),
            pretty_name: None,
        })
    }

    /// How the OS is named in messages: `PRETTY_NAME`, else `ID VERSION_ID`.
    pub fn display(&self) -> String {
        self.pretty_name
            .clone()
            .unwrap_or_else(|| match &self.version_id {
                Some(v) => format!("{} {v}", self.id),
                None => self.id.clone(),
            })
    }
}

/// `KEY=value` lines, values optionally quoted (shell-style escapes inside quotes).
fn parse(text: &str) -> Option<OsRelease> {
    let mut id = None;
    let mut version_id = None;
    let mut pretty_name = None;
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once('=') else {
            continue;
        };
        let value = unquote(value.trim());
        match key {
            "ID" => id = Some(value.to_ascii_lowercase()),
            "VERSION_ID" => version_id = Some(value),
            "PRETTY_NAME" => pretty_name = Some(value),
            _ => {}
        }
    }
    Some(OsRelease {
        id: id.filter(|i| !i.is_empty())?,
        version_id,
        pretty_name,
    })
}

fn unquote(v: &str) -> String {
    let inner = v
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')));
    match inner {
        Some(s) => s
            .replace("\\\"", "\"")
            .replace("\\\\", "\\")
            .replace("\\$", "$"),
        None => v.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_and_bare_values() {
        let os = parse("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n")
            .expect("an id");
        assert_eq!(os.id, "debian");
        assert_eq!(os.version_id.as_deref(), Some("12"));
        assert_eq!(os.display(), "Debian GNU/Linux 12 (bookworm)");
        assert!(parse("NAME=x\n").is_none());
    }
}
