//! IAM and STS on AWS's Query protocol: form-encoded `POST /` with `Action=...`, XML
//! responses and errors. Which of the two a request is for comes from its SigV4
//! credential scope (`.../iam/aws4_request` or `.../sts/aws4_request`).
//!
//! Like the ECR front end it only translates: every operation is a service call.

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};

use crate::audit::{AuditCall, CallKind, EventSource};
use crate::auth::{sigv4, ApiAuthError, Authenticator};
use crate::iam::context::iso8601;
use crate::meta::{AccessKey, Identity, IdentityKind, ManagedPolicyRow};
use crate::observe::{Frontend, RequestNote};
use crate::service::{Error, IamCaller, IamErrorKind, NewIdentity, Service};

const MAX_BODY: u64 = 1024 * 1024;
const IAM_NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// Whether a request is a Query-protocol call (IAM or STS).
pub fn is_query_request(req: &Request<Body>) -> bool {
    const FORM: &[u8] = b"application/x-www-form-urlencoded";
    // Media types are case-insensitive.
    req.method() == axum::http::Method::POST
        && req.headers().get("x-amz-target").is_none()
        && req.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
            v.as_bytes()
                .get(..FORM.len())
                .is_some_and(|t| t.eq_ignore_ascii_case(FORM))
        })
}

/// A Query-protocol error: code, message, status.
pub(crate) struct QueryError {
    code: &'static str,
    message: String,
    status: StatusCode,
}

impl QueryError {
    fn new(code: &'static str, status: StatusCode, message: impl Into<String>) -> QueryError {
        QueryError {
            code,
            message: message.into(),
            status,
        }
    }

    fn input(message: impl Into<String>) -> QueryError {
        QueryError::new("ValidationError", StatusCode::BAD_REQUEST, message)
    }
}

impl From<Error> for QueryError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        let (code, status) = match &e {
            Error::AccessDenied(_) => ("AccessDenied", StatusCode::FORBIDDEN),
            Error::Iam(kind, _) => match kind {
                IamErrorKind::NoSuchEntity => ("NoSuchEntity", StatusCode::NOT_FOUND),
                IamErrorKind::EntityAlreadyExists => ("EntityAlreadyExists", StatusCode::CONFLICT),
                IamErrorKind::DeleteConflict => ("DeleteConflict", StatusCode::CONFLICT),
                IamErrorKind::LimitExceeded => ("LimitExceeded", StatusCode::CONFLICT),
                IamErrorKind::MalformedPolicyDocument => {
                    ("MalformedPolicyDocument", StatusCode::BAD_REQUEST)
                }
                IamErrorKind::InvalidInput => ("InvalidInput", StatusCode::BAD_REQUEST),
                IamErrorKind::ValidationError => ("ValidationError", StatusCode::BAD_REQUEST),
                IamErrorKind::PasswordPolicyViolation => {
                    ("PasswordPolicyViolation", StatusCode::BAD_REQUEST)
                }
            },
            Error::Busy => ("Throttling", StatusCode::BAD_REQUEST),
            Error::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                return QueryError::new(
                    "ServiceFailure",
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "An internal error occurred.",
                );
            }
            Error::StorageFull => {
                tracing::error!(error = %message, "storage full");
                return QueryError::new(
                    "ServiceFailure",
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "An internal error occurred.",
                );
            }
            Error::InvalidParameter(_) | Error::InvalidPageSize(_) => {
                ("InvalidInput", StatusCode::BAD_REQUEST)
            }
            // Conditions of the registry and ECR's API: no IAM or STS operation meets
            // them, but should one, it is the caller's input, not a failure of ours.
            Error::RepositoryNotFound { .. }
            | Error::RepositoryAlreadyExists { .. }
            | Error::InvalidRepositoryName(_)
            | Error::InvalidTag(_)
            | Error::InvalidDigest
            | Error::BlobNotFound
            | Error::BlobReferenced
            | Error::ManifestReferenced
            | Error::UploadNotFound
            | Error::UploadOutOfOrder { .. }
            | Error::UploadInterrupted
            | Error::DigestMismatch
            | Error::RangeNotSatisfiable { .. }
            | Error::ManifestNotFound
            | Error::ImageArchived
            | Error::ManifestNotAcceptable(_)
            | Error::ManifestInvalid(_)
            | Error::ManifestTooLarge
            | Error::ManifestBlobsMissing { .. }
            | Error::ManifestChildrenMissing { .. }
            | Error::TagImmutable { .. }
            | Error::ImageAlreadyExists { .. }
            | Error::ImageDigestMismatch { .. }
            | Error::ImageNotFound { .. }
            | Error::RepositoryNotEmpty { .. }
            | Error::TooManyTags
            | Error::InvalidLayerPart { .. }
            | Error::EmptyUpload(_)
            | Error::LayerPartTooSmall
            | Error::LayerAlreadyExists(_)
            | Error::InvalidLayer(_)
            | Error::LayersNotFound(_)
            | Error::RepositoryPolicyNotFound { .. }
            | Error::RegistryPolicyNotFound(_)
            | Error::Ecr(..)
            | Error::Upstream(_)
            | Error::Secrets(..)
            | Error::Signer(..) => ("InvalidInput", StatusCode::BAD_REQUEST),
        };
        QueryError::new(code, status, message)
    }
}

