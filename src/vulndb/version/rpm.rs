//! RPM versions ordered the way rpm 4.18 orders them: `rpmvercmp` (rpmio/rpmvercmp.c)
//! for each field, and `rpmverCmp` (rpmio/rpmver.c) for whole `[epoch:]version[-release]`
//! strings, the comparison behind Lua's `rpm.vercmp` and Python's `rpm.labelCompare`.
//!
//! A missing release sorts before any present release (`1.0 < 1.0-1`) and two missing
//! releases are equal, as `rpmverCmp` does. rpm's dependency matching (`rpmdsCompare`)
//! instead lets a missing release match any release; a caller that wants that reading
//! of "fixed in 1.0" can compare `Evr::parse(..)` fields itself.

use std::cmp::Ordering;

/// An EVR split the way rpm's `parseEVR` splits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evr<'a> {
    /// Digits before the first `:` (`""` when the colon has none before it, which rpm
    /// reads as 0); `None` when there is no such prefix.
    pub epoch: Option<&'a str>,
    pub version: &'a str,
    /// After the last `-`; `None` when there is no hyphen.
    pub release: Option<&'a str>,
}

impl<'a> Evr<'a> {
    /// Never fails: rpm only refuses the empty string, which parses here to an empty
    /// version.
    pub fn parse(evr: &'a str) -> Self {
        let digits = evr.bytes().take_while(u8::is_ascii_digit).count();
        // An epoch is all digits up to a colon; "a:1" is a version containing a colon.
        let (epoch, rest) = match evr.as_bytes().get(digits) {
            Some(b':') => (Some(&evr[..digits]), &evr[digits + 1..]),
            _ => (None, evr),
        };
        match rest.rsplit_once('-') {
            Some((version, release)) => Evr {
                epoch,
                version,
                release: Some(release),
            },
            None => Evr {
                epoch,
                version: rest,
                release: None,
            },
        }
    }

    /// The epoch rpm compares: a missing or empty one is 0.
    pub fn epoch_or_zero(&self) -> &'a str {
        match self.epoch {
            Some(e) if !e.is_empty() => e,
            _ => "0",
        }
    }

    /// rpm's `rpmverCmp`. Not `Ord`: versions that differ as text (`0:1.0`, `1.0`)
    /// compare equal.
    pub fn compare(&self, other: &Evr<'_>) -> Ordering {
        vercmp(self.epoch_or_zero(), other.epoch_or_zero())
            .then_with(|| vercmp(self.version, other.version))
            .then_with(|| match (self.release, other.release) {
                (Some(a), Some(b)) => vercmp(a, b),
                (a, b) => a.is_some().cmp(&b.is_some()),
            })
    }
}

/// Orders two `[epoch:]version[-release]` strings as rpm 4.18's `rpmverCmp`.
pub fn compare(a: &str, b: &str) -> Ordering {
    Evr::parse(a).compare(&Evr::parse(b))
}

/// Whether a byte separates segments: everything but ASCII letters and digits and the
/// two ordering marks (rpm's `risalnum` is ASCII-only, so non-ASCII bytes separate too).
fn is_separator(c: u8) -> bool {
    !c.is_ascii_alphanumeric() && c != b'~' && c != b'^'
}

