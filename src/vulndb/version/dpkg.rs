//! Debian package versions (`[epoch:]upstream[-revision]`) ordered the way dpkg orders
//! them (`dpkg_version_compare` and `verrevcmp` in dpkg's `lib/dpkg/version.c`), because
//! a fix recorded as "fixed in 1.2-3" is only meaningful under dpkg's own ordering.
//!
//! `compare` never fails: advisory data and package databases sometimes hold versions
//! dpkg would refuse, and a scanner must still give them some order. `is_valid` says
//! whether dpkg would accept a version at all.

use std::cmp::Ordering;

/// Orders two Debian versions as `dpkg --compare-versions` does.
pub fn compare(a: &str, b: &str) -> Ordering {
    let a = Parts::split(a);
    let b = Parts::split(b);
    compare_numbers(a.epoch, b.epoch)
        .then_with(|| verrevcmp(a.upstream, b.upstream))
        .then_with(|| verrevcmp(a.revision, b.revision))
}

/// Whether dpkg would accept `v` (its `parseversion` returns no error). dpkg only
/// warns about an upstream version that does not start with a digit and about
/// characters outside its alphabet, and then compares such versions all the same, so
/// they are valid here too. Stricter than dpkg in one way: dpkg trims surrounding
/// blanks, this rejects any whitespace, since a version with spaces around it is a
/// parsing slip upstream of here.
pub fn is_valid(v: &str) -> bool {
    if v.is_empty() || v.bytes().any(|c| c.is_ascii_whitespace()) {
        return false;
    }
    let rest = match v.split_once(':') {
        Some((epoch, rest)) => {
            // dpkg reads the epoch with strtol, which takes a plus sign.
            let digits = epoch.strip_prefix('+').unwrap_or(epoch);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return false;
            }
            // dpkg keeps the epoch in an int.
            if compare_numbers(digits.as_bytes(), b"2147483647") == Ordering::Greater {
                return false;
            }
            rest
        }
        None => v,
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => !upstream.is_empty() && !revision.is_empty(),
        None => !rest.is_empty(),
    }
}

struct Parts<'a> {
    /// The epoch's leading digits; empty means 0.
    epoch: &'a [u8],
    upstream: &'a [u8],
    revision: &'a [u8],
}

impl<'a> Parts<'a> {
    /// Epoch ends at the first colon and the revision starts after the last hyphen, as
    /// in dpkg's `parseversion`; an upstream version may itself hold hyphens and colons.
    fn split(v: &'a str) -> Self {
        let (epoch, rest) = match v.split_once(':') {
            Some((epoch, rest)) => {
                // dpkg refuses a non-numeric epoch; reading the leading digits (so
                // junk counts as 0) keeps the order total. The sign is strtol's.
                let epoch = epoch.strip_prefix('+').unwrap_or(epoch);
                let digits = epoch.bytes().take_while(u8::is_ascii_digit).count();
                (&epoch.as_bytes()[..digits], rest)
            }
            None => (&b""[..], v),
        };
        let (upstream, revision) = rest.rsplit_once('-').unwrap_or((rest, ""));
        Parts {
            epoch,
            upstream: upstream.as_bytes(),
            revision: revision.as_bytes(),
        }
    }
}

/// The weight dpkg gives one character of a non-digit run; `None` is the end of the
/// string, which must sort after `~` but before any other character.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        // Bytes above 0x7f land here too; dpkg on signed-char platforms gives them
        // their negative value + 256 instead. Such bytes are invalid in any version,
        // so this follows the unsigned platforms and Perl's Dpkg::Version.
        Some(c) => i32::from(c) + 256,
    }
}

fn is_digit_at(s: &[u8], i: usize) -> bool {
    s.get(i).is_some_and(u8::is_ascii_digit)
}

