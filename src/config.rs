//! Settings, read in two phases: raw values from flags, environment variables and an
//! optional TOML file (in that order of precedence) become a validated [`Settings`].

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::Args;
use serde::Deserialize;

use crate::aws::{AccountId, Region};
use crate::blobs::s3::{S3Credentials, S3Settings};
use crate::http::conn::Timeouts;
use crate::public_url::PublicUrl;
use crate::upstream::registries::{DeclaredUpstream, Upstreams};
use crate::upstream::CacheSettings;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:5000";
pub const DEFAULT_DATA_DIR: &str = "./berth-data";
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";
pub const DEFAULT_REGION: &str = "us-east-1";
pub const DEFAULT_DOMAIN: &str = "localhost";
/// ECR acts on lifecycle policies within 24 hours; Berth checks hourly by default.
pub const DEFAULT_LIFECYCLE_INTERVAL: u64 = 3600;
pub const DEFAULT_GC_INTERVAL: u64 = 3600;
/// Long enough for any push to finish between uploading a layer and its manifest.
pub const DEFAULT_GC_GRACE: u64 = 86_400;
pub const DEFAULT_HEADER_TIMEOUT: u64 = 30;
pub const DEFAULT_IDLE_TIMEOUT: u64 = 90;
pub const DEFAULT_BODY_TIMEOUT: u64 = 60;
pub const DEFAULT_JOB_LEASE: u64 = 30;

