//! Authorization: every operation asks here before it touches data.
//!
//! Gathers the policies that bear on a request (the caller's identity policies, the
//! repository's policy, the registry's policy), builds the request context (source IP,
//! time, tags), and asks [`iam::eval::evaluate`]. Parsed policies are cached per
//! principal and registry; any IAM change in this process clears the cache, and with
//! several nodes (PostgreSQL) entries also expire after a few seconds.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::{Action, Context, Error, Result, Service};
use crate::auth::{KeyOwnerIdentity, KeyStore, Principal, StoredKey};
use crate::clock;
use crate::iam::{self, Decision, Policy, PolicyKind, RequestContext};
use crate::meta::{IdentityKind, RegistryKey, Repository};
use crate::oci::RepositoryName;

/// How long a cached policy may be used when other nodes may change it.
const SHARED_TTL: Duration = Duration::from_secs(5);
const MAX_ENTRIES: usize = 10_000;

type Policies = Arc<Vec<Policy>>;

struct Entry<T> {
    value: T,
    loaded: Instant,
}

#[derive(Default)]
struct Inner {
    identities: HashMap<String, Entry<Policies>>,
    registries: HashMap<RegistryKey, Entry<Option<Arc<Policy>>>>,
    /// Decisions of condition-free policies, by "caller arn \0 action \0 resource".
    decisions: HashMap<String, Entry<Decision>>,
    /// Counts clearings. A value read from the metadata before a clearing may predate
    /// the change that caused it, so it is stored only if this has not moved meanwhile.
    generation: u64,
}

/// Insert into one of the caches, emptying it first when it is full.
fn insert_bounded<K: std::hash::Hash + Eq, T>(map: &mut HashMap<K, Entry<T>>, key: K, value: T) {
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(
        key,
        Entry {
            value,
            loaded: Instant::now(),
        },
    );
}

pub struct PolicyCache {
    single_node: bool,
    inner: RwLock<Inner>,
}

impl PolicyCache {
    pub fn new(single_node: bool) -> PolicyCache {
        PolicyCache {
            single_node,
            inner: RwLock::new(Inner::default()),
        }
    }

    fn fresh<T: Clone>(&self, e: Option<&Entry<T>>) -> Option<T> {
        let e = e?;
        (self.single_node || e.loaded.elapsed() < SHARED_TTL).then(|| e.value.clone())
    }

    /// A fresh entry of one of the caches, picked by `pick`.
    fn lookup<T: Clone>(&self, pick: impl FnOnce(&Inner) -> Option<&Entry<T>>) -> Option<T> {
        let inner = self.inner.read().ok()?;
        self.fresh(pick(&inner))
    }

    /// Take before reading what is to be cached; pass to [`PolicyCache::store`].
    fn generation(&self) -> u64 {
        self.inner.read().map_or(0, |i| i.generation)
    }

    /// Change the caches, unless they were cleared since `seen` (a poisoned lock only
    /// costs the caching).
    fn store(&self, seen: u64, put: impl FnOnce(&mut Inner)) {
        if let Ok(mut i) = self.inner.write() {
            if i.generation == seen {
                put(&mut i);
            }
        }
    }

    fn decision(&self, key: &str) -> Option<Decision> {
        self.lookup(|i| i.decisions.get(key))
    }

    /// Forget everything: a policy, key, user, group or role changed.
    fn clear(&self) {
        if let Ok(mut i) = self.inner.write() {
            let generation = i.generation.wrapping_add(1);
            *i = Inner {
                generation,
                ..Inner::default()
            };
        }
    }
}

/// Access keys for the authenticator (which caches them): a key of an account's root, or
/// of a user that still exists.
#[async_trait::async_trait]
impl KeyStore for Service {
    async fn find_key(
        &self,
        access_key_id: &str,
    ) -> std::result::Result<Option<StoredKey>, String> {
        let Some(key) = self
            .meta
            .access_key(access_key_id)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let owner = if key.principal_arn.ends_with(":root") {
            KeyOwnerIdentity::Root {
                account_id: key.account_id,
            }
        } else {
            let user = self
                .meta
                .identity_by_arn(&key.principal_arn)
                .await
                .map_err(|e| e.to_string())?;
            let Some(user) = user else {
                return Ok(None);
            };
            KeyOwnerIdentity::User {
                account_id: user.account_id,
                name: user.name,
                id: user.id,
                arn: user.arn,
            }
        };
        Ok(Some(StoredKey {
            secret_access_key: key.secret_access_key,
            active: key.active,
            owner,
        }))
    }

