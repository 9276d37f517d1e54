//! What a policy is evaluated against: the caller, the action, the resource, and the
//! request's condition keys (`aws:SourceIp`, `aws:ResourceTag/team`, ...).

use std::collections::HashMap;

/// The kind of caller, as `aws:PrincipalType` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerKind {
    /// An account's root user.
    Account,
    User,
    AssumedRole,
}

impl CallerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CallerKind::Account => "Account",
            CallerKind::User => "User",
            CallerKind::AssumedRole => "AssumedRole",
        }
    }
}

/// The caller as policies see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub kind: CallerKind,
    pub account_id: String,
    /// The caller's own ARN (for a role session, the `assumed-role` ARN).
    pub arn: String,
    /// The ARN a resource policy's `Principal` names: the user, the role (not the
    /// session), or the account root.
    pub principal_arn: String,
    /// `aws:userid`: the account id, `AIDA...`, or `AROA...:session`.
    pub user_id: String,
    /// `aws:username` (users only).
    pub user_name: Option<String>,
}

/// Condition keys by lower-cased name. Multi-valued keys (`aws:TagKeys`) hold several.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    keys: HashMap<String, Vec<String>>,
}

/// Condition key names are case-insensitive; a tag key after the `/` is not.
fn normalize(key: &str) -> String {
    match key.split_once('/') {
        Some((prefix, rest)) => format!("{}/{rest}", prefix.to_ascii_lowercase()),
        None => key.to_ascii_lowercase(),
    }
}

impl RequestContext {
    /// The global keys every request has.
    pub fn new(caller: &Caller, source_ip: Option<&str>, now_ms: i64) -> RequestContext {
        let mut ctx = RequestContext::default();
        ctx.set("aws:PrincipalArn", &caller.principal_arn);
        ctx.set("aws:PrincipalAccount", &caller.account_id);
        ctx.set("aws:PrincipalType", caller.kind.as_str());
        ctx.set("aws:userid", &caller.user_id);
        if let Some(name) = &caller.user_name {
            ctx.set("aws:username", name);
        }
        if let Some(ip) = source_ip {
            ctx.set("aws:SourceIp", ip);
        }
        ctx.set("aws:CurrentTime", &iso8601(now_ms / 1000));
        ctx.set("aws:EpochTime", &(now_ms / 1000).to_string());
        // Berth serves plain HTTP; TLS, when used, ends in front of it.
        ctx.set("aws:SecureTransport", "false");
        ctx
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.keys.insert(normalize(key), vec![value.to_owned()]);
    }

    pub fn set_many(&mut self, key: &str, values: Vec<String>) {
        self.keys.insert(normalize(key), values);
    }

    /// A resource's tags, as both `aws:ResourceTag/k` and `ecr:ResourceTag/k`.
    pub fn set_resource_tags(&mut self, tags: &[(String, String)]) {
        for (k, v) in tags {
            self.set(&format!("aws:ResourceTag/{k}"), v);
            self.set(&format!("ecr:ResourceTag/{k}"), v);
        }
    }

    /// The tags a request carries: `aws:RequestTag/k` and `aws:TagKeys`.
    pub fn set_request_tags(&mut self, tags: &[(String, String)]) {
        for (k, v) in tags {
            self.set(&format!("aws:RequestTag/{k}"), v);
        }
        self.set_many("aws:TagKeys", tags.iter().map(|(k, _)| k.clone()).collect());
    }

    pub fn values(&self, key: &str) -> Option<&[String]> {
        self.keys.get(&normalize(key)).map(Vec::as_slice)
    }

    /// A single-valued key's value.
    pub fn value(&self, key: &str) -> Option<&str> {
        match self.values(key) {
            Some([one]) => Some(one),
            _ => None,
        }
    }
}

/// `2026-11-22T10:00:00Z` for epoch seconds.
pub fn iso8601(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Inverse of days-from-civil (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates_round_trip_through_the_condition_parser() {
        for secs in [0, 86_399, 951_782_400, 1_795_305_600, 4_102_444_800] {
            let s = iso8601(secs);
            assert_eq!(super::super::condition::date(&s), Some(secs as f64), "{s}");
        }
        assert_eq!(iso8601(1_795_305_600), "2026-11-22T00:00:00Z");
    }

    #[test]
    fn keys_are_case_insensitive_but_tag_keys_are_not() {
        let mut ctx = RequestContext::default();
        ctx.set_resource_tags(&[("Team".into(), "blue".into())]);
        assert_eq!(ctx.value("ECR:resourcetag/Team"), Some("blue"));
        assert_eq!(ctx.value("aws:ResourceTag/team"), None);
    }
}
