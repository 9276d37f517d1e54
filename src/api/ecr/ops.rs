//! One function per ECR operation: typed input (with ECR's validation), one service
//! call, the output shape. Timestamps are epoch seconds as JSON numbers; absent members
//! are omitted, never null.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::ApiError;
use crate::auth::Authenticator;
use crate::aws::{AccountId, Arn, Region};
use crate::meta::{ImageDetail, Repository, RepositorySettings, StatusFilter};
use crate::mutability::{self, TagMutability};
use crate::oci::{Digest, RepositoryName, Tag};
use crate::resource_tags::{self, ResourceTags};
use crate::service::{
    page_after, Context, CreationTemplate, ImageFilter, ImageId, LayerCheck, Service,
    TemplateInput, PART_SIZE,
};

mod enhanced_findings;
mod fuzz;
mod governance;
mod images;
mod policies;
mod pull_through;
mod replication;
mod repositories;
mod scanning;
mod signing;

use governance::*;
use images::*;
use policies::*;
use repositories::*;

pub(crate) use fuzz::exercise_input;

type OpResult = Result<Value, ApiError>;

/// One operation of ECR's service model, as Berth declares it.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub name: &'static str,
    /// The IAM actions the service authorizes it as; a later one applies only when the
    /// input uses it (a CreateRepository with tags also needs `ecr:TagResource`).
    pub actions: &'static [&'static str],
    /// False: answered with "not yet" (ValidationException).
    pub implemented: bool,
}

/// Declares every operation once: the table ([`OPERATIONS`]) and the dispatch that
/// calls each handler (or answers "not yet"). The first four tokens name the values a
/// handler expression may use (the service, the authenticator, the context, the input).
macro_rules! operations {
    ($service:ident, $auth:ident, $ctx:ident, $i:ident;
     $( $name:ident [$($action:literal),+] $(=> $handler:expr)? ; )*) => {
        /// Every operation of ECR's service model (botocore's `ecr`, 62 operations), in
        /// name order: a target naming anything else is `UnknownOperationException`,
        /// answered before authentication, as ECR does.
        pub const OPERATIONS: &[Operation] = &[
            $( Operation {
                name: stringify!($name),
                actions: &[$($action),+],
                implemented: {
                    const HANDLERS: &[&str] = &[$(stringify!($handler))?];
                    !HANDLERS.is_empty()
                },
            }, )*
        ];

        #[allow(unreachable_code)]
        pub async fn dispatch(
            $service: &Service,
            $auth: &Authenticator,
            $ctx: &Context,
            op: &str,
            input: Value,
        ) -> OpResult {
            let _ = $auth;
            let $i = &Input(input);
            match op {
                $( stringify!($name) => {
                    $( return $handler.await; )?
                    Err(ApiError::new(
                        "ValidationException",
                        format!("Berth does not implement ecr:{op} yet"),
                    ))
                } )*
                other => Err(ApiError::new(
                    "UnknownOperationException",
                    format!("The operation '{other}' is not recognized"),
                )),
            }
        }
    };
}

