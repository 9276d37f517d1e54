//! Maven versions ordered the way Maven 3.8 orders them (`ComparableVersion` in
//! maven-artifact 3.8.7, the ordering OSV's Maven ranges follow), because "fixed in
//! 2.15.0" only means something under the resolver's own ordering.
//!
//! Maven accepts any string as a version. It lower-cases it and reads it as a tree:
//! numbers and qualifiers split at `.`, `-` and every change between digits and
//! non-digits, where a `-` (and a change from digits to letters, and a change back)
//! opens a nested list. A nested list, like a qualifier, sorts below a number in the
//! same place, which is why `1-1 < 1.1`. Trailing "null" items (0, the release
//! qualifiers `""`/`ga`/`final`/`release`, empty lists) are dropped, so
//! `1.0.0 == 1 == 1-ga`. Known qualifiers sort `alpha < beta < milestone < rc = cr <
//! snapshot < release < sp`, with `a1`, `b1`, `m1` short for `alpha-1` and so on; any
//! other qualifier sorts after `sp`, alphabetically.
//!
//! This module builds the same tree and compares it the same way, oddities included
//! (`1-foo > 1-sp > 1`, `1.0.foo == 1-foo`). Two differences, both outside what
//! real artifacts use: Java's `Character.isDigit` also takes non-ASCII decimal digits
//! (`١`), which are letters here; and non-ASCII letters are lower-cased with Rust's
//! Unicode tables rather than Java's.
//!
//! The rules have moved between Maven releases: 3.8.7 already has MNG-7644 (a
//! qualifier after a `.` opens a list, so `1.0.0.RC1 < 1.0.0-RC2` and `2.0.a ==
//! 2.0.0.a`), while Maven 4 adds MNG-7559 (unknown qualifiers sort below the release
//! there, so `2.3-pfd < 2.3`; above it here). This module follows 3.8.7, the version
//! whose `ComparableVersion` the reference test runs.

use std::cmp::Ordering;
use std::fmt;

/// Known qualifiers in their order; the empty string is the release itself.
const QUALIFIERS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];

/// Where the release (no qualifier) stands among `QUALIFIERS`.
const RELEASE: usize = 5;

/// One item of a version's tree.
#[derive(Debug, Clone)]
enum Item {
    /// Decimal digits without leading zeros (zero is the empty string).
    Number(String),
    /// A lower-cased qualifier after aliasing (`cr` → `rc`, `ga` → `""`, ...).
    Qualifier(String),
    List(Vec<Item>),
}

/// A qualifier's rank, standing in for Java's `comparableQualifier`, which maps a
/// known qualifier to its index as a one-digit string and any other `q` to `"7-q"`,
/// then compares those strings.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rank<'a> {
    Known(usize),
    /// Java compares strings by UTF-16 code unit, which differs from Rust's
    /// (code point) order above U+FFFF.
    Unknown(Utf16<'a>),
}

#[derive(Debug, PartialEq, Eq)]
struct Utf16<'a>(&'a str);

impl Ord for Utf16<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.encode_utf16().cmp(other.0.encode_utf16())
    }
}

impl PartialOrd for Utf16<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn rank(qualifier: &str) -> Rank<'_> {
    match QUALIFIERS.iter().position(|&q| q == qualifier) {
        Some(i) => Rank::Known(i),
        None => Rank::Unknown(Utf16(qualifier)),
    }
}