impl From<ApiAuthError> for QueryError {
    fn from(e: ApiAuthError) -> Self {
        let message = e.to_string();
        match e {
            ApiAuthError::UnrecognizedClient => {
                QueryError::new("InvalidClientTokenId", StatusCode::FORBIDDEN, message)
            }
            ApiAuthError::ExpiredToken => {
                QueryError::new("ExpiredToken", StatusCode::FORBIDDEN, message)
            }
            ApiAuthError::Backend(m) => {
                tracing::error!(error = %m, "authentication backend failed");
                QueryError::new(
                    "ServiceFailure",
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "An internal error occurred.",
                )
            }
            ApiAuthError::Signature(s) => match s {
                sigv4::SigError::Missing => QueryError::new(
                    "MissingAuthenticationToken",
                    StatusCode::FORBIDDEN,
                    "Request is missing Authentication Token",
                ),
                sigv4::SigError::Incomplete(m) => {
                    QueryError::new("IncompleteSignature", StatusCode::BAD_REQUEST, m)
                }
                other => QueryError::new(
                    "SignatureDoesNotMatch",
                    StatusCode::FORBIDDEN,
                    other.to_string(),
                ),
            },
        }
    }
}

/// Whether XML 1.0 can carry `c` at all (escaped or not).
pub(crate) fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Escape text for an XML element. What XML cannot carry (a control character stored
/// before input was checked) becomes U+FFFD, so every answer stays well-formed.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // A literal CR would be read back as LF.
            '\r' => out.push_str("&#13;"),
            c if !xml_char(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Refuse a member XML could not carry back: IAM's own pattern for text members.
pub(crate) fn check_xml_text(params: &Params) -> Result<(), QueryError> {
    match params.0.iter().find(|(_, v)| !v.chars().all(xml_char)) {
        Some((key, _)) => Err(QueryError::input(format!(
            "1 validation error detected: Value at '{}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\u0009\\u000A\\u000D\\u0020-\\uD7FF\\uE000-\\uFFFD\\u10000-\\u10FFFF]*",
            lower_first(key)
        ))),
        None => Ok(()),
    }
}

/// Policy documents travel percent-encoded (RFC 3986; space is `%20`).
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) fn el(name: &str, value: &str) -> String {
    format!("<{name}>{}</{name}>", esc(value))
}

fn date(ms: i64) -> String {
    iso8601(ms / 1000)
}

fn members(items: impl IntoIterator<Item = String>) -> String {
    items
        .into_iter()
        .map(|i| format!("<member>{i}</member>"))
        .collect()
}

fn identity_xml(i: &Identity, with_trust: bool) -> String {
    let mut x = el("Path", &i.path);
    let (name_el, id_el) = match i.kind {
        IdentityKind::User => ("UserName", "UserId"),
        IdentityKind::Role => ("RoleName", "RoleId"),
        IdentityKind::Group => ("GroupName", "GroupId"),
    };
    x += &el(name_el, &i.name);
    x += &el(id_el, &i.id);
    x += &el("Arn", &i.arn);
    x += &el("CreateDate", &date(i.created_at));
    if with_trust {
        if let Some(t) = &i.trust_policy {
            x += &el("AssumeRolePolicyDocument", &url_encode(t));
        }
        if let Some(d) = &i.description {
            x += &el("Description", d);
        }
        if let Some(m) = i.max_session_duration {
            x += &el("MaxSessionDuration", &m.to_string());
        }
    }
    x
}

fn policy_xml(p: &ManagedPolicyRow, attachments: i64) -> String {
    let mut x = el("PolicyName", &p.name);
    x += &el("PolicyId", &p.id);
    x += &el("Arn", &p.arn);
    x += &el("Path", &p.path);
    x += &el("DefaultVersionId", &p.version_id);
    x += &el("AttachmentCount", &attachments.to_string());
    x += &el("PermissionsBoundaryUsageCount", "0");
    x += &el("IsAttachable", "true");
    if let Some(d) = &p.description {
        x += &el("Description", d);
    }
    x += &el("CreateDate", &date(p.created_at));
    x += &el("UpdateDate", &date(p.updated_at));
    x
}

fn key_xml(user: Option<&str>, k: &AccessKey, created_ms: i64, with_secret: bool) -> String {
    let mut x = String::new();
    if let Some(u) = user {
        x += &el("UserName", u);
    }
    x += &el("AccessKeyId", &k.access_key_id);
    x += &el("Status", if k.active { "Active" } else { "Inactive" });
    if with_secret {
        x += &el("SecretAccessKey", &k.secret_access_key);
    }
    x += &el("CreateDate", &date(created_ms));
    x
}

/// The request's form parameters.
pub(crate) struct Params(pub(crate) Vec<(String, String)>);

impl Params {
    pub(crate) fn opt(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn req(&self, key: &str) -> Result<&str, QueryError> {
        self.opt(key).ok_or_else(|| {
            QueryError::input(format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                lower_first(key)
            ))
        })
    }

    pub(crate) fn int(&self, key: &str) -> Result<Option<i64>, QueryError> {
        self.opt(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| QueryError::input(format!("Invalid value for {key}: {v}")))
            })
            .transpose()
    }
}