    async fn find_login(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> std::result::Result<Option<crate::auth::console::StoredLogin>, String> {
        find_login(self, account_id, user_name).await
    }
}

/// Console passwords for the authenticator: the user's login profile.
async fn find_login(
    service: &Service,
    account_id: &str,
    user_name: &str,
) -> std::result::Result<Option<crate::auth::console::StoredLogin>, String> {
    let user = service
        .meta
        .identity(account_id, IdentityKind::User, user_name)
        .await
        .map_err(|e| e.to_string())?;
    let Some(user) = user else {
        return Ok(None);
    };
    let profile = service
        .meta
        .login_profile(&user.id)
        .await
        .map_err(|e| e.to_string())?;
    Ok(profile.map(|p| crate::auth::console::StoredLogin {
        password_hash: p.password_hash,
        owner: KeyOwnerIdentity::User {
            account_id: user.account_id,
            name: user.name,
            id: user.id,
            arn: user.arn,
        },
    }))
}

impl crate::meta::Listener for PolicyCache {
    fn changed(&self, change: &crate::meta::Change) {
        // Decisions combine identity, repository and registry policies: any of them
        // changing drops them all (such changes are rare next to requests).
        if !matches!(
            change,
            crate::meta::Change::Content { .. } | crate::meta::Change::Events
        ) {
            self.clear();
        }
    }
}

/// A repository's ARN.
pub fn repository_arn(reg: &RegistryKey, name: &str) -> String {
    crate::aws::Arn::repository(&reg.account_id, &reg.region, name).to_string()
}

impl Service {
    /// Authorize `action` on a repository (which may not exist: denial comes first).
    pub(super) async fn authorize(
        &self,
        ctx: &Context,
        action: Action,
        name: &RepositoryName,
    ) -> Result<()> {
        self.authorize_tagged(ctx, action, name, &[]).await
    }

    /// As [`Service::authorize`], for a request that carries tags (`aws:RequestTag/*`).
    pub(super) async fn authorize_tagged(
        &self,
        ctx: &Context,
        action: Action,
        name: &RepositoryName,
        request_tags: &[(String, String)],
    ) -> Result<()> {
        if ctx.principal.is_system() {
            return Ok(());
        }
        // Before anything the decision rests on is read (see PolicyCache::store).
        let seen = self.policies.generation();
        let repo = self.find_repository(ctx, name).await?;
        let resource = repository_arn(&ctx.registry, name.as_str());
        self.decide(
            seen,
            ctx,
            &format!("ecr:{}", action.name()),
            &resource,
            repo.as_ref(),
            request_tags,
        )
        .await
    }

    /// Authorize creating a repository, without looking it up: a repository that does
    /// not exist yet has no policy. When the name turns out to be taken, the caller
    /// checks again with [`Service::authorize_tagged`] (that repository's policy).
    pub(super) async fn authorize_creation(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        request_tags: &[(String, String)],
    ) -> Result<()> {
        if ctx.principal.is_system() {
            return Ok(());
        }
        let seen = self.policies.generation();
        let resource = repository_arn(&ctx.registry, name.as_str());
        let action = format!("ecr:{}", Action::CreateRepository.name());
        self.decide(seen, ctx, &action, &resource, None, request_tags)
            .await
    }

    /// Authorize an action on no particular repository (resource `*`).
    pub(super) async fn authorize_registry(&self, ctx: &Context, action: Action) -> Result<()> {
        if ctx.principal.is_system() {
            return Ok(());
        }
        let seen = self.policies.generation();
        self.decide(seen, ctx, &format!("ecr:{}", action.name()), "*", None, &[])
            .await
    }

