//! What operators see of requests: Prometheus metrics ([`metrics`]) and the audit
//! trail ([`crate::audit`]), fed from one place.
//!
//! The HTTP layer gives every request a [`RequestNote`]; the front end that answers it
//! writes down what it understood (front end, operation, and the call to audit: who,
//! which registry, with what parameters, how it ended). When the response body has
//! been sent, the HTTP layer counts the request and hands the call to the audit log.
//! Front ends only note; they never count or write records themselves.

pub mod metrics;
pub mod progress;

use std::sync::{Arc, Mutex};

use crate::audit::AuditCall;

/// Which front end answered a request (the `frontend` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frontend {
    Registry,
    Ecr,
    Iam,
    Sts,
    SecretsManager,
    Signer,
    Console,
    Metrics,
    Health,
    Other,
}

impl Frontend {
    pub fn as_str(self) -> &'static str {
        match self {
            Frontend::Registry => "registry",
            Frontend::Ecr => "ecr",
            Frontend::Iam => "iam",
            Frontend::Sts => "sts",
            Frontend::SecretsManager => "secretsmanager",
            Frontend::Signer => "signer",
            Frontend::Console => "console",
            Frontend::Metrics => "metrics",
            Frontend::Health => "health",
            Frontend::Other => "other",
        }
    }
}

#[derive(Default)]
struct Noted {
    frontend: Option<Frontend>,
    operation: Option<&'static str>,
    /// The calls to audit, in order (a console form may make more than one).
    calls: Vec<AuditCall>,
    error: Option<(String, String)>,
    transfer: Option<(String, String, String)>,
}

/// What the front end understood of one request; shared between the HTTP layer and
/// the front end through the request's extensions.
#[derive(Default, Clone)]
pub struct RequestNote(Arc<Mutex<Noted>>);

impl RequestNote {
    /// The note of a request (a fresh one if the HTTP layer gave none: in-process use).
    pub fn of(extensions: &axum::http::Extensions) -> RequestNote {
        extensions.get::<RequestNote>().cloned().unwrap_or_default()
    }

    fn with(&self, f: impl FnOnce(&mut Noted)) {
        if let Ok(mut n) = self.0.lock() {
            f(&mut n);
        }
    }

    pub fn frontend(&self, frontend: Frontend) {
        self.with(|n| n.frontend = Some(frontend));
    }

    /// The operation, a name from a fixed set (metrics labels must stay few).
    pub fn operation(&self, operation: &'static str) {
        self.with(|n| n.operation = Some(operation));
    }

    /// A call to audit, once the caller is known.
    pub fn call(&self, call: AuditCall) {
        self.with(|n| n.calls.push(call));
    }

    /// The last call failed with this error code and message.
    pub fn error(&self, code: &str, message: &str) {
        self.with(|n| n.error = Some((code.to_owned(), message.to_owned())));
    }

    /// The request is a pull from this repository (account, region, name): the bytes
    /// of its answer count as transfer out.
    pub fn transfer(&self, account: &str, region: &str, repository: &str) {
        self.with(|n| {
            n.transfer = Some((account.to_owned(), region.to_owned(), repository.to_owned()))
        });
    }

    pub fn take_transfer(&self) -> Option<(String, String, String)> {
        self.0.lock().ok()?.transfer.take()
    }

    /// (front end, operation) for the metrics labels.
    pub fn labels(&self) -> (&'static str, &'static str) {
        self.0.lock().map_or(("other", "unknown"), |n| {
            (
                n.frontend.unwrap_or(Frontend::Other).as_str(),
                n.operation.unwrap_or("unknown"),
            )
        })
    }

    /// The calls to audit, the last with its error, if the front end noted any.
    pub fn take_calls(&self) -> Vec<AuditCall> {
        let Ok(mut n) = self.0.lock() else {
            return Vec::new();
        };
        let mut calls = std::mem::take(&mut n.calls);
        if let (Some(last), Some(e)) = (calls.last_mut(), n.error.take()) {
            last.error = Some(e);
        }
        calls
    }
}

/// A `&'static` copy of an operation name that is not in a static table (IAM's
/// actions): at most a few hundred distinct names are kept, then "other".
pub fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let Ok(mut names) = NAMES.lock() else {
        return "other";
    };
    if let Some(n) = names.iter().find(|n| **n == name) {
        return n;
    }
    if names.len() >= 512 || name.len() > 64 {
        return "other";
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.push(leaked);
    leaked
}
