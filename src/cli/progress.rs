//! Long admin commands draw their progress on stderr, when stderr is a terminal: one
//! line, redrawn a few times a second, cleared at the end. Piped, nothing is drawn.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::time::Duration;

const REDRAW: Duration = Duration::from_millis(200);

/// Wait for `work`, showing its progress (observe::progress) meanwhile.
pub async fn shown<T>(work: impl Future<Output = T>) -> T {
    if !std::io::stderr().is_terminal() {
        return work.await;
    }
    let drawer = tokio::spawn(async {
        let mut ticks = tokio::time::interval(REDRAW);
        loop {
            ticks.tick().await;
            if let Some(line) = crate::observe::progress::line() {
                let mut err = std::io::stderr();
                // Carriage return and "erase line": the line is redrawn in place.
                let _ = write!(err, "\r\x1b[2K{line}");
                let _ = err.flush();
            }
        }
    });
    let out = work.await;
    drawer.abort();
    // The last state is drawn once, however quick the work was, then cleared.
    let mut err = std::io::stderr();
    if let Some(line) = crate::observe::progress::line() {
        let _ = write!(err, "\r\x1b[2K{line}");
    }
    let _ = write!(err, "\r\x1b[2K");
    let _ = err.flush();
    out
}
