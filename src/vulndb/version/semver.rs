//! Semantic Versioning 2.0.0 precedence (semver.org, section 11), the ordering OSV
//! uses for its `SEMVER` ranges and so for npm, crates.io and Go modules.
//!
//! Accepted is the grammar of the SemVer 2.0.0 specification with an optional leading
//! `v`, because Go module versions always carry one (`v1.2.3`). Go's pseudo-versions
//! (`v0.0.0-20210101000000-abcdef123456`, `v1.2.4-0.20210101000000-abcdef123456`) are
//! ordinary pre-releases under this grammar, and `+incompatible` is build metadata,
//! which precedence ignores, so both need nothing special. Go's shorthand `v1` and
//! `v1.2` (which its `semver` package reads as `v1.0.0` and `v1.2.0`) is refused: the
//! module proxy and build info only ever carry full versions, and npm and Cargo refuse
//! the shorthand too.
//!
//! Invalid versions still get an order, since a package database can hold anything:
//! `compare` puts them after every valid version and orders them among themselves as
//! plain strings (byte order). This is the same fallback as the PEP 440 module's, and
//! not Go's (`golang.org/x/mod/semver` puts invalid versions *before* valid ones and
//! calls them all equal). Go's build info records the main module as `(devel)`, which
//! thus sorts as newer than any fixed version rather than older.
//!
//! Numbers of any length are compared exactly. node's `semver` package refuses major,
//! minor and patch numbers above 2^53 - 1 and versions longer than 256 characters, and
//! compares longer numeric pre-release identifiers as floating point; none of that is
//! imitated.

use std::cmp::Ordering;

/// A version split into its parts, borrowed from the text it was parsed from.
/// Equality is precedence: versions differing only in build metadata are equal.
#[derive(Debug, Clone, Copy)]
pub struct Version<'a> {
    pub major: &'a str,
    pub minor: &'a str,
    pub patch: &'a str,
    /// The dot-separated identifiers after `-`, if any.
    pub pre: Option<&'a str>,
    /// The dot-separated identifiers after `+`, if any; not part of precedence.
    pub build: Option<&'a str>,
}

/// Whether `s` is a numeric identifier as the grammar allows it: `0`, or digits not
/// starting with `0`.
fn is_number(s: &str) -> bool {
    match s.as_bytes() {
        [] => false,
        [b'0'] => true,
        [b'0', ..] => false,
        digits => digits.iter().all(u8::is_ascii_digit),
    }
}

/// Identifiers are non-empty runs of ASCII letters, digits and hyphens; in a
/// pre-release an all-digit identifier must also have no leading zero.
fn valid_identifiers(s: &str, pre_release: bool) -> bool {
    s.split('.').all(|id| {
        !id.is_empty()
            && id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
            && (!pre_release || !id.bytes().all(|c| c.is_ascii_digit()) || is_number(id))
    })
}

impl<'a> Version<'a> {
    /// Parses a SemVer 2.0.0 version, optionally preceded by `v`.
    pub fn parse(v: &'a str) -> Option<Self> {
        let v = v.strip_prefix('v').unwrap_or(v);
        // Build metadata may contain hyphens, so it is split off first.
        let (rest, build) = match v.split_once('+') {
            Some((rest, build)) => (rest, Some(build)),
            None => (v, None),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (rest, None),
        };
        let mut numbers = core.split('.');
        let (major, minor, patch) = (numbers.next()?, numbers.next()?, numbers.next()?);
        let well_formed = numbers.next().is_none()
            && [major, minor, patch].iter().all(|n| is_number(n))
            && pre.is_none_or(|p| valid_identifiers(p, true))
            && build.is_none_or(|b| valid_identifiers(b, false));
        well_formed.then_some(Version {
            major,
            minor,
            patch,
            pre,
            build,
        })
    }
}

