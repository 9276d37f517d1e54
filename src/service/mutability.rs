//! Tag mutability: whether a push may move an existing tag to another image.

use crate::meta::RepositorySettings;
use crate::oci::Tag;

/// Whether `tag` may not be moved under the repository's setting (ECR's four modes;
/// exclusion filters are `*` wildcards matched against the whole tag).
pub fn is_immutable(settings: &RepositorySettings, tag: &Tag) -> bool {
    let excluded = || {
        filters(settings.mutability_exclusions.as_deref())
            .iter()
            .any(|f| wildcard_match(f, tag.as_str()))
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

/// `*` matches any run of characters (including none); everything else literally.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
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
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*c", "abbbc"));
        assert!(wildcard_match("a*c*", "acx"));
        assert!(!wildcard_match("a*c", "abd"));
        assert!(!wildcard_match("latest", "latest2"));
        assert!(wildcard_match("*-rc*", "v1-rc2"));
    }
}
