//! Metadata store: repositories, blob links, manifests, tags, uploads.
//!
//! One set of SQL statements runs on both SQLite (embedded default) and PostgreSQL (for
//! several nodes). The [`on_read!`]/[`on_write!`] macros expand each query body once per
//! driver, so there is a single code path and each driver keeps its native types.
//!
//! SQLite runs in WAL mode with a pool of readers and exactly one writer connection, so
//! writes queue instead of failing with `SQLITE_BUSY`. No SQL lives outside this module.

mod migrate;
mod notify;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::aws::{AccountId, Region};
use crate::mutability::TagMutability;
use crate::oci::{Digest, RepositoryName, Tag};

/// Errors of the metadata layer. Domain meaning is added by the service layer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Transient contention (busy database, serialization failure): the caller may retry.
    #[error("metadata store is busy")]
    Busy,
    /// The disk under the database is full (SQLITE_FULL, PostgreSQL's disk_full).
    #[error("the metadata store's disk is full")]
    Full,
    #[error("metadata store failure: {0}")]
    Backend(String),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            // SQLite BUSY/LOCKED, PostgreSQL serialization_failure / deadlock_detected.
            if let Some(kind) = database_error_kind(db.as_ref()) {
                return kind;
            }
        }
        if matches!(e, sqlx::Error::PoolTimedOut) {
            return Error::Busy;
        }
        Error::Backend(e.to_string())
    }
}

/// Busy or full, by the backend's own codes: SQLite's (whose extended codes keep the
/// primary code in the low byte) or PostgreSQL's SQLSTATE.
fn database_error_kind(db: &dyn sqlx::error::DatabaseError) -> Option<Error> {
    let code = db.code()?;
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        return match code.parse::<i32>().ok()? & 0xff {
            5 | 6 => Some(Error::Busy),
            13 => Some(Error::Full),
            _ => None,
        };
    }
    match code.as_ref() {
        "40001" | "40P01" => Some(Error::Busy),
        "53100" => Some(Error::Full),
        _ => None,
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Which registry (account, region) a row belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistryKey {
    pub account_id: AccountId,
    pub region: Region,
}

impl RegistryKey {
    /// The registry of a stored row.
    fn from_store(account_id: String, region: String) -> RegistryKey {
        RegistryKey {
            account_id: AccountId::from_store(account_id),
            region: Region::from_store(region),
        }
    }
}

/// Account ids and regions are bound as the strings they are.
macro_rules! bind_as_string {
    ($($t:ty),*) => {$(
        impl<DB: sqlx::Database> sqlx::Type<DB> for $t
        where
            String: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as sqlx::Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $t
        where
            String: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> std::result::Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <String as sqlx::Encode<'q, DB>>::encode(self.as_str().to_owned(), buf)
            }
        }
    )*};
}
bind_as_string!(AccountId, Region);

#[derive(Debug, Clone)]
pub struct Repository {
    pub id: i64,
    pub name: RepositoryName,
    pub created_at: i64,
    pub settings: RepositorySettings,
    /// The repository policy (SetRepositoryPolicy), parsed when the row is read.
    pub policy: Option<std::sync::Arc<crate::iam::Policy>>,
}

/// What CreateRepository and the Put*Configuration operations set on a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySettings {
    pub tag_mutability: TagMutability,
    pub scan_on_push: bool,
    pub encryption_type: String,
    pub kms_key: Option<String>,
}

impl Default for RepositorySettings {
    fn default() -> Self {
        RepositorySettings {
            tag_mutability: TagMutability::mutable(),
            scan_on_push: false,
            encryption_type: "AES256".into(),
            kms_key: None,
        }
    }
}

/// Columns of a repository row, in the order [`repository_from_row`] reads them.
const REPOSITORY_COLUMNS: &str = "id, name, created_at, image_tag_mutability, mutability_exclusions, scan_on_push, encryption_type, kms_key, policy_text";
type RepositoryRow = (
    i64,
    String,
    i64,
    String,
    Option<String>,
    i64,
    String,
    Option<String>,
    Option<String>,
);

#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: String,
    pub media_type: String,
    pub body: bytes::Bytes,
    /// In the archive storage class: listed and described, not pulled.
    pub archived: bool,
}

/// A manifest to insert, with what it references.
pub struct NewManifest<'a> {
    pub digest: &'a Digest,
    pub media_type: &'a str,
    pub body: &'a [u8],
    pub artifact_type: Option<&'a str>,
    pub subject: Option<&'a Digest>,
    pub annotations: Option<&'a str>,
    pub blobs: &'a [Digest],
    pub manifests: &'a [Digest],
    pub tag: Option<&'a Tag>,
    /// Refuse to move `tag` if it already points at another digest.
    pub tag_immutable: bool,
    /// Sum of layer sizes; for an index, its largest child.
    pub image_size: i64,
    pub config_media_type: Option<&'a str>,
    pub now_ms: i64,
    /// Where the push went, for the outbox event it writes.
    pub source: EventSource<'a>,
    /// Request a scan of a new image, unless one was requested after this time (the
    /// daily quota); `None`: no scan on push.
    pub scan_unless_since: Option<i64>,
    /// Signatures a new image gets (managed signing), recorded with it.
    pub signing: &'a [SigningRequest],
}

#[derive(Debug, PartialEq, Eq)]
pub enum PutManifestOutcome {
    /// Stored. `new_image`: the digest was not in the repository before; `tag_changed`:
    /// the tag was created or moved (false when it already pointed at this digest).
    Stored { new_image: bool, tag_changed: bool },
    /// The tag points at another digest and may not move.
    TagImmutable,
    /// Blobs (config, layers) not linked in the repository.
    MissingBlobs(Vec<String>),
    /// Child manifests not present in the repository.
    MissingManifests(Vec<String>),
}

/// What a guarded delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
    /// Still referenced by a manifest of the repository: nothing was deleted.
    Referenced,
}

#[derive(Debug, Clone)]
/// The upload session a recorded blob comes from, as its finishing request read it.
pub struct FinishedUpload<'a> {
    pub key: crate::blobs::UploadKey,
    /// The session's version then: a session changed since records nothing.
    pub version: i64,
    /// Objects of the session nothing names once the blob is recorded (garbage then).
    pub garbage: &'a [crate::blobs::BlobLocation],
}

pub struct Referrer {
    pub digest: String,
    pub media_type: String,
    pub size: i64,
    pub artifact_type: Option<String>,
    pub annotations: Option<String>,
}

#[derive(Clone)]
enum Db {
    Sqlite { read: SqlitePool, write: SqlitePool },
    Postgres(PgPool),
}

impl Db {
    fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }
}

