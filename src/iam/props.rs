//! Property tests: the evaluator against a reference model of AWS's documented rules.
//!
//! Random policies are generated as plain data, rendered to JSON and parsed by
//! [`Policy::parse`]; the real evaluator decides every (caller, action, resource) of a
//! small universe, and so does the model below, which works on the data directly with
//! naive matching. They must agree on every decision and every denial reason. Further
//! properties: statement order does not matter; adding a Deny never grants; adding an
//! Allow never takes away.
//!
//! The generator is a seeded SplitMix64, so a failure names its seed and case and
//! replays exactly.

use serde_json::{json, Value};

use super::context::{Caller, CallerKind, RequestContext};
use super::eval::{evaluate, Decision, Denial, Request};
use super::policy::{Policy, PolicyKind};

const A: &str = "111122223333";
const B: &str = "444455556666";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

// ---- the universe ----

fn callers() -> Vec<Caller> {
    let root = |acct: &str| Caller {
        kind: CallerKind::Account,
        account_id: acct.into(),
        arn: format!("arn:aws:iam::{acct}:root"),
        principal_arn: format!("arn:aws:iam::{acct}:root"),
        user_id: acct.into(),
        user_name: None,
    };
    let user = |acct: &str, name: &str| Caller {
        kind: CallerKind::User,
        account_id: acct.into(),
        arn: format!("arn:aws:iam::{acct}:user/{name}"),
        principal_arn: format!("arn:aws:iam::{acct}:user/{name}"),
        user_id: format!("AIDA{}", name.to_uppercase()),
        user_name: Some(name.into()),
    };
    vec![
        root(A),
        root(B),
        user(A, "alice"),
        user(A, "bob"),
        user(B, "carol"),
        Caller {
            kind: CallerKind::AssumedRole,
            account_id: A.into(),
            arn: format!("arn:aws:sts::{A}:assumed-role/deploy/s1"),
            principal_arn: format!("arn:aws:iam::{A}:role/deploy"),
            user_id: "AROADEPLOY:s1".into(),
            user_name: None,
        },
    ]
}

const ACTIONS: &[&str] = &[
    "ecr:BatchGetImage",
    "ecr:PutImage",
    "ecr:DescribeImages",
    "ecr:GetAuthorizationToken",
];

fn resources() -> Vec<String> {
    vec![
        format!("arn:aws:ecr:us-east-1:{A}:repository/app"),
        format!("arn:aws:ecr:us-east-1:{A}:repository/other"),
        format!("arn:aws:ecr:us-east-1:{B}:repository/app"),
    ]
}

fn action_patterns() -> Vec<String> {
    let mut v: Vec<String> = ACTIONS.iter().map(|s| s.to_string()).collect();
    v.extend(
        [
            "ecr:*",
            "ecr:Batch*",
            "ecr:*Image*",
            "*",
            "ecr:Describe?mages",
            "ECR:putimage",
        ]
        .map(String::from),
    );
    v
}

fn resource_patterns() -> Vec<String> {
    let mut v = resources();
    v.extend([
        "*".to_owned(),
        format!("arn:aws:ecr:*:{A}:repository/*"),
        "arn:aws:ecr:us-east-1:*:repository/app".to_owned(),
        format!("arn:aws:ecr:us-east-1:{A}:repository/a??"),
    ]);
    v
}

fn principal_values() -> Vec<String> {
    vec![
        "*".into(),
        A.into(),
        format!("arn:aws:iam::{A}:root"),
        format!("arn:aws:iam::{B}:root"),
        format!("arn:aws:iam::{A}:user/alice"),
        format!("arn:aws:iam::{B}:user/carol"),
        format!("arn:aws:iam::{A}:role/deploy"),
    ]
}

/// Conditions the model evaluates by hand.
#[derive(Debug, Clone, Copy)]
enum Cond {
    UsernameIsAlice,
    SourceIpInTen,
    PrincipalInA,
    UsernameBobIfExists,
}

