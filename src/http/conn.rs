//! One TCP connection: its socket wrapped to see activity, and the watch that closes it
//! when it idles — before its first request and while a request's head is arriving (the
//! header timeout), or between requests (the idle timeout). A request in flight keeps it
//! open; its body has its own timeout. (hyper's own header timer is off: it would run
//! from the end of the previous response, cutting every idle period to the header
//! timeout.)

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Connection timeouts (`serve`'s `--header-timeout`, `--idle-timeout`, `--body-timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub header: Duration,
    pub idle: Duration,
    pub body: Duration,
}

/// What a connection did lately, shared by its socket, its requests and its watch.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    /// Milliseconds after `start` of the last byte read or written.
    last_ms: AtomicU64,
    /// Milliseconds after `start` (plus one; 0: none) of the first byte of a request
    /// head not yet complete.
    head_ms: AtomicU64,
    in_flight: AtomicUsize,
    requests: AtomicU64,
}

/// No head is arriving.
const NO_HEAD: u64 = 0;

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            head_ms: AtomicU64::new(NO_HEAD),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Bytes arrived: with no request in flight, they begin the next request's head.
    fn read_some(&self) {
        let now = self.now_ms();
        self.last_ms.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let _ = self.head_ms.compare_exchange(
                NO_HEAD,
                now + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    /// A request began; the guard marks its end (when its response is sent or dropped).
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_ms.store(NO_HEAD, Ordering::Relaxed);
        self.touch();
        InFlight(self.clone())
    }

    /// When the connection will have idled too long, as things stand: `None` while a
    /// request is in flight.
    fn deadline(&self, header: Duration, idle: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let head = self.head_ms.load(Ordering::Relaxed);
        if head != NO_HEAD {
            return Some(self.at(head - 1) + header);
        }
        let allowed = if self.requests.load(Ordering::Relaxed) == 0 {
            header
        } else {
            idle
        };
        Some(self.at(self.last_ms.load(Ordering::Relaxed)) + allowed)
    }

    /// Resolves when the connection has idled too long: no request in flight, and no
    /// byte for `header` before the first request or `idle` after one, or a head
    /// still incomplete `header` after its first byte.
    pub async fn idled(&self, header: Duration, idle: Duration) {
        let recheck = header.min(idle).min(Duration::from_secs(1));
        loop {
            let now = Instant::now();
            match self.deadline(header, idle) {
                Some(deadline) if now >= deadline => return,
                Some(deadline) => tokio::time::sleep_until(deadline.max(now + recheck / 4)).await,
                None => tokio::time::sleep_until(now + recheck).await,
            }
        }
    }
}

/// Marks a request in flight until dropped.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket that reports every byte it moves to its connection's [`Activity`].
pub struct WatchedIo<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> WatchedIo<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> WatchedIo<T> {
        WatchedIo { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WatchedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read_some();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idles_only_without_requests_in_flight() {
        let a = Activity::new();
        let header = Duration::from_secs(30);
        let idle = Duration::from_secs(90);
        let t0 = Instant::now();
        a.idled(header, idle).await;
        assert_eq!(
            t0.elapsed(),
            header,
            "no request at all: the header timeout"
        );
        let req = a.request();
        let waiting = tokio::spawn({
            let a = a.clone();
            async move { a.idled(header, idle).await }
        });
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(
            !waiting.is_finished(),
            "a request in flight keeps the connection"
        );
        let ended = Instant::now();
        drop(req);
        waiting.await.expect("watch");
        assert!(ended.elapsed() >= idle, "then the idle timeout");
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_that_keeps_arriving_slowly_gets_the_header_timeout() {
        let a = Activity::new();
        let (header, idle) = (Duration::from_secs(30), Duration::from_secs(90));
        drop(a.request());
        tokio::time::sleep(Duration::from_secs(10)).await;
        let t0 = Instant::now();
        a.read_some();
        let waiting = tokio::spawn({
            let a = a.clone();
            async move { a.idled(header, idle).await }
        });
        // A byte every 20 s keeps the connection busy, but the head never completes.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(20)).await;
            a.read_some();
            if waiting.is_finished() {
                break;
            }
        }
        waiting.await.expect("watch");
        assert!(
            t0.elapsed() >= header && t0.elapsed() < idle,
            "{:?}",
            t0.elapsed()
        );
    }
}
