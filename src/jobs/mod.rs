//! Background jobs: work that no request waits for, run by exactly one process at a time.
//!
//! Each job holds a lease in the metadata store (`meta/jobs.rs`) while it works, renews
//! it as it goes, and gives it back when a run ends. Two kinds:
//! - **periodic** jobs (lifecycle, garbage collection) take the lease for one run every
//!   interval; a process that finds the lease held skips that run;
//! - **outbox consumers** (scans, replication; webhooks later) hold their
//!   lease for as long as their process lives and handle the events written after their
//!   cursor, moving it (under the lease's fence) once a batch is handled. Delivery is
//!   at least once, so handlers are idempotent.
//!
//! When a holder dies (`kill -9`), its lease runs out and another process takes the
//! job over, from the cursor the dead one last recorded. A holder that loses its lease
//! stops the run it was in: lifecycle and collection are safe to stop at any point
//! (they are crash-safe by design), and a consumer that lost its lease cannot move the
//! cursor any more.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock;
use crate::meta::{Change, Event, Lease, Listener};
use crate::service::{self, Service};

/// Events handled per batch.
const BATCH: i64 = 100;
/// How often an idle consumer looks for events written by other processes.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How often a consumer records its cursor while it has moved.
const CURSOR_SAVE_MS: i64 = 1000;
/// How long a consumer waits after a failed batch before trying it again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// This process's identity as a lease holder: host, pid, and a random part (pids are
/// reused across restarts and containers).
pub fn holder_id(role: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    format!("{role}@{host}:{}:{}", std::process::id(), &nonce[..8])
}

/// Wakes this process's consumers when an event may have been written: a requested
/// scan, or a repository's content changing (pushes, tag moves and deletes write their
/// events with it), by this process or, heard through the store, another node. A wake
/// costs one read of the outbox; it makes replication follow a push in milliseconds
/// rather than at the next idle poll.
struct Wake(watch::Sender<u64>);

