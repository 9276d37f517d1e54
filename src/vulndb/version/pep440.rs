//! Python package versions ordered the way PEP 440 orders them, as implemented by
//! `packaging.version.Version` (packaging 22 and later, the library pip uses), because
//! OSV's PyPI ranges are written against that ordering.
//!
//! The parser mirrors packaging's `VERSION_PATTERN` rather than the prose of PEP 440:
//! it takes exactly the spellings packaging takes (a leading `v`, `alpha`/`beta`/`c`/
//! `pre`/`preview` for pre-releases, `-N`, `rev` and `r` for post-releases, any of
//! `.`, `_`, `-` or nothing between segments, upper or lower case, surrounding
//! whitespace) and reads them to the same normal form, so `1.0-RC.1` and `1.0rc1` are
//! one version.
//!
//! packaging refuses anything else with `InvalidVersion`, leaving no order to follow.
//! OSV's PyPI ranges hold only valid versions, but an installed package's metadata can
//! hold anything, and a scanner must still order it somehow: `compare` puts every
//! invalid version after every valid one and orders invalid versions among themselves
//! as plain strings (byte order). A caller that would rather skip such versions can ask
//! `is_valid` first. (packaging before 22 had `LegacyVersion`, which sorted invalid
//! versions *before* all valid ones; that class is gone and is not imitated.)
//!
//! One deliberate difference: Python refuses to convert digit runs longer than 4300
//! digits to `int` and raises `ValueError`; numbers here are unbounded.

use std::cmp::Ordering;
use std::fmt;

/// A non-negative integer of any size, kept as its decimal digits without leading
/// zeros (zero is the empty string), so that ordering needs no arithmetic and cannot
/// overflow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Number(String);

impl Number {
    fn from_digits(digits: &[u8]) -> Number {
        let zeros = digits.iter().take_while(|&&c| c == b'0').count();
        Number(digits[zeros..].iter().map(|&c| char::from(c)).collect())
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }
}

impl Ord for Number {
    fn cmp(&self, other: &Self) -> Ordering {
        // Without leading zeros, a longer number is a larger one.
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            f.write_str("0")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// Shared by versions that lack a pre, post or dev number, which packaging's key then
/// fills with 0.
static ZERO: Number = Number(String::new());

/// Pre-release kinds after packaging normalises their spellings, in their order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Pre {
    Alpha,
    Beta,
    Rc,
}

/// One dot-separated part of a local version label (`+ubuntu.1`). Declared strings
/// first: PEP 440 sorts a string part before any number, strings by their (lower-case)
/// text and numbers by value, which is exactly the derived order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum LocalPart {
    Str(String),
    Int(Number),
}

/// A version packaging accepts, in its normal form. Equality is PEP 440's, not
/// textual: `1.0 == 1.0.0 == v1.0`.
#[derive(Debug, Clone)]
pub struct Version {
    epoch: Number,
    /// As written, trailing zeros included (they show in `Display` but not in order).
    release: Vec<Number>,
    pre: Option<(Pre, Number)>,
    post: Option<Number>,
    dev: Option<Number>,
    /// Empty when there is no local label (a label always has at least one part).
    local: Vec<LocalPart>,
}

impl Version {
    /// The release without trailing zeros, which PEP 440 says do not count.
    fn significant_release(&self) -> &[Number] {
        let len = self
            .release
            .iter()
            .rposition(|n| !n.is_zero())
            .map_or(0, |i| i + 1);
        &self.release[..len]
    }

    /// packaging's `_cmpkey` suffix: where pre-, post- and dev-releases fall around
    /// the release itself. A dev release with neither pre nor post part sorts before
    /// all pre-releases of its release (`1.0.dev1 < 1.0a1`), while one attached to a
    /// pre or post part sorts just before that part (`1.0a1.dev1 < 1.0a1`).
    fn suffix_key(&self) -> (i8, &Number, bool, &Number, bool, &Number) {
        let (pre_rank, pre_n) = match (&self.pre, &self.post, &self.dev) {
            (Some((kind, n)), _, _) => (*kind as i8, n),
            (None, None, Some(_)) => (-1, &ZERO),
            (None, _, _) => (3, &ZERO),
        };
        (
            pre_rank,
            pre_n,
            self.post.is_some(),
            self.post.as_ref().unwrap_or(&ZERO),
            self.dev.is_none(),
            self.dev.as_ref().unwrap_or(&ZERO),
        )
    }

    /// Whether this is a pre-release or dev release, as packaging's `is_prerelease`.
    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some() || self.dev.is_some()
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| self.significant_release().cmp(other.significant_release()))
            .then_with(|| self.suffix_key().cmp(&other.suffix_key()))
            // No label sorts before any label; labels compare part by part, and a
            // label that is a prefix of another sorts first.
            .then_with(|| self.local.cmp(&other.local))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

