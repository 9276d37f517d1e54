//! Many small writes through one hand-over of the write connection.
//!
//! On SQLite every write goes through one connection, and handing it over (a round trip
//! to its worker thread) costs far more than a one-row insert. Writes that arrive
//! together are therefore queued to one task, which writes whatever accumulated while
//! the previous batch was being written, with multi-row statements. A request alone
//! waits for a batch of one, as if it were written directly.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{mpsc, oneshot};

use super::{Db, Error, Result};

/// One kind of write that can be batched.
pub(super) trait BatchWrite: Sized + Send + Sync + 'static {
    /// What each writer gets back.
    type Output: Send + 'static;
    /// Most items written together.
    const MAX_BATCH: usize;
    /// Write all of `batch` at once: one output per item, in order. If it fails, each
    /// item is written again alone, so one bad item fails only its own request.
    fn write(db: &Db, batch: &[Self]) -> impl Future<Output = Result<Vec<Self::Output>>> + Send;
}

struct Pending<T: BatchWrite> {
    item: T,
    done: oneshot::Sender<Result<T::Output>>,
}

/// The queue's sending side; the writing task ends when it is dropped.
pub(super) struct Batcher<T: BatchWrite>(mpsc::UnboundedSender<Pending<T>>);

impl<T: BatchWrite> Batcher<T> {
    /// Start the task that writes batches through `db`.
    pub(super) fn start(db: Db) -> Batcher<T> {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(db, rx));
        Batcher(tx)
    }

    /// Queue `item` and wait until its batch is written.
    pub(super) async fn write(&self, item: T) -> Result<T::Output> {
        let stopped = || Error::Backend("the batch writer has stopped".into());
        let (done, result) = oneshot::channel();
        self.0.send(Pending { item, done }).map_err(|_| stopped())?;
        result.await.unwrap_or_else(|_| Err(stopped()))
    }
}

async fn write_batches<T: BatchWrite>(db: Db, mut rx: mpsc::UnboundedReceiver<Pending<T>>) {
    let mut pending = Vec::new();
    while rx.recv_many(&mut pending, T::MAX_BATCH).await > 0 {
        // Requests being handled on the other workers right now would miss this batch
        // and wait for the next one: give them one turn of the scheduler to join.
        tokio::task::yield_now().await;
        while pending.len() < T::MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => pending.push(p),
                Err(_) => break,
            }
        }
        let (items, dones): (Vec<T>, Vec<_>) = pending.drain(..).map(|p| (p.item, p.done)).unzip();
        match T::write(&db, &items).await {
            Ok(outputs) => {
                for (done, output) in dones.into_iter().zip(outputs) {
                    // A requester that went away does not need its answer.
                    let _ = done.send(Ok(output));
                }
            }
            Err(e) if items.len() == 1 => {
                for done in dones {
                    let _ = done.send(Err(e.clone()));
                }
            }
            Err(_) => {
                for (item, done) in items.iter().zip(dones) {
                    let result = T::write(&db, std::slice::from_ref(item)).await;
                    let _ = done.send(result.and_then(single));
                }
            }
        }
    }
}

/// The output of a batch of one.
fn single<O>(outputs: Vec<O>) -> Result<O> {
    outputs
        .into_iter()
        .next()
        .ok_or_else(|| Error::Backend("a batch write returned no output".into()))
}

/// Statement texts by (kind, rows).
type SqlCache = HashMap<(&'static str, usize), Arc<str>>;

/// Batches up to this size reuse their statement text.
const CACHED_ROWS: usize = 64;

/// The text of the `kind` statement for `rows` rows, built by `build` once per size
/// (for small batches, the common case); larger ones are built each time.
pub(super) fn cached_sql(
    kind: &'static str,
    rows: usize,
    build: impl FnOnce() -> String,
) -> Arc<str> {
    static CACHE: OnceLock<Mutex<SqlCache>> = OnceLock::new();
    if rows > CACHED_ROWS {
        return build().into();
    }
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(sql) = cache
        .lock()
        .ok()
        .and_then(|c| c.get(&(kind, rows)).cloned())
    {
        return sql;
    }
    let sql: Arc<str> = build().into();
    if let Ok(mut c) = cache.lock() {
        c.insert((kind, rows), sql.clone());
    }
    sql
}

/// `($1, $2, $3), ($4, $5, $6), ...` for `rows` rows of `columns` values.
pub(super) fn value_rows(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::value_rows;

    #[test]
    fn numbered_rows() {
        assert_eq!(value_rows(1, 3), "($1, $2, $3)");
        assert_eq!(value_rows(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(value_rows(2, 2), "($1, $2), ($3, $4)");
    }
}