operations! { service, auth, ctx, i;
    BatchCheckLayerAvailability ["ecr:BatchCheckLayerAvailability"] => batch_check_layer_availability(service, ctx, i);
    BatchDeleteImage ["ecr:BatchDeleteImage"] => batch_delete_image(service, ctx, i);
    BatchGetImage ["ecr:BatchGetImage"] => batch_get_image(service, ctx, i);
    BatchGetRepositoryScanningConfiguration ["ecr:BatchGetRepositoryScanningConfiguration"] =>
        scanning::batch_get_repository_scanning_configuration(service, ctx, i);
    CompleteLayerUpload ["ecr:CompleteLayerUpload"] => complete_layer_upload(service, ctx, i);
    CreatePullThroughCacheRule ["ecr:CreatePullThroughCacheRule"] => pull_through::create_rule(service, ctx, i);
    CreateRepository ["ecr:CreateRepository", "ecr:TagResource"] => create_repository(service, ctx, i);
    CreateRepositoryCreationTemplate ["ecr:CreateRepositoryCreationTemplate"] => create_template(service, ctx, i);
    DeleteLifecyclePolicy ["ecr:DeleteLifecyclePolicy"] => lifecycle_policy(service, ctx, i, true);
    DeletePullThroughCacheRule ["ecr:DeletePullThroughCacheRule"] => pull_through::delete_rule(service, ctx, i);
    DeleteRegistryPolicy ["ecr:DeleteRegistryPolicy"] => registry_policy(service, ctx, true);
    DeleteRepository ["ecr:DeleteRepository"] => delete_repository(service, ctx, i);
    DeleteRepositoryCreationTemplate ["ecr:DeleteRepositoryCreationTemplate"] => delete_template(service, ctx, i);
    DeleteRepositoryPolicy ["ecr:DeleteRepositoryPolicy"] => repository_policy(service, ctx, i, true);
    DeleteSigningConfiguration ["ecr:DeleteSigningConfiguration"] => signing::delete_configuration(service, ctx);
    DeregisterPullTimeUpdateExclusion ["ecr:DeregisterPullTimeUpdateExclusion"] => deregister_exclusion(service, ctx, i);
    DescribeImageReplicationStatus ["ecr:DescribeImageReplicationStatus"] =>
        replication::describe_image_replication_status(service, ctx, i);
    DescribeImageScanFindings ["ecr:DescribeImageScanFindings"] =>
        scanning::describe_image_scan_findings(service, ctx, i);
    DescribeImageSigningStatus ["ecr:DescribeImageSigningStatus"] =>
        signing::describe_image_signing_status(service, ctx, i);
    DescribeImages ["ecr:DescribeImages"] => describe_images(service, ctx, i);
    DescribePullThroughCacheRules ["ecr:DescribePullThroughCacheRules"] => pull_through::describe_rules(service, ctx, i);
    DescribeRegistry ["ecr:DescribeRegistry"] => describe_registry(service, ctx);
    DescribeReplicationBackfillResults ["ecr:DescribeReplicationBackfillResults"] =>
        replication::describe_backfill_results(service, ctx, i);
    DescribeRepositories ["ecr:DescribeRepositories"] => describe_repositories(service, ctx, i);
    DescribeRepositoryCreationTemplates ["ecr:DescribeRepositoryCreationTemplates"] => describe_templates(service, ctx, i);
    GetAccountSetting ["ecr:GetAccountSetting"] => get_account_setting(service, ctx, i);
    GetAuthorizationToken ["ecr:GetAuthorizationToken"] => get_authorization_token(service, auth, ctx, i);
    GetDownloadUrlForLayer ["ecr:GetDownloadUrlForLayer"] => get_download_url_for_layer(service, auth, ctx, i);
    GetLifecyclePolicy ["ecr:GetLifecyclePolicy"] => lifecycle_policy(service, ctx, i, false);
    GetLifecyclePolicyPreview ["ecr:GetLifecyclePolicyPreview"] => get_lifecycle_policy_preview(service, ctx, i);
    GetRegistryPolicy ["ecr:GetRegistryPolicy"] => registry_policy(service, ctx, false);
    GetRegistryScanningConfiguration ["ecr:GetRegistryScanningConfiguration"] =>
        scanning::get_registry_scanning_configuration(service, ctx);
    GetRepositoryPolicy ["ecr:GetRepositoryPolicy"] => repository_policy(service, ctx, i, false);
    GetSigningConfiguration ["ecr:GetSigningConfiguration"] => signing::get_configuration(service, ctx);
    InitiateLayerUpload ["ecr:InitiateLayerUpload"] => initiate_layer_upload(service, ctx, i);
    ListImageReferrers ["ecr:ListImageReferrers"] => list_image_referrers(service, ctx, i);
    ListImages ["ecr:ListImages"] => list_images(service, ctx, i);
    ListPullTimeUpdateExclusions ["ecr:ListPullTimeUpdateExclusions"] => list_exclusions(service, ctx, i);
    ListReplicationBackfills ["ecr:ListReplicationBackfills"] => replication::list_backfills(service, ctx, i);
    ListTagsForResource ["ecr:ListTagsForResource"] => list_tags_for_resource(service, ctx, i);
    PutAccountSetting ["ecr:PutAccountSetting"] => put_account_setting(service, ctx, i);
    PutImage ["ecr:PutImage"] => put_image(service, ctx, i);
    PutImageScanningConfiguration ["ecr:PutImageScanningConfiguration"] => put_image_scanning_configuration(service, ctx, i);
    PutImageTagMutability ["ecr:PutImageTagMutability"] => put_image_tag_mutability(service, ctx, i);
    PutLifecyclePolicy ["ecr:PutLifecyclePolicy"] => put_lifecycle_policy(service, ctx, i);
    PutRegistryPolicy ["ecr:PutRegistryPolicy"] => put_registry_policy(service, ctx, i);
    PutRegistryScanningConfiguration ["ecr:PutRegistryScanningConfiguration"] =>
        scanning::put_registry_scanning_configuration(service, ctx, i);
    PutReplicationConfiguration ["ecr:PutReplicationConfiguration"] =>
        replication::put_replication_configuration(service, ctx, i);
    PutSigningConfiguration ["ecr:PutSigningConfiguration"] => signing::put_configuration(service, ctx, i);
    RegisterPullTimeUpdateExclusion ["ecr:RegisterPullTimeUpdateExclusion"] => register_exclusion(service, ctx, i);
    SetRepositoryPolicy ["ecr:SetRepositoryPolicy"] => set_repository_policy(service, ctx, i);
    StartImageScan ["ecr:StartImageScan"] => scanning::start_image_scan(service, ctx, i);
    StartLifecyclePolicyPreview ["ecr:StartLifecyclePolicyPreview"] => start_lifecycle_policy_preview(service, ctx, i);
    StartReplicationBackfill ["ecr:StartReplicationBackfill"] => replication::start_backfill(service, ctx, i);
    StopReplicationBackfill ["ecr:StopReplicationBackfill"] => replication::stop_backfill(service, ctx, i);
    TagResource ["ecr:TagResource"] => tag_resource(service, ctx, i);
    UntagResource ["ecr:UntagResource"] => untag_resource(service, ctx, i);
    UpdateImageStorageClass ["ecr:UpdateImageStorageClass"] => update_image_storage_class(service, ctx, i);
    UpdatePullThroughCacheRule ["ecr:UpdatePullThroughCacheRule"] => pull_through::update_rule(service, ctx, i);
    UpdateRepositoryCreationTemplate ["ecr:UpdateRepositoryCreationTemplate"] => update_template(service, ctx, i);
    UploadLayerPart ["ecr:UploadLayerPart"] => upload_layer_part(service, ctx, i);
    ValidatePullThroughCacheRule ["ecr:ValidatePullThroughCacheRule"] => pull_through::validate_rule(service, ctx, i);
}