/// Run `$body` with `$pool` bound to the read pool of whichever driver is configured.
macro_rules! on_read {
    ($self:expr, $pool:ident => $body:expr) => {
        match &$self.db {
            Db::Sqlite { read: $pool, .. } => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

/// Run `$body` with `$pool` bound to the write pool (SQLite's single writer).
macro_rules! on_write {
    (db $db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::Sqlite { write: $pool, .. } => $body,
            Db::Postgres($pool) => $body,
        }
    };
    ($self:expr, $pool:ident => $body:expr) => {
        match &$self.db {
            Db::Sqlite { write: $pool, .. } => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

/// The database file holds sealed secrets, but also who owns what: owner only. SQLite
/// gives its `-wal` and `-shm` files the database file's mode, so making `meta.db` 0600
/// before SQLite opens it covers all three (existing files of older versions included).
fn private_database_files(path: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::Backend(format!("{}: {e}", path.display()));
    if !path.exists() {
        crate::fsutil::create_private_new(path, b"").map_err(io)?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        crate::fsutil::make_private(Path::new(&p)).map_err(io)?;
    }
    Ok(())
}

#[macro_use]
mod outbox;
mod audit;
mod batch;
pub mod changes;
mod creates;
mod documents;
mod ecr;
mod gc;
mod governance;
mod iam;
mod identity;
mod jobs;
mod links;
mod login_profiles;
mod pull_through;
mod replication;
mod scanning;
mod secrets_manager;
mod signing;
mod uploads;
mod usage;
mod vulndb;

pub use audit::{AuditQuery, AuditRecord, DeadLetter, StoreGauges};
pub use changes::{Change, Listener};
pub use documents::DocumentKind;
pub use ecr::{ImageDetail, ImageRow, StatusFilter};
pub use gc::{RepositoryUsage, StorageUsage};
pub use governance::{LifecycleEvent, LifecycleImageRow, LifecycleTarget};
pub use iam::{DeleteOutcome as IamDeleteOutcome, Identity, IdentityKind, ManagedPolicyRow};
pub use identity::AccessKey;
pub use jobs::{JobRow, Lease};
pub use links::Recorded;
pub use login_profiles::LoginProfileRow;
pub use outbox::{Event, EventKind, EventSource};
pub use pull_through::UpstreamManifest;
pub use replication::{
    BackfillItem, BackfillRow, BackfillStart, Destination, ItemResult, RemoteItem,
    ReplicationRecord, ReplicationState,
};
pub use scanning::{ScanOutcome, ScanResult, ScanState, ScanStatus};
pub use secrets_manager::SecretRow;
pub use signing::{ProfileRow, SigningRequest, SigningRow};
pub use uploads::StoredUpload;
pub use usage::UsageDay;
pub use vulndb::{Coverage, SourceImport, VulnSource};

pub struct MetaStore {
    db: Db,
    /// Seals the secrets this store keeps (see `secrets`).
    sealer: crate::secrets::Sealer,
    upload_writes: batch::Batcher<links::UploadWrite>,
    creates: batch::Batcher<creates::NewRepository>,
    session_cache: std::sync::Arc<uploads::SessionCache>,
    /// Who hears about changes (see changes.rs).
    changes: std::sync::Arc<changes::Feed>,
    /// See [`MetaStore::is_single_node`].
    exclusive: bool,
}

/// Digests bound in one statement: far below SQLite's 32,766 and PostgreSQL's 65,535
/// parameters, even at four parameters per row.
const MAX_DIGESTS_PER_STATEMENT: usize = 1000;

/// `SELECT digest FROM <table> WHERE repository_id = $1 AND digest IN ($2, ...)`.
/// `table` is one of two constants, never user input.
fn present_query(table: &str, n: usize) -> String {
    let params: Vec<String> = (2..n + 2).map(|i| format!("${i}")).collect();
    format!(
        "SELECT digest FROM {table} WHERE repository_id = $1 AND digest IN ({})",
        params.join(", ")
    )
}

/// Copy reference rows for the present ones among `n` digests: `$1` repository, `$2`
/// manifest digest, `$3..` the digests. `table` is one of two constants, never input.
fn references_copy(table: &str, kind: &str, n: usize) -> String {
    let params: Vec<String> = (3..n + 3).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, kind)
         SELECT repository_id, $2, digest, '{kind}' FROM {table}
         WHERE repository_id = $1 AND digest IN ({})
         ON CONFLICT DO NOTHING",
        params.join(", ")
    )
}

/// Refresh `n` links' `linked_at`: `$1` repository, `$2` time, `$3..` the digests.
fn touch_links_sql(n: usize) -> String {
    let params: Vec<String> = (3..n + 3).map(|i| format!("${i}")).collect();
    format!(
        "UPDATE repository_blobs SET linked_at = $2 WHERE repository_id = $1 AND digest IN ({})",
        params.join(", ")
    )
}

/// The wanted digests not among the found rows, in the order wanted, each once.
fn missing_from(wanted: &[String], found: Vec<(String,)>) -> Vec<String> {
    // Found digests start out "seen", so each missing one is reported once.
    let mut seen: std::collections::HashSet<String> = found.into_iter().map(|(d,)| d).collect();
    wanted
        .iter()
        .filter(|d| seen.insert((*d).clone()))
        .cloned()
        .collect()
}

fn repository_from_row(row: RepositoryRow) -> Result<Repository> {
    let (
        id,
        name,
        created_at,
        tag_mutability,
        mutability_exclusions,
        scan_on_push,
        encryption_type,
        kms_key,
        policy_text,
    ) = row;
    // Stored policies were validated when set; one that no longer parses grants nothing.
    let policy = policy_text.and_then(|t| {
        crate::iam::Policy::parse(&t, crate::iam::PolicyKind::Resource)
            .map(std::sync::Arc::new)
            .map_err(|e| tracing::warn!(repository = %name, error = %e, "stored repository policy does not parse"))
            .ok()
    });
    let name = RepositoryName::from_str(&name)
        .map_err(|_| Error::Backend(format!("stored repository name '{name}' is invalid")))?;
    Ok(Repository {
        id,
        name,
        created_at,
        settings: RepositorySettings {
            tag_mutability: TagMutability::from_stored(
                &tag_mutability,
                mutability_exclusions.as_deref(),
            ),
            scan_on_push: scan_on_push != 0,
            encryption_type,
            kms_key,
        },
        policy,
    })
}

impl MetaStore {
    /// Open (and migrate) the store. `url` is `postgres://...`, or `None` for SQLite
    /// in `data_dir/meta.db`.
    pub async fn open(
        url: Option<&str>,
        data_dir: &Path,
        sealer: crate::secrets::Sealer,
    ) -> Result<MetaStore> {
        let db = match url {
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(u)
                    .await?;
                Db::Postgres(pool)
            }
            Some(u) if u.starts_with("sqlite:") => {
                Self::open_sqlite(SqliteConnectOptions::from_str(u)?).await?
            }
            Some(other) => {
                // Only the scheme: the rest of a URL may hold a password.
                let scheme = other.split(':').next().unwrap_or("");
                return Err(Error::Backend(format!(
                    "unsupported metadata URL scheme '{scheme}:' (use postgres://... or sqlite:...)"
                )));
            }
            None => {
                let path = data_dir.join("meta.db");
                private_database_files(&path)?;
                Self::open_sqlite(SqliteConnectOptions::new().filename(path)).await?
            }
        };
        let store = MetaStore {
            upload_writes: batch::Batcher::start(db.clone()),
            creates: batch::Batcher::start(db.clone()),
            session_cache: std::sync::Arc::new(uploads::SessionCache::new(url.is_none())),
            db,
            sealer,
            changes: std::sync::Arc::default(),
            exclusive: url.is_none(),
        };
        store.changes.subscribe(store.session_cache.clone());
        store.migrate().await?;
        store.seal_plaintext_secrets().await?;
        if let Db::Postgres(pool) = &store.db {
            notify::start(pool.clone(), store.changes.clone());
        }
        Ok(store)
    }

    async fn open_sqlite(options: SqliteConnectOptions) -> Result<Db> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL loses no committed transaction on a process crash;
            // only an OS crash or power loss can drop the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", "-2000");
        // An embedded database has no network to fail: testing a connection before each
        // use would only add a round trip to its worker thread per statement.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Db::Sqlite { read, write })
    }

    async fn migrate(&self) -> Result<()> {
        let migrations = match self.db {
            Db::Sqlite { .. } => migrate::SQLITE,
            Db::Postgres(_) => migrate::POSTGRES,
        };
        on_write!(self, pool => {
            sqlx::raw_sql(migrate::BOOKKEEPING_TABLE).execute(pool).await?;
            for m in migrations {
                let mut tx = pool.begin().await?;
                let applied: Option<(i64,)> =
                    sqlx::query_as("SELECT version FROM berth_migrations WHERE version = $1")
                        .bind(m.version)
                        .fetch_optional(&mut *tx)
                        .await?;
                if applied.is_some() {
                    continue;
                }
                sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
                sqlx::query(
                    "INSERT INTO berth_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                )
                .bind(m.version)
                .bind(m.name)
                .bind(crate::clock::now_ms())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
        });
        Ok(())
    }

    /// Whether this process is the only writer (the embedded SQLite database in the
    /// data directory, which `berth.lock` gives to one server), so it may cache reads.
    /// A database named by URL may be shared: PostgreSQL, or a `sqlite:` file several
    /// processes on one host open.
    pub fn is_single_node(&self) -> bool {
        self.exclusive
    }

    /// Whether the other writers' changes reach this process as they happen (their
    /// notifications on PostgreSQL; see notify.rs). A shared `sqlite:` file has none.
    pub fn hears_other_writers(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    /// Subscribe here to hear about every change this store makes.
    pub fn changes(&self) -> &changes::Feed {
        &self.changes
    }

    pub fn backend_name(&self) -> &'static str {
        match self.db {
            Db::Sqlite { .. } => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    // ---- repositories ----

    /// Create a repository with its settings and resource tags; `None` if one with that
    /// name already exists. Concurrent creates are written together (see meta/creates.rs).
    pub async fn create_repository(
        &self,
        reg: &RegistryKey,
        name: &RepositoryName,
        settings: &RepositorySettings,
        tags: &[(String, String)],
        now_ms: i64,
    ) -> Result<Option<Repository>> {
        let id = self
            .creates
            .write(creates::NewRepository {
                registry: reg.clone(),
                name: name.to_string(),
                settings: settings.clone(),
                tags: tags.to_vec(),
                now_ms,
            })
            .await?;
        Ok(id.map(|id| Repository {
            id,
            name: name.clone(),
            created_at: now_ms,
            settings: settings.clone(),
            policy: None,
        }))
    }

    pub async fn repository(
        &self,
        reg: &RegistryKey,
        name: &RepositoryName,
    ) -> Result<Option<Repository>> {
        let sql = format!(
            "SELECT {REPOSITORY_COLUMNS} FROM repositories
             WHERE account_id = $1 AND region = $2 AND name = $3"
        );
        let row: Option<RepositoryRow> = on_read!(self, pool => sqlx::query_as(&sql)
        .bind(&reg.account_id)
        .bind(&reg.region)
        .bind(name.as_str())
        .fetch_optional(pool)
        .await?);
        row.map(repository_from_row).transpose()
    }

    /// Repository names after `last`, in byte order, at most `limit`.
    pub async fn repository_names(
        &self,
        reg: &RegistryKey,
        last: &str,
        limit: i64,
    ) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT name FROM repositories WHERE account_id = $1 AND region = $2 AND name > $3
             ORDER BY name LIMIT $4",
        )
        .bind(&reg.account_id)
        .bind(&reg.region)
        .bind(last)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(|(n,)| n).collect())
    }

    // ---- blobs and links ----

    /// Record a published blob (unless its digest is recorded already) and link it to
    /// the repository, forgetting the upload session that published it — only if that
    /// session is still at the version the caller read: see [`Recorded`] for the
    /// outcomes. The bytes must already be durable in the blob store: a link is the
    /// moment a blob becomes visible. A duplicate copy is garbage now, which the caller
    /// may delete at once (the collector does it otherwise). Concurrent links are
    /// written together (see meta/links.rs).
    pub async fn record_blob(
        &self,
        repository_id: i64,
        digest: &Digest,
        size: i64,
        location: &crate::blobs::BlobLocation,
        upload: Option<FinishedUpload<'_>>,
        now_ms: i64,
    ) -> Result<links::Recorded> {
        let link = links::Link {
            repository_id,
            digest: digest.to_string(),
            size,
            now_ms,
            location: location.as_str().to_owned(),
            upload: upload.as_ref().map(|u| links::SessionAt {
                owner: u.key.owner,
                id: u.key.id.to_string(),
                version: u.version,
            }),
            garbage: upload
                .as_ref()
                .map(|u| u.garbage.iter().map(|l| l.as_str().to_owned()).collect())
                .unwrap_or_default(),
        };
        if let Some(u) = &upload {
            // Before too: this request may be cancelled while the record is written.
            self.session_cache.drop_key(u.key);
        }
        let recorded = match self
            .upload_writes
            .write(links::UploadWrite::Record(link))
            .await
        {
            Ok(links::UploadWritten::Recorded(r)) => Ok(r),
            Ok(links::UploadWritten::Opened) => Err(Error::Backend(
                "a record was written as a new session".into(),
            )),
            Err(e) => Err(e),
        };
        if let Some(FinishedUpload { key, .. }) = upload {
            // Recorded or not, the row is gone, being discarded or changed.
            self.session_cache.drop_key(key);
        }
        recorded
    }

    /// Size and location of a blob as seen from a repository; `None` if the repository
    /// has no link. A location of `None` is a blob stored before locations existed.
    pub async fn linked_blob(
        &self,
        repository_id: i64,
        digest: &Digest,
    ) -> Result<Option<(i64, Option<String>)>> {
        let state = self.link_state(repository_id, &digest.to_string()).await?;
        Ok(state.map(|(size, _, location)| (size, location)))
    }

    /// Size of a blob as seen from a repository; `None` if the repository has no link.
    pub async fn linked_blob_size(
        &self,
        repository_id: i64,
        digest: &Digest,
    ) -> Result<Option<i64>> {
        Ok(self
            .linked_blob(repository_id, digest)
            .await?
            .map(|(size, _)| size))
    }

    /// A link's blob size, when the link was last refreshed, and the blob's location;
    /// `None` if the repository has no link.
    pub async fn link_state(
        &self,
        repository_id: i64,
        digest: &str,
    ) -> Result<Option<(i64, i64, Option<String>)>> {
        Ok(on_read!(self, pool => sqlx::query_as(
            "SELECT b.size, rb.linked_at, b.location FROM repository_blobs rb
             JOIN blobs b ON b.digest = rb.digest
             WHERE rb.repository_id = $1 AND rb.digest = $2",
        )
        .bind(repository_id)
        .bind(digest)
        .fetch_optional(pool)
        .await?))
    }

    /// Remove a repository's link to a blob, unless a manifest of that repository still
    /// references it. The check and the delete are one statement, so no manifest can
    /// start referencing the blob in between.
    pub async fn unlink_blob(&self, repository_id: i64, digest: &Digest) -> Result<DeleteOutcome> {
        let _announce = self.changes.announce(Change::Content { repository_id });
        let digest = digest.to_string();
        let deleted = on_write!(self, pool => sqlx::query(
            "DELETE FROM repository_blobs WHERE repository_id = $1 AND digest = $2
             AND NOT EXISTS (SELECT 1 FROM manifest_references
                             WHERE repository_id = $1 AND child_digest = $2)",
        )
        .bind(repository_id)
        .bind(&digest)
        .execute(pool)
        .await?
        .rows_affected());
        self.delete_outcome(deleted, "repository_blobs", repository_id, &digest)
            .await
    }

    /// Repositories of a registry that link `digest` (for mounts without `from`).
    pub async fn repositories_linking(
        &self,
        reg: &RegistryKey,
        digest: &Digest,
        limit: i64,
    ) -> Result<Vec<Repository>> {
        let sql = format!(
            "SELECT {} FROM repository_blobs rb
             JOIN repositories r ON r.id = rb.repository_id
             WHERE rb.digest = $1 AND r.account_id = $2 AND r.region = $3
             ORDER BY r.name LIMIT $4",
            REPOSITORY_COLUMNS
                .split(", ")
                .map(|c| format!("r.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows: Vec<RepositoryRow> = on_read!(self, pool => sqlx::query_as(&sql)
        .bind(digest.to_string())
        .bind(&reg.account_id)
        .bind(&reg.region)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        rows.into_iter().map(repository_from_row).collect()
    }

    // ---- manifests and tags ----

    /// Store a manifest (and move its tag), provided everything it references is present
    /// in the repository. All in one transaction: a manifest is never visible without its
    /// references recorded. Each step is one statement, so the transaction holds the
    /// writer for as few round trips as possible.
    pub async fn put_manifest(
        &self,
        repository_id: i64,
        m: &NewManifest<'_>,
    ) -> Result<PutManifestOutcome> {
        let _announce = self.changes.announce(Change::Content { repository_id });
        // The content change wakes the outbox consumers (jobs::Wake); a requested scan
        // is announced as such too.
        let _events = m
            .scan_unless_since
            .map(|_| self.changes.announce(Change::Events));
        let digest = m.digest.to_string();
        let blobs: Vec<String> = m.blobs.iter().map(ToString::to_string).collect();
        let children: Vec<String> = m.manifests.iter().map(ToString::to_string).collect();
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO manifests (repository_id, digest, media_type, artifact_type, subject,
                     annotations, size, body, pushed_at, image_size, config_media_type)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (repository_id, digest) DO NOTHING",
            )
            .bind(repository_id)
            .bind(&digest)
            .bind(m.media_type)
            .bind(m.artifact_type)
            .bind(m.subject.map(ToString::to_string))
            .bind(m.annotations)
            .bind(i64::try_from(m.body.len()).unwrap_or(i64::MAX))
            .bind(m.body)
            .bind(m.now_ms)
            .bind(m.image_size)
            .bind(m.config_media_type)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            // Pushing an archived image again restores it (ECR's rule).
            let restored = if inserted == 0 {
                sqlx::query(
                    "UPDATE manifests SET storage_class = 'STANDARD', activated_at = $3
                     WHERE repository_id = $1 AND digest = $2 AND storage_class = 'ARCHIVE'",
                )
                .bind(repository_id)
                .bind(&digest)
                .bind(m.now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected()
            } else {
                0
            };
            // A new manifest records its references by copying them from the rows that
            // prove them present: the check and the insert are one statement, and a
            // short count means something is missing. (An existing manifest was checked
            // when it was stored; what it references cannot be removed under it.)
            // Batches keep every statement under both backends' bind-parameter limits.
            if inserted > 0 {
                for (wanted, table, kind) in [(&blobs, "repository_blobs", "blob"), (&children, "manifests", "manifest")] {
                    for batch in wanted.chunks(MAX_DIGESTS_PER_STATEMENT) {
                        let sql = references_copy(table, kind, batch.len());
                        let mut q = sqlx::query(&sql).bind(repository_id).bind(&digest);
                        for d in batch {
                            q = q.bind(d);
                        }
                        let mut copied = q.execute(&mut *tx).await?.rows_affected();
                        if kind == "blob" && copied == batch.len() as u64 && self.db.is_postgres() {
                            // On PostgreSQL a collector (on any node) could delete a link
                            // between the copy and the commit. Refreshing the links locks
                            // them and restarts their grace period, so the collector, which
                            // removes only old unreferenced links, cannot take one away
                            // under us. SQLite needs no refresh: this transaction holds its
                            // only write lock, so the collector's delete runs after the
                            // commit and sees the references.
                            let sql = touch_links_sql(batch.len());
                            let mut q = sqlx::query(&sql).bind(repository_id).bind(m.now_ms);
                            for d in batch {
                                q = q.bind(d);
                            }
                            copied = q.execute(&mut *tx).await?.rows_affected();
                        }
                        if copied < batch.len() as u64 {
                            // Name every missing digest, not only this batch's.
                            let mut missing = Vec::new();
                            for all in wanted.chunks(MAX_DIGESTS_PER_STATEMENT) {
                                let sql = present_query(table, all.len());
                                let mut q = sqlx::query_as::<_, (String,)>(&sql).bind(repository_id);
                                for d in all {
                                    q = q.bind(d);
                                }
                                missing.extend(missing_from(all, q.fetch_all(&mut *tx).await?));
                            }
                            tx.rollback().await?;
                            return Ok(if kind == "blob" {
                                PutManifestOutcome::MissingBlobs(missing)
                            } else {
                                PutManifestOutcome::MissingManifests(missing)
                            });
                        }
                    }
                }
            }
            let mut tag_changed = false;
            if let Some(tag) = m.tag {
                // Moves the tag only if it points elsewhere and may move; 0 rows otherwise.
                let moved = sqlx::query(
                    "INSERT INTO tags (repository_id, name, digest, updated_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (repository_id, name)
                     DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at
                     WHERE tags.digest <> excluded.digest AND $5 = 0",
                )
                .bind(repository_id)
                .bind(tag.as_str())
                .bind(&digest)
                .bind(m.now_ms)
                .bind(i64::from(m.tag_immutable))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tag_changed = moved > 0;
                if !tag_changed && m.tag_immutable {
                    let current: Option<(String,)> =
                        sqlx::query_as("SELECT digest FROM tags WHERE repository_id = $1 AND name = $2")
                            .bind(repository_id)
                            .bind(tag.as_str())
                            .fetch_optional(&mut *tx)
                            .await?;
                    if current.is_some_and(|(d,)| d != digest) {
                        tx.rollback().await?;
                        return Ok(PutManifestOutcome::TagImmutable);
                    }
                }
            }
            let new_image = inserted > 0 || restored > 0;
            let mut scan_requested = false;
            if new_image {
                if let Some(since) = m.scan_unless_since {
                    // Recorded with the push; the scan job completes it (jobs::scans).
                    scan_requested = sqlx::query(
                        "UPDATE manifests SET scan_status = 'IN_PROGRESS', scanned_at = $3,
                             scan_completed_at = NULL
                         WHERE repository_id = $1 AND digest = $2
                           AND (scanned_at IS NULL OR scanned_at <= $4)",
                    )
                    .bind(repository_id)
                    .bind(&digest)
                    .bind(m.now_ms)
                    .bind(since)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        > 0;
                }
            }
            let kind = if new_image {
                Some(EventKind::ImagePushed)
            } else {
                tag_changed.then_some(EventKind::TagMoved)
            };
            if let Some(kind) = kind {
                record_event!(tx, kind, &m.source, &digest, m.tag.map(Tag::as_str), m.now_ms);
            }
            if scan_requested {
                record_event!(tx, EventKind::ScanRequested, &m.source, &digest, None::<&str>, m.now_ms);
            }
            if new_image && !m.signing.is_empty() {
                for r in m.signing {
                    let (status, code, reason) = match &r.refused {
                        Some((c, why)) => ("FAILED", Some(c.as_str()), Some(why.as_str())),
                        None => ("IN_PROGRESS", None, None),
                    };
                    sqlx::query(
                        "INSERT INTO image_signings (repository_id, digest, profile_arn, status,
                             failure_code, failure_reason, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)
                         ON CONFLICT (repository_id, digest, profile_arn) DO UPDATE SET
                             status = excluded.status, failure_code = excluded.failure_code,
                             failure_reason = excluded.failure_reason, updated_at = excluded.updated_at",
                    )
                    .bind(repository_id).bind(&digest).bind(&r.profile_arn).bind(status)
                    .bind(code).bind(reason).bind(m.now_ms)
                    .execute(&mut *tx).await?;
                }
                if m.signing.iter().any(|r| r.refused.is_none()) {
                    record_event!(tx, EventKind::SignRequested, &m.source, &digest, None::<&str>, m.now_ms);
                }
            }
            tx.commit().await?;
            Ok(PutManifestOutcome::Stored { new_image, tag_changed })
        })
    }

    pub async fn manifest_by_digest(
        &self,
        repository_id: i64,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>> {
        let row: Option<(String, String, Vec<u8>, String)> = on_read!(self, pool => sqlx::query_as(
            "SELECT digest, media_type, body, storage_class FROM manifests WHERE repository_id = $1 AND digest = $2",
        )
        .bind(repository_id)
        .bind(digest.to_string())
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|(digest, media_type, body, class)| StoredManifest {
            digest,
            media_type,
            body: body.into(),
            archived: class == "ARCHIVE",
        }))
    }

    pub async fn manifest_by_tag(
        &self,
        repository_id: i64,
        tag: &Tag,
    ) -> Result<Option<StoredManifest>> {
        let row: Option<(String, String, Vec<u8>, String)> = on_read!(self, pool => sqlx::query_as(
            "SELECT m.digest, m.media_type, m.body, m.storage_class FROM tags t
             JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
             WHERE t.repository_id = $1 AND t.name = $2",
        )
        .bind(repository_id)
        .bind(tag.as_str())
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|(digest, media_type, body, class)| StoredManifest {
            digest,
            media_type,
            body: body.into(),
            archived: class == "ARCHIVE",
        }))
    }

    /// Delete a manifest with its tags and reference rows, unless an index or list in the
    /// same repository still references it (checked in the same statement).
    pub async fn delete_manifest(
        &self,
        source: &EventSource<'_>,
        digest: &Digest,
    ) -> Result<DeleteOutcome> {
        let repository_id = source.repository_id;
        let _announce = self.changes.announce(Change::Content { repository_id });
        let digest = digest.to_string();
        let now = crate::clock::now_ms();
        let deleted = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "DELETE FROM manifests WHERE repository_id = $1 AND digest = $2
                 AND NOT EXISTS (SELECT 1 FROM manifest_references
                                 WHERE repository_id = $1 AND child_digest = $2 AND kind = 'manifest')",
            )
            .bind(repository_id)
            .bind(&digest)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                record_event!(tx, EventKind::ImageDeleted, source, &digest, None::<&str>, now);
            }
            tx.commit().await?;
            n
        });
        self.delete_outcome(deleted, "manifests", repository_id, &digest)
            .await
    }

    /// What a guarded delete did: a row that survived it was still referenced.
    /// `table` is one of two constants, never input.
    async fn delete_outcome(
        &self,
        deleted: u64,
        table: &str,
        repository_id: i64,
        digest: &str,
    ) -> Result<DeleteOutcome> {
        if deleted > 0 {
            return Ok(DeleteOutcome::Deleted);
        }
        let sql =
            format!("SELECT repository_id FROM {table} WHERE repository_id = $1 AND digest = $2");
        let exists: Option<(i64,)> = on_read!(self, pool => sqlx::query_as(&sql)
            .bind(repository_id)
            .bind(digest)
            .fetch_optional(pool)
            .await?);
        Ok(if exists.is_some() {
            DeleteOutcome::Referenced
        } else {
            DeleteOutcome::NotFound
        })
    }

    pub async fn delete_tag(&self, source: &EventSource<'_>, tag: &Tag) -> Result<bool> {
        let repository_id = source.repository_id;
        let _announce = self.changes.announce(Change::Content { repository_id });
        let now = crate::clock::now_ms();
        let done = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let gone: Option<(String,)> = sqlx::query_as(
                "DELETE FROM tags WHERE repository_id = $1 AND name = $2 RETURNING digest",
            )
            .bind(repository_id)
            .bind(tag.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((digest,)) = &gone {
                record_event!(tx, EventKind::TagDeleted, source, digest, Some(tag.as_str()), now);
            }
            tx.commit().await?;
            gone.is_some()
        });
        Ok(done)
    }

    /// Tag names after `last`, in byte order, at most `limit`.
    pub async fn tag_names(
        &self,
        repository_id: i64,
        last: &str,
        limit: i64,
    ) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT name FROM tags WHERE repository_id = $1 AND name > $2 ORDER BY name LIMIT $3",
        )
        .bind(repository_id)
        .bind(last)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(|(n,)| n).collect())
    }

    /// Manifests of a repository whose `subject` is `digest`.
    pub async fn referrers(&self, repository_id: i64, subject: &Digest) -> Result<Vec<Referrer>> {
        type Row = (String, String, i64, Option<String>, Option<String>);
        let rows: Vec<Row> = on_read!(self, pool => sqlx::query_as(
            "SELECT digest, media_type, size, artifact_type, annotations FROM manifests
             WHERE repository_id = $1 AND subject = $2 ORDER BY digest",
        )
        .bind(repository_id)
        .bind(subject.to_string())
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(
                |(digest, media_type, size, artifact_type, annotations)| Referrer {
                    digest,
                    media_type,
                    size,
                    artifact_type,
                    annotations,
                },
            )
            .collect())
    }
}

