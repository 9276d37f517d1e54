//! Running one scan, the scan job's work for a requested scan: unpack the image's
//! layers off the async threads (scan/), read what is installed, match it against the
//! vulnerability data of the image's OS (vulndb/), and record the outcome with the
//! findings. A scan never runs inside a push's request.
//!
//! What cannot be scanned is recorded as ECR reports it: UNSUPPORTED_IMAGE when the OS
//! or its package database is one Berth does not read, or no data for the OS is
//! loaded (never COMPLETE and clean); FAILED, naming the layer and why, when a layer
//! is hostile or broken.
//!
//! A registry's scan type decides what a scan reads. BASIC, like ECR's basic scanning,
//! matches the OS's packages and records COMPLETE. ENHANCED also matches language
//! packages (PyPI, npm, Go, crates.io, Maven) and records ACTIVE, as ECR does for
//! images Amazon Inspector monitors; the image's inventory is kept, so that a refresh
//! of the vulnerability data rescans the images under a CONTINUOUS_SCAN rule without
//! reading their layers again.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::Arc;

use futures_util::FutureExt;
use serde::Deserialize;
use std::panic::AssertUnwindSafe;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::{Error, Result, Service};
use crate::blobs::{BlobLocation, BlobStore};
use crate::clock;
use crate::meta::{Event, EventKind, ScanOutcome, ScanState, ScanStatus};
use crate::oci::Digest;
use crate::scan::{self, Inventory, Limits, Package};
use crate::scan_rules::ScanType;
use crate::vulndb::{self, ecosystem, Finding};

/// ECR's description for an image it cannot scan; Berth adds why.
const UNSUPPORTED: &str =
    "UnsupportedImageError: The operating system and/or package manager of the image is not supported.";

/// The parts of an image manifest (OCI or Docker schema 2) a scan reads.
#[derive(Deserialize)]
struct ImageManifest {
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    digest: String,
}

/// Config media types of container images; anything else is an artifact.
const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// ECR's description of an image enhanced scanning monitors.
const CONTINUOUS: &str = "Continuous scan is selected for image.";
const ON_PUSH: &str = "Scan on push is selected for image.";

/// What one scan reads and records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Basic,
    Enhanced { continuous: bool },
}

/// How often a scan that failed inside Berth (not because of the image) is tried
/// before it is recorded FAILED, so that one image cannot stop the scans after it.
const ATTEMPTS: u32 = 3;

impl Service {
    /// The scan job's work for one outbox event: a requested scan still in progress is
    /// run and recorded. Idempotent: events are delivered at least once.
    pub async fn scan_for_event(&self, event: &Event) -> Result<()> {
        match event.kind {
            EventKind::ScanRequested => {}
            EventKind::RescanRequested => return self.rescan_guarded(event).await,
            _ => return Ok(()),
        }
        let state = self
            .meta
            .scan_state(event.repository_id, &event.digest)
            .await?;
        if state != Some(ScanState::InProgress) {
            return Ok(());
        }
        let mode = self.mode(event).await?;
        let mut outcome = self
            .scan_guarded(event.repository_id, &event.digest, mode)
            .await?;
        if !outcome.findings.is_empty() {
            let previous = self
                .meta
                .scan_findings(event.repository_id, &event.digest)
                .await?;
            carry_first_observed(&mut outcome.findings, &previous);
        }
        tracing::info!(
            repository = %event.repository_name,
            digest = %event.digest,
            status = outcome.status.as_str(),
            findings = outcome.findings.len(),
            reason = outcome.description.as_deref().unwrap_or(""),
            "image scanned"
        );
        let now = clock::now_ms();
        let source = crate::meta::EventSource {
            registry: &event.registry,
            repository_id: event.repository_id,
            repository_name: &event.repository_name,
            replicated: false,
        };
        self.meta
            .finish_scan(&source, &event.digest, &outcome, now)
            .await?;
        Ok(())
    }