pub(crate) fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

pub async fn handle(
    service: &Service,
    auth: &Authenticator,
    req: Request<Body>,
    request_id: &str,
) -> Response<Body> {
    let sts = is_sts(&req);
    let ns = if sts { STS_NS } else { IAM_NS };
    let note = RequestNote::of(req.extensions());
    note.frontend(if sts { Frontend::Sts } else { Frontend::Iam });
    let outcome = run(service, auth, req, sts, &note).await;
    if let Err(e) = &outcome {
        note.error(e.code, &e.message);
    }
    let (status, body) = match outcome {
        Ok((action, result)) => (
            StatusCode::OK,
            format!(
                "<{action}Response xmlns=\"{ns}\">{}<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>",
                if result.is_empty() { String::new() } else { format!("<{action}Result>{result}</{action}Result>") }
            ),
        ),
        Err(e) => (
            e.status,
            format!(
                "<ErrorResponse xmlns=\"{ns}\"><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
                if e.status.is_server_error() { "Receiver" } else { "Sender" },
                e.code,
                esc(&e.message)
            ),
        ),
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    resp
}

/// IAM's `LoginProfile` element.
fn login_profile_xml(lp: &crate::service::LoginProfile) -> String {
    format!(
        "<LoginProfile>{}{}{}</LoginProfile>",
        el("UserName", &lp.user_name),
        el("CreateDate", &iso8601(lp.created_at / 1000)),
        el(
            "PasswordResetRequired",
            if lp.reset_required { "true" } else { "false" }
        )
    )
}

/// STS when the signature is scoped to `sts`; IAM otherwise.
fn is_sts(req: &Request<Body>) -> bool {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("/sts/aws4_request"))
}

