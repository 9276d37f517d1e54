//! Running one scan, the scan job's work for a requested scan: unpack the image's
//! layers off the async threads (scan/), read what is installed, match it against the
//! vulnerability data of the image's OS (vulndb/), and record the outcome with the
//! findings. A scan never runs inside a push's request.
//!
//! What cannot be scanned is recorded as ECR reports it: UNSUPPORTED_IMAGE when the OS
//! or its package database is one Berth does not read, or no data for the OS is
//! loaded (never COMPLETE and clean); FAILED, naming the layer and why, when a layer
//! is hostile or broken.

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::Arc;

use serde::Deserialize;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::{Error, Result, Service};
use crate::blobs::{BlobLocation, BlobStore};
use crate::clock;
use crate::meta::{Event, EventKind, ScanOutcome, ScanState, ScanStatus};
use crate::oci::Digest;
use crate::scan::{self, Inventory, Limits};
use crate::vulndb::{self, ecosystem};

/// ECR's description for an image it cannot scan; Berth adds why.
const UNSUPPORTED: &str =
    "UnsupportedImageError: The operating system and/or package manager of the image is not supported.";

/// The layer list of an image manifest (OCI or Docker schema 2).
#[derive(Deserialize)]
struct LayerList {
    layers: Option<Vec<LayerRef>>,
}

#[derive(Deserialize)]
struct LayerRef {
    digest: String,
}

impl Service {
    /// The scan job's work for one outbox event: a requested scan still in progress is
    /// run and recorded. Idempotent: events are delivered at least once.
    pub async fn scan_for_event(&self, event: &Event) -> Result<()> {
        if event.kind != EventKind::ScanRequested {
            return Ok(());
        }
        let state = self
            .meta
            .scan_state(event.repository_id, &event.digest)
            .await?;
        if state != Some(ScanState::InProgress) {
            return Ok(());
        }
        let outcome = self.scan_image(event.repository_id, &event.digest).await?;
        tracing::info!(
            repository = %event.repository_name,
            digest = %event.digest,
            status = outcome.status.as_str(),
            findings = outcome.findings.len(),
            reason = outcome.description.as_deref().unwrap_or(""),
            "image scanned"
        );
        self.meta
            .finish_scan(
                event.repository_id,
                &event.digest,
                &outcome,
                clock::now_ms(),
            )
            .await?;
        Ok(())
    }

    async fn scan_image(&self, repository_id: i64, digest: &str) -> Result<ScanOutcome> {
        let digest: Digest = digest
            .parse()
            .map_err(|_| Error::Internal(format!("stored digest {digest}")))?;
        let Some(m) = self.meta.manifest_by_digest(repository_id, &digest).await? else {
            return Ok(outcome(
                ScanStatus::Failed,
                "The image was deleted before it was scanned.",
            ));
        };
        let layers = match serde_json::from_slice::<LayerList>(&m.body)
            .ok()
            .and_then(|l| l.layers)
        {
            Some(l) => l,
            None => return Ok(unsupported("the manifest lists no layers to scan")),
        };
        let mut located = Vec::with_capacity(layers.len());
        for l in &layers {
            let d: Digest = l
                .digest
                .parse()
                .map_err(|_| Error::Internal(format!("stored layer digest {}", l.digest)))?;
            let Some((size, recorded)) = self.meta.linked_blob(repository_id, &d).await? else {
                return Ok(outcome(
                    ScanStatus::Failed,
                    &format!("Layer {d} is missing."),
                ));
            };
            let size = u64::try_from(size).unwrap_or(0);
            located.push((self.location(&d, recorded), size));
        }
        let files = match unpack(self.blobs.clone(), located).await? {
            Ok(files) => files,
            Err(e) if e.error.is_too_large() => {
                return Ok(unsupported(&format!(
                    "the image is too large to scan ({e})"
                )))
            }
            Err(e) => return Ok(outcome(ScanStatus::Failed, &format!("Scan failed: {e}."))),
        };
        let inventory = match scan::inventory(&files).await {
            Ok(inv) => inv,
            Err(e) => return Ok(outcome(ScanStatus::Failed, &format!("Scan failed: {e}."))),
        };
        drop(files);
        self.match_inventory(inventory).await
    }

    /// Findings for what is installed, from the data loaded for the image's OS.
    async fn match_inventory(&self, inv: Inventory) -> Result<ScanOutcome> {
        let Some(os) = &inv.os else {
            return Ok(unsupported(
                "no OS release file (etc/os-release) was found in the image",
            ));
        };
        if inv.databases.is_empty() {
            let reason = match inv.unread.first() {
                Some(format) => format!("{format} is not read by Berth"),
                None => format!(
                    "no package database (dpkg, apk or rpm) was found for {}",
                    os.display()
                ),
            };
            return Ok(unsupported(&reason));
        }
        let Some(key) = ecosystem::of_os(os) else {
            return Ok(unsupported(&format!(
                "{} names no version (VERSION_ID)",
                os.display()
            )));
        };
        let Some(coverage) = self.meta.vulndb_coverage(&key).await? else {
            return Ok(unsupported(&format!(
                "no vulnerability data is loaded for {} ({key}); load it with `berth admin vulndb import`",
                os.display()
            )));
        };
        let names: BTreeSet<&str> = inv.packages.iter().map(vulndb::advisory_name).collect();
        let names: Vec<&str> = names.into_iter().collect();
        let candidates = self.meta.vulndb_candidates(&key, coverage, &names).await?;
        let findings = vulndb::findings(&inv.packages, &candidates);
        Ok(ScanOutcome {
            status: ScanStatus::Complete,
            description: None,
            counts: vulndb::severity_counts(&findings),
            findings,
            source_updated_at: Some(coverage.updated_at),
        })
    }
}

/// Unpack layers on a blocking thread, streaming each from the blob store.
async fn unpack(
    blobs: Arc<dyn BlobStore>,
    layers: Vec<(BlobLocation, u64)>,
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
            Ok((Box::new(sync), *size))
        };
        scan::unpack(layers.len(), open, &Limits::default())
    })
    .await
    .map_err(|e| Error::Internal(format!("scan task: {e}")))
}

fn outcome(status: ScanStatus, description: &str) -> ScanOutcome {
    ScanOutcome {
        status,
        description: Some(description.to_owned()),
        counts: Default::default(),
        findings: Vec::new(),
        source_updated_at: None,
    }
}

fn unsupported(reason: &str) -> ScanOutcome {
    outcome(
        ScanStatus::UnsupportedImage,
        &format!("{UNSUPPORTED} Berth: {reason}."),
    )
}