    /// A scan whose own failures (a panic, an error not the metadata store's) end as
    /// FAILED after a few attempts instead of stopping the scan job. A busy store is
    /// left to the job, which retries.
    async fn scan_guarded(
        &self,
        repository_id: i64,
        digest: &str,
        mode: Mode,
    ) -> Result<ScanOutcome> {
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            let run = AssertUnwindSafe(self.scan_image(repository_id, digest, mode))
                .catch_unwind()
                .await;
            match run {
                Ok(Ok(outcome)) => return Ok(outcome),
                Ok(Err(e @ (Error::Busy | Error::StorageFull))) => return Err(e),
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = "the scanner stopped on an internal error".into(),
            }
            tracing::warn!(digest, error = %last, "scan attempt failed");
        }
        // Not the image's fault: the one-scan-a-day quota is given back.
        let mut failed = outcome(ScanStatus::Failed, &format!("Scan failed: {last}."));
        failed.quota_released = true;
        Ok(failed)
    }

    /// How the registry of an event's image scans it.
    async fn mode(&self, event: &Event) -> Result<Mode> {
        let config = self.stored_registry_scanning(&event.registry).await?;
        Ok(match config.scan_type {
            ScanType::Basic => Mode::Basic,
            ScanType::Enhanced => Mode::Enhanced {
                continuous: config.is_continuous(&event.repository_name),
            },
        })
    }

    /// A rescan whose own failures (a panic, a stored inventory that does not read) are
    /// logged and skipped, so that they never hold up the scans after it; a busy store
    /// is left to the job, which retries.
    async fn rescan_guarded(&self, event: &Event) -> Result<()> {
        match AssertUnwindSafe(self.rescan(event)).catch_unwind().await {
            Ok(Err(e @ (Error::Busy | Error::StorageFull))) => Err(e),
            Ok(Err(e)) => {
                tracing::warn!(digest = %event.digest, error = %e, "rescan skipped");
                Ok(())
            }
            Err(_) => {
                tracing::warn!(digest = %event.digest, "rescan skipped: an internal error");
                Ok(())
            }
            Ok(Ok(())) => Ok(()),
        }
    }

    /// A rescan after the vulnerability data changed: the image's kept inventory is
    /// matched again, if it is still monitored (ACTIVE under a CONTINUOUS_SCAN rule).
    async fn rescan(&self, event: &Event) -> Result<()> {
        let mode = self.mode(event).await?;
        if mode != (Mode::Enhanced { continuous: true }) {
            return Ok(());
        }
        let Some(inventory) = self
            .meta
            .scan_inventory(event.repository_id, &event.digest)
            .await?
        else {
            return Ok(());
        };
        let previous = self
            .meta
            .scan_findings(event.repository_id, &event.digest)
            .await?;
        let mut outcome = self.match_inventory(inventory, mode).await?;
        if outcome.status != ScanStatus::Active {
            // The data for the image's ecosystems is gone: keep what was reported.
            return Ok(());
        }
        carry_first_observed(&mut outcome.findings, &previous);
        let now = clock::now_ms();
        self.meta
            .refresh_scan(event.repository_id, &event.digest, &outcome, now)
            .await?;
        tracing::info!(
            repository = %event.repository_name,
            digest = %event.digest,
            findings = outcome.findings.len(),
            "image rescanned after a vulnerability data refresh"
        );
        Ok(())
    }

    async fn scan_image(
        &self,
        repository_id: i64,
        digest: &str,
        mode: Mode,
    ) -> Result<ScanOutcome> {
        let digest: Digest = digest
            .parse()
            .map_err(|_| Error::Internal(format!("stored digest {digest}")))?;
        let Some(m) = self.meta.manifest_by_digest(repository_id, &digest).await? else {
            let gone = "The image was deleted before it was scanned.";
            return Ok(outcome(ScanStatus::Failed, gone));
        };
        let Ok(manifest) = serde_json::from_slice::<ImageManifest>(&m.body) else {
            return Ok(unsupported("the manifest is not an image manifest"));
        };
        let config = manifest
            .config
            .as_ref()
            .and_then(|c| c.media_type.as_deref());
        let config = config.unwrap_or("");
        if !IMAGE_CONFIGS.contains(&config) {
            let why = format!("not a container image (config media type '{config}')");
            return Ok(unsupported(&why));
        }
        let layers = manifest.layers.unwrap_or_default();
        let foreign = layers.iter().find(|l| {
            l.media_type
                .as_deref()
                .is_some_and(|t| t.contains("foreign") || t.contains("nondistributable"))
        });
        if let Some(l) = foreign {
            let why = format!("layer {} is a foreign (Windows) layer", l.digest);
            return Ok(unsupported(&why));
        }
        let mut located = Vec::with_capacity(layers.len());
        for l in &layers {
            let d: Digest = l
                .digest
                .parse()
                .map_err(|_| Error::Internal(format!("stored layer digest {}", l.digest)))?;
            let Some((size, recorded)) = self.meta.linked_blob(repository_id, &d).await? else {
                let missing = format!("Layer {d} is missing.");
                return Ok(outcome(ScanStatus::Failed, &missing));
            };
            let size = u64::try_from(size).unwrap_or(0);
            located.push((self.location(&d, recorded), size));
        }
        let languages = matches!(mode, Mode::Enhanced { .. });
        let files = match unpack(self.blobs.clone(), located, languages).await? {
            Ok(files) => files,
            // A store failure says nothing of the image: the attempt is retried.
            Err(e) if e.error.is_store() => return Err(Error::Internal(e.to_string())),
            Err(e) if e.error.is_too_large() => {
                let why = format!("the image is too large to scan ({e})");
                return Ok(unsupported(&why));
            }
            Err(e) => return Ok(outcome(ScanStatus::Failed, &format!("Scan failed: {e}."))),
        };
        let mut inventory = match scan::inventory(&files).await {
            Ok(inv) => inv,
            Err(e) => return Ok(outcome(ScanStatus::Failed, &format!("Scan failed: {e}."))),
        };
        drop(files);
        inventory.layers = layers.iter().map(|l| l.digest.clone()).collect();
        let mut outcome = self.match_inventory(inventory.clone(), mode).await?;
        if outcome.status == ScanStatus::Active {
            outcome.inventory = Some(inventory);
        }
        Ok(outcome)
    }

    /// Findings for what is installed, from the data loaded for its ecosystems: the
    /// OS's release, and with enhanced scanning each language's.
    async fn match_inventory(&self, inv: Inventory, mode: Mode) -> Result<ScanOutcome> {
        let enhanced = matches!(mode, Mode::Enhanced { .. });
        let mut groups: BTreeMap<String, Vec<&Package>> = BTreeMap::new();
        for p in &inv.packages {
            if let Some(eco) = ecosystem::of_language(p.kind).filter(|_| enhanced) {
                groups.entry(eco.to_owned()).or_default().push(p);
            }
        }
        let languages_only = !groups.is_empty() && inv.databases.is_empty();
        if !languages_only {
            let key = match os_ecosystem(&inv) {
                Ok(key) => key,
                Err(why) => return Ok(unsupported(&why)),
            };
            if self.meta.vulndb_coverage(&key).await?.is_none() {
                let os = inv.os.as_ref().map(|o| o.display()).unwrap_or_default();
                return Ok(unsupported(&format!(
                    "no vulnerability data is loaded for {os} ({key}); load it with `berth admin vulndb import`"
                )));
            }
            let os_packages = inv.packages.iter().filter(|p| p.kind.is_os()).collect();
            groups.insert(key, os_packages);
        }
        let mut findings = Vec::new();
        let mut updated_at: Option<i64> = None;
        let mut unchecked = Vec::new();
        for (key, packages) in &groups {
            match self.match_ecosystem(key, packages, &inv.layers).await? {
                Some((found, at)) => {
                    findings.extend(found);
                    updated_at = updated_at.max(Some(at));
                }
                None => unchecked.push(key.as_str()),
            }
        }
        let Some(updated_at) = updated_at else {
            return Ok(unsupported(&format!(
                "no vulnerability data is loaded for {}; load it with `berth admin vulndb import`",
                unchecked.join(", ")
            )));
        };
        let findings = vulndb::merge(findings);
        let (status, description) = match mode {
            Mode::Basic => (ScanStatus::Complete, None),
            Mode::Enhanced { continuous } => {
                let said = if continuous { CONTINUOUS } else { ON_PUSH };
                (ScanStatus::Active, Some(said.to_owned()))
            }
        };
        let mut notes = Vec::new();
        if !unchecked.is_empty() {
            notes.push(format!(
                "no vulnerability data is loaded for {}; those packages were not checked",
                unchecked.join(", ")
            ));
        }
        if languages_only {
            // An OS package database Berth does not read (BerkeleyDB rpm) beside
            // language packages: the OS's packages were not checked either.
            notes.extend(inv.unread.iter().map(|f| format!("{f} was not read")));
        }
        let description = match (description, notes.is_empty()) {
            (d, true) => d,
            (d, false) => Some(format!(
                "{}Berth: {}.",
                d.map(|d| d + " ").unwrap_or_default(),
                notes.join("; ")
            )),
        };
        Ok(ScanOutcome {
            status,
            description,
            counts: vulndb::severity_counts(&findings),
            findings,
            source_updated_at: Some(updated_at),
            quota_released: false,
            inventory: None,
        })
    }

    /// The findings among `packages` of one ecosystem and when its data was updated;
    /// `None` if no data for it is loaded.
    async fn match_ecosystem(
        &self,
        key: &str,
        packages: &[&Package],
        layers: &[String],
    ) -> Result<Option<(Vec<Finding>, i64)>> {
        let Some(mut coverage) = self.meta.vulndb_coverage(key).await? else {
            return Ok(None);
        };
        let names: BTreeSet<String> = packages
            .iter()
            .map(|p| vulndb::advisory_name(p).into_owned())
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let candidates = loop {
            let found = self.meta.vulndb_candidates(key, coverage, &names).await?;
            // An import that published meanwhile removed the generation just read:
            // read again from the new one rather than report the image clean.
            match self.meta.vulndb_coverage(key).await? {
                Some(now) if now.gen != coverage.gen => coverage = now,
                _ => break found,
            }
        };
        let findings = vulndb::findings(packages, &candidates, layers);
        Ok(Some((findings, coverage.updated_at)))
    }
}