impl Cond {
    const ALL: [Cond; 4] = [
        Cond::UsernameIsAlice,
        Cond::SourceIpInTen,
        Cond::PrincipalInA,
        Cond::UsernameBobIfExists,
    ];

    fn json(self) -> Value {
        match self {
            Cond::UsernameIsAlice => json!({"StringEquals": {"aws:username": "alice"}}),
            Cond::SourceIpInTen => json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
            Cond::PrincipalInA => {
                json!({"StringLike": {"aws:PrincipalArn": format!("arn:aws:iam::{A}:*")}})
            }
            Cond::UsernameBobIfExists => {
                json!({"StringEqualsIfExists": {"aws:username": "bob"}})
            }
        }
    }

    fn holds(self, caller: &Caller, source_ip: &str) -> bool {
        match self {
            Cond::UsernameIsAlice => caller.user_name.as_deref() == Some("alice"),
            Cond::SourceIpInTen => source_ip.starts_with("10."),
            Cond::PrincipalInA => caller
                .principal_arn
                .starts_with(&format!("arn:aws:iam::{A}:")),
            Cond::UsernameBobIfExists => caller.user_name.as_deref().is_none_or(|n| n == "bob"),
        }
    }
}

// ---- generated policies, as data ----

#[derive(Debug, Clone)]
struct Stmt {
    allow: bool,
    not_action: bool,
    actions: Vec<String>,
    /// `None`: no Resource element (resource and trust policies).
    resources: Option<Vec<String>>,
    not_resource: bool,
    /// Resource policies: the principal values, and whether it is `NotPrincipal`.
    principals: Option<(Vec<String>, bool)>,
    condition: Option<Cond>,
}

impl Stmt {
    fn json(&self) -> Value {
        let mut o = serde_json::Map::new();
        o.insert(
            "Effect".into(),
            json!(if self.allow { "Allow" } else { "Deny" }),
        );
        let key = if self.not_action {
            "NotAction"
        } else {
            "Action"
        };
        o.insert(key.into(), one_or_list(&self.actions));
        if let Some(r) = &self.resources {
            let key = if self.not_resource {
                "NotResource"
            } else {
                "Resource"
            };
            o.insert(key.into(), one_or_list(r));
        }
        if let Some((values, negated)) = &self.principals {
            let key = if *negated {
                "NotPrincipal"
            } else {
                "Principal"
            };
            let value = if values == &["*".to_owned()] && !negated {
                json!("*")
            } else {
                json!({"AWS": one_or_list(values)})
            };
            o.insert(key.into(), value);
        }
        if let Some(c) = self.condition {
            o.insert("Condition".into(), c.json());
        }
        Value::Object(o)
    }
}

fn one_or_list(items: &[String]) -> Value {
    if items.len() == 1 {
        json!(items[0])
    } else {
        json!(items)
    }
}

fn some_of(rng: &mut Rng, pool: &[String]) -> Vec<String> {
    let n = 1 + rng.below(2);
    (0..n).map(|_| rng.pick(pool).clone()).collect()
}

fn gen_stmt(rng: &mut Rng, kind: PolicyKind) -> Stmt {
    let allow = rng.chance(65);
    let (actions, not_action) = match kind {
        PolicyKind::Trust => (vec!["sts:AssumeRole".to_owned()], false),
        _ => (some_of(rng, &action_patterns()), rng.chance(15)),
    };
    let resources = match kind {
        PolicyKind::Identity => Some(some_of(rng, &resource_patterns())),
        PolicyKind::Resource if rng.chance(40) => Some(some_of(rng, &resource_patterns())),
        _ => None,
    };
    let not_resource = resources.is_some() && rng.chance(10);
    let principals = match kind {
        PolicyKind::Identity => None,
        // NotPrincipal is for Deny statements (with Allow it is discouraged and rare).
        _ => {
            let negated = !allow && rng.chance(25);
            Some((some_of(rng, &principal_values()), negated))
        }
    };
    let condition = rng.chance(25).then(|| *rng.pick(&Cond::ALL));
    Stmt {
        allow,
        not_action,
        actions,
        resources,
        not_resource,
        principals,
        condition,
    }
}