    /// `seen`: the cache generation taken before anything the decision rests on was read.
    async fn decide(
        &self,
        seen: u64,
        ctx: &Context,
        action: &str,
        resource: &str,
        repo: Option<&Repository>,
        request_tags: &[(String, String)],
    ) -> Result<()> {
        let Some(caller) = ctx.principal.caller() else {
            return Ok(());
        };
        let registry_policy = self.registry_policy(&ctx.registry).await?;
        let mut resource_policies: Vec<&Policy> = Vec::new();
        if let Some(p) = repo.and_then(|r| r.policy.as_deref()) {
            resource_policies.push(p);
        }
        if let Some(p) = registry_policy.as_deref() {
            resource_policies.push(p);
        }
        // The fast path: a root in its own registry with no resource policy to deny it.
        if caller.kind == iam::CallerKind::Account
            && ctx.registry.account_id == caller.account_id
            && resource_policies.is_empty()
        {
            return Ok(());
        }
        // Without conditions a decision depends only on (caller, action, resource) and on
        // whether the repository, with its policy, was considered (a create is decided
        // without it).
        let considered = repo.map_or(0, |r| r.id);
        let key = format!("{}\0{action}\0{resource}\0{considered}", caller.arn);
        let verdict = |d: Decision| match d {
            Decision::Allow => Ok(()),
            Decision::Deny(why) => Err(Error::AccessDenied(why.message(
                &caller.arn,
                action,
                resource,
            ))),
        };
        if let Some(d) = self.policies.decision(&key) {
            return verdict(d);
        }
        let (decision, cacheable) = self
            .evaluate_now(
                ctx,
                &caller,
                action,
                resource,
                repo,
                &resource_policies,
                request_tags,
            )
            .await?;
        if cacheable {
            self.policies
                .store(seen, |i| insert_bounded(&mut i.decisions, key, decision));
        }
        verdict(decision)
    }

    /// Whether the caller could still call `ecr:SetRepositoryPolicy` on `repo` if its
    /// policy were `policy` (ECR refuses such a self-lock-out unless forced).
    pub(super) async fn would_keep_policy_access(
        &self,
        ctx: &Context,
        repo: &Repository,
        policy: Policy,
    ) -> Result<bool> {
        let Some(caller) = ctx.principal.caller() else {
            return Ok(true);
        };
        let mut hypothetical = repo.clone();
        hypothetical.policy = Some(Arc::new(policy));
        let registry_policy = self.registry_policy(&ctx.registry).await?;
        let mut resource_policies: Vec<&Policy> = Vec::new();
        if let Some(p) = hypothetical.policy.as_deref() {
            resource_policies.push(p);
        }
        if let Some(p) = registry_policy.as_deref() {
            resource_policies.push(p);
        }
        let resource = repository_arn(&ctx.registry, repo.name.as_str());
        let (decision, _) = self
            .evaluate_now(
                ctx,
                &caller,
                "ecr:SetRepositoryPolicy",
                &resource,
                Some(&hypothetical),
                &resource_policies,
                &[],
            )
            .await?;
        Ok(decision == Decision::Allow)
    }

    /// Evaluate without the decision cache; also says whether the decision may be cached.
    #[allow(clippy::too_many_arguments)]
    async fn evaluate_now(
        &self,
        ctx: &Context,
        caller: &iam::Caller,
        action: &str,
        resource: &str,
        repo: Option<&Repository>,
        resource_policies: &[&Policy],
        request_tags: &[(String, String)],
    ) -> Result<(Decision, bool)> {
        let identity = self.identity_policies(&ctx.principal).await?;
        let identity_refs: Vec<&Policy> = identity.iter().collect();
        let cacheable = request_tags.is_empty()
            && !identity_refs
                .iter()
                .chain(resource_policies)
                .any(|p| p.has_conditions());
        let mut rc = RequestContext::new(caller, ctx.source_ip.as_deref(), clock::now_ms());
        if !request_tags.is_empty() {
            rc.set_request_tags(request_tags);
        }
        let needs_tags = identity_refs
            .iter()
            .chain(resource_policies)
            .any(|p| p.uses_resource_tags());
        if let (true, Some(r)) = (needs_tags, repo) {
            let tags = self.meta.resource_tags(r.id).await?;
            rc.set_resource_tags(&tags);
        }
        let req = iam::Request {
            caller,
            action,
            resource,
            resource_account: &ctx.registry.account_id,
            resource_policy_required: false,
            context: &rc,
        };
        Ok((
            iam::eval::evaluate(&req, &identity_refs, resource_policies),
            cacheable,
        ))
    }