/// The ecosystem of the image's OS packages, or why they cannot be matched.
fn os_ecosystem(inv: &Inventory) -> std::result::Result<String, String> {
    let Some(os) = &inv.os else {
        return Err("no OS release file (etc/os-release) was found in the image".into());
    };
    if inv.databases.is_empty() {
        return Err(match inv.unread.first() {
            Some(format) => format!("{format} is not read by Berth"),
            None => format!(
                "no package database (dpkg, apk or rpm) was found for {}",
                os.display()
            ),
        });
    }
    ecosystem::of_os(os).ok_or_else(|| format!("{} names no version (VERSION_ID)", os.display()))
}

/// A rescan's findings keep when they were first observed.
fn carry_first_observed(findings: &mut [Finding], previous: &[Finding]) {
    let seen: BTreeMap<(&str, &str), i64> = previous
        .iter()
        .filter_map(|f| {
            Some((
                (f.name.as_str(), f.package_name.as_str()),
                f.first_observed_ms?,
            ))
        })
        .collect();
    let now = clock::now_ms();
    for f in findings {
        let key = (f.name.as_str(), f.package_name.as_str());
        f.first_observed_ms = Some(seen.get(&key).copied().unwrap_or(now));
    }
}

/// Unpack layers on a blocking thread, streaming each from the blob store.
async fn unpack(
    blobs: Arc<dyn BlobStore>,
    layers: Vec<(BlobLocation, u64)>,
    languages: bool,
) -> Result<std::result::Result<scan::ImageFiles, scan::UnpackError>> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let open = |i: usize| -> std::io::Result<(Box<dyn Read + Send>, u64)> {
            let (location, size) = &layers[i];
            let reader = handle
                .block_on(blobs.read(location, None))
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let sync =
                SyncIoBridge::new_with_handle(StreamReader::new(reader.stream), handle.clone());
            Ok((Box::new(StoreErrors(sync)), *size))
        };
        scan::unpack(layers.len(), open, &Limits::default(), languages)
    })
    .await
    .map_err(|e| Error::Internal(format!("scan task: {e}")))
}

/// A blob's stream whose errors are marked as the store's.
struct StoreErrors<R>(R);

impl<R: Read> Read for StoreErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0
            .read(buf)
            .map_err(|e| std::io::Error::new(e.kind(), scan::layers::StoreFailure(e.to_string())))
    }
}

fn outcome(status: ScanStatus, description: &str) -> ScanOutcome {
    ScanOutcome {
        status,
        description: Some(sanitize(description)),
        counts: Default::default(),
        findings: Vec::new(),
        source_updated_at: None,
        quota_released: false,
        inventory: None,
    }
}

/// Text that may come from an image, fit for a description: no control characters
/// (PostgreSQL refuses NUL), and bounded.
fn sanitize(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(2000)
        .collect()
}

fn unsupported(reason: &str) -> ScanOutcome {
    outcome(
        ScanStatus::UnsupportedImage,
        &format!("{UNSUPPORTED} Berth: {reason}."),
    )
}
