//! AWS Signer's REST-JSON API, the part ECR's managed signing needs: `PUT`, `GET` and
//! `DELETE /signing-profiles/{name}` (PutSigningProfile, GetSigningProfile,
//! CancelSigningProfile) and `GET /signing-profiles` (ListSigningProfiles), SigV4
//! service `signer`, on the same port. Errors carry `x-amzn-ErrorType` and their REST
//! status; they are mapped once, in [`api_error`].

use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::ecr::ApiError;
use crate::audit::EventSource;
use crate::auth::Authenticator;
use crate::meta::ProfileRow;
use crate::observe::{Frontend, RequestNote};
use crate::service::{Context, Error, Service, ValidityUnit, DEFAULT_VALIDITY};

const PREFIX: &str = "/signing-profiles";
const MAX_BODY: u64 = 64 * 1024;

/// Whether a request is for this API: its path is under `/signing-profiles`.
pub fn is_signer_request(req: &Request<Body>) -> bool {
    let p = req.uri().path();
    p == PREFIX || p.starts_with("/signing-profiles/")
}

pub async fn handle(
    service: &Service,
    auth: &Authenticator,
    req: Request<Body>,
    request_id: &str,
) -> Response<Body> {
    let note = RequestNote::of(req.extensions());
    note.frontend(Frontend::Signer);
    match run(service, auth, req, &note).await {
        Ok(body) => super::json_response(&body, request_id),
        Err(e) => {
            note.error(e.code, &e.message);
            e.into_response(request_id)
        }
    }
}

/// The operation a method and path name.
fn operation_name(method: &Method, has_name: bool) -> Option<&'static str> {
    match (method, has_name) {
        (&Method::PUT, true) => Some("PutSigningProfile"),
        (&Method::GET, true) => Some("GetSigningProfile"),
        (&Method::DELETE, true) => Some("CancelSigningProfile"),
        (&Method::GET, false) => Some("ListSigningProfiles"),
        _ => None,
    }
}

async fn run(
    service: &Service,
    auth: &Authenticator,
    req: Request<Body>,
    note: &RequestNote,
) -> Result<Value, ApiError> {
    let (parts, body) = req.into_parts();
    let (caller, input) = super::signed_json_input(auth, &parts, body, "signer", MAX_BODY).await?;
    let ctx = super::own_account_context(caller, &parts).ok_or_else(|| {
        status(
            ApiError::new("AccessDeniedException", "The caller belongs to no account"),
            StatusCode::FORBIDDEN,
        )
    })?;
    let path = parts.uri.path();
    let name = path
        .strip_prefix("/signing-profiles/")
        .map(percent_decode)
        .filter(|n| !n.is_empty());
    let query = parts.uri.query().unwrap_or("");
    if let Some(op) = operation_name(&parts.method, name.is_some()) {
        note.operation(op);
        let mut params = input.clone();
        if let Some(n) = &name {
            params.insert("profileName".into(), Value::String(n.clone()));
        }
        super::note_call(service, note, &ctx, EventSource::Signer, op, &params, None);
    }
    let out = match (&parts.method, name) {
        (&Method::PUT, Some(name)) => put_profile(service, &ctx, &name, &input).await,
        (&Method::GET, Some(name)) => service
            .get_signing_profile(&ctx, &checked_name(&name)?)
            .await
            .map(|p| profile_json(&ctx, &p)),
        (&Method::DELETE, Some(name)) => service
            .cancel_signing_profile(&ctx, &checked_name(&name)?)
            .await
            .map(|()| json!({})),
        (&Method::GET, None) => {
            let include = query
                .split('&')
                .any(|kv| kv.eq_ignore_ascii_case("includeCanceled=true"));
            service
                .list_signing_profiles(&ctx, include)
                .await
                .map(|ps| json!({ "profiles": ps.iter().map(|p| profile_json(&ctx, p)).collect::<Vec<_>>() }))
        }
        _ => {
            return Err(status(
                ApiError::new(
                    "UnknownOperationException",
                    "The operation is not supported",
                ),
                StatusCode::NOT_FOUND,
            ))
        }
    };
    out.map_err(api_error)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status(mut e: ApiError, s: StatusCode) -> ApiError {
    e.status = s;
    e
}

fn validation(message: impl Into<String>) -> ApiError {
    ApiError::new("ValidationException", message)
}

fn checked_name(name: &str) -> Result<String, ApiError> {
    if crate::service::valid_profile_name(name) {
        Ok(name.to_owned())
    } else {
        Err(validation(format!(
            "1 validation error detected: Value '{name}' at 'profileName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9_]{{2,}}"
        )))
    }
}

async fn put_profile(
    service: &Service,
    ctx: &Context,
    name: &str,
    input: &serde_json::Map<String, Value>,
) -> Result<Value, Error> {
    let name = checked_name(name)
        .map_err(|e| Error::Signer(crate::service::SignerErrorKind::Validation, e.message))?;
    let invalid =
        |m: &str| Error::Signer(crate::service::SignerErrorKind::Validation, m.to_owned());
    let platform = input
        .get("platformId")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("platformId is required"))?;
    let validity = match input.get("signatureValidityPeriod") {
        None | Some(Value::Null) => DEFAULT_VALIDITY,
        Some(v) => {
            let value = v
                .get("value")
                .and_then(Value::as_i64)
                .ok_or_else(|| invalid("signatureValidityPeriod.value must be a number"))?;
            let unit = v
                .get("type")
                .and_then(Value::as_str)
                .and_then(ValidityUnit::parse)
                .ok_or_else(|| {
                    invalid("signatureValidityPeriod.type must be one of DAYS, MONTHS, YEARS")
                })?;
            (value, unit)
        }
    };
    let p = service
        .put_signing_profile(ctx, &name, platform, validity)
        .await?;
    let arn = crate::service::profile_arn(&ctx.registry, &p.name);
    Ok(json!({
        "arn": arn,
        "profileVersion": p.version,
        "profileVersionArn": format!("{arn}/{}", p.version),
    }))
}

fn profile_json(ctx: &Context, p: &ProfileRow) -> Value {
    let arn = crate::service::profile_arn(&ctx.registry, &p.name);
    json!({
        "profileName": p.name,
        "profileVersion": p.version,
        "profileVersionArn": format!("{arn}/{}", p.version),
        "platformId": p.platform_id,
        "platformDisplayName": "Notation for OCI registries",
        "signatureValidityPeriod": { "value": p.validity_value, "type": p.validity_type },
        "status": p.status,
        "arn": arn,
        "tags": {},
    })
}

fn api_error(e: Error) -> ApiError {
    match e {
        Error::Signer(kind, message) => {
            let s = match kind {
                crate::service::SignerErrorKind::ResourceNotFound => StatusCode::NOT_FOUND,
                crate::service::SignerErrorKind::Conflict => StatusCode::CONFLICT,
                crate::service::SignerErrorKind::Validation => StatusCode::BAD_REQUEST,
            };
            status(ApiError::new(kind.code(), message), s)
        }
        Error::AccessDenied(message) => status(
            ApiError::new("AccessDeniedException", message),
            StatusCode::FORBIDDEN,
        ),
        Error::Busy => status(
            ApiError::new("TooManyRequestsException", "Rate exceeded"),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        other => {
            tracing::error!(error = %other, "signer: internal error");
            status(
                ApiError::new(
                    "InternalServiceErrorException",
                    "An error occurred on the server side.",
                ),
                StatusCode::INTERNAL_SERVER_ERROR,
            )
        }
    }
}