/// The store's contract, run on SQLite, or on PostgreSQL when `BERTH_TEST_POSTGRES` names
/// an admin URL (the test command runs `cargo test` both ways).
#[cfg(test)]
mod contract_tests {
    use super::*;

    fn finished(key: crate::blobs::UploadKey, version: i64) -> FinishedUpload<'static> {
        FinishedUpload {
            key,
            version,
            garbage: &[],
        }
    }

    impl MetaStore {
        /// Record a blob at a fresh location and link it.
        async fn link_blob(
            &self,
            repository_id: i64,
            d: &Digest,
            size: i64,
            now: i64,
        ) -> Result<bool> {
            let at =
                crate::blobs::BlobLocation::from_store(format!("blobs/{}", uuid::Uuid::new_v4()));
            self.record_blob(repository_id, d, size, &at, None, now)
                .await
                .map(|r| r == Recorded::Recorded)
        }
    }

    async fn open_store(dir: &Path) -> MetaStore {
        let url = match std::env::var("BERTH_TEST_POSTGRES") {
            Ok(admin) if !admin.is_empty() => {
                let db = format!("berth_meta_{}", uuid::Uuid::new_v4().simple());
                let pool = PgPool::connect(&admin).await.expect("admin connection");
                sqlx::raw_sql(&format!("CREATE DATABASE {db}"))
                    .execute(&pool)
                    .await
                    .expect("create database");
                let (base, _) = admin.rsplit_once('/').expect("admin URL has a database");
                Some(format!("{base}/{db}"))
            }
            _ => None,
        };
        let sealer = crate::secrets::Sealer::from_key(&[1; 32]);
        MetaStore::open(url.as_deref(), dir, sealer)
            .await
            .expect("open store")
    }

    #[tokio::test]
    async fn secrets_are_stored_sealed_and_plain_ones_are_sealed_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(dir.path()).await;
        store
            .ensure_account("111111111111", 1)
            .await
            .expect("account");
        let key = AccessKey {
            access_key_id: "AKIANEW".into(),
            secret_access_key: "new-secret".into(),
            account_id: "111111111111".into(),
            principal_arn: "arn:aws:iam::111111111111:root".into(),
            active: true,
        };
        store.create_access_key(&key, 1).await.expect("create key");
        // A row as a version before sealing wrote it.
        on_write!(store, pool => sqlx::query(
            "INSERT INTO access_keys
                 (access_key_id, secret_access_key, account_id, principal_arn, status, created_at)
             VALUES ('AKIAOLD', 'old-secret', '111111111111', 'arn:aws:iam::111111111111:root', 'Active', 2)",
        )
        .execute(pool)
        .await
        .expect("plain row")
        .rows_affected());
        store.seal_plaintext_secrets().await.expect("seal");
        let raw: Vec<(String,)> = on_read!(store, pool => sqlx::query_as(
            "SELECT secret_access_key FROM access_keys ORDER BY access_key_id",
        )
        .fetch_all(pool)
        .await
        .expect("raw"));
        for (v,) in &raw {
            assert!(
                v.starts_with("berth-sealed-v1:") && !v.contains("secret"),
                "{v}"
            );
        }
        let old = store
            .access_key("AKIAOLD")
            .await
            .expect("read")
            .expect("old key");
        assert_eq!(old.secret_access_key, "old-secret");
        let new = store
            .access_key("AKIANEW")
            .await
            .expect("read")
            .expect("new key");
        assert_eq!(new, key);
        let token = store
            .server_secret("t", || b"0123".to_vec(), 1)
            .await
            .expect("secret");
        assert_eq!(token, b"0123");
        let (raw,): (Vec<u8>,) = on_read!(store, pool => sqlx::query_as(
            "SELECT value FROM server_secrets WHERE name = 't'",
        )
        .fetch_one(pool)
        .await
        .expect("raw secret"));
        assert!(crate::secrets::Sealer::is_sealed(&raw));
        // Another master key cannot open them.
        let other = MetaStore {
            sealer: crate::secrets::Sealer::from_key(&[2; 32]),
            db: store.db.clone(),
            upload_writes: batch::Batcher::start(store.db.clone()),
            creates: batch::Batcher::start(store.db.clone()),
            session_cache: std::sync::Arc::new(uploads::SessionCache::new(true)),
            changes: std::sync::Arc::default(),
            exclusive: true,
        };
        assert!(other.access_key("AKIAOLD").await.is_err());
    }

    #[tokio::test]
    async fn ended_backfills_are_listed_for_ninety_days_then_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(dir.path()).await;
        let day = 24 * 3600 * 1000;
        let run = |id: &str, region: &str| BackfillRow {
            id: id.into(),
            registry: reg("111111111111"),
            destination: Destination {
                account_id: "111111111111".into(),
                region: region.into(),
            },
            status: "PREPARING".into(),
            failure_code: None,
            total: None,
            completed: 0,
            failed: 0,
            failure_codes: Vec::new(),
            started_at: day,
            ended_at: None,
        };
        for (id, region) in [("old", "eu-west-1"), ("new", "eu-west-2")] {
            let started = store
                .insert_backfill(&run(id, region), 10)
                .await
                .expect("insert");
            assert_eq!(started, BackfillStart::Started);
        }
        assert_eq!(
            store
                .insert_backfill(&run("again", "eu-west-1"), 10)
                .await
                .expect("insert"),
            BackfillStart::InProgress,
            "one unfinished run per destination region"
        );
        store
            .end_backfill("old", "COMPLETE", None, 2 * day)
            .await
            .expect("end");
        store
            .end_backfill("new", "STOPPED", None, 50 * day)
            .await
            .expect("end");
        let listed = |now: i64| {
            let store = &store;
            async move {
                let rows = store
                    .backfills(&reg("111111111111"), now - 90 * day)
                    .await
                    .expect("list");
                rows.into_iter().map(|r| r.id).collect::<Vec<_>>()
            }
        };
        assert_eq!(listed(60 * day).await.len(), 2);
        assert_eq!(
            listed(100 * day).await,
            ["new"],
            "ended 98 days before: not listed"
        );
        assert_eq!(
            store
                .prune_backfills(100 * day - 90 * day)
                .await
                .expect("prune"),
            1
        );
        assert!(store
            .backfill(&reg("111111111111"), "old")
            .await
            .expect("get")
            .is_none());
    }

    fn reg(account: &str) -> RegistryKey {
        RegistryKey {
            account_id: account.parse().expect("an account id"),
            region: "us-east-1".parse().expect("a region"),
        }
    }

    #[tokio::test]
    async fn concurrent_links_are_answered_one_by_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(dir.path()).await;
        let name: RepositoryName = "app".parse().expect("name");
        let repo = store
            .create_repository(
                &reg("111111111111"),
                &name,
                &RepositorySettings::default(),
                &[],
                1,
            )
            .await
            .expect("create")
            .expect("new");
        let (a, b, c) = (
            Digest::sha256_of(b"a"),
            Digest::sha256_of(b"b"),
            Digest::sha256_of(b"c"),
        );
        // Queued together (this runtime is single-threaded), so written as one batch; the
        // link to a repository that does not exist must fail alone.
        let (ok_a, bad, ok_c) = tokio::join!(
            store.link_blob(repo.id, &a, 1, 2),
            store.link_blob(repo.id + 1000, &b, 1, 2),
            store.link_blob(repo.id, &c, 1, 2),
        );
        ok_a.expect("link a");
        ok_c.expect("link c");
        assert!(bad.is_err(), "a link to a missing repository fails");
        for d in [&a, &c] {
            assert_eq!(
                store.linked_blob_size(repo.id, d).await.expect("size"),
                Some(1)
            );
        }
        // The same digest linked twice in one batch is one row; both copies lost to the
        // one recorded before, and are garbage now.
        let (x, y) = tokio::join!(
            store.link_blob(repo.id, &a, 1, 3),
            store.link_blob(repo.id, &a, 1, 3)
        );
        let (x, y) = (x.expect("first duplicate"), y.expect("second duplicate"));
        assert_eq!((x, y), (false, false));
        assert_eq!(store.blob_garbage(10).await.expect("garbage").len(), 2);
        // A new digest twice in one batch: exactly one copy is recorded.
        let n = Digest::sha256_of(b"n");
        let (x, y) = tokio::join!(
            store.link_blob(repo.id, &n, 1, 4),
            store.link_blob(repo.id, &n, 1, 4)
        );
        assert!(
            x.expect("x") ^ y.expect("y"),
            "one of two copies is recorded"
        );
        assert_eq!(store.blob_garbage(10).await.expect("garbage").len(), 3);
    }

    #[tokio::test]
    async fn upload_sessions_are_saved_by_version_and_forgotten_with_their_blob() {
        use crate::blobs::{BlobLocation, UploadId, UploadKey, UploadState};
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(dir.path()).await;
        let repo = store
            .create_repository(
                &reg("123456789012"),
                &"up".parse().expect("name"),
                &RepositorySettings::default(),
                &[],
                1,
            )
            .await
            .expect("create")
            .expect("new");
        let key = UploadKey {
            owner: repo.id,
            id: UploadId::new(),
        };
        let state = |b: &[u8]| UploadState::from_store(b.to_vec());
        store
            .insert_upload(key, &state(b"a"), 10)
            .await
            .expect("insert");
        let stored = store.upload(key).await.expect("read").expect("there");
        assert_eq!(stored.state, state(b"a"));
        // What the old state named becomes garbage with a save, and only with one.
        let old_tail = [BlobLocation::from_store("blobs/old-tail".into())];
        let raced_tail = [BlobLocation::from_store("blobs/raced-tail".into())];
        assert!(store
            .save_upload(key, stored.version, &state(b"b"), &old_tail, 20)
            .await
            .expect("save"));
        // A save from the same version again (a concurrent request) is refused.
        assert!(!store
            .save_upload(key, stored.version, &state(b"c"), &raced_tail, 20)
            .await
            .expect("save"));
        assert_eq!(store.blob_garbage(10).await.expect("garbage"), old_tail);
        store.forget_garbage(&old_tail[0]).await.expect("forget");
        assert_eq!(store.idle_uploads(15, 10).await.expect("idle"), vec![]);
        let idle = store.idle_uploads(21, 10).await.expect("idle");
        assert_eq!(idle.len(), 1);
        assert_eq!(idle[0].1.state, state(b"b"));
        // API parts: a short one followed by another makes a short part before the last.
        store.record_api_part(key, true).await.expect("part");
        assert!(
            !store
                .upload(key)
                .await
                .expect("read")
                .expect("there")
                .short_part_before_last
        );
        store.record_api_part(key, false).await.expect("part");
        assert!(
            store
                .upload(key)
                .await
                .expect("read")
                .expect("there")
                .short_part_before_last
        );
        let d = Digest::sha256_of(b"u");
        let at = BlobLocation::from_store("blobs/one".into());
        let now = store.upload(key).await.expect("read").expect("there");
        // A record from a state another request has replaced since records nothing.
        let stale = store
            .record_blob(
                repo.id,
                &d,
                1,
                &at,
                Some(finished(key, now.version - 1)),
                30,
            )
            .await;
        assert_eq!(stale.expect("record"), Recorded::SessionGone);
        assert_eq!(store.linked_blob(repo.id, &d).await.expect("linked"), None);
        // The objects the finished session no longer needs become garbage with it.
        let tail = [BlobLocation::from_store("blobs/last-tail".into())];
        let session = FinishedUpload {
            garbage: &tail,
            ..finished(key, now.version)
        };
        let recorded = store
            .record_blob(repo.id, &d, 1, &at, Some(session), 30)
            .await;
        assert_eq!(recorded.expect("record"), Recorded::Recorded);
        assert_eq!(store.blob_garbage(10).await.expect("garbage"), tail);
        store.forget_garbage(&tail[0]).await.expect("forget");
        assert_eq!(store.upload(key).await.expect("read"), None);
        assert_eq!(
            store.linked_blob(repo.id, &d).await.expect("linked"),
            Some((1, Some("blobs/one".into())))
        );
        // A session being discarded can no longer be saved or recorded.
        let other = UploadKey {
            owner: repo.id,
            id: UploadId::new(),
        };
        store
            .insert_upload(other, &state(b"x"), 40)
            .await
            .expect("insert");
        let v = store
            .upload(other)
            .await
            .expect("read")
            .expect("there")
            .version;
        assert!(store.begin_abort(other, v).await.expect("mark"));
        assert!(!store
            .save_upload(other, v + 1, &state(b"y"), &[], 41)
            .await
            .expect("save"));
        let elsewhere = BlobLocation::from_store("blobs/two".into());
        let d2 = Digest::sha256_of(b"v");
        let r = store
            .record_blob(
                repo.id,
                &d2,
                1,
                &elsewhere,
                Some(finished(other, v + 1)),
                42,
            )
            .await;
        assert_eq!(r.expect("record"), Recorded::SessionGone);
        assert_eq!(store.linked_blob(repo.id, &d2).await.expect("linked"), None);
        store.forget_aborted_upload(other).await.expect("forget");
        assert_eq!(store.upload(other).await.expect("read"), None);
    }

    #[tokio::test]
    async fn concurrent_creates_each_get_their_own_answer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(dir.path()).await;
        let (a, b) = (reg("111111111111"), reg("222222222222"));
        let app: RepositoryName = "app".parse().expect("name");
        let web: RepositoryName = "web".parse().expect("name");
        let plain = RepositorySettings::default();
        let immutable = RepositorySettings {
            tag_mutability: TagMutability::new(crate::mutability::Mode::Immutable, vec![])
                .expect("valid"),
            ..RepositorySettings::default()
        };
        let team = [("team".to_owned(), "x".to_owned())];
        let owner = [("owner".to_owned(), "y".to_owned())];
        // Queued together (this runtime is single-threaded), so written as one batch: one
        // name twice in one registry (the first wins, with its settings and tags), the
        // same name in another registry, and a plain create.
        let (first, second, other, web_a) = tokio::join!(
            store.create_repository(&a, &app, &immutable, &team, 1),
            store.create_repository(&a, &app, &plain, &owner, 1),
            store.create_repository(&b, &app, &plain, &owner, 1),
            store.create_repository(&a, &web, &plain, &[], 1),
        );
        let first = first.expect("first").expect("created");
        assert_eq!(
            first.settings.tag_mutability.mode(),
            crate::mutability::Mode::Immutable
        );
        assert!(second.expect("second").is_none(), "the name was taken");
        let other = other.expect("other").expect("created");
        let web_a = web_a.expect("web").expect("created");
        assert_ne!(first.id, other.id);
        assert_eq!(web_a.name.as_str(), "web");
        assert_eq!(
            store.resource_tags(first.id).await.expect("tags"),
            team.to_vec()
        );
        assert_eq!(
            store.resource_tags(other.id).await.expect("tags"),
            owner.to_vec()
        );
        assert!(store
            .resource_tags(web_a.id)
            .await
            .expect("tags")
            .is_empty());
    }

    #[tokio::test]
    async fn repositories_links_manifests_tags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(dir.path()).await;
        let a = reg("111111111111");
        let name: RepositoryName = "team/app".parse().expect("name");
        let repo = store
            .create_repository(&a, &name, &RepositorySettings::default(), &[], 1)
            .await
            .expect("create")
            .expect("new");
        assert!(store
            .create_repository(&a, &name, &RepositorySettings::default(), &[], 2)
            .await
            .expect("again")
            .is_none());
        // Same name in another account is another repository.
        let other = store
            .create_repository(
                &reg("222222222222"),
                &name,
                &RepositorySettings::default(),
                &[],
                3,
            )
            .await
            .expect("c")
            .expect("new");
        assert_ne!(other.id, repo.id);

        let layer = Digest::sha256_of(b"layer");
        assert_eq!(
            store.linked_blob_size(repo.id, &layer).await.expect("size"),
            None
        );
        store.link_blob(repo.id, &layer, 5, 4).await.expect("link");
        store
            .link_blob(repo.id, &layer, 5, 5)
            .await
            .expect("link is idempotent");
        assert_eq!(
            store.linked_blob_size(repo.id, &layer).await.expect("size"),
            Some(5)
        );
        assert_eq!(
            store
                .linked_blob_size(other.id, &layer)
                .await
                .expect("size"),
            None
        );

        let body = br#"{"x":1}"#;
        let digest = Digest::sha256_of(body);
        let missing = Digest::sha256_of(b"missing");
        let tag: Tag = "v1".parse().expect("tag");
        let mut m = NewManifest {
            digest: &digest,
            media_type: "application/vnd.oci.image.manifest.v1+json",
            body,
            artifact_type: Some("a/b"),
            subject: None,
            annotations: None,
            blobs: &[layer.clone(), missing.clone()],
            manifests: &[],
            tag: Some(&tag),
            tag_immutable: false,
            image_size: 5,
            config_media_type: None,
            now_ms: 6,
            source: EventSource {
                registry: &a,
                repository_id: repo.id,
                repository_name: name.as_str(),
                replicated: false,
            },
            scan_unless_since: None,
            signing: &[],
        };
        assert_eq!(
            store.put_manifest(repo.id, &m).await.expect("put"),
            PutManifestOutcome::MissingBlobs(vec![missing.to_string()])
        );
        assert!(store
            .manifest_by_tag(repo.id, &tag)
            .await
            .expect("get")
            .is_none());
        let blobs = [layer.clone()];
        m.blobs = &blobs;
        assert_eq!(
            store.put_manifest(repo.id, &m).await.expect("put"),
            PutManifestOutcome::Stored {
                new_image: true,
                tag_changed: true
            }
        );
        let got = store
            .manifest_by_tag(repo.id, &tag)
            .await
            .expect("get")
            .expect("found");
        assert_eq!(
            (got.digest.as_str(), &got.body[..]),
            (digest.to_string().as_str(), &body[..])
        );

        let more: Vec<Tag> = ["b", "a", "B", "c"]
            .iter()
            .map(|t| t.parse().expect("tag"))
            .collect();
        for t in &more {
            m.tag = Some(t);
            store.put_manifest(repo.id, &m).await.expect("tag");
        }
        // Byte order on both backends: uppercase sorts first.
        assert_eq!(
            store.tag_names(repo.id, "", 10).await.expect("tags"),
            ["B", "a", "b", "c", "v1"]
        );
        assert_eq!(
            store.tag_names(repo.id, "a", 2).await.expect("tags"),
            ["b", "c"]
        );

        let source = m.source;
        assert!(store.delete_tag(&source, &tag).await.expect("untag"));
        assert!(store
            .manifest_by_digest(repo.id, &digest)
            .await
            .expect("get")
            .is_some());
        assert_eq!(
            store.unlink_blob(repo.id, &layer).await.expect("unlink"),
            DeleteOutcome::Referenced,
            "a layer of a stored manifest stays linked"
        );
        assert_eq!(
            store
                .delete_manifest(&source, &digest)
                .await
                .expect("delete"),
            DeleteOutcome::Deleted
        );
        // Each change wrote its event, in order: the push, four tag moves, the
        // untag, the delete.
        let kinds: Vec<EventKind> = store
            .events_after(0, 100)
            .await
            .expect("events")
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                EventKind::ImagePushed,
                EventKind::TagMoved,
                EventKind::TagMoved,
                EventKind::TagMoved,
                EventKind::TagMoved,
                EventKind::TagDeleted,
                EventKind::ImageDeleted
            ]
        );
        assert!(
            store
                .tag_names(repo.id, "", 10)
                .await
                .expect("tags")
                .is_empty(),
            "tags cascade"
        );
        assert_eq!(
            store.unlink_blob(repo.id, &layer).await.expect("unlink"),
            DeleteOutcome::Deleted
        );
        assert_eq!(
            store.unlink_blob(repo.id, &layer).await.expect("again"),
            DeleteOutcome::NotFound
        );
    }

    #[tokio::test]
    async fn a_lease_has_one_holder_until_it_expires_and_fences_the_old_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(dir.path()).await;
        let a = store
            .take_lease("gc", "a", 1000, 2000)
            .await
            .expect("take")
            .expect("free job");
        assert!(store
            .take_lease("gc", "b", 1500, 2500)
            .await
            .expect("take")
            .is_none());
        // Renewing (or taking again) keeps the fence.
        assert!(store.renew_lease(&a, 1900, 2900).await.expect("renew"));
        let again = store.take_lease("gc", "a", 1950, 2950).await.expect("take");
        assert_eq!(again.map(|l| l.fence), Some(a.fence));
        assert!(store.advance_cursor(&a, 7, 1960).await.expect("cursor"));
        // After expiry another holder takes it, with a higher fence; the old holder
        // can neither renew nor move the cursor.
        let b = store
            .take_lease("gc", "b", 3000, 4000)
            .await
            .expect("take")
            .expect("expired");
        assert!(b.fence > a.fence);
        assert!(!store.renew_lease(&a, 3001, 4001).await.expect("renew"));
        assert!(!store.advance_cursor(&a, 9, 3002).await.expect("cursor"));
        assert_eq!(store.job_cursor("gc").await.expect("cursor"), 7);
        // Released, it is free at once.
        store.release_lease(&b, 3100, None).await.expect("release");
        assert!(store
            .take_lease("gc", "c", 3101, 4101)
            .await
            .expect("take")
            .is_some());
        let jobs = store.jobs().await.expect("jobs");
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].holder, "c");
    }

    #[tokio::test]
    async fn concurrent_takers_of_a_free_job_get_one_lease() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = std::sync::Arc::new(open_store(dir.path()).await);
        let takers: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .take_lease("scan", &format!("node{i}"), 10, 20)
                        .await
                        .expect("take")
                })
            })
            .collect();
        let mut won = 0;
        for t in takers {
            won += usize::from(t.await.expect("join").is_some());
        }
        assert_eq!(won, 1);
    }

    #[tokio::test]
    async fn links_are_per_registry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(dir.path()).await;
        let a = reg("111111111111");
        let repo = store
            .create_repository(
                &a,
                &"app".parse().expect("name"),
                &RepositorySettings::default(),
                &[],
                1,
            )
            .await
            .expect("create")
            .expect("new");
        let d = Digest::sha256_of(b"x");
        store.link_blob(repo.id, &d, 1, 3).await.expect("link");
        assert_eq!(
            store.linked_blob_size(repo.id, &d).await.expect("size"),
            Some(1)
        );
        let linking = store
            .repositories_linking(&a, &d, 5)
            .await
            .expect("linking");
        assert_eq!(linking.len(), 1);
        assert!(store
            .repositories_linking(&reg("222222222222"), &d, 5)
            .await
            .expect("l")
            .is_empty());
    }

    #[test]
    fn generated_statements() {
        assert_eq!(
            present_query("manifests", 2),
            "SELECT digest FROM manifests WHERE repository_id = $1 AND digest IN ($2, $3)"
        );
        assert!(references_copy("manifests", "manifest", 2).contains("digest IN ($3, $4)"));
        assert_eq!(
            missing_from(
                &["b".into(), "a".into(), "c".into(), "b".into()],
                vec![("a".into(),)]
            ),
            vec!["b".to_string(), "c".to_string()]
        );
    }
}
