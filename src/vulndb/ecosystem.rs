//! Ecosystems: how OSV names them, the key Berth stores them under, and which one an
//! image's OS and packages belong to.
//!
//! OSV spells releases in several ways (`Ubuntu:22.04:LTS`, `Red Hat:enterprise_linux:9::appstream`);
//! Berth keeps one key per release (`Ubuntu:22.04`, `Red Hat:9`) so that an image's OS
//! finds every record of its release. Ubuntu Pro and Red Hat's extended-support
//! streams are left out: they describe packages a plain image does not have.

use crate::scan::{OsRelease, PackageKind};

/// Berth's key for an OSV ecosystem name; `None` for streams Berth does not match.
pub fn key(osv: &str) -> Option<String> {
    let parts: Vec<&str> = osv.split(':').collect();
    match parts.as_slice() {
        ["Ubuntu", "Pro", ..] => None,
        ["Ubuntu", release, ..] => Some(format!("Ubuntu:{release}")),
        ["Red Hat", "enterprise_linux", release, ..] => Some(format!(
            "Red Hat:{}",
            release.split('.').next().unwrap_or(release)
        )),
        ["Red Hat", ..] => None,
        _ => Some(osv.to_owned()),
    }
}

/// The source (what one import replaces) of a key: the part before the first colon.
pub fn source(key: &str) -> &str {
    key.split(':').next().unwrap_or(key)
}

/// The ecosystem key of an image's OS, if Berth knows how OSV names it.
pub fn of_os(os: &OsRelease) -> Option<String> {
    let version = os.version_id.as_deref()?;
    let major = version.split('.').next().unwrap_or(version);
    let key = match os.id.as_str() {
        "debian" => format!("Debian:{major}"),
        "ubuntu" => format!("Ubuntu:{version}"),
        "alpine" => {
            let minor = version.split('.').nth(1)?;
            format!("Alpine:v{major}.{minor}")
        }
        "rhel" => format!("Red Hat:{major}"),
        "almalinux" => format!("AlmaLinux:{major}"),
        "rocky" => format!("Rocky Linux:{major}"),
        "amzn" => format!("Amazon Linux:{version}"),
        "opensuse-leap" => format!("openSUSE:Leap {version}"),
        "sles" => format!("SUSE:Linux Enterprise Server {major}"),
        other => format!("{other}:{version}"),
    };
    Some(key)
}

/// The ecosystem of a language package manager's packages; `None` for the OS's
/// package managers, whose ecosystem is the OS's release (`of_os`).
pub fn of_language(kind: PackageKind) -> Option<&'static str> {
    match kind {
        PackageKind::Dpkg | PackageKind::Apk | PackageKind::Rpm => None,
        PackageKind::Python => Some("PyPI"),
        PackageKind::Npm => Some("npm"),
        PackageKind::Go => Some("Go"),
        PackageKind::Cargo => Some("crates.io"),
        PackageKind::Maven => Some("Maven"),
    }
}

/// A package's name as Berth stores and matches it in an ecosystem: PyPI compares
/// names normalized (PEP 503); the others as written.
pub fn package_name(ecosystem: &str, name: &str) -> String {
    if ecosystem == "PyPI" {
        crate::scan::python::normalize(name)
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osv_names_fold_into_one_key_per_release() {
        assert_eq!(key("Debian:12").as_deref(), Some("Debian:12"));
        assert_eq!(key("Ubuntu:22.04:LTS").as_deref(), Some("Ubuntu:22.04"));
        assert_eq!(key("Ubuntu:Pro:22.04:LTS"), None);
        assert_eq!(
            key("Red Hat:enterprise_linux:9::appstream").as_deref(),
            Some("Red Hat:9")
        );
        assert_eq!(key("Red Hat:rhel_eus:9.2::baseos"), None);
        assert_eq!(key("Alpine:v3.18").as_deref(), Some("Alpine:v3.18"));
        assert_eq!(source("Red Hat:9"), "Red Hat");
        let os = |id: &str, v: &str| OsRelease {
            id: id.into(),
            version_id: Some(v.into()),
            pretty_name: None,
        };
        assert_eq!(
            of_os(&os("alpine", "3.18.4")).as_deref(),
            Some("Alpine:v3.18")
        );
        assert_eq!(of_os(&os("debian", "12")).as_deref(), Some("Debian:12"));
        assert_eq!(of_os(&os("rhel", "9.3")).as_deref(), Some("Red Hat:9"));
        assert_eq!(
            of_os(&os("ubuntu", "22.04")).as_deref(),
            Some("Ubuntu:22.04")
        );
    }
}
