//! Secrets Manager's API: AWS JSON 1.1 over `POST /` with `X-Amz-Target:
//! secretsmanager.<Operation>`, SigV4 service `secretsmanager`, on the same port as ECR.
//! Each operation parses its input into typed values, calls the service
//! (service/secrets_manager.rs), and renders Secrets Manager's output shape; errors are
//! mapped once, in [`api_error`].

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::ecr::ApiError;
use crate::audit::EventSource;
use crate::auth::Authenticator;
use crate::observe::{Frontend, RequestNote};
use crate::service::secrets_manager::{
    NewSecret, SecretInfo, SecretName, SecretUpdate, SecretValue, Tag, VersionSelector,
};
use crate::service::{Context, Error, Service};

pub const TARGET_PREFIX: &str = "secretsmanager.";
/// A 64 KiB value, base64-encoded, in JSON, with room for the rest.
const MAX_BODY: u64 = 256 * 1024;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

const OPERATIONS: [&str; 10] = [
    "CreateSecret",
    "GetSecretValue",
    "PutSecretValue",
    "UpdateSecret",
    "DescribeSecret",
    "ListSecrets",
    "DeleteSecret",
    "RestoreSecret",
    "TagResource",
    "UntagResource",
];

/// Whether a request is for this API: its target names Secrets Manager.
pub fn is_secretsmanager_request(req: &Request<Body>) -> bool {
    req.headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with(TARGET_PREFIX))
}

pub async fn handle(
    service: &Service,
    auth: &Authenticator,
    req: Request<Body>,
    request_id: &str,
) -> Response<Body> {
    let note = RequestNote::of(req.extensions());
    note.frontend(Frontend::SecretsManager);
    match run(service, auth, req, &note).await {
        Ok(body) => super::json_response(&body, request_id),
        Err(e) => {
            note.error(e.code, &e.message);
            e.into_response(request_id)
        }
    }
}

async fn run(
    service: &Service,
    auth: &Authenticator,
    req: Request<Body>,
    note: &RequestNote,
) -> Result<Value, ApiError> {
    let (parts, body) = req.into_parts();
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
        .and_then(|op| OPERATIONS.iter().find(|o| **o == op).copied())
        .filter(|_| parts.method == axum::http::Method::POST)
        .ok_or_else(ApiError::unknown_operation)?;
    note.operation(operation);
    let (caller, input) =
        super::signed_json_input(auth, &parts, body, "secretsmanager", MAX_BODY).await?;
    let ctx = super::own_account_context(caller, &parts)
        .ok_or_else(|| internal("the caller belongs to no account"))?;
    super::note_call(
        service,
        note,
        &ctx,
        EventSource::SecretsManager,
        operation,
        &input,
        None,
    );
    dispatch(service, &ctx, operation, &Input(input))
        .await
        .map_err(|e| match e {
            Failure::Api(e) => e,
            Failure::Service(e) => api_error(e),
        })
}

/// Why an operation failed: its input, or the service.
enum Failure {
    Api(ApiError),
    Service(Error),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Service(e)
    }
}

