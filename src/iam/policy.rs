//! Policy documents: parsed and validated once, into statements evaluation uses directly.

use serde_json::Value;

use super::condition::Condition;
use super::context::{Caller, CallerKind, RequestContext};
use super::wildcard;

/// Maximum size of a policy document we accept (ECR's repository policy limit is
/// 10,240 characters; IAM's managed policies allow 6,144 non-whitespace characters).
pub const MAX_POLICY_CHARS: usize = 10_240;

/// Where a document is used decides which elements it must and must not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Attached to a user, group or role: no `Principal`, `Resource` required.
    Identity,
    /// A repository or registry policy: `Principal` required, `Resource` optional.
    Resource,
    /// A role's trust policy: `Principal` required, no `Resource`.
    Trust,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// `Action` / `Resource` (listed patterns) or their `Not...` forms.
#[derive(Debug, Clone, PartialEq)]
pub struct Patterns {
    negated: bool,
    patterns: Vec<String>,
}

/// One value of a `Principal` element.
#[derive(Debug, Clone, PartialEq)]
enum PrincipalValue {
    Everyone,
    /// `{"AWS": ...}`: an ARN, or an account (as its id or root ARN).
    Aws(String),
    /// `{"Service": "ecs-tasks.amazonaws.com"}`: only `berth admin assume-role
    /// --as-service` acts as one.
    Service(String),
    /// Federated, CanonicalUser: never a Berth caller.
    Other,
}

#[derive(Debug, Clone, PartialEq)]
struct Principals {
    negated: bool,
    values: Vec<PrincipalValue>,
}

/// How a resource policy's `Principal` names a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PrincipalMatch {
    No,
    /// The caller's account is named: the account delegates, so the caller's own
    /// identity policies must allow too (unless the caller is the root).
    Account,
    /// The caller itself is named (or everyone is).
    Caller,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    actions: Patterns,
    /// `None`: a resource policy statement without `Resource` (the resource it is on).
    resources: Option<Patterns>,
    principals: Option<Principals>,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub statements: Vec<Statement>,
    /// `2012-10-17` enables `${aws:username}`-style variables.
    variables: bool,
}

/// Why a document was rejected, in IAM's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

fn err<T>(msg: &str) -> Result<T, PolicyError> {
    Err(PolicyError(msg.to_owned()))
}

impl Policy {
    pub fn parse(text: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        if text.chars().count() > MAX_POLICY_CHARS {
            return err("Cannot exceed quota for PolicySize: 10240");
        }
        let doc: Value = serde_json::from_str(text).or_else(|_| err("Syntax errors in policy."))?;
        let obj = doc
            .as_object()
            .ok_or_else(|| PolicyError("Syntax errors in policy.".into()))?;
        for key in obj.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return err(&format!("Syntax errors in policy. Unknown field {key}"));
            }
        }
        let variables = match obj.get("Version") {
            None => false,
            Some(Value::String(v)) if v == "2012-10-17" => true,
            Some(Value::String(v)) if v == "2008-10-17" => false,
            Some(_) => return err("The policy failed legacy parsing"),
        };
        let statements = match obj.get("Statement") {
            Some(Value::Array(list)) if !list.is_empty() => list.iter().collect::<Vec<_>>(),
            Some(s @ Value::Object(_)) => vec![s],
            Some(_) => return err("Syntax errors in policy."),
            None => return err("Missing required field Statement"),
        };
        let statements = statements
            .into_iter()
            .map(|s| Statement::parse(s, kind))
            .collect::<Result<Vec<_>, _>>()?;
        if kind == PolicyKind::Identity {
            let mut sids: Vec<&str> = statements.iter().filter_map(|s| s.sid.as_deref()).collect();
            sids.sort_unstable();
            if sids.windows(2).any(|w| w[0] == w[1]) {
                return err("Statement IDs (SID) in a single policy must be unique.");
            }
        }
        Ok(Policy {
            statements,
            variables,
        })
    }

    /// Whether any statement has a condition: its decisions depend on more than the
    /// caller, action and resource, so they cannot be cached.
    pub fn has_conditions(&self) -> bool {
        self.statements.iter().any(|s| !s.conditions.is_empty())
    }

    /// Whether any condition reads the resource's tags (so they must be loaded).
    pub fn uses_resource_tags(&self) -> bool {
        self.statements
            .iter()
            .any(|s| s.conditions.iter().any(Condition::uses_resource_tags))
    }

    /// Statements of `effect` that apply. For resource policies, also how the best
    /// matching statement names the caller.
    pub fn applies(
        &self,
        effect: Effect,
        caller: &Caller,
        action: &str,
        resource: &str,
        ctx: &RequestContext,
    ) -> PrincipalMatch {
        self.statements
            .iter()
            .filter(|s| s.effect == effect)
            .map(|s| s.applies(caller, action, resource, ctx, self.variables))
            .max()
            .unwrap_or(PrincipalMatch::No)
    }
}

