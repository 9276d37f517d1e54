//! Creating repositories, many per statement.
//!
//! A CreateRepository is one small insert; when creates arrive together (a CI fleet, a
//! script creating hundreds), the hand-overs of SQLite's write connection would cost far
//! more than the inserts. So they go through a [`super::batch::Batcher`]: one multi-row
//! insert per batch, plus one for resource tags when any create carries them.

use std::collections::HashMap;

use std::sync::Arc;

use super::batch::{cached_sql, value_rows, BatchWrite};
use super::{Db, RegistryKey, RepositorySettings, Result};

/// A repository to create.
pub(super) struct NewRepository {
    pub registry: RegistryKey,
    pub name: String,
    pub settings: RepositorySettings,
    pub tags: Vec<(String, String)>,
    pub now_ms: i64,
}

/// What an insert returns of each new row: (id, account, region, name). The rest of
/// the row is what the request asked for.
type InsertedRow = (i64, String, String, String);

/// Tag rows per statement: three bind parameters each.
const TAGS_PER_STATEMENT: usize = 1000;

impl BatchWrite for NewRepository {
    /// The new repository's id; `None` if the name was taken.
    type Output = Option<i64>;
    /// Nine bind parameters each: far below SQLite's and PostgreSQL's limits.
    const MAX_BATCH: usize = 500;

    async fn write(db: &Db, batch: &[NewRepository]) -> Result<Vec<Option<i64>>> {
        let insert = insert_sql(batch.len());
        let any_tags = batch.iter().any(|n| !n.tags.is_empty());
        let inserted: Vec<InsertedRow> = on_write!(db db, pool => {
            let mut q = sqlx::query_as(&insert);
            for n in batch {
                q = q
                    .bind(&n.registry.account_id)
                    .bind(&n.registry.region)
                    .bind(&n.name)
                    .bind(n.now_ms)
                    .bind(n.settings.tag_mutability.mode().as_str())
                    .bind(n.settings.tag_mutability.exclusions_json())
                    .bind(i64::from(n.settings.scan_on_push))
                    .bind(&n.settings.encryption_type)
                    .bind(n.settings.kms_key.as_deref());
            }
            if any_tags {
                let mut tx = pool.begin().await?;
                let rows: Vec<InsertedRow> = q.fetch_all(&mut *tx).await?;
                let tags = tag_rows(batch, &owners(&rows));
                for chunk in tags.chunks(TAGS_PER_STATEMENT) {
                    let sql = format!(
                        "INSERT INTO repository_tags (repository_id, key, value) VALUES {}",
                        value_rows(chunk.len(), 3)
                    );
                    let mut t = sqlx::query(&sql);
                    for (id, k, v) in chunk {
                        t = t.bind(*id).bind(*k).bind(*v);
                    }
                    t.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                rows
            } else {
                // One statement is its own transaction: one round trip to the writer.
                q.fetch_all(pool).await?
            }
        });
        Ok(assign(batch, inserted))
    }
}

fn insert_sql(rows: usize) -> Arc<str> {
    cached_sql("create repositories", rows, || {
        format!(
            "INSERT INTO repositories (account_id, region, name, created_at, image_tag_mutability,
                 mutability_exclusions, scan_on_push, encryption_type, kms_key)
             VALUES {}
             ON CONFLICT (account_id, region, name) DO NOTHING
             RETURNING id, account_id, region, name",
            value_rows(rows, 9)
        )
    })
}

/// Who gets which inserted row: the first request for each name. A later request in
/// the same batch for the same name found it taken.
fn assign(batch: &[NewRepository], inserted: Vec<InsertedRow>) -> Vec<Option<i64>> {
    let mut by_name: HashMap<(&str, &str, &str), i64> = owners(&inserted);
    batch
        .iter()
        .map(|n| {
            by_name.remove(&(
                n.registry.account_id.as_str(),
                n.registry.region.as_str(),
                n.name.as_str(),
            ))
        })
        .collect()
}

/// Repository ids of the inserted rows, by (account, region, name).
fn owners(rows: &[InsertedRow]) -> HashMap<(&str, &str, &str), i64> {
    rows.iter()
        .map(|r| ((r.1.as_str(), r.2.as_str(), r.3.as_str()), r.0))
        .collect()
}

/// (repository id, key, value) for the tags of each request whose repository was
/// inserted; each name's first request is the one that inserted it.
fn tag_rows<'a>(
    batch: &'a [NewRepository],
    owners: &HashMap<(&str, &str, &str), i64>,
) -> Vec<(i64, &'a str, &'a str)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for n in batch {
        let key = (
            n.registry.account_id.as_str(),
            n.registry.region.as_str(),
            n.name.as_str(),
        );
        let Some(&id) = owners.get(&key) else {
            continue;
        };
        if !seen.insert(key) {
            continue;
        }
        out.extend(n.tags.iter().map(|(k, v)| (id, k.as_str(), v.as_str())));
    }
    out
}