async fn run(
    service: &Service,
    auth: &Authenticator,
    req: Request<Body>,
    sts: bool,
    note: &RequestNote,
) -> Result<(String, String), QueryError> {
    let (parts, body) = req.into_parts();
    let signed = crate::api::signed_parts(&parts);
    let scope = if sts { "sts" } else { "iam" };
    let pending = crate::api::precheck(auth, &signed, scope).await?;
    let (body, payload_hash) = crate::api::read_body(body, &parts.headers, MAX_BODY)
        .await
        .map_err(|e| {
            let mut err = QueryError::input("The request body is too large or could not be read");
            err.status = e.status();
            err
        })?;
    let caller = crate::api::verify(auth, pending, &signed, &payload_hash)?;
    let params = Params(
        serde_urlencoded::from_bytes(&body)
            .map_err(|_| QueryError::input("The request body is not form-encoded"))?,
    );
    check_xml_text(&params)?;
    let action = params.req("Action")?.to_owned();
    let c = IamCaller {
        principal: caller.principal,
        source_ip: crate::peer::peer_ip(&parts.extensions),
    };
    let result = if sts {
        sts_op(service, auth, &c, &action, &params).await
    } else {
        iam_op(service, &c, &action, &params).await
    };
    // Only actions this API knows name a metric or a record.
    if !matches!(&result, Err(e) if e.code == "InvalidAction") {
        note_call(service, note, &c, sts, &action, &params);
    }
    Ok((action, result?))
}

/// Note a recognized action for the metrics and the audit trail.
fn note_call(
    service: &Service,
    note: &RequestNote,
    c: &IamCaller,
    sts: bool,
    action: &str,
    params: &Params,
) {
    let name = crate::observe::intern(action);
    note.operation(name);
    let kind = CallKind::of_operation(action);
    if !service.audit().wants(kind) {
        return;
    }
    let parameters: serde_json::Map<String, serde_json::Value> = params
        .0
        .iter()
        .filter(|(k, _)| k != "Action" && k != "Version")
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    note.call(AuditCall {
        source: if sts {
            EventSource::Sts
        } else {
            EventSource::Iam
        },
        name,
        principal: c.principal.clone(),
        account_id: c.principal.account_id().unwrap_or_default().to_owned(),
        // IAM is global; CloudTrail records it in us-east-1.
        region: "us-east-1".to_owned(),
        kind,
        parameters: serde_json::Value::Object(parameters),
        repository: None,
        error: None,
    });
}

async fn sts_op(
    service: &Service,
    auth: &Authenticator,
    c: &IamCaller,
    action: &str,
    p: &Params,
) -> Result<String, QueryError> {
    match action {
        "GetCallerIdentity" => Ok(format!(
            "{}{}{}",
            el("Arn", &c.principal.arn()),
            el("UserId", &c.principal.user_id()),
            el("Account", c.principal.account_id().unwrap_or_default())
        )),
        "AssumeRole" => {
            let r = service
                .assume_role(
                    c,
                    auth,
                    p.req("RoleArn")?,
                    p.req("RoleSessionName")?,
                    p.int("DurationSeconds")?,
                )
                .await?;
            Ok(format!(
                "<Credentials>{}{}{}{}</Credentials><AssumedRoleUser>{}{}</AssumedRoleUser>",
                el("AccessKeyId", &r.access_key_id),
                el("SecretAccessKey", &r.secret_access_key),
                el("SessionToken", &r.session_token),
                el("Expiration", &iso8601(r.expires)),
                el("AssumedRoleId", &r.assumed_role_id),
                el("Arn", &r.arn)
            ))
        }
        other => Err(QueryError::new(
            "InvalidAction",
            StatusCode::BAD_REQUEST,
            format!("Could not find operation {other} for version 2011-06-15"),
        )),
    }
}

