//! Replication backfills: StartReplicationBackfill, StopReplicationBackfill,
//! ListReplicationBackfills, DescribeReplicationBackfillResults, and the job that runs
//! them.
//!
//! A run replicates a registry's existing images that its configuration sends to one
//! destination. It is PREPARING until its plan (one replication per image and tag, an
//! untagged image once) is recorded, then IN_PROGRESS until every planned replication
//! is done: COMPLETE, or FAILED when at least half of its first 100 replications failed
//! (ECR's user guide). Stop makes it STOPPING, and the job ends it STOPPED between two
//! replications. Everything is in the metadata store, so a node that takes the job over
//! continues where the last one stopped.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use super::replication::ReplicationFailure;
use super::*;
use crate::meta::{BackfillItem, BackfillRow, BackfillStart, Destination, ItemResult};

/// At most this many runs of a registry are unfinished at once (ECR's limit).
pub const MAX_UNFINISHED: i64 = 10;
/// Ended runs are listed (and kept) this long.
pub const RETENTION_MS: i64 = 90 * 24 * 3600 * 1000;
/// The first replications of a run that decide whether it fails on its own.
const JUDGED: i64 = 100;
/// Replications done between two looks at the run's status (a stop request).
const BATCH: i64 = 100;
/// Code of a run that failed on its own.
pub const TOO_MANY_FAILURES: &str = "REPLICATION_FAILURE_THRESHOLD_EXCEEDED";
/// Code of a run whose destination left the configuration before it started.
pub const NOT_CONFIGURED: &str = "DESTINATION_NOT_CONFIGURED";

/// ECR's backfill states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackfillStatus {
    Preparing,
    InProgress,
    Complete,
    Failed,
    Stopping,
    Stopped,
}

impl BackfillStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BackfillStatus::Preparing => "PREPARING",
            BackfillStatus::InProgress => "IN_PROGRESS",
            BackfillStatus::Complete => "COMPLETE",
            BackfillStatus::Failed => "FAILED",
            BackfillStatus::Stopping => "STOPPING",
            BackfillStatus::Stopped => "STOPPED",
        }
    }
}

/// A per-image result filter (`resultStatusFilter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultStatus {
    Complete,
    Failed,
}

impl ResultStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultStatus::Complete => "COMPLETE",
            ResultStatus::Failed => "FAILED",
        }
    }
}

/// When the job last forgot old runs (in this process).
static PRUNED_AT: AtomicI64 = AtomicI64::new(0);

/// Spaces replications out to at most `rate` a second (none: as fast as they go).
struct Pace {
    every: Option<Duration>,
    next: tokio::time::Instant,
}

impl Pace {
    fn new(rate: Option<u32>) -> Pace {
        Pace {
            every: rate.filter(|r| *r > 0).map(|r| Duration::from_secs(1) / r),
            next: tokio::time::Instant::now(),
        }
    }

    async fn wait(&mut self) {
        if let Some(every) = self.every {
            tokio::time::sleep_until(self.next).await;
            self.next = self.next.max(tokio::time::Instant::now() - every) + every;
        }
    }

    /// Replications per batch: about a second's worth when paced.
    fn batch(&self) -> i64 {
        self.every
            .map_or(BATCH, |e| {
                i64::try_from(Duration::from_secs(1).as_nanos() / e.as_nanos().max(1))
                    .unwrap_or(BATCH)
            })
            .clamp(1, BATCH)
    }
}

