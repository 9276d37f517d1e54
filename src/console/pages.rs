//! The console's pages: each gathers what it shows through service calls made as the
//! signed-in principal, then renders its template.

use askama::Template;
use axum::body::Body;
use axum::http::{Response, StatusCode};

use super::{redirect, render, Signed};
use crate::meta::{ImageDetail, Repository, RepositorySettings, ScanState};
use crate::mutability::{Mode, TagMutability};
use crate::oci::RepositoryName;
use crate::resource_tags::ResourceTags;
use crate::service::{Error, ImageFilter, Service};

/// Repositories shown per page.
const PAGE: u32 = 100;

/// Who is signed in, for the header.
pub struct Who {
    pub name: String,
    pub arn: String,
    pub account: String,
    pub region: String,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "console/signin.html")]
pub struct SigninPage {
    pub who: Option<Who>,
    pub error: Option<String>,
    pub notice: Option<String>,
    pub csrf: String,
    pub account: String,
}

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
    pub who: Option<Who>,
    pub error: Option<String>,
    pub notice: Option<String>,
    pub csrf: String,
    pub account: String,
    pub region: String,
    pub registry_host: String,
    pub repositories: Vec<RepositoryRow>,
    pub next: Option<String>,
}

pub struct ImageRow {
    pub tags: Vec<String>,
    pub kind: String,
    pub pushed: String,
    pub size_mb: String,
    pub digest: String,
    pub short_digest: String,
    pub last_pulled: String,
    pub storage_class: &'static str,
    pub scan_status: String,
    pub findings: String,
}

#[derive(Template)]
#[template(path = "console/repository.html")]
pub struct RepositoryPage {
    pub who: Option<Who>,
    pub error: Option<String>,
    pub notice: Option<String>,
    pub csrf: String,
    pub name: String,
    pub uri: String,
    pub mutability: &'static str,
    pub scan_on_push: bool,
    pub encryption: String,
    pub push_commands: Vec<(&'static str, String)>,
    pub images: Vec<ImageRow>,
}

fn time(ms: i64) -> String {
    crate::audit::iso_time(ms)
}

fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::AccessDenied(_) => StatusCode::FORBIDDEN,
        Error::RepositoryNotFound { .. } => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn mutability_name(s: &RepositorySettings) -> &'static str {
    s.tag_mutability.mode().as_str()
}

fn repository_row(service: &Service, signed: &Signed, r: &Repository) -> RepositoryRow {
    RepositoryRow {
        name: r.name.to_string(),
        uri: format!("{}/{}", registry_host(service, signed), r.name),
        created: time(r.created_at),
        mutability: mutability_name(&r.settings),
        scan_on_push: r.settings.scan_on_push,
        encryption: r.settings.encryption_type.clone(),
    }
}

fn registry_host(service: &Service, signed: &Signed) -> String {
    let reg = &signed.ctx.registry;
    service
        .public_url()
        .registry_host(&reg.account_id, &reg.region)
}

/// The repositories page, with an error or notice from a form just sent.
pub async fn repositories(
    service: &Service,
    signed: &Signed,
    after: Option<&str>,
    error: Option<(StatusCode, String)>,
    notice: Option<String>,
) -> Response<Body> {
    let (status, mut error) = match error {
        Some((s, e)) => (s, Some(e)),
        None => (StatusCode::OK, None),
    };
    let listing = service
        .describe_repositories(&signed.ctx, None, after, PAGE)
        .await;
    let (rows, next) = match listing {
        Ok(l) => (
            l.items
                .iter()
                .map(|r| repository_row(service, signed, r))
                .collect(),
            l.next,
        ),
        Err(e) => {
            error = Some(e.to_string());
            (Vec::new(), None)
        }
    };
    let status = if error.is_some() && status == StatusCode::OK {
        StatusCode::FORBIDDEN
    } else {
        status
    };
    let page = RepositoriesPage {
        who: Some(signed.who()),
        error,
        notice,
        csrf: signed.session.csrf.clone(),
        account: signed.ctx.registry.account_id.to_string(),
        region: signed.ctx.registry.region.to_string(),
        registry_host: registry_host(service, signed),
        repositories: rows,
        next,
    };
    render(status, &page)
}

