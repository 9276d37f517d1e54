//! Tag mutability: whether a push may move an existing tag to another image.

use crate::meta::RepositorySettings;
use crate::oci::name::tag_pattern_matches;
use crate::oci::Tag;

/// Whether `tag` may not be moved under the repository's setting (ECR's four modes;
/// exclusion filters are `*` wildcards matched against the whole tag).
pub fn is_immutable(settings: &RepositorySettings, tag: &Tag) -> bool {
    let excluded = || {
        filters(settings.mutability_exclusions.as_deref())
            .iter()
            .any(|f| tag_pattern_matches(f, tag.as_str()))
    };
    match settings.tag_mutability.as_str() {
        "IMMUTABLE" => true,
        "IMMUTABLE_WITH_EXCLUSION" => !excluded(),
        "MUTABLE_WITH_EXCLUSION" => excluded(),
        _ => false,
    }
}

/// The `filter` strings of stored exclusion filters.
pub fn filters(json: Option<&str>) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Filter {
        filter: String,
    }
    json.and_then(|j| serde_json::from_str::<Vec<Filter>>(j).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|f| f.filter)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: &str, filters: &[&str]) -> RepositorySettings {
        let json: Vec<String> = filters
            .iter()
            .map(|f| format!(r#"{{"filterType":"WILDCARD","filter":"{f}"}}"#))
            .collect();
        RepositorySettings {
            tag_mutability: mode.into(),
            mutability_exclusions: (!filters.is_empty()).then(|| format!("[{}]", json.join(","))),
            ..Default::default()
        }
    }

    fn tag(t: &str) -> Tag {
        t.parse().expect("tag")
    }

    #[test]
    fn modes() {
        assert!(!is_immutable(&settings("MUTABLE", &[]), &tag("latest")));
        assert!(is_immutable(&settings("IMMUTABLE", &[]), &tag("latest")));
        let s = settings("IMMUTABLE_WITH_EXCLUSION", &["latest", "dev-*"]);
        assert!(!is_immutable(&s, &tag("latest")));
        assert!(!is_immutable(&s, &tag("dev-42")));
        assert!(is_immutable(&s, &tag("v1.0")));
        let s = settings("MUTABLE_WITH_EXCLUSION", &["release-*"]);
        assert!(is_immutable(&s, &tag("release-1")));
        assert!(!is_immutable(&s, &tag("latest")));
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
