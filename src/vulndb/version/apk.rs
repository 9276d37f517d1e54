//! Alpine package versions (`1.2.3b_rc1_p2-r4`) ordered the way apk-tools 2.x orders
//! them (`apk_version_compare` in apk-tools 2.14's `src/version.c`), the tool that
//! installed the packages a scanner reads from `/lib/apk/db/installed`.
//!
//! apk reads a version as a stream of tokens, each allowed only after certain others,
//! and compares token values until one side differs in value or in kind. It has no
//! separate fallback for malformed versions: once a side stops being a valid version
//! the comparison ends where it is, and two versions that agree up to the point where
//! both turn malformed compare equal (`1.0_foo` and `1.0_bar` do). This module keeps
//! that behaviour, oddities included, so that "fixed in" answers match `apk version -t`;
//! `is_valid` tells a caller when a version is outside what apk accepts.
//!
//! apk-tools 3 changed a few rules: a component with a leading zero compares as a
//! string there (`8.2.0 < 8.2.001` in 3, `>` here), it adds `~<hex>` commit tokens, and
//! it judges validity more strictly. Outside those, the two agree on every ordering
//! case of apk-tools 3's own test data.

use std::cmp::Ordering;

/// Token kinds in the order apk-tools declares them: the order is part of the
/// algorithm (a kind may follow only larger kinds, with listed exceptions, and at the
/// end the side whose next kind is smaller is the newer version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Token {
    Invalid,
    DigitOrZero,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    RevisionNo,
    End,
}

/// Pre-release suffixes sort below the release itself, and take the values -4..-1.
const PRE_SUFFIXES: [&[u8]; 4] = [b"alpha", b"beta", b"pre", b"rc"];
/// Post-release suffixes take the values 0..4.
const POST_SUFFIXES: [&[u8]; 5] = [b"cvs", b"svn", b"git", b"hg", b"p"];

/// Digit runs of this length or longer make the version invalid (apk keeps values in
/// 64 bits and checks the length instead of overflow).
const MAX_DIGITS: usize = 18;

/// What is left of a version string.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl Cursor<'_> {
    fn advance(&mut self, n: usize) {
        self.rest = self.rest.get(n..).unwrap_or_default();
    }

    fn first(&self) -> Option<u8> {
        self.rest.first().copied()
    }
}

/// Decides the kind of the next token from the separator (if any) at the cursor,
/// consuming the separator.
fn next_token(kind: &mut Token, s: &mut Cursor<'_>) {
    let mut next = match s.first() {
        // apk stops at a NUL as C strings do.
        None | Some(0) => Token::End,
        // Letters and digits follow each other with no separator to consume.
        Some(c) if matches!(*kind, Token::Digit | Token::DigitOrZero) && c.is_ascii_lowercase() => {
            Token::Letter
        }
        Some(c) if *kind == Token::Letter && c.is_ascii_digit() => Token::Digit,
        Some(c) if *kind == Token::Suffix && c.is_ascii_digit() => Token::SuffixNo,
        Some(c) => {
            let next = match c {
                b'.' => Token::DigitOrZero,
                b'_' => Token::Suffix,
                b'-' if s.rest.get(1) == Some(&b'r') => {
                    s.advance(1);
                    Token::RevisionNo
                }
                _ => Token::Invalid,
            };
            s.advance(1);
            next
        }
    };
    if next < *kind {
        let allowed = matches!(
            (next, *kind),
            (Token::DigitOrZero, Token::Digit)
                | (Token::Suffix, Token::SuffixNo)
                | (Token::Digit, Token::Letter)
        );
        if !allowed {
            next = Token::Invalid;
        }
    }
    *kind = next;
}

/// Reads the value of a token of kind `kind` and moves `kind` on to the kind of the
/// token after it. An invalid token reads as -1, a value apk then compares like any
/// other.
fn get_token(kind: &mut Token, s: &mut Cursor<'_>) -> i64 {
    if s.rest.is_empty() {
        *kind = Token::End;
        return 0;
    }
    let mut len = 0;
    let mut then = None;
    let value: i64 = match *kind {
        // A component starting with zeros: each zero beyond the first lowers this
        // token by one, and the last zero with the digits after it is then read as
        // a plain number.
        Token::DigitOrZero if s.rest[0] == b'0' => {
            while s.rest.get(len + 1) == Some(&b'0') {
                len += 1;
            }
            then = Some(Token::Digit);
            -(len as i64)
        }
        Token::DigitOrZero | Token::Digit | Token::SuffixNo | Token::RevisionNo => {
            let mut v: i64 = 0;
            while let Some(&c) = s.rest.get(len).filter(|c| c.is_ascii_digit()) {
                // Runs long enough to overflow are rejected below, after the fact.
                v = v.wrapping_mul(10).wrapping_add(i64::from(c - b'0'));
                len += 1;
            }
            if len >= MAX_DIGITS {
                *kind = Token::Invalid;
                return -1;
            }
            v
        }
        Token::Letter => {
            len = 1;
            i64::from(s.rest[0])
        }
        Token::Suffix => {
            // Prefix matches, first hit wins: "_pre" is a pre-release, "_pl" reads
            // as "_p" followed by garbage.
            let pre = PRE_SUFFIXES.iter().position(|suf| s.rest.starts_with(suf));
            let post = POST_SUFFIXES.iter().position(|suf| s.rest.starts_with(suf));
            match (pre, post) {
                (Some(idx), _) => {
                    len = PRE_SUFFIXES[idx].len();
                    idx as i64 - PRE_SUFFIXES.len() as i64
                }
                (None, Some(idx)) => {
                    len = POST_SUFFIXES[idx].len();
                    idx as i64
                }
                (None, None) => {
                    *kind = Token::Invalid;
                    return -1;
                }
            }
        }
        Token::Invalid | Token::End => {
            *kind = Token::Invalid;
            return -1;
        }
    };
    s.advance(len);
    if s.rest.is_empty() {
        *kind = Token::End;
    } else if let Some(then) = then {
        *kind = then;
    } else {
        next_token(kind, s);
    }
    value
}

