//! Telling a running server that another process (`berth admin ...`) changed metadata
//! it may have cached: the admin command bumps a counter in the metadata store; the
//! server polls it, drops its caches when it moves, and acknowledges the value.

use super::{Result, Service};

const EXTERNAL_WRITES: &str = "external_writes";
const EXTERNAL_WRITES_SEEN: &str = "external_writes_seen";

impl Service {
    /// After changing or removing rows a server may cache: returns the value a server
    /// acknowledges once it has dropped its caches.
    pub async fn announce_external_write(&self) -> Result<i64> {
        Ok(self.meta.bump_signal(EXTERNAL_WRITES).await?)
    }

    /// The latest announcement a server has acted on.
    pub async fn external_writes_seen(&self) -> Result<i64> {
        Ok(self.meta.signal(EXTERNAL_WRITES_SEEN).await?)
    }

    /// The server's side: if an announcement arrived since `seen`, drop every cache
    /// and acknowledge it.
    pub async fn absorb_external_writes(&self, seen: &mut Option<i64>) -> Result<()> {
        let now = self.meta.signal(EXTERNAL_WRITES).await?;
        if *seen != Some(now) {
            if seen.is_some() {
                self.meta
                    .changes()
                    .publish(&crate::meta::Change::Everything);
            }
            self.meta.set_signal(EXTERNAL_WRITES_SEEN, now).await?;
            *seen = Some(now);
        }
        Ok(())
    }
}