fn gen_policy(rng: &mut Rng, kind: PolicyKind) -> Vec<Stmt> {
    (0..1 + rng.below(3)).map(|_| gen_stmt(rng, kind)).collect()
}

fn render(stmts: &[Stmt], as_object: bool) -> String {
    let statement = if as_object && stmts.len() == 1 {
        stmts[0].json()
    } else {
        Value::Array(stmts.iter().map(Stmt::json).collect())
    };
    json!({"Version": "2012-10-17", "Statement": statement}).to_string()
}

// ---- the reference model ----

/// Naive glob: `*` any run, `?` one character.
fn glob(pattern: &[char], text: &[char]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some('*'), _) => {
            glob(&pattern[1..], text) || (!text.is_empty() && glob(pattern, &text[1..]))
        }
        (Some('?'), Some(_)) => glob(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) => p == t && glob(&pattern[1..], &text[1..]),
        _ => false,
    }
}

fn glob_str(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let fold = |s: &str| -> Vec<char> {
        if case_insensitive {
            s.to_lowercase().chars().collect()
        } else {
            s.chars().collect()
        }
    };
    glob(&fold(pattern), &fold(text))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Named {
    No,
    Account,
    Caller,
}

/// Whom one principal value names, per the docs: `*` is everyone; an account (id or
/// root ARN) is its root itself and delegates to its identities; an ARN is that one.
fn names(value: &str, caller: &Caller) -> Named {
    if value == "*" {
        return Named::Caller;
    }
    let account = if value.len() == 12 {
        Some(value)
    } else {
        value
            .strip_prefix("arn:aws:iam::")
            .and_then(|r| r.strip_suffix(":root"))
    };
    match account {
        Some(acct) if acct != caller.account_id => Named::No,
        Some(_) if caller.kind == CallerKind::Account => Named::Caller,
        Some(_) => Named::Account,
        None if value == caller.principal_arn || value == caller.arn => Named::Caller,
        None => Named::No,
    }
}

struct Case<'a> {
    caller: &'a Caller,
    action: &'a str,
    resource: &'a str,
    resource_account: &'a str,
    source_ip: &'a str,
    trust: bool,
}

/// How a statement bears on a request: `Named::No` when it does not apply.
fn model_applies(s: &Stmt, c: &Case) -> Named {
    let action_hit = s.actions.iter().any(|p| glob_str(p, c.action, true));
    if action_hit == s.not_action {
        return Named::No;
    }
    if let Some(rs) = &s.resources {
        let hit = rs.iter().any(|p| glob_str(p, c.resource, false));
        if hit == s.not_resource {
            return Named::No;
        }
    }
    if let Some(cond) = s.condition {
        if !cond.holds(c.caller, c.source_ip) {
            return Named::No;
        }
    }
    match &s.principals {
        None => Named::Caller,
        Some((values, false)) => values
            .iter()
            .map(|v| names(v, c.caller))
            .max()
            .unwrap_or(Named::No),
        Some((values, true)) => {
            if values.iter().all(|v| names(v, c.caller) == Named::No) {
                Named::Caller
            } else {
                Named::No
            }
        }
    }
}

