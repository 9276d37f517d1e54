//! Berth: an Amazon ECR you run yourself.
//!
//! `berth serve` runs the registry; `berth admin ...` administers a data directory.
//! Module map: `http` (server, host routing) → `registry` (OCI front end) → `service`
//! (operation layer) → `meta` (SQLite/PostgreSQL) and `blobs` (filesystem), with `oci`
//! (digests, names, manifests) shared by all. See docs/architecture.md.

mod blobs;
mod clock;
mod config;
mod http;
mod meta;
mod oci;
mod registry;
mod service;

use std::io::Write;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use config::{ServeArgs, Settings, StoreArgs};
use meta::{MetaStore, RegistryKey};
use service::{Context, Principal, Service};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "An Amazon ECR you run yourself: the OCI registry API (and soon ECR's API) in one binary."
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
    /// List the repositories of the default registry.
    ListRepositories {
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(Settings::from_serve(&args)?)),
        Command::Admin { command } => runtime.block_on(admin(command)),
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
async fn open_service(settings: &Settings) -> anyhow::Result<Service> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
    let meta = MetaStore::open(settings.metadata.as_deref(), &settings.data_dir)
        .await
        .context("opening the metadata store")?;
    let blobs = blobs::fs::FsBlobStore::open(&settings.data_dir)
        .with_context(|| format!("opening the blob store in {}", settings.data_dir.display()))?;
    let options = service::Options {
        create_on_push: settings.create_on_push,
    };
    Ok(Service::new(meta, Arc::new(blobs), options))
}

fn default_registry(settings: &Settings) -> RegistryKey {
    RegistryKey {
        account_id: settings.account_id.clone(),
        region: settings.region.clone(),
    }
}

/// Hold an exclusive lock on the data directory for as long as the server runs: two
/// servers on one directory would each cache metadata and track uploads the other
/// cannot see. (`berth admin` does not take it: it only adds rows, which is safe.)
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
    let _lock = lock_data_dir(&settings)?;
    let service = open_service(&settings).await?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        data_dir = %settings.data_dir.display(),
        metadata = service.meta().backend_name(),
        account_id = settings.account_id,
        region = settings.region,
        domain = settings.domain,
        "berth started"
    );
    let hosts = http::HostRouting {
        domain: settings.domain.clone(),
        default: default_registry(&settings),
    };
    let state = Arc::new(http::AppState::new(service, hosts));
    // Tests and scripts wait for this exact line.
    let mut out = std::io::stdout();
    writeln!(out, "berth listening on http://{addr}")?;
    out.flush()?;
    http::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("berth stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn admin(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::CreateRepository { name, store } => {
            let settings = Settings::from_store(&store)?;
            let name: oci::RepositoryName = name
                .parse()
                .map_err(|e| anyhow::anyhow!("invalid repository name '{name}': {e}"))?;
            let service = open_service(&settings).await?;
            let ctx = Context {
                registry: default_registry(&settings),
                principal: Principal::Admin,
            };
            let repo = service.create_repository(&ctx, &name).await?;
            println!(
                "created repository {} in registry {} ({})",
                repo.name, settings.account_id, settings.region
            );
        }
        AdminCommand::ListRepositories { store } => {
            let settings = Settings::from_store(&store)?;
            let service = open_service(&settings).await?;
            let ctx = Context {
                registry: default_registry(&settings),
                principal: Principal::Admin,
            };
            let mut last: Option<oci::RepositoryName> = None;
            loop {
                let page = service.catalog(&ctx, last.as_ref(), Some(1000)).await?;
                for name in &page.items {
                    println!("{name}");
                }
                if !page.more {
                    break;
                }
                last = page.items.last().and_then(|n| n.parse().ok());
            }
        }
    }
    Ok(())
}