fn compare_numbers(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Item {
    fn number(digits: &str) -> Item {
        Item::Number(digits.trim_start_matches('0').to_owned())
    }

    /// `followed_by_digit` is Maven's cue that a lone `a`, `b` or `m` abbreviates a
    /// qualifier (`1a1` is `1-alpha-1`, while `1a` is the unknown qualifier `a`).
    fn qualifier(text: &str, followed_by_digit: bool) -> Item {
        let text = match text {
            "a" if followed_by_digit => "alpha",
            "b" if followed_by_digit => "beta",
            "m" if followed_by_digit => "milestone",
            "ga" | "final" | "release" => "",
            "cr" => "rc",
            other => other,
        };
        Item::Qualifier(text.to_owned())
    }

    /// Whether Maven drops this item when it ends a list.
    fn is_null(&self) -> bool {
        match self {
            Item::Number(n) => n.is_empty(),
            Item::Qualifier(q) => rank(q) == Rank::Known(RELEASE),
            Item::List(items) => items.is_empty(),
        }
    }

    /// Compares with an absent item, which is how a shorter list is padded.
    fn compare_to_nothing(&self) -> Ordering {
        match self {
            Item::Number(n) if n.is_empty() => Ordering::Equal,
            Item::Number(_) => Ordering::Greater,
            // Below the release for pre-release qualifiers, above it for `sp` and
            // unknown ones.
            Item::Qualifier(q) => rank(q).cmp(&Rank::Known(RELEASE)),
            Item::List(items) => items
                .iter()
                .map(Item::compare_to_nothing)
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal),
        }
    }

    fn compare(&self, other: &Item) -> Ordering {
        use Item::{List, Number, Qualifier};
        match (self, other) {
            (Number(a), Number(b)) => compare_numbers(a, b),
            (Number(_), _) => Ordering::Greater,
            (Qualifier(_), Number(_) | List(_)) => Ordering::Less,
            (Qualifier(a), Qualifier(b)) => rank(a).cmp(&rank(b)),
            (List(_), Number(_)) => Ordering::Less,
            (List(_), Qualifier(_)) => Ordering::Greater,
            (List(a), List(b)) => compare_lists(a, b),
        }
    }
}

fn compare_lists(a: &[Item], b: &[Item]) -> Ordering {
    for i in 0..a.len().max(b.len()) {
        let order = match (a.get(i), b.get(i)) {
            (Some(x), Some(y)) => x.compare(y),
            (Some(x), None) => x.compare_to_nothing(),
            (None, Some(y)) => y.compare_to_nothing().reverse(),
            (None, None) => Ordering::Equal,
        };
        if order.is_ne() {
            return order;
        }
    }
    Ordering::Equal
}

/// Maven's `ListItem.normalize`: drops null items from the end, looking past (but
/// keeping) non-empty nested lists, and stopping at the first other non-null item.
fn normalize(items: &mut Vec<Item>) {
    let mut i = items.len();
    while i > 0 {
        i -= 1;
        if items[i].is_null() {
            items.remove(i);
        } else if !matches!(items[i], Item::List(_)) {
            break;
        }
    }
}

/// A parsed version. `Eq` is Maven's `compareTo() == 0`.
#[derive(Debug, Clone)]
pub struct Version {
    items: Vec<Item>,
}

impl Version {
    /// Reads `v` into Maven's tree (`ComparableVersion.parseVersion`). Never fails.
    pub fn parse(v: &str) -> Version {
        let v = v.to_lowercase();
        // Lists are only ever opened inside the newest list and never left, so the
        // tree is a chain: `stack[k + 1]` becomes the last item of `stack[k]`.
        let mut stack: Vec<Vec<Item>> = vec![Vec::new()];
        let mut is_digit = false;
        let mut start = 0;

        fn open(stack: &mut Vec<Vec<Item>>) {
            stack.push(Vec::new());
        }
        fn add(stack: &mut [Vec<Item>], item: Item) {
            if let Some(list) = stack.last_mut() {
                list.push(item);
            }
        }
        fn current_is_empty(stack: &[Vec<Item>]) -> bool {
            stack.last().is_none_or(Vec::is_empty)
        }
        let parse_item = |digits: bool, text: &str| {
            if digits {
                Item::number(text)
            } else {
                Item::qualifier(text, false)
            }
        };

        for (i, c) in v.char_indices() {
            match c {
                '.' | '-' => {
                    // An empty component (`1..2`, `-1`) is a 0.
                    let item = if i == start {
                        Item::Number(String::new())
                    } else {
                        parse_item(is_digit, &v[start..i])
                    };
                    add(&mut stack, item);
                    start = i + 1;
                    if c == '-' {
                        open(&mut stack);
                    }
                }
                '0'..='9' => {
                    if !is_digit && i > start {
                        // Letters then digits: the letters become a qualifier in a
                        // list of their own (unless the current list is still
                        // empty), and the digits open another list inside it.
                        if !current_is_empty(&stack) {
                            open(&mut stack);
                        }
                        add(&mut stack, Item::qualifier(&v[start..i], true));
                        start = i;
                        open(&mut stack);
                    }
                    is_digit = true;
                }
                _ => {
                    if is_digit && i > start {
                        add(&mut stack, Item::number(&v[start..i]));
                        start = i;
                        open(&mut stack);
                    }
                    is_digit = false;
                }
            }
        }
        if v.len() > start {
            // A trailing qualifier after items in the same list goes into a list of
            // its own, so `1.0.foo` reads as `1.0-foo`.
            if !is_digit && !current_is_empty(&stack) {
                open(&mut stack);
            }
            add(&mut stack, parse_item(is_digit, &v[start..]));
        }

        // Innermost first, as Maven normalises its stack, so that an inner list that
        // ends up empty is then dropped from its parent.
        let mut inner: Option<Vec<Item>> = None;
        while let Some(mut list) = stack.pop() {
            if let Some(child) = inner.take() {
                list.push(Item::List(child));
            }
            normalize(&mut list);
            inner = Some(list);
        }
        Version {
            items: inner.unwrap_or_default(),
        }
    }