/// `CreateUser` → (Create, User). The identity-shaped IAM actions share one code path.
pub(crate) fn identity_action(action: &str) -> Option<(&str, IdentityKind)> {
    for (suffix, kind) in [
        ("User", IdentityKind::User),
        ("Role", IdentityKind::Role),
        ("Group", IdentityKind::Group),
    ] {
        for verb in [
            "Create",
            "Get",
            "Delete",
            "Put",
            "List",
            "Attach",
            "Detach",
            "ListAttached",
        ] {
            let rest = action.strip_prefix(verb);
            let op = match rest {
                Some(r) if r == suffix => verb,
                Some(r) if r == format!("{suffix}s") && verb == "List" => "ListAll",
                Some(r) if r == format!("{suffix}Policy") => match verb {
                    "Put" => "PutInline",
                    "Get" => "GetInline",
                    "Delete" => "DeleteInline",
                    "Attach" => "Attach",
                    "Detach" => "Detach",
                    _ => continue,
                },
                Some(r) if r == format!("{suffix}Policies") => match verb {
                    "List" => "ListInline",
                    "ListAttached" => "ListAttached",
                    _ => continue,
                },
                _ => continue,
            };
            return Some((op, kind));
        }
    }
    None
}

fn name_param(kind: IdentityKind) -> &'static str {
    match kind {
        IdentityKind::User => "UserName",
        IdentityKind::Role => "RoleName",
        IdentityKind::Group => "GroupName",
    }
}

fn list_tag(kind: IdentityKind) -> &'static str {
    match kind {
        IdentityKind::User => "Users",
        IdentityKind::Role => "Roles",
        IdentityKind::Group => "Groups",
    }
}

fn singular(kind: IdentityKind) -> &'static str {
    match kind {
        IdentityKind::User => "User",
        IdentityKind::Role => "Role",
        IdentityKind::Group => "Group",
    }
}

const NOT_TRUNCATED: &str = "<IsTruncated>false</IsTruncated>";

