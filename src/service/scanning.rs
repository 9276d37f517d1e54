//! Image scanning: the registry's scanning configuration, scans started by hand or on
//! push, and their findings.
//!
//! A scan is requested by StartImageScan or by the push itself (in the push's
//! transaction), and run by the scan job (jobs/), which consumes the outbox and calls
//! scanner.rs. What people script around ECR's basic scanning works:
//! `start-image-scan`, `aws ecr wait image-scan-complete`,
//! `describe-image-scan-findings`, scan on push, the one-scan-per-image-per-day quota,
//! and the scan status DescribeImages reports.

use super::paging::Listing;
use super::{Action, Context, EcrErrorKind, Error, ImageId, Result, Service};
use crate::clock;
use crate::meta::{RegistryKey, Repository, ScanState, ScanStatus};
use crate::oci::manifest::ManifestKind;
use crate::oci::RepositoryName;
use crate::scan_rules::{ScanFrequency, ScanType, ScanningFilter, ScanningRule};
use crate::vulndb::Finding;

/// One basic scan per image per 24 hours (ECR's quota), scan on push included.
const SCAN_QUOTA_MS: i64 = 24 * 3600 * 1000;

/// A registry's scanning configuration; ECR's default is BASIC with no rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryScanning {
    pub scan_type: ScanType,
    pub rules: Vec<ScanningRule>,
}

impl Default for RegistryScanning {
    fn default() -> Self {
        RegistryScanning {
            scan_type: ScanType::Basic,
            rules: Vec::new(),
        }
    }
}

/// How a repository's images are scanned, as BatchGetRepositoryScanningConfiguration
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryScanning {
    pub name: RepositoryName,
    pub scan_on_push: bool,
    pub frequency: ScanFrequency,
    /// The registry filter that chose the frequency, if one did.
    pub applied: Vec<ScanningFilter>,
}

impl RegistryScanning {
    /// The first rule with a filter matching `name`: (frequency, that filter).
    fn rule_for(&self, name: &str) -> Option<(ScanFrequency, &ScanningFilter)> {
        self.rules
            .iter()
            .find_map(|r| r.filter_for(name).map(|f| (r.frequency(), f)))
    }

    /// A repository's scanning as reported: the frequency of the first matching
    /// registry rule (else MANUAL), and the repository's own scan-on-push setting.
    fn for_repository(&self, repo: &Repository) -> RepositoryScanning {
        let (frequency, applied) = match self.rule_for(repo.name.as_str()) {
            Some((f, filter)) => (f, vec![filter.clone()]),
            None => (ScanFrequency::Manual, Vec::new()),
        };
        RepositoryScanning {
            name: repo.name.clone(),
            scan_on_push: repo.settings.scan_on_push,
            frequency,
            applied,
        }
    }

    /// Whether a push to `repo` is scanned: a registry rule scans on push (or
    /// continuously, which includes the push), or, with basic scanning, the
    /// repository asks to (enhanced scanning follows the registry's rules alone).
    fn scans_on_push(&self, repo: &Repository) -> bool {
        (self.scan_type == ScanType::Basic && repo.settings.scan_on_push)
            || self
                .rule_for(repo.name.as_str())
                .is_some_and(|(f, _)| f.scans_on_push())
    }

    /// Whether images of the repository `name` are rescanned when the vulnerability
    /// data changes: enhanced scanning with a CONTINUOUS_SCAN rule that matches.
    pub(super) fn is_continuous(&self, name: &str) -> bool {
        self.scan_type == ScanType::Enhanced
            && self
                .rule_for(name)
                .is_some_and(|(f, _)| f == ScanFrequency::ContinuousScan)
    }
}

impl Service {
    pub async fn put_registry_scanning(
        &self,
        ctx: &Context,
        config: &RegistryScanning,
    ) -> Result<()> {
        self.authorize_registry(ctx, Action::PutRegistryScanningConfiguration)
            .await?;
        let rules = serde_json::to_string(&config.rules)
            .map_err(|e| Error::Internal(format!("scanning rules: {e}")))?;
        self.meta
            .put_registry_scanning(&ctx.registry, config.scan_type.as_str(), &rules)
            .await?;
        Ok(())
    }

    pub async fn registry_scanning(&self, ctx: &Context) -> Result<RegistryScanning> {
        self.authorize_registry(ctx, Action::GetRegistryScanningConfiguration)
            .await?;
        self.stored_registry_scanning(&ctx.registry).await
    }

    /// Every push reads this, so it is cached (single node only, like the other
    /// registry lookups).
    pub(super) async fn stored_registry_scanning(
        &self,
        reg: &RegistryKey,
    ) -> Result<RegistryScanning> {
        if let Some(config) = self.cache.registry_scanning(reg) {
            return Ok(config);
        }
        let seen = self.cache.epoch();
        let config = match self.meta.registry_scanning(reg).await? {
            None => RegistryScanning::default(),
            Some((scan_type, rules)) => RegistryScanning {
                scan_type: ScanType::parse(&scan_type)
                    .map_err(|_| Error::Internal(format!("stored scan type {scan_type}")))?,
                rules: serde_json::from_str(&rules)
                    .map_err(|e| Error::Internal(format!("stored scanning rules: {e}")))?,
            },
        };
        self.cache.put_registry_scanning(seen, reg, &config);
        Ok(config)
    }

