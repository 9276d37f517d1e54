//! Schema migrations, embedded in the binary and applied at start.
//!
//! Each backend has its own numbered files under `migrations/<backend>/`, kept in step:
//! the same tables and columns, only type names differ. A migration runs inside a
//! transaction together with the row that records it.

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "registry",
        sql: include_str!("../../migrations/sqlite/0001_registry.sql"),
    },
    Migration {
        version: 2,
        name: "ecr",
        sql: include_str!("../../migrations/sqlite/0002_ecr.sql"),
    },
    Migration {
        version: 3,
        name: "iam",
        sql: include_str!("../../migrations/sqlite/0003_iam.sql"),
    },
    Migration {
        version: 4,
        name: "governance",
        sql: include_str!("../../migrations/sqlite/0004_governance.sql"),
    },
    Migration {
        version: 5,
        name: "scanning",
        sql: include_str!("../../migrations/sqlite/0005_scanning.sql"),
    },
    Migration {
        version: 6,
        name: "jobs",
        sql: include_str!("../../migrations/sqlite/0006_jobs.sql"),
    },
    Migration {
        version: 7,
        name: "blob_locations",
        sql: include_str!("../../migrations/sqlite/0007_blob_locations.sql"),
    },
    Migration {
        version: 8,
        name: "lean_upload_sessions",
        sql: include_str!("../../migrations/sqlite/0008_lean_upload_sessions.sql"),
    },
    Migration {
        version: 9,
        name: "vulnerabilities",
        sql: include_str!("../../migrations/sqlite/0009_vulnerabilities.sql"),
    },
    Migration {
        version: 10,
        name: "scan_inventories",
        sql: include_str!("../../migrations/sqlite/0010_scan_inventories.sql"),
    },
    Migration {
        version: 11,
        name: "secrets_manager",
        sql: include_str!("../../migrations/sqlite/0011_secrets_manager.sql"),
    },
    Migration {
        version: 12,
        name: "pull_through_cache",
        sql: include_str!("../../migrations/sqlite/0012_pull_through_cache.sql"),
    },
    Migration {
        version: 13,
        name: "replication",
        sql: include_str!("../../migrations/sqlite/0013_replication.sql"),
    },
    Migration {
        version: 14,
        name: "signing",
        sql: include_str!("../../migrations/sqlite/0014_signing.sql"),
    },
    Migration {
        version: 15,
        name: "remote_replication",
        sql: include_str!("../../migrations/sqlite/0015_remote_replication.sql"),
    },
    Migration {
        version: 16,
        name: "audit",
        sql: include_str!("../../migrations/sqlite/0016_audit.sql"),
    },
    Migration {
        version: 17,
        name: "login_profiles",
        sql: include_str!("../../migrations/sqlite/0017_login_profiles.sql"),
    },
    Migration {
        version: 18,
        name: "usage",
        sql: include_str!("../../migrations/sqlite/0018_usage.sql"),
    },
];

pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "registry",
        sql: include_str!("../../migrations/postgres/0001_registry.sql"),
    },
    Migration {
        version: 2,
        name: "ecr",
        sql: include_str!("../../migrations/postgres/0002_ecr.sql"),
    },
    Migration {
        version: 3,
        name: "iam",
        sql: include_str!("../../migrations/postgres/0003_iam.sql"),
    },
    Migration {
        version: 4,
        name: "governance",
        sql: include_str!("../../migrations/postgres/0004_governance.sql"),
    },
    Migration {
        version: 5,
        name: "scanning",
        sql: include_str!("../../migrations/postgres/0005_scanning.sql"),
    },
    Migration {
        version: 6,
        name: "jobs",
        sql: include_str!("../../migrations/postgres/0006_jobs.sql"),
    },
    Migration {
        version: 7,
        name: "blob_locations",
        sql: include_str!("../../migrations/postgres/0007_blob_locations.sql"),
    },
    Migration {
        version: 8,
        name: "lean_upload_sessions",
        sql: include_str!("../../migrations/postgres/0008_lean_upload_sessions.sql"),
    },
    Migration {
        version: 9,
        name: "vulnerabilities",
        sql: include_str!("../../migrations/postgres/0009_vulnerabilities.sql"),
    },
    Migration {
        version: 10,
        name: "scan_inventories",
        sql: include_str!("../../migrations/postgres/0010_scan_inventories.sql"),
    },
    Migration {
        version: 11,
        name: "secrets_manager",
        sql: include_str!("../../migrations/postgres/0011_secrets_manager.sql"),
    },
    Migration {
        version: 12,
        name: "pull_through_cache",
        sql: include_str!("../../migrations/postgres/0012_pull_through_cache.sql"),
    },
    Migration {
        version: 13,
        name: "replication",
        sql: include_str!("../../migrations/postgres/0013_replication.sql"),
    },
    Migration {
        version: 14,
        name: "signing",
        sql: include_str!("../../migrations/postgres/0014_signing.sql"),
    },
    Migration {
        version: 15,
        name: "remote_replication",
        sql: include_str!("../../migrations/postgres/0015_remote_replication.sql"),
    },
    Migration {
        version: 16,
        name: "audit",
        sql: include_str!("../../migrations/postgres/0016_audit.sql"),
    },
    Migration {
        version: 17,
        name: "login_profiles",
        sql: include_str!("../../migrations/postgres/0017_login_profiles.sql"),
    },
    Migration {
        version: 18,
        name: "usage",
        sql: include_str!("../../migrations/postgres/0018_usage.sql"),
    },
];

/// The table that records which migrations ran (same text on both backends).
pub const BOOKKEEPING_TABLE: &str = "CREATE TABLE IF NOT EXISTS berth_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";