/// AWS's evaluation logic, as its documentation states it.
fn model(c: &Case, identity: &[Vec<Stmt>], resource: &[Stmt]) -> Decision {
    let is_root = c.caller.kind == CallerKind::Account;
    let identity_stmts: Vec<&Stmt> = if is_root {
        Vec::new()
    } else {
        identity.iter().flatten().collect()
    };
    let identity_says = |allow: bool| {
        identity_stmts
            .iter()
            .any(|s| s.allow == allow && model_applies(s, c) != Named::No)
    };
    let resource_says = |allow: bool| {
        resource
            .iter()
            .filter(|s| s.allow == allow)
            .map(|s| model_applies(s, c))
            .max()
            .unwrap_or(Named::No)
    };
    // 1. An explicit deny anywhere wins.
    if identity_says(false) {
        return Decision::Deny(Denial::ExplicitInIdentityPolicy);
    }
    if resource_says(false) != Named::No {
        return Decision::Deny(Denial::ExplicitInResourcePolicy);
    }
    let identity_allows = is_root || identity_says(true);
    let resource_allows = resource_says(true);
    // 2. A role's trust policy must allow.
    if c.trust && resource_allows == Named::No {
        return Decision::Deny(Denial::NoResourcePolicyAllows);
    }
    // 3. Same account: either side suffices, but a resource policy naming only the
    //    account delegates to the identity side. 4. Across accounts: both.
    if c.caller.account_id == c.resource_account {
        if identity_allows || resource_allows == Named::Caller {
            Decision::Allow
        } else {
            Decision::Deny(Denial::NoIdentityPolicyAllows)
        }
    } else if resource_allows == Named::No {
        Decision::Deny(Denial::NoResourcePolicyAllows)
    } else if !identity_allows {
        Decision::Deny(Denial::NoIdentityPolicyAllows)
    } else {
        Decision::Allow
    }
}

// ---- running both ----

struct Scenario {
    identity: Vec<Vec<Stmt>>,
    resource: Vec<Stmt>,
    kind: PolicyKind,
}

impl Scenario {
    fn generate(rng: &mut Rng, kind: PolicyKind) -> Scenario {
        let identity = (0..rng.below(3))
            .map(|_| gen_policy(rng, PolicyKind::Identity))
            .collect();
        let resource = if kind == PolicyKind::Trust || rng.chance(70) {
            gen_policy(rng, kind)
        } else {
            Vec::new()
        };
        Scenario {
            identity,
            resource,
            kind,
        }
    }

    fn parsed(&self, as_object: bool) -> (Vec<Policy>, Option<Policy>) {
        let identity = self
            .identity
            .iter()
            .map(|p| parse(&render(p, as_object), PolicyKind::Identity))
            .collect();
        let resource = (!self.resource.is_empty())
            .then(|| parse(&render(&self.resource, as_object), self.kind));
        (identity, resource)
    }

    fn describe(&self) -> String {
        let ids: Vec<String> = self.identity.iter().map(|p| render(p, false)).collect();
        format!(
            "identity: {ids:#?}\nresource ({:?}): {}",
            self.kind,
            render(&self.resource, false)
        )
    }
}

fn parse(text: &str, kind: PolicyKind) -> Policy {
    match Policy::parse(text, kind) {
        Ok(p) => p,
        Err(e) => panic!("generated policy rejected ({}): {text}", e.0),
    }
}

fn real(c: &Case, identity: &[Policy], resource: Option<&Policy>) -> Decision {
    let ctx = RequestContext::new(c.caller, Some(c.source_ip), 1_795_305_600_000);
    let id_refs: Vec<&Policy> = identity.iter().collect();
    let res_refs: Vec<&Policy> = resource.into_iter().collect();
    evaluate(
        &Request {
            caller: c.caller,
            action: c.action,
            resource: c.resource,
            resource_account: c.resource_account,
            resource_policy_required: c.trust,
            context: &ctx,
        },
        &id_refs,
        &res_refs,
    )
}

/// Every request of the universe for a scenario: (caller, action, resource, account, ip).
fn each_case(kind: PolicyKind, mut f: impl FnMut(&Case)) {
    let callers = callers();
    let role = format!("arn:aws:iam::{A}:role/deploy");
    let targets: Vec<(String, &str)> = match kind {
        PolicyKind::Trust => vec![(role, A)],
        _ => resources()
            .into_iter()
            .map(|r| {
                let acct = if r.contains(B) { B } else { A };
                (r, acct)
            })
            .collect(),
    };
    let actions: &[&str] = match kind {
        PolicyKind::Trust => &["sts:AssumeRole"],
        _ => ACTIONS,
    };
    for caller in &callers {
        for action in actions {
            for (resource, account) in &targets {
                for ip in ["10.1.2.3", "192.168.7.7"] {
                    f(&Case {
                        caller,
                        action,
                        resource,
                        resource_account: account,
                        source_ip: ip,
                        trust: kind == PolicyKind::Trust,
                    });
                }
            }
        }
    }
}