impl Statement {
    fn parse(v: &Value, kind: PolicyKind) -> Result<Statement, PolicyError> {
        let obj = v
            .as_object()
            .ok_or_else(|| PolicyError("Syntax errors in policy.".into()))?;
        for key in obj.keys() {
            if !matches!(
                key.as_str(),
                "Sid"
                    | "Effect"
                    | "Action"
                    | "NotAction"
                    | "Resource"
                    | "NotResource"
                    | "Principal"
                    | "NotPrincipal"
                    | "Condition"
            ) {
                return err(&format!("Syntax errors in policy. Unknown field {key}"));
            }
        }
        let sid = match obj.get("Sid") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return err("Syntax errors in policy."),
        };
        let effect = match obj.get("Effect") {
            Some(Value::String(e)) if e == "Allow" => Effect::Allow,
            Some(Value::String(e)) if e == "Deny" => Effect::Deny,
            Some(_) => return err("The policy failed legacy parsing"),
            None => return err("Syntax errors in policy."),
        };
        let actions = one_of(obj, "Action", "NotAction")?
            .ok_or_else(|| PolicyError("Policy statement must contain actions.".into()))?;
        for a in &actions.patterns {
            if a != "*" && !a.contains(':') {
                return err(
                    "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
                );
            }
        }
        let resources = one_of(obj, "Resource", "NotResource")?;
        let principals = principals(obj)?;
        match kind {
            PolicyKind::Identity => {
                if principals.is_some() {
                    return err("Policy document should not specify a principal.");
                }
                if resources.is_none() {
                    return err("Policy statement must contain resources.");
                }
            }
            PolicyKind::Resource | PolicyKind::Trust => {
                if principals.is_none() {
                    return err("Missing required field Principal");
                }
                if kind == PolicyKind::Trust && resources.is_some() {
                    return err("Has prohibited field Resource");
                }
            }
        }
        let conditions = match obj.get("Condition") {
            None => Vec::new(),
            Some(Value::Object(ops)) => {
                let mut out = Vec::new();
                for (op, body) in ops {
                    out.extend(Condition::parse_block(op, body).map_err(PolicyError)?);
                }
                out
            }
            Some(_) => return err("Syntax errors in policy."),
        };
        Ok(Statement {
            sid,
            effect,
            actions,
            resources,
            principals,
            conditions,
        })
    }

    fn applies(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        ctx: &RequestContext,
        variables: bool,
    ) -> PrincipalMatch {
        let action_hit = self
            .actions
            .patterns
            .iter()
            .any(|p| wildcard::matches(p, action, true));
        if action_hit == self.actions.negated {
            return PrincipalMatch::No;
        }
        if let Some(res) = &self.resources {
            let hit = res.patterns.iter().any(|p| {
                let p = if variables {
                    substitute(p, ctx)
                } else {
                    Some(p.clone())
                };
                p.is_some_and(|p| resource_matches(&p, resource))
            });
            if hit == res.negated {
                return PrincipalMatch::No;
            }
        }
        let named = match &self.principals {
            None => PrincipalMatch::Caller,
            Some(p) => p.names(caller),
        };
        if named == PrincipalMatch::No || !self.conditions.iter().all(|c| c.holds(ctx, variables)) {
            return PrincipalMatch::No;
        }
        named
    }
}

impl Policy {
    /// Whether this trust policy lets the AWS service `service` (`ecs-tasks.amazonaws.com`)
    /// perform `action` (`sts:AssumeRole`): an `Allow` names it and no `Deny` does. A
    /// statement with conditions is not taken as trust: no service request context
    /// exists here to evaluate them against.
    pub fn trusts_service(&self, service: &str, action: &str) -> bool {
        let names = |st: &Statement| {
            let action_hit = st
                .actions
                .patterns
                .iter()
                .any(|p| wildcard::matches(p, action, true));
            action_hit != st.actions.negated
                && st
                    .principals
                    .as_ref()
                    .is_some_and(|p| p.names_service(service))
        };
        let denied = self
            .statements
            .iter()
            .any(|st| st.effect == Effect::Deny && names(st));
        let allowed = self
            .statements
            .iter()
            .any(|st| st.effect == Effect::Allow && st.conditions.is_empty() && names(st));
        allowed && !denied
    }
}

fn resource_matches(pattern: &str, resource: &str) -> bool {
    if pattern == "*" || resource == "*" {
        // An action on no particular resource (GetAuthorizationToken) matches only `*`.
        return pattern == "*";
    }
    wildcard::arn_matches(pattern, resource)
}

impl Principals {
    fn names_service(&self, service: &str) -> bool {
        let named = self.values.iter().any(|v| match v {
            PrincipalValue::Everyone => true,
            PrincipalValue::Service(s) => s.eq_ignore_ascii_case(service),
            PrincipalValue::Aws(_) | PrincipalValue::Other => false,
        });
        named != self.negated
    }

