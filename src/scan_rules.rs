//! The registry's scanning configuration as ECR defines it: a scan type, and up to two
//! rules that give repositories matching wildcard filters a scan frequency. Validated
//! once where it enters; stored as the JSON ECR shows (the serde forms below).

use std::fmt;

use serde::{Deserialize, Serialize};

/// At most this many rules, and this many filters per rule (ECR's limits).
const MAX_RULES: usize = 2;
const MAX_FILTERS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScanType {
    #[default]
    Basic,
    Enhanced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScanFrequency {
    ScanOnPush,
    ContinuousScan,
    Manual,
}

/// A repository filter: ECR's only filter type is `WILDCARD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanningFilter {
    filter: String,
    filter_type: FilterType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum FilterType {
    Wildcard,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanningRule {
    scan_frequency: ScanFrequency,
    repository_filters: Vec<ScanningFilter>,
}

/// Why a configuration was refused, with ECR's message; `member` names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    UnknownScanType,
    UnknownFrequency,
    FrequencyNotForType(ScanFrequency, ScanType),
    TooManyRules,
    TooManyFilters,
    BadFilter,
    UnknownFilterType,
}

impl Invalid {
    /// The input member at fault.
    pub fn member(&self) -> &'static str {
        match self {
            Invalid::UnknownScanType => "scanType",
            Invalid::UnknownFrequency
            | Invalid::FrequencyNotForType(..)
            | Invalid::TooManyRules
            | Invalid::TooManyFilters => "rules",
            Invalid::BadFilter | Invalid::UnknownFilterType => "repositoryFilters",
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::UnknownScanType => {
                f.write_str("Member must satisfy enum value set: [BASIC, ENHANCED]")
            }
            Invalid::UnknownFrequency => f.write_str(
                "Member must satisfy enum value set: [SCAN_ON_PUSH, CONTINUOUS_SCAN, MANUAL]",
            ),
            Invalid::FrequencyNotForType(freq, ty) => write!(
                f,
                "Scan frequency {} is not supported for scan type {}",
                freq.as_str(),
                ty.as_str()
            ),
            Invalid::TooManyRules => f.write_str("Member must have length less than or equal to 2"),
            Invalid::TooManyFilters => {
                f.write_str("Member must have length less than or equal to 100")
            }
            Invalid::BadFilter => f.write_str(
                "Member must satisfy regular expression '^[a-z0-9*](?:[._\\-/a-z0-9*]?[a-z0-9*]+)*$'",
            ),
            Invalid::UnknownFilterType => {
                f.write_str("Member must satisfy enum value set: [WILDCARD]")
            }
        }
    }
}

impl ScanType {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanType::Basic => "BASIC",
            ScanType::Enhanced => "ENHANCED",
        }
    }

    pub fn parse(s: &str) -> Result<ScanType, Invalid> {
        [ScanType::Basic, ScanType::Enhanced]
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or(Invalid::UnknownScanType)
    }

    /// Whether a rule may give frequency `f` under this scan type (MANUAL is what a
    /// repository no rule matches gets, not a rule's choice).
    pub fn check(self, f: ScanFrequency) -> Result<(), Invalid> {
        let allowed = match self {
            ScanType::Basic => f == ScanFrequency::ScanOnPush,
            ScanType::Enhanced => f != ScanFrequency::Manual,
        };
        if allowed {
            Ok(())
        } else {
            Err(Invalid::FrequencyNotForType(f, self))
        }
    }
}

impl ScanFrequency {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanFrequency::ScanOnPush => "SCAN_ON_PUSH",
            ScanFrequency::ContinuousScan => "CONTINUOUS_SCAN",
            ScanFrequency::Manual => "MANUAL",
        }
    }

    pub fn parse(s: &str) -> Result<ScanFrequency, Invalid> {
        [
            ScanFrequency::ScanOnPush,
            ScanFrequency::ContinuousScan,
            ScanFrequency::Manual,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
        .ok_or(Invalid::UnknownFrequency)
    }

    /// Whether a push is scanned (continuous scanning includes the push).
    pub fn scans_on_push(self) -> bool {
        self != ScanFrequency::Manual
    }
}

impl ScanningFilter {
    pub fn parse(filter: &str, filter_type: &str) -> Result<ScanningFilter, Invalid> {
        if !(1..=255).contains(&filter.len()) || !is_filter(filter) {
            return Err(Invalid::BadFilter);
        }
        if filter_type != "WILDCARD" {
            return Err(Invalid::UnknownFilterType);
        }
        Ok(ScanningFilter {
            filter: filter.to_owned(),
            filter_type: FilterType::Wildcard,
        })
    }

