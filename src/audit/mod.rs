//! The audit trail: one CloudTrail-shaped record per audited call, stored in the
//! metadata store (queried by `berth admin events` and the console) and optionally
//! appended to a JSON-lines file.
//!
//! Front ends describe a call as an [`AuditCall`] (through the request's note); when
//! the request has been answered the HTTP layer gives it to [`AuditLog::record`], which
//! builds the record and queues it. One writer task per process stores queued records
//! in batches, so auditing adds a channel send to a request, not a database write.
//! Records still queued when a process is killed are lost (a graceful stop writes
//! them); the change they describe is not affected either way.

mod record;
mod settings;

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

pub use record::{
    iso_time, policy_execution_record, user_identity, AuditCall, CallKind, EventSource,
    LifecycleImageAction, Received,
};
pub use settings::AuditSettings;

use crate::meta::{AuditRecord, MetaStore};

/// Records waiting for the writer before senders wait (in a spawned task) for room.
const QUEUE: usize = 20_000;
/// Most records stored in one transaction.
const BATCH: usize = 500;
/// How long the writer gathers records before it stores them: one transaction (one
/// sync to disk) for all the records of that time, not one per record.
const GATHER: Duration = Duration::from_millis(200);

/// This process's audit log.
pub struct AuditLog {
    settings: AuditSettings,
    tx: Mutex<Option<mpsc::Sender<AuditRecord>>>,
    writer: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl AuditLog {
    /// Start the writer (within a tokio runtime); `written` hears how many records
    /// each batch stored (the metrics count them).
    pub fn start(meta: Arc<MetaStore>, settings: AuditSettings, written: fn(u64)) -> AuditLog {
        let (tx, rx) = mpsc::channel(QUEUE);
        let file = settings.file.clone();
        let writer = tokio::spawn(write_records(meta, rx, file, written));
        AuditLog {
            settings,
            tx: Mutex::new(Some(tx)),
            writer: tokio::sync::Mutex::new(Some(writer)),
        }
    }

    /// Whether calls of `kind` are recorded.
    pub fn wants(&self, kind: CallKind) -> bool {
        self.settings.wants(kind)
    }

    /// Record a call that was answered (if its kind is audited).
    pub fn record(&self, call: AuditCall, received: &Received) {
        if !self.wants(call.kind) {
            return;
        }
        self.queue(call.into_record(received));
    }

    /// Queue a record built elsewhere (lifecycle's policy executions).
    pub fn queue(&self, record: AuditRecord) {
        if !self.settings.enabled {
            return;
        }
        let Some(tx) = self.tx.lock().ok().and_then(|t| t.clone()) else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(r)) = tx.try_send(record) {
            // The writer is behind (a slow store): wait for room off the request's path.
            tokio::spawn(async move {
                let _ = tx.send(r).await;
            });
        }
    }

    /// Write what is queued and stop the writer (a graceful stop, the end of an admin
    /// command). Later records are dropped. A store that does not take the records
    /// within [`CLOSE_WAIT`] (it is down) does not hold the stop up: they are lost, and
    /// said so in the log.
    pub async fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Some(mut writer) = self.writer.lock().await.take() {
            if tokio::time::timeout(CLOSE_WAIT, &mut writer).await.is_err() {
                writer.abort();
                tracing::error!(
                    wait_seconds = CLOSE_WAIT.as_secs(),
                    "the metadata store did not take the queued audit records; they are lost"
                );
            }
        }
    }
}

/// How long a stop waits for the store to take the queued records.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The writer: batches of queued records into the store, and to the file if one is
/// configured. A failing store is retried (the batch kept) rather than losing records.
async fn write_records(
    meta: Arc<MetaStore>,
    mut rx: mpsc::Receiver<AuditRecord>,
    file: Option<std::path::PathBuf>,
    written: fn(u64),
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let deadline = tokio::time::Instant::now() + GATHER;
        while batch.len() < BATCH {
            let room = BATCH - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        loop {
            match meta.insert_audit_records(&batch).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, records = batch.len(), "storing audit records failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        if let Some(path) = &file {
            if let Err(e) = append_lines(path, &batch) {
                tracing::warn!(error = %e, file = %path.display(), "writing the audit file failed");
            }
        }
        written(batch.len() as u64);
        batch.clear();
    }
}

fn append_lines(path: &std::path::Path, records: &[AuditRecord]) -> std::io::Result<()> {
    let mut out = String::new();
    for r in records {
        out.push_str(&r.record);
        out.push('\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(out.as_bytes())
}