    /// Maven's `getCanonical()`: the normalised tree written out, `.` before numbers
    /// and qualifiers and `-` before nested lists.
    pub fn canonical(&self) -> String {
        self.to_string()
    }
}

/// Java's `ListItem.toString`: a separator goes before an item only once the text so
/// far is non-empty, so a leading release qualifier (`""`) leaves no trace at all.
fn canonical(items: &[Item]) -> String {
    let mut text = String::new();
    for item in items {
        if !text.is_empty() {
            text.push(if matches!(item, Item::List(_)) {
                '-'
            } else {
                '.'
            });
        }
        match item {
            Item::Number(n) if n.is_empty() => text.push('0'),
            Item::Number(n) | Item::Qualifier(n) => text.push_str(n),
            Item::List(inner) => text.push_str(&canonical(inner)),
        }
    }
    text
}

/// The canonical form, as `getCanonical()` prints it.
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&canonical(&self.items))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_lists(&self.items, &other.items)
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

/// Orders two versions as Maven's `ComparableVersion.compareTo` does. Every string is
/// a Maven version, so there is no invalid case.
pub fn compare(a: &str, b: &str) -> Ordering {
    Version::parse(a).cmp(&Version::parse(b))
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

    fn check_equal(versions: &[&str]) {
        for a in versions {
            for b in versions {
                check(a, Equal, b);
            }
        }
    }

    /// maven-artifact's ComparableVersionTest (`VERSIONS_QUALIFIER`), ascending.
    #[test]
    fn maven_test_suite_qualifier_order() {
        check_ascending(&[
            "1-alpha2snapshot",
            "1-alpha2",
            "1-alpha-123",
            "1-beta-2",
            "1-beta123",
            "1-m2",
            "1-m11",
            "1-rc",
            "1-cr2",
            "1-rc123",
            "1-SNAPSHOT",
            "1",
            "1-sp",
            "1-sp2",
            "1-sp123",
            "1-abc",
            "1-def",
            "1-pom-1",
            "1-1-snapshot",
            "1-1",
            "1-2",
            "1-123",
        ]);
    }

    /// maven-artifact's long-standing ComparableVersionTest list (`VERSIONS_NUMBER`),
    /// ascending, as 3.8 orders it: a trailing `.a` there opens a list of its own, so
    /// `2.0.a` reads as `2-a` and moves before `2-1`, and `2.0.0.a` equals it.
    #[test]
    fn maven_test_suite_number_order() {
        check_ascending(&[
            "2.0", "2.0.a", "2-1", "2.0.2", "2.0.123", "2.1.0", "2.1-a", "2.1b", "2.1-c", "2.1-1",
            "2.1.0.1", "2.2", "2.123", "11.a2", "11.a11", "11.b2", "11.b11", "11.m2", "11.m11",
            "11", "11.a", "11b", "11c", "11m",
        ]);
        check("2.0.a", Equal, "2.0.0.a");
    }

    /// In the spirit of maven-artifact's ComparableVersionTest (`testVersionsEqual`).
    #[test]
    fn maven_test_suite_equalities() {
        check_equal(&["1", "1.0", "1.0.0", "1.0.0.0", "1-0", "1.0-0", "1.0.0-0"]);
        check_equal(&["1a", "1-a", "1.0-a", "1.0.0-a", "1.0a", "1.0.a"]);
        check_equal(&["1x", "1-x", "1.0-x", "1.0.0-x"]);
        check_equal(&[
            "1ga", "1-ga", "1.0-ga", "1.0ga", "1GA", "1-GA", "1.0-GA", "1",
        ]);
        check_equal(&[
            "1final",
            "1-final",
            "1.0final",
            "1release",
            "1-release",
            "1",
        ]);
        check_equal(&["1cr", "1-cr", "1rc", "1-rc", "1.0-RC", "1CR"]);
        check_equal(&["1a1", "1-a1", "1-alpha-1", "1alpha1", "1ALPHA1"]);
        check_equal(&["1b2", "1-b2", "1-beta-2", "1beta2"]);
        check_equal(&["1m3", "1-m3", "1-milestone-3", "1milestone3", "1MILESTONE3"]);
        check_equal(&["1.0.foo", "1-foo", "1.0-foo", "1.foo", "1foo"]);
        check_equal(&["1.0.0.1", "1.0.0.01", "1.00.000.001"]);
    }

    #[test]
    fn qualifier_order() {
        check_ascending(&[
            "1-alpha",
            "1-beta",
            "1-milestone",
            "1-rc",
            "1-snapshot",
            "1",
            "1-sp",
            "1-a",
            "1-foo",
            "1-zzz",
        ]);
        // A lone `a` is only `alpha` when a digit follows.
        check("1-a", Greater, "1");
        check("1-a1", Less, "1");
        check("1-a.1", Greater, "1");
    }

    #[test]
    fn separators_and_transitions() {
        // A hyphen is less important than a dot.
        check("1-1", Less, "1.1");
        check("1-1", Greater, "1");
        check("1-1", Greater, "1-sp");
        check("1.1", Greater, "1-sp");
        check("1..1", Equal, "1.0.1");
        check("1.-1", Equal, "1.0-1");
        check("-1", Less, "0.1");
        // The dropped `ga` leaves its nested list behind: `[1, [[1]]]` against
        // `[1, [1]]`, and a list sorts below a number.
        check("1-ga-1", Less, "1-1");
        check("1-0-a", Greater, "1-a");
        check("1-a-1", Greater, "1-alpha-1");
        check("1.2.3.RELEASE", Equal, "1.2.3");
        check("5.3.0.RELEASE", Less, "5.3.1");
        check("2.15.0", Greater, "2.15.0-rc2");
        check("2.15.0-rc2", Greater, "2.15.0-rc1");
        check("2.15.0-rc1", Greater, "2.15.0-beta9");
        check("1.0.0-SNAPSHOT", Less, "1.0.0");
        check("1.0.0-SNAPSHOT", Greater, "1.0.0-rc1");
        check("31.1-jre", Greater, "31.1-android");
        check("31.1-jre", Less, "31.1.1-jre");
        check("9.4.51.v20230217", Less, "9.4.52.v20230823");
        check("1.2.3_1", Greater, "1.2.3");
        // MNG-7644, in 3.8.7.
        check("1.0.0.RC1", Less, "1.0.0-RC2");
        // Unknown qualifiers sort after the release (MNG-7559 reverses this in 4).
        check("2.3-pfd", Greater, "2.3");
    }

    #[test]
    fn numbers_of_any_size() {
        check("1.123456789", Less, "1.1234567890");
        check("1.999999999999999999", Less, "1.1000000000000000000");
        check(
            "1.123456789012345678901234567890",
            Less,
            "1.123456789012345678901234567891",
        );
        check("1.0000000000000000000001", Equal, "1.1");
    }

    #[test]
    fn canonical_forms() {
        for (v, canonical) in [
            ("1.0", "1"),
            ("1.0.0-SNAPSHOT", "1-snapshot"),
            ("1-ga-1", "1-1"),
            ("1.0.FOO.bar-1", "1.0.foo.bar-1"),
            ("1.0-alpha", "1-alpha"),
            ("1a1", "1-alpha-1"),
            ("1.0.foo", "1-foo"),
            ("2.0.0.RELEASE", "2"),
            ("007", "7"),
            ("", ""),
            ("19.4-ga.3", "19.4-3"),
            ("final.foo", "foo"),
        ] {
            assert_eq!(Version::parse(v).canonical(), canonical, "{v:?}");
        }
    }

    #[test]
    fn unicode() {
        // Lower-casing is Unicode's; UTF-16 order puts U+FF5E above U+1F600.
        check("1-Ä", Equal, "1-ä");
        check("1-\u{ff5e}", Greater, "1-\u{1f600}");
    }
}
