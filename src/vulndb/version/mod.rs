//! Version ordering for each package ecosystem a scanner matches: a package is
//! vulnerable when its installed version sorts before the advisory's fixed version
//! under that ecosystem's own rules, so each module follows its package manager's
//! comparison exactly rather than a generic "semver-ish" one.

pub mod apk;
pub mod dpkg;
pub mod maven;
pub mod pep440;
pub mod rpm;
pub mod semver;

#[cfg(test)]
mod reference_tests;

use std::cmp::Ordering;

use crate::scan::PackageKind;

/// Which package manager's ordering applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Dpkg,
    Apk,
    Rpm,
    Pep440,
    /// npm, crates.io and Go modules.
    Semver,
    Maven,
}

impl Scheme {
    /// The ordering of the package manager that installed a package.
    pub fn of(kind: PackageKind) -> Scheme {
        match kind {
            PackageKind::Dpkg => Scheme::Dpkg,
            PackageKind::Apk => Scheme::Apk,
            PackageKind::Rpm => Scheme::Rpm,
            PackageKind::Python => Scheme::Pep440,
            PackageKind::Npm | PackageKind::Go | PackageKind::Cargo => Scheme::Semver,
            PackageKind::Maven => Scheme::Maven,
        }
    }

    /// Orders two versions; rpm versions are whole `[epoch:]version[-release]` strings.
    pub fn compare(self, a: &str, b: &str) -> Ordering {
        match self {
            Scheme::Dpkg => dpkg::compare(a, b),
            Scheme::Apk => apk::compare(a, b),
            Scheme::Rpm => rpm::compare(a, b),
            Scheme::Pep440 => pep440::compare(a, b),
            Scheme::Semver => semver::compare(a, b),
            Scheme::Maven => maven::compare(a, b),
        }
    }

    /// Whether the package manager would accept `v` as a version at all.
    pub fn is_valid(self, v: &str) -> bool {
        match self {
            Scheme::Dpkg => dpkg::is_valid(v),
            Scheme::Apk => apk::is_valid(v),
            // rpm refuses only the empty string.
            Scheme::Rpm => !v.is_empty(),
            Scheme::Pep440 => pep440::is_valid(v),
            Scheme::Semver => semver::is_valid(v),
            // Maven takes any string as a version.
            Scheme::Maven => true,
        }
    }
}
