//! Repository names, tags and manifest references, validated by ECR's rules.
//!
//! Each type has one validation predicate; once a value exists it is valid.

use std::fmt;
use std::str::FromStr;

use super::digest::Digest;

/// The pattern ECR's model gives for repository names (quoted in error messages).
pub const REPOSITORY_NAME_PATTERN: &str =
    "(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*";
/// The pattern ECR quotes for image tags.
pub const TAG_PATTERN: &str = "[a-zA-Z0-9-_.]+";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    #[error("must have length greater than or equal to 2")]
    TooShort,
    #[error("must have length less than or equal to 256")]
    TooLong,
    #[error("must satisfy regular expression '{REPOSITORY_NAME_PATTERN}'")]
    Pattern,
}

impl RepositoryName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` (the model's grammar).
fn is_valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: one '.', one or two '_', or any number of '-'.
        let start = i;
        let sep = b[i];
        while i < b.len() && b[i] == sep {
            i += 1;
        }
        let run = i - start;
        let ok = match sep {
            b'.' => run == 1,
            b'_' => run <= 2,
            b'-' => true,
            _ => false,
        };
        // A separator run sits between alphanumerics: "a._b" is two separators in a row.
        if !ok || !b.get(i).copied().is_some_and(is_alnum) {
            return false;
        }
    }
    true
}

impl FromStr for RepositoryName {
    type Err = InvalidName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() < 2 {
            return Err(InvalidName::TooShort);
        }
        if s.len() > 256 {
            return Err(InvalidName::TooLong);
        }
        if !s.split('/').all(is_valid_component) {
            return Err(InvalidName::Pattern);
        }
        Ok(RepositoryName(s.to_owned()))
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTag {
    #[error("must have length less than or equal to 300")]
    TooLong,
    #[error("must satisfy regular expression '{TAG_PATTERN}'")]
    Pattern,
}

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = InvalidTag;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > 300 {
            return Err(InvalidTag::TooLong);
        }
        let ok = !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err(InvalidTag::Pattern);
        }
        Ok(Tag(s.to_owned()))
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What follows `/manifests/`: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReference {
    #[error(transparent)]
    Tag(#[from] InvalidTag),
    #[error(transparent)]
    Digest(#[from] super::digest::InvalidDigest),
}

impl FromStr for Reference {
    type Err = InvalidReference;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Tags cannot contain ':', so a colon means the client meant a digest.
        if s.contains(':') {
            Ok(Reference::Digest(s.parse()?))
        } else {
            Ok(Reference::Tag(s.parse()?))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

/// A tag pattern (mutability exclusion filters, lifecycle `tagPatternList`): `*`
/// matches any run of characters (including none), everything else literally, and the
/// pattern spans the whole tag.
pub fn tag_pattern_matches(pattern: &str, text: &str) -> bool {
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

    #[test]
    fn repository_names() {
        for ok in [
            "ab",
            "my-app",
            "team/app/api",
            "a__b",
            "a---b",
            "a.b_c",
            "0x",
            "project-a/nginx-web-app",
        ] {
            assert!(ok.parse::<RepositoryName>().is_ok(), "{ok}");
        }
        assert_eq!("a".parse::<RepositoryName>(), Err(InvalidName::TooShort));
        assert_eq!(
            "a".repeat(257).parse::<RepositoryName>(),
            Err(InvalidName::TooLong)
        );
        for bad in [
            "My-App", "app/", "/app", "a//b", "a..b", "a___b", "-ab", "ab-", "a b", "a:b", "a.-b",
            "app._x",
        ] {
            assert_eq!(
                bad.parse::<RepositoryName>(),
                Err(InvalidName::Pattern),
                "{bad}"
            );
        }
    }

    #[test]
    fn tags() {
        assert!("latest".parse::<Tag>().is_ok());
        assert!("v1.2.3-rc_1".parse::<Tag>().is_ok());
        assert!(
            "-x".parse::<Tag>().is_ok(),
            "ECR's pattern allows a leading dash"
        );
        assert!("a".repeat(300).parse::<Tag>().is_ok());
        assert_eq!("a".repeat(301).parse::<Tag>(), Err(InvalidTag::TooLong));
        for bad in ["", "a+b", "a/b", "a b"] {
            assert_eq!(bad.parse::<Tag>(), Err(InvalidTag::Pattern), "{bad}");
        }
    }

    #[test]
    fn references() {
        assert!(matches!("latest".parse(), Ok(Reference::Tag(_))));
        let d = Digest::sha256_of(b"x").to_string();
        assert!(matches!(d.parse(), Ok(Reference::Digest(_))));
        assert!("sha256:zz".parse::<Reference>().is_err());
    }
}