/// rpm's `rpmvercmp` on one field: letter and digit segments compared in turn, with
/// separators only ending segments, never compared themselves (`2.0 == 2_0`).
pub fn vercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while a.get(i).is_some_and(|&c| is_separator(c)) {
            i += 1;
        }
        while b.get(j).is_some_and(|&c| is_separator(c)) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());

        // `~` sorts before everything, the end of the string included.
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        // `^` sorts after the end of the string but before anything else.
        if ca == Some(b'^') || cb == Some(b'^') {
            if ca.is_none() {
                return Ordering::Less;
            }
            if cb.is_none() {
                return Ordering::Greater;
            }
            if ca != Some(b'^') {
                return Ordering::Greater;
            }
            if cb != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(first), Some(_)) = (ca, cb) else {
            break;
        };

        // The segment's kind is set by `a`; `b` contributes a run of the same kind,
        // possibly empty.
        let numeric = first.is_ascii_digit();
        let same_kind = |c: &u8| {
            if numeric {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let end_a = i + a[i..].iter().take_while(|c| same_kind(c)).count();
        let end_b = j + b[j..].iter().take_while(|c| same_kind(c)).count();
        if end_b == j {
            // A number is newer than letters.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (mut seg_a, mut seg_b) = (&a[i..end_a], &b[j..end_b]);
        if numeric {
            seg_a = strip_zeros(seg_a);
            seg_b = strip_zeros(seg_b);
            let by_length = seg_a.len().cmp(&seg_b.len());
            if by_length != Ordering::Equal {
                return by_length;
            }
        }
        let by_bytes = seg_a.cmp(seg_b);
        if by_bytes != Ordering::Equal {
            return by_bytes;
        }
        i = end_a;
        j = end_b;
    }
    // All shared segments equal: the side with a segment left is newer. Trailing
    // separators were skipped above, so `1.0.` equals `1.0`.
    (i < a.len()).cmp(&(j < b.len()))
}

fn strip_zeros(s: &[u8]) -> &[u8] {
    let zeros = s.iter().take_while(|&&c| c == b'0').count();
    &s[zeros..]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// rpm 4.18's own cases, tests/rpmvercmp.at.
    const RPMVERCMP_CASES: &[(&str, &str, i8)] = &[
        ("1.0", "1.0", 0),
        ("1.0", "2.0", -1),
        ("2.0", "1.0", 1),
        ("2.0.1", "2.0.1", 0),
        ("2.0", "2.0.1", -1),
        ("2.0.1", "2.0", 1),
        ("2.0.1a", "2.0.1a", 0),
        ("2.0.1a", "2.0.1", 1),
        ("2.0.1", "2.0.1a", -1),
        ("5.5p1", "5.5p1", 0),
        ("5.5p1", "5.5p2", -1),
        ("5.5p2", "5.5p1", 1),
        ("5.5p10", "5.5p10", 0),
        ("5.5p1", "5.5p10", -1),
        ("5.5p10", "5.5p1", 1),
        ("10xyz", "10.1xyz", -1),
        ("10.1xyz", "10xyz", 1),
        ("xyz10", "xyz10", 0),
        ("xyz10", "xyz10.1", -1),
        ("xyz10.1", "xyz10", 1),
        ("xyz.4", "xyz.4", 0),
        ("xyz.4", "8", -1),
        ("8", "xyz.4", 1),
        ("xyz.4", "2", -1),
        ("2", "xyz.4", 1),
        ("5.5p2", "5.6p1", -1),
        ("5.6p1", "5.5p2", 1),
        ("5.6p1", "6.5p1", -1),
        ("6.5p1", "5.6p1", 1),
        ("6.0.rc1", "6.0", 1),
        ("6.0", "6.0.rc1", -1),
        ("10b2", "10a1", 1),
        ("10a2", "10b2", -1),
        ("1.0aa", "1.0aa", 0),
        ("1.0a", "1.0aa", -1),
        ("1.0aa", "1.0a", 1),
        ("10.0001", "10.0001", 0),
        ("10.0001", "10.1", 0),
        ("10.1", "10.0001", 0),
        ("10.0001", "10.0039", -1),
        ("10.0039", "10.0001", 1),
        ("4.999.9", "5.0", -1),
        ("5.0", "4.999.9", 1),
        ("20101121", "20101121", 0),
        ("20101121", "20101122", -1),
        ("20101122", "20101121", 1),
        ("2_0", "2_0", 0),
        ("2.0", "2_0", 0),
        ("2_0", "2.0", 0),
        ("a", "a", 0),
        ("a+", "a+", 0),
        ("a+", "a_", 0),
        ("a_", "a+", 0),
        ("+a", "+a", 0),
        ("+a", "_a", 0),
        ("_a", "+a", 0),
        ("+_", "+_", 0),
        ("_+", "+_", 0),
        ("_+", "_+", 0),
        ("+", "_", 0),
        ("_", "+", 0),
        ("1.0~rc1", "1.0~rc1", 0),
        ("1.0~rc1", "1.0", -1),
        ("1.0", "1.0~rc1", 1),
        ("1.0~rc1", "1.0~rc2", -1),
        ("1.0~rc2", "1.0~rc1", 1),
        ("1.0~rc1~git123", "1.0~rc1~git123", 0),
        ("1.0~rc1~git123", "1.0~rc1", -1),
        ("1.0~rc1", "1.0~rc1~git123", 1),
        ("1.0^", "1.0^", 0),
        ("1.0^", "1.0", 1),
        ("1.0", "1.0^", -1),
        ("1.0^git1", "1.0^git1", 0),
        ("1.0^git1", "1.0", 1),
        ("1.0", "1.0^git1", -1),
        ("1.0^git1", "1.0^git2", -1),
        ("1.0^git2", "1.0^git1", 1),
        ("1.0^git1", "1.01", -1),
        ("1.01", "1.0^git1", 1),
        ("1.0^20160101", "1.0^20160101", 0),
        ("1.0^20160101", "1.0.1", -1),
        ("1.0.1", "1.0^20160101", 1),
        ("1.0^20160101^git1", "1.0^20160101^git1", 0),
        ("1.0^20160102", "1.0^20160101^git1", 1),
        ("1.0^20160101^git1", "1.0^20160102", -1),
        ("1.0~rc1^git1", "1.0~rc1^git1", 0),
        ("1.0~rc1^git1", "1.0~rc1", 1),
        ("1.0~rc1", "1.0~rc1^git1", -1),
        ("1.0^git1~pre", "1.0^git1~pre", 0),
        ("1.0^git1", "1.0^git1~pre", 1),
        ("1.0^git1~pre", "1.0^git1", -1),
        // The "oddities" rpm's suite documents without asserting, checked against
        // rpm 4.18 itself.
        ("1b.fc17", "1.fc17", -1),
        ("1g.fc17", "1.fc17", 1),
        ("1.1.α", "1.1.β", 0),
        ("1.1.αα", "1.1.α", 0),
    ];

    fn ordering(n: i8) -> Ordering {
        n.cmp(&0)
    }

    #[test]
    fn rpm_test_suite() {
        for &(a, b, expected) in RPMVERCMP_CASES {
            assert_eq!(vercmp(a, b), ordering(expected), "rpmvercmp({a}, {b})");
            // Without hyphens or epochs, whole-EVR comparison is the same.
            assert_eq!(compare(a, b), ordering(expected), "compare({a}, {b})");
        }
    }

    #[test]
    fn long_digit_runs_do_not_overflow() {
        assert_eq!(
            vercmp(
                "1.123456789012345678901234567890",
                "1.123456789012345678901234567891"
            ),
            Ordering::Less
        );
        assert_eq!(
            vercmp("1.000000000000000000000000000001", "1.1"),
            Ordering::Equal
        );
        assert_eq!(
            vercmp("1.99999999999999999999", "1.100000000000000000000"),
            Ordering::Less
        );
    }

    #[test]
    fn parse_splits_like_rpm() {
        assert_eq!(
            Evr::parse("2:1.0-3.el9"),
            Evr {
                epoch: Some("2"),
                version: "1.0",
                release: Some("3.el9")
            }
        );
        assert_eq!(
            Evr::parse("1.0"),
            Evr {
                epoch: None,
                version: "1.0",
                release: None
            }
        );
        assert_eq!(
            Evr::parse("1.0-1-2"),
            Evr {
                epoch: None,
                version: "1.0-1",
                release: Some("2")
            }
        );
        assert_eq!(
            Evr::parse("a:1.0"),
            Evr {
                epoch: None,
                version: "a:1.0",
                release: None
            }
        );
        assert_eq!(
            Evr::parse(":1.0"),
            Evr {
                epoch: Some(""),
                version: "1.0",
                release: None
            }
        );
        assert_eq!(Evr::parse(":1.0").epoch_or_zero(), "0");
    }

    #[test]
    fn evr_ordering() {
        use Ordering::{Equal, Greater, Less};
        let cases = [
            ("1:1.0-1", Greater, "2.0-1"),
            ("0:1.0-1", Equal, "1.0-1"),
            (":1.0-1", Equal, "1.0-1"),
            ("00:1.0", Equal, "0:1.0"),
            ("10:1", Greater, "9:1"),
            ("1.0-1", Less, "1.0-2"),
            ("1.0-10", Greater, "1.0-9"),
            ("1.0-1.el9", Less, "1.0-1.el9_1"),
            ("1.0-1.el9_2", Greater, "1.0-1.el9_1"),
            ("1.0", Less, "1.0-1"),
            ("1.0", Less, "1.0-"),
            ("1.0", Equal, "1.0"),
            ("1.0.", Equal, "1.0"),
            ("1.0a", Greater, "1.0"),
            ("1.1", Greater, "1.0-5"),
            ("1.0~rc1-1", Less, "1.0-1"),
            ("3.0.7-27.el9", Less, "1:3.0.7-16.el9"),
            ("2.9.13-6.el9_4", Greater, "2.9.13-5.el9_2"),
        ];
        for (a, expected, b) in cases {
            assert_eq!(compare(a, b), expected, "{a} vs {b}");
            assert_eq!(compare(b, a), expected.reverse(), "{b} vs {a}");
        }
    }
}