#[cfg(test)]
pub fn is_operation(name: &str) -> bool {
    OPERATIONS.binary_search_by(|o| o.name.cmp(name)).is_ok()
}

/// The operation table as `docs/compatibility.md` lists it (a test keeps them equal).
pub fn operations_markdown() -> String {
    let mut out = String::from("| operation | authorized as | in Berth |\n|---|---|---|\n");
    for op in OPERATIONS {
        let actions = op.actions.join(", ");
        let state = if op.implemented {
            "implemented"
        } else {
            "not yet"
        };
        out.push_str(&format!("| {} | {actions} | {state} |\n", op.name));
    }
    out
}

// ---- input helpers ----

/// A request body, with typed accessors that answer in ECR's words.
struct Input(Value);

impl Input {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn str_opt(&self, key: &str) -> Result<Option<&str>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::serialization(format!(
                "Expected a string for '{key}'"
            ))),
        }
    }

    fn str_req(&self, key: &str) -> Result<&str, ApiError> {
        self.str_opt(key)?
            .ok_or_else(|| ApiError::invalid(key, "Member must not be null"))
    }

    fn bool_opt(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::serialization(format!(
                "Expected a boolean for '{key}'"
            ))),
        }
    }

    fn i64_opt(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError::serialization(format!("Expected an integer for '{key}'"))),
            Some(_) => Err(ApiError::serialization(format!(
                "Expected a number for '{key}'"
            ))),
        }
    }

    fn array_opt(&self, key: &str) -> Result<Option<&Vec<Value>>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(ApiError::serialization(format!(
                "Expected a list for '{key}'"
            ))),
        }
    }

    /// A list of strings of 1..=max items.
    fn strings(&self, key: &str, max: usize) -> Result<Option<Vec<String>>, ApiError> {
        let Some(items) = self.array_opt(key)? else {
            return Ok(None);
        };
        check_len(key, items.len(), max)?;
        items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::serialization(format!("Expected strings in '{key}'")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn repository_name(&self) -> Result<RepositoryName, ApiError> {
        parse_repository_name("repositoryName", self.str_req("repositoryName")?)
    }

    /// `maxResults` within 1..=max, or the default.
    fn max_results(&self, max: i64, default: u32) -> Result<u32, ApiError> {
        match self.i64_opt("maxResults")? {
            None => Ok(default),
            Some(n) if n < 1 => Err(ApiError::invalid(
                "maxResults",
                "Member must have value greater than or equal to 1",
            )),
            Some(n) if n > max => Err(ApiError::invalid(
                "maxResults",
                format!("Member must have value less than or equal to {max}"),
            )),
            Some(n) => Ok(u32::try_from(n).unwrap_or(1)),
        }
    }

    /// The position a `nextToken` encodes.
    fn next_token(&self) -> Result<Option<String>, ApiError> {
        let Some(t) = self.str_opt("nextToken")? else {
            return Ok(None);
        };
        URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(Some)
            .ok_or_else(|| ApiError::invalid("nextToken", "Invalid NextToken"))
    }

    /// `filter.tagStatus` as Some(true) tagged / Some(false) untagged / None any.
    fn tag_status(&self) -> Result<Option<bool>, ApiError> {
        let status = self
            .get("filter")
            .and_then(|f| f.get("tagStatus"))
            .and_then(Value::as_str);
        match status {
            None | Some("ANY") => Ok(None),
            Some("TAGGED") => Ok(Some(true)),
            Some("UNTAGGED") => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid(
                "filter.tagStatus",
                "Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]",
            )),
        }
    }

    fn image_filter(&self) -> Result<ImageFilter, ApiError> {
        Ok(ImageFilter {
            tagged: self.tag_status()?,
            status: self.image_status()?,
        })
    }

    /// `filter.imageStatus`: ACTIVE (the default), ARCHIVED, ACTIVATING or ANY.
    fn image_status(&self) -> Result<StatusFilter, ApiError> {
        let status = self
            .get("filter")
            .and_then(|f| f.get("imageStatus"))
            .and_then(Value::as_str);
        match status {
            None | Some("ACTIVE") => Ok(StatusFilter::Active),
            Some("ARCHIVED") => Ok(StatusFilter::Archived),
            Some("ACTIVATING") => Ok(StatusFilter::Activating),
            Some("ANY") => Ok(StatusFilter::Any),
            Some(_) => Err(ApiError::invalid(
                "filter.imageStatus",
                "Member must satisfy enum value set: [ACTIVE, ARCHIVED, ACTIVATING, ANY]",
            )),
        }
    }

    /// The required `imageId` member.
    fn image_id(&self) -> Result<ImageId, ApiError> {
        let Some(id) = self.get("imageId").filter(|v| v.is_object()) else {
            return Err(ApiError::invalid("imageId", "Member must not be null"));
        };
        let s = |k: &str| id.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(ImageId {
            digest: s("imageDigest"),
            tag: s("imageTag"),
        })
    }

    fn image_ids(&self, key: &str, required: bool) -> Result<Option<Vec<ImageId>>, ApiError> {
        let Some(items) = self.array_opt(key)? else {
            return if required {
                Err(ApiError::invalid(key, "Member must not be null"))
            } else {
                Ok(None)
            };
        };
        check_len(key, items.len(), 100)?;
        items
            .iter()
            .map(|v| {
                let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
                if !v.is_object() {
                    return Err(ApiError::serialization(format!(
                        "Expected image ids in '{key}'"
                    )));
                }
                Ok(ImageId {
                    digest: s("imageDigest"),
                    tag: s("imageTag"),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

fn check_len(key: &str, n: usize, max: usize) -> Result<(), ApiError> {
    check_len_between(key, n, 1, max)
}

/// ECR's length constraint on `key`: `min..=max`.
fn check_len_between(key: &str, n: usize, min: usize, max: usize) -> Result<(), ApiError> {
    if n < min {
        return Err(ApiError::invalid(
            key,
            format!("Member must have length greater than or equal to {min}"),
        ));
    }
    if n > max {
        return Err(ApiError::invalid(
            key,
            format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

fn parse_repository_name(member: &str, s: &str) -> Result<RepositoryName, ApiError> {
    s.parse().map_err(|e| ApiError::invalid(member, e))
}

fn parse_tag(member: &str, s: &str) -> Result<Tag, ApiError> {
    s.parse().map_err(|e| ApiError::invalid(member, e))
}

fn parse_digest(member: &str, s: &str) -> Result<Digest, ApiError> {
    s.parse().map_err(|_| {
        ApiError::invalid(
            member,
            "must satisfy regular expression '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'",
        )
    })
}

fn token(position: &str) -> String {
    URL_SAFE_NO_PAD.encode(position)
}

fn seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

/// Insert `value` unless it is None.
fn put_opt(obj: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        obj.insert(key.to_owned(), v);
    }
}

fn with_next(mut body: Value, next: Option<String>) -> Value {
    if let (Some(n), Some(obj)) = (next, body.as_object_mut()) {
        obj.insert("nextToken".into(), json!(token(&n)));
    }
    body
}

// ---- shapes ----

fn repository_json(service: &Service, ctx: &Context, repo: &Repository) -> Value {
    let s = &repo.settings;
    let mut obj = json!({
        "repositoryArn": Service::repository_arn(ctx, &repo.name),
        "registryId": ctx.registry.account_id,
        "repositoryName": repo.name.as_str(),
        "repositoryUri": service.repository_uri(ctx, &repo.name),
        "createdAt": seconds(repo.created_at),
        "imageTagMutability": s.tag_mutability.mode().as_str(),
        "imageScanningConfiguration": { "scanOnPush": s.scan_on_push },
    });
    let mut encryption = json!({ "encryptionType": s.encryption_type });
    if let (Some(k), Some(e)) = (&s.kms_key, encryption.as_object_mut()) {
        e.insert("kmsKey".into(), json!(k));
    }
    if let Some(o) = obj.as_object_mut() {
        o.insert("encryptionConfiguration".into(), encryption);
        put_opt(
            o,
            "imageTagMutabilityExclusionFilters",
            exclusions_json(&s.tag_mutability),
        );
    }
    obj
}

fn image_id_json(id: &ImageId) -> Value {
    let mut o = Map::new();
    put_opt(&mut o, "imageDigest", id.digest.clone().map(Value::from));
    put_opt(&mut o, "imageTag", id.tag.clone().map(Value::from));
    Value::Object(o)
}

fn image_detail_json(ctx: &Context, name: &RepositoryName, d: &ImageDetail) -> Value {
    let mut o = Map::new();
    o.insert("registryId".into(), json!(ctx.registry.account_id));
    o.insert("repositoryName".into(), json!(name.as_str()));
    o.insert("imageDigest".into(), json!(d.digest));
    if !d.tags.is_empty() {
        o.insert("imageTags".into(), json!(d.tags));
    }
    o.insert("imageSizeInBytes".into(), json!(d.size));
    o.insert("imagePushedAt".into(), seconds(d.pushed_at));
    o.insert("imageManifestMediaType".into(), json!(d.media_type));
    put_opt(
        &mut o,
        "artifactMediaType",
        d.config_media_type.clone().map(Value::from),
    );
    put_opt(
        &mut o,
        "lastRecordedPullTime",
        d.last_pulled_at.map(seconds),
    );
    put_opt(
        &mut o,
        "subjectManifestDigest",
        d.subject.clone().map(Value::from),
    );
    o.insert(
        "imageStatus".into(),
        json!(if d.archived { "ARCHIVED" } else { "ACTIVE" }),
    );
    put_opt(&mut o, "lastArchivedAt", d.last_archived_at.map(seconds));
    put_opt(&mut o, "lastActivatedAt", d.last_activated_at.map(seconds));
    if let Some(state) = &d.scan {
        scanning::scan_summary(&mut o, state);
    }
    Value::Object(o)
}

/// Mutability and its exclusion filters, validated together (crate::mutability).
fn mutability(i: &Input) -> Result<Option<TagMutability>, ApiError> {
    let key = "imageTagMutabilityExclusionFilters";
    let invalid = |key: &str, e: mutability::Invalid| ApiError::invalid(key, e.to_string());
    let mode = i
        .str_opt("imageTagMutability")?
        .map(mutability::Mode::parse)
        .transpose()
        .map_err(|e| invalid("imageTagMutability", e))?;
    let filters = match i.array_opt(key)? {
        None => Vec::new(),
        Some(_) if mode.is_none_or(|m| !m.with_exclusion()) => {
            return Err(invalid(
                key,
                mutability::Invalid::FiltersWithoutExclusionMode,
            ))
        }
        Some(list) => {
            check_len(key, list.len(), mutability::MAX_FILTERS)?;
            list.iter()
                .map(|f| {
                    let wildcard = f.get("filterType").and_then(Value::as_str) == Some("WILDCARD");
                    match f.get("filter").and_then(Value::as_str) {
                        Some(filter) if wildcard => Ok(filter.to_owned()),
                        _ => Err(invalid(key, mutability::Invalid::BadFilter)),
                    }
                })
                .collect::<Result<_, _>>()?
        }
    };
    mode.map(|m| TagMutability::new(m, filters).map_err(|e| invalid(key, e)))
        .transpose()
}

/// The exclusion filters as ECR shows them, if there are any.
fn exclusions_json(m: &TagMutability) -> Option<Value> {
    m.exclusions_json()
        .and_then(|j| serde_json::from_str(&j).ok())
}

/// `[{Key, Value}]` tags, validated.
fn resource_tags(i: &Input, key: &str) -> Result<ResourceTags, ApiError> {
    let invalid =
        |e: resource_tags::Invalid| ApiError::new("InvalidTagParameterException", e.to_string());
    let Some(items) = i.array_opt(key)? else {
        return Ok(ResourceTags::default());
    };
    let pairs = items
        .iter()
        .map(|t| {
            let k = t.get("Key").and_then(Value::as_str);
            let v = t.get("Value").and_then(Value::as_str);
            match (k, v) {
                (Some(k), Some(v)) => Ok((k.to_owned(), v.to_owned())),
                _ => Err(invalid(resource_tags::Invalid::BadTag)),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    ResourceTags::parse(pairs).map_err(invalid)
}

/// The repository a resource ARN names, in the caller's registry.
fn repository_from_arn(ctx: &Context, arn: &str) -> Result<(Context, RepositoryName), ApiError> {
    let invalid = || ApiError::invalid("resourceArn", "Invalid ARN");
    let arn = Arn::parse(arn).ok_or_else(invalid)?;
    let (account, region, name) = arn.as_repository().ok_or_else(invalid)?;
    let name = name.parse().map_err(|_| invalid())?;
    let mut ctx = ctx.clone();
    ctx.registry.account_id = AccountId::parse(account).ok_or_else(invalid)?;
    ctx.registry.region = Region::parse(region).ok_or_else(invalid)?;
    Ok((ctx, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operation_list_is_sorted_for_binary_search() {
        assert!(OPERATIONS.windows(2).all(|w| w[0].name < w[1].name));
        // botocore's ecr model (>= 1.44.8) has 62 operations.
        assert_eq!(OPERATIONS.len(), 62);
        let not_yet: Vec<&str> = OPERATIONS
            .iter()
            .filter(|o| !o.implemented)
            .map(|o| o.name)
            .collect();
        assert!(not_yet.is_empty(), "{not_yet:?}");
        assert!(OPERATIONS
            .iter()
            .all(|o| o.actions.iter().all(|a| a.starts_with("ecr:"))));
        assert!(is_operation("CreateRepository") && is_operation("ValidatePullThroughCacheRule"));
        assert!(!is_operation("createRepository") && !is_operation(""));
    }

    /// docs/compatibility.md lists the operation table between two markers; this keeps
    /// it equal to the table the code dispatches from.
    #[test]
    fn the_documented_operation_list_is_the_operation_table() {
        let doc = include_str!("../../../docs/compatibility.md");
        let begin =
            "<!-- operations:begin (generated from src/api/ecr/ops.rs; a test checks it) -->\n";
        let end = "<!-- operations:end -->";
        let start = doc.find(begin).expect("begin marker") + begin.len();
        let stop = doc[start..].find(end).expect("end marker") + start;
        assert_eq!(
            &doc[start..stop],
            operations_markdown(),
            "docs/compatibility.md's operation list differs from the table; paste:\n{}",
            operations_markdown()
        );
    }
}
