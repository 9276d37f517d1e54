//! A repository's page: its settings (tag mutability with exclusions, scan on push,
//! encryption, resource tags), ECR's "View push commands", its images with their scan
//! results and referrers, and deleting it.

use askama::Template;
use axum::body::Body;
use axum::http::Response;

use super::{field, frame, mutability_of, registry_host, time, Flash, Frame};
use crate::console::{not_found, render, Signed};
use crate::meta::{ImageDetail, Repository, ScanState};
use crate::mutability::Mode;
use crate::oci::RepositoryName;
use crate::resource_tags::ResourceTags;
use crate::service::{Error, ImageFilter, Service};

/// Images shown on the page.
const IMAGES: u32 = 1000;

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
    /// The digest of the image this one refers to (a signature's subject).
    pub subject: Option<String>,
}

#[derive(Template)]
#[template(path = "console/repository.html")]
pub struct RepositoryPage {
    pub frame: Frame,
    pub name: String,
    pub uri: String,
    pub arn: String,
    pub created: String,
    pub mutability: &'static str,
    pub modes: [&'static str; 4],
    pub exclusions: String,
    pub scan_on_push: bool,
    pub encryption: String,
    pub kms_key: Option<String>,
    pub resource_tags: Option<Vec<(String, String)>>,
    pub push_commands: Vec<(&'static str, String)>,
    pub images: Vec<ImageRow>,
}

/// What kind of artifact a manifest is, as ECR's console names it.
fn kind(i: &ImageDetail) -> String {
    if i.subject.is_some() {
        return i.artifact_type.clone().unwrap_or_else(|| "Referrer".into());
    }
    if i.media_type.contains("index") || i.media_type.contains("manifest.list") {
        return "Image Index".into();
    }
    match i.config_media_type.as_deref() {
        Some(c) if c.contains("image.config") || c.contains("container.image") => "Image".into(),
        Some(c) => c.to_owned(),
        None => "Image".into(),
    }
}

/// A scan's status and its findings by severity, most severe first.
pub fn scan_summary(scan: &Option<ScanState>) -> (String, String) {
    match scan {
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
    }
}

fn image_row(i: &ImageDetail) -> ImageRow {
    let (scan_status, findings) = scan_summary(&i.scan);
    ImageRow {
        tags: i.tags.clone(),
        kind: kind(i),
        pushed: time(i.pushed_at),
        size_mb: format!("{:.2}", i.size as f64 / 1_000_000.0),
        digest: i.digest.clone(),
        short_digest: i.digest.chars().take(19).collect(),
        last_pulled: i.last_pulled_at.map(time).unwrap_or_else(|| "-".into()),
        storage_class: if i.archived { "ARCHIVE" } else { "STANDARD" },
        scan_status,
        findings,
        subject: i.subject.clone(),
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

/// The repository, as the principal may describe it; `None` if it does not exist.
pub(super) async fn described(
    service: &Service,
    signed: &Signed,
    name: &RepositoryName,
) -> Result<Option<Repository>, Error> {
    let listing = service
        .describe_repositories(&signed.ctx, Some(std::slice::from_ref(name)), None, 1)
        .await;
    match listing {
        Ok(l) => Ok(l.items.into_iter().next()),
        Err(Error::RepositoryNotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A repository's page, with what the last form left to say.
pub async fn repository(
    service: &Service,
    signed: &Signed,
    name: &RepositoryName,
    flash: Flash,
) -> Response<Body> {
    let repo = match described(service, signed, name).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(),
        Err(e) => return super::repositories(service, signed, None, Flash::failed(&e)).await,
    };
    let mut frame = frame(signed, flash);
    let images = match service
        .describe_images(
            &signed.ctx,
            name,
            None,
            ImageFilter::default(),
            None,
            IMAGES,
        )
        .await
    {
        Ok(l) => l.items.iter().map(image_row).collect(),
        Err(e) => {
            frame.fail(&e);
            Vec::new()
        }
    };
    // Tags are shown only to whom may list them; not being allowed is no error here.
    let resource_tags = service.list_resource_tags(&signed.ctx, name).await.ok();
    let host = registry_host(service, signed);
    let settings = &repo.settings;
    let page = RepositoryPage {
        frame,
        uri: format!("{host}/{name}"),
        arn: Service::repository_arn(&signed.ctx, name),
        created: time(repo.created_at),
        mutability: settings.tag_mutability.mode().as_str(),
        modes: Mode::ALL.map(Mode::as_str),
        exclusions: settings.tag_mutability.exclusions().join(", "),
        scan_on_push: settings.scan_on_push,
        encryption: settings.encryption_type.clone(),
        kms_key: settings.kms_key.clone(),
        resource_tags,
        push_commands: push_commands(&host, &signed.ctx.registry.region, name.as_str()),
        images,
        name: name.to_string(),
    };
    render(page.frame.status, &page)
}

/// PutImageTagMutability and PutImageScanningConfiguration, for what the form changed.
pub async fn settings_form(
    service: &Service,
    signed: &Signed,
    name: &RepositoryName,
    form: &[(String, String)],
) -> Response<Body> {
    let saved = async {
        let repo =
            described(service, signed, name)
                .await?
                .ok_or_else(|| Error::RepositoryNotFound {
                    name: name.to_string(),
                    registry_id: signed.ctx.registry.account_id.clone(),
                })?;
        let mutability = mutability_of(form);
        let changed = mutability
            .as_ref()
            .map_or(true, |m| *m != repo.settings.tag_mutability);
        if changed {
            signed.audit(
                service,
                "PutImageTagMutability",
                Some(name),
                serde_json::json!({
                    "repositoryName": name.as_str(),
                    "imageTagMutability": field(form, "mutability"),
                    "imageTagMutabilityExclusionFilters": field(form, "exclusions"),
                }),
            );
            service
                .put_image_tag_mutability(&signed.ctx, name, &mutability?)
                .await?;
        }
        let scan_on_push = field(form, "scan_on_push") == Some("true");
        if scan_on_push != repo.settings.scan_on_push {
            signed.audit(
                service,
                "PutImageScanningConfiguration",
                Some(name),
                serde_json::json!({
                    "repositoryName": name.as_str(),
                    "imageScanningConfiguration": { "scanOnPush": scan_on_push },
                }),
            );
            service
                .put_image_scanning_configuration(&signed.ctx, name, scan_on_push)
                .await?;
        }
        Ok::<_, Error>(())
    }
    .await;
    let flash = signed.outcome(saved.map(|_| format!("Saved the settings of {name}.")));
    repository(service, signed, name, flash).await
}

/// TagResource (`action=add`, one key and value) or UntagResource (`action=remove`).
pub async fn tags_form(
    service: &Service,
    signed: &Signed,
    name: &RepositoryName,
    form: &[(String, String)],
) -> Response<Body> {
    let key = field(form, "key").unwrap_or("").trim().to_owned();
    let arn = Service::repository_arn(&signed.ctx, name);
    let done = match field(form, "action") {
        Some("remove") => {
            signed.audit(
                service,
                "UntagResource",
                Some(name),
                serde_json::json!({ "resourceArn": arn, "tagKeys": [key] }),
            );
            service
                .untag_resource(&signed.ctx, name, std::slice::from_ref(&key))
                .await
                .map(|_| format!("Removed tag {key}."))
        }
        _ => {
            let value = field(form, "value").unwrap_or("").to_owned();
            signed.audit(
                service,
                "TagResource",
                Some(name),
                serde_json::json!({ "resourceArn": arn, "tags": [{ "Key": key, "Value": value }] }),
            );
            match ResourceTags::parse(vec![(key.clone(), value)]) {
                Ok(tags) => service
                    .tag_resource(&signed.ctx, name, &tags)
                    .await
                    .map(|_| format!("Tagged {name} with {key}.")),
                Err(e) => Err(Error::InvalidParameter(e.to_string())),
            }
        }
    };
    let flash = signed.outcome(done);
    repository(service, signed, name, flash).await
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
            Flash::invalid("Type delete to confirm."),
        )
        .await;
    }
    signed.audit(
        service,
        "DeleteRepository",
        Some(name),
        serde_json::json!({ "repositoryName": name.as_str(), "force": true }),
    );
    match service.delete_repository(&signed.ctx, name, true).await {
        Ok(_) => {
            super::repositories(
                service,
                signed,
                None,
                Flash::notice(format!("Deleted repository {name}.")),
            )
            .await
        }
        Err(e) => {
            let flash = signed.failed(&e);
            repository(service, signed, name, flash).await
        }
    }
}