async fn iam_op(
    service: &Service,
    c: &IamCaller,
    action: &str,
    p: &Params,
) -> Result<String, QueryError> {
    if let Some((op, kind)) = identity_action(action) {
        return identity_op(service, c, op, kind, p).await;
    }
    match action {
        "CreateLoginProfile" => {
            let reset = p.opt("PasswordResetRequired") == Some("true");
            let lp = service
                .create_login_profile(c, p.opt("UserName"), p.req("Password")?, reset)
                .await?;
            Ok(login_profile_xml(&lp))
        }
        "GetLoginProfile" => {
            let lp = service.get_login_profile(c, p.opt("UserName")).await?;
            Ok(login_profile_xml(&lp))
        }
        "UpdateLoginProfile" => {
            let reset = p.opt("PasswordResetRequired").map(|v| v == "true");
            service
                .update_login_profile(c, p.opt("UserName"), p.opt("Password"), reset)
                .await?;
            Ok(String::new())
        }
        "DeleteLoginProfile" => {
            service.delete_login_profile(c, p.opt("UserName")).await?;
            Ok(String::new())
        }
        "CreateAccessKey" => {
            let (k, user) = service.create_access_key(c, p.opt("UserName")).await?;
            let created = crate::clock::now_ms();
            Ok(format!(
                "<AccessKey>{}</AccessKey>",
                key_xml(user.as_deref(), &k, created, true)
            ))
        }
        "ListAccessKeys" => {
            let (user, keys) = service.list_access_keys(c, p.opt("UserName")).await?;
            let items = keys
                .iter()
                .map(|(k, at)| key_xml(user.as_deref(), k, *at, false));
            Ok(format!(
                "<AccessKeyMetadata>{}</AccessKeyMetadata>{NOT_TRUNCATED}",
                members(items)
            ))
        }
        "DeleteAccessKey" => {
            service
                .change_access_key(c, p.opt("UserName"), p.req("AccessKeyId")?, None)
                .await?;
            Ok(String::new())
        }
        "UpdateAccessKey" => {
            let active = match p.req("Status")? {
                "Active" => true,
                "Inactive" => false,
                other => {
                    return Err(QueryError::input(format!(
                        "1 validation error detected: Value '{other}' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]"
                    )))
                }
            };
            service
                .change_access_key(c, p.opt("UserName"), p.req("AccessKeyId")?, Some(active))
                .await?;
            Ok(String::new())
        }
        "CreatePolicy" => {
            let row = service
                .create_managed_policy(
                    c,
                    p.req("PolicyName")?,
                    p.opt("Path"),
                    p.opt("Description"),
                    p.req("PolicyDocument")?,
                )
                .await?;
            Ok(format!("<Policy>{}</Policy>", policy_xml(&row, 0)))
        }
        "GetPolicy" => {
            let (row, n) = service.get_managed_policy(c, p.req("PolicyArn")?).await?;
            Ok(format!("<Policy>{}</Policy>", policy_xml(&row, n)))
        }
        "GetPolicyVersion" => {
            let row = service
                .get_policy_version(c, p.req("PolicyArn")?, p.req("VersionId")?)
                .await?;
            Ok(format!(
                "<PolicyVersion>{}{}{}{}</PolicyVersion>",
                el("Document", &url_encode(&row.document)),
                el("VersionId", &row.version_id),
                el("IsDefaultVersion", "true"),
                el("CreateDate", &date(row.created_at))
            ))
        }
        "ListPolicies" => {
            let rows = service
                .list_managed_policies(
                    c,
                    p.opt("Scope").unwrap_or("All"),
                    p.opt("OnlyAttached") == Some("true"),
                    p.opt("PathPrefix"),
                )
                .await?;
            let items = rows.iter().map(|(r, n)| policy_xml(r, *n));
            Ok(format!(
                "<Policies>{}</Policies>{NOT_TRUNCATED}",
                members(items)
            ))
        }
        "DeletePolicy" => {
            service
                .delete_managed_policy(c, p.req("PolicyArn")?)
                .await?;
            Ok(String::new())
        }
        "UpdateAssumeRolePolicy" => {
            service
                .update_trust_policy(c, p.req("RoleName")?, p.req("PolicyDocument")?)
                .await?;
            Ok(String::new())
        }
        "AddUserToGroup" => {
            service
                .add_user_to_group(c, p.req("GroupName")?, p.req("UserName")?)
                .await?;
            Ok(String::new())
        }
        other => Err(QueryError::new(
            "InvalidAction",
            StatusCode::BAD_REQUEST,
            format!("Could not find operation {other} for version 2010-05-08"),
        )),
    }
}