/// The normal form, as `str(packaging.version.Version(..))` prints it.
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.epoch.is_zero() {
            write!(f, "{}!", self.epoch)?;
        }
        for (i, n) in self.release.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{n}")?;
        }
        if let Some((kind, n)) = &self.pre {
            let letter = match kind {
                Pre::Alpha => "a",
                Pre::Beta => "b",
                Pre::Rc => "rc",
            };
            write!(f, "{letter}{n}")?;
        }
        if let Some(n) = &self.post {
            write!(f, ".post{n}")?;
        }
        if let Some(n) = &self.dev {
            write!(f, ".dev{n}")?;
        }
        for (i, part) in self.local.iter().enumerate() {
            f.write_str(if i == 0 { "+" } else { "." })?;
            match part {
                LocalPart::Str(s) => f.write_str(s)?,
                LocalPart::Int(n) => write!(f, "{n}")?,
            }
        }
        Ok(())
    }
}

/// Spellings of each pre-release kind, in the order packaging's pattern tries them:
/// the first that matches wins, so `alpha` must come before `a` and `preview` before
/// `pre`.
const PRE_WORDS: [(&[u8], Pre); 8] = [
    (b"alpha", Pre::Alpha),
    (b"a", Pre::Alpha),
    (b"beta", Pre::Beta),
    (b"b", Pre::Beta),
    (b"preview", Pre::Rc),
    (b"pre", Pre::Rc),
    (b"c", Pre::Rc),
    (b"rc", Pre::Rc),
];

const POST_WORDS: [(&[u8], ()); 3] = [(b"post", ()), (b"rev", ()), (b"r", ())];

const DEV_WORDS: [(&[u8], ()); 1] = [(b"dev", ())];

/// What Python's `re` counts as `\s` in a str pattern (`str.isspace`): Rust's
/// `char::is_whitespace` plus the ASCII information separators U+001C..U+001F.
fn is_python_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\x1c'..='\x1f'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// A cursor over the version text. Every optional part of packaging's pattern is
/// possessive (it never gives back what it matched), so reading each part greedily
/// and rewinding only when a part fails as a whole accepts the same strings and reads
/// them the same way.
struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn digits(&mut self) -> Option<Number> {
        let rest = self.s.get(self.pos..).unwrap_or_default();
        let len = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        self.pos += len;
        Some(Number::from_digits(&rest[..len]))
    }

    /// An optional `.`, `_` or `-`.
    fn separator(&mut self) {
        if matches!(self.peek(), Some(b'.' | b'_' | b'-')) {
            self.pos += 1;
        }
    }

    /// The first of `words` found at the cursor, ignoring ASCII case.
    fn word<T: Copy>(&mut self, words: &[(&[u8], T)]) -> Option<T> {
        let rest = self.s.get(self.pos..).unwrap_or_default();
        let &(word, value) = words.iter().find(|(word, _)| {
            rest.get(..word.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(word))
        })?;
        self.pos += word.len();
        Some(value)
    }

    /// `[._-]? word [._-]? digits?`: the shape of the pre, post and dev parts. The
    /// separator after the word is taken even when no number follows (`1.0a.` is
    /// valid, as `1.0a0`), as packaging's possessive pattern takes it.
    fn lettered<T: Copy>(&mut self, words: &[(&[u8], T)]) -> Option<(T, Number)> {
        let start = self.pos;
        self.separator();
        let Some(value) = self.word(words) else {
            self.pos = start;
            return None;
        };
        self.separator();
        Some((value, self.digits().unwrap_or_default()))
    }

    fn epoch(&mut self) -> Number {
        let start = self.pos;
        if let Some(n) = self.digits() {
            if self.peek() == Some(b'!') {
                self.pos += 1;
                return n;
            }
        }
        self.pos = start;
        Number::default()
    }

    fn release(&mut self) -> Option<Vec<Number>> {
        let mut release = vec![self.digits()?];
        while self.peek() == Some(b'.') && self.s.get(self.pos + 1).is_some_and(u8::is_ascii_digit)
        {
            self.pos += 1;
            release.extend(self.digits());
        }
        Some(release)
    }

    fn post(&mut self) -> Option<Number> {
        // `1.0-1` is an implicit post-release; tried before the lettered forms, as in
        // packaging's pattern.
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
            if let Some(n) = self.digits() {
                return Some(n);
            }
            self.pos = start;
        }
        self.lettered(&POST_WORDS).map(|((), n)| n)
    }

    fn local(&mut self) -> Vec<LocalPart> {
        let start = self.pos;
        if self.peek() != Some(b'+') {
            return Vec::new();
        }
        self.pos += 1;
        let mut parts = Vec::new();
        loop {
            let rest = self.s.get(self.pos..).unwrap_or_default();
            let len = rest
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric())
                .count();
            if len == 0 {
                // A label cannot be empty or end in a separator; rewinding leaves the
                // text unconsumed, so the whole version is invalid.
                if parts.is_empty() {
                    self.pos = start;
                } else {
                    self.pos -= 1;
                }
                break;
            }
            let part = &rest[..len];
            parts.push(if part.iter().all(u8::is_ascii_digit) {
                LocalPart::Int(Number::from_digits(part))
            } else {
                LocalPart::Str(
                    part.to_ascii_lowercase()
                        .into_iter()
                        .map(char::from)
                        .collect(),
                )
            });
            self.pos += len;
            if !matches!(self.peek(), Some(b'.' | b'_' | b'-')) {
                break;
            }
            self.pos += 1;
        }
        parts
    }
}