/// Options shared by `serve` and `admin`: where the data is and which registry is the default.
#[derive(Debug, Clone, Args, Default)]
pub struct StoreArgs {
    /// Directory for blobs, upload staging and the embedded SQLite database [default: ./berth-data]
    #[arg(long, env = "BERTH_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Metadata database URL: `postgres://user:pass@host/db` for PostgreSQL;
    /// omit for SQLite in the data directory
    #[arg(long, env = "BERTH_METADATA", value_name = "URL")]
    pub metadata: Option<String>,
    /// Blob storage: `s3://BUCKET[/PREFIX]?endpoint=URL&region=R[&public_endpoint=URL]`
    /// for an S3-compatible bucket (credentials from BERTH_S3_ACCESS_KEY_ID and
    /// BERTH_S3_SECRET_ACCESS_KEY, else AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY);
    /// omit for the data directory
    #[arg(long, env = "BERTH_BLOBS", value_name = "URL")]
    pub blobs: Option<String>,
    /// Default account id (12 digits), used for hosts that do not name one [default: 000000000000]
    #[arg(long, env = "BERTH_ACCOUNT_ID", value_name = "12DIGITS")]
    pub account_id: Option<String>,
    /// Default region, used for hosts that do not name one [default: us-east-1]
    #[arg(long, env = "BERTH_REGION", value_name = "REGION")]
    pub region: Option<String>,
    /// TOML file with any of these settings (flags and environment variables win)
    #[arg(long, env = "BERTH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The key every stored secret is encrypted under (created, mode 0600, on first
    /// start); give every node of a deployment the same file [default: <data-dir>/master.key]
    #[arg(long, env = "BERTH_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Args, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on; port 0 picks a free port [default: 127.0.0.1:5000]
    #[arg(long, env = "BERTH_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Registry host domain: hosts `<account>.dkr.ecr.<region>.<domain>` select a registry [default: localhost]
    #[arg(long, env = "BERTH_DOMAIN", value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// What clients reach Berth at, e.g. behind a TLS-terminating proxy: decides every
    /// address Berth advertises (repositoryUri, proxyEndpoint, download URLs, the login
    /// realm); its domain supersedes --domain [default: http://<domain>:<listen port>,
    /// no port when it is 80]
    #[arg(long, env = "BERTH_PUBLIC_URL", value_name = "SCHEME://DOMAIN[:PORT]")]
    pub public_url: Option<String>,
    /// Seconds a client has to send a request's headers [default: 30]
    #[arg(long, env = "BERTH_HEADER_TIMEOUT", value_name = "SECONDS")]
    pub header_timeout: Option<u64>,
    /// Seconds a keep-alive connection may wait for its next request [default: 90]
    #[arg(long, env = "BERTH_IDLE_TIMEOUT", value_name = "SECONDS")]
    pub idle_timeout: Option<u64>,
    /// Seconds a request body may send nothing before it is abandoned [default: 60]
    #[arg(long, env = "BERTH_BODY_TIMEOUT", value_name = "SECONDS")]
    pub body_timeout: Option<u64>,
    /// Create a missing repository on first push (plain-OCI use; ECR itself does not)
    #[arg(long, env = "BERTH_CREATE_ON_PUSH")]
    pub create_on_push: bool,
    /// Development mode: accept any access key pair (and any registry password) as the
    /// default account's root. Never use it where others can reach the server.
    #[arg(long, env = "BERTH_DEV")]
    pub dev: bool,
    /// Declarative file of accounts, users, keys, roles, policies and repositories,
    /// applied at every start (see docs/bootstrap.md)
    #[arg(long, env = "BERTH_BOOTSTRAP", value_name = "FILE")]
    pub bootstrap: Option<PathBuf>,
    /// Seconds between runs of the lifecycle-policy job; 0 turns it off
    /// (`berth admin lifecycle run` runs it on demand) [default: 3600]
    #[arg(long, env = "BERTH_LIFECYCLE_INTERVAL", value_name = "SECONDS")]
    pub lifecycle_interval: Option<u64>,
    /// Seconds between online garbage collections; 0 turns them off (`berth admin gc`
    /// runs one on demand) [default: 3600]
    #[arg(long, env = "BERTH_GC_INTERVAL", value_name = "SECONDS")]
    pub gc_interval: Option<u64>,
    /// Unreferenced blobs and abandoned uploads are removed once older than this
    /// [default: 86400]
    #[arg(long, env = "BERTH_GC_GRACE", value_name = "SECONDS")]
    pub gc_grace: Option<u64>,
    /// How long a background job's lease lasts without renewal: after a node dies,
    /// another takes its jobs over within this time [default: 30]
    #[arg(long, env = "BERTH_JOB_LEASE", value_name = "SECONDS")]
    pub job_lease: Option<u64>,
    /// Answer blob downloads with a redirect to a presigned object-storage URL (as ECR
    /// does) instead of sending the bytes; needs S3 blob storage
    #[arg(long, env = "BERTH_BLOB_REDIRECT")]
    pub blob_redirect: bool,
    /// Serve HTTPS with this certificate chain (PEM; `berth admin tls init` makes one)
    #[arg(
        long,
        env = "BERTH_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM)
    #[arg(
        long,
        env = "BERTH_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
}

/// The optional config file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    metadata: Option<String>,
    blobs: Option<String>,
    blob_redirect: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    account_id: Option<String>,
    region: Option<String>,
    domain: Option<String>,
    public_url: Option<String>,
    header_timeout: Option<u64>,
    idle_timeout: Option<u64>,
    body_timeout: Option<u64>,
    master_key_file: Option<PathBuf>,
    create_on_push: Option<bool>,
    dev: Option<bool>,
    bootstrap: Option<PathBuf>,
    lifecycle_interval: Option<u64>,
    gc_interval: Option<u64>,
    gc_grace: Option<u64>,
    job_lease: Option<u64>,
    pull_through_cache: Option<PullThroughFile>,
    replication: Option<ReplicationFile>,
    audit: Option<crate::audit::AuditSettings>,
    metrics: Option<MetricsSettings>,
    usage: Option<crate::service::UsageSettings>,
    #[serde(default)]
    webhooks: Vec<crate::notify::WebhookSettings>,
}

/// `[metrics]` of the config file: where Prometheus scrapes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Count at all (off: nothing is counted, `/metrics` answers 404).
    pub enabled: bool,
    /// Serve `/metrics` on the public listener, to callers allowed
    /// `berth:GetMetrics` (HTTP Basic with an access key id and its secret).
    pub public: bool,
    /// Also serve `/metrics`, without authentication, on this address (keep it private,
    /// e.g. 127.0.0.1:9464).
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            enabled: true,
            public: true,
            listen: None,
        }
    }
}