async fn dispatch(service: &Service, ctx: &Context, op: &str, i: &Input) -> Result<Value, Failure> {
    let out = match op {
        "CreateSecret" => {
            let name = SecretName::parse(&i.required_str("Name")?)?;
            let secret = NewSecret {
                name,
                token: i.str("ClientRequestToken")?,
                description: i.str("Description")?,
                kms_key_id: i.str("KmsKeyId")?,
                value: i.value()?,
                tags: i.tags("Tags")?,
            };
            let (arn, name, version) = service.create_secret(ctx, secret).await?;
            let mut out = json!({ "ARN": arn, "Name": name });
            if let Some(v) = version {
                out["VersionId"] = json!(v);
            }
            out
        }
        "GetSecretValue" => {
            let which = VersionSelector {
                id: i.str("VersionId")?,
                stage: i.str("VersionStage")?,
            };
            let v = service
                .get_secret_value(ctx, &i.required_str("SecretId")?, &which)
                .await?;
            let mut out = json!({
                "ARN": v.arn, "Name": v.name, "VersionId": v.version_id,
                "VersionStages": v.stages, "CreatedDate": seconds(v.created_at),
            });
            match v.value {
                SecretValue::String(s) => out["SecretString"] = json!(s),
                SecretValue::Binary(b) => out["SecretBinary"] = json!(B64.encode(b)),
            }
            out
        }
        "PutSecretValue" => {
            let Some(value) = i.value()? else {
                return Err(ApiError::new(
                    "InvalidRequestException",
                    "You must provide either SecretString or SecretBinary.",
                )
                .into());
            };
            let stages = i.string_list("VersionStages")?;
            let (arn, name, version, stages) = service
                .put_secret_value(
                    ctx,
                    &i.required_str("SecretId")?,
                    i.str("ClientRequestToken")?.as_deref(),
                    value,
                    stages,
                )
                .await?;
            json!({ "ARN": arn, "Name": name, "VersionId": version, "VersionStages": stages })
        }
        "UpdateSecret" => {
            let update = SecretUpdate {
                token: i.str("ClientRequestToken")?,
                description: i.str("Description")?,
                kms_key_id: i.str("KmsKeyId")?,
                value: i.value()?,
            };
            let (arn, name, version) = service
                .update_secret(ctx, &i.required_str("SecretId")?, update)
                .await?;
            let mut out = json!({ "ARN": arn, "Name": name });
            if let Some(v) = version {
                out["VersionId"] = json!(v);
            }
            out
        }
        "DescribeSecret" => {
            let info = service
                .describe_secret(ctx, &i.required_str("SecretId")?)
                .await?;
            describe_json(&info, "VersionIdsToStages")
        }
        "ListSecrets" => list_secrets(service, ctx, i).await?,
        "DeleteSecret" => {
            let (arn, name, at) = service
                .delete_secret(
                    ctx,
                    &i.required_str("SecretId")?,
                    i.int("RecoveryWindowInDays")?,
                    i.bool("ForceDeleteWithoutRecovery")?.unwrap_or(false),
                )
                .await?;
            json!({ "ARN": arn, "Name": name, "DeletionDate": seconds(at) })
        }
        "RestoreSecret" => {
            let (arn, name) = service
                .restore_secret(ctx, &i.required_str("SecretId")?)
                .await?;
            json!({ "ARN": arn, "Name": name })
        }
        "TagResource" => {
            let tags = i.tags("Tags")?;
            service
                .tag_secret(ctx, &i.required_str("SecretId")?, tags)
                .await?;
            json!({})
        }
        "UntagResource" => {
            let keys = i.string_list("TagKeys")?.unwrap_or_default();
            service
                .untag_secret(ctx, &i.required_str("SecretId")?, keys)
                .await?;
            json!({})
        }
        _ => return Err(ApiError::unknown_operation().into()),
    };
    Ok(out)
}

async fn list_secrets(service: &Service, ctx: &Context, i: &Input) -> Result<Value, Failure> {
    let limit = match i.int("MaxResults")? {
        None => 100,
        Some(n) if (1..=100).contains(&n) => n as usize,
        Some(_) => {
            return Err(validation("maxResults", "Member must have value between 1 and 100").into())
        }
    };
    let start = match i.str("NextToken")? {
        None => 0,
        Some(t) => t.parse::<usize>().map_err(|_| {
            ApiError::new(
                "InvalidNextTokenException",
                "The NextToken value is invalid.",
            )
        })?,
    };
    let filters = i.filters()?;
    let mut all = service
        .list_secrets(ctx, i.bool("IncludePlannedDeletion")?.unwrap_or(false))
        .await?;
    all.retain(|s| {
        filters
            .iter()
            .all(|(key, values)| matches_filter(s, key, values))
    });
    if i.str("SortOrder")?.as_deref() == Some("desc") {
        all.reverse();
    }
    let end = start.saturating_add(limit).min(all.len());
    let page: Vec<Value> = all
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .map(|s| describe_json(s, "SecretVersionsToStages"))
        .collect();
    let mut out = json!({ "SecretList": page });
    if end < all.len() {
        out["NextToken"] = json!(end.to_string());
    }
    Ok(out)
}

/// ListSecrets' filters: each value a prefix of the field (`all`: of any field).
fn matches_filter(s: &SecretInfo, key: &str, values: &[String]) -> bool {
    let fields: Vec<&str> = match key {
        "name" => vec![s.name.as_str()],
        "description" => s.description.as_deref().into_iter().collect(),
        "tag-key" => s.tags.iter().map(|t| t.key.as_str()).collect(),
        "tag-value" => s.tags.iter().map(|t| t.value.as_str()).collect(),
        "all" => std::iter::once(s.name.as_str())
            .chain(s.description.as_deref())
            .chain(
                s.tags
                    .iter()
                    .flat_map(|t| [t.key.as_str(), t.value.as_str()]),
            )
            .collect(),
        _ => Vec::new(),
    };
    values
        .iter()
        .any(|v| fields.iter().any(|f| f.starts_with(v.as_str())))
}

fn describe_json(s: &SecretInfo, versions_member: &str) -> Value {
    let mut out = json!({
        "ARN": s.arn,
        "Name": s.name,
        "LastChangedDate": seconds(s.changed_at),
        "CreatedDate": seconds(s.created_at),
        "Tags": s.tags,
    });
    if let Some(d) = &s.description {
        out["Description"] = json!(d);
    }
    if let Some(k) = &s.kms_key_id {
        out["KmsKeyId"] = json!(k);
    }
    if let Some(t) = s.accessed_at {
        out["LastAccessedDate"] = seconds(t);
    }
    if let Some(t) = s.deletion_at {
        out["DeletedDate"] = seconds(t);
    }
    let versions: Map<String, Value> = s
        .versions
        .iter()
        .map(|(id, stages)| (id.clone(), json!(stages)))
        .collect();
    out[versions_member] = Value::Object(versions);
    out
}

