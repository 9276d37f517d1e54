//! The dpkg and rpm version orderings checked against the package managers' own
//! implementations on this machine, over a few thousand generated pairs biased towards
//! the cases that trip reimplementations (epochs, `~`, `^`, leading zeros, long digit
//! runs, letters against digits, extra hyphens).
//!
//! References, each run once per batch over stdin:
//! - dpkg: Perl's `Dpkg::Version` (Debian package `libdpkg-perl`), dpkg's own Perl
//!   implementation; it compares digit runs as Perl numbers, exact only up to 2^53, so
//!   its batch keeps digit runs short. Long runs go to the `dpkg --compare-versions`
//!   binary (package `dpkg`), one process per pair, for a smaller batch.
//! - rpm: Lua's `rpm.vercmp` inside `rpm --eval` (package `rpm`), which in rpm 4.18
//!   parses both arguments as `[epoch:]version[-release]` and compares with
//!   `rpmverCmp`: plain version strings exercise `rpmvercmp`, full EVRs the rest.
//!
//! A missing reference fails the test, naming the package to install.

#[allow(dead_code)]
#[path = "../src/vulndb/version/dpkg.rs"]
mod dpkg;
#[allow(dead_code)]
#[path = "../src/vulndb/version/rpm.rs"]
mod rpm;

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

/// Runs `command` with one "a\tb" line per pair on stdin, expecting one line of
/// -1/0/1 per pair on stdout.
fn run_batch(
    mut command: Command,
    pairs: &[(String, String)],
    install_hint: &str,
) -> Vec<Ordering> {
    let input: String = pairs.iter().map(|(a, b)| format!("{a}\t{b}\n")).collect();
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
    writer.join().expect("writer thread").expect("write pairs");
    assert!(
        output.status.success(),
        "reference failed ({}): {}; {install_hint}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let answers: Vec<Ordering> = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.trim() {
            "-1" => Ordering::Less,
            "0" => Ordering::Equal,
            "1" => Ordering::Greater,
            other => panic!("reference printed {other:?}"),
        })
        .collect();
    assert_eq!(answers.len(), pairs.len(), "one answer per pair");
    answers
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
        "{what}: {} of {} pairs disagree:\n  {shown}",
        mismatches.len(),
        pairs.len()
    );
    // Every ordering should have come up, or the generator is not testing much.
    for o in [Ordering::Less, Ordering::Equal, Ordering::Greater] {
        assert!(
            reference.contains(&o),
            "{what}: no pair compared {}",
            ordering_name(o)
        );
    }
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
