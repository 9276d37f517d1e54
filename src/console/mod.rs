//! The web console at `/console`: server-rendered pages (askama templates under
//! `templates/console/`), one more front end over the service.
//!
//! Sign-in makes a session cookie the server signs (auth/console.rs); every page acts
//! as the signed-in principal through the same service functions the API uses, so a
//! page shows what the principal's policies allow and a denied action shows ECR's
//! denial text. Every form carries the session's CSRF token (the sign-in form, a
//! cookie-bound one), checked before anything is done. Pages work without JavaScript;
//! htmx (vendored, `static/`) only makes navigation smoother.

mod chart;
mod pages;
mod routes;

use askama::Template;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};

use crate::audit::{AuditCall, CallKind, EventSource};
use crate::auth::console::{ConsoleSession, Credentials, SignIn};
use crate::auth::{Authenticator, Principal};
use crate::aws::{AccountId, Region};
use crate::meta::RegistryKey;
use crate::observe::{Frontend, RequestNote};
use crate::oci::RepositoryName;
use crate::service::{Context, Service};
use pages::{Flash, Who};
use routes::{RepositoryPart, Route};

/// The session cookie, and the sign-in form's CSRF cookie.
const SESSION_COOKIE: &str = "berth_console";
const SIGNIN_COOKIE: &str = "berth_signin";
/// Largest form body.
const MAX_FORM: u64 = 64 * 1024;

const HTMX: &[u8] = include_bytes!("static/htmx-2.0.11.min.js");
const CSS: &[u8] = include_bytes!("static/console.css");

/// What the console needs.
pub struct Front<'a> {
    pub service: &'a Service,
    pub auth: &'a Authenticator,
    /// Served over HTTPS: cookies are marked Secure.
    pub secure: bool,
    /// The region pages show unless `?region=` names another.
    pub default_region: &'a Region,
}