fn check_against_model(seed: u64, cases: usize, kind: PolicyKind) {
    let mut rng = Rng(seed);
    let mut allows = 0usize;
    let mut total = 0usize;
    for n in 0..cases {
        let sc = Scenario::generate(&mut rng, kind);
        let as_object = rng.chance(50);
        let (identity, resource) = sc.parsed(as_object);
        each_case(kind, |c| {
            let expected = model(c, &sc.identity, &sc.resource);
            let got = real(c, &identity, resource.as_ref());
            assert_eq!(
                got,
                expected,
                "seed {seed} case {n}: {} {} on {} from {}\n{}",
                c.caller.arn,
                c.action,
                c.resource,
                c.source_ip,
                sc.describe()
            );
            total += 1;
            allows += usize::from(got == Decision::Allow);
        });
    }
    // The generator must exercise both outcomes substantially, or the test proves little.
    assert!(
        allows * 20 > total && allows * 20 < total * 19,
        "{allows} allows of {total}"
    );
}

#[test]
fn evaluator_agrees_with_the_model_for_repository_requests() {
    check_against_model(0x00BE_27F0_0001, 3000, PolicyKind::Resource);
}

#[test]
fn evaluator_agrees_with_the_model_for_assume_role() {
    check_against_model(0x00BE_27F0_0002, 2000, PolicyKind::Trust);
}

#[test]
fn statement_order_does_not_matter() {
    let mut rng = Rng(0x00BE_27F0_0003);
    for n in 0..1500 {
        let sc = Scenario::generate(&mut rng, PolicyKind::Resource);
        let mut shuffled = Scenario {
            identity: sc.identity.iter().rev().cloned().collect(),
            resource: sc.resource.clone(),
            kind: sc.kind,
        };
        let turn = 1.min(shuffled.resource.len());
        shuffled.resource.rotate_left(turn);
        for p in &mut shuffled.identity {
            p.reverse();
        }
        let (i1, r1) = sc.parsed(false);
        let (i2, r2) = shuffled.parsed(false);
        each_case(PolicyKind::Resource, |c| {
            assert_eq!(
                real(c, &i1, r1.as_ref()),
                real(c, &i2, r2.as_ref()),
                "case {n}\n{}",
                sc.describe()
            );
        });
    }
}

#[test]
fn a_deny_never_grants_and_an_allow_never_takes_away() {
    let mut rng = Rng(0x00BE_27F0_0004);
    for n in 0..1500 {
        let sc = Scenario::generate(&mut rng, PolicyKind::Resource);
        let mut extra = gen_stmt(&mut rng, PolicyKind::Identity);
        let (identity, resource) = sc.parsed(false);
        let base: Vec<Decision> = {
            let mut v = Vec::new();
            each_case(PolicyKind::Resource, |c| {
                v.push(real(c, &identity, resource.as_ref()))
            });
            v
        };
        for allow in [false, true] {
            extra.allow = allow;
            let mut more = identity.clone();
            more.push(parse(&render(&[extra.clone()], true), PolicyKind::Identity));
            let mut i = 0;
            each_case(PolicyKind::Resource, |c| {
                let after = real(c, &more, resource.as_ref());
                let before = base[i];
                i += 1;
                let ok = if allow {
                    before != Decision::Allow || after == Decision::Allow
                } else {
                    before == Decision::Allow || after != Decision::Allow
                };
                assert!(
                    ok,
                    "case {n}: adding {} changed {before:?} to {after:?} for {} {} on {}\n{}",
                    extra.json(),
                    c.caller.arn,
                    c.action,
                    c.resource,
                    sc.describe()
                );
            });
        }
    }
}