/// dpkg's `verrevcmp`: alternating non-digit runs (compared by `order`) and digit runs
/// (compared as numbers of any length).
fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !is_digit_at(a, i)) || (j < b.len() && !is_digit_at(b, j)) {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            // Equal weights mean neither side is at its end (only the end and digits
            // weigh 0, and the loop condition excludes both being those).
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while is_digit_at(a, i) && is_digit_at(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if is_digit_at(a, i) {
            return Ordering::Greater;
        }
        if is_digit_at(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

/// Compares two strings of ASCII digits as unbounded non-negative integers, so that a
/// 30-digit epoch cannot overflow anything.
fn compare_numbers(a: &[u8], b: &[u8]) -> Ordering {
    let a = strip_zeros(a);
    let b = strip_zeros(b);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn strip_zeros(s: &[u8]) -> &[u8] {
    let zeros = s.iter().take_while(|&&c| c == b'0').count();
    &s[zeros..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::{Equal, Greater, Less};

    fn check(a: &str, expected: Ordering, b: &str) {
        assert_eq!(compare(a, b), expected, "{a} vs {b}");
        assert_eq!(compare(b, a), expected.reverse(), "{b} vs {a}");
    }

    #[test]
    fn tilde_sorts_before_everything_including_the_end() {
        check("1.0~rc1", Less, "1.0");
        check("1.0~rc1", Less, "1.0~rc2");
        check("1.0~~", Less, "1.0~");
        check("1.0~~a", Less, "1.0~");
        check("1.0~", Less, "1.0");
        check("1.0", Less, "1.0a");
        check("1.0a", Less, "1.0+");
        check("1.0+", Less, "1.0.1");
        check("2.30-1~deb12u1", Less, "2.30-1");
    }

    #[test]
    fn letters_before_non_letters() {
        check("1.0a", Less, "1.0.");
        check("1.0Z", Less, "1.0a");
        check("1.0z", Less, "1.0+");
        check("1.0+", Less, "1.0.");
        check("1a", Less, "1+");
        // Non-ASCII bytes weigh as non-letters.
        check("1.0é", Greater, "1.0z");
    }

    #[test]
    fn digit_runs_are_numbers() {
        check("1.10", Greater, "1.9");
        check("1.010", Equal, "1.10");
        check("1.0", Equal, "1.00");
        check("0001", Equal, "1");
        check("10", Greater, "9");
        check("1.2.3", Greater, "1.2");
        check("1.123456789012345678901", Less, "1.123456789012345678902");
        check(
            "1.99999999999999999999999999999",
            Less,
            "1.100000000000000000000000000000",
        );
        check("1.000000000000000000000000000000002", Greater, "1.1");
    }

    #[test]
    fn epochs() {
        check("1:0.1", Greater, "9.9");
        check("0:1.0", Equal, "1.0");
        check("00:1.0", Equal, "1.0");
        check("2:1.0", Greater, "1:5.0");
        check("10:1", Greater, "9:1");
        check("+1:1.0", Equal, "1:1.0");
        // Beyond dpkg's INT_MAX limit, still ordered numerically.
        check("99999999999999999999:1", Greater, "99999999999999999998:1");
    }

    #[test]
    fn revisions_split_at_the_last_hyphen() {
        check("1.0-1", Less, "1.0-2");
        check("1.0-1-1", Greater, "1.0-1");
        check("1.0-0", Equal, "1.0");
        check("1.0-1", Greater, "1.0");
        check("1.0-a-1", Greater, "1.0-1");
        check("1:1.0-1", Less, "1:1.0-1.1");
        check("1.0-1ubuntu1", Greater, "1.0-1");
        check("1.0-1ubuntu0.1", Less, "1.0-1ubuntu1");
        check("7.88.1-10+deb12u5", Less, "7.88.1-10+deb12u8");
        check("1:2.38.1-5+deb12u1", Greater, "1:2.38.1-5");
    }

    #[test]
    fn edge_cases_checked_against_dpkg() {
        check("0:0-0", Equal, "0:0-0");
        check("0:0-0", Equal, "0:0");
        check("0:0-0", Equal, "0");
        check("0:0.0-0", Equal, "0:0.0-0");
        check("1:0-0", Greater, "0:0-0");
        check("2:0-0", Greater, "1:0-0");
        check("0:1-0", Greater, "0:0-0");
        check("0:2-0", Greater, "0:1-0");
        check("0:0-1", Greater, "0:0-0");
        check("0:0-2", Greater, "0:0-1");
        check("0:0-00", Equal, "0:0-0");
        check("0:0.0-0", Greater, "0:0-0");
        check("0:0-0-0", Greater, "0:0-0");
        check("0:0-0", Less, "0:0-0-0");
        check("0:0-0.0", Greater, "0:0-0");
        check("0:0-0-0", Greater, "0:0-0.0");
        check("0:00-0", Equal, "0:0-0");
        check("0:0a-0", Greater, "0:0-0");
        check("0:0~-0", Less, "0:0-0");
        check("0:0~-0", Equal, "0:0~0-0");
        check("0:0~~-0", Less, "0:0~-0");
        check("0:0~a-0", Greater, "0:0~-0");
        check("0:0-0~", Less, "0:0-0");
        check("0:0-a", Greater, "0:0-0");
    }

    #[test]
    fn validity() {
        for v in [
            "1.0",
            "1:1.0-1",
            "1.0-1-1",
            "1.0+dfsg-1~bpo12+1",
            "1:2:3",
            "0:0",
            "2147483647:1",
            "+1:1.0",
            // dpkg warns about these, and accepts them.
            "abc",
            "1:a",
            "1.0_1",
            "1.0-1_1",
            "1.0é",
        ] {
            assert!(is_valid(v), "{v} should be valid");
        }
        for v in [
            "",
            " 1.0",
            "1.0 ",
            "1 .0",
            "1\t0",
            ":1.0",
            "a:1.0",
            "+:1.0",
            "-1:1.0",
            "1:",
            "1:-1",
            "1.0-",
            "-1",
            "1.0-1:1",
            "2147483648:1",
        ] {
            assert!(!is_valid(v), "{v:?} should be invalid");
        }
    }

    #[test]
    fn versions_dpkg_refuses_still_get_an_order() {
        check("a:1.0", Equal, "1.0");
        check("1:", Greater, "1");
        check("1.0-", Equal, "1.0");
    }
}
