//! Queries behind vulnerability data: imports written under a new generation and
//! switched in at the end (see migrations/*/0009_vulnerabilities.sql), the coverage
//! and candidate records a scan reads.

use sqlx::QueryBuilder;

use super::changes::Change;
use super::outbox::{EventKind, EventSource};
use super::{Db, Error, MetaStore, RegistryKey, Result};
use crate::vulndb::osv::Advisory;
use crate::vulndb::{Candidate, Cvss3, Record, Severity};

/// Rows per multi-row INSERT: few round trips, far below either engine's bind limit.
const ROWS_PER_INSERT: usize = 200;
/// Package names per lookup.
const NAMES_PER_QUERY: usize = 400;

/// A source as `berth admin vulndb status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VulnSource {
    pub source: String,
    pub records: i64,
    pub updated_at: i64,
    pub imported_at: i64,
    pub ecosystems: Vec<String>,
}

/// What one import publishes for one source.
#[derive(Debug, Clone)]
pub struct SourceImport {
    pub source: String,
    pub gen: i64,
    pub records: i64,
    pub updated_at: i64,
    /// (ecosystem key, newest `modified` among its records)
    pub ecosystems: Vec<(String, i64)>,
}

/// Where the current data for one ecosystem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    pub gen: i64,
    pub updated_at: i64,
}

impl MetaStore {
    /// Write records under their generation (not visible to scans until published).
    pub async fn vulndb_insert(&self, batch: &[(i64, Advisory)]) -> Result<()> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            for chunk in batch.chunks(ROWS_PER_INSERT) {
                let mut q = QueryBuilder::new(
                    "INSERT INTO vuln_records (gen, id, name, description, uri, severity, cvss3_vector, cvss3_score) ",
                );
                q.push_values(chunk, |mut row, (gen, a)| {
                    row.push_bind(*gen)
                        .push_bind(&a.record.id)
                        .push_bind(&a.record.name)
                        .push_bind(&a.record.description)
                        .push_bind(&a.record.uri)
                        .push_bind(a.record.severity.as_str())
                        .push_bind(a.record.cvss3.as_ref().map(|c| c.vector.as_str()))
                        .push_bind(a.record.cvss3.as_ref().map(|c| i64::from(c.score)));
                });
                q.push(" ON CONFLICT DO NOTHING");
                q.build().execute(&mut *tx).await?;
            }
            let affected: Vec<(i64, &str, &str, &str, String)> = batch
                .iter()
                .flat_map(|(gen, a)| {
                    a.affected.iter().map(move |x| {
                        let spec = serde_json::to_string(&x.spec).unwrap_or_default();
                        (*gen, x.ecosystem.as_str(), x.package.as_str(), a.record.id.as_str(), spec)
                    })
                })
                .collect();
            for chunk in affected.chunks(ROWS_PER_INSERT) {
                let mut q = QueryBuilder::new(
                    "INSERT INTO vuln_affected (gen, ecosystem, package, record_id, spec) ",
                );
                q.push_values(chunk, |mut row, (gen, eco, pkg, id, spec)| {
                    row.push_bind(*gen).push_bind(*eco).push_bind(*pkg).push_bind(*id).push_bind(spec.as_str());
                });
                q.push(" ON CONFLICT DO NOTHING");
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Make imported generations current, all in one transaction, then remove the rows
    /// no source names any more (earlier generations, and those of interrupted imports).
    pub async fn vulndb_publish(&self, sources: &[SourceImport], now_ms: i64) -> Result<()> {
        let _events = self.changes.announce(Change::Events);
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            for s in sources {
                sqlx::query(
                    "INSERT INTO vuln_sources (source, gen, records, updated_at, imported_at)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (source) DO UPDATE SET gen = excluded.gen, records = excluded.records,
                         updated_at = excluded.updated_at, imported_at = excluded.imported_at",
                )
                .bind(&s.source)
                .bind(s.gen)
                .bind(s.records)
                .bind(s.updated_at)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM vuln_ecosystems WHERE source = $1")
                    .bind(&s.source)
                    .execute(&mut *tx)
                    .await?;
                for (eco, updated_at) in &s.ecosystems {
                    sqlx::query(
                        "INSERT INTO vuln_ecosystems (ecosystem, source, gen, updated_at) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (ecosystem) DO UPDATE SET source = excluded.source, gen = excluded.gen,
                             updated_at = excluded.updated_at",
                    )
                    .bind(eco)
                    .bind(&s.source)
                    .bind(s.gen)
                    .bind(updated_at)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            // Images enhanced scanning monitors are matched again, by the scan job;
            // in this transaction, so no refresh goes unnoticed. Scans in progress
            // too: one may have read the data this replaces (the job handles events
            // in order, so the rescan follows its outcome, and skips all but ACTIVE).
            let monitored: Vec<(i64, String, String, String, String)> = sqlx::query_as(
                "SELECT m.repository_id, r.account_id, r.region, r.name, m.digest
                 FROM manifests m JOIN repositories r ON r.id = m.repository_id
                 WHERE m.scan_status IN ('ACTIVE', 'IN_PROGRESS') ORDER BY m.repository_id, m.digest",
            )
            .fetch_all(&mut *tx)
            .await?;
            for (repository_id, account_id, region, name, digest) in &monitored {
                let registry = RegistryKey::from_store(account_id.clone(), region.clone());
                let source = EventSource { registry: &registry, repository_id: *repository_id, repository_name: name , replicated: false};
                record_event!(tx, EventKind::RescanRequested, &source, digest, None::<&str>, now_ms);
            }
            tx.commit().await?;
            for table in ["vuln_records", "vuln_affected"] {
                sqlx::query(&format!(
                    "DELETE FROM {table} WHERE gen NOT IN (SELECT gen FROM vuln_sources)"
                ))
                .execute(pool)
                .await?;
            }
        });
        Ok(())
    }

    pub async fn vulndb_sources(&self) -> Result<Vec<VulnSource>> {
        let rows: Vec<(String, i64, i64, i64)> = on_read!(self, pool => sqlx::query_as(
            "SELECT source, records, updated_at, imported_at FROM vuln_sources ORDER BY source",
        )
        .fetch_all(pool)
        .await?);
        let ecos: Vec<(String, String)> = on_read!(self, pool => sqlx::query_as(
            "SELECT source, ecosystem FROM vuln_ecosystems ORDER BY ecosystem",
        )
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(|(source, records, updated_at, imported_at)| VulnSource {
                ecosystems: ecos
                    .iter()
                    .filter(|(s, _)| *s == source)
                    .map(|(_, e)| e.clone())
                    .collect(),
                source,
                records,
                updated_at,
                imported_at,
            })
            .collect())
    }

    /// Whether data for an ecosystem is loaded, and which.
    pub async fn vulndb_coverage(&self, ecosystem: &str) -> Result<Option<Coverage>> {
        let row: Option<(i64, i64)> = on_read!(self, pool => sqlx::query_as(
            "SELECT gen, updated_at FROM vuln_ecosystems WHERE ecosystem = $1",
        )
        .bind(ecosystem)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|(gen, updated_at)| Coverage { gen, updated_at }))
    }