    /// The parsed identity policies of a caller (none for a root).
    pub(super) async fn identity_policies(&self, principal: &Principal) -> Result<Policies> {
        let (account, kind, name, key) = match principal {
            Principal::User {
                account_id,
                name,
                arn,
                ..
            } => (account_id, IdentityKind::User, name, arn),
            Principal::AssumedRole {
                account_id,
                role_name,
                role_arn,
                ..
            } => (account_id, IdentityKind::Role, role_name, role_arn),
            Principal::Root { .. } | Principal::System { .. } => return Ok(Arc::new(Vec::new())),
        };
        if let Some(p) = self.policies.lookup(|i| i.identities.get(key)) {
            return Ok(p);
        }
        let seen = self.policies.generation();
        let docs = self.meta.identity_policies(account, kind, name).await?;
        let parsed: Policies = Arc::new(
            docs.iter()
                .filter_map(|d| Policy::parse(d, PolicyKind::Identity).ok())
                .collect(),
        );
        self.policies.store(seen, |i| {
            insert_bounded(&mut i.identities, key.clone(), parsed.clone())
        });
        Ok(parsed)
    }

    pub(super) async fn registry_policy(&self, reg: &RegistryKey) -> Result<Option<Arc<Policy>>> {
        if let Some(p) = self.policies.lookup(|i| i.registries.get(reg)) {
            return Ok(p);
        }
        let seen = self.policies.generation();
        let parsed = self
            .meta
            .registry_policy(reg)
            .await?
            .and_then(|t| Policy::parse(&t, PolicyKind::Resource).ok())
            .map(Arc::new);
        self.policies.store(seen, |i| {
            insert_bounded(&mut i.registries, reg.clone(), parsed.clone())
        });
        Ok(parsed)
    }

    /// Whether `principal` may read this deployment's metrics (`berth:GetMetrics`; an
    /// account's root may).
    pub async fn authorize_metrics(
        &self,
        principal: &Principal,
        source_ip: Option<&str>,
    ) -> Result<()> {
        let account = principal.account_id().unwrap_or_default().to_owned();
        self.authorize_iam(
            principal,
            source_ip,
            "berth:GetMetrics",
            "*",
            &account,
            None,
        )
        .await
    }

    /// Authorize an IAM or STS action (`iam:CreateUser`) on a resource of the caller's
    /// account, optionally with a resource policy (a role's trust policy).
    pub async fn authorize_iam(
        &self,
        principal: &Principal,
        source_ip: Option<&str>,
        action: &str,
        resource: &str,
        resource_account: &str,
        resource_policy: Option<&Policy>,
    ) -> Result<()> {
        let Some(caller) = principal.caller() else {
            return Ok(());
        };
        let identity = self.identity_policies(principal).await?;
        let identity_refs: Vec<&Policy> = identity.iter().collect();
        let rc = RequestContext::new(&caller, source_ip, clock::now_ms());
        let req = iam::Request {
            caller: &caller,
            action,
            resource,
            resource_account,
            resource_policy_required: resource_policy.is_some(),
            context: &rc,
        };
        let resource_policies: Vec<&Policy> = resource_policy.into_iter().collect();
        match iam::eval::evaluate(&req, &identity_refs, &resource_policies) {
            Decision::Allow => Ok(()),
            Decision::Deny(why) => Err(Error::AccessDenied(why.message(
                &caller.arn,
                action,
                resource,
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_read_before_a_clearing_is_not_cached() {
        let cache = PolicyCache::new(true);
        let seen = cache.generation();
        // An IAM change lands while the value is being read.
        cache.clear();
        cache.store(seen, |i| {
            insert_bounded(&mut i.decisions, "k".into(), Decision::Allow)
        });
        assert_eq!(cache.decision("k"), None);
        let seen = cache.generation();
        cache.store(seen, |i| {
            insert_bounded(&mut i.decisions, "k".into(), Decision::Allow)
        });
        assert_eq!(cache.decision("k"), Some(Decision::Allow));
    }
}