async fn identity_op(
    service: &Service,
    c: &IamCaller,
    op: &str,
    kind: IdentityKind,
    p: &Params,
) -> Result<String, QueryError> {
    let one = |i: &Identity| {
        format!(
            "<{0}>{1}</{0}>",
            singular(kind),
            identity_xml(i, kind == IdentityKind::Role)
        )
    };
    match op {
        "Create" => {
            let trust = if kind == IdentityKind::Role {
                Some(p.req("AssumeRolePolicyDocument")?)
            } else {
                None
            };
            let i = service
                .create_identity(
                    c,
                    NewIdentity {
                        kind,
                        name: p.req(name_param(kind))?,
                        path: p.opt("Path"),
                        trust_policy: trust,
                        description: p.opt("Description"),
                        max_session_duration: p.int("MaxSessionDuration")?,
                    },
                )
                .await?;
            Ok(one(&i))
        }
        "Get" => {
            let name = if kind == IdentityKind::User {
                p.opt("UserName")
            } else {
                Some(p.req(name_param(kind))?)
            };
            let i = service.get_identity(c, kind, name).await?;
            if kind != IdentityKind::Group {
                return Ok(one(&i));
            }
            // GetGroup also lists the group's users (authorized by iam:GetGroup above).
            let users = service.group_members(c, &i.name).await?;
            let items = users.iter().map(|u| identity_xml(u, false));
            Ok(format!(
                "{}<Users>{}</Users>{NOT_TRUNCATED}",
                one(&i),
                members(items)
            ))
        }
        "ListAll" => {
            let list = service
                .list_identities(c, kind, p.opt("PathPrefix"))
                .await?;
            let items = list
                .iter()
                .map(|i| identity_xml(i, kind == IdentityKind::Role));
            Ok(format!(
                "<{0}>{1}</{0}>{NOT_TRUNCATED}",
                list_tag(kind),
                members(items)
            ))
        }
        "Delete" => {
            service
                .delete_identity(c, kind, p.req(name_param(kind))?)
                .await?;
            Ok(String::new())
        }
        "PutInline" => {
            service
                .put_inline_policy(
                    c,
                    kind,
                    p.req(name_param(kind))?,
                    p.req("PolicyName")?,
                    p.req("PolicyDocument")?,
                )
                .await?;
            Ok(String::new())
        }
        "GetInline" => {
            let (who, doc) = service
                .get_inline_policy(c, kind, p.req(name_param(kind))?, p.req("PolicyName")?)
                .await?;
            Ok(format!(
                "{}{}{}",
                el(name_param(kind), &who.name),
                el("PolicyName", p.req("PolicyName")?),
                el("PolicyDocument", &url_encode(&doc))
            ))
        }
        "ListInline" => {
            let names = service
                .list_inline_policies(c, kind, p.req(name_param(kind))?)
                .await?;
            Ok(format!(
                "<PolicyNames>{}</PolicyNames>{NOT_TRUNCATED}",
                members(names.iter().map(|n| esc(n)))
            ))
        }
        "DeleteInline" => {
            service
                .delete_inline_policy(c, kind, p.req(name_param(kind))?, p.req("PolicyName")?)
                .await?;
            Ok(String::new())
        }
        "Attach" => {
            service
                .attach_policy(c, kind, p.req(name_param(kind))?, p.req("PolicyArn")?)
                .await?;
            Ok(String::new())
        }
        "Detach" => {
            service
                .detach_policy(c, kind, p.req(name_param(kind))?, p.req("PolicyArn")?)
                .await?;
            Ok(String::new())
        }
        "ListAttached" => {
            let attached = service
                .list_attached_policies(c, kind, p.req(name_param(kind))?)
                .await?;
            let items = attached
                .iter()
                .map(|(n, a)| format!("{}{}", el("PolicyName", n), el("PolicyArn", a)));
            Ok(format!(
                "<AttachedPolicies>{}</AttachedPolicies>{NOT_TRUNCATED}",
                members(items)
            ))
        }
        _ => Err(QueryError::new(
            "InvalidAction",
            StatusCode::BAD_REQUEST,
            format!(
                "Could not find operation {op}{} for version 2010-05-08",
                singular(kind)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_text_is_always_well_formed() {
        assert_eq!(esc("a<b & 'c'"), "a&lt;b &amp; &apos;c&apos;");
        assert_eq!(esc("tab\tnl\ncr\r"), "tab\tnl\ncr&#13;");
        assert_eq!(
            esc("nul\u{0}bell\u{7}\u{1f}"),
            "nul\u{FFFD}bell\u{FFFD}\u{FFFD}"
        );
        assert_eq!(esc("\u{FFFE}é"), "\u{FFFD}é");
    }

    #[test]
    fn control_characters_are_refused_in_every_member() {
        let ok = Params(vec![("Description".into(), "line\nnext\ttab".into())]);
        assert!(check_xml_text(&ok).is_ok());
        let bad = Params(vec![
            ("RoleName".into(), "r".into()),
            ("Description".into(), "x\u{1}y".into()),
        ]);
        let e = check_xml_text(&bad).expect_err("refused");
        assert_eq!(e.code, "ValidationError");
        assert!(e.message.contains("'description'"), "{}", e.message);
    }
}
