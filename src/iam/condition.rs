//! The `Condition` element: operators, set qualifiers, `...IfExists`, and their semantics
//! against a request's context keys.

use std::net::IpAddr;

use super::context::RequestContext;
use super::wildcard;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    NumericEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    ArnLike,
    Null,
}

/// An operator: its base test and whether the result is negated (`StringNotEquals`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Operator {
    base: Base,
    negated: bool,
}

impl Operator {
    fn parse(name: &str) -> Option<Operator> {
        use Base::*;
        let (base, negated) = match name {
            "StringEquals" => (StringEquals, false),
            "StringNotEquals" => (StringEquals, true),
            "StringEqualsIgnoreCase" => (StringEqualsIgnoreCase, false),
            "StringNotEqualsIgnoreCase" => (StringEqualsIgnoreCase, true),
            "StringLike" => (StringLike, false),
            "StringNotLike" => (StringLike, true),
            "NumericEquals" => (NumericEquals, false),
            "NumericNotEquals" => (NumericEquals, true),
            "NumericLessThan" => (NumericLessThan, false),
            "NumericLessThanEquals" => (NumericLessThanEquals, false),
            "NumericGreaterThan" => (NumericGreaterThan, false),
            "NumericGreaterThanEquals" => (NumericGreaterThanEquals, false),
            "DateEquals" => (DateEquals, false),
            "DateNotEquals" => (DateEquals, true),
            "DateLessThan" => (DateLessThan, false),
            "DateLessThanEquals" => (DateLessThanEquals, false),
            "DateGreaterThan" => (DateGreaterThan, false),
            "DateGreaterThanEquals" => (DateGreaterThanEquals, false),
            "Bool" => (Bool, false),
            "BinaryEquals" => (BinaryEquals, false),
            "IpAddress" => (IpAddress, false),
            "NotIpAddress" => (IpAddress, true),
            "ArnEquals" | "ArnLike" => (ArnLike, false),
            "ArnNotEquals" | "ArnNotLike" => (ArnLike, true),
            "Null" => (Null, false),
            _ => return None,
        };
        Some(Operator { base, negated })
    }

    /// The un-negated test of one request value against one policy value.
    fn test(self, request: &str, policy: &str) -> bool {
        use Base::*;
        match self.base {
            StringEquals | BinaryEquals => request == policy,
            StringEqualsIgnoreCase => request.to_lowercase() == policy.to_lowercase(),
            StringLike => wildcard::matches(policy, request, false),
            NumericEquals
            | NumericLessThan
            | NumericLessThanEquals
            | NumericGreaterThan
            | NumericGreaterThanEquals => match (number(request), number(policy)) {
                (Some(r), Some(p)) => compare(self.base, r, p),
                _ => false,
            },
            DateEquals
            | DateLessThan
            | DateLessThanEquals
            | DateGreaterThan
            | DateGreaterThanEquals => match (date(request), date(policy)) {
                (Some(r), Some(p)) => compare(self.base, r, p),
                _ => false,
            },
            Bool => request.eq_ignore_ascii_case(policy),
            IpAddress => ip_in(request, policy),
            ArnLike => wildcard::arn_matches(policy, request),
            Null => false,
        }
    }
}