    /// The scanning of each named repository; the names of those that do not exist.
    pub async fn repository_scanning(
        &self,
        ctx: &Context,
        names: &[RepositoryName],
    ) -> Result<(Vec<RepositoryScanning>, Vec<RepositoryName>)> {
        let config = self.stored_registry_scanning(&ctx.registry).await?;
        let (mut found, mut missing) = (Vec::new(), Vec::new());
        for name in names {
            self.authorize(ctx, Action::BatchGetRepositoryScanningConfiguration, name)
                .await?;
            match self.find_repository(ctx, name).await? {
                Some(repo) => found.push(config.for_repository(&repo)),
                None => missing.push(name.clone()),
            }
        }
        Ok((found, missing))
    }

    /// StartImageScan: records the scan IN_PROGRESS (the scan job completes it) and
    /// answers the scanned image's digest.
    pub async fn start_image_scan(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        id: &ImageId,
    ) -> Result<String> {
        self.authorize(ctx, Action::StartImageScan, name).await?;
        let repo = self.repository(ctx, name).await?;
        let m = self.resolve_one(ctx, name, &repo, id).await?;
        if m.archived {
            return Err(Error::ImageArchived);
        }
        if !is_scannable(&m.media_type) {
            return Err(Error::ecr(
                EcrErrorKind::UnsupportedImageType,
                "The image is of a type that cannot be scanned.",
            ));
        }
        let now = clock::now_ms();
        let source = super::event_source(ctx, &repo);
        if !self
            .meta
            .request_scan(&source, &m.digest, now, now - SCAN_QUOTA_MS)
            .await?
        {
            return Err(Error::ecr(
                EcrErrorKind::LimitExceeded,
                "The scan quota per image has been exceeded. Wait and try again.",
            ));
        }
        Ok(m.digest.clone())
    }

    /// DescribeImageScanFindings: the image's digest, where its latest scan stands, and
    /// a page of its findings (`after`: the previous page's key).
    pub async fn image_scan(
        &self,
        ctx: &Context,
        name: &RepositoryName,
        id: &ImageId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(String, ScanState, Listing<Finding>)> {
        self.authorize(ctx, Action::DescribeImageScanFindings, name)
            .await?;
        let repo = self.repository(ctx, name).await?;
        let m = self.resolve_one(ctx, name, &repo, id).await?;
        match self.meta.scan_state(repo.id, &m.digest).await? {
            Some(state) => {
                let complete = matches!(&state, ScanState::Done(r)
                    if matches!(r.status, ScanStatus::Complete | ScanStatus::Active));
                let findings = if complete {
                    let all = self.meta.scan_findings(repo.id, &m.digest).await?;
                    findings_page(all, after, limit)?
                } else {
                    Listing::empty()
                };
                Ok((m.digest.clone(), state, findings))
            }
            None => Err(Error::ecr(
                EcrErrorKind::ScanNotFound,
                format!(
                    "Image scan does not exist for the image with '{{imageDigest:'{}', imageTag:'{}'}}' in the repository with name '{name}' in the registry with id '{}'",
                    id.digest.as_deref().unwrap_or(&m.digest),
                    id.tag.as_deref().unwrap_or("null"),
                    ctx.registry.account_id
                ),
            )),
        }
    }

    /// Before a push is stored: whether it requests a scan (its repository is scanned
    /// on push and the image is scannable), as the cutoff of the per-image daily quota
    /// that the push's own transaction applies.
    pub(super) async fn scan_on_push_cutoff(
        &self,
        ctx: &Context,
        repo: &Repository,
        media_type: &str,
    ) -> Result<Option<i64>> {
        if !is_scannable(media_type) {
            return Ok(None);
        }
        let config = self.stored_registry_scanning(&ctx.registry).await?;
        Ok(config
            .scans_on_push(repo)
            .then(|| clock::now_ms() - SCAN_QUOTA_MS))
    }
}

/// The findings after offset `after` (a previous page's key), at most `limit`.
fn findings_page(
    mut all: Vec<Finding>,
    after: Option<&str>,
    limit: u32,
) -> Result<Listing<Finding>> {
    let start = match after {
        None => 0,
        Some(key) => key
            .parse::<usize>()
            .map_err(|_| Error::InvalidParameter("Invalid NextToken".into()))?,
    };
    let end = start.saturating_add(limit as usize).min(all.len());
    let next = (end < all.len()).then(|| end.to_string());
    let items = if start < all.len() {
        all.drain(start..end).collect()
    } else {
        Vec::new()
    };
    Ok(Listing { items, next })
}

/// Images are scanned; an index (multi-platform list) has no layers of its own.
pub(super) fn is_scannable(media_type: &str) -> bool {
    ManifestKind::from_media_type(media_type).is_some_and(|k| !k.is_index())
}