/// Numeric identifiers without leading zeros: the longer is the larger.
fn compare_numbers(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Precedence of two pre-release identifiers: numbers by value, below any
/// alphanumeric identifier; alphanumeric ones in ASCII order.
fn compare_identifiers(a: &str, b: &str) -> Ordering {
    let numeric = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    match (numeric(a), numeric(b)) {
        (true, true) => compare_numbers(a, b),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.cmp(b),
    }
}

impl Ord for Version<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_numbers(self.major, other.major)
            .then_with(|| compare_numbers(self.minor, other.minor))
            .then_with(|| compare_numbers(self.patch, other.patch))
            .then_with(|| match (self.pre, other.pre) {
                (None, None) => Ordering::Equal,
                // A pre-release comes before its release.
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(a), Some(b)) => {
                    let mut a = a.split('.');
                    let mut b = b.split('.');
                    loop {
                        match (a.next(), b.next()) {
                            (None, None) => return Ordering::Equal,
                            // Fewer identifiers, all equal so far: lower precedence.
                            (None, Some(_)) => return Ordering::Less,
                            (Some(_), None) => return Ordering::Greater,
                            (Some(x), Some(y)) => match compare_identifiers(x, y) {
                                Ordering::Equal => {}
                                unequal => return unequal,
                            },
                        }
                    }
                }
            })
    }
}

impl PartialOrd for Version<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version<'_> {}

/// Whether `v` is a SemVer 2.0.0 version (with or without a leading `v`).
pub fn is_valid(v: &str) -> bool {
    Version::parse(v).is_some()
}