    fn names(&self, caller: &Caller) -> PrincipalMatch {
        let best = self
            .values
            .iter()
            .map(|v| match v {
                PrincipalValue::Everyone => PrincipalMatch::Caller,
                PrincipalValue::Aws(a) => aws_principal_names(a, caller),
                PrincipalValue::Service(_) | PrincipalValue::Other => PrincipalMatch::No,
            })
            .max()
            .unwrap_or(PrincipalMatch::No);
        if self.negated {
            // NotPrincipal: everyone except the named (and an account names its members).
            if best == PrincipalMatch::No {
                PrincipalMatch::Caller
            } else {
                PrincipalMatch::No
            }
        } else {
            best
        }
    }
}

fn aws_principal_names(value: &str, caller: &Caller) -> PrincipalMatch {
    if value == "*" {
        return PrincipalMatch::Caller;
    }
    let account = if value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit()) {
        Some(value)
    } else {
        value
            .strip_prefix("arn:aws:iam::")
            .and_then(|r| r.strip_suffix(":root"))
    };
    if let Some(account) = account {
        return match (account == caller.account_id, caller.kind) {
            (false, _) => PrincipalMatch::No,
            (true, CallerKind::Account) => PrincipalMatch::Caller,
            (true, _) => PrincipalMatch::Account,
        };
    }
    if value == caller.principal_arn || value == caller.arn {
        PrincipalMatch::Caller
    } else {
        PrincipalMatch::No
    }
}

/// A string or a non-empty list of strings.
fn string_list(v: &Value) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                _ => err("Syntax errors in policy."),
            })
            .collect(),
        _ => err("Syntax errors in policy."),
    }
}

fn one_of(
    obj: &serde_json::Map<String, Value>,
    field: &str,
    not_field: &str,
) -> Result<Option<Patterns>, PolicyError> {
    match (obj.get(field), obj.get(not_field)) {
        (Some(_), Some(_)) => err(&format!(
            "Syntax errors in policy. A statement cannot contain both {field} and {not_field}"
        )),
        (Some(v), None) => Ok(Some(Patterns {
            negated: false,
            patterns: string_list(v)?,
        })),
        (None, Some(v)) => Ok(Some(Patterns {
            negated: true,
            patterns: string_list(v)?,
        })),
        (None, None) => Ok(None),
    }
}

fn principals(obj: &serde_json::Map<String, Value>) -> Result<Option<Principals>, PolicyError> {
    let (negated, v) = match (obj.get("Principal"), obj.get("NotPrincipal")) {
        (Some(_), Some(_)) => return err("Syntax errors in policy."),
        (Some(v), None) => (false, v),
        (None, Some(v)) => (true, v),
        (None, None) => return Ok(None),
    };
    let values = match v {
        Value::String(s) if s == "*" => vec![PrincipalValue::Everyone],
        Value::Object(map) if !map.is_empty() => {
            let mut out = Vec::new();
            for (kind, ids) in map {
                for id in string_list(ids)? {
                    out.push(match kind.as_str() {
                        "AWS" => {
                            check_aws_principal(&id)?;
                            PrincipalValue::Aws(id)
                        }
                        "Service" => PrincipalValue::Service(id),
                        "Federated" | "CanonicalUser" => PrincipalValue::Other,
                        _ => return err(&format!("Invalid principal in policy: \"{kind}\"")),
                    });
                }
            }
            out
        }
        _ => return err("Invalid principal in policy"),
    };
    Ok(Some(Principals { negated, values }))
}

/// `*`, a 12-digit account, or an IAM/STS ARN.
fn check_aws_principal(id: &str) -> Result<(), PolicyError> {
    let account = id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit());
    let arn = (id.starts_with("arn:aws:iam::") || id.starts_with("arn:aws:sts::"))
        && id.split(':').count() >= 6;
    if id == "*" || account || arn {
        Ok(())
    } else {
        err(&format!("Invalid principal in policy: \"AWS\":\"{id}\""))
    }
}

/// Replace `${key}` policy variables with the request's values. `None` when a variable
/// has no value: the element then matches nothing, as in AWS.
pub fn substitute(s: &str, ctx: &RequestContext) -> Option<String> {
    if !s.contains("${") {
        return Some(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[i..]);
            return Some(out);
        };
        let key = after[..end].trim();
        match key {
            "*" | "?" | "$" => out.push_str(key),
            _ => out.push_str(ctx.value(key)?),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust(doc: &str) -> Policy {
        Policy::parse(doc, PolicyKind::Trust).expect("trust policy")
    }

    #[test]
    fn a_trust_policy_trusts_the_services_it_names() {
        let ecs = trust(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        );
        assert!(ecs.trusts_service("ecs-tasks.amazonaws.com", "sts:AssumeRole"));
        assert!(!ecs.trusts_service("lambda.amazonaws.com", "sts:AssumeRole"));
        let users_only = trust(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"sts:AssumeRole"}]}"#,
        );
        assert!(!users_only.trusts_service("ecs-tasks.amazonaws.com", "sts:AssumeRole"));
        let denied = trust(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":["ecs-tasks.amazonaws.com"]},"Action":"sts:*"},{"Effect":"Deny","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        );
        assert!(!denied.trusts_service("ecs-tasks.amazonaws.com", "sts:AssumeRole"));
    }
}
