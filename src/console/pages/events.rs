//! The audit trail of this account and region (LookupEvents), newest first, filtered by
//! user, repository and event name; each record expands to its CloudTrail JSON.

use askama::Template;
use axum::body::Body;
use axum::http::Response;
use serde_json::Value;

use super::{frame, Flash, Frame};
use crate::console::{render, Signed};
use crate::meta::AuditQuery;
use crate::service::Service;

/// Records shown.
const LIMIT: i64 = 200;

pub struct EventRow {
    pub time: String,
    pub name: String,
    pub source: String,
    pub user: String,
    pub repository: String,
    pub source_ip: String,
    pub error: String,
    pub json: String,
}

/// The filters the form sent, shown again in it.
#[derive(Default)]
pub struct EventFilters {
    pub user: String,
    pub repository: String,
    pub event_name: String,
}

#[derive(Template)]
#[template(path = "console/events.html")]
pub struct EventsPage {
    pub frame: Frame,
    pub filters: EventFilters,
    pub events: Vec<EventRow>,
}

fn text(v: &Value, path: &[&str]) -> String {
    let mut v = v;
    for key in path {
        v = &v[*key];
    }
    v.as_str().unwrap_or_default().to_owned()
}

fn event_row(record: &str) -> EventRow {
    let v: Value = serde_json::from_str(record).unwrap_or_default();
    let user = match text(&v, &["userIdentity", "type"]).as_str() {
        "Root" => "root".to_owned(),
        "AWSService" => text(&v, &["userIdentity", "invokedBy"]),
        _ => text(&v, &["userIdentity", "arn"]),
    };
    let error = [text(&v, &["errorCode"]), text(&v, &["errorMessage"])]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    EventRow {
        time: text(&v, &["eventTime"]),
        name: text(&v, &["eventName"]),
        source: text(&v, &["eventSource"]),
        user,
        repository: text(&v, &["requestParameters", "repositoryName"]),
        source_ip: text(&v, &["sourceIPAddress"]),
        error,
        json: serde_json::to_string_pretty(&v).unwrap_or_default(),
    }
}

fn non_empty(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

pub async fn events(service: &Service, signed: &Signed, filters: EventFilters) -> Response<Body> {
    let mut frame = frame(signed, Flash::default());
    let query = AuditQuery {
        user: non_empty(&filters.user),
        repository: non_empty(&filters.repository),
        event_name: non_empty(&filters.event_name),
        limit: LIMIT,
        ..AuditQuery::default()
    };
    let events = match service.lookup_events(&signed.ctx, query).await {
        Ok(records) => records.iter().map(|r| event_row(r)).collect(),
        Err(e) => {
            frame.fail(&e);
            Vec::new()
        }
    };
    let page = EventsPage {
        frame,
        filters,
        events,
    };
    render(page.frame.status, &page)
}
