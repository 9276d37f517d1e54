//! Tag mutability: whether a push may move an existing tag to another image. ECR's four
//! modes, with the wildcard exclusion filters of the two `*_WITH_EXCLUSION` modes,
//! validated once where they enter (the ECR API, the bootstrap file, a template) and
//! parsed once when a repository is read, not on every push.

use std::fmt;

use crate::oci::name::tag_pattern_matches;
use crate::oci::Tag;

/// At most this many exclusion filters (ECR's limit).
pub const MAX_FILTERS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Mutable,
    Immutable,
    ImmutableWithExclusion,
    MutableWithExclusion,
}

impl Mode {
    pub const ALL: [Mode; 4] = [
        Mode::Immutable,
        Mode::Mutable,
        Mode::MutableWithExclusion,
        Mode::ImmutableWithExclusion,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Mutable => "MUTABLE",
            Mode::Immutable => "IMMUTABLE",
            Mode::ImmutableWithExclusion => "IMMUTABLE_WITH_EXCLUSION",
            Mode::MutableWithExclusion => "MUTABLE_WITH_EXCLUSION",
        }
    }

    pub fn parse(s: &str) -> Result<Mode, Invalid> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or(Invalid::UnknownMode)
    }

    /// One of the two modes that take exclusion filters.
    pub fn with_exclusion(self) -> bool {
        matches!(
            self,
            Mode::ImmutableWithExclusion | Mode::MutableWithExclusion
        )
    }
}

/// Why a mutability setting was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    UnknownMode,
    FiltersWithoutExclusionMode,
    FiltersRequired,
    TooManyFilters,
    BadFilter,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Invalid::UnknownMode => "Member must satisfy enum value set: [IMMUTABLE, MUTABLE, MUTABLE_WITH_EXCLUSION, IMMUTABLE_WITH_EXCLUSION]",
            Invalid::FiltersWithoutExclusionMode => "Exclusion filters are only allowed with IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION",
            Invalid::FiltersRequired => "Exclusion filters are required with IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION",
            Invalid::TooManyFilters => "Member must have length less than or equal to 5",
            Invalid::BadFilter => "filterType must be WILDCARD and filter must satisfy regular expression '^[0-9a-zA-Z._*-]{1,128}'",
        })
    }
}

/// A repository's (or template's) tag mutability.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TagMutability {
    mode: Mode,
    /// The `*` wildcard filters, in the order given.
    exclusions: Vec<String>,
}

impl TagMutability {
    pub fn new(mode: Mode, exclusions: Vec<String>) -> Result<TagMutability, Invalid> {
        match (mode.with_exclusion(), exclusions.is_empty()) {
            (false, false) => return Err(Invalid::FiltersWithoutExclusionMode),
            (true, true) => return Err(Invalid::FiltersRequired),
            _ => {}
        }
        if exclusions.len() > MAX_FILTERS {
            return Err(Invalid::TooManyFilters);
        }
        if !exclusions.iter().all(|f| valid_filter(f)) {
            return Err(Invalid::BadFilter);
        }
        Ok(TagMutability { mode, exclusions })
    }

    pub fn mutable() -> TagMutability {
        TagMutability::default()
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn exclusions(&self) -> &[String] {
        &self.exclusions
    }

    /// Whether `tag` may not be moved (exclusion filters match the whole tag).
    pub fn is_immutable(&self, tag: &Tag) -> bool {
        let excluded = || {
            self.exclusions
                .iter()
                .any(|f| tag_pattern_matches(f, tag.as_str()))
        };
        match self.mode {
            Mode::Immutable => true,
            Mode::ImmutableWithExclusion => !excluded(),
            Mode::MutableWithExclusion => excluded(),
            Mode::Mutable => false,
        }
    }

    /// The filters as ECR shows and Berth stores them:
    /// `[{"filterType":"WILDCARD","filter":"..."}]`, or `None` without filters.
    pub fn exclusions_json(&self) -> Option<String> {
        if self.exclusions.is_empty() {
            return None;
        }
        let list: Vec<serde_json::Value> = self
            .exclusions
            .iter()
            .map(|f| serde_json::json!({ "filterType": "WILDCARD", "filter": f }))
            .collect();
        Some(serde_json::Value::Array(list).to_string())
    }

    /// A stored setting, trusted (it was validated when stored); an unreadable one
    /// reads as its mode without filters.
    pub fn from_stored(mode: &str, exclusions_json: Option<&str>) -> TagMutability {
        #[derive(serde::Deserialize)]
        struct Filter {
            filter: String,
        }
        let exclusions = exclusions_json
            .and_then(|j| serde_json::from_str::<Vec<Filter>>(j).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|f| f.filter)
            .collect();
        TagMutability {
            mode: Mode::parse(mode).unwrap_or_default(),
            exclusions,
        }
    }
}

/// `^[0-9a-zA-Z._*-]{1,128}$`
fn valid_filter(f: &str) -> bool {
    !f.is_empty()
        && f.len() <= 128
        && f.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'*' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(t: &str) -> Tag {
        t.parse().expect("tag")
    }

    fn with(mode: Mode, filters: &[&str]) -> TagMutability {
        TagMutability::new(mode, filters.iter().map(|s| s.to_string()).collect()).expect("valid")
    }

    #[test]
    fn modes() {
        assert!(!with(Mode::Mutable, &[]).is_immutable(&tag("latest")));
        assert!(with(Mode::Immutable, &[]).is_immutable(&tag("latest")));
        let s = with(Mode::ImmutableWithExclusion, &["latest", "dev-*"]);
        assert!(!s.is_immutable(&tag("latest")));
        assert!(!s.is_immutable(&tag("dev-42")));
        assert!(s.is_immutable(&tag("v1.0")));
        let s = with(Mode::MutableWithExclusion, &["release-*"]);
        assert!(s.is_immutable(&tag("release-1")));
        assert!(!s.is_immutable(&tag("latest")));
    }

    #[test]
    fn validation_and_round_trip() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            TagMutability::new(Mode::Mutable, f(&["a"])),
            Err(Invalid::FiltersWithoutExclusionMode)
        );
        assert_eq!(
            TagMutability::new(Mode::MutableWithExclusion, vec![]),
            Err(Invalid::FiltersRequired)
        );
        assert_eq!(
            TagMutability::new(Mode::MutableWithExclusion, f(&["a"; 6])),
            Err(Invalid::TooManyFilters)
        );
        assert_eq!(
            TagMutability::new(Mode::MutableWithExclusion, f(&["a/b"])),
            Err(Invalid::BadFilter)
        );
        assert_eq!(Mode::parse("mutable"), Err(Invalid::UnknownMode));
        let s = with(Mode::ImmutableWithExclusion, &["x*", "y"]);
        let back = TagMutability::from_stored(s.mode().as_str(), s.exclusions_json().as_deref());
        assert_eq!(back, s);
    }

    #[test]
    fn wildcards() {
        assert!(tag_pattern_matches("*", ""));
        assert!(tag_pattern_matches("a*c", "abbbc"));
        assert!(tag_pattern_matches("a*c*", "acx"));
        assert!(!tag_pattern_matches("a*c", "abd"));
        assert!(!tag_pattern_matches("latest", "latest2"));
        assert!(tag_pattern_matches("*-rc*", "v1-rc2"));
    }
}
