//! The command line: `berth serve`, `berth admin ...`, `berth env`.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::{self, BlobStorage, ServeArgs, Settings, StoreArgs};
use crate::meta::{MetaStore, RegistryKey};
use crate::public_url::{PublicUrl, Scheme};
use crate::server_record::ServerRecord;
use crate::service::{self, Context, Principal, Service};
use crate::{auth, blobs, bootstrap, clock, fsutil, http, iam, jobs, oci, secrets};

mod env;
mod events;
mod hosts;
mod progress;
mod tls;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "An Amazon ECR you run yourself: ECR's API, its login flow, IAM/STS and the OCI registry API in one binary."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry. Ready when `GET /v2/` answers; prints `berth listening on http://ADDR`.
    Serve(ServeArgs),
    /// Administer a data directory directly (safe while the server runs).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print the shell exports that point the aws CLI and SDKs at this Berth
    /// (`eval "$(berth env)"`): the root key, the region, and the ECR, IAM and STS
    /// endpoints of the server that last ran on the data directory.
    Env {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a repository (ECR does not create repositories on push).
    CreateRepository {
        /// Repository name, e.g. `my-app` or `team/app`
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Create an account (if new) with a new root access key, and print the key.
    CreateAccount {
        /// The account id, 12 digits
        account_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print a registry password (what `aws ecr get-login-password` prints) for an
    /// account's root, valid in one region for the given number of seconds.
    LoginPassword {
        /// Lifetime in seconds [default: 43200, ECR's 12 hours]
        #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
        expires_in: Option<i64>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Apply a bootstrap file now (what `serve --bootstrap FILE` does at every start).
    Bootstrap {
        /// The file (TOML, or JSON when named `*.json`); see docs/bootstrap.md
        file: std::path::PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The pull-through cache: expire cached images not pulled for the configured days.
    PullThroughCache {
        #[command(subcommand)]
        command: PullThroughCacheCommand,
    },
    /// Lifecycle policies: apply them now, or show what they did.
    Lifecycle {
        #[command(subcommand)]
        command: LifecycleCommand,
    },
    /// Vulnerability data for image scans: load OSV data offline, show what is loaded.
    Vulndb {
        #[command(subcommand)]
        command: VulndbCommand,
    },
    /// HTTPS: a local certificate authority and server certificate.
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
    /// Collect garbage now: links no manifest uses, blobs no repository links, and
    /// abandoned uploads, older than the grace period; prints what was freed.
    Gc {
        /// Grace period in seconds [default: 86400]
        #[arg(long, value_name = "SECONDS")]
        grace: Option<u64>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the signing CA's certificate (PEM): the trust anchor that verifies the
    /// signatures managed signing attaches (created on first use).
    SigningCa {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the audit trail, newest first: CloudTrail records, one JSON object per line.
    Events(events::EventsArgs),
    /// Print a month's storage and transfer out per repository, priced as on ECR.
    Cost(events::CostArgs),
    /// Event notifications: webhooks' dead letters.
    Webhooks {
        #[command(subcommand)]
        command: events::WebhooksCommand,
    },
    /// Print the background jobs: who holds each (host:pid), until when, its cursor and
    /// last run (one JSON object per line).
    Jobs {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the storage each repository links, and the store's total.
    Storage {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the repositories of the default registry.
    ListRepositories {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the /etc/hosts lines that make every registry name
    /// (<account>.dkr.ecr.<region>.<domain>) of every account reach this machine, for
    /// every AWS region; with --install, write them into the hosts file.
    Hosts {
        /// Replace Berth's block in the hosts file (needs root for /etc/hosts)
        #[arg(long)]
        install: bool,
        /// The hosts file [default: /etc/hosts]
        #[arg(long, value_name = "FILE")]
        hosts_file: Option<std::path::PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Act as an AWS service principal assuming a role (as ECS does with a task
    /// execution role) and print its temporary credentials as shell exports. Refused
    /// unless the role's trust policy names that service.
    AssumeRole {
        /// The service principal, e.g. ecs-tasks.amazonaws.com
        #[arg(long, value_name = "SERVICE")]
        as_service: String,
        /// The role, e.g. arn:aws:iam::000000000000:role/ecsTaskExecutionRole
        #[arg(long, value_name = "ARN")]
        role_arn: String,
        /// The session name [default: the service's first label]
        #[arg(long, value_name = "NAME")]
        role_session_name: Option<String>,
        /// Lifetime in seconds [default: 3600]
        #[arg(long, value_name = "SECONDS")]
        duration_seconds: Option<i64>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum TlsCommand {
    /// Create a local certificate authority (or reuse the one in DIR) and a server
    /// certificate it signs for the API and registry hosts of the domain, in every
    /// region in use; print how to serve with it and how clients trust it.
    Init {
        /// Where the files go [default: <data-dir>/tls]
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
        /// The registry domain the server uses [default: the server's, else localhost]
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
        /// More regions to cover (the default region and every region with a
        /// repository are covered anyway)
        #[arg(long = "cover-region", value_name = "REGION")]
        cover_regions: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum PullThroughCacheCommand {
    /// Remove cached images not pulled for `expire_unpulled_days` (the config file's
    /// `[pull_through_cache]`) now, and print how many.
    Expire {
        /// Evaluate as if it were this time (RFC 3339, e.g. 2027-01-31T00:00:00Z)
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum LifecycleCommand {
    /// Apply every repository's lifecycle policy now and print what was done.
    Run {
        /// Evaluate as if it were this time (RFC 3339, e.g. 2027-01-31T00:00:00Z), to see
        /// what time-based rules will do
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the most recent lifecycle actions, newest first (one JSON object per line).
    Events {
        /// How many [default: 100]
        #[arg(long, value_name = "N")]
        limit: Option<i64>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum VulndbCommand {
    /// Load (or refresh) OSV data: the per-ecosystem `all.zip` dumps OSV publishes
    /// (https://osv-vulnerabilities.storage.googleapis.com/<ecosystem>/all.zip), a
    /// directory of OSV `.json` records, or one record file. Each source (Debian,
    /// Ubuntu, Alpine, Red Hat, ...) found replaces that source's earlier data at once.
    Import {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<std::path::PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the loaded sources, one JSON object per line.
    Status {
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Run the command line. A failure is one line on stderr (the cause chain, never a
/// backtrace, whatever `RUST_BACKTRACE` says) and exit code 1.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(Settings::from_serve(&args)?)),
        Command::Admin { command } => runtime.block_on(admin(command)),
        Command::Env { store } => env::print(&Settings::from_store(&store)?),
    }
}

fn init_logging() {
    use tracing_subscriber::{fmt, EnvFilter};
    let filter = EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Open the stores and build the operation layer (shared by `serve` and `admin`).
/// `public` is what clients reach Berth at.
async fn open_service(settings: &Settings, public: PublicUrl) -> anyhow::Result<Arc<Service>> {
    fsutil::create_private_dir(&settings.data_dir)
        .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
    let sealer = secrets::Sealer::load_or_create(&settings.master_key_file)?;
    let meta = MetaStore::open(settings.metadata.as_deref(), &settings.data_dir, sealer)
        .await
        .context("opening the metadata store")?;
    let blobs = open_blobs(settings).await?;
    let options = service::Options {
        create_on_push: settings.create_on_push,
        public,
        gc_grace_ms: i64::try_from(settings.gc_grace.saturating_mul(1000)).unwrap_or(i64::MAX),
        blob_redirect: settings.blob_redirect,
        pull_through: settings.pull_through.clone(),
        spool_dir: settings.data_dir.join("spool"),
        remotes: settings.remotes.clone(),
        audit: settings.audit.clone(),
        usage: settings.usage.clone(),
    };
    Ok(Service::new(meta, blobs, options))
}

async fn open_blobs(settings: &Settings) -> anyhow::Result<Arc<dyn blobs::BlobStore>> {
    Ok(match &settings.blobs {
        BlobStorage::Local => Arc::new(
            blobs::fs::FsBlobStore::open(&settings.data_dir).with_context(|| {
                format!("opening the blob store in {}", settings.data_dir.display())
            })?,
        ),
        BlobStorage::S3(s3) => {
            let store = blobs::s3::S3BlobStore::open(s3)
                .with_context(|| format!("opening the bucket {}", s3.bucket))?;
            store
                .check()
                .await
                .with_context(|| format!("reaching the bucket {}", s3.bucket))?;
            Arc::new(store)
        }
    })
}

/// `berth admin tls init`.
async fn tls_init(
    out: Option<std::path::PathBuf>,
    domain: Option<String>,
    cover_regions: Vec<String>,
    store: &StoreArgs,
) -> anyhow::Result<()> {
    let settings = Settings::from_store(store)?;
    let public = admin_public_url(&settings);
    let domain = domain.unwrap_or_else(|| public.domain.clone());
    let mut regions = vec![settings.region.to_string()];
    for r in cover_regions {
        if crate::aws::Region::parse(&r).is_none() {
            anyhow::bail!("--cover-region '{r}' is not a region name (like us-east-1)");
        }
        regions.push(r);
    }
    let service = open_service(&settings, public.clone()).await?;
    let (_, in_use) = service.meta().registries_in_use().await?;
    regions.extend(in_use.into_iter().map(|(_, region)| region));
    regions.sort();
    regions.dedup();
    let names = tls::names(&domain, &public.domain, &regions);
    let dir = out.unwrap_or_else(|| settings.data_dir.join("tls"));
    // Printed as absolute paths: the instructions are copied into other shells.
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let files = tls::TlsFiles::under(&dir);
    let fresh = tls::init(&files, &names)?;
    let example = format!(
        "{}.dkr.ecr.{}.{domain}:PORT",
        settings.account_id, settings.region
    );
    if !fresh {
        println!("(reused the existing certificate authority)");
    }
    print!("{}", tls::instructions(&files, &names, &example));
    Ok(())
}

/// For `berth admin`: what the server on this data directory advertises, as it recorded
/// it; without one, what a default start would.
fn admin_public_url(settings: &Settings) -> PublicUrl {
    crate::server_record::ServerRecord::read(&settings.data_dir)
        .and_then(|r| PublicUrl::parse(&r.public_url).ok())
        .unwrap_or_else(|| PublicUrl::new(Scheme::Http, &settings.domain, settings.listen.port()))
}

fn default_registry(settings: &Settings) -> RegistryKey {
    RegistryKey {
        account_id: settings.account_id.clone(),
        region: settings.region.clone(),
    }
}

/// Hold an exclusive lock on the data directory for as long as the server runs: two
/// servers on one directory would each cache metadata and track uploads the other
/// cannot see. (`berth admin` does not take it: the server hears of its writes through
/// a signal row and then drops every cached copy; see service/signals.rs.)
fn lock_data_dir(settings: &Settings) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
    let path = settings.data_dir.join("berth.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.try_lock().map_err(|_| {
        anyhow::anyhow!(
            "another `berth serve` is using the data directory {}",
            settings.data_dir.display()
        )
    })?;
    Ok(file)
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    init_logging();
    fsutil::create_private_dir(&settings.data_dir)
        .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
    let _lock = lock_data_dir(&settings)?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let tls = match &settings.tls {
        Some(files) => Some(http::tls::acceptor(&files.cert, &files.key)?),
        None => None,
    };
    let scheme = if tls.is_some() {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let public = settings
        .public_url
        .clone()
        .unwrap_or_else(|| PublicUrl::new(scheme, &settings.domain, addr.port()));
    // Upstream fetches a previous run left unfinished: their spool files are garbage
    // (the fetch's lease lapses and the next pull starts over).
    let _ = std::fs::remove_dir_all(settings.data_dir.join("spool"));
    let service = open_service(&settings, public.clone()).await?;
    bootstrap::managed_policies(&service).await?;
    if let Some(path) = &settings.bootstrap {
        apply_bootstrap(&service, path, &settings.region).await?;
    }
    let bootstrap = bootstrap::identity(&service, &settings).await?;
    let token_key = bootstrap::token_key(&service).await?;
    let record = ServerRecord {
        endpoint: ServerRecord::endpoint_for(addr),
        public_url: public.to_string(),
        account_id: settings.account_id.clone(),
        region: settings.region.clone(),
        pid: std::process::id(),
    };
    record
        .write(&settings.data_dir)
        .context("recording the server's address in the data directory")?;
    tracing::info!(
        %addr,
        public_url = %public,
        data_dir = %settings.data_dir.display(),
        metadata = service.meta().backend_name(),
        account_id = %settings.account_id,
        region = %settings.region,
        dev = settings.dev,
        "berth started"
    );
    if settings.dev {
        tracing::warn!("--dev: any access key pair is accepted; do not expose this server");
    }
    let hosts = http::HostRouting {
        domain: settings.domain.clone(),
        default: default_registry(&settings),
    };
    let auth = authenticator(&service, token_key, settings.dev, &settings.account_id);
    let metrics = &settings.metrics;
    crate::observe::metrics::metrics().set_enabled(metrics.enabled);
    if let (true, Some(addr)) = (metrics.enabled, metrics.listen) {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the metrics address {addr}"))?;
        tokio::spawn(http::metrics_endpoint::serve_private(
            listener,
            service.clone(),
        ));
    }
    let state = Arc::new(
        http::AppState::new(service.clone(), hosts, auth, public.scheme)
            .with_public_metrics(metrics.enabled && metrics.public),
    );
    watch_external_writes(state.clone()).await?;
    let holder = start_jobs(&service, &settings);
    let shutdown = shutdown_signal()?;
    // Tests and scripts wait for this exact first line.
    let mut out = std::io::stdout();
    writeln!(out, "berth listening on {}://{addr}", scheme.as_str())?;
    if let Some(created) = bootstrap {
        // Shown once, on the first start; the credentials file keeps them (mode 0600).
        writeln!(out, "{}", first_start_text(&settings, &public, &created))?;
    }
    out.flush()?;
    http::serve(listener, state, settings.timeouts, tls, shutdown).await?;
    // A store that is down does not hold the stop up: each of these waits at most
    // STOP_STORE_WAIT, side by side; queued audit records and transfer counts are then
    // lost, and the leases lapse at the end of their term.
    let flushed = tokio::time::timeout(STOP_STORE_WAIT, service.flush_transfer(clock::now_ms()));
    let released = tokio::time::timeout(STOP_STORE_WAIT, service.meta().release_leases_of(&holder));
    let ((), flushed, released) = tokio::join!(service.audit().close(), flushed, released);
    match flushed {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "recording transfer out failed"),
        Err(_) => tracing::warn!("recording transfer out failed: the store did not answer"),
    }
    match released {
        Ok(Ok(n)) => tracing::info!(leases = n, "job leases given back"),
        Ok(Err(e)) => tracing::warn!(error = %e, "giving the job leases back failed"),
        Err(_) => tracing::warn!("giving the job leases back failed: the store did not answer"),
    }
    tracing::info!("berth stopped");
    Ok(())
}

/// How long the last writes of a stopping node may wait for the store.
const STOP_STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What the first start tells its user to do next.
fn first_start_text(
    settings: &Settings,
    public: &PublicUrl,
    created: &bootstrap::Created,
) -> String {
    let berth = env::command_name();
    let data_dir = settings.data_dir.display();
    let host = public.host();
    format!(
        "created account {account} and its root access key {id}; the key pair is in {file}

next, in another shell:
  eval \"$({berth} env --data-dir {data_dir})\"
  aws ecr create-repository --repository-name my-app
  aws ecr get-login-password | docker login --username AWS --password-stdin {host}
  docker tag my-app {host}/my-app && docker push {host}/my-app
{host} is registry {account} in {region}. Names like {example} need /etc/hosts lines:
  {berth} admin hosts --data-dir {data_dir} --install",
        account = settings.account_id,
        region = settings.region,
        file = created.credentials_file.display(),
        id = created.access_key_id,
        example = public.registry_host(&settings.account_id, &settings.region),
    )
}

/// Drop caches when `berth admin` changes the metadata under a running server. The
/// first check runs before the server is ready, so the server acknowledges at once.
async fn watch_external_writes(state: Arc<http::AppState>) -> anyhow::Result<()> {
    let mut seen = None;
    state.service.absorb_external_writes(&mut seen).await?;
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(std::time::Duration::from_millis(100));
        loop {
            ticks.tick().await;
            if let Err(e) = state.service.absorb_external_writes(&mut seen).await {
                tracing::warn!(error = %e, "checking for external metadata changes");
            }
        }
    });
    Ok(())
}

/// After an admin command changed what a running server may have cached: announce it
/// and, if a server holds the data directory, wait (bounded) until it has acted.
async fn notify_server(service: &Service, settings: &Settings) -> anyhow::Result<()> {
    let wanted = service.announce_external_write().await?;
    if !server_running(settings) {
        return Ok(());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while service.external_writes_seen().await? < wanted {
        if std::time::Instant::now() > deadline {
            eprintln!("warning: the running server has not picked up the change yet; it will within seconds");
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Whether a `berth serve` holds the data directory's lock.
fn server_running(settings: &Settings) -> bool {
    let path = settings.data_dir.join("berth.lock");
    match std::fs::OpenOptions::new().write(true).open(&path) {
        Ok(file) => file.try_lock().is_err(),
        Err(_) => false,
    }
}

/// The authenticator, looking keys up through the service and hearing of key changes.
fn authenticator(
    service: &Arc<Service>,
    token_key: auth::token::TokenKey,
    dev: bool,
    default_account: &str,
) -> auth::Authenticator {
    let keys = auth::KeySource {
        store: service.clone(),
        shared: !service.meta().is_single_node(),
    };
    let auth = auth::Authenticator::new(token_key, dev, default_account.to_owned(), keys);
    service.meta().changes().subscribe(auth.key_changes());
    auth
}

/// This node's share of the background jobs (jobs/): each runs on one node at a time.
/// Returns the identity its leases are held under.
fn start_jobs(service: &Arc<Service>, settings: &Settings) -> String {
    let holder = jobs::holder_id("serve");
    let runner = jobs::Runner::new(service.clone(), holder.clone(), settings.job_lease);
    runner.spawn_consumer(
        "scans",
        |s, event| async move { s.scan_for_event(&event).await },
    );
    runner.spawn_consumer("signing", |s, event| async move {
        s.sign_for_event(&event).await
    });
    runner.spawn_consumer(service::REPLICATION_CONSUMER, |s, event| async move {
        s.replicate_for_event(&event).await
    });
    let rate = settings.backfill_rate;
    runner.spawn_poller(
        "replication-backfill",
        std::time::Duration::from_secs(1),
        |s| async move { s.backfills_waiting().await },
        move |s| async move { s.run_backfills(rate).await },
    );
    runner.spawn_poller(
        "replication-remote",
        std::time::Duration::from_secs(1),
        |s| async move { s.remote_pushes_due().await },
        |s| async move { s.run_remote_pushes().await },
    );
    for hook in &settings.webhooks {
        // One consumer (and cursor) per webhook; the names come from the config file.
        let name: &'static str = Box::leak(format!("webhook:{}", hook.name).into_boxed_str());
        let hook = std::sync::Arc::new(hook.clone());
        runner.spawn_consumer(name, move |s, event| {
            let hook = hook.clone();
            async move {
                let key = s.webhook_key(&hook).await?;
                s.notify_webhook(&hook, key.as_deref(), &event).await
            }
        });
    }
    let secs = std::time::Duration::from_secs;
    runner.spawn_periodic(
        "usage-sample",
        secs(settings.usage.sample_seconds),
        |s| async move { s.sample_storage(clock::now_ms()).await },
    );
    let flush = secs(settings.usage.flush_seconds);
    let flusher = service.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(flush);
        loop {
            ticks.tick().await;
            if let Err(e) = flusher.flush_transfer(clock::now_ms()).await {
                tracing::warn!(error = %e, "recording transfer out failed");
            }
        }
    });
    let retention_ms = i64::from(settings.audit.retention_days) * 24 * 3600 * 1000;
    runner.spawn_periodic("audit-retention", secs(3600), move |s| async move {
        Ok::<u64, service::Error>(
            s.meta()
                .prune_audit_records(clock::now_ms() - retention_ms)
                .await?,
        )
    });
    if settings.lifecycle_interval > 0 {
        runner.spawn_periodic(
            "lifecycle",
            secs(settings.lifecycle_interval),
            |s| async move { s.run_lifecycle(clock::now_ms()).await },
        );
    }
    if settings.pull_through.expire_unpulled_days.is_some() {
        runner.spawn_periodic("pull-through-expiry", secs(3600), |s| async move {
            s.expire_cached_images(clock::now_ms()).await
        });
    }
    if settings.gc_interval > 0 {
        let grace_ms = i64::try_from(settings.gc_grace.saturating_mul(1000)).unwrap_or(i64::MAX);
        runner.spawn_periodic("gc", secs(settings.gc_interval), move |s| async move {
            s.collect_garbage(clock::now_ms(), grace_ms).await
        });
    }
    holder
}

/// Read and apply a bootstrap file; the error names the file and the entity at fault.
async fn apply_bootstrap(
    service: &Service,
    path: &std::path::Path,
    region: &crate::aws::Region,
) -> anyhow::Result<bootstrap::file::Applied> {
    let file = bootstrap::file::BootstrapFile::read(path)?;
    let applied = bootstrap::file::apply(service, &file, region)
        .await
        .with_context(|| format!("applying bootstrap file {}", path.display()))?;
    tracing::info!(
        file = %path.display(),
        accounts = applied.accounts,
        created = applied.created,
        "bootstrap file applied"
    );
    Ok(applied)
}

/// SIGTERM or SIGINT. The handlers are registered here, before the server says it is
/// ready, so a signal sent right after the ready line still stops it gracefully.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

impl AdminCommand {
    fn store(&self) -> &StoreArgs {
        match self {
            AdminCommand::CreateRepository { store, .. }
            | AdminCommand::CreateAccount { store, .. }
            | AdminCommand::LoginPassword { store, .. }
            | AdminCommand::Bootstrap { store, .. }
            | AdminCommand::Gc { store, .. }
            | AdminCommand::Storage { store }
            | AdminCommand::Jobs { store }
            | AdminCommand::SigningCa { store }
            | AdminCommand::ListRepositories { store }
            | AdminCommand::Hosts { store, .. }
            | AdminCommand::AssumeRole { store, .. } => store,
            AdminCommand::Tls {
                command: TlsCommand::Init { store, .. },
            } => store,
            AdminCommand::Lifecycle {
                command:
                    LifecycleCommand::Run { store, .. } | LifecycleCommand::Events { store, .. },
            } => store,
            AdminCommand::PullThroughCache {
                command: PullThroughCacheCommand::Expire { store, .. },
            } => store,
            AdminCommand::Vulndb {
                command: VulndbCommand::Import { store, .. } | VulndbCommand::Status { store },
            } => store,
            AdminCommand::Events(args) => args.store(),
            AdminCommand::Cost(args) => &args.store,
            AdminCommand::Webhooks {
                command:
                    events::WebhooksCommand::DeadLetters { store, .. }
                    | events::WebhooksCommand::Redeliver { store, .. },
            } => store,
        }
    }
}

/// Run an admin command. Run by another user than the data directory's owner (`sudo
/// berth admin hosts --install`), what it created there is handed back to the owner,
/// or the server could no longer open its own files.
async fn admin(command: AdminCommand) -> anyhow::Result<()> {
    let data_dir = Settings::from_store(command.store())?.data_dir;
    let owner = fsutil::foreign_owner(&data_dir);
    let result = admin_command(command).await;
    if let Some(owner) = owner {
        fsutil::hand_back(&data_dir, owner)
            .with_context(|| format!("giving {} back to its owner", data_dir.display()))?;
    }
    result
}

async fn admin_command(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::CreateRepository { name, store } => {
            let settings = Settings::from_store(&store)?;
            let name: oci::RepositoryName = name
                .parse()
                .map_err(|e| anyhow::anyhow!("invalid repository name '{name}': {e}"))?;
            let service = open_service(&settings, admin_public_url(&settings)).await?;
            let ctx = Context {
                registry: default_registry(&settings),
                principal: Principal::system("berth admin create-repository"),
                source_ip: None,
            };
            let repo = service
                .create_repository_with(&ctx, &name, &Default::default(), &Default::default())
                .await?;
            println!(
                "created repository {} in registry {} ({})",
                repo.name, settings.account_id, settings.region
            );
        }
        AdminCommand::CreateAccount { account_id, store } => {
            let Some(account_id) = crate::aws::AccountId::parse(&account_id) else {
                anyhow::bail!("account id '{account_id}' must be 12 digits");
            };
            let settings = Settings::from_store(&store)?;
            let service = open_service(&settings, admin_public_url(&settings)).await?;
            let key = bootstrap::root_key(&service, &account_id).await?;
            println!("[{account_id}]");
            println!("aws_access_key_id = {}", key.access_key_id);
            println!("aws_secret_access_key = {}", key.secret_access_key);
        }
        AdminCommand::LoginPassword { expires_in, store } => {
            let settings = Settings::from_store(&store)?;
            let service = open_service(&settings, admin_public_url(&settings)).await?;
            let key = bootstrap::token_key(&service).await?;
            let auth = authenticator(&service, key, false, &settings.account_id);
            let principal =
                auth::Principal::system_as_root(&settings.account_id, "berth admin login-password");
            let lifetime = expires_in.unwrap_or(auth::TOKEN_LIFETIME_SECONDS);
            let now = clock::now_ms() / 1000;
            let (password, _) = auth.issue_token(
                &principal,
                &settings.region,
                now - auth::TOKEN_LIFETIME_SECONDS + lifetime,
            );
            println!("{password}");
        }
        AdminCommand::Bootstrap { file, store } => {
            let settings = Settings::from_store(&store)?;
            let service = open_service(&settings, admin_public_url(&settings)).await?;
            bootstrap::managed_policies(&service).await?;
            let applied =
                progress::shown(apply_bootstrap(&service, &file, &settings.region)).await?;
            notify_server(&service, &settings).await?;
            println!(
                "applied {}: {} accounts, {} entities created",
                file.display(),
                applied.accounts,
                applied.created
            );
        }
        AdminCommand::Lifecycle { command } => lifecycle_admin(command).await?,
        AdminCommand::PullThroughCache {
            command: PullThroughCacheCommand::Expire { at, store },
        } => {
            let settings = Settings::from_store(&store)?;
            let now = at_or_now(at.as_deref())?;
            let service = open_service(&settings, admin_public_url(&settings)).await?;
            let run = run_admin_job(
                &service,
                &settings,
                "pull-through-expiry",
                "an expiry run is in progress elsewhere",
                service.expire_cached_images(now),
            )
            .await?;
            notify_server(&service, &settings).await?;
            println!(
                "pull-through cache: {} repositories looked at, {} images expired",
                run.repositories, run.expired
            );
        }
        AdminCommand::Vulndb { command } => vulndb_admin(command).await?,
        AdminCommand::Gc { grace, store } => {
            let settings = Settings::from_store(&store)?;
            let service = open_service(&settings, admin_public_url(&settings)).await?;
            let grace = grace.unwrap_or(config::DEFAULT_GC_GRACE);
            let grace_ms = i64::try_from(grace.saturating_mul(1000)).unwrap_or(i64::MAX);
            let gc = service.collect_garbage(clock::now_ms(), grace_ms);
            let report = run_admin_job(
                &service,
                &settings,
                "gc",
                "another garbage collection is running",
                gc,
            )
            .await?;
            notify_server(&service, &settings).await?;
            println!(
                "gc: freed {} bytes: {} blobs, {} repository links, {} abandoned uploads",
                report.bytes_freed,
                report.blobs_removed,
                report.links_removed,
                report.uploads_removed
            );
        }
        AdminCommand::Events(args) => events::events(args).await?,
        AdminCommand::Cost(args) => events::cost(args).await?,
        AdminCommand::Webhooks { command } => events::webhooks(command).await?,
        AdminCommand::SigningCa { store } => {
            let settings = Settings::from_store(&store)?;
            let service = open_service(&settings, admin_public_url(&settings)).await?;
            print!("{}", service.signing_ca().await?.cert_pem);
        }
        AdminCommand::Jobs { store } => {
            let settings = Settings::from_store(&store)?;
            let service = open_service(&settings, admin_public_url(&settings)).await?;
            let now = clock::now_ms();
            for j in service.meta().jobs().await? {
                let held = !j.holder.is_empty() && j.lease_until >= now;
                let line = serde_json::json!({
                    "job": j.name,
                    "holder": held.then_some(&j.holder),
                    "leaseExpiresInMs": held.then_some(j.lease_until - now),
                    "fence": j.fence,
                    "cursor": j.cursor,
                    "lastRunAt": (j.last_run_at > 0).then_some(j.last_run_at),
                    "lastError": j.last_error,
                });
                println!("{line}");
            }
        }
        AdminCommand::Storage { store } => {
            let settings = Settings::from_store(&store)?;
            let service = open_service(&settings, admin_public_url(&settings)).await?;
            for u in service.repository_usage().await? {
                println!(
                    "{}\t{}\t{}\t{} blobs\t{} bytes",
                    u.registry.account_id, u.registry.region, u.name, u.blobs, u.bytes
                );
            }
            let total = service.storage_usage().await?;
            println!("total\t{} blobs\t{} bytes", total.blobs, total.bytes);
        }
        AdminCommand::Tls {
            command:
                TlsCommand::Init {
                    out,
                    domain,
                    cover_regions,
                    store,
                },
        } => tls_init(out, domain, cover_regions, &store).await?,
        AdminCommand::Hosts {
            install,
            hosts_file,
            store,
        } => {
            let settings = Settings::from_store(&store)?;
            let service = open_service(&settings, admin_public_url(&settings)).await?;
            let (accounts, in_use) = service.meta().registries_in_use().await?;
            let address = ServerRecord::read(&settings.data_dir)
                .map(|r| r.address())
                .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
            let block = hosts::block(&admin_public_url(&settings), address, &accounts, &in_use);
            if install {
                let path = hosts_file.unwrap_or_else(|| "/etc/hosts".into());
                hosts::install(&path, &block)?;
                println!(
                    "{}: {} registry names",
                    path.display(),
                    block.lines().count().saturating_sub(2)
                );
            } else {
                print!("{block}");
            }
        }
        AdminCommand::AssumeRole {
            as_service,
            role_arn,
            role_session_name,
            duration_seconds,
            store,
        } => {
            let settings = Settings::from_store(&store)?;
            let service = open_service(&settings, admin_public_url(&settings)).await?;
            let key = bootstrap::token_key(&service).await?;
            let auth = authenticator(&service, key, false, &settings.account_id);
            let session = role_session_name
                .unwrap_or_else(|| as_service.split('.').next().unwrap_or("service").to_owned());
            let creds = service
                .assume_role_as_service(&auth, &role_arn, &as_service, &session, duration_seconds)
                .await?;
            println!("export AWS_ACCESS_KEY_ID={}", creds.access_key_id);
            println!("export AWS_SECRET_ACCESS_KEY={}", creds.secret_access_key);
            println!("export AWS_SESSION_TOKEN={}", creds.session_token);
            println!(
                "# {} until {}",
                creds.arn,
                iam::context::iso8601(creds.expires)
            );
        }
        AdminCommand::ListRepositories { store } => {
            let settings = Settings::from_store(&store)?;
            let service = open_service(&settings, admin_public_url(&settings)).await?;
            let ctx = Context {
                registry: default_registry(&settings),
                principal: Principal::system("berth admin list-repositories"),
                source_ip: None,
            };
            let mut last: Option<oci::RepositoryName> = None;
            loop {
                let page = service.catalog(&ctx, last.as_ref(), Some(1000)).await?;
                for name in &page.items {
                    println!("{name}");
                }
                if !page.more() {
                    break;
                }
                last = page.items.last().and_then(|n| n.parse().ok());
            }
        }
    }
    Ok(())
}

async fn vulndb_admin(command: VulndbCommand) -> anyhow::Result<()> {
    let rfc3339 = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    };
    match command {
        VulndbCommand::Import { paths, store } => {
            let settings = Settings::from_store(&store)?;
            let service = open_service(&settings, admin_public_url(&settings)).await?;
            let sources = run_admin_job(
                &service,
                &settings,
                "vulndb-import",
                "another vulnerability data import is running",
                service.import_vulndb(paths),
            )
            .await?;
            if sources.is_empty() {
                anyhow::bail!("no OSV records of a supported ecosystem were found");
            }
            for s in sources {
                let ecosystems: Vec<&str> = s.ecosystems.iter().map(|(e, _)| e.as_str()).collect();
                println!(
                    "{}: {} records, updated {} ({})",
                    s.source,
                    s.records,
                    rfc3339(s.updated_at),
                    ecosystems.join(", ")
                );
            }
        }
        VulndbCommand::Status { store } => {
            let settings = Settings::from_store(&store)?;
            let service = open_service(&settings, admin_public_url(&settings)).await?;
            for s in service.meta().vulndb_sources().await? {
                let line = serde_json::json!({
                    "source": s.source,
                    "records": s.records,
                    "updatedAt": rfc3339(s.updated_at),
                    "importedAt": rfc3339(s.imported_at),
                    "ecosystems": s.ecosystems,
                });
                println!("{line}");
            }
        }
    }
    Ok(())
}

/// Run a job once now, under the lease its periodic runs take (`berth admin lifecycle
/// run`, `gc`, ...); refused with `busy` while a run holds it elsewhere.
async fn run_admin_job<T>(
    service: &Arc<Service>,
    settings: &Settings,
    job: &str,
    busy: &str,
    work: impl std::future::Future<Output = service::Result<T>>,
) -> anyhow::Result<T> {
    let runner = jobs::Runner::new(
        service.clone(),
        jobs::holder_id("admin"),
        settings.job_lease,
    );
    let outcome = progress::shown(runner.run_once(job, work)).await;
    // What the run recorded in the audit trail is written before the command ends.
    service.audit().close().await;
    match outcome {
        Err(service::Error::Busy) => anyhow::bail!("{busy}; try again later"),
        other => Ok(other?),
    }
}

/// `--since`/`--until`: an RFC 3339 time in milliseconds, if given.
fn at_or_now_opt(at: Option<&str>) -> anyhow::Result<Option<i64>> {
    at.map(|t| at_or_now(Some(t))).transpose()
}

/// `--at TIME` (RFC 3339) in milliseconds, or now: the injectable clock of admin runs.
fn at_or_now(at: Option<&str>) -> anyhow::Result<i64> {
    match at {
        Some(t) => iam::condition::date(t)
            .map(|secs| (secs * 1000.0) as i64)
            .with_context(|| format!("--at '{t}' is not an RFC 3339 time")),
        None => Ok(clock::now_ms()),
    }
}

async fn lifecycle_admin(command: LifecycleCommand) -> anyhow::Result<()> {
    match command {
        LifecycleCommand::Run { at, store } => {
            let settings = Settings::from_store(&store)?;
            let now = at_or_now(at.as_deref())?;
            let service = open_service(&settings, admin_public_url(&settings)).await?;
            let run = run_admin_job(
                &service,
                &settings,
                "lifecycle",
                "a lifecycle run is in progress elsewhere",
                service.run_lifecycle(now),
            )
            .await?;
            notify_server(&service, &settings).await?;
            println!(
                "lifecycle: {} repositories evaluated, {} images expired, {} transitioned to archive",
                run.repositories, run.expired, run.transitioned
            );
        }
        LifecycleCommand::Events { limit, store } => {
            let settings = Settings::from_store(&store)?;
            let service = open_service(&settings, admin_public_url(&settings)).await?;
            for e in service.lifecycle_events(limit.unwrap_or(100)).await? {
                let line = serde_json::json!({
                    "at": iam::context::iso8601(e.at / 1000),
                    "registryId": e.registry.account_id,
                    "region": e.registry.region,
                    "repositoryName": e.repository,
                    "imageDigest": e.digest,
                    "imageTags": e.tags,
                    "action": e.action,
                    "appliedRulePriority": e.rule_priority,
                });
                println!("{line}");
            }
        }
    }
    Ok(())
}