impl Service {
    pub async fn start_replication_backfill(
        &self,
        ctx: &Context,
        destination: Destination,
    ) -> Result<BackfillRow> {
        self.authorize_registry(ctx, Action::StartReplicationBackfill)
            .await?;
        let config = self.replication_config(&ctx.registry).await?;
        if !config.names(&destination) {
            return Err(Error::InvalidParameter(format!(
                "The destination (region {}, registry {}) is not in the registry's replication configuration",
                destination.region, destination.account_id
            )));
        }
        let run = BackfillRow {
            id: uuid::Uuid::new_v4().to_string(),
            registry: ctx.registry.clone(),
            destination,
            status: BackfillStatus::Preparing.as_str().into(),
            failure_code: None,
            total: None,
            completed: 0,
            failed: 0,
            failure_codes: Vec::new(),
            started_at: clock::now_ms(),
            ended_at: None,
        };
        match self.meta.insert_backfill(&run, MAX_UNFINISHED).await? {
            BackfillStart::Started => Ok(run),
            BackfillStart::InProgress => Err(Error::ecr(
                EcrErrorKind::ReplicationBackfillInProgress,
                format!(
                    "A replication backfill is already in progress for the destination region '{}'",
                    run.destination.region
                ),
            )),
            BackfillStart::LimitReached => Err(Error::ecr(
                EcrErrorKind::LimitExceeded,
                format!(
                    "The registry already has {MAX_UNFINISHED} replication backfills in progress"
                ),
            )),
        }
    }

    pub async fn stop_replication_backfill(&self, ctx: &Context, id: &str) -> Result<BackfillRow> {
        self.authorize_registry(ctx, Action::StopReplicationBackfill)
            .await?;
        let run = self.backfill_run(ctx, id).await?;
        if !self.meta.stop_backfill(&ctx.registry, id).await? {
            return Err(Error::ecr(
                EcrErrorKind::ReplicationBackfillInvalidStatus,
                format!(
                    "The replication backfill '{id}' cannot be stopped in status {}",
                    run.status
                ),
            ));
        }
        self.backfill_run(ctx, id).await
    }

