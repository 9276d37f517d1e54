//! The repositories page: the registry's repositories, a page at a time, and the form
//! that creates one with ECR's options.

use askama::Template;
use axum::body::Body;
use axum::http::Response;

use super::{field, frame, mutability_of, registry_host, time, Flash, Frame};
use crate::console::{redirect, render, Signed};
use crate::meta::{Repository, RepositorySettings};
use crate::mutability::Mode;
use crate::oci::RepositoryName;
use crate::resource_tags::ResourceTags;
use crate::service::{Error, Service};

/// Repositories shown per page.
const PAGE: u32 = 100;

pub struct RepositoryRow {
    pub name: String,
    pub uri: String,
    pub created: String,
    pub mutability: &'static str,
    pub scan_on_push: bool,
    pub encryption: String,
}

#[derive(Template)]
#[template(path = "console/repositories.html")]
pub struct RepositoriesPage {
    pub frame: Frame,
    pub account: String,
    pub region: String,
    pub registry_host: String,
    pub repositories: Vec<RepositoryRow>,
    pub next: Option<String>,
    pub modes: [&'static str; 4],
}

fn repository_row(host: &str, r: &Repository) -> RepositoryRow {
    RepositoryRow {
        name: r.name.to_string(),
        uri: format!("{host}/{}", r.name),
        created: time(r.created_at),
        mutability: r.settings.tag_mutability.mode().as_str(),
        scan_on_push: r.settings.scan_on_push,
        encryption: r.settings.encryption_type.clone(),
    }
}

/// The repositories page, with what the last form left to say.
pub async fn repositories(
    service: &Service,
    signed: &Signed,
    after: Option<&str>,
    flash: Flash,
) -> Response<Body> {
    let mut frame = frame(signed, flash);
    let host = registry_host(service, signed);
    let (repositories, next) = match service
        .describe_repositories(&signed.ctx, None, after, PAGE)
        .await
    {
        Ok(l) => (
            l.items.iter().map(|r| repository_row(&host, r)).collect(),
            l.next,
        ),
        Err(e) => {
            frame.fail(&e);
            (Vec::new(), None)
        }
    };
    let page = RepositoriesPage {
        frame,
        account: signed.ctx.registry.account_id.to_string(),
        region: signed.ctx.registry.region.to_string(),
        registry_host: host,
        repositories,
        next,
        modes: Mode::ALL.map(Mode::as_str),
    };
    render(page.frame.status, &page)
}

/// The create form's repository: its name, settings and tag, validated as the API
/// validates them.
fn new_repository(
    signed: &Signed,
    form: &[(String, String)],
) -> Result<(RepositoryName, RepositorySettings, ResourceTags), Error> {
    let name = field(form, "name")
        .unwrap_or("")
        .trim()
        .parse::<RepositoryName>()
        .map_err(Error::InvalidRepositoryName)?;
    let tag_mutability = mutability_of(form)?;
    let kms_key = field(form, "kms_key")
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned);
    let (encryption_type, kms_key) = Service::encryption_settings(
        &signed.ctx,
        field(form, "encryption").unwrap_or("AES256"),
        kms_key,
    )?;
    let settings = RepositorySettings {
        tag_mutability,
        scan_on_push: field(form, "scan_on_push") == Some("true"),
        encryption_type,
        kms_key,
    };
    let tag = match field(form, "tag_key").map(str::trim) {
        Some(k) if !k.is_empty() => vec![(
            k.to_owned(),
            field(form, "tag_value").unwrap_or("").to_owned(),
        )],
        _ => Vec::new(),
    };
    let tags = ResourceTags::parse(tag).map_err(|e| Error::InvalidParameter(e.to_string()))?;
    Ok((name, settings, tags))
}

/// CreateRepository from the form.
pub async fn create_repository(
    service: &Service,
    signed: &Signed,
    form: &[(String, String)],
) -> Response<Body> {
    let raw_name = field(form, "name").unwrap_or("").trim();
    signed.audit(
        service,
        "CreateRepository",
        None,
        serde_json::json!({
            "repositoryName": raw_name,
            "imageTagMutability": field(form, "mutability").unwrap_or("MUTABLE"),
            "imageScanningConfiguration": { "scanOnPush": field(form, "scan_on_push") == Some("true") },
            "encryptionConfiguration": {
                "encryptionType": field(form, "encryption").unwrap_or("AES256"),
                "kmsKey": field(form, "kms_key").filter(|k| !k.trim().is_empty()),
            },
        }),
    );
    let created = match new_repository(signed, form) {
        Ok((name, settings, tags)) => service
            .create_repository_with(&signed.ctx, &name, &settings, &tags)
            .await
            .map(|_| name),
        Err(e) => Err(e),
    };
    match created {
        Ok(name) => redirect(&format!("/console/repositories/{name}"), None),
        Err(e) => repositories(service, signed, None, signed.failed(&e)).await,
    }
}