    /// Whether the filter matches a repository name (`*` matches any run).
    pub fn matches(&self, repository: &str) -> bool {
        crate::iam::wildcard::matches(&self.filter, repository, false)
    }
}

impl ScanningRule {
    pub fn new(
        scan_type: ScanType,
        scan_frequency: ScanFrequency,
        repository_filters: Vec<ScanningFilter>,
    ) -> Result<ScanningRule, Invalid> {
        scan_type.check(scan_frequency)?;
        check_filter_count(repository_filters.len())?;
        Ok(ScanningRule {
            scan_frequency,
            repository_filters,
        })
    }

    pub fn frequency(&self) -> ScanFrequency {
        self.scan_frequency
    }

    /// The first of the rule's filters that matches `repository`.
    pub fn filter_for(&self, repository: &str) -> Option<&ScanningFilter> {
        self.repository_filters
            .iter()
            .find(|f| f.matches(repository))
    }
}

/// At most 100 filters in a rule.
pub fn check_filter_count(n: usize) -> Result<(), Invalid> {
    if n > MAX_FILTERS {
        return Err(Invalid::TooManyFilters);
    }
    Ok(())
}

/// At most two rules.
pub fn check_rules(rules: &[ScanningRule]) -> Result<(), Invalid> {
    if rules.len() > MAX_RULES {
        return Err(Invalid::TooManyRules);
    }
    Ok(())
}

/// `^[a-z0-9*](?:[._\-/a-z0-9*]?[a-z0-9*]+)*$`: runs of lower-case letters, digits and
/// `*`, separated by single `.`, `_`, `-` or `/`.
fn is_filter(s: &str) -> bool {
    let word = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '*';
    let sep = |c: char| matches!(c, '.' | '_' | '-' | '/');
    let mut prev_sep = true; // the first character must be a word character
    for c in s.chars() {
        if word(c) {
            prev_sep = false;
        } else if sep(c) && !prev_sep {
            prev_sep = true;
        } else {
            return false;
        }
    }
    !prev_sep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_follow_ecr_pattern() {
        for ok in ["*", "prod", "team/*", "a.b-c_d/e*", "*-dev"] {
            assert!(is_filter(ok), "{ok}");
        }
        for bad in ["", "Prod", "a//b", "/a", "a/", "a b", "a?"] {
            assert!(!is_filter(bad), "{bad}");
        }
        assert_eq!(
            ScanningFilter::parse("prod", "PREFIX"),
            Err(Invalid::UnknownFilterType)
        );
    }

    #[test]
    fn rules_take_the_frequencies_their_scan_type_allows() {
        let f = || vec![ScanningFilter::parse("team/*", "WILDCARD").expect("valid")];
        assert!(ScanningRule::new(ScanType::Basic, ScanFrequency::ScanOnPush, f()).is_ok());
        assert_eq!(
            ScanningRule::new(ScanType::Basic, ScanFrequency::ContinuousScan, f()),
            Err(Invalid::FrequencyNotForType(
                ScanFrequency::ContinuousScan,
                ScanType::Basic
            ))
        );
        assert!(ScanningRule::new(ScanType::Enhanced, ScanFrequency::ContinuousScan, f()).is_ok());
        assert!(ScanningRule::new(ScanType::Enhanced, ScanFrequency::Manual, f()).is_err());
    }

    #[test]
    fn rules_are_stored_as_ecr_shows_them() {
        let rule = ScanningRule::new(
            ScanType::Basic,
            ScanFrequency::ScanOnPush,
            vec![ScanningFilter::parse("team/*", "WILDCARD").expect("valid")],
        )
        .expect("valid");
        let json = serde_json::to_string(&rule).expect("json");
        assert_eq!(
            json,
            r#"{"scanFrequency":"SCAN_ON_PUSH","repositoryFilters":[{"filter":"team/*","filterType":"WILDCARD"}]}"#
        );
        assert_eq!(serde_json::from_str::<ScanningRule>(&json).ok(), Some(rule));
        assert!(rule_matches(&json, "team/app"));
    }

    fn rule_matches(json: &str, name: &str) -> bool {
        serde_json::from_str::<ScanningRule>(json)
            .expect("rule")
            .filter_for(name)
            .is_some()
    }
}
