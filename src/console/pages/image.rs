//! An image's page: its details, its scan findings (DescribeImageScanFindings), the
//! artifacts that refer to it (signatures, SBOMs), and where replication and signing
//! of it stand.

use askama::Template;
use axum::body::Body;
use axum::http::Response;

use super::repository::scan_summary;
use super::{frame, time, Flash, Frame};
use crate::console::{render, Signed};
use crate::meta::{ImageDetail, ScanState};
use crate::oci::{Digest, RepositoryName};
use crate::service::{Error, ImageId, Service};

/// Findings shown (the most a DescribeImageScanFindings page holds).
const FINDINGS: u32 = 1000;

pub struct FindingRow {
    pub name: String,
    pub severity: &'static str,
    pub package: String,
    pub version: String,
    pub fixed_in: String,
    pub score: String,
    pub uri: String,
    pub description: String,
}

pub struct ReferrerRow {
    pub digest: String,
    pub artifact_type: String,
    pub size: i64,
}

#[derive(Template)]
#[template(path = "console/image.html")]
pub struct ImagePage {
    pub frame: Frame,
    pub repository: String,
    pub digest: String,
    pub tags: String,
    pub pushed: String,
    pub size_mb: String,
    pub media_type: String,
    pub last_pulled: String,
    pub storage_class: &'static str,
    pub scan_status: String,
    pub scan_summary: String,
    pub scan_description: String,
    pub scanned_at: String,
    pub findings: Vec<FindingRow>,
    pub referrers: Vec<ReferrerRow>,
    /// (destination, status, failure)
    pub replication: Vec<(String, String, String)>,
    /// (signing profile, status, failure)
    pub signing: Vec<(String, String, String)>,
}

fn finding_row(f: &crate::vulndb::Finding) -> FindingRow {
    FindingRow {
        name: f.name.clone(),
        severity: f.severity.as_str(),
        package: f.package_name.clone(),
        version: f.package_version.clone(),
        fixed_in: f.fixed_in.clone().unwrap_or_default(),
        score: f
            .cvss3_score
            .map(|s| format!("{}.{}", s / 10, s % 10))
            .unwrap_or_default(),
        uri: f.uri.clone(),
        description: f.description.clone(),
    }
}

/// The image's page; `digest` as the path gave it.
pub async fn image(
    service: &Service,
    signed: &Signed,
    name: &RepositoryName,
    digest: &str,
) -> Response<Body> {
    let Ok(digest) = digest.parse::<Digest>() else {
        return super::repository(service, signed, name, Flash::failed(&Error::InvalidDigest))
            .await;
    };
    let id = ImageId {
        digest: Some(digest.to_string()),
        tag: None,
    };
    let detail = service
        .describe_images(
            &signed.ctx,
            name,
            Some(std::slice::from_ref(&id)),
            Default::default(),
            None,
            1,
        )
        .await
        .map(|l| l.items.into_iter().next());
    let detail: ImageDetail = match detail {
        Ok(Some(d)) => d,
        Ok(None) => return crate::console::not_found(),
        Err(e) => return super::repository(service, signed, name, Flash::failed(&e)).await,
    };
    let mut frame = frame(signed, Flash::default());
    let (scan_status, summary) = scan_summary(&detail.scan);
    let (findings, scan_description, scanned_at) = match &detail.scan {
        Some(ScanState::Done(r)) => {
            let findings = match service
                .image_scan(&signed.ctx, name, &id, None, FINDINGS)
                .await
            {
                Ok((_, _, page)) => page.items.iter().map(finding_row).collect(),
                Err(e) => {
                    frame.fail(&e);
                    Vec::new()
                }
            };
            (
                findings,
                r.description.clone().unwrap_or_default(),
                time(r.at),
            )
        }
        _ => (Vec::new(), String::new(), String::new()),
    };
    let referrers = match service
        .list_referrers(&signed.ctx, name, &digest, &[], None, 1000)
        .await
    {
        Ok(l) => l
            .items
            .into_iter()
            .map(|r| ReferrerRow {
                artifact_type: r.artifact_type.unwrap_or_else(|| r.media_type.clone()),
                digest: r.digest,
                size: r.size,
            })
            .collect(),
        Err(e) => {
            frame.fail(&e);
            Vec::new()
        }
    };
    // Replication and signing are shown only where they are configured and allowed.
    let replication = service
        .describe_image_replication_status(&signed.ctx, name, &id)
        .await
        .map(|(_, rows)| {
            rows.into_iter()
                .map(|r| {
                    let d = r.destination;
                    (
                        format!("{} · {}", d.account_id, d.region),
                        r.status,
                        r.failure_code.unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let signing = service
        .describe_image_signing_status(&signed.ctx, name, &id)
        .await
        .map(|(_, rows)| {
            rows.into_iter()
                .map(|r| {
                    (
                        r.profile_arn,
                        r.status,
                        r.failure_reason.unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let page = ImagePage {
        frame,
        repository: name.to_string(),
        digest: detail.digest.clone(),
        tags: detail.tags.join(", "),
        pushed: time(detail.pushed_at),
        size_mb: format!("{:.2}", detail.size as f64 / 1_000_000.0),
        media_type: detail.media_type.clone(),
        last_pulled: detail
            .last_pulled_at
            .map(time)
            .unwrap_or_else(|| "-".into()),
        storage_class: if detail.archived {
            "ARCHIVE"
        } else {
            "STANDARD"
        },
        scan_status,
        scan_summary: summary,
        scan_description,
        scanned_at,
        findings,
        referrers,
        replication,
        signing,
    };
    render(page.frame.status, &page)
}
