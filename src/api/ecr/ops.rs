//! One function per ECR operation: typed input (with ECR's validation), one service
//! call, the output shape. Timestamps are epoch seconds as JSON numbers; absent members
//! are omitted, never null.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::ApiError;
use crate::auth::Authenticator;
use crate::aws::Arn;
use crate::meta::{ImageDetail, Repository, RepositorySettings, StatusFilter};
use crate::mutability::{self, TagMutability};
use crate::oci::{Digest, RepositoryName, Tag};
use crate::service::{
    Context, CreationTemplate, ImageFilter, ImageId, LayerCheck, Service, TemplateInput, PART_SIZE,
};

mod fuzz;
mod scanning;

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
    CreatePullThroughCacheRule ["ecr:CreatePullThroughCacheRule"];
    CreateRepository ["ecr:CreateRepository", "ecr:TagResource"] => create_repository(service, ctx, i);
    CreateRepositoryCreationTemplate ["ecr:CreateRepositoryCreationTemplate"] => create_template(service, ctx, i);
    DeleteLifecyclePolicy ["ecr:DeleteLifecyclePolicy"] => lifecycle_policy(service, ctx, i, true);
    DeletePullThroughCacheRule ["ecr:DeletePullThroughCacheRule"];
    DeleteRegistryPolicy ["ecr:DeleteRegistryPolicy"] => registry_policy(service, ctx, true);
    DeleteRepository ["ecr:DeleteRepository"] => delete_repository(service, ctx, i);
    DeleteRepositoryCreationTemplate ["ecr:DeleteRepositoryCreationTemplate"] => delete_template(service, ctx, i);
    DeleteRepositoryPolicy ["ecr:DeleteRepositoryPolicy"] => repository_policy(service, ctx, i, true);
    DeleteSigningConfiguration ["ecr:DeleteSigningConfiguration"];
    DeregisterPullTimeUpdateExclusion ["ecr:DeregisterPullTimeUpdateExclusion"] => deregister_exclusion(service, ctx, i);
    DescribeImageReplicationStatus ["ecr:DescribeImageReplicationStatus"];
    DescribeImageScanFindings ["ecr:DescribeImageScanFindings"] =>
        scanning::describe_image_scan_findings(service, ctx, i);
    DescribeImageSigningStatus ["ecr:DescribeImageSigningStatus"];
    DescribeImages ["ecr:DescribeImages"] => describe_images(service, ctx, i);
    DescribePullThroughCacheRules ["ecr:DescribePullThroughCacheRules"];
    DescribeRegistry ["ecr:DescribeRegistry"] => describe_registry(service, ctx);
    DescribeReplicationBackfillResults ["ecr:DescribeReplicationBackfillResults"];
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
    GetSigningConfiguration ["ecr:GetSigningConfiguration"];
    InitiateLayerUpload ["ecr:InitiateLayerUpload"] => initiate_layer_upload(service, ctx, i);
    ListImageReferrers ["ecr:ListImageReferrers"] => list_image_referrers(service, ctx, i);
    ListImages ["ecr:ListImages"] => list_images(service, ctx, i);
    ListPullTimeUpdateExclusions ["ecr:ListPullTimeUpdateExclusions"] => list_exclusions(service, ctx, i);
    ListReplicationBackfills ["ecr:ListReplicationBackfills"];
    ListTagsForResource ["ecr:ListTagsForResource"] => list_tags_for_resource(service, ctx, i);
    PutAccountSetting ["ecr:PutAccountSetting"] => put_account_setting(service, ctx, i);
    PutImage ["ecr:PutImage"] => put_image(service, ctx, i);
    PutImageScanningConfiguration ["ecr:PutImageScanningConfiguration"] => put_image_scanning_configuration(service, ctx, i);
    PutImageTagMutability ["ecr:PutImageTagMutability"] => put_image_tag_mutability(service, ctx, i);
    PutLifecyclePolicy ["ecr:PutLifecyclePolicy"] => put_lifecycle_policy(service, ctx, i);
    PutRegistryPolicy ["ecr:PutRegistryPolicy"] => put_registry_policy(service, ctx, i);
    PutRegistryScanningConfiguration ["ecr:PutRegistryScanningConfiguration"] =>
        scanning::put_registry_scanning_configuration(service, ctx, i);
    PutReplicationConfiguration ["ecr:PutReplicationConfiguration"];
    PutSigningConfiguration ["ecr:PutSigningConfiguration"];
    RegisterPullTimeUpdateExclusion ["ecr:RegisterPullTimeUpdateExclusion"] => register_exclusion(service, ctx, i);
    SetRepositoryPolicy ["ecr:SetRepositoryPolicy"] => set_repository_policy(service, ctx, i);
    StartImageScan ["ecr:StartImageScan"] => scanning::start_image_scan(service, ctx, i);
    StartLifecyclePolicyPreview ["ecr:StartLifecyclePolicyPreview"] => start_lifecycle_policy_preview(service, ctx, i);
    StartReplicationBackfill ["ecr:StartReplicationBackfill"];
    StopReplicationBackfill ["ecr:StopReplicationBackfill"];
    TagResource ["ecr:TagResource"] => tag_resource(service, ctx, i);
    UntagResource ["ecr:UntagResource"] => untag_resource(service, ctx, i);
    UpdateImageStorageClass ["ecr:UpdateImageStorageClass"] => update_image_storage_class(service, ctx, i);
    UpdatePullThroughCacheRule ["ecr:UpdatePullThroughCacheRule"];
    UpdateRepositoryCreationTemplate ["ecr:UpdateRepositoryCreationTemplate"] => update_template(service, ctx, i);
    UploadLayerPart ["ecr:UploadLayerPart"] => upload_layer_part(service, ctx, i);
    ValidatePullThroughCacheRule ["ecr:ValidatePullThroughCacheRule"];
}

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
    if n < 1 {
        return Err(ApiError::invalid(
            key,
            "Member must have length greater than or equal to 1",
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

/// One page of a list held in memory: the items after the one whose key is `after`
/// (or, if that one is gone, after the first greater key), and the cursor to continue
/// from when more follow (for [`with_next`]).
fn page_after<'a, T>(
    items: &'a [T],
    after: Option<&str>,
    limit: usize,
    key: impl Fn(&T) -> &str,
) -> (&'a [T], Option<String>) {
    let start = after.map_or(0, |a| {
        items
            .iter()
            .position(|x| key(x) == a)
            .map(|p| p + 1)
            .or_else(|| items.iter().position(|x| key(x) > a))
            .unwrap_or(items.len())
    });
    let end = items.len().min(start.saturating_add(limit));
    let page = &items[start..end];
    let next = (end < items.len())
        .then(|| page.last().map(|x| key(x).to_owned()))
        .flatten();
    (page, next)
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
    if let Some(state) = d.scan {
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
fn resource_tags(i: &Input, key: &str) -> Result<Vec<(String, String)>, ApiError> {
    let Some(items) = i.array_opt(key)? else {
        return Ok(Vec::new());
    };
    let tags: Vec<(String, String)> = items
        .iter()
        .map(|t| {
            let k = t.get("Key").and_then(Value::as_str);
            let v = t.get("Value").and_then(Value::as_str);
            match (k, v) {
                (Some(k), Some(v)) if !k.is_empty() && k.len() <= 128 && v.len() <= 256 && !k.starts_with("aws:") => {
                    Ok((k.to_owned(), v.to_owned()))
                }
                _ => Err(ApiError::new(
                    "InvalidTagParameterException",
                    "Tag keys must be 1-128 characters and not start with 'aws:'; values at most 256 characters",
                )),
            }
        })
        .collect::<Result<_, _>>()?;
    let mut seen = std::collections::HashSet::new();
    if let Some((k, _)) = tags.iter().find(|(k, _)| !seen.insert(k.as_str())) {
        return Err(ApiError::new(
            "InvalidTagParameterException",
            format!("Duplicate tag keys are not allowed: '{k}'"),
        ));
    }
    Ok(tags)
}

/// The repository a resource ARN names, in the caller's registry.
fn repository_from_arn(ctx: &Context, arn: &str) -> Result<(Context, RepositoryName), ApiError> {
    let invalid = || ApiError::invalid("resourceArn", "Invalid ARN");
    let arn = Arn::parse(arn).ok_or_else(invalid)?;
    let (account, region, name) = arn.as_repository().ok_or_else(invalid)?;
    let name = name.parse().map_err(|_| invalid())?;
    let mut ctx = ctx.clone();
    ctx.registry.account_id = (*account).to_owned();
    ctx.registry.region = (*region).to_owned();
    Ok((ctx, name))
}

// ---- operations ----

async fn create_repository(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let tag_mutability = mutability(i)?.unwrap_or_default();
    let scan_on_push = match i.get("imageScanningConfiguration") {
        Some(c) => c
            .get("scanOnPush")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        None => false,
    };
    let (encryption_type, kms_key) = encryption(i, ctx)?.unwrap_or(("AES256".to_owned(), None));
    let settings = RepositorySettings {
        tag_mutability,
        scan_on_push,
        encryption_type,
        kms_key,
    };
    let tags = resource_tags(i, "tags")?;
    let repo = service
        .create_repository_with(ctx, &name, &settings, &tags)
        .await?;
    Ok(json!({ "repository": repository_json(service, ctx, &repo) }))
}

async fn describe_repositories(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let names = i.strings("repositoryNames", 100)?;
    let paging = i.get("maxResults").is_some() || i.get("nextToken").is_some();
    if names.is_some() && paging {
        return Err(ApiError::invalid(
            "repositoryNames",
            "maxResults and nextToken cannot be used together with repositoryNames",
        ));
    }
    let names = names
        .map(|n| {
            n.iter()
                .map(|s| parse_repository_name("repositoryNames", s))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let limit = i.max_results(1000, 100)?;
    let after = i.next_token()?;
    let page = service
        .describe_repositories(ctx, names.as_deref(), after.as_deref(), limit)
        .await?;
    let repos: Vec<Value> = page
        .items
        .iter()
        .map(|r| repository_json(service, ctx, r))
        .collect();
    Ok(with_next(json!({ "repositories": repos }), page.next))
}

async fn delete_repository(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let force = i.bool_opt("force")?.unwrap_or(false);
    let repo = service.delete_repository(ctx, &name, force).await?;
    Ok(json!({ "repository": repository_json(service, ctx, &repo) }))
}

async fn get_authorization_token(
    service: &Service,
    auth: &Authenticator,
    ctx: &Context,
    i: &Input,
) -> OpResult {
    let ids = i.strings("registryIds", 10)?.unwrap_or_default();
    for id in &ids {
        if !crate::aws::is_account_id(id) {
            return Err(ApiError::invalid(
                "registryIds",
                "must satisfy regular expression '[0-9]{12}'",
            ));
        }
    }
    let data = service.authorization_tokens(ctx, auth, &ids).await?;
    let items: Vec<Value> = data
        .iter()
        .map(|d| json!({ "authorizationToken": d.token, "expiresAt": d.expires_at as f64, "proxyEndpoint": d.proxy_endpoint }))
        .collect();
    Ok(json!({ "authorizationData": items }))
}

async fn batch_check_layer_availability(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let digests = i
        .strings("layerDigests", 100)?
        .ok_or_else(|| ApiError::invalid("layerDigests", "Member must not be null"))?;
    let checks = service.check_layers(ctx, &name, &digests).await?;
    let (mut layers, mut failures) = (Vec::new(), Vec::new());
    for c in checks {
        match c {
            LayerCheck::Available { digest, size } => layers.push(json!({
                "layerDigest": digest, "layerAvailability": "AVAILABLE", "layerSize": size,
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            })),
            LayerCheck::Failed {
                digest,
                code,
                reason,
            } => failures.push(json!({
                "layerDigest": digest, "failureCode": code, "failureReason": reason,
            })),
        }
    }
    Ok(json!({ "layers": layers, "failures": failures }))
}

async fn initiate_layer_upload(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let id = service.initiate_layer_upload(ctx, &name).await?;
    Ok(json!({ "uploadId": id.to_string(), "partSize": PART_SIZE }))
}

async fn upload_layer_part(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let upload_id = i.str_req("uploadId")?;
    let first = i
        .i64_opt("partFirstByte")?
        .ok_or_else(|| ApiError::invalid("partFirstByte", "Member must not be null"))?;
    let last = i
        .i64_opt("partLastByte")?
        .ok_or_else(|| ApiError::invalid("partLastByte", "Member must not be null"))?;
    if first < 0 || last < 0 {
        return Err(ApiError::invalid(
            "partFirstByte",
            "Member must have value greater than or equal to 0",
        ));
    }
    let blob = STANDARD
        .decode(i.str_req("layerPartBlob")?)
        .map_err(|_| ApiError::serialization("layerPartBlob is not valid base64"))?;
    if blob.len() > 20 * 1024 * 1024 {
        return Err(ApiError::invalid(
            "layerPartBlob",
            "Member must have length less than or equal to 20971520",
        ));
    }
    let last_received = service
        .upload_layer_part(
            ctx,
            &name,
            upload_id,
            first as u64,
            last as u64,
            bytes::Bytes::from(blob),
        )
        .await
        .map_err(|e| with_upload_context(e.into(), ctx, &name, upload_id))?;
    Ok(json!({
        "registryId": ctx.registry.account_id, "repositoryName": name.as_str(),
        "uploadId": upload_id, "lastByteReceived": last_received,
    }))
}

/// InvalidLayerPartException carries the request's identifiers at top level.
fn with_upload_context(
    mut e: ApiError,
    ctx: &Context,
    name: &RepositoryName,
    upload_id: &str,
) -> ApiError {
    if e.code == "InvalidLayerPartException" {
        let mut extra = e.extra.take().unwrap_or_else(|| json!({}));
        if let Some(o) = extra.as_object_mut() {
            o.insert("registryId".into(), json!(ctx.registry.account_id));
            o.insert("repositoryName".into(), json!(name.as_str()));
            o.insert("uploadId".into(), json!(upload_id));
        }
        e.extra = Some(extra);
    }
    e
}

async fn complete_layer_upload(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let upload_id = i.str_req("uploadId")?;
    let digests = i
        .strings("layerDigests", 100)?
        .ok_or_else(|| ApiError::invalid("layerDigests", "Member must not be null"))?;
    let digest = parse_digest("layerDigests", &digests[0])?;
    service
        .complete_layer_upload(ctx, &name, upload_id, &digest)
        .await?;
    Ok(json!({
        "registryId": ctx.registry.account_id, "repositoryName": name.as_str(),
        "uploadId": upload_id, "layerDigest": digest.to_string(),
    }))
}

async fn put_image(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let manifest = i.str_req("imageManifest")?;
    if manifest.is_empty() || manifest.len() > crate::oci::manifest::MAX_MANIFEST_BYTES {
        return Err(ApiError::invalid(
            "imageManifest",
            "Member must have length between 1 and 4194304",
        ));
    }
    let media_type = i.str_opt("imageManifestMediaType")?;
    let tag = i
        .str_opt("imageTag")?
        .map(|t| parse_tag("imageTag", t))
        .transpose()?;
    let digest = i
        .str_opt("imageDigest")?
        .map(|d| parse_digest("imageDigest", d))
        .transpose()?;
    let (digest, stored) = service
        .put_image(
            ctx,
            &name,
            manifest,
            media_type,
            tag.as_ref(),
            digest.as_ref(),
        )
        .await?;
    let id = ImageId {
        digest: Some(digest.to_string()),
        tag: tag.map(|t| t.to_string()),
    };
    Ok(json!({ "image": {
        "registryId": ctx.registry.account_id, "repositoryName": name.as_str(),
        "imageId": image_id_json(&id), "imageManifest": manifest,
        "imageManifestMediaType": stored.media_type,
    }}))
}

fn failures_json(failures: &[crate::service::ImageFailure]) -> Vec<Value> {
    failures
        .iter()
        .map(|f| json!({ "imageId": image_id_json(&f.id), "failureCode": f.code, "failureReason": f.reason }))
        .collect()
}

async fn batch_get_image(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let ids = i.image_ids("imageIds", true)?.unwrap_or_default();
    let accepted = i.strings("acceptedMediaTypes", 100)?.unwrap_or_default();
    let (images, failures) = service.batch_get_image(ctx, &name, &ids, &accepted).await?;
    let images: Vec<Value> = images
        .iter()
        .map(|img| {
            json!({
                "registryId": ctx.registry.account_id, "repositoryName": name.as_str(),
                "imageId": image_id_json(&img.id),
                "imageManifest": String::from_utf8_lossy(&img.manifest.body),
                "imageManifestMediaType": img.manifest.media_type,
            })
        })
        .collect();
    Ok(json!({ "images": images, "failures": failures_json(&failures) }))
}

async fn get_download_url_for_layer(
    service: &Service,
    auth: &Authenticator,
    ctx: &Context,
    i: &Input,
) -> OpResult {
    let name = i.repository_name()?;
    let digest = parse_digest("layerDigest", i.str_req("layerDigest")?)?;
    let url = service.download_url(ctx, auth, &name, &digest).await?;
    Ok(json!({ "downloadUrl": url, "layerDigest": digest.to_string() }))
}

async fn list_images(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let limit = i.max_results(1000, 100)?;
    let after = i.next_token()?.map(|t| {
        let (d, tag) = t.split_once('\n').unwrap_or((&t, ""));
        (d.to_owned(), tag.to_owned())
    });
    let page = service
        .list_images(ctx, &name, i.image_filter()?, after, limit)
        .await?;
    let ids: Vec<Value> = page
        .items
        .iter()
        .map(|r| {
            image_id_json(&ImageId {
                digest: Some(r.digest.clone()),
                tag: r.tag.clone(),
            })
        })
        .collect();
    Ok(with_next(json!({ "imageIds": ids }), page.next))
}

async fn describe_images(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let ids = i.image_ids("imageIds", false)?;
    if ids.is_some() && (i.get("maxResults").is_some() || i.get("nextToken").is_some()) {
        return Err(ApiError::invalid(
            "imageIds",
            "maxResults and nextToken cannot be used together with imageIds",
        ));
    }
    let limit = i.max_results(1000, 100)?;
    let after = i.next_token()?;
    let page = service
        .describe_images(
            ctx,
            &name,
            ids.as_deref(),
            i.image_filter()?,
            after.as_deref(),
            limit,
        )
        .await?;
    let details: Vec<Value> = page
        .items
        .iter()
        .map(|d| image_detail_json(ctx, &name, d))
        .collect();
    Ok(with_next(json!({ "imageDetails": details }), page.next))
}

async fn batch_delete_image(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let ids = i.image_ids("imageIds", true)?.unwrap_or_default();
    let (deleted, failures) = service.batch_delete_image(ctx, &name, &ids).await?;
    let deleted: Vec<Value> = deleted.iter().map(image_id_json).collect();
    Ok(json!({ "imageIds": deleted, "failures": failures_json(&failures) }))
}

async fn put_image_tag_mutability(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let m = mutability(i)?
        .ok_or_else(|| ApiError::invalid("imageTagMutability", "Member must not be null"))?;
    service.put_image_tag_mutability(ctx, &name, &m).await?;
    let mut out = json!({
        "registryId": ctx.registry.account_id,
        "repositoryName": name.as_str(),
        "imageTagMutability": m.mode().as_str(),
    });
    if let (Some(e), Some(o)) = (exclusions_json(&m), out.as_object_mut()) {
        o.insert("imageTagMutabilityExclusionFilters".into(), e);
    }
    Ok(out)
}

async fn put_image_scanning_configuration(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let config = i.get("imageScanningConfiguration").ok_or_else(|| {
        ApiError::invalid("imageScanningConfiguration", "Member must not be null")
    })?;
    let scan_on_push = config
        .get("scanOnPush")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    service
        .put_image_scanning_configuration(ctx, &name, scan_on_push)
        .await?;
    Ok(json!({
        "registryId": ctx.registry.account_id, "repositoryName": name.as_str(),
        "imageScanningConfiguration": { "scanOnPush": scan_on_push },
    }))
}

async fn tag_resource(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let (ctx, name) = repository_from_arn(ctx, i.str_req("resourceArn")?)?;
    if i.get("tags").is_none() {
        return Err(ApiError::invalid("tags", "Member must not be null"));
    }
    let tags = resource_tags(i, "tags")?;
    service.tag_resource(&ctx, &name, &tags).await?;
    Ok(json!({}))
}

async fn untag_resource(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let (ctx, name) = repository_from_arn(ctx, i.str_req("resourceArn")?)?;
    let keys = i
        .strings("tagKeys", 200)?
        .ok_or_else(|| ApiError::invalid("tagKeys", "Member must not be null"))?;
    service.untag_resource(&ctx, &name, &keys).await?;
    Ok(json!({}))
}

async fn list_tags_for_resource(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let (ctx, name) = repository_from_arn(ctx, i.str_req("resourceArn")?)?;
    let tags: Vec<Value> = service
        .list_resource_tags(&ctx, &name)
        .await?
        .into_iter()
        .map(|(k, v)| json!({ "Key": k, "Value": v }))
        .collect();
    Ok(json!({ "tags": tags }))
}

async fn describe_registry(service: &Service, ctx: &Context) -> OpResult {
    service.describe_registry(ctx).await?;
    Ok(
        json!({ "registryId": ctx.registry.account_id, "replicationConfiguration": { "rules": [] } }),
    )
}

async fn list_image_referrers(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let subject = i
        .get("subjectId")
        .and_then(|s| s.get("imageDigest"))
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("subjectId.imageDigest", "Member must not be null"))?;
    let subject = parse_digest("subjectId.imageDigest", subject)?;
    let types: Vec<String> = i
        .get("filter")
        .and_then(|f| f.get("artifactTypes"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if types.len() > 5 {
        return Err(ApiError::invalid(
            "filter.artifactTypes",
            "Member must have length less than or equal to 5",
        ));
    }
    let limit = i.max_results(50, 20)?;
    let after = i.next_token()?;
    let page = service
        .list_referrers(ctx, &name, &subject, &types, after.as_deref(), limit)
        .await?;
    let referrers: Vec<Value> = page
        .items
        .iter()
        .map(|r| {
            let mut o = Map::new();
            o.insert("digest".into(), json!(r.digest));
            o.insert("mediaType".into(), json!(r.media_type));
            put_opt(
                &mut o,
                "artifactType",
                r.artifact_type.clone().map(Value::from),
            );
            o.insert("size".into(), json!(r.size));
            put_opt(
                &mut o,
                "annotations",
                r.annotations
                    .as_deref()
                    .and_then(|a| serde_json::from_str(a).ok()),
            );
            o.insert("artifactStatus".into(), json!("ACTIVE"));
            Value::Object(o)
        })
        .collect();
    Ok(with_next(json!({ "referrers": referrers }), page.next))
}

// ---- policies ----

/// `policyText`: required, 1 to 10,240 characters.
fn policy_text(i: &Input) -> Result<&str, ApiError> {
    let text = i.str_req("policyText")?;
    if text.is_empty() || text.chars().count() > 10_240 {
        return Err(ApiError::invalid(
            "policyText",
            "Member must have length less than or equal to 10240",
        ));
    }
    Ok(text)
}

async fn set_repository_policy(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let text = policy_text(i)?;
    let force = i.bool_opt("force")?.unwrap_or(false);
    service
        .set_repository_policy(ctx, &name, text, force)
        .await?;
    Ok(
        json!({ "registryId": ctx.registry.account_id, "repositoryName": name.as_str(), "policyText": text }),
    )
}

async fn repository_policy(service: &Service, ctx: &Context, i: &Input, delete: bool) -> OpResult {
    let name = i.repository_name()?;
    let text = service.repository_policy(ctx, &name, delete).await?;
    Ok(
        json!({ "registryId": ctx.registry.account_id, "repositoryName": name.as_str(), "policyText": text }),
    )
}

async fn put_registry_policy(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let text = policy_text(i)?;
    service.put_registry_policy(ctx, text).await?;
    Ok(json!({ "registryId": ctx.registry.account_id, "policyText": text }))
}

async fn registry_policy(service: &Service, ctx: &Context, delete: bool) -> OpResult {
    let text = service.registry_policy_text(ctx, delete).await?;
    Ok(json!({ "registryId": ctx.registry.account_id, "policyText": text }))
}

// ---- lifecycle policies ----

/// `lifecyclePolicyText`: 100 to 30,720 characters.
fn lifecycle_text(i: &Input, required: bool) -> Result<Option<&str>, ApiError> {
    let text = if required {
        Some(i.str_req("lifecyclePolicyText")?)
    } else {
        i.str_opt("lifecyclePolicyText")?
    };
    if let Some(t) = text {
        let n = t.chars().count();
        if n < 100 {
            return Err(ApiError::invalid(
                "lifecyclePolicyText",
                "Member must have length greater than or equal to 100",
            ));
        }
        if n > 30_720 {
            return Err(ApiError::invalid(
                "lifecyclePolicyText",
                "Member must have length less than or equal to 30720",
            ));
        }
    }
    Ok(text)
}

async fn put_lifecycle_policy(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let text = lifecycle_text(i, true)?.unwrap_or_default();
    service.put_lifecycle_policy(ctx, &name, text).await?;
    Ok(json!({
        "registryId": ctx.registry.account_id,
        "repositoryName": name.as_str(),
        "lifecyclePolicyText": text,
    }))
}

async fn lifecycle_policy(service: &Service, ctx: &Context, i: &Input, delete: bool) -> OpResult {
    let name = i.repository_name()?;
    let info = service.lifecycle_policy(ctx, &name, delete).await?;
    let mut out = json!({
        "registryId": ctx.registry.account_id,
        "repositoryName": name.as_str(),
        "lifecyclePolicyText": info.text,
    });
    // ECR always says when the policy last ran: the epoch when it never has.
    if let Some(o) = out.as_object_mut() {
        o.insert(
            "lastEvaluatedAt".into(),
            seconds(info.last_evaluated_at.unwrap_or(0)),
        );
    }
    Ok(out)
}

async fn start_lifecycle_policy_preview(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let text = lifecycle_text(i, false)?;
    let text = service.start_lifecycle_preview(ctx, &name, text).await?;
    Ok(json!({
        "registryId": ctx.registry.account_id,
        "repositoryName": name.as_str(),
        "lifecyclePolicyText": text,
        "status": "IN_PROGRESS",
    }))
}

async fn get_lifecycle_policy_preview(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let limit = i.max_results(100, 100)? as usize;
    let after = i.next_token()?;
    let tagged = i.tag_status()?;
    let wanted = i.image_ids("imageIds", false)?;
    let preview = service.lifecycle_preview(ctx, &name).await?;
    let expiring = preview
        .results
        .iter()
        .filter(|r| r.action == "EXPIRE")
        .count();
    let transitioning = preview.results.len() - expiring;
    let selected: Vec<_> = preview
        .results
        .iter()
        .filter(|r| tagged.is_none_or(|t| t != r.tags.is_empty()))
        .filter(|r| {
            wanted.as_ref().is_none_or(|ids| {
                ids.iter().any(|id| {
                    id.digest.as_deref() == Some(r.digest.as_str())
                        || id.tag.as_ref().is_some_and(|t| r.tags.contains(t))
                })
            })
        })
        .collect();
    let (page, next) = page_after(&selected, after.as_deref(), limit, |r| r.digest.as_str());
    let results: Vec<Value> = page
        .iter()
        .map(|r| {
            let mut action = json!({ "type": r.action });
            if r.action == "TRANSITION" {
                action["targetStorageClass"] = json!("ARCHIVE");
            }
            let mut o = json!({
                "imageDigest": r.digest,
                "imagePushedAt": seconds(r.pushed_at),
                "action": action,
                "appliedRulePriority": r.rule_priority,
                "storageClass": r.storage_class,
            });
            if !r.tags.is_empty() {
                o["imageTags"] = json!(r.tags);
            }
            o
        })
        .collect();
    let mut summary = json!({ "expiringImageTotalCount": expiring });
    if transitioning > 0 {
        summary["transitioningImageTotalCounts"] =
            json!([{ "targetStorageClass": "ARCHIVE", "imageTotalCount": transitioning }]);
    }
    let out = json!({
        "registryId": ctx.registry.account_id,
        "repositoryName": name.as_str(),
        "lifecyclePolicyText": preview.policy_text,
        "status": "COMPLETE",
        "previewResults": results,
        "summary": summary,
    });
    Ok(with_next(out, next))
}

/// The ARN of the account's AWS-managed key for ECR (alias `aws/ecr`), which ECR names
/// when KMS encryption is asked for without a key: one key id per account and region.
fn aws_managed_ecr_key(ctx: &Context) -> String {
    use sha2::Digest as _;
    let (region, account) = (&ctx.registry.region, &ctx.registry.account_id);
    let h = sha2::Sha256::digest(format!("aws/ecr\n{account}\n{region}").as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&h[..16]);
    let id = uuid::Builder::from_random_bytes(id).into_uuid();
    Arn::kms_key(account, region, &id.to_string()).to_string()
}

/// `encryptionConfiguration`, validated: (type, KMS key), or None when absent.
fn encryption(i: &Input, ctx: &Context) -> Result<Option<(String, Option<String>)>, ApiError> {
    let Some(c) = i.get("encryptionConfiguration") else {
        return Ok(None);
    };
    let t = c
        .get("encryptionType")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !["AES256", "KMS", "KMS_DSSE"].contains(&t) {
        return Err(ApiError::invalid(
            "encryptionConfiguration.encryptionType",
            "Member must satisfy enum value set: [AES256, KMS_DSSE, KMS]",
        ));
    }
    let key = c.get("kmsKey").and_then(Value::as_str).map(str::to_owned);
    let key = match (t, key) {
        ("AES256", Some(_)) => {
            return Err(ApiError::invalid(
                "encryptionConfiguration.kmsKey",
                "kmsKey is only valid with KMS encryption",
            ))
        }
        ("AES256", None) => None,
        (_, Some(k)) => Some(k),
        (_, None) => Some(aws_managed_ecr_key(ctx)),
    };
    Ok(Some((t.to_owned(), key)))
}

// ---- repository creation templates ----

fn template_prefix(i: &Input) -> Result<String, ApiError> {
    let raw = i.str_req("prefix")?;
    crate::service::normalize_prefix(raw).ok_or_else(|| {
        ApiError::invalid(
            "prefix",
            "must satisfy regular expression '^((?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*/?|ROOT)$'",
        )
    })
}

fn template_input(i: &Input, ctx: &Context) -> Result<TemplateInput, ApiError> {
    let m = mutability(i)?;
    let tags = i
        .array_opt("resourceTags")?
        .map(|_| resource_tags(i, "resourceTags"))
        .transpose()?;
    let applied_for = i.strings("appliedFor", 3)?;
    if let Some(d) = i.str_opt("description")? {
        check_len("description", d.chars().count().max(1), 256)?;
    }
    let repository_policy = i.str_opt("repositoryPolicy")?.map(str::to_owned);
    let lifecycle_policy = i.str_opt("lifecyclePolicy")?.map(str::to_owned);
    Ok(TemplateInput {
        description: i.str_opt("description")?.map(str::to_owned),
        encryption: encryption(i, ctx)?,
        resource_tags: tags,
        mutability: m,
        repository_policy,
        lifecycle_policy,
        applied_for,
        custom_role_arn: i.str_opt("customRoleArn")?.map(str::to_owned),
    })
}

fn template_json(t: &CreationTemplate) -> Value {
    let mut o = json!({
        "prefix": t.prefix,
        "encryptionConfiguration": { "encryptionType": t.encryption_type },
        "resourceTags": t.resource_tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>(),
        "imageTagMutability": t.image_tag_mutability,
        "appliedFor": t.applied_for,
        "createdAt": seconds(t.created_at),
        "updatedAt": seconds(t.updated_at),
    });
    if let Some(k) = &t.kms_key {
        o["encryptionConfiguration"]["kmsKey"] = json!(k);
    }
    if let Some(ex) = &t.mutability_exclusions {
        o["imageTagMutabilityExclusionFilters"] = serde_json::from_str(ex).unwrap_or(Value::Null);
    }
    for (key, value) in [
        ("description", &t.description),
        ("repositoryPolicy", &t.repository_policy),
        ("lifecyclePolicy", &t.lifecycle_policy),
        ("customRoleArn", &t.custom_role_arn),
    ] {
        if let Some(v) = value {
            o[key] = json!(v);
        }
    }
    o
}

async fn create_template(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let prefix = template_prefix(i)?;
    let input = template_input(i, ctx)?;
    let t = service
        .create_creation_template(ctx, &prefix, input)
        .await?;
    Ok(
        json!({ "registryId": ctx.registry.account_id, "repositoryCreationTemplate": template_json(&t) }),
    )
}

async fn update_template(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let prefix = template_prefix(i)?;
    let input = template_input(i, ctx)?;
    let t = service
        .update_creation_template(ctx, &prefix, input)
        .await?;
    Ok(
        json!({ "registryId": ctx.registry.account_id, "repositoryCreationTemplate": template_json(&t) }),
    )
}

async fn delete_template(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let prefix = template_prefix(i)?;
    let t = service.delete_creation_template(ctx, &prefix).await?;
    Ok(
        json!({ "registryId": ctx.registry.account_id, "repositoryCreationTemplate": template_json(&t) }),
    )
}

async fn describe_templates(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let prefixes = i
        .strings("prefixes", 100)?
        .map(|list| {
            list.iter()
                .map(|p| {
                    crate::service::normalize_prefix(p)
                        .ok_or_else(|| ApiError::invalid("prefixes", "Invalid prefix"))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let limit = i.max_results(1000, 1000)? as usize;
    let after = i.next_token()?;
    let all = service
        .describe_creation_templates(ctx, prefixes.as_deref())
        .await?;
    let (page, next) = page_after(&all, after.as_deref(), limit, |t| t.prefix.as_str());
    let out = json!({
        "registryId": ctx.registry.account_id,
        "repositoryCreationTemplates": page.iter().map(template_json).collect::<Vec<_>>(),
    });
    Ok(with_next(out, next))
}

// ---- account settings and pull-time update exclusions ----

async fn get_account_setting(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.str_req("name")?;
    let value = service.account_setting(ctx, name).await?;
    Ok(json!({ "name": name, "value": value }))
}

async fn put_account_setting(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.str_req("name")?;
    let value = i.str_req("value")?;
    service.put_account_setting(ctx, name, value).await?;
    Ok(json!({ "name": name, "value": value }))
}

async fn register_exclusion(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let arn = i.str_req("principalArn")?;
    let created = service.register_pull_time_exclusion(ctx, arn).await?;
    Ok(json!({ "principalArn": arn, "createdAt": seconds(created) }))
}

async fn deregister_exclusion(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let arn = i.str_req("principalArn")?;
    service.deregister_pull_time_exclusion(ctx, arn).await?;
    Ok(json!({ "principalArn": arn }))
}

async fn list_exclusions(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let limit = i.max_results(1000, 1000)? as usize;
    let after = i.next_token()?;
    let all = service.pull_time_exclusions(ctx).await?;
    let (page, next) = page_after(&all, after.as_deref(), limit, String::as_str);
    Ok(with_next(json!({ "pullTimeUpdateExclusions": page }), next))
}

// ---- storage classes ----

async fn update_image_storage_class(service: &Service, ctx: &Context, i: &Input) -> OpResult {
    let name = i.repository_name()?;
    let id = i.image_id()?;
    let archive = match i.str_req("targetStorageClass")? {
        "ARCHIVE" => true,
        "STANDARD" => false,
        _ => {
            return Err(ApiError::invalid(
                "targetStorageClass",
                "Member must satisfy enum value set: [STANDARD, ARCHIVE]",
            ))
        }
    };
    let (digest, status) = service
        .update_image_storage_class(ctx, &name, &id, archive)
        .await?;
    Ok(json!({
        "registryId": ctx.registry.account_id,
        "repositoryName": name.as_str(),
        "imageId": image_id_json(&ImageId { digest: Some(digest), tag: id.tag }),
        "imageStatus": status,
    }))
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
        assert_eq!(not_yet.len(), 15, "{not_yet:?}");
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