fn seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

fn validation(member: &str, constraint: &str) -> ApiError {
    ApiError::new(
        "ValidationException",
        format!("1 validation error detected: Value at '{member}' failed to satisfy constraint: {constraint}"),
    )
}

fn internal(detail: &str) -> ApiError {
    tracing::error!(error = %detail, "internal error");
    ApiError {
        code: "InternalServiceError",
        message: "An error occurred on the server side.".into(),
        status: StatusCode::INTERNAL_SERVER_ERROR,
        extra: None,
    }
}

/// Service errors in Secrets Manager's terms.
fn api_error(e: Error) -> ApiError {
    match e {
        Error::Secrets(kind, message) => ApiError::new(kind.code(), message),
        Error::AccessDenied(message) => ApiError::new("AccessDeniedException", message),
        Error::Busy => ApiError::new("ThrottlingException", "Rate exceeded"),
        Error::Internal(detail) => internal(&detail),
        Error::StorageFull => internal("the disk holding the registry's data is full"),
        other => ApiError::new("InvalidRequestException", other.to_string()),
    }
}

/// An operation's input object, read member by member with Secrets Manager's checks.
struct Input(Map<String, Value>);

impl Input {
    fn get(&self, member: &str) -> Option<&Value> {
        self.0.get(member).filter(|v| !v.is_null())
    }

    fn str(&self, member: &str) -> Result<Option<String>, ApiError> {
        match self.get(member) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::serialization(format!(
                "Expected a string for {member}"
            ))),
        }
    }

    fn required_str(&self, member: &str) -> Result<String, ApiError> {
        let s = self
            .str(member)?
            .ok_or_else(|| validation(&lower_first(member), "Member must not be null"))?;
        if s.is_empty() {
            return Err(validation(
                &lower_first(member),
                "Member must have length greater than or equal to 1",
            ));
        }
        Ok(s)
    }

    fn int(&self, member: &str) -> Result<Option<i64>, ApiError> {
        match self.get(member) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError::serialization(format!("Expected a number for {member}"))),
        }
    }

    fn bool(&self, member: &str) -> Result<Option<bool>, ApiError> {
        match self.get(member) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| ApiError::serialization(format!("Expected a boolean for {member}"))),
        }
    }

    fn string_list(&self, member: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.get(member) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        ApiError::serialization(format!("Expected strings in {member}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(ApiError::serialization(format!(
                "Expected a list for {member}"
            ))),
        }
    }

    fn tags(&self, member: &str) -> Result<Vec<Tag>, ApiError> {
        match self.get(member) {
            None => Ok(Vec::new()),
            Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                ApiError::serialization(format!("Expected a list of tags for {member}"))
            }),
        }
    }

    /// SecretString or SecretBinary (base64), not both.
    fn value(&self) -> Result<Option<SecretValue>, Failure> {
        let string = self.str("SecretString")?;
        let binary = self.str("SecretBinary")?;
        let too_long = |len: usize| len > 65536;
        match (string, binary) {
            (Some(_), Some(_)) => Err(ApiError::new(
                "InvalidParameterException",
                "You can't specify both a binary secret value and a string secret value in the same secret.",
            )
            .into()),
            (Some(s), None) if s.is_empty() || too_long(s.len()) => Err(validation(
                "secretString",
                "Member must have length between 1 and 65536",
            )
            .into()),
            (Some(s), None) => Ok(Some(SecretValue::String(s))),
            (None, Some(b)) => {
                let bytes = B64
                    .decode(b.as_bytes())
                    .map_err(|_| ApiError::serialization("SecretBinary is not base64"))?;
                if bytes.is_empty() || too_long(bytes.len()) {
                    return Err(validation("secretBinary", "Member must have length between 1 and 65536").into());
                }
                Ok(Some(SecretValue::Binary(bytes)))
            }
            (None, None) => Ok(None),
        }
    }

    /// ListSecrets' Filters: (Key, Values).
    fn filters(&self) -> Result<Vec<(String, Vec<String>)>, ApiError> {
        let Some(Value::Array(items)) = self.get("Filters") else {
            return Ok(Vec::new());
        };
        items
            .iter()
            .map(|f| {
                let key = f
                    .get("Key")
                    .and_then(Value::as_str)
                    .unwrap_or("all")
                    .to_owned();
                let values = f
                    .get("Values")
                    .and_then(Value::as_array)
                    .map(|vs| {
                        vs.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                Ok((key, values))
            })
            .collect()
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}