fn compare(base: Base, r: f64, p: f64) -> bool {
    use Base::*;
    match base {
        NumericEquals | DateEquals => r == p,
        NumericLessThan | DateLessThan => r < p,
        NumericLessThanEquals | DateLessThanEquals => r <= p,
        NumericGreaterThan | DateGreaterThan => r > p,
        _ => r >= p,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetQualifier {
    ForAnyValue,
    ForAllValues,
}

/// One test: operator × key × the policy's values (any of which may match).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    op: Operator,
    qualifier: Option<SetQualifier>,
    if_exists: bool,
    /// As written; looked up case-insensitively.
    key: String,
    values: Vec<String>,
}

impl Condition {
    /// Parse one `"Operator": {"key": value-or-values, ...}` entry.
    pub fn parse_block(operator: &str, body: &serde_json::Value) -> Result<Vec<Condition>, String> {
        let (qualifier, rest) = if let Some(r) = operator.strip_prefix("ForAnyValue:") {
            (Some(SetQualifier::ForAnyValue), r)
        } else if let Some(r) = operator.strip_prefix("ForAllValues:") {
            (Some(SetQualifier::ForAllValues), r)
        } else {
            (None, operator)
        };
        let (name, if_exists) = match rest.strip_suffix("IfExists") {
            Some(n) if n != "Null" => (n, true),
            _ => (rest, false),
        };
        let op =
            Operator::parse(name).ok_or_else(|| format!("Invalid Condition type : {operator}."))?;
        let map = body
            .as_object()
            .ok_or_else(|| "Syntax errors in policy.".to_owned())?;
        let mut out = Vec::new();
        for (key, value) in map {
            if !key.contains(':') {
                return Err(
                    "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
                        .into(),
                );
            }
            let values = scalar_list(value).ok_or_else(|| "Syntax errors in policy.".to_owned())?;
            if values.is_empty() {
                return Err("Syntax errors in policy.".into());
            }
            out.push(Condition {
                op,
                qualifier,
                if_exists,
                key: key.clone(),
                values,
            });
        }
        Ok(out)
    }

    /// Whether the key names a repository's tags (its evaluation needs them loaded).
    pub fn uses_resource_tags(&self) -> bool {
        let k = self.key.to_ascii_lowercase();
        k.starts_with("aws:resourcetag/") || k.starts_with("ecr:resourcetag/")
    }

    pub fn holds(&self, ctx: &RequestContext, substitute: bool) -> bool {
        let present = ctx.values(&self.key);
        if self.op.base == Base::Null {
            let absent = present.is_none_or(|v| v.is_empty());
            return self
                .values
                .iter()
                .any(|v| v.eq_ignore_ascii_case(&absent.to_string()));
        }
        let values: Vec<String> = if substitute {
            self.values
                .iter()
                .filter_map(|v| super::policy::substitute(v, ctx))
                .collect()
        } else {
            self.values.clone()
        };
        let Some(request) = present.filter(|v| !v.is_empty()) else {
            return match self.qualifier {
                _ if self.if_exists => true,
                Some(SetQualifier::ForAllValues) => true,
                Some(SetQualifier::ForAnyValue) => false,
                None => self.op.negated,
            };
        };
        // One request value against the policy's values (an OR; negated: none matches).
        let one = |r: &String| {
            let any = values.iter().any(|p| self.op.test(r, p));
            any != self.op.negated
        };
        match self.qualifier {
            Some(SetQualifier::ForAllValues) => request.iter().all(one),
            Some(SetQualifier::ForAnyValue) => request.iter().any(one),
            None if self.op.negated => request.iter().all(one),
            None => request.iter().any(one),
        }
    }
}

/// A condition value: a scalar or a list of scalars, as strings.
fn scalar_list(v: &serde_json::Value) -> Option<Vec<String>> {
    use serde_json::Value;
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match v {
        Value::Array(items) => items.iter().map(scalar).collect(),
        other => scalar(other).map(|s| vec![s]),
    }
}

fn number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A date as IAM accepts it: epoch seconds, or ISO 8601 (`2026-01-31`,
/// `2026-01-31T12:00:00Z`, with optional fraction and `±hh:mm` offset). Epoch seconds.
pub fn date(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Some(n) = number(s) {
        return Some(n);
    }
    let (day, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut d = day.split('-');
    let (y, m, dd): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&dd) {
        return None;
    }
    let mut seconds = days_from_civil(y, m, dd) as f64 * 86_400.0;
    if let Some(t) = time {
        let (clock, offset) = split_offset(t)?;
        let mut parts = clock.split(':');
        let h: f64 = parts.next()?.parse().ok()?;
        let mi: f64 = parts.next().unwrap_or("0").parse().ok()?;
        let sec: f64 = parts.next().unwrap_or("0").parse().ok()?;
        seconds += h * 3600.0 + mi * 60.0 + sec - offset;
    }
    Some(seconds)
}

/// `12:00:00Z` → ("12:00:00", 0); `12:00:00+02:00` → ("12:00:00", 7200).
fn split_offset(t: &str) -> Option<(&str, f64)> {
    if let Some(c) = t.strip_suffix('Z').or_else(|| t.strip_suffix('z')) {
        return Some((c, 0.0));
    }
    match t.rfind(['+', '-']) {
        Some(i) => {
            let (c, o) = t.split_at(i);
            let sign = if o.starts_with('-') { -1.0 } else { 1.0 };
            let (h, m) = o[1..].split_once(':').unwrap_or((&o[1..], "0"));
            let h: f64 = h.parse().ok()?;
            let m: f64 = m.parse().ok()?;
            Some((c, sign * (h * 3600.0 + m * 60.0)))
        }
        None => Some((t, 0.0)),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether `ip` is inside `cidr` (`10.0.0.0/8`, `::1/128`, or a bare address).
fn ip_in(ip: &str, cidr: &str) -> bool {
    let (net, bits) = match cidr.split_once('/') {
        Some((n, b)) => (n, b.parse::<u32>().ok()),
        None => (cidr, None),
    };
    let (Ok(ip), Ok(net)) = (ip.parse::<IpAddr>(), net.parse::<IpAddr>()) else {
        return false;
    };
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        (IpAddr::V4(a), IpAddr::V6(b)) => match b.to_ipv4_mapped() {
            Some(b) => (u32::from(a) as u128, u32::from(b) as u128, 32),
            None => return false,
        },
        (IpAddr::V6(a), IpAddr::V4(b)) => match a.to_ipv4_mapped() {
            Some(a) => (u32::from(a) as u128, u32::from(b) as u128, 32),
            None => return false,
        },
    };
    let bits = bits.unwrap_or(width).min(width);
    if bits == 0 {
        return true;
    }
    // The top `bits` of a `width`-bit address.
    let full = u128::MAX >> (128 - width);
    let mask = full & !full.checked_shr(bits).unwrap_or(0);
    (ip & mask) == (net & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matching() {
        assert!(ip_in("127.0.0.1", "127.0.0.0/8"));
        assert!(!ip_in("127.0.0.1", "10.0.0.0/8"));
        assert!(ip_in("10.1.2.3", "10.1.2.3"));
        assert!(ip_in("10.1.2.3", "0.0.0.0/0"));
        assert!(ip_in("::1", "::1/128"));
        assert!(!ip_in("::2", "::1/128"));
        assert!(ip_in("::ffff:127.0.0.1", "127.0.0.0/8"));
        assert!(!ip_in("nonsense", "127.0.0.0/8"));
    }

    #[test]
    fn dates_in_iam_formats() {
        assert_eq!(date("1970-01-02"), Some(86_400.0));
        assert_eq!(date("1970-01-01T01:00:00Z"), Some(3600.0));
        assert_eq!(date("1970-01-01T01:00:00+01:00"), Some(0.0));
        assert_eq!(date("2026-11-22T00:00:00Z"), Some(1_795_305_600.0));
        assert_eq!(date("1700000000"), Some(1_700_000_000.0));
        assert_eq!(date("yesterday"), None);
    }
}
