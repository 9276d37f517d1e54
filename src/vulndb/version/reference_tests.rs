//! Berth's version orderings checked against each package manager's own
//! implementation on this machine, over a few thousand generated pairs per ordering,
//! biased towards the cases that trip reimplementations (epochs, `~`, `^`, leading
//! zeros, long digit runs, letters against digits, extra hyphens, alternative
//! spellings, qualifiers).
//!
//! References, each run once per batch over stdin (or, for Maven, its arguments):
//! - dpkg: Perl's `Dpkg::Version` (Debian package `libdpkg-perl`), dpkg's own Perl
//!   implementation; it compares digit runs as Perl numbers, exact only up to 2^53, so
//!   its batch keeps digit runs short. Long runs go to the `dpkg --compare-versions`
//!   binary (package `dpkg`), one process per pair, for a smaller batch.
//! - rpm: Lua's `rpm.vercmp` inside `rpm --eval` (package `rpm`), which in rpm 4.18
//!   parses both arguments as `[epoch:]version[-release]` and compares with
//!   `rpmverCmp`: plain version strings exercise `rpmvercmp`, full EVRs the rest.
//! - PEP 440: Python's `packaging.version.Version` (`pip install packaging`), which
//!   also says which versions are invalid and what their normal form is.
//! - SemVer: node's `semver` package, either where `require('semver')` finds it
//!   (Debian's `node-semver`) or the copy npm bundles. It compares numeric
//!   pre-release identifiers as floating point and refuses core numbers above 2^53, so
//!   the batch keeps numbers to 15 digits; the module's own tests cover longer ones.
//! - Maven: `ComparableVersion.main` from maven-artifact 3.8 (Debian's
//!   `libmaven3-core-java`, pulled in by `maven`) on a Java runtime, which prints each
//!   version's canonical form and compares neighbouring arguments.
//!
//! A missing reference fails the test, naming what to install.

use super::{dpkg, maven, pep440, rpm, semver};

use std::cmp::Ordering;
use std::io::Write;
use std::process::{Command, Stdio};

const PAIRS: usize = 2000;
const DPKG_BINARY_PAIRS: usize = 150;

/// xorshift64*: deterministic, so a failure reproduces run after run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// A run of digits: usually short, sometimes zero-padded, and (when `long` allows)
/// sometimes far past 64 bits.
fn digits(rng: &mut Rng, long: bool) -> String {
    let mut s = String::new();
    if rng.chance(15) {
        s.push_str(&"0".repeat(1 + rng.below(3)));
    }
    let len = if long && rng.chance(20) {
        16 + rng.below(25)
    } else {
        1 + rng.below(3)
    };
    for _ in 0..len {
        s.push(char::from(b'0' + rng.below(10) as u8));
    }
    s
}

fn letters(rng: &mut Rng) -> String {
    const LETTERS: &[u8] = b"abcxyzABCXYZ";
    (0..1 + rng.below(3))
        .map(|_| char::from(LETTERS[rng.below(LETTERS.len())]))
        .collect()
}

/// Segments of digits, letters and the given separators, starting with digits unless
/// `any_start`.
fn segments(rng: &mut Rng, separators: &[&str], long: bool, any_start: bool) -> String {
    let mut s = String::new();
    if !any_start || rng.chance(80) {
        s.push_str(&digits(rng, long));
    }
    for _ in 0..rng.below(6) {
        match rng.below(3) {
            0 => s.push_str(rng.pick(separators)),
            1 => s.push_str(&letters(rng)),
            _ => s.push_str(&digits(rng, long)),
        }
    }
    if s.is_empty() {
        s.push_str(&digits(rng, long));
    }
    s
}