fn field<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// CreateRepository from the form.
pub async fn create_repository(
    service: &Service,
    signed: &Signed,
    form: &[(String, String)],
) -> Response<Body> {
    let name = field(form, "name").unwrap_or("").trim();
    let name = match name.parse::<RepositoryName>() {
        Ok(n) => n,
        Err(e) => {
            let e = Error::InvalidRepositoryName(e);
            return repositories(
                service,
                signed,
                None,
                Some((StatusCode::BAD_REQUEST, e.to_string())),
                None,
            )
            .await;
        }
    };
    let mode = match field(form, "mutability") {
        Some("IMMUTABLE") => Mode::Immutable,
        _ => Mode::Mutable,
    };
    let settings = RepositorySettings {
        tag_mutability: TagMutability::new(mode, Vec::new())
            .unwrap_or_else(|_| TagMutability::mutable()),
        scan_on_push: field(form, "scan_on_push") == Some("true"),
        ..RepositorySettings::default()
    };
    match service
        .create_repository_with(&signed.ctx, &name, &settings, &ResourceTags::default())
        .await
    {
        Ok(_) => redirect(&format!("/console/repositories/{name}"), None),
        Err(e) => {
            repositories(
                service,
                signed,
                None,
                Some((status_of(&e), e.to_string())),
                None,
            )
            .await
        }
    }
}

/// DeleteRepository (forced: with its images) after the typed confirmation.
pub async fn delete_repository(
    service: &Service,
    signed: &Signed,
    name: &RepositoryName,
    form: &[(String, String)],
) -> Response<Body> {
    if field(form, "confirm") != Some("delete") {
        return repository(
            service,
            signed,
            name,
            Some("Type delete to confirm.".into()),
        )
        .await;
    }
    match service.delete_repository(&signed.ctx, name, true).await {
        Ok(_) => {
            repositories(
                service,
                signed,
                None,
                None,
                Some(format!("Deleted repository {name}.")),
            )
            .await
        }
        Err(e) => repository(service, signed, name, Some(e.to_string())).await,
    }
}

