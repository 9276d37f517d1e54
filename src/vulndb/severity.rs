//! Finding severities as ECR reports them (`FindingSeverity`), and the ways sources
//! express them: CVSS scores and distribution words such as Red Hat's "important" or
//! Ubuntu's "negligible". One scale, so findings from any source sort together.

use std::fmt;

/// ECR's severities, declared from least to most severe so that `Ord` ranks them.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    /// No usable rating from the source.
    #[default]
    Undefined,
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Every severity, least severe first.
    pub const ALL: [Severity; 6] = [
        Severity::Undefined,
        Severity::Informational,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The name ECR uses on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Undefined => "UNDEFINED",
            Severity::Informational => "INFORMATIONAL",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }

    /// A severity by its wire name (as `as_str` spells it).
    pub fn parse(name: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The CVSS v3 qualitative rating of a score in tenths (98 = 9.8), with CVSS's
    /// "None" (0.0) as informational. Scores above 10.0 cannot come from a valid
    /// vector; they rate as critical rather than failing.
    pub fn from_tenths(tenths: u8) -> Severity {
        match tenths {
            0 => Severity::Informational,
            1..=39 => Severity::Low,
            40..=69 => Severity::Medium,
            70..=89 => Severity::High,
            _ => Severity::Critical,
        }
    }

    /// The rating of a score as sources publish it (`9.8`). Scores are rounded to the
    /// nearest tenth first, since a published 6.95 is float noise around a one-decimal
    /// value; a score that is not a number in 0.0–10.0 is undefined.
    pub fn from_score(score: f64) -> Severity {
        if !(0.0..=10.0).contains(&score) {
            return Severity::Undefined;
        }
        // In range, so the rounded value fits in u8 (0..=100).
        Severity::from_tenths((score * 10.0).round() as u8)
    }

    /// Reads a severity word from an advisory source, case-insensitively: ECR's own
    /// names plus the distributions' vocabularies. `None` for a word not known here,
    /// so a caller can tell "unknown word" from "explicitly untriaged".
    pub fn parse_word(word: &str) -> Option<Severity> {
        let word = word.trim().to_ascii_lowercase();
        let severity = match word.as_str() {
            "undefined" | "unknown" | "untriaged" | "not yet assigned" | "unassigned" => {
                Severity::Undefined
            }
            // Ubuntu's "negligible", Debian's "unimportant", CVSS's "none".
            "informational" | "info" | "negligible" | "unimportant" | "none" => {
                Severity::Informational
            }
            "low" => Severity::Low,
            // Red Hat's and GitHub's "moderate".
            "medium" | "moderate" => Severity::Medium,
            // Red Hat's "important".
            "high" | "important" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        };
        Some(severity)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_severity() {
        assert!(Severity::Undefined < Severity::Informational);
        assert!(Severity::Informational < Severity::Low);
        assert!(Severity::Low < Severity::Medium);
        assert!(Severity::Medium < Severity::High);
        assert!(Severity::High < Severity::Critical);
        let mut shuffled = [
            Severity::High,
            Severity::Undefined,
            Severity::Critical,
            Severity::Low,
            Severity::Informational,
            Severity::Medium,
        ];
        shuffled.sort();
        assert_eq!(shuffled, Severity::ALL);
    }

    #[test]
    fn names_round_trip() {
        for s in Severity::ALL {
            assert_eq!(Severity::parse_word(s.as_str()), Some(s));
            assert_eq!(s.to_string(), s.as_str());
        }
    }

    #[test]
    fn score_boundaries() {
        let cases = [
            (0, Severity::Informational),
            (1, Severity::Low),
            (39, Severity::Low),
            (40, Severity::Medium),
            (69, Severity::Medium),
            (70, Severity::High),
            (89, Severity::High),
            (90, Severity::Critical),
            (100, Severity::Critical),
        ];
        for (tenths, expected) in cases {
            assert_eq!(Severity::from_tenths(tenths), expected, "{tenths}");
            assert_eq!(
                Severity::from_score(f64::from(tenths) / 10.0),
                expected,
                "{tenths}"
            );
        }
    }

    #[test]
    fn scores_outside_the_scale_are_undefined() {
        assert_eq!(Severity::from_score(-0.1), Severity::Undefined);
        assert_eq!(Severity::from_score(10.1), Severity::Undefined);
        assert_eq!(Severity::from_score(f64::NAN), Severity::Undefined);
        assert_eq!(Severity::from_score(f64::INFINITY), Severity::Undefined);
        // Float noise just below a boundary still lands on the published tenth.
        assert_eq!(Severity::from_score(6.999_999_999), Severity::High);
        assert_eq!(Severity::from_score(3.949), Severity::Low);
    }

    #[test]
    fn distribution_words() {
        let cases = [
            ("low", Severity::Low),
            ("Medium", Severity::Medium),
            ("moderate", Severity::Medium),
            ("MODERATE", Severity::Medium),
            ("important", Severity::High),
            ("High", Severity::High),
            ("critical", Severity::Critical),
            ("negligible", Severity::Informational),
            ("unimportant", Severity::Informational),
            (" Low ", Severity::Low),
            ("not yet assigned", Severity::Undefined),
            ("untriaged", Severity::Undefined),
        ];
        for (word, expected) in cases {
            assert_eq!(Severity::parse_word(word), Some(expected), "{word}");
        }
        assert_eq!(Severity::parse_word("severe"), None);
        assert_eq!(Severity::parse_word(""), None);
    }
}