fn dpkg_version(rng: &mut Rng, long: bool) -> String {
    let mut v = String::new();
    let epoch = rng.chance(25);
    if epoch {
        v.push_str(rng.pick(&["0", "1", "2", "10", "00", "01"]));
        v.push(':');
    }
    let revision = rng.chance(60);
    let mut upstream_separators = vec![".", ".", "+", "~", "~"];
    if revision {
        upstream_separators.push("-");
    }
    if epoch {
        upstream_separators.push(":");
    }
    v.push_str(&segments(rng, &upstream_separators, long, false));
    if revision {
        v.push('-');
        v.push_str(&segments(rng, &[".", "+", "~"], long, true));
    }
    v
}

/// A variant of `v` that differs in one small, tricky way.
fn mutate(rng: &mut Rng, v: &str, tails: &[&str]) -> String {
    let mut s = v.to_owned();
    match rng.below(6) {
        0 => s.push_str(rng.pick(tails)),
        1 => {
            // Bump or change one digit.
            let positions: Vec<usize> = s
                .char_indices()
                .filter(|(_, c)| c.is_ascii_digit())
                .map(|(i, _)| i)
                .collect();
            if !positions.is_empty() {
                let at = positions[rng.below(positions.len())];
                let digit = char::from(b'0' + rng.below(10) as u8);
                s.replace_range(at..at + 1, &digit.to_string());
            }
        }
        2 => {
            // Pad a digit run with a zero.
            let starts: Vec<usize> = s
                .char_indices()
                .filter(|&(i, c)| {
                    c.is_ascii_digit() && (i == 0 || !s.as_bytes()[i - 1].is_ascii_digit())
                })
                .map(|(i, _)| i)
                .collect();
            if !starts.is_empty() {
                s.insert(starts[rng.below(starts.len())], '0');
            }
        }
        3 => {
            s.pop();
        }
        4 => {
            // Insert a tail in the middle, before a separator.
            if let Some(at) = s.find(['.', '-', '+', '_']) {
                s.insert_str(at, rng.pick(tails));
            }
        }
        _ => {}
    }
    s
}

/// Pairs of versions: unrelated, near-identical, or identical.
fn pairs(
    rng: &mut Rng,
    count: usize,
    version: &dyn Fn(&mut Rng) -> String,
    tails: &[&str],
    valid: &dyn Fn(&str) -> bool,
) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let a = version(rng);
        let b = match rng.below(10) {
            0..=2 => version(rng),
            3..=8 => mutate(rng, &a, tails),
            _ => a.clone(),
        };
        let (a, b) = if rng.chance(50) { (a, b) } else { (b, a) };
        if valid(&a) && valid(&b) {
            out.push((a, b));
        }
    }
    out
}

fn ordering_name(o: Ordering) -> &'static str {
    match o {
        Ordering::Less => "<",
        Ordering::Equal => "=",
        Ordering::Greater => ">",
    }
}