/// Whether apk-tools 2.x accepts `v` as a version (`apk_version_validate`). Note that
/// apk accepts the empty string.
pub fn is_valid(v: &str) -> bool {
    let mut kind = Token::Digit;
    let mut s = Cursor { rest: v.as_bytes() };
    while kind != Token::End && kind != Token::Invalid {
        get_token(&mut kind, &mut s);
    }
    kind == Token::End
}

/// Orders two Alpine versions as `apk version -t` does.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (mut ak, mut bk) = (Token::Digit, Token::Digit);
    let (mut av, mut bv) = (0i64, 0i64);
    let mut sa = Cursor { rest: a.as_bytes() };
    let mut sb = Cursor { rest: b.as_bytes() };

    while ak == bk && ak != Token::End && ak != Token::Invalid && av == bv {
        av = get_token(&mut ak, &mut sa);
        bv = get_token(&mut bk, &mut sb);
    }
    match av.cmp(&bv) {
        Ordering::Equal => {}
        unequal => return unequal,
    }
    if ak == bk {
        return Ordering::Equal;
    }
    // Equal so far and one side goes on: going on makes it newer, unless what follows
    // is a pre-release suffix (or, since apk reads an unknown suffix as -1, any
    // unknown suffix).
    if ak == Token::Suffix && get_token(&mut Token::Suffix, &mut sa) < 0 {
        return Ordering::Less;
    }
    if bk == Token::Suffix && get_token(&mut Token::Suffix, &mut sb) < 0 {
        return Ordering::Greater;
    }
    // Otherwise the side whose next token comes earlier in a version's grammar has
    // more to it and is newer (`1.0a > 1.0`, `1.0-r1 > 1.0`).
    bk.cmp(&ak)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pairs and the answer apk-tools 2.14's own `apk_version_compare` gives for them
    /// (checked by running it): ordinary versions, then its quirks.
    const CASES: &[(&str, &str, &str)] = &[
        ("1", "<", "2"),
        ("2", "<", "10"),
        ("1.0", "=", "1.0"),
        ("1.0", ">", "1.00"),
        ("1.0", "<", "1.0.0"),
        ("1.0.0", "<", "1.0.1"),
        ("1.9", "<", "1.10"),
        ("1.09", "<", "1.1"),
        ("1.001", "<", "1.01"),
        ("1.01", "<", "1.1"),
        ("1.0", ">", "1.00a"),
        ("0.1", ">", "0.01"),
        ("2.0.05", "<", "2.0.5"),
        ("1.0a", ">", "1.0"),
        ("1.0a", "<", "1.0b"),
        ("1.0z", "<", "1.0.1"),
        ("1.0b", "<", "1.0.1"),
        ("1.0a1", ">", "1.0a"),
        ("1.0a1", "<", "1.0a2"),
        ("1.0_alpha", "<", "1.0_beta"),
        ("1.0_beta", "<", "1.0_pre"),
        ("1.0_pre", "<", "1.0_rc"),
        ("1.0_rc", "<", "1.0"),
        ("1.0", "<", "1.0_cvs"),
        ("1.0_cvs", "<", "1.0_svn"),
        ("1.0_svn", "<", "1.0_git"),
        ("1.0_git", "<", "1.0_hg"),
        ("1.0_hg", "<", "1.0_p"),
        ("1.0_rc1", "<", "1.0_rc2"),
        ("1.0_rc9", "<", "1.0_rc10"),
        ("1.0_rc", "<", "1.0_rc0"),
        ("1.0_rc0", "<", "1.0_rc1"),
        ("1.0_alpha10", "<", "1.0_beta1"),
        ("1.0_rc1", "<", "1.0"),
        ("1.0_p1", ">", "1.0"),
        ("1.0_p1", "<", "1.0_p2"),
        ("1.0_p1", "<", "1.0_p1-r1"),
        ("1.0_alpha_p1", ">", "1.0_alpha"),
        ("1.0_alpha_p1", ">", "1.0_alpha1"),
        ("1.0_pre1_rc1", "<", "1.0_pre1"),
        ("1.0_git20240101", ">", "1.0_git20231231"),
        ("1.0_git20240101", "<", "1.0.1"),
        ("1.0a_p1", ">", "1.0a"),
        ("1.0a_rc1", "<", "1.0a"),
        ("1.0a_rc1", ">", "1.0"),
        ("1.0", "<", "1.0-r0"),
        ("1.0-r0", "<", "1.0-r1"),
        ("1.0-r1", "<", "1.0-r2"),
        ("1.0-r9", "<", "1.0-r10"),
        ("1.0_rc1-r5", "<", "1.0-r0"),
        ("1.0-r5", "<", "1.0.1-r0"),
        ("1.0-r5", "<", "1.0a-r0"),
        ("1.0-r5", "<", "1.0_p1-r0"),
        ("3.0.15-r0", "<", "3.1.4-r5"),
        ("3.1.4-r4", "<", "3.1.4-r5"),
        ("1.36.1-r29", "<", "1.36.1-r30"),
        ("1.2.4_git20230717-r4", ">", "1.2.4-r4"),
        ("8.5.0-r0", "<", "8.11.0-r0"),
        ("2.40.1-r0", "<", "2.40.1-r1"),
        ("0.9.8zh-r0", "=", "0.9.8zg-r0"),
        ("1.1.1w-r1", ">", "1.1.1v-r0"),
        ("1.1.1w-r1", "<", "3.0.0-r0"),
        ("9.4_p1-r3", ">", "9.4-r3"),
        ("9.4_p1-r3", "<", "9.5-r0"),
        ("6.4_p20231125-r0", ">", "6.4_p20230506-r0"),
        ("1.2.13-r0", "<", "1.2.13-r1"),
        ("1.0_foo", "=", "1.0_bar"),
        ("1.0_foo", "<", "1.0"),
        ("1.0_foo", ">", "1.0_alpha"),
        ("1.0-foo", "=", "1.0-bar"),
        ("1.0-foo", ">", "1.0"),
        ("1.0bc", ">", "1.0"),
        ("1.0bc", ">", "1.0b"),
        ("1.0+1", ">", "1.0"),
        ("1.0~1", ">", "1.0"),
        ("1.123456789012345678", "<", "1.2"),
        ("123456789012345678901234567890", "<", "1"),
        ("1.12345678901234567", "<", "1.12345678901234568"),
        ("1..1", "<", "1.1"),
        (".1", "<", "1"),
        ("a", "<", "b"),
        ("", "<", "1"),
        ("", "=", ""),
        ("1.0-r", ">", "1.0"),
        ("1.0-r", "=", "1.0-r0"),
    ];

    #[test]
    fn agrees_with_apk_tools() {
        let mut failures = Vec::new();
        for &(a, op, b) in CASES {
            let expected = match op {
                "<" => Ordering::Less,
                "=" => Ordering::Equal,
                ">" => Ordering::Greater,
                _ => panic!("unknown op {op:?}"),
            };
            if compare(a, b) != expected || compare(b, a) != expected.reverse() {
                failures.push(format!("{a:?} {op} {b:?}"));
            }
        }
        assert!(failures.is_empty(), "disagreements: {failures:#?}");
    }

    #[test]
    fn malformed_versions_behave_as_in_apk() {
        // Agree until both turn malformed: equal.
        assert_eq!(compare("1.0_foo", "1.0_bar"), Ordering::Equal);
        assert_eq!(compare("1.0-foo", "1.0-bar"), Ordering::Equal);
        // An unknown suffix where the other side ends reads like a pre-release.
        assert_eq!(compare("1.0_foo", "1.0"), Ordering::Less);
        // Too many digits: the token is invalid and reads as -1.
        assert_eq!(compare("1.123456789012345678", "1.2"), Ordering::Less);
        assert_eq!(
            compare("123456789012345678901234567890", "1"),
            Ordering::Less
        );
    }

    #[test]
    fn validity_as_apk_tools_judges_it() {
        // apk 2.x is lenient: all of these pass `apk_version_validate`.
        for v in [
            "1",
            "1.0",
            "1.0a",
            "1.0.0a1",
            "1.0_rc1_p2-r3",
            "0.1_git20240101_pre1",
            "1.00a",
            "1.12345678901234567",
            "a",
            ".1",
            "1..1",
            "1.0_",
            "1.0-r",
            "",
        ] {
            assert!(is_valid(v), "{v:?} should be valid");
        }
        for v in [
            "1.0bc",
            "0.9.8zh-r0",
            "1.0_foo",
            "1.0-foo",
            "1.0-",
            "1.0-rc1",
            "1.0-r1.1",
            "1.0-r1_p1",
            "1.0a.1",
            "1.0 ",
            "1.0+1",
            "1.0~1",
            "1.123456789012345678",
        ] {
            assert!(!is_valid(v), "{v:?} should be invalid");
        }
    }
}
