//! Resource tags (`[{Key, Value}]` on repositories and creation templates), validated
//! once where they enter: the ECR API, the bootstrap file. How many a repository may
//! hold in all (50) is the service's rule, since TagResource adds to what is there.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest key and value (ECR's limits).
const MAX_KEY: usize = 128;
const MAX_VALUE: usize = 256;

/// Tags with valid, distinct keys, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResourceTags(Vec<(String, String)>);

/// Why tags were refused (ECR's InvalidTagParameterException).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    BadTag,
    DuplicateKey(String),
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::BadTag => f.write_str(
                "Tag keys must be 1-128 characters and not start with 'aws:'; values at most 256 characters",
            ),
            Invalid::DuplicateKey(k) => write!(f, "Duplicate tag keys are not allowed: '{k}'"),
        }
    }
}

impl ResourceTags {
    pub fn parse(pairs: Vec<(String, String)>) -> Result<ResourceTags, Invalid> {
        if !pairs.iter().all(|(k, v)| is_key(k) && v.len() <= MAX_VALUE) {
            return Err(Invalid::BadTag);
        }
        let mut seen = HashSet::new();
        if let Some((k, _)) = pairs.iter().find(|(k, _)| !seen.insert(k.as_str())) {
            return Err(Invalid::DuplicateKey(k.clone()));
        }
        Ok(ResourceTags(pairs))
    }

    pub fn as_pairs(&self) -> &[(String, String)] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `aws:` keys are AWS's own.
fn is_key(k: &str) -> bool {
    (1..=MAX_KEY).contains(&k.len()) && !k.starts_with("aws:")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Result<ResourceTags, Invalid> {
        ResourceTags::parse(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn keys_are_distinct_and_not_aws_own() {
        assert_eq!(tags(&[("team", "a"), ("env", "")]).map(|t| t.len()), Ok(2));
        assert_eq!(tags(&[("aws:x", "a")]), Err(Invalid::BadTag));
        assert_eq!(tags(&[("", "a")]), Err(Invalid::BadTag));
        assert_eq!(tags(&[("k", &"v".repeat(257))]), Err(Invalid::BadTag));
        assert_eq!(
            tags(&[("a", "1"), ("a", "2")]),
            Err(Invalid::DuplicateKey("a".into()))
        );
    }
}
