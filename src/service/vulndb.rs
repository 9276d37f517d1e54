//! Importing vulnerability data (`berth admin vulndb import`): records are read on a
//! blocking thread and written in batches under a new generation per source, which
//! becomes current in one transaction at the end (meta/vulndb.rs). A refresh is the
//! same import again: scans see the old data until the new is complete.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use super::{Error, Result, Service};
use crate::clock;
use crate::meta::SourceImport;
use crate::vulndb::ecosystem;
use crate::vulndb::import::{self, ImportError};
use crate::vulndb::osv::{Advisory, Affected};

/// Records per batch written.
const BATCH: usize = 1000;

/// What an import loaded, per source.
#[derive(Debug, Default)]
struct Tally {
    gen: i64,
    records: i64,
    updated_at: i64,
    ecosystems: BTreeMap<String, i64>,
}

impl Service {
    /// Import OSV data from `paths` (all.zip dumps, directories, record files); the
    /// sources it covered, as published.
    pub async fn import_vulndb(&self, paths: Vec<PathBuf>) -> Result<Vec<SourceImport>> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Advisory>>(4);
        let reader = tokio::task::spawn_blocking(move || {
            let mut batch = Vec::with_capacity(BATCH);
            let mut each = |a: Advisory| {
                batch.push(a);
                if batch.len() < BATCH {
                    return true;
                }
                tx.blocking_send(std::mem::take(&mut batch)).is_ok()
            };
            import::read_all(&paths, &mut each)?;
            if !batch.is_empty() {
                let _ = tx.blocking_send(batch);
            }
            Ok::<(), ImportError>(())
        });
        let base_gen = clock::now_ms().saturating_mul(1000);
        let mut tallies: HashMap<String, Tally> = HashMap::new();
        crate::observe::progress::phase("vulndb: advisories loaded", None);
        while let Some(batch) = rx.recv().await {
            crate::observe::progress::advance(batch.len() as u64);
            let mut rows = Vec::with_capacity(batch.len());
            for advisory in batch {
                for (source, a) in split_by_source(advisory) {
                    let next_gen = base_gen + tallies.len() as i64;
                    let t = tallies.entry(source).or_insert_with(|| Tally {
                        gen: next_gen,
                        ..Tally::default()
                    });
                    t.records += 1;
                    t.updated_at = t.updated_at.max(a.modified_ms);
                    for x in &a.affected {
                        let e = t.ecosystems.entry(x.ecosystem.clone()).or_insert(0);
                        *e = (*e).max(a.modified_ms);
                    }
                    rows.push((t.gen, a));
                }
            }
            self.meta.vulndb_insert(&rows).await?;
        }
        reader
            .await
            .map_err(|e| Error::Internal(format!("import task: {e}")))?
            .map_err(|e| Error::InvalidParameter(e.to_string()))?;
        let mut published: Vec<SourceImport> = tallies
            .into_iter()
            .map(|(source, t)| SourceImport {
                source,
                gen: t.gen,
                records: t.records,
                updated_at: t.updated_at,
                ecosystems: t.ecosystems.into_iter().collect(),
            })
            .collect();
        published.sort_by(|a, b| a.source.cmp(&b.source));
        self.meta
            .vulndb_publish(&published, clock::now_ms())
            .await?;
        Ok(published)
    }
}

/// A record once per source it names packages of, each copy with that source's
/// packages only, entries for one package merged (a record may list one package twice).
fn split_by_source(a: Advisory) -> Vec<(String, Advisory)> {
    let mut by_source: BTreeMap<String, BTreeMap<(String, String), Affected>> = BTreeMap::new();
    for x in &a.affected {
        let merged = by_source
            .entry(ecosystem::source(&x.ecosystem).to_owned())
            .or_default()
            .entry((x.ecosystem.clone(), x.package.clone()))
            .or_insert_with(|| Affected {
                spec: Default::default(),
                ..x.clone()
            });
        merged.spec.ranges.extend(x.spec.ranges.iter().cloned());
        merged.spec.versions.extend(x.spec.versions.iter().cloned());
    }
    by_source
        .into_iter()
        .map(|(source, affected)| {
            let copy = Advisory {
                affected: affected.into_values().collect(),
                ..a.clone()
            };
            (source, copy)
        })
        .collect()
}
