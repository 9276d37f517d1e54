//! Prometheus metrics: what each node counts, and the text a scrape gets.
//!
//! The counters live for the process (one set, [`metrics`]), because requests, caches
//! and jobs all add to them; they cost an atomic add each, and nothing when metrics are
//! switched off ([`Metrics::set_enabled`]). Gauges of what the store holds (storage
//! per account, upload sessions) are read at scrape time, at most every
//! [`STORE_GAUGE_TTL`], so frequent scrapes do not load the database.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// How long store-derived gauges are reused between scrapes.
const STORE_GAUGE_TTL: Duration = Duration::from_secs(2);

/// The media type of the exposition (OpenMetrics text, which Prometheus prefers).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    frontend: &'static str,
    operation: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    frontend: &'static str,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FrontendLabels {
    frontend: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobNameLabels {
    job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    account_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    webhook: String,
    outcome: &'static str,
}

/// A cache lookup's result, for the hit ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    Hit,
    Miss,
}

/// How a job run (or one handled outbox event) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    Ok,
    Failed,
}

pub use crate::meta::StoreGauges;

pub struct Metrics {
    enabled: AtomicBool,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<OperationLabels, Histogram>,
    bytes_in: Family<FrontendLabels, Counter>,
    bytes_out: Family<FrontendLabels, Counter>,
    in_flight: Gauge,
    uploads_streaming: Gauge,
    cache: Family<CacheLabels, Counter>,
    jobs: Family<JobLabels, Counter>,
    job_durations: Family<JobNameLabels, Histogram>,
    deliveries: Family<DeliveryLabels, Counter>,
    audit_records: Counter,
    storage: Family<AccountLabels, Gauge>,
    upload_sessions: Gauge,
    repositories: Gauge,
    images: Gauge,
    store_read: Mutex<Option<Instant>>,
}

/// This process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

fn seconds_histogram() -> Histogram {
    // 0.5 ms to ~33 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            enabled: AtomicBool::new(true),
            registry: Registry::with_prefix("berth"),
            requests: Family::default(),
            durations: Family::new_with_constructor(seconds_histogram),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            in_flight: Gauge::default(),
            uploads_streaming: Gauge::default(),
            cache: Family::default(),
            jobs: Family::default(),
            job_durations: Family::new_with_constructor(seconds_histogram),
            deliveries: Family::default(),
            audit_records: Counter::default(),
            storage: Family::default(),
            upload_sessions: Gauge::default(),
            repositories: Gauge::default(),
            images: Gauge::default(),
            store_read: Mutex::new(None),
        };
        m.register()
    }

    fn register(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register(
            "requests",
            "Requests answered, by front end, operation and HTTP status",
            self.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Time to answer a request, until its response body was sent",
            self.durations.clone(),
        );
        r.register(
            "request_bytes",
            "Request body bytes received",
            self.bytes_in.clone(),
        );
        r.register(
            "response_bytes",
            "Response body bytes sent",
            self.bytes_out.clone(),
        );
        r.register(
            "requests_in_flight",
            "Requests being answered now",
            self.in_flight.clone(),
        );
        r.register(
            "uploads_in_progress",
            "Blob upload requests streaming into this node now",
            self.uploads_streaming.clone(),
        );
        r.register(
            "cache_lookups",
            "Lookups in this node's caches (metadata, pull-through), by result",
            self.cache.clone(),
        );
        r.register(
            "job_runs",
            "Background job runs and handled outbox events, by outcome",
            self.jobs.clone(),
        );
        r.register(
            "job_duration_seconds",
            "Time a job run or an outbox event took",
            self.job_durations.clone(),
        );
        r.register(
            "webhook_deliveries",
            "Event notifications posted to webhooks, by outcome",
            self.deliveries.clone(),
        );
        r.register(
            "audit_records",
            "Audit trail records written by this node",
            self.audit_records.clone(),
        );
        r.register(
            "storage_bytes",
            "Bytes stored per account (distinct blobs and manifests)",
            self.storage.clone(),
        );
        r.register(
            "upload_sessions",
            "Upload sessions open in the store",
            self.upload_sessions.clone(),
        );
        r.register(
            "repositories",
            "Repositories in the store",
            self.repositories.clone(),
        );
        r.register("images", "Images in the store", self.images.clone());
        self
    }

    /// Switch counting on or off (off: every record call returns at once).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// One answered request.
    pub fn request(
        &self,
        frontend: &'static str,
        operation: &'static str,
        status: u16,
        seconds: f64,
        bytes: (u64, u64),
    ) {
        if !self.enabled() {
            return;
        }
        self.requests
            .get_or_create(&RequestLabels {
                frontend,
                operation,
                status,
            })
            .inc();
        self.durations
            .get_or_create(&OperationLabels {
                frontend,
                operation,
            })
            .observe(seconds);
        let f = FrontendLabels { frontend };
        if bytes.0 > 0 {
            self.bytes_in.get_or_create(&f).inc_by(bytes.0);
        }
        if bytes.1 > 0 {
            self.bytes_out.get_or_create(&f).inc_by(bytes.1);
        }
    }

    /// A request arrived (`+1`) or its answer was sent (`-1`).
    pub fn in_flight(&self, delta: i64) {
        if self.enabled() {
            self.in_flight.inc_by(delta);
        }
    }

    /// A blob upload request began (`+1`) or ended (`-1`) streaming.
    pub fn upload_streaming(&self, delta: i64) {
        if self.enabled() {
            self.uploads_streaming.inc_by(delta);
        }
    }

    pub fn cache_lookup(&self, cache: &'static str, result: CacheResult) {
        if !self.enabled() {
            return;
        }
        let result = match result {
            CacheResult::Hit => "hit",
            CacheResult::Miss => "miss",
        };
        self.cache
            .get_or_create(&CacheLabels { cache, result })
            .inc();
    }

    pub fn job_run(&self, job: &str, outcome: JobOutcome, seconds: f64) {
        if !self.enabled() {
            return;
        }
        let outcome = match outcome {
            JobOutcome::Ok => "ok",
            JobOutcome::Failed => "failed",
        };
        self.jobs
            .get_or_create(&JobLabels {
                job: job.to_owned(),
                outcome,
            })
            .inc();
        self.job_durations
            .get_or_create(&JobNameLabels {
                job: job.to_owned(),
            })
            .observe(seconds);
    }

    pub fn delivery(&self, webhook: &str, outcome: &'static str) {
        if self.enabled() {
            self.deliveries
                .get_or_create(&DeliveryLabels {
                    webhook: webhook.to_owned(),
                    outcome,
                })
                .inc();
        }
    }

    pub fn audit_records(&self, n: u64) {
        if self.enabled() {
            self.audit_records.inc_by(n);
        }
    }

    /// Whether the store gauges are due for a refresh (and, if so, note that they are
    /// being refreshed now).
    pub fn store_gauges_due(&self) -> bool {
        let Ok(mut last) = self.store_read.lock() else {
            return false;
        };
        if last.is_some_and(|t| t.elapsed() < STORE_GAUGE_TTL) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    pub fn set_store_gauges(&self, g: &StoreGauges) {
        self.storage.clear();
        for (account_id, bytes) in &g.storage_bytes {
            self.storage
                .get_or_create(&AccountLabels {
                    account_id: account_id.clone(),
                })
                .set(*bytes);
        }
        self.upload_sessions.set(g.upload_sessions);
        self.repositories.set(g.repositories);
        self.images.set(g.images);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }
}