    pub async fn list_replication_backfills(
        &self,
        ctx: &Context,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Listing<BackfillRow>> {
        self.authorize_registry(ctx, Action::ListReplicationBackfills)
            .await?;
        let runs = self
            .meta
            .backfills(&ctx.registry, clock::now_ms() - RETENTION_MS)
            .await?;
        let start = after.map_or(0, |a| {
            runs.iter()
                .position(|r| r.id == a)
                .map_or(runs.len(), |p| p + 1)
        });
        let end = runs.len().min(start + limit);
        let next = (end < runs.len()).then(|| runs[end - 1].id.clone());
        Ok(Listing {
            items: runs[start..end].to_vec(),
            next,
        })
    }

    /// A run and (once it is terminal) a page of its per-image results after `after`.
    pub async fn describe_replication_backfill_results(
        &self,
        ctx: &Context,
        id: &str,
        status: Option<ResultStatus>,
        after: i64,
        limit: i64,
    ) -> Result<(BackfillRow, Listing<BackfillItem>)> {
        self.authorize_registry(ctx, Action::DescribeReplicationBackfillResults)
            .await?;
        let run = self.backfill_run(ctx, id).await?;
        if run.ended_at.is_none() {
            return Ok((run, Listing::empty()));
        }
        let mut items = self
            .meta
            .backfill_results(id, status.map(ResultStatus::as_str), after, limit + 1)
            .await?;
        let more = items.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next = more
            .then(|| items.last().map(|i| i.seq.to_string()))
            .flatten();
        Ok((run, Listing { items, next }))
    }

    async fn backfill_run(&self, ctx: &Context, id: &str) -> Result<BackfillRow> {
        self.meta
            .backfill(&ctx.registry, id)
            .await?
            .filter(|r| r.ended_at.is_none_or(|e| e >= clock::now_ms() - RETENTION_MS))
            .ok_or_else(|| {
                Error::ecr(
                    EcrErrorKind::ReplicationBackfillNotFound,
                    format!(
                        "The replication backfill '{id}' does not exist in the registry with id '{}'",
                        ctx.registry.account_id
                    ),
                )
            })
    }

    // ---- the job ----

    /// Whether any backfill waits for the job (a read, before the job's lease is taken).
    pub async fn backfills_waiting(&self) -> Result<bool> {
        Ok(!self.meta.unfinished_backfills().await?.is_empty())
    }

    /// Run every unfinished backfill of the deployment to its end (the job
    /// `replication-backfill`, one node at a time); how many ended.
    pub async fn run_backfills(&self, rate: Option<u32>) -> Result<usize> {
        let now = clock::now_ms();
        if now - PRUNED_AT.load(Ordering::Relaxed) > 3600 * 1000 {
            self.meta.prune_backfills(now - RETENTION_MS).await?;
            PRUNED_AT.store(now, Ordering::Relaxed);
        }
        let mut pace = Pace::new(rate);
        let mut ended = 0;
        for run in self.meta.unfinished_backfills().await? {
            self.run_backfill(run, &mut pace).await?;
            ended += 1;
        }
        Ok(ended)
    }

    async fn run_backfill(&self, run: BackfillRow, pace: &mut Pace) -> Result<()> {
        // Listed before the runs ahead of it ran: it may have been stopped since.
        let mut run = self.reread(&run).await?;
        if run.status == BackfillStatus::Preparing.as_str() {
            let config = self.replication_config(&run.registry).await?;
            if !config.names(&run.destination) {
                return self
                    .end_run(&run, BackfillStatus::Failed, Some(NOT_CONFIGURED))
                    .await;
            }
            let plan = self.plan_backfill(&run, &config).await?;
            if !self.meta.plan_backfill(&run.id, &plan).await? {
                return self.end_run(&run, BackfillStatus::Stopped, None).await;
            }
            tracing::info!(backfill = run.id, replications = plan.len(), destination = ?run.destination, "replication backfill planned");
            run = self.reread(&run).await?;
        }
        let system = Principal::system("replication backfill");
        loop {
            if run.status == BackfillStatus::Stopping.as_str() {
                return self.end_run(&run, BackfillStatus::Stopped, None).await;
            }
            let done = run.completed + run.failed;
            let mut limit = pace.batch();
            if done < JUDGED {
                // A batch ends where the judged replications do.
                limit = limit.min(JUDGED - done);
            }
            let items = self.meta.pending_backfill_items(&run.id, limit).await?;
            if items.is_empty() {
                return self.end_run(&run, BackfillStatus::Complete, None).await;
            }
            let mut results = Vec::with_capacity(items.len());
            let mut outcomes = Vec::with_capacity(items.len());
            for item in &items {
                pace.wait().await;
                let r = self.backfill_one(&run, item, &system).await?;
                outcomes.push(r.record(item.repository_id, &item.digest, &run.destination));
                results.push(ItemResult {
                    seq: item.seq,
                    failure_code: r.failure.map(|f| f.as_str().to_owned()),
                    sub_failure_codes: r
                        .sub_failures
                        .iter()
                        .map(|f| f.as_str().to_owned())
                        .collect(),
                });
            }
            run = self
                .meta
                .record_backfill_results(&run, &results, &outcomes, clock::now_ms())
                .await?;
            if fails_on_its_own(&run) {
                return self
                    .end_run(&run, BackfillStatus::Failed, Some(TOO_MANY_FAILURES))
                    .await;
            }
        }
    }

    async fn backfill_one(
        &self,
        run: &BackfillRow,
        item: &BackfillItem,
        system: &Principal,
    ) -> Result<replication::Replicated> {
        let repo = match item.repository_name.parse::<RepositoryName>() {
            Ok(name) => self
                .meta
                .repository(&run.registry, &name)
                .await?
                .filter(|r| r.id == item.repository_id),
            Err(_) => None,
        };
        let Some(repo) = repo else {
            return Ok(replication::Replicated {
                failure: Some(ReplicationFailure::ImageNotFound),
                sub_failures: Vec::new(),
            });
        };
        let tag = item.tag.as_deref().and_then(|t| t.parse::<Tag>().ok());
        self.replicate_image(
            &run.registry,
            &repo,
            &item.digest,
            tag.as_ref(),
            &run.destination,
            system,
        )
        .await
    }

    /// One replication per image and tag (an untagged image once) of every repository
    /// the configuration sends to the run's destination.
    async fn plan_backfill(
        &self,
        run: &BackfillRow,
        config: &replication::ReplicationConfig,
    ) -> Result<Vec<BackfillItem>> {
        let mut plan: Vec<BackfillItem> = Vec::new();
        let mut last = String::new();
        loop {
            let names = self
                .meta
                .repository_names(&run.registry, &last, 1000)
                .await?;
            let Some(end) = names.last() else {
                return Ok(plan);
            };
            last = end.clone();
            for name in names {
                let sends = config
                    .targets(&name)
                    .iter()
                    .any(|t| t.destination == run.destination);
                let Ok(parsed) = name.parse::<RepositoryName>() else {
                    continue;
                };
                let repo = match sends {
                    true => self.meta.repository(&run.registry, &parsed).await?,
                    false => None,
                };
                let Some(repo) = repo else { continue };
                for (digest, tag) in self.meta.images_to_replicate(repo.id).await? {
                    plan.push(BackfillItem {
                        seq: i64::try_from(plan.len()).unwrap_or(i64::MAX) + 1,
                        repository_id: repo.id,
                        repository_name: name.clone(),
                        digest,
                        tag,
                        status: None,
                        failure_code: None,
                        sub_failure_codes: Vec::new(),
                    });
                }
            }
        }
    }

    async fn reread(&self, run: &BackfillRow) -> Result<BackfillRow> {
        self.meta
            .backfill(&run.registry, &run.id)
            .await?
            .ok_or_else(|| Error::Internal("a backfill vanished while it ran".into()))
    }

    async fn end_run(
        &self,
        run: &BackfillRow,
        status: BackfillStatus,
        failure_code: Option<&str>,
    ) -> Result<()> {
        tracing::info!(
            backfill = run.id,
            status = status.as_str(),
            completed = run.completed,
            failed = run.failed,
            "replication backfill ended"
        );
        self.meta
            .end_backfill(&run.id, status.as_str(), failure_code, clock::now_ms())
            .await?;
        Ok(())
    }
}

/// Whether the run's judged replications (its first 100, or all if fewer) are done,
/// at least half of them failed.
fn fails_on_its_own(run: &BackfillRow) -> bool {
    let judged = run.total.unwrap_or(0).min(JUDGED);
    let done = run.completed + run.failed;
    judged > 0 && done == judged && run.failed * 2 >= judged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(total: i64, completed: i64, failed: i64) -> BackfillRow {
        BackfillRow {
            id: "x".into(),
            registry: RegistryKey {
                account_id: crate::aws::AccountId::parse("111111111111").expect("id"),
                region: crate::aws::Region::parse("us-east-1").expect("region"),
            },
            destination: Destination {
                account_id: "111111111111".into(),
                region: "eu-west-1".into(),
            },
            status: "IN_PROGRESS".into(),
            failure_code: None,
            total: Some(total),
            completed,
            failed,
            failure_codes: Vec::new(),
            started_at: 0,
            ended_at: None,
        }
    }

    #[test]
    fn half_of_the_first_hundred_failing_fails_the_run() {
        assert!(fails_on_its_own(&run(500, 50, 50)));
        assert!(!fails_on_its_own(&run(500, 51, 49)));
        assert!(
            !fails_on_its_own(&run(500, 10, 40)),
            "not judged before 100 are done"
        );
        assert!(
            !fails_on_its_own(&run(500, 100, 100)),
            "judged once, at 100"
        );
        assert!(
            fails_on_its_own(&run(10, 5, 5)),
            "all of a small run is judged"
        );
        assert!(!fails_on_its_own(&run(0, 0, 0)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_paced_run_batches_a_seconds_worth() {
        assert_eq!(Pace::new(None).batch(), BATCH);
        assert_eq!(Pace::new(Some(20)).batch(), 20);
        assert_eq!(Pace::new(Some(5000)).batch(), BATCH);
        let mut p = Pace::new(Some(10));
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            p.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(400));
    }
}