fn image_row(i: &ImageDetail) -> ImageRow {
    let kind = if i.subject.is_some() {
        i.artifact_type.clone().unwrap_or_else(|| "Referrer".into())
    } else if i.media_type.contains("index") || i.media_type.contains("manifest.list") {
        "Image Index".into()
    } else {
        match i.config_media_type.as_deref() {
            Some(c) if c.contains("image.config") || c.contains("container.image") => {
                "Image".into()
            }
            Some(c) => c.to_owned(),
            None => "Image".into(),
        }
    };
    let (scan_status, findings) = match &i.scan {
        None => ("-".to_owned(), String::new()),
        Some(ScanState::InProgress) => ("IN_PROGRESS".to_owned(), String::new()),
        Some(ScanState::Done(r)) => (
            r.status.as_str().to_owned(),
            r.counts
                .iter()
                .rev()
                .filter(|(_, n)| **n > 0)
                .map(|(s, n)| format!("{} {n}", s.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    };
    ImageRow {
        tags: i.tags.clone(),
        kind,
        pushed: time(i.pushed_at),
        size_mb: format!("{:.2}", i.size as f64 / 1_000_000.0),
        digest: i.digest.clone(),
        short_digest: i.digest.chars().take(19).collect(),
        last_pulled: i.last_pulled_at.map(time).unwrap_or_else(|| "-".into()),
        storage_class: if i.archived { "ARCHIVE" } else { "STANDARD" },
        scan_status,
        findings,
    }
}

/// ECR's "View push commands", with this deployment's host.
fn push_commands(host: &str, region: &str, name: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "Retrieve an authentication token and authenticate your Docker client to your registry.",
            format!("aws ecr get-login-password --region {region} | docker login --username AWS --password-stdin {host}"),
        ),
        (
            "Build your Docker image using the following command. You can skip this step if your image is already built.",
            format!("docker build -t {name} ."),
        ),
        (
            "After the build completes, tag your image so you can push the image to this repository.",
            format!("docker tag {name}:latest {host}/{name}:latest"),
        ),
        (
            "Run the following command to push this image to your newly created repository.",
            format!("docker push {host}/{name}:latest"),
        ),
    ]
}

/// A repository's page: settings, push commands, images with their scan results.
pub async fn repository(
    service: &Service,
    signed: &Signed,
    name: &RepositoryName,
    error: Option<String>,
) -> Response<Body> {
    let described = service
        .describe_repositories(&signed.ctx, Some(std::slice::from_ref(name)), None, 1)
        .await;
    let repo = match described.map(|l| l.items.into_iter().next()) {
        Ok(Some(r)) => r,
        Ok(None) => return super::not_found(),
        Err(e) => {
            return repositories(
                service,
                signed,
                None,
                Some((status_of(&e), e.to_string())),
                None,
            )
            .await
        }
    };
    let (images, mut error) = match service
        .describe_images(&signed.ctx, name, None, ImageFilter::default(), None, 1000)
        .await
    {
        Ok(l) => (l.items.iter().map(image_row).collect(), error),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let status = if error.is_some() {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::OK
    };
    let host = registry_host(service, signed);
    let page = RepositoryPage {
        who: Some(signed.who()),
        error: error.take(),
        notice: None,
        csrf: signed.session.csrf.clone(),
        name: name.to_string(),
        uri: format!("{host}/{name}"),
        mutability: mutability_name(&repo.settings),
        scan_on_push: repo.settings.scan_on_push,
        encryption: repo.settings.encryption_type.clone(),
        push_commands: push_commands(&host, &signed.ctx.registry.region, name.as_str()),
        images,
    };
    render(status, &page)
}

#[derive(Template)]
#[template(path = "console/usage.html")]
pub struct UsagePage {
    pub who: Option<Who>,
    pub error: Option<String>,
    pub notice: Option<String>,
    pub month: String,
    pub storage_price: f64,
    pub transfer_price: f64,
    pub storage_chart: String,
    pub transfer_chart: String,
    /// (name, GB-months, storage $, transfer GB, transfer $, total $), formatted.
    pub rows: Vec<(String, String, String, String, String, String)>,
    pub total: String,
}

/// Usage and cost of the repositories the principal may describe, in this region.
pub async fn usage(service: &Service, signed: &Signed, month: Option<&str>) -> Response<Body> {
    let now = crate::clock::now_ms();
    let month = month
        .and_then(crate::service::Month::parse)
        .unwrap_or_else(|| crate::service::Month::of(now));
    let visible = service
        .describe_repositories(&signed.ctx, None, None, 10_000)
        .await;
    let (visible, error) = match visible {
        Ok(l) => (
            l.items
                .into_iter()
                .map(|r| r.name.to_string())
                .collect::<std::collections::HashSet<_>>(),
            None,
        ),
        Err(e) => (Default::default(), Some(e.to_string())),
    };
    let reg = &signed.ctx.registry;
    let mut report = match service.cost_report(month, now, Some(&reg.account_id)).await {
        Ok(r) => r,
        Err(e) => return super::plain(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    report
        .repositories
        .retain(|r| r.region == reg.region.as_str() && visible.contains(&r.repository_name));
    let daily = report.daily_totals();
    let gb = |b: i64| b as f64 / 1_073_741_824.0;
    let day_label = |d: i64| crate::audit::iso_time(d * 86_400_000)[8..10].to_owned();
    let storage: Vec<(String, f64)> = daily
        .iter()
        .map(|(d, s, _)| (day_label(*d), gb(*s)))
        .collect();
    let transfer: Vec<(String, f64)> = daily
        .iter()
        .map(|(d, _, t)| (day_label(*d), gb(*t)))
        .collect();
    let rows = report
        .repositories
        .iter()
        .map(|r| {
            (
                r.repository_name.clone(),
                format!("{:.6}", r.storage_gb_months),
                format!("{:.4}", r.storage_cost),
                format!("{:.6}", r.transfer_out_gb),
                format!("{:.4}", r.transfer_cost),
                format!("{:.4}", r.total()),
            )
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::OK
    };
    let page = UsagePage {
        who: Some(signed.who()),
        error,
        notice: None,
        month: month.label(),
        storage_price: report.prices.storage_gb_month,
        transfer_price: report.prices.transfer_out_gb,
        storage_chart: super::chart::bars("Stored GB per day", &storage),
        transfer_chart: super::chart::bars("GB sent per day", &transfer),
        rows,
        total: format!("{:.4}", report.total()),
    };
    render(status, &page)
}
