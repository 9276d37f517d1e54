//! Policy evaluation as AWS documents it for identity and resource-based policies:
//! an explicit Deny anywhere wins; within an account an Allow in either kind suffices
//! (but a resource policy naming only the account delegates to identity policies);
//! across accounts both must allow; an account's root has every identity permission.

use super::context::{Caller, CallerKind, RequestContext};
use super::policy::{Effect, Policy, PrincipalMatch};

/// One authorization question.
pub struct Request<'a> {
    pub caller: &'a Caller,
    /// `ecr:PutImage`, `iam:CreateUser`, `sts:AssumeRole`.
    pub action: &'a str,
    /// The resource's ARN, or `*` for actions on no particular resource.
    pub resource: &'a str,
    /// The account that owns the resource.
    pub resource_account: &'a str,
    /// A role's trust policy must allow even within its account.
    pub resource_policy_required: bool,
    pub context: &'a RequestContext,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(Denial),
}

/// Why a request was denied; each has ECR's (and IAM's) wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    ExplicitInIdentityPolicy,
    ExplicitInResourcePolicy,
    NoIdentityPolicyAllows,
    NoResourcePolicyAllows,
}

impl Denial {
    /// `User: <arn> is not authorized to perform: <action> on resource: <arn> ...`.
    pub fn message(self, caller_arn: &str, action: &str, resource: &str) -> String {
        let why = match self {
            Denial::ExplicitInIdentityPolicy => {
                "with an explicit deny in an identity-based policy".to_owned()
            }
            Denial::ExplicitInResourcePolicy => {
                "with an explicit deny in a resource-based policy".to_owned()
            }
            Denial::NoIdentityPolicyAllows => {
                format!("because no identity-based policy allows the {action} action")
            }
            Denial::NoResourcePolicyAllows => {
                format!("because no resource-based policy allows the {action} action")
            }
        };
        format!("User: {caller_arn} is not authorized to perform: {action} on resource: {resource} {why}")
    }
}

