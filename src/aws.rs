//! AWS's vocabulary, shared by every layer: account ids, regions, and ARNs (one builder
//! and one parser, so no module spells an ARN by hand).

use std::fmt;

/// An AWS account id: exactly 12 digits.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A region name as AWS spells them (`us-east-1`): lowercase letters, digits, dashes.
pub fn is_region(s: &str) -> bool {
    (2..=25).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A validated string value: built by `parse` where it enters, or by `from_store` from
/// what this program validated before storing it; read as a `&str`.
macro_rules! validated_string {
    ($(#[$doc:meta])* $name:ident, $valid:path, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Option<$name> {
                $valid(s).then(|| $name(s.to_owned()))
            }

            /// A value read back from the metadata store, validated when it was written.
            pub fn from_store(s: String) -> $name {
                debug_assert!($valid(&s), "stored {} {s:?}", $what);
                $name(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<$name, String> {
                $name::parse(s).ok_or_else(|| format!("'{s}' is not {}", $what))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

validated_string!(
    /// An account id, 12 digits.
    AccountId,
    is_account_id,
    "an account id (12 digits)"
);

validated_string!(
    /// A region name (`us-east-1`).
    Region,
    is_region,
    "a region name (like us-east-1)"
);

/// An ARN: `arn:aws:<service>:<region>:<account>:<resource>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn {
    pub service: String,
    /// Empty for global services (IAM, STS).
    pub region: String,
    /// Empty for some resources; `aws` for AWS-managed policies.
    pub account: String,
    pub resource: String,
}

impl Arn {
    fn new(service: &str, region: &str, account: &str, resource: String) -> Arn {
        Arn {
            service: service.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            resource,
        }
    }

    /// `arn:aws:ecr:<region>:<account>:repository/<name>`
    pub fn repository(account: &str, region: &str, name: &str) -> Arn {
        Arn::new("ecr", region, account, format!("repository/{name}"))
    }

    /// `arn:aws:iam::<account>:root`
    pub fn root(account: &str) -> Arn {
        Arn::new("iam", "", account, "root".to_owned())
    }

    /// An IAM user, role or group: `arn:aws:iam::<account>:<noun><path><name>`, with
    /// `path` beginning and ending in `/`.
    pub fn identity(account: &str, noun: &str, path: &str, name: &str) -> Arn {
        Arn::new("iam", "", account, format!("{noun}{path}{name}"))
    }

    /// A managed policy: `arn:aws:iam::<account>:policy<path><name>`.
    pub fn policy(account: &str, path: &str, name: &str) -> Arn {
        Arn::new("iam", "", account, format!("policy{path}{name}"))
    }

    /// A role session: `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub fn assumed_role(account: &str, role: &str, session: &str) -> Arn {
        Arn::new("sts", "", account, format!("assumed-role/{role}/{session}"))
    }

    /// A KMS key: `arn:aws:kms:<region>:<account>:key/<id>`.
    pub fn kms_key(account: &str, region: &str, id: &str) -> Arn {
        Arn::new("kms", region, account, format!("key/{id}"))
    }

    /// Parse `arn:<partition>:<service>:<region>:<account>:<resource>` (the resource may
    /// contain `:`); `None` if it has fewer parts.
    pub fn parse(s: &str) -> Option<Arn> {
        let rest = s.strip_prefix("arn:")?;
        let mut parts = rest.splitn(5, ':');
        let (_partition, service, region, account, resource) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        Some(Arn::new(service, region, account, resource.to_owned()))
    }

    /// The repository an ECR repository ARN names: (account, region, name).
    pub fn as_repository(&self) -> Option<(&str, &str, &str)> {
        if self.service != "ecr" {
            return None;
        }
        let name = self.resource.strip_prefix("repository/")?;
        Some((&self.account, &self.region, name))
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:aws:{}:{}:{}:{}",
            self.service, self.region, self.account, self.resource
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_print_and_parse_back() {
        let r = Arn::repository("123456789012", "us-east-1", "team/app");
        assert_eq!(
            r.to_string(),
            "arn:aws:ecr:us-east-1:123456789012:repository/team/app"
        );
        assert_eq!(Arn::parse(&r.to_string()), Some(r.clone()));
        assert_eq!(
            r.as_repository(),
            Some(("123456789012", "us-east-1", "team/app"))
        );
        assert_eq!(Arn::root("1").to_string(), "arn:aws:iam::1:root");
        assert_eq!(
            Arn::identity("1", "user", "/ops/", "bob").to_string(),
            "arn:aws:iam::1:user/ops/bob"
        );
        assert_eq!(
            Arn::assumed_role("1", "r", "s").to_string(),
            "arn:aws:sts::1:assumed-role/r/s"
        );
        assert_eq!(Arn::parse("arn:aws:ecr:us-east-1:1"), None);
        assert_eq!(Arn::root("1").as_repository(), None);
    }

    #[test]
    fn account_ids_and_regions() {
        assert!(is_account_id("123456789012") && !is_account_id("12345678901a"));
        assert!(is_region("eu-west-3") && !is_region("EU") && !is_region("a"));
        let id: AccountId = "123456789012".parse().expect("valid");
        assert_eq!(id, "123456789012");
        assert!("1234".parse::<AccountId>().is_err());
        assert!(serde_json::from_str::<Region>("\"EU\"").is_err());
        assert_eq!(
            serde_json::to_string(&Region::parse("eu-west-3").expect("valid")).expect("json"),
            "\"eu-west-3\""
        );
    }
}