/// Parses `v` as `packaging.version.Version(v)` would, or `None` where it would raise
/// `InvalidVersion`.
pub fn parse(v: &str) -> Option<Version> {
    let mut p = Parser {
        s: v.trim_matches(is_python_space).as_bytes(),
        pos: 0,
    };
    if matches!(p.peek(), Some(b'v' | b'V')) {
        p.pos += 1;
    }
    let epoch = p.epoch();
    let release = p.release()?;
    let pre = p.lettered(&PRE_WORDS);
    let post = p.post();
    let dev = p.lettered(&DEV_WORDS).map(|((), n)| n);
    let local = p.local();
    (p.pos == p.s.len()).then_some(Version {
        epoch,
        release,
        pre,
        post,
        dev,
        local,
    })
}

/// Whether packaging accepts `v` as a version.
pub fn is_valid(v: &str) -> bool {
    parse(v).is_some()
}

/// Orders two versions as packaging does; invalid versions sort after all valid ones,
/// and among themselves as plain strings (see the module documentation).
pub fn compare(a: &str, b: &str) -> Ordering {
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => a.cmp(&b),
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

    /// packaging's own test suite lists these in ascending order (tests/test_version.py,
    /// `VERSIONS`), once without and once with an epoch.
    const SORTED: &[&str] = &[
        "1.0.dev456",
        "1.0a1",
        "1.0a2.dev456",
        "1.0a12.dev456",
        "1.0a12",
        "1.0b1.dev456",
        "1.0b2",
        "1.0b2.post345.dev456",
        "1.0b2.post345",
        "1.0b2-346",
        "1.0c1.dev456",
        "1.0c1",
        "1.0rc2",
        "1.0c3",
        "1.0",
        "1.0.post456.dev34",
        "1.0.post456",
        "1.1.dev1",
        "1.2+123abc",
        "1.2+123abc456",
        "1.2+abc",
        "1.2+abc123",
        "1.2+abc123def",
        "1.2+1234.abc",
        "1.2+123456",
        "1.2.r32+123456",
        "1.2.rev33+123456",
    ];

    #[test]
    fn packaging_test_suite_order() {
        let with_epoch: Vec<String> = SORTED.iter().map(|v| format!("1!{v}")).collect();
        let all: Vec<&str> = SORTED
            .iter()
            .copied()
            .chain(with_epoch.iter().map(String::as_str))
            .collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                check(a, Less, b);
            }
            check(a, Equal, a);
        }
    }

    #[test]
    fn spellings_normalise() {
        for (written, normal) in [
            ("1.0", "1.0"),
            ("v1.0", "1.0"),
            ("V1.0", "1.0"),
            ("  1.0\n", "1.0"),
            ("\x1c1.0\u{3000}", "1.0"),
            ("0!1.0", "1.0"),
            ("01!01.002", "1!1.2"),
            ("1.0alpha1", "1.0a1"),
            ("1.0-ALPHA.1", "1.0a1"),
            ("1.0_beta_2", "1.0b2"),
            ("1.0c1", "1.0rc1"),
            ("1.0pre1", "1.0rc1"),
            ("1.0preview1", "1.0rc1"),
            ("1.0-rc", "1.0rc0"),
            ("1.0a.", "1.0a0"),
            ("1.0a-", "1.0a0"),
            ("1.0-1", "1.0.post1"),
            ("1.0-0", "1.0.post0"),
            ("1.0post", "1.0.post0"),
            ("1.0-r", "1.0.post0"),
            ("1.0rev2", "1.0.post2"),
            ("1.0_post_3", "1.0.post3"),
            ("1.0-post-1", "1.0.post1"),
            ("1.0.post.", "1.0.post0"),
            ("1.0a1-1", "1.0a1.post1"),
            ("1.0-dev", "1.0.dev0"),
            ("1.0DEV2", "1.0.dev2"),
            ("1.0-1.dev1", "1.0.post1.dev1"),
            ("1.0rc1.post1-dev1", "1.0rc1.post1.dev1"),
            ("1.0+ABC-1_02", "1.0+abc.1.2"),
            ("1.0+0001", "1.0+1"),
        ] {
            let parsed = parse(written).unwrap_or_else(|| panic!("{written:?} should parse"));
            assert_eq!(parsed.to_string(), normal, "{written:?}");
        }
    }

    #[test]
    fn invalid_versions() {
        for v in [
            "",
            " ",
            "v",
            "1!",
            "!1",
            "1.",
            ".1",
            "1..0",
            "1.0-",
            "1.0_1",
            "1.0.1_",
            "1.0-1-1",
            "1.0a1b1",
            "1.0alph",
            "1.0prev",
            "1.0re",
            "1.0+",
            "1.0+a..b",
            "1.0+a.",
            "1.0+a+b",
            "1.0+a b",
            "1.0.dev1.post1",
            "1.0.post1a1",
            "vv1.0",
            "v 1.0",
            "1.0 a1",
            "\u{212a}1.0",
            "1.0\u{212a}",
            "1.0b\u{0301}",
            "٣.0",
            "1.0\u{180e}",
            "1.0 \u{200b}",
            "french toast",
        ] {
            assert!(parse(v).is_none(), "{v:?} should be invalid");
            assert!(!is_valid(v), "{v:?}");
        }
    }

    #[test]
    fn release_ordering() {
        check("1.0", Equal, "1.0.0");
        check("1", Equal, "1.0.0.0");
        check("0", Equal, "0.0");
        check("1.0", Equal, "v1.0");
        check("1.01", Equal, "1.1");
        check("1.9", Less, "1.10");
        check("1.0.1", Greater, "1.0");
        check("1.0.0.1", Greater, "1.0");
        check("2.0", Greater, "1.99999");
        check("1!0.1", Greater, "99.0");
        check("0!1.0", Equal, "1.0");
        check(
            "1.123456789012345678901234567890",
            Less,
            "1.123456789012345678901234567891",
        );
    }

    #[test]
    fn suffix_ordering() {
        check("1.0.dev1", Less, "1.0a1");
        check("1.0a1.dev1", Less, "1.0a1");
        check("1.0a1", Less, "1.0a1.post1.dev1");
        check("1.0a1.post1.dev1", Less, "1.0a1.post1");
        check("1.0a2", Greater, "1.0a1.post9");
        check("1.0a", Equal, "1.0a0");
        check("1.0alpha", Equal, "1.0a0");
        check("1.0b0", Greater, "1.0a99");
        check("1.0c1", Equal, "1.0rc1");
        check("1.0rc1", Less, "1.0");
        check("1.0", Less, "1.0.post0.dev0");
        check("1.0.post0.dev0", Less, "1.0.post0");
        check("1.0.post0", Equal, "1.0-0");
        check("1.0-1", Equal, "1.0.post1");
        check("1.0.post1", Less, "1.0.1.dev0");
        check("1.0.dev0", Less, "1.0.dev1");
        check("1.0.dev", Equal, "1.0.dev0");
        check("1.0.0.dev1", Equal, "1.0.dev1");
    }

    #[test]
    fn local_ordering() {
        check("1.0", Less, "1.0+0");
        check("1.0+0", Less, "1.0.post0");
        check("1.0+abc", Less, "1.0+0");
        check("1.0+abc", Less, "1.0+abd");
        check("1.0+abc", Less, "1.0+abc.0");
        check("1.0+1", Equal, "1.0+01");
        check("1.0+ABC", Equal, "1.0+abc");
        check("1.0+a.b", Equal, "1.0+a-b");
        check("1.0+a_b", Equal, "1.0+a.b");
        check("1.0+9", Less, "1.0+10");
        check("1.0+z", Less, "1.0+1");
        check("1.0+1a", Less, "1.0+1");
        check("1.0.0+1", Equal, "1.0+1");
        check("1.0rc1+local", Less, "1.0");
    }

    #[test]
    fn invalid_sorts_after_valid_then_as_text() {
        check("french toast", Greater, "99999!9999");
        check("1.0-", Greater, "1.0");
        check("1.0_1", Less, "1.0_2");
        check("abc", Equal, "abc");
        check("ABC", Less, "abc");
    }

    #[test]
    fn prerelease_flag() {
        let flag = |v: &str| parse(v).map(|v| v.is_prerelease());
        assert_eq!(flag("1.0"), Some(false));
        assert_eq!(flag("1.0.post1"), Some(false));
        assert_eq!(flag("1.0a1"), Some(true));
        assert_eq!(flag("1.0.dev1"), Some(true));
        assert_eq!(flag("1.0.post1.dev1"), Some(true));
        assert_eq!(flag("1.0+local"), Some(false));
    }
}