/// `[replication]` of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplicationFile {
    /// Most replications a backfill makes per second (0 or absent: no limit).
    backfill_rate: Option<u32>,
    /// Remote registries images are pushed to (beyond ECR's configuration).
    #[serde(default)]
    remotes: Vec<crate::upstream::remotes::RemoteRule>,
}

/// `[pull_through_cache]` of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PullThroughFile {
    /// Seconds a cached tag is served before the upstream is asked again.
    tag_recheck_seconds: Option<u64>,
    /// Remove cached images not pulled for this many days.
    expire_unpulled_days: Option<u32>,
    #[serde(default)]
    upstreams: Vec<DeclaredUpstream>,
}

impl PullThroughFile {
    fn settings(self) -> anyhow::Result<CacheSettings> {
        let upstreams = Upstreams::new(self.upstreams)
            .map_err(|e| anyhow::anyhow!("[pull_through_cache] {e}"))?;
        let tag_recheck = match self.tag_recheck_seconds {
            Some(0) => bail!("[pull_through_cache] tag_recheck_seconds must be at least 1"),
            Some(s) => std::time::Duration::from_secs(s),
            None => crate::upstream::DEFAULT_TAG_RECHECK,
        };
        if self.expire_unpulled_days == Some(0) {
            bail!("[pull_through_cache] expire_unpulled_days must be at least 1");
        }
        Ok(CacheSettings {
            upstreams,
            tag_recheck,
            expire_unpulled_days: self.expire_unpulled_days,
        })
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub metadata: Option<String>,
    pub blobs: BlobStorage,
    /// Redirect blob downloads to presigned URLs.
    pub blob_redirect: bool,
    /// Serve HTTPS with this certificate chain and key.
    pub tls: Option<TlsFiles>,
    pub account_id: AccountId,
    pub region: Region,
    pub domain: String,
    /// `--public-url`, when given; otherwise derived from the listener once bound.
    pub public_url: Option<PublicUrl>,
    pub timeouts: Timeouts,
    pub master_key_file: PathBuf,
    pub create_on_push: bool,
    pub dev: bool,
    /// The bootstrap file to apply at start.
    pub bootstrap: Option<PathBuf>,
    /// Seconds between lifecycle runs; 0: never.
    pub lifecycle_interval: u64,
    /// Seconds between garbage collections; 0: never.
    pub gc_interval: u64,
    /// Grace period of garbage collection, in seconds.
    pub gc_grace: u64,
    /// How long a job lease lasts without renewal.
    pub job_lease: std::time::Duration,
    /// The pull-through cache: declared upstreams, tag re-checks, expiry.
    pub pull_through: CacheSettings,
    /// Most replications a backfill makes per second; `None`: as fast as they go.
    pub backfill_rate: Option<u32>,
    /// Remote replication targets (`[[replication.remotes]]`).
    pub remotes: Vec<crate::upstream::remotes::RemoteRule>,
    /// What the audit trail records (`[audit]`).
    pub audit: crate::audit::AuditSettings,
    /// Where metrics are served (`[metrics]`).
    pub metrics: MetricsSettings,
    /// Where event notifications are posted (`[[webhooks]]`).
    pub webhooks: Vec<crate::notify::WebhookSettings>,
    /// Prices and sampling of the usage report (`[usage]`).
    pub usage: crate::service::UsageSettings,
}

/// The PEM files HTTPS is served with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where blobs are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobStorage {
    /// The data directory.
    Local,
    S3(S3Settings),
}

/// The connection timeouts when none are given.
fn default_timeouts() -> Timeouts {
    let secs = std::time::Duration::from_secs;
    Timeouts {
        header: secs(DEFAULT_HEADER_TIMEOUT),
        idle: secs(DEFAULT_IDLE_TIMEOUT),
        body: secs(DEFAULT_BODY_TIMEOUT),
    }
}