/// Orders two versions by SemVer precedence; invalid versions sort after all valid
/// ones, and among themselves as plain strings (see the module documentation).
pub fn compare(a: &str, b: &str) -> Ordering {
    match (Version::parse(a), Version::parse(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::{Equal, Greater, Less};

    fn check(a: &str, expected: Ordering, b: &str) {
        assert_eq!(compare(a, b), expected, "{a} vs {b}");
        assert_eq!(compare(b, a), expected.reverse(), "{b} vs {a}");
    }

    fn check_ascending(versions: &[&str]) {
        for (i, a) in versions.iter().enumerate() {
            for b in &versions[i + 1..] {
                check(a, Less, b);
            }
            check(a, Equal, a);
        }
    }

    #[test]
    fn specification_examples() {
        // Section 11 of semver.org, in its own order.
        check_ascending(&["1.0.0", "2.0.0", "2.1.0", "2.1.1"]);
        check_ascending(&["1.0.0-alpha", "1.0.0"]);
        check_ascending(&[
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
        ]);
    }

    #[test]
    fn build_metadata_is_ignored() {
        check("1.0.0+build.1", Equal, "1.0.0+build.2");
        check("1.0.0+20130313144700", Equal, "1.0.0");
        check("1.0.0-beta+exp.sha.5114f85", Equal, "1.0.0-beta");
        check("1.0.0-alpha+001", Less, "1.0.0");
        check("2.0.0+incompatible", Equal, "v2.0.0");
        check("v2.0.1+incompatible", Greater, "v2.0.0+incompatible");
    }

    #[test]
    fn numbers_compare_by_value() {
        check("1.9.0", Less, "1.10.0");
        check("1.0.10", Greater, "1.0.9");
        check("10.0.0", Greater, "9.99.99");
        check("0.0.0", Less, "0.0.1");
        check(
            "99999999999999999999999.0.0",
            Greater,
            "99999999999999999999998.9.9",
        );
        check("1.0.0-9", Less, "1.0.0-10");
        check(
            "1.0.0-18446744073709551616",
            Greater,
            "1.0.0-18446744073709551615",
        );
    }

    #[test]
    fn pre_release_identifiers() {
        check("1.0.0-1", Less, "1.0.0-a");
        check("1.0.0-999", Less, "1.0.0--");
        check("1.0.0-A", Less, "1.0.0-a");
        check("1.0.0-Z", Less, "1.0.0-a");
        check("1.0.0-a", Less, "1.0.0-a.0");
        check("1.0.0-a.b", Greater, "1.0.0-a.1");
        check("1.0.0-alpha.1", Less, "1.0.0-alpha.a");
        check("1.0.0-rc.10", Greater, "1.0.0-rc.9");
        check("1.0.0-rc10", Less, "1.0.0-rc9");
        check("1.0.0-0a", Greater, "1.0.0-1");
        check("1.0.0-0a", Less, "1.0.0-1a");
        check("1.0.0-x-y", Greater, "1.0.0-x");
    }

    #[test]
    fn go_module_versions() {
        check("v1.2.3", Equal, "1.2.3");
        check_ascending(&[
            "v0.0.0-20190101000000-abcdef123456",
            "v0.0.0-20210101000000-abcdef123456",
            "v0.0.0-20210101000001-000000000000",
            "v0.1.0",
            "v1.2.3",
            "v1.2.4-0.20210101000000-abcdef123456",
            "v1.2.4-pre",
            "v1.2.4-pre.0.20210101000000-abcdef123456",
            "v1.2.4",
            "v2.0.0+incompatible",
            "v2.0.1",
        ]);
    }

    #[test]
    fn grammar() {
        // semver.org's list of valid versions for its regular expression, plus `v`.
        for v in [
            "0.0.4",
            "1.2.3",
            "10.20.30",
            "1.1.2-prerelease+meta",
            "1.1.2+meta",
            "1.1.2+meta-valid",
            "1.0.0-alpha",
            "1.0.0-beta",
            "1.0.0-alpha.beta",
            "1.0.0-alpha.beta.1",
            "1.0.0-alpha.1",
            "1.0.0-alpha0.valid",
            "1.0.0-alpha.0valid",
            "1.0.0-alpha-a.b-c-somethinglong+build.1-aef.1-its-okay",
            "1.0.0-rc.1+build.1",
            "2.0.0-rc.1+build.123",
            "1.2.3-beta",
            "10.2.3-DEV-SNAPSHOT",
            "1.2.3-SNAPSHOT-123",
            "2.0.0+build.1848",
            "2.0.1-alpha.1227",
            "1.0.0-alpha+beta",
            "1.2.3----RC-SNAPSHOT.12.9.1--.12+788",
            "1.2.3----R-S.12.9.1--.12+meta",
            "1.2.3----RC-SNAPSHOT.12.9.1--.12",
            "1.0.0+0.build.1-rc.10000aaa-kk-0.1",
            "99999999999999999999999.999999999999999999.99999999999999999",
            "1.0.0-0A.is.legal",
            "1.0.0+001",
            "v1.2.3",
            "v0.0.0-20210101000000-abcdef123456",
        ] {
            assert!(is_valid(v), "{v:?} should be valid");
        }
        // And its list of invalid ones, plus this module's own refusals.
        for v in [
            "1",
            "1.2",
            "1.2.3-0123",
            "1.2.3-0123.0123",
            "1.1.2+.123",
            "+invalid",
            "-invalid",
            "-invalid+invalid",
            "-invalid.01",
            "alpha",
            "alpha.beta",
            "alpha.beta.1",
            "alpha.1",
            "alpha+beta",
            "alpha_beta",
            "alpha.",
            "alpha..",
            "beta",
            "1.0.0-alpha_beta",
            "-alpha.",
            "1.0.0-alpha..",
            "1.0.0-alpha..1",
            "1.0.0-alpha...1",
            "1.0.0-alpha....1",
            "1.0.0-alpha.....1",
            "1.0.0-alpha......1",
            "1.0.0-alpha.......1",
            "01.1.1",
            "1.01.1",
            "1.1.01",
            "1.2",
            "1.2.3.DEV",
            "1.2-SNAPSHOT",
            "1.2.31.2.3----RC-SNAPSHOT.12.09.1--..12+788",
            "1.2-RC-SNAPSHOT",
            "-1.0.3-gamma+b7718",
            "+justmeta",
            "9.8.7+meta+meta",
            "9.8.7-whatever+meta+meta",
            "99999999999999999999999.999999999999999999.99999999999999999----RC-SNAPSHOT.12.09.1--------------------------------..12",
            "",
            "v",
            "V1.2.3",
            "vv1.2.3",
            "v1",
            "v1.2",
            " 1.2.3",
            "1.2.3 ",
            "=1.2.3",
            "1.2.3-",
            "1.2.3+",
            "1.2.3-a+",
            "1.2.3-é",
            "1.2.3-01",
            "1.2.3-1.00",
            "(devel)",
        ] {
            assert!(!is_valid(v), "{v:?} should be invalid");
        }
    }

    #[test]
    fn invalid_sorts_after_valid_then_as_text() {
        check("(devel)", Greater, "v99.0.0");
        check("1.2", Greater, "1.3.0");
        check("1.2", Less, "1.3");
        check("v1", Equal, "v1");
    }
}