    /// The records of `coverage`'s generation that name any of `packages` in `ecosystem`.
    pub async fn vulndb_candidates(
        &self,
        ecosystem: &str,
        coverage: Coverage,
        packages: &[&str],
    ) -> Result<Vec<Candidate>> {
        type Row = (
            String,
            String,
            String,
            String,
            String,
            String,
            String,
            Option<String>,
            Option<i64>,
        );
        let mut out = Vec::new();
        for chunk in packages.chunks(NAMES_PER_QUERY) {
            let rows: Vec<Row> = on_read!(self, pool => {
                let mut q = QueryBuilder::new(
                    "SELECT a.package, a.spec, r.id, r.name, r.description, r.uri, r.severity,
                            r.cvss3_vector, r.cvss3_score
                     FROM vuln_affected a JOIN vuln_records r ON r.gen = a.gen AND r.id = a.record_id
                     WHERE a.gen = ",
                );
                q.push_bind(coverage.gen).push(" AND a.ecosystem = ").push_bind(ecosystem);
                q.push(" AND a.package IN (");
                let mut names = q.separated(", ");
                for p in chunk {
                    names.push_bind(*p);
                }
                names.push_unseparated(")");
                q.build_query_as().fetch_all(pool).await?
            });
            for (package, spec, id, name, description, uri, severity, vector, score) in rows {
                let spec = serde_json::from_str(&spec)
                    .map_err(|e| Error::Backend(format!("stored ranges of {id}: {e}")))?;
                let cvss3 = match (vector, score.and_then(|s| u8::try_from(s).ok())) {
                    (Some(vector), Some(score)) => Some(Cvss3 { vector, score }),
                    _ => None,
                };
                let severity = Severity::parse(&severity)
                    .ok_or_else(|| Error::Backend(format!("stored severity {severity}")))?;
                out.push(Candidate {
                    package,
                    spec,
                    record: Record {
                        id,
                        name,
                        description,
                        uri,
                        severity,
                        cvss3,
                    },
                });
            }
        }
        Ok(out)
    }
}