/// Runs a reference with `input` on stdin and returns the lines it printed.
fn run_reference(mut command: Command, input: String, install_hint: &str) -> Vec<String> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run the reference ({e}); {install_hint}"));
    let mut stdin = child.stdin.take().expect("stdin piped");
    // A thread writes, so a reference that answers as it reads cannot deadlock on us.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("reference runs");
    writer.join().expect("writer thread").expect("write input");
    assert!(
        output.status.success(),
        "reference failed ({}): {}; {install_hint}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

fn pairs_input(pairs: &[(String, String)]) -> String {
    pairs.iter().map(|(a, b)| format!("{a}\t{b}\n")).collect()
}

fn parse_ordering(answer: &str) -> Ordering {
    match answer.trim() {
        "-1" => Ordering::Less,
        "0" => Ordering::Equal,
        "1" => Ordering::Greater,
        other => panic!("reference printed {other:?}"),
    }
}

/// Runs `command` with one "a\tb" line per pair on stdin, expecting one line of
/// -1/0/1 per pair on stdout.
fn run_batch(command: Command, pairs: &[(String, String)], install_hint: &str) -> Vec<Ordering> {
    let answers: Vec<Ordering> = run_reference(command, pairs_input(pairs), install_hint)
        .iter()
        .map(|l| parse_ordering(l))
        .collect();
    assert_eq!(answers.len(), pairs.len(), "one answer per pair");
    answers
}

/// Fails listing the first few disagreements, if there are any.
fn assert_no_mismatches(what: &str, mismatches: &[String], total: usize) {
    let mut shown = mismatches
        .iter()
        .take(20)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n  ");
    if mismatches.len() > 20 {
        shown.push_str("\n  ...");
    }
    assert!(
        mismatches.is_empty(),
        "{what}: {} of {total} pairs disagree:\n  {shown}",
        mismatches.len(),
    );
}

/// Every ordering should have come up, or the generator is not testing much.
fn assert_all_orderings(what: &str, reference: &[Ordering]) {
    for o in [Ordering::Less, Ordering::Equal, Ordering::Greater] {
        assert!(
            reference.contains(&o),
            "{what}: no pair compared {}",
            ordering_name(o)
        );
    }
}

fn assert_agreement(
    what: &str,
    pairs: &[(String, String)],
    reference: &[Ordering],
    ours: fn(&str, &str) -> Ordering,
) {
    let mismatches: Vec<String> = pairs
        .iter()
        .zip(reference)
        .filter(|((a, b), &r)| ours(a, b) != r)
        .map(|((a, b), &r)| {
            format!(
                "{a:?} vs {b:?}: reference {}, ours {}",
                ordering_name(r),
                ordering_name(ours(a, b))
            )
        })
        .collect();
    assert_no_mismatches(what, &mismatches, pairs.len());
    assert_all_orderings(what, reference);
}

const DPKG_TAILS: &[&str] = &[
    "~", "~~", "~rc1", "+1", "+b1", ".0", "a", "0", "-1", "-0", ".1~1",
];

#[test]
fn dpkg_agrees_with_perl_dpkg_version() {
    let mut rng = Rng(0x5eed_0001);
    let pairs = pairs(
        &mut rng,
        PAIRS,
        &|r| dpkg_version(r, false),
        DPKG_TAILS,
        &dpkg::is_valid,
    );
    let mut perl = Command::new("perl");
    perl.args([
        "-MDpkg::Version",
        "-ne",
        r#"chomp; my ($x, $y) = split /\t/, $_, -1; print Dpkg::Version->new($x) <=> Dpkg::Version->new($y), "\n""#,
    ]);
    let reference = run_batch(perl, &pairs, "install Debian's libdpkg-perl");
    assert_agreement("dpkg vs Dpkg::Version", &pairs, &reference, dpkg::compare);
}

#[test]
fn dpkg_agrees_with_dpkg_binary() {
    let hint = "install Debian's dpkg";
    let mut rng = Rng(0x5eed_0002);
    let pairs = pairs(
        &mut rng,
        DPKG_BINARY_PAIRS,
        &|r| dpkg_version(r, true),
        DPKG_TAILS,
        &dpkg::is_valid,
    );
    let holds = |a: &str, op: &str, b: &str| -> bool {
        let status = Command::new("dpkg")
            .args(["--compare-versions", a, op, b])
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run dpkg ({e}); {hint}"));
        match status.code() {
            Some(0) => true,
            Some(1) => false,
            _ => panic!("dpkg refused {a:?} {op} {b:?} ({status})"),
        }
    };
    let reference: Vec<Ordering> = pairs
        .iter()
        .map(|(a, b)| {
            if holds(a, "lt", b) {
                Ordering::Less
            } else if holds(a, "gt", b) {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        })
        .collect();
    assert_agreement(
        "dpkg vs dpkg --compare-versions",
        &pairs,
        &reference,
        dpkg::compare,
    );
}

/// rpm's Lua reads the pairs itself, so no version passes through rpm's macro
/// expansion.
fn rpm_vercmp_command() -> Command {
    let mut rpm = Command::new("rpm");
    rpm.args([
        "--eval",
        r#"%{lua: for line in io.stdin:lines() do local a, b = line:match("^(.-)\t(.*)$"); io.write(rpm.vercmp(a, b), "\n") end}"#,
    ]);
    rpm
}

const RPM_SEPARATORS: &[&str] = &[".", ".", "_", "+", "~", "~", "^", "^", "é"];
const RPM_TAILS: &[&str] = &[
    "~", "~rc1", "^", "^git1", ".0", "a", "1", "_", "0", ".", "~~",
];

fn rpm_plain_version(rng: &mut Rng) -> String {
    segments(rng, RPM_SEPARATORS, true, true)
}

/// Whether rpm would read `v` as a bare version (no epoch, no release), so that
/// `rpm.vercmp` compares it with `rpmvercmp` alone.
fn bare_rpm_version(v: &str) -> bool {
    !v.is_empty() && !v.contains('-') && !v.contains(':')
}

#[test]
fn rpm_vercmp_agrees_with_rpm() {
    let mut rng = Rng(0x5eed_0003);
    let pairs = pairs(
        &mut rng,
        PAIRS,
        &rpm_plain_version,
        RPM_TAILS,
        &bare_rpm_version,
    );
    let reference = run_batch(rpm_vercmp_command(), &pairs, "install Debian's rpm");
    assert_agreement("rpmvercmp vs rpm.vercmp", &pairs, &reference, rpm::vercmp);
}

fn rpm_evr(rng: &mut Rng) -> String {
    let mut v = String::new();
    if rng.chance(35) {
        v.push_str(rng.pick(&["", "0", "00", "1", "2", "10", "01"]));
        v.push(':');
    }
    v.push_str(&rpm_plain_version(rng));
    if rng.chance(10) {
        // A hyphen inside the version: only the last one starts the release.
        v.push('-');
        v.push_str(&rpm_plain_version(rng));
    }
    if rng.chance(65) {
        v.push('-');
        if !rng.chance(5) {
            v.push_str(&rpm_plain_version(rng));
        }
    }
    v
}

#[test]
fn rpm_evr_agrees_with_rpm() {
    const EVR_TAILS: &[&str] = &["~", "^", ".0", "a", "1", "-1", "-0", "-", ":1", "_"];
    let mut rng = Rng(0x5eed_0004);
    // rpm refuses only the empty string.
    let pairs = pairs(&mut rng, PAIRS, &rpm_evr, EVR_TAILS, &|v| !v.is_empty());
    let reference = run_batch(rpm_vercmp_command(), &pairs, "install Debian's rpm");
    assert_agreement(
        "rpm EVR compare vs rpm.vercmp",
        &pairs,
        &reference,
        rpm::compare,
    );
}

/// Letters of `word` in random case, mostly lower.
fn random_case(rng: &mut Rng, word: &str) -> String {
    word.chars()
        .map(|c| {
            if rng.chance(15) {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// One of `words`, in random case.
fn random_word(rng: &mut Rng, words: &[&str]) -> String {
    let word = rng.pick(words);
    random_case(rng, word)
}

/// A small number, often 0 (trailing zeros are where orderings differ), sometimes
/// zero-padded or long.
fn small_number(rng: &mut Rng, long: bool) -> String {
    if rng.chance(25) {
        "0".to_owned()
    } else {
        digits(rng, long)
    }
}

// ---------------------------------------------------------------- PEP 440

/// Python's `\s` beyond the ASCII space, minus what would end a line of the batch
/// (tab separates the pair; Python's text stdin splits at `\r` too).
const PYTHON_SPACES: &[&str] = &[
    " ", "\x0b", "\x0c", "\x1c", "\x1f", "\u{85}", "\u{a0}", "\u{3000}",
];

fn pep440_separator(rng: &mut Rng) -> &'static str {
    rng.pick(&["", "", "", ".", "-", "_"])
}

/// One lettered part (`rc1`, `.post`, `-dev-2`): separator, spelling, separator,
/// optional number.
fn pep440_lettered(rng: &mut Rng, words: &[&str]) -> String {
    let mut s = pep440_separator(rng).to_owned();
    s.push_str(&random_word(rng, words));
    s.push_str(pep440_separator(rng));
    if rng.chance(75) {
        s.push_str(&small_number(rng, false));
    }
    s
}

fn pep440_version(rng: &mut Rng) -> String {
    let mut v = String::new();
    if rng.chance(3) {
        v.push_str(rng.pick(PYTHON_SPACES));
    }
    if rng.chance(10) {
        v.push_str(rng.pick(&["v", "V"]));
    }
    if rng.chance(12) {
        v.push_str(rng.pick(&["0", "1", "2", "01", "10"]));
        v.push('!');
    }
    for i in 0..1 + rng.below(4) {
        if i > 0 {
            v.push('.');
        }
        v.push_str(&small_number(rng, true));
    }
    if rng.chance(35) {
        let part = pep440_lettered(
            rng,
            &["a", "b", "rc", "alpha", "beta", "c", "pre", "preview"],
        );
        v.push_str(&part);
    }
    if rng.chance(25) {
        if rng.chance(30) {
            v.push('-');
            v.push_str(&small_number(rng, false));
        } else {
            let part = pep440_lettered(rng, &["post", "rev", "r"]);
            v.push_str(&part);
        }
    }
    if rng.chance(25) {
        let part = pep440_lettered(rng, &["dev"]);
        v.push_str(&part);
    }
    if rng.chance(20) {
        v.push('+');
        for i in 0..1 + rng.below(3) {
            if i > 0 {
                v.push_str(rng.pick(&[".", ".", "-", "_"]));
            }
            match rng.below(3) {
                0 => v.push_str(&small_number(rng, false)),
                1 => v.push_str(&letters(rng)),
                _ => {
                    v.push_str(&letters(rng));
                    v.push_str(&digits(rng, false));
                }
            }
        }
    }
    if rng.chance(3) {
        v.push_str(rng.pick(PYTHON_SPACES));
    }
    v
}

const PEP440_TAILS: &[&str] = &[
    ".0", ".0.0", "a1", "b", "rc", "c1", "-1", "-0", ".post1", "post", "-r", ".dev0", "dev",
    "+local", "+1", "+a.b", "-", ".", "_", "+", "..", "-1-1", "alph", "a1b1", "!", "+a..b",
];

/// `packaging` prints each version's normal form ("!" when it refuses one) and their
/// order ("!" when either is refused).
const PACKAGING_SCRIPT: &str = r#"
import sys
try:
    from packaging.version import InvalidVersion, Version
except ImportError as e:
    sys.exit(f"python3 cannot import packaging ({e})")
def parse(v):
    try:
        return Version(v)
    except InvalidVersion:
        return None
for line in sys.stdin:
    a, b = line[:-1].split("\t")
    x, y = parse(a), parse(b)
    order = "!" if x is None or y is None else (x > y) - (x < y)
    print("!" if x is None else x, "!" if y is None else y, order, sep="\t")
"#;

#[test]
fn pep440_agrees_with_python_packaging() {
    let what = "PEP 440 vs packaging.version";
    let hint = "install python3 and its packaging module (pip install packaging)";
    let mut rng = Rng(0x5eed_0005);
    let pairs = pairs(&mut rng, PAIRS, &pep440_version, PEP440_TAILS, &|_| true);
    let mut python = Command::new("python3");
    python
        .args(["-c", PACKAGING_SCRIPT])
        .env("PYTHONIOENCODING", "utf-8");
    let lines = run_reference(python, pairs_input(&pairs), hint);
    assert_eq!(lines.len(), pairs.len(), "one answer per pair");

    let normal = |v: &str| pep440::parse(v).map_or("!".to_owned(), |v| v.to_string());
    let mut mismatches = Vec::new();
    let mut orderings = Vec::new();
    for ((a, b), line) in pairs.iter().zip(&lines) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [ref_a, ref_b, order] = fields[..] else {
            panic!("{what}: unexpected answer {line:?}");
        };
        for (v, reference) in [(a, ref_a), (b, ref_b)] {
            if normal(v) != reference {
                mismatches.push(format!(
                    "{v:?} reads as {reference:?} in packaging, {:?} here",
                    normal(v)
                ));
            }
        }
        if order != "!" {
            let reference = parse_ordering(order);
            orderings.push(reference);
            let ours = pep440::compare(a, b);
            if ours != reference {
                mismatches.push(format!(
                    "{a:?} vs {b:?}: reference {}, ours {}",
                    ordering_name(reference),
                    ordering_name(ours)
                ));
            }
        }
    }
    assert_no_mismatches(what, &mismatches, pairs.len());
    assert!(
        orderings.len() >= PAIRS / 2,
        "{what}: only {} pairs were both valid",
        orderings.len()
    );
    assert_all_orderings(what, &orderings);
}

// ---------------------------------------------------------------- SemVer

/// Numbers stay within 15 digits, where node's floating-point comparison is exact.
fn semver_number(rng: &mut Rng) -> String {
    match rng.below(20) {
        0..=5 => "0".to_owned(),
        // Leading zeros make a version invalid.
        6 => format!("0{}", rng.below(10)),
        7 => (0..10 + rng.below(6))
            .map(|i| char::from(b'1' + (i as u8 + rng.below(9) as u8) % 9))
            .collect(),
        _ => (1 + rng.below(20)).to_string(),
    }
}

/// A Go pseudo-version's timestamp and commit hash.
fn go_pseudo(rng: &mut Rng) -> String {
    format!(
        "20{:02}{:02}{:02}{:02}0000-{}",
        19 + rng.below(5),
        1 + rng.below(12),
        10 + rng.below(18),
        rng.below(24),
        rng.pick(&[
            "abcdef123456",
            "0123456789ab",
            "ffffffffffff",
            "000000000000"
        ])
    )
}

fn semver_identifiers(rng: &mut Rng, words: &[&str]) -> String {
    (0..1 + rng.below(4))
        .map(|_| match rng.below(3) {
            0 => semver_number(rng),
            _ => rng.pick(words).to_owned(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn semver_version(rng: &mut Rng) -> String {
    let mut v = String::new();
    if rng.chance(30) {
        v.push('v');
    }
    let core: Vec<String> = (0..3).map(|_| semver_number(rng)).collect();
    v.push_str(&core.join("."));
    if rng.chance(10) {
        // Go pseudo-versions: on no tag, after a release, after a pre-release.
        match rng.below(3) {
            0 => v = format!("v0.0.0-{}", go_pseudo(rng)),
            1 => v.push_str(&format!("-0.{}", go_pseudo(rng))),
            _ => v.push_str(&format!("-pre.0.{}", go_pseudo(rng))),
        }
    } else if rng.chance(45) {
        v.push('-');
        let words = [
            "alpha", "beta", "rc", "a", "b", "A", "Z", "x-y", "-", "--", "0a", "1a", "alpha-1",
            "SNAPSHOT", "rc1", "rc10", "rc2",
        ];
        v.push_str(&semver_identifiers(rng, &words));
    }
    if rng.chance(20) {
        v.push('+');
        let words = ["incompatible", "001", "build", "sha-5114f85", "exp", "0"];
        v.push_str(&semver_identifiers(rng, &words));
    }
    v
}

const SEMVER_TAILS: &[&str] = &[
    ".0",
    "-0",
    "-1",
    "-a",
    ".1",
    "+b",
    "-rc.1",
    ".rc.2",
    "-",
    "+",
    ".",
    "..",
    "-01",
    "-00",
    "+incompatible",
    "-0.20210101000000-abcdef123456",
    "-alpha",
    ".beta",
    "+0.1",
];

/// Loads `semver` where node finds it, else the copy npm bundles, and prints its
/// version; then per pair whether each side parses (1/0) and their order ("!" when
/// either does not parse).
const NODE_SEMVER_SCRIPT: &str = r#"
const path = require('path');
let semver, from;
try {
  from = require.resolve('semver');
} catch (e) {
  try {
    const root = require('child_process').execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim();
    from = require.resolve(path.join(root, 'npm', 'node_modules', 'semver'));
  } catch (e2) {
    console.error("node cannot load the semver package: require('semver') fails and npm's bundled copy is missing");
    process.exit(1);
  }
}
semver = require(from);
const out = [`semver ${require(path.join(path.dirname(from), 'package.json')).version}`];
for (const line of require('fs').readFileSync(0, 'utf8').split('\n')) {
  if (line === '') continue;
  const [a, b] = line.split('\t');
  const x = semver.parse(a), y = semver.parse(b);
  out.push(`${x ? 1 : 0}\t${y ? 1 : 0}\t${x && y ? semver.compare(x, y) : '!'}`);
}
process.stdout.write(out.join('\n') + '\n');
"#;

#[test]
fn semver_agrees_with_node_semver() {
    let hint =
        "install node and its semver package (Debian: nodejs node-semver; npm bundles a copy)";
    let mut rng = Rng(0x5eed_0006);
    let pairs = pairs(&mut rng, PAIRS, &semver_version, SEMVER_TAILS, &|_| true);
    let mut node = Command::new("node");
    node.args(["-e", NODE_SEMVER_SCRIPT]);
    let lines = run_reference(node, pairs_input(&pairs), hint);
    let (version, answers) = lines.split_first().expect("node printed nothing");
    let what = format!("SemVer vs node {version}");
    assert_eq!(answers.len(), pairs.len(), "one answer per pair");

    let mut mismatches = Vec::new();
    let mut orderings = Vec::new();
    for ((a, b), line) in pairs.iter().zip(answers) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [valid_a, valid_b, order] = fields[..] else {
            panic!("{what}: unexpected answer {line:?}");
        };
        for (v, reference) in [(a, valid_a), (b, valid_b)] {
            if semver::is_valid(v) != (reference == "1") {
                mismatches.push(format!(
                    "{v:?}: valid in node: {}, here: {}",
                    reference == "1",
                    semver::is_valid(v)
                ));
            }
        }
        if order != "!" {
            let reference = parse_ordering(order);
            orderings.push(reference);
            let ours = semver::compare(a, b);
            if ours != reference {
                mismatches.push(format!(
                    "{a:?} vs {b:?}: reference {}, ours {}",
                    ordering_name(reference),
                    ordering_name(ours)
                ));
            }
        }
    }
    assert_no_mismatches(&what, &mismatches, pairs.len());
    assert!(
        orderings.len() >= PAIRS / 2,
        "{what}: only {} pairs were both valid",
        orderings.len()
    );
    assert_all_orderings(&what, &orderings);
}

// ---------------------------------------------------------------- Maven

const MAVEN_WORDS: &[&str] = &[
    "alpha",
    "beta",
    "milestone",
    "rc",
    "cr",
    "snapshot",
    "ga",
    "final",
    "release",
    "sp",
    "a",
    "b",
    "m",
    "c",
    "x",
    "v",
    "foo",
    "jre",
    "android",
    "pom",
    "incubating",
    "_",
    "+",
    "~",
    "RELEASE",
    "Final",
    "SNAPSHOT",
    "GA",
    "SP",
    "RC",
    "CR",
];

fn maven_version(rng: &mut Rng) -> String {
    let mut v = String::new();
    let mut digits_last = !rng.chance(8);
    if digits_last {
        v.push_str(&small_number(rng, true));
    } else {
        v.push_str(&random_word(rng, MAVEN_WORDS));
    }
    for _ in 0..rng.below(6) {
        // A separator, or none: the change between digits and letters separates too.
        let separated = rng.chance(70);
        if separated {
            v.push_str(rng.pick(&[".", ".", "-", "-", "..", "-."]));
        }
        let number = if separated {
            rng.chance(55)
        } else {
            !digits_last
        };
        if number {
            v.push_str(&small_number(rng, true));
        } else {
            v.push_str(&random_word(rng, MAVEN_WORDS));
        }
        digits_last = number;
    }
    v
}

const MAVEN_TAILS: &[&str] = &[
    ".0",
    "-0",
    "-1",
    ".1",
    ".a",
    "a1",
    "b2",
    "m3",
    "-SNAPSHOT",
    "-ga",
    "..",
    "-",
    ".",
    "-sp",
    "-final",
    "-rc1",
    ".RELEASE",
    "-alpha",
    "0",
    ".0.0",
    "-0-1",
    ".foo",
];

/// Where Debian keeps maven-artifact: `maven` links it under /usr/share/maven/lib,
/// `libmaven3-core-java` installs it under /usr/share/java.
fn maven_artifact_jar() -> Option<std::path::PathBuf> {
    let lib = std::path::Path::new("/usr/share/maven/lib");
    let mut found: Vec<_> = std::fs::read_dir(lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("maven-artifact-") && n.ends_with(".jar"))
        })
        .collect();
    found.sort();
    found.into_iter().next().or_else(|| {
        let jar = std::path::PathBuf::from("/usr/share/java/maven3-artifact.jar");
        jar.exists().then_some(jar)
    })
}

#[test]
fn maven_agrees_with_comparable_version() {
    let hint = "install a Java runtime and maven-artifact (Debian: default-jre-headless \
                libmaven3-core-java, or maven)";
    let mut rng = Rng(0x5eed_0007);
    // Versions go to Java as arguments, which cannot be empty.
    let pairs = pairs(&mut rng, PAIRS, &maven_version, MAVEN_TAILS, &|v| {
        !v.is_empty()
    });
    let jar = maven_artifact_jar().unwrap_or_else(|| {
        panic!("no maven-artifact jar in /usr/share/maven/lib or /usr/share/java; {hint}")
    });
    let args: Vec<&str> = pairs
        .iter()
        .flat_map(|(a, b)| [a.as_str(), b.as_str()])
        .collect();
    let mut java = Command::new("java");
    java.arg("-cp")
        .arg(&jar)
        .arg("org.apache.maven.artifact.versioning.ComparableVersion")
        .args(&args);
    let lines = run_reference(java, String::new(), hint);
    let what = format!("Maven vs ComparableVersion in {}", jar.display());

    // `main` prints a header, then for each argument its comparison with the one
    // before (`   prev < this`) and its canonical form (`N. this -> canonical; ...`).
    let mut lines = lines.iter().skip(1);
    let mut next_line = || lines.next().map(String::as_str).unwrap_or_default();
    let mut mismatches = Vec::new();
    let mut orderings = Vec::new();
    for (i, v) in args.iter().enumerate() {
        if i > 0 {
            let line = next_line();
            let prev = args[i - 1];
            let op = line
                .strip_prefix(&format!("   {prev} "))
                .and_then(|rest| rest.strip_suffix(&format!(" {v}")))
                .unwrap_or_else(|| panic!("{what}: unexpected comparison line {line:?}"));
            let reference = match op {
                "<" => Ordering::Less,
                "==" => Ordering::Equal,
                ">" => Ordering::Greater,
                _ => panic!("{what}: unexpected comparison line {line:?}"),
            };
            // Odd arguments end a pair; the others compare neighbouring pairs, which
            // are just as good a test.
            orderings.push(reference);
            let ours = maven::compare(prev, v);
            if ours != reference {
                mismatches.push(format!(
                    "{prev:?} vs {v:?}: reference {}, ours {}",
                    ordering_name(reference),
                    ordering_name(ours)
                ));
            }
        }
        let line = next_line();
        let canonical = line
            .strip_prefix(&format!("{}. {v} -> ", i + 1))
            .and_then(|rest| rest.split_once("; tokens: "))
            .map(|(canonical, _)| canonical)
            .unwrap_or_else(|| panic!("{what}: unexpected canonical line {line:?}"));
        let ours = maven::Version::parse(v).canonical();
        if ours != canonical {
            mismatches.push(format!(
                "{v:?}: canonical {canonical:?} in Maven, {ours:?} here"
            ));
        }
    }
    assert_no_mismatches(&what, &mismatches, pairs.len());
    assert_all_orderings(&what, &orderings);
}
