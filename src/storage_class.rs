//! Where an image's bytes live, as ECR names it: STANDARD, or ARCHIVE (listed and
//! described, not pullable until restored).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StorageClass {
    #[default]
    Standard,
    Archive,
}

/// ECR's message for any other name.
pub const INVALID: &str = "Member must satisfy enum value set: [STANDARD, ARCHIVE]";

impl StorageClass {
    /// As the API and the metadata store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageClass::Standard => "STANDARD",
            StorageClass::Archive => "ARCHIVE",
        }
    }

    pub fn parse(s: &str) -> Option<StorageClass> {
        [StorageClass::Standard, StorageClass::Archive]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in [StorageClass::Standard, StorageClass::Archive] {
            assert_eq!(StorageClass::parse(c.as_str()), Some(c));
            assert_eq!(
                serde_json::to_string(&c).expect("json"),
                format!("\"{}\"", c.as_str())
            );
        }
        assert_eq!(StorageClass::parse("archive"), None);
    }
}
