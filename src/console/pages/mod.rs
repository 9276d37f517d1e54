//! The console's pages: each gathers what it shows through service calls made as the
//! signed-in principal, then renders its template. Every page carries a [`Frame`]:
//! who is signed in, and what the last form left to say.

mod events;
mod image;
mod lifecycle;
mod policy;
mod registry;
mod repositories;
mod repository;
mod signin;
mod usage;

use axum::http::StatusCode;

pub use events::{events, EventFilters};
pub use image::image;
pub use lifecycle::{lifecycle, lifecycle_form};
pub use policy::{
    registry_policy, registry_policy_form, repository_policy, repository_policy_form,
};
pub use registry::{registry, registry_form};
pub use repositories::{create_repository, repositories};
pub use repository::{delete_repository, repository, settings_form, tags_form};
pub use signin::SigninPage;
pub use usage::usage;

use super::Signed;
use crate::mutability::{Mode, TagMutability};
use crate::service::{Error, Service};

/// Who is signed in, for the header.
pub struct Who {
    pub name: String,
    pub arn: String,
    pub account: String,
    pub region: String,
    pub csrf: String,
}

/// What every page shows around its content, and the status it is sent with.
pub struct Frame {
    pub who: Option<Who>,
    pub error: Option<String>,
    pub notice: Option<String>,
    pub status: StatusCode,
}

impl Frame {
    pub fn new(who: Option<Who>, flash: Flash) -> Frame {
        let (status, error) = match flash.error {
            Some((s, e)) => (s, Some(e)),
            None => (StatusCode::OK, None),
        };
        Frame {
            who,
            error,
            notice: flash.notice,
            status,
        }
    }

    /// The signed-in session's CSRF token, for the page's forms.
    pub fn csrf(&self) -> &str {
        self.who.as_ref().map_or("", |w| w.csrf.as_str())
    }

    /// A part of the page could not be loaded: say why, unless a form already did.
    pub fn fail(&mut self, e: &Error) {
        if self.error.is_none() {
            self.error = Some(message_of(e));
            self.status = status_of(e);
        }
    }
}

/// What a form just sent leaves to say on the page shown next.
#[derive(Default)]
pub struct Flash {
    pub error: Option<(StatusCode, String)>,
    pub notice: Option<String>,
}

impl Flash {
    pub fn failed(e: &Error) -> Flash {
        Flash {
            error: Some((status_of(e), message_of(e))),
            notice: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Flash {
        Flash {
            error: Some((StatusCode::BAD_REQUEST, message.into())),
            notice: None,
        }
    }

    pub fn notice(message: impl Into<String>) -> Flash {
        Flash {
            error: None,
            notice: Some(message.into()),
        }
    }
}

fn frame(signed: &Signed, flash: Flash) -> Frame {
    Frame::new(Some(signed.who()), flash)
}

fn time(ms: i64) -> String {
    crate::audit::iso_time(ms)
}

fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::AccessDenied(_) => StatusCode::FORBIDDEN,
        Error::RepositoryNotFound { .. } | Error::ManifestNotFound => StatusCode::NOT_FOUND,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// What a page says of a failure: the API's message, but never an internal detail.
fn message_of(e: &Error) -> String {
    match e {
        Error::Internal(_) => {
            tracing::error!(error = %e, "a console page failed");
            "An internal error occurred; the server's log has the detail.".into()
        }
        e => e.to_string(),
    }
}

fn field<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A form's tag mutability (`mutability`, `exclusions`), validated as the API's input.
pub(super) fn mutability_of(form: &[(String, String)]) -> Result<TagMutability, Error> {
    let invalid = |e: crate::mutability::Invalid| {
        Error::InvalidParameter(format!(
            "Invalid parameter at 'imageTagMutability' failed to satisfy constraint: '{e}'"
        ))
    };
    let mode = Mode::parse(field(form, "mutability").unwrap_or("MUTABLE")).map_err(invalid)?;
    let exclusions: Vec<String> = field(form, "exclusions")
        .unwrap_or("")
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect();
    TagMutability::new(mode, exclusions).map_err(invalid)
}

/// A textarea's text, with the CRLF line breaks browsers send turned back into LF.
fn text_field(form: &[(String, String)], key: &str) -> String {
    field(form, key).unwrap_or("").replace("\r\n", "\n")
}

fn registry_host(service: &Service, signed: &Signed) -> String {
    let reg = &signed.ctx.registry;
    service
        .public_url()
        .registry_host(&reg.account_id, &reg.region)
}