/// Whether a path is the console's.
pub fn is_console_path(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// A signed-in request: the session and the registry its pages show.
struct Signed {
    session: ConsoleSession,
    ctx: Context,
    note: RequestNote,
}

impl Signed {
    /// Note an ECR call a form is about to make, for the audit trail, as the API would
    /// record it (the user agent tells the console's calls apart).
    fn audit(
        &self,
        service: &Service,
        operation: &'static str,
        repository: Option<&RepositoryName>,
        parameters: serde_json::Value,
    ) {
        let kind = CallKind::of_operation(operation);
        if !service.audit().wants(kind) {
            return;
        }
        self.note.call(AuditCall::ecr(
            &self.ctx.principal,
            &self.ctx.registry,
            operation,
            kind,
            repository.map(|r| r.to_string()),
            parameters,
        ));
    }

    /// What a form's call left to say: its notice, or its failure.
    fn outcome<T: Into<String>>(&self, done: Result<T, crate::service::Error>) -> Flash {
        match done {
            Ok(notice) => Flash::notice(notice),
            Err(e) => self.failed(&e),
        }
    }

    /// A form's call failed: noted with ECR's exception name, and said on the page.
    fn failed(&self, e: &crate::service::Error) -> Flash {
        let api = crate::api::ecr::ApiError::from(e);
        self.note.error(api.code, &api.message);
        Flash::failed(e)
    }

    fn who(&self) -> Who {
        let p = &self.session.principal;
        let name = match p {
            Principal::Root { .. } => "root".to_owned(),
            Principal::User { name, .. } => name.clone(),
            Principal::AssumedRole { session_name, .. } => session_name.clone(),
            Principal::System { .. } => "berth".to_owned(),
        };
        Who {
            name,
            arn: p.arn(),
            account: self.ctx.registry.account_id.to_string(),
            region: self.ctx.registry.region.to_string(),
            csrf: self.session.csrf.clone(),
        }
    }
}

pub async fn handle(front: &Front<'_>, req: Request<Body>) -> Response<Body> {
    let note = RequestNote::of(req.extensions());
    note.frontend(Frontend::Console);
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let method = req.method().clone();
    let rest = path.strip_prefix("/console").unwrap_or("");
    match (method, rest) {
        (Method::GET, "/static/htmx-2.0.11.min.js") => {
            note.operation("static");
            static_file(HTMX, "text/javascript")
        }
        (Method::GET, "/static/console.css") => {
            note.operation("static");
            static_file(CSS, "text/css")
        }
        (Method::GET, "/signin") => {
            note.operation("signin_page");
            signin_page(front, req.headers(), None)
        }
        (Method::POST, "/signin") => {
            note.operation("signin");
            signin(front, req).await
        }
        (method, rest) => {
            let (headers, query, ext) = (req.headers(), req.uri().query(), req.extensions());
            let Some(signed) = signed_in(front, headers, query, ext, note.clone()).await else {
                return redirect("/console/signin", None);
            };
            signed_page(front, signed, method, rest, req, &note).await
        }
    }
}

/// The pages behind sign-in.
async fn signed_page(
    front: &Front<'_>,
    signed: Signed,
    method: Method,
    rest: &str,
    req: Request<Body>,
    note: &RequestNote,
) -> Response<Body> {
    let Some((route, post)) = Route::parse(&method, rest) else {
        return not_found();
    };
    note.operation(route.operation(post));
    let service = front.service;
    let query = req.uri().query().map(str::to_owned);
    let query = |key: &str| query_value(query.as_deref(), key);
    if !post {
        return match route {
            Route::Repositories => {
                pages::repositories(
                    service,
                    &signed,
                    query("after").as_deref(),
                    Flash::default(),
                )
                .await
            }
            Route::Repository(name, part) => repository_page(service, &signed, &name, part).await,
            Route::Registry => pages::registry(service, &signed, Flash::default()).await,
            Route::RegistryPolicy => pages::registry_policy(service, &signed).await,
            Route::Usage => pages::usage(service, &signed, query("month").as_deref()).await,
            Route::Events => {
                let filters = pages::EventFilters {
                    user: query("user").unwrap_or_default(),
                    repository: query("repository").unwrap_or_default(),
                    event_name: query("event_name").unwrap_or_default(),
                };
                pages::events(service, &signed, filters).await
            }
            Route::CreateRepository | Route::Signout => not_found(),
        };
    }
    let f = match form(req, &signed.session.csrf).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    match route {
        Route::Signout => redirect(
            "/console/signin",
            Some(clear_cookie(SESSION_COOKIE, front.secure)),
        ),
        Route::CreateRepository => pages::create_repository(service, &signed, &f).await,
        Route::RegistryPolicy => pages::registry_policy_form(service, &signed, &f).await,
        Route::Registry => pages::registry_form(service, &signed, &f).await,
        Route::Repository(name, part) => repository_form(service, &signed, &name, part, &f).await,
        _ => not_found(),
    }
}

async fn repository_page(
    service: &Service,
    signed: &Signed,
    name: &RepositoryName,
    part: RepositoryPart,
) -> Response<Body> {
    match part {
        RepositoryPart::Home => pages::repository(service, signed, name, Flash::default()).await,
        RepositoryPart::Lifecycle => pages::lifecycle(service, signed, name).await,
        RepositoryPart::Policy => pages::repository_policy(service, signed, name).await,
        RepositoryPart::Image(digest) => pages::image(service, signed, name, &digest).await,
        _ => not_found(),
    }
}

async fn repository_form(
    service: &Service,
    signed: &Signed,
    name: &RepositoryName,
    part: RepositoryPart,
    f: &[(String, String)],
) -> Response<Body> {
    match part {
        RepositoryPart::Settings => pages::settings_form(service, signed, name, f).await,
        RepositoryPart::Tags => pages::tags_form(service, signed, name, f).await,
        RepositoryPart::Delete => pages::delete_repository(service, signed, name, f).await,
        RepositoryPart::Lifecycle => pages::lifecycle_form(service, signed, name, f).await,
        RepositoryPart::Policy => pages::repository_policy_form(service, signed, name, f).await,
        _ => not_found(),
    }
}

/// The session of a request, and the registry it addresses (the principal's account,
/// in `?region=` or the default region).
/// (Given the request's parts: a request is not `Sync`, so not held across a wait.)
async fn signed_in(
    front: &Front<'_>,
    headers: &HeaderMap,
    query: Option<&str>,
    extensions: &axum::http::Extensions,
    note: RequestNote,
) -> Option<Signed> {
    let cookie = cookie(headers, SESSION_COOKIE)?;
    let region = query_value(query, "region")
        .and_then(|r| Region::parse(&r))
        .unwrap_or_else(|| front.default_region.clone());
    let source_ip = crate::peer::peer_ip(extensions);
    let now = crate::clock::now_ms() / 1000;
    let session = front.auth.console_session(&cookie, now).await?;
    let account_id = AccountId::parse(session.principal.account_id()?)?;
    let ctx = Context {
        registry: RegistryKey { account_id, region },
        principal: session.principal.clone(),
        source_ip,
    };
    Some(Signed { session, ctx, note })
}

/// The sign-in page, with the form's CSRF cookie (kept if the browser has one).
fn signin_page(front: &Front<'_>, headers: &HeaderMap, error: Option<String>) -> Response<Body> {
    let token = cookie(headers, SIGNIN_COOKIE)
        .filter(|t| t.len() == 43)
        .unwrap_or_else(crate::auth::random_token);
    let flash = Flash {
        error: error.map(|e| (StatusCode::OK, e)),
        notice: None,
    };
    let page = pages::SigninPage {
        frame: pages::Frame::new(None, flash),
        csrf: token.clone(),
        account: String::new(),
    };
    let mut resp = render(page.frame.status, &page);
    set_cookie(
        &mut resp,
        &session_cookie(SIGNIN_COOKIE, &token, front.secure, 3600),
    );
    resp
}

/// Check a sign-in form and start a session.
async fn signin(front: &Front<'_>, req: Request<Body>) -> Response<Body> {
    let note = RequestNote::of(req.extensions());
    let headers = req.headers().clone();
    let Some(expected) = cookie(&headers, SIGNIN_COOKIE) else {
        return forbidden("The sign-in form has expired; load it again.");
    };
    let f = match form(req, &expected).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let field = |k: &str| {
        f.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let account_id = field("account_id").trim().to_owned();
    let credentials = match field("method") {
        "keys" => Credentials::AccessKey {
            id: field("access_key_id").trim(),
            secret: field("secret_access_key"),
        },
        _ => Credentials::Password {
            account_id: &account_id,
            user_name: field("user_name").trim(),
            password: field("password"),
        },
    };
    let outcome = front.auth.console_sign_in(credentials).await;
    audit_sign_in(front, &note, &outcome);
    let SignIn::Accepted(principal, via) = outcome else {
        let mut resp = signin_page(
            front,
            &headers,
            Some("Your authentication information is incorrect. Please try again.".into()),
        );
        *resp.status_mut() = StatusCode::UNAUTHORIZED;
        return resp;
    };
    let now = crate::clock::now_ms() / 1000;
    let (value, _) = front.auth.issue_console_session(&principal, via, now);
    let max_age = crate::auth::console::SESSION_SECONDS;
    let mut resp = redirect(
        "/console/repositories",
        Some(session_cookie(
            SESSION_COOKIE,
            &value,
            front.secure,
            max_age,
        )),
    );
    set_cookie(&mut resp, &clear_cookie(SIGNIN_COOKIE, front.secure));
    resp
}

/// CloudTrail's `ConsoleLogin` record of a sign-in: its success, or its failure when
/// the identity exists (a wrong secret or password). Attempts at unknown identities
/// are not recorded: they name no account.
fn audit_sign_in(front: &Front<'_>, note: &RequestNote, outcome: &SignIn) {
    let (principal, failed) = match outcome {
        SignIn::Accepted(p, _) => (p, false),
        SignIn::Refused(Some(p)) => (p, true),
        SignIn::Refused(None) => return,
    };
    let Some(account_id) = principal.account_id() else {
        return;
    };
    if !front.service.audit().wants(CallKind::Mutation) {
        return;
    }
    note.call(AuditCall {
        source: EventSource::Signin,
        name: "ConsoleLogin",
        principal: principal.clone(),
        account_id: account_id.to_owned(),
        region: front.default_region.to_string(),
        kind: CallKind::Mutation,
        parameters: serde_json::Value::Null,
        repository: None,
        error: failed.then(|| (String::new(), "Failed authentication".to_owned())),
    });
}

/// A form body (`application/x-www-form-urlencoded`), accepted only with the expected
/// CSRF token; otherwise the response to send (403).
async fn form(req: Request<Body>, csrf: &str) -> Result<Vec<(String, String)>, Response<Body>> {
    let (parts, body) = req.into_parts();
    let Ok((bytes, _)) = crate::api::read_body(body, &parts.headers, MAX_FORM).await else {
        return Err(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The form is too large.",
        ));
    };
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let sent = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if csrf.is_empty() || !same(sent.as_bytes(), csrf.as_bytes()) {
        return Err(forbidden(
            "The form's security token is missing or wrong; reload the page and try again.",
        ));
    }
    Ok(fields)
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn session_cookie(name: &str, value: &str, secure: bool, max_age: i64) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

fn clear_cookie(name: &str, secure: bool) -> String {
    session_cookie(name, "", secure, 0)
}

fn set_cookie(resp: &mut Response<Body>, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query?).ok()?;
    pairs.into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Every console page: HTML, never cached, never framed.
pub(crate) fn render(status: StatusCode, page: &impl Template) -> Response<Body> {
    match page.render() {
        Ok(html) => {
            let mut resp = Response::new(Body::from(html));
            *resp.status_mut() = status;
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert("x-frame-options", HeaderValue::from_static("DENY"));
            h.insert(
                "content-security-policy",
                HeaderValue::from_static(
                    "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
                ),
            );
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "rendering a console page failed");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be rendered.",
            )
        }
    }
}

fn static_file(bytes: &'static [u8], media_type: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::from(bytes));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    resp
}

pub(crate) fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut resp = Response::new(Body::from(format!("{text}\n")));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn forbidden(text: &str) -> Response<Body> {
    plain(StatusCode::FORBIDDEN, text)
}

pub(crate) fn not_found() -> Response<Body> {
    plain(StatusCode::NOT_FOUND, "There is no such console page.")
}

/// `303 See Other` (after a form), with a cookie to set.
pub(crate) fn redirect(location: &str, cookie: Option<String>) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(c) = cookie {
        set_cookie(&mut resp, &c);
    }
    resp
}