fn read_file(path: Option<&PathBuf>) -> anyhow::Result<FileSettings> {
    let Some(path) = path else {
        return Ok(FileSettings::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

impl Settings {
    pub fn from_serve(args: &ServeArgs) -> anyhow::Result<Settings> {
        let file = read_file(args.store.config.as_ref())?;
        let listen = args
            .listen
            .clone()
            .or(file.listen.clone())
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen
            .parse()
            .with_context(|| format!("--listen '{listen}' is not ADDR:PORT"))?;
        let domain = args
            .domain
            .clone()
            .or(file.domain.clone())
            .unwrap_or_else(|| DEFAULT_DOMAIN.to_owned())
            .to_ascii_lowercase();
        if domain.is_empty() || domain.contains(['/', ':', ' ']) {
            bail!("--domain '{domain}' is not a host name");
        }
        let create_on_push = args.create_on_push || file.create_on_push.unwrap_or(false);
        let dev = args.dev || file.dev.unwrap_or(false);
        let bootstrap = args.bootstrap.clone().or(file.bootstrap.clone());
        let lifecycle_interval = args
            .lifecycle_interval
            .or(file.lifecycle_interval)
            .unwrap_or(DEFAULT_LIFECYCLE_INTERVAL);
        let gc_interval = args
            .gc_interval
            .or(file.gc_interval)
            .unwrap_or(DEFAULT_GC_INTERVAL);
        let gc_grace = args.gc_grace.or(file.gc_grace).unwrap_or(DEFAULT_GC_GRACE);
        let public_url = match args.public_url.clone().or(file.public_url.clone()) {
            Some(text) => Some(PublicUrl::parse(&text).context("--public-url")?),
            None => None,
        };
        // The public URL names the domain clients use: it supersedes --domain.
        let domain = public_url.as_ref().map_or(domain, |u| u.domain.clone());
        let secs = |flag: Option<u64>, file: Option<u64>, default: u64, name: &str| {
            let v = flag.or(file).unwrap_or(default);
            if v == 0 {
                bail!("--{name} must be at least 1 second");
            }
            Ok(std::time::Duration::from_secs(v))
        };
        let timeouts = Timeouts {
            header: secs(
                args.header_timeout,
                file.header_timeout,
                DEFAULT_HEADER_TIMEOUT,
                "header-timeout",
            )?,
            idle: secs(
                args.idle_timeout,
                file.idle_timeout,
                DEFAULT_IDLE_TIMEOUT,
                "idle-timeout",
            )?,
            body: secs(
                args.body_timeout,
                file.body_timeout,
                DEFAULT_BODY_TIMEOUT,
                "body-timeout",
            )?,
        };
        let job_lease = secs(
            args.job_lease,
            file.job_lease,
            DEFAULT_JOB_LEASE,
            "job-lease",
        )?;
        let blob_redirect = args.blob_redirect || file.blob_redirect.unwrap_or(false);
        let tls = match (
            args.tls_cert.clone().or(file.tls_cert.clone()),
            args.tls_key.clone().or(file.tls_key.clone()),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => bail!("--tls-cert and --tls-key go together"),
        };
        let mut s = Self::build(&args.store, file, listen, domain, create_on_push)?;
        if blob_redirect && s.blobs == BlobStorage::Local {
            bail!("--blob-redirect needs S3 blob storage (--blobs s3://...): the data directory has no URLs to redirect to");
        }
        s.blob_redirect = blob_redirect;
        s.tls = tls;
        s.public_url = public_url;
        s.timeouts = timeouts;
        s.dev = dev;
        s.bootstrap = bootstrap;
        s.lifecycle_interval = lifecycle_interval;
        s.gc_interval = gc_interval;
        s.gc_grace = gc_grace;
        s.job_lease = job_lease;
        Ok(s)
    }

    pub fn from_store(args: &StoreArgs) -> anyhow::Result<Settings> {
        let file = read_file(args.config.as_ref())?;
        let listen = DEFAULT_LISTEN.parse()?;
        Self::build(args, file, listen, DEFAULT_DOMAIN.to_owned(), false)
    }

    /// For `berth env`: the store settings plus where the server listens.
    pub fn from_env_args(args: &StoreArgs, listen: Option<&str>) -> anyhow::Result<Settings> {
        let mut s = Self::from_store(args)?;
        if let Some(l) = listen {
            s.listen = l
                .parse()
                .with_context(|| format!("--listen '{l}' is not ADDR:PORT"))?;
        }
        Ok(s)
    }

    fn build(
        args: &StoreArgs,
        file: FileSettings,
        listen: SocketAddr,
        domain: String,
        create_on_push: bool,
    ) -> anyhow::Result<Settings> {
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        if data_dir.as_os_str().is_empty() {
            bail!("--data-dir must not be empty");
        }
        let account_id = args
            .account_id
            .clone()
            .or(file.account_id)
            .unwrap_or_else(|| DEFAULT_ACCOUNT_ID.to_owned());
        let Some(account_id) = AccountId::parse(&account_id) else {
            bail!("--account-id '{account_id}' must be 12 digits");
        };
        let region = args
            .region
            .clone()
            .or(file.region)
            .unwrap_or_else(|| DEFAULT_REGION.to_owned());
        let Some(region) = Region::parse(&region) else {
            bail!("--region '{region}' is not a region name (like us-east-1)");
        };
        let master_key_file = args
            .master_key_file
            .clone()
            .or(file.master_key_file)
            .unwrap_or_else(|| data_dir.join("master.key"));
        let pull_through = file.pull_through_cache.unwrap_or_default().settings()?;
        let replication = file.replication.unwrap_or_default();
        let backfill_rate = replication.backfill_rate.filter(|r| *r > 0);
        let remotes = replication.remotes;
        let audit = file.audit.unwrap_or_default();
        audit.validate().map_err(|e| anyhow::anyhow!(e))?;
        let metrics = file.metrics.unwrap_or_default();
        let webhooks = file.webhooks;
        let usage = file.usage.unwrap_or_default();
        if usage.flush_seconds == 0 || usage.sample_seconds == 0 {
            bail!("[usage] flush_seconds and sample_seconds must be at least 1");
        }
        crate::notify::WebhookSettings::validate_all(&webhooks)
            .map_err(|e| anyhow::anyhow!("[[webhooks]] {e}"))?;
        let mut names = std::collections::HashSet::new();
        for r in &remotes {
            r.validate()
                .map_err(|e| anyhow::anyhow!("[replication] {e}"))?;
            if !names.insert(r.name.clone()) {
                bail!("[replication] two remotes are named {}", r.name);
            }
        }
        let blobs = match args.blobs.clone().or(file.blobs) {
            None => BlobStorage::Local,
            Some(url) => {
                let credentials =
                    || S3Credentials::from_env(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
                let settings = S3Settings::parse(&url, credentials)
                    .map_err(|e| anyhow::anyhow!("--blobs {e}"))?;
                BlobStorage::S3(settings)
            }
        };
        Ok(Settings {
            listen,
            data_dir,
            metadata: args.metadata.clone().or(file.metadata),
            blobs,
            blob_redirect: false,
            tls: None,
            account_id,
            region,
            domain,
            public_url: None,
            timeouts: default_timeouts(),
            master_key_file,
            create_on_push,
            dev: false,
            bootstrap: None,
            lifecycle_interval: DEFAULT_LIFECYCLE_INTERVAL,
            gc_interval: DEFAULT_GC_INTERVAL,
            gc_grace: DEFAULT_GC_GRACE,
            job_lease: std::time::Duration::from_secs(DEFAULT_JOB_LEASE),
            pull_through,
            backfill_rate,
            remotes,
            audit,
            metrics,
            webhooks,
            usage,
        })
    }
}
