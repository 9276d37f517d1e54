//! Progress of long work, for a person at a terminal: the work names its phase and
//! counts what it has done; `berth admin` draws that on stderr while it waits, when
//! stderr is a terminal (piped, it stays quiet). One phase per process at a time:
//! admin commands run one job; in a server nobody draws and the counts cost an add.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

static PHASE: Mutex<&'static str> = Mutex::new("");
static DONE: AtomicU64 = AtomicU64::new(0);
/// 0: not known.
static TOTAL: AtomicU64 = AtomicU64::new(0);

/// Start a phase (`"gc: unused blobs"`), with its size if known.
pub fn phase(name: &'static str, total: Option<u64>) {
    if let Ok(mut p) = PHASE.lock() {
        *p = name;
    }
    DONE.store(0, Ordering::Relaxed);
    TOTAL.store(total.unwrap_or(0), Ordering::Relaxed);
}

/// `n` more things done in the current phase.
pub fn advance(n: u64) {
    DONE.fetch_add(n, Ordering::Relaxed);
}

/// The line to show: `gc: unused blobs 1200`, `lifecycle: repositories 3/40`.
pub fn line() -> Option<String> {
    let phase = *PHASE.lock().ok()?;
    if phase.is_empty() {
        return None;
    }
    let done = DONE.load(Ordering::Relaxed);
    Some(match TOTAL.load(Ordering::Relaxed) {
        0 => format!("{phase} {done}"),
        total => format!("{phase} {done}/{total}"),
    })
}