/// Decide `req` given the caller's identity policies and the resource's policies
/// (repository, registry, or a role's trust policy).
pub fn evaluate(req: &Request<'_>, identity: &[&Policy], resource: &[&Policy]) -> Decision {
    let is_root = req.caller.kind == CallerKind::Account;
    let identity_says = |effect| {
        identity.iter().any(|p| {
            p.applies(effect, req.caller, req.action, req.resource, req.context)
                != PrincipalMatch::No
        })
    };
    let resource_says = |effect| {
        resource
            .iter()
            .map(|p| p.applies(effect, req.caller, req.action, req.resource, req.context))
            .max()
            .unwrap_or(PrincipalMatch::No)
    };
    if !is_root && identity_says(Effect::Deny) {
        return Decision::Deny(Denial::ExplicitInIdentityPolicy);
    }
    if resource_says(Effect::Deny) != PrincipalMatch::No {
        return Decision::Deny(Denial::ExplicitInResourcePolicy);
    }
    let identity_allows = is_root || identity_says(Effect::Allow);
    let resource_allows = resource_says(Effect::Allow);
    // A trust policy must allow; then the usual same/cross-account rules apply (a
    // same-account trust naming the caller itself needs no identity policy).
    if req.resource_policy_required && resource_allows == PrincipalMatch::No {
        return Decision::Deny(Denial::NoResourcePolicyAllows);
    }
    if req.caller.account_id == req.resource_account {
        if identity_allows || resource_allows == PrincipalMatch::Caller {
            Decision::Allow
        } else {
            Decision::Deny(Denial::NoIdentityPolicyAllows)
        }
    } else if resource_allows == PrincipalMatch::No {
        Decision::Deny(Denial::NoResourcePolicyAllows)
    } else if !identity_allows {
        Decision::Deny(Denial::NoIdentityPolicyAllows)
    } else {
        Decision::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::super::policy::PolicyKind;
    use super::*;

    const A: &str = "111122223333";
    const B: &str = "444455556666";
    const REPO: &str = "arn:aws:ecr:us-east-1:111122223333:repository/app";

    fn user(account: &str, name: &str) -> Caller {
        let arn = format!("arn:aws:iam::{account}:user/{name}");
        Caller {
            kind: CallerKind::User,
            account_id: account.into(),
            arn: arn.clone(),
            principal_arn: arn,
            user_id: "AIDAEXAMPLE".into(),
            user_name: Some(name.into()),
        }
    }

    fn root(account: &str) -> Caller {
        let arn = format!("arn:aws:iam::{account}:root");
        Caller {
            kind: CallerKind::Account,
            account_id: account.into(),
            arn: arn.clone(),
            principal_arn: arn,
            user_id: account.into(),
            user_name: None,
        }
    }

    fn id(doc: &str) -> Policy {
        Policy::parse(doc, PolicyKind::Identity).expect("identity policy")
    }

    fn res(doc: &str) -> Policy {
        Policy::parse(doc, PolicyKind::Resource).expect("resource policy")
    }

    fn decide(
        caller: &Caller,
        action: &str,
        identity: &[&Policy],
        resource: &[&Policy],
    ) -> Decision {
        let ctx = RequestContext::new(caller, Some("127.0.0.1"), 1_795_305_600_000);
        evaluate(
            &Request {
                caller,
                action,
                resource: REPO,
                resource_account: A,
                resource_policy_required: false,
                context: &ctx,
            },
            identity,
            resource,
        )
    }

    const ALLOW_PUSH: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":["ecr:PutImage","ecr:Initiate*"],"Resource":"arn:aws:ecr:*:111122223333:repository/app"}}"#;

    #[test]
    fn identity_allow_and_its_absence() {
        let u = user(A, "ci");
        let p = id(ALLOW_PUSH);
        assert_eq!(decide(&u, "ecr:PutImage", &[&p], &[]), Decision::Allow);
        assert_eq!(
            decide(&u, "ecr:initiatelayerupload", &[&p], &[]),
            Decision::Allow
        );
        assert_eq!(
            decide(&u, "ecr:DescribeImages", &[&p], &[]),
            Decision::Deny(Denial::NoIdentityPolicyAllows)
        );
    }

    #[test]
    fn explicit_deny_wins_and_root_is_only_stopped_by_resource_denies() {
        let u = user(A, "ci");
        let allow = id(r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*"}]}"#);
        let deny =
            id(r#"{"Statement":[{"Effect":"Deny","NotAction":"ecr:Describe*","Resource":"*"}]}"#);
        assert_eq!(
            decide(&u, "ecr:PutImage", &[&allow, &deny], &[]),
            Decision::Deny(Denial::ExplicitInIdentityPolicy)
        );
        assert_eq!(
            decide(&u, "ecr:DescribeImages", &[&allow, &deny], &[]),
            Decision::Allow
        );
        let repo_deny = res(
            r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"ecr:BatchDeleteImage"}]}"#,
        );
        assert_eq!(
            decide(&root(A), "ecr:PutImage", &[], &[&repo_deny]),
            Decision::Allow
        );
        assert_eq!(
            decide(&root(A), "ecr:BatchDeleteImage", &[], &[&repo_deny]),
            Decision::Deny(Denial::ExplicitInResourcePolicy)
        );
    }

    #[test]
    fn same_account_resource_policy_naming_the_user_suffices_naming_the_account_delegates() {
        let u = user(A, "dev");
        let names_user = res(&format!(
            r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{A}:user/dev"}},"Action":"ecr:BatchGetImage"}}]}}"#
        ));
        let names_account = res(&format!(
            r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{A}"}},"Action":"ecr:BatchGetImage"}}]}}"#
        ));
        assert_eq!(
            decide(&u, "ecr:BatchGetImage", &[], &[&names_user]),
            Decision::Allow
        );
        assert_eq!(
            decide(&u, "ecr:BatchGetImage", &[], &[&names_account]),
            Decision::Deny(Denial::NoIdentityPolicyAllows)
        );
    }

    #[test]
    fn cross_account_needs_both() {
        let other_root = root(B);
        let other_user = user(B, "puller");
        let grant = res(&format!(
            r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{B}:root"}},"Action":["ecr:BatchGetImage"]}}]}}"#
        ));
        let pull =
            id(r#"{"Statement":[{"Effect":"Allow","Action":"ecr:BatchGetImage","Resource":"*"}]}"#);
        assert_eq!(
            decide(&other_root, "ecr:BatchGetImage", &[], &[]),
            Decision::Deny(Denial::NoResourcePolicyAllows)
        );
        assert_eq!(
            decide(&other_root, "ecr:BatchGetImage", &[], &[&grant]),
            Decision::Allow
        );
        assert_eq!(
            decide(&other_user, "ecr:BatchGetImage", &[], &[&grant]),
            Decision::Deny(Denial::NoIdentityPolicyAllows)
        );
        assert_eq!(
            decide(&other_user, "ecr:BatchGetImage", &[&pull], &[&grant]),
            Decision::Allow
        );
        assert_eq!(
            decide(&other_user, "ecr:BatchGetImage", &[&pull], &[]),
            Decision::Deny(Denial::NoResourcePolicyAllows)
        );
    }

    #[test]
    fn conditions_on_ip_time_and_variables() {
        let u = user(A, "app");
        let ip = |cidr: &str| {
            id(&format!(
                r#"{{"Statement":[{{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{{"IpAddress":{{"aws:SourceIp":"{cidr}"}}}}}}]}}"#
            ))
        };
        assert_eq!(
            decide(&u, "ecr:PutImage", &[&ip("127.0.0.0/8")], &[]),
            Decision::Allow
        );
        assert_ne!(
            decide(&u, "ecr:PutImage", &[&ip("10.0.0.0/8")], &[]),
            Decision::Allow
        );
        let before = id(
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"2026-01-01T00:00:00Z"}}}]}"#,
        );
        assert_ne!(decide(&u, "ecr:PutImage", &[&before], &[]), Decision::Allow);
        let own = id(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:*:repository/${aws:username}"}]}"#,
        );
        assert_ne!(
            decide(&user(A, "other"), "ecr:PutImage", &[&own], &[]),
            Decision::Allow
        );
        assert_eq!(decide(&u, "ecr:PutImage", &[&own], &[]), Decision::Allow);
        assert_eq!(
            decide(
                &user(A, "app"),
                "ecr:PutImage",
                &[&id(&ALLOW_PUSH.replace("app", "${aws:username}"))],
                &[]
            ),
            Decision::Allow
        );
    }

    #[test]
    fn set_operators_and_missing_keys() {
        let u = user(A, "t");
        let mut ctx = RequestContext::new(&u, None, 0);
        let check = |doc: &str, ctx: &RequestContext| {
            evaluate(
                &Request {
                    caller: &u,
                    action: "ecr:TagResource",
                    resource: REPO,
                    resource_account: A,
                    resource_policy_required: false,
                    context: ctx,
                },
                &[&id(doc)],
                &[],
            ) == Decision::Allow
        };
        let all = r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["team","env"]}}}]}"#;
        let any = r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["team"]}}}]}"#;
        let not_eq = r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringNotEquals":{"aws:RequestTag/env":"prod"}}}]}"#;
        let null = r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"Null":{"aws:RequestTag/env":"false"}}}]}"#;
        let if_exists = r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEqualsIfExists":{"aws:RequestTag/env":"dev"}}}]}"#;
        // No tags in the request.
        assert!(check(all, &ctx));
        assert!(!check(any, &ctx));
        assert!(check(not_eq, &ctx));
        assert!(!check(null, &ctx));
        assert!(check(if_exists, &ctx));
        ctx.set_request_tags(&[("team".into(), "a".into()), ("env".into(), "prod".into())]);
        assert!(check(all, &ctx));
        assert!(check(any, &ctx));
        assert!(!check(not_eq, &ctx));
        assert!(check(null, &ctx));
        assert!(!check(if_exists, &ctx));
        ctx.set_request_tags(&[("owner".into(), "x".into())]);
        assert!(!check(all, &ctx));
    }

    #[test]
    fn documents_are_validated_with_iams_words() {
        let bad = |doc: &str, kind| Policy::parse(doc, kind).expect_err(doc).0;
        assert_eq!(bad("{", PolicyKind::Identity), "Syntax errors in policy.");
        assert_eq!(
            bad(
                r#"{"Statement":{"Effect":"Allow","Action":"ecr:*"}}"#,
                PolicyKind::Identity
            ),
            "Policy statement must contain resources."
        );
        assert_eq!(
            bad(
                r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"ecr:*","Resource":"*"}}"#,
                PolicyKind::Identity
            ),
            "Policy document should not specify a principal."
        );
        assert_eq!(
            bad(
                r#"{"Statement":{"Effect":"Allow","Action":"ecr:*"}}"#,
                PolicyKind::Resource
            ),
            "Missing required field Principal"
        );
        assert_eq!(
            bad(
                r#"{"Statement":{"Effect":"Maybe","Action":"ecr:*","Resource":"*"}}"#,
                PolicyKind::Identity
            ),
            "The policy failed legacy parsing"
        );
        assert_eq!(
            bad(
                r#"{"Statement":{"Effect":"Allow","Action":"PutImage","Resource":"*"}}"#,
                PolicyKind::Identity
            ),
            "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
        );
        assert!(bad(r#"{"Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEq":{"aws:username":"x"}}}}"#, PolicyKind::Identity).starts_with("Invalid Condition type"));
    }
}
