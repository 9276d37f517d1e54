//! Berth: an Amazon ECR you run yourself.
//!
//! `berth serve` runs the registry; `berth admin ...` administers a data directory.
//! Module map: `cli` (commands) → `http` (server, host routing) → `registry` (OCI front
//! end) and `api` (ECR, IAM/STS) → `service` (operation layer) → `meta`
//! (SQLite/PostgreSQL) and `blobs` (filesystem), with `oci` (digests, names, manifests)
//! shared by all. See docs/architecture.md. A library, so that fuzz targets reach the
//! parsers; the binary is `src/main.rs`.

pub mod api;
pub mod audit;
pub mod auth;
pub mod aws;
pub mod blobs;
pub mod bootstrap;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod fsutil;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod iam;
pub mod jobs;
pub mod lifecycle;
pub mod meta;
pub mod mutability;
pub mod notify;
pub mod observe;
pub mod oci;
pub mod peer;
pub mod public_url;
pub mod registry;
pub mod resource_tags;
pub mod scan;
pub mod scan_rules;
pub mod secrets;
pub mod server_record;
pub mod service;
pub mod signing;
pub mod storage_class;
pub mod upstream;
pub mod vulndb;

#[cfg(test)]
mod module_graph_tests;