impl Listener for Wake {
    fn changed(&self, change: &Change) {
        if matches!(change, Change::Events | Change::Content { .. }) {
            self.0.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// Count a job run (or one handled event) in the metrics.
fn record_run(job: &str, ok: bool, started: std::time::Instant) {
    use crate::observe::metrics::{metrics, JobOutcome};
    let outcome = if ok {
        JobOutcome::Ok
    } else {
        JobOutcome::Failed
    };
    metrics().job_run(job, outcome, started.elapsed().as_secs_f64());
}

/// Runs this process's share of the background jobs.
pub struct Runner {
    service: Arc<Service>,
    holder: String,
    lease: Duration,
    wake: watch::Receiver<u64>,
}

impl Runner {
    pub fn new(service: Arc<Service>, holder: String, lease: Duration) -> Arc<Runner> {
        let (tx, rx) = watch::channel(0);
        service.meta().changes().subscribe(Arc::new(Wake(tx)));
        Arc::new(Runner {
            service,
            holder,
            lease,
            wake: rx,
        })
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// Run `work` every `period` (the first run one period after start), under the
    /// job's lease, once per period across all processes: a run another process holds,
    /// or made less than (nine tenths of) a period ago, is skipped.
    pub fn spawn_periodic<F, Fut, T>(self: &Arc<Self>, job: &'static str, period: Duration, work: F)
    where
        F: Fn(Arc<Service>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = service::Result<T>> + Send,
        T: std::fmt::Debug + Send,
    {
        let runner = self.clone();
        tokio::spawn(async move {
            let start = tokio::time::Instant::now() + period;
            let mut ticks = tokio::time::interval_at(start, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let period_ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX);
                let ran_since = clock::now_ms().saturating_sub(period_ms / 10 * 9);
                let outcome = runner
                    .run_leased(job, Some(ran_since), work(runner.service.clone()))
                    .await;
                match outcome {
                    Ok(done) => tracing::info!(job, outcome = ?done, "job run"),
                    Err(service::Error::Busy) => {
                        tracing::info!(job, "job skipped: another process holds it")
                    }
                    Err(e) => tracing::error!(job, error = %e, "job failed"),
                }
            }
        });
    }

    /// Every `period`, if `due` says there is work waiting in the store (a read), run
    /// `work` under the job's lease on whichever process takes it. For work that is
    /// usually nothing (backfill runs): only failures are logged.
    pub fn spawn_poller<D, DueFut, F, Fut, T>(
        self: &Arc<Self>,
        job: &'static str,
        period: Duration,
        due: D,
        work: F,
    ) where
        D: Fn(Arc<Service>) -> DueFut + Send + Sync + 'static,
        DueFut: Future<Output = service::Result<bool>> + Send,
        F: Fn(Arc<Service>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = service::Result<T>> + Send,
        T: Send,
    {
        let runner = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match due(runner.service.clone()).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::warn!(job, error = %e, "job poll failed");
                        continue;
                    }
                }
                let outcome = runner
                    .run_leased(job, None, work(runner.service.clone()))
                    .await;
                match outcome {
                    Ok(_) | Err(service::Error::Busy) => {}
                    Err(e) => tracing::error!(job, error = %e, "job failed"),
                }
            }
        });
    }

    /// One run of `job` under its lease: `Busy` if another process holds it. The lease
    /// is renewed while `work` runs; if it is lost, the run stops where it is.
    pub async fn run_once<T>(
        &self,
        job: &str,
        work: impl Future<Output = service::Result<T>>,
    ) -> service::Result<T> {
        self.run_leased(job, None, work).await
    }

    /// [`Runner::run_once`], skipped (`Busy`) if the job ran after `ran_since`.
    async fn run_leased<T>(
        &self,
        job: &str,
        ran_since: Option<i64>,
        work: impl Future<Output = service::Result<T>>,
    ) -> service::Result<T> {
        let meta = self.service.meta();
        let now = clock::now_ms();
        let lease = meta
            .take_due_lease(job, &self.holder, now, now + self.lease_ms(), ran_since)
            .await?
            .ok_or(service::Error::Busy)?;
        let started = std::time::Instant::now();
        let outcome = tokio::select! {
            out = work => out,
            lost = self.keep(&lease) => Err(lost),
        };
        record_run(job, outcome.is_ok(), started);
        let error = outcome.as_ref().err().map(ToString::to_string);
        meta.release_lease(&lease, clock::now_ms(), error.as_deref())
            .await?;
        outcome
    }

    /// Renew `lease` every third of its length; returns (an error) once it is lost.
    async fn keep(&self, lease: &Lease) -> service::Error {
        loop {
            tokio::time::sleep(self.lease / 3).await;
            let now = clock::now_ms();
            match self
                .service
                .meta()
                .renew_lease(lease, now, now + self.lease_ms())
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    return service::Error::Internal(format!("lost the lease of job {}", lease.job))
                }
                Err(e) => return e.into(),
            }
        }
    }

    /// Consume the outbox as job `outbox:<name>`, calling `handle` for every event.
    pub fn spawn_consumer<F, Fut>(self: &Arc<Self>, name: &'static str, handle: F)
    where
        F: Fn(Arc<Service>, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = service::Result<()>> + Send,
    {
        let runner = self.clone();
        tokio::spawn(async move {
            let job = format!("outbox:{name}");
            let mut wake = runner.wake.clone();
            loop {
                match runner.consume(&job, &handle, &mut wake).await {
                    Ok(()) => {}
                    Err(e) => tracing::warn!(job, error = %e, "outbox consumer"),
                }
                // Not holding the job (another process does, or it was lost): try again
                // when a live holder would have renewed it.
                tokio::time::sleep(runner.lease / 3).await;
            }
        });
    }

    /// Hold `job` and handle events until the lease is lost (Ok) or a store fails.
    async fn consume<F, Fut>(
        &self,
        job: &str,
        handle: &F,
        wake: &mut watch::Receiver<u64>,
    ) -> service::Result<()>
    where
        F: Fn(Arc<Service>, Event) -> Fut,
        Fut: Future<Output = service::Result<()>>,
    {
        let meta = self.service.meta();
        let now = clock::now_ms();
        let Some(lease) = meta
            .take_lease(job, &self.holder, now, now + self.lease_ms())
            .await?
        else {
            return Ok(());
        };
        tracing::info!(job, fence = lease.fence, "holding job");
        let lease_ms = self.lease_ms();
        let mut renew_at = now + lease_ms / 3;
        // The cursor is kept here and recorded at most every CURSOR_SAVE (a write per
        // event would queue behind pushes on SQLite's one writer); after a takeover the
        // events since the last record are handled again, which handlers allow.
        let mut cursor = meta.job_cursor(job).await?;
        let mut saved = cursor;
        let mut save_at = now + CURSOR_SAVE_MS;
        loop {
            let now = clock::now_ms();
            if now >= renew_at {
                if !meta.renew_lease(&lease, now, now + lease_ms).await? {
                    tracing::warn!(job, "lost the job's lease");
                    return Ok(());
                }
                renew_at = now + lease_ms / 3;
            }
            if saved < cursor && now >= save_at {
                if !meta.advance_cursor(&lease, cursor, now).await? {
                    tracing::warn!(job, "lost the job's lease");
                    return Ok(());
                }
                saved = cursor;
                save_at = now + CURSOR_SAVE_MS;
            }
            let events = meta.events_after(cursor, BATCH).await?;
            let Some(last) = events.last().map(|e| e.seq) else {
                let mut until = renew_at - now;
                if saved < cursor {
                    until = until.min(save_at - now);
                }
                let wait = Duration::from_millis(u64::try_from(until).unwrap_or(0)).min(IDLE_POLL);
                let _ = tokio::time::timeout(wait, wake.changed()).await;
                continue;
            };
            for event in events {
                // A handler may take long (a scan of a large image): the lease is
                // renewed meanwhile, and the handler stops if it is lost.
                let started = std::time::Instant::now();
                let handled = tokio::select! {
                    out = handle(self.service.clone(), event.clone()) => out,
                    lost = self.keep(&lease) => {
                        tracing::warn!(job, error = %lost, "lost the job's lease");
                        return Ok(());
                    }
                };
                record_run(job, handled.is_ok(), started);
                if let Err(e) = handled {
                    tracing::warn!(job, seq = event.seq, error = %e, "event not handled; retrying");
                    tokio::time::sleep(RETRY_AFTER).await;
                    return Ok(());
                }
                cursor = event.seq;
                let now = clock::now_ms();
                if now >= save_at {
                    if !meta.advance_cursor(&lease, cursor, now).await? {
                        tracing::warn!(job, "lost the job's lease");
                        return Ok(());
                    }
                    saved = cursor;
                    save_at = now + CURSOR_SAVE_MS;
                }
            }
            debug_assert_eq!(cursor, last);
        }
    }
}
