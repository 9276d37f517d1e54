//! Request and response bodies as the connection sees them: how many bytes each carried
//! (for the access log), whether a request body was read to its end (a connection whose
//! request body is left unread cannot carry another request), and a request body that
//! stalls is abandoned after the body timeout.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;

/// What a request body did, shared between the body and the connection's handler.
#[derive(Debug, Default)]
pub struct BodyState {
    bytes: AtomicU64,
    finished: AtomicBool,
    failed: AtomicBool,
    polled: AtomicBool,
    /// The unread rest, handed back when the handler drops the body before its end.
    rest: Mutex<Option<Incoming>>,
}

impl BodyState {
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::Relaxed)
    }

    /// Whether reading it failed: it stalled, or the client went away.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Whether anything asked for the body (which makes hyper send `100 Continue`).
    pub fn polled(&self) -> bool {
        self.polled.load(Ordering::Relaxed)
    }

    /// The rest of a body its handler dropped unread.
    pub fn take_rest(&self) -> Option<Incoming> {
        self.rest.lock().ok()?.take()
    }

    /// Read and discard what is left of an abandoned body, up to `limit` bytes and for at
    /// most `timeout`. True if the body was read to its end, so the connection can serve
    /// the next request.
    pub async fn drain(&self, limit: u64, timeout: Duration) -> bool {
        let Some(mut rest) = self.take_rest() else {
            return self.finished();
        };
        let read = async {
            let mut seen = 0u64;
            while let Some(frame) = http_body_util::BodyExt::frame(&mut rest).await {
                let Ok(frame) = frame else { return false };
                if let Some(data) = frame.data_ref() {
                    seen += data.len() as u64;
                    self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                    if seen > limit {
                        return false;
                    }
                }
            }
            true
        };
        let done = tokio::time::timeout(timeout, read).await.unwrap_or(false);
        if done {
            self.finished.store(true, Ordering::Relaxed);
        }
        done
    }
}

/// A request body that records what it did in a [`BodyState`] and fails when no byte
/// arrives for `stall` (so a client that declares 1,000 bytes and sends 4 cannot hold a
/// request open forever).
pub struct TrackedBody {
    inner: Option<Incoming>,
    state: Arc<BodyState>,
    stall: Duration,
    /// When the last frame arrived. The timer is armed once per stall period and moved
    /// on when it fires early, not re-armed on every frame: a timer per frame cost a
    /// quarter of the upload throughput.
    progress: tokio::time::Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the request body sent nothing for {0:?}")]
pub struct BodyStalled(Duration);

impl TrackedBody {
    pub fn new(inner: Incoming, stall: Duration) -> (TrackedBody, Arc<BodyState>) {
        let state = Arc::new(BodyState::default());
        if http_body::Body::is_end_stream(&inner) {
            state.finished.store(true, Ordering::Relaxed);
        }
        let body = TrackedBody {
            inner: Some(inner),
            state: state.clone(),
            stall,
            progress: tokio::time::Instant::now(),
            timer: None,
        };
        (body, state)
    }
}

impl TrackedBody {
    /// Pending, unless nothing arrived for the stall timeout: then the body fails.
    fn poll_stall(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let deadline = self.progress + self.stall;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if tokio::time::Instant::now() >= deadline {
                self.timer = None;
                self.state.failed.store(true, Ordering::Relaxed);
                return Poll::Ready(Some(Err(Box::new(BodyStalled(self.stall)))));
            }
            // Frames arrived since it was armed: move it to the new deadline.
            timer.as_mut().reset(deadline);
        }
    }
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        this.state.polled.store(true, Ordering::Relaxed);
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.progress = tokio::time::Instant::now();
                if let Some(data) = frame.data_ref() {
                    this.state
                        .bytes
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.timer = None;
                this.state.failed.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.timer = None;
                this.state.finished.store(true, Ordering::Relaxed);
                this.inner = None;
                Poll::Ready(None)
            }
            Poll::Pending => this.poll_stall(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if let Some(rest) = self.inner.take() {
            if !self.state.finished() {
                if let Ok(mut slot) = self.state.rest.lock() {
                    *slot = Some(rest);
                }
            }
        }
    }
}

/// A response body that counts the bytes it sends and runs `on_end` with the count
/// once it is finished or dropped (the client went away), so the access log tells
/// what was really sent.
pub struct CountedBody<F: FnOnce(u64) + Send + Unpin + 'static> {
    inner: Body,
    sent: u64,
    on_end: Option<F>,
}

impl<F: FnOnce(u64) + Send + Unpin + 'static> CountedBody<F> {
    pub fn new(inner: Body, on_end: F) -> CountedBody<F> {
        CountedBody {
            inner,
            sent: 0,
            on_end: Some(on_end),
        }
    }

    fn end(&mut self) {
        if let Some(f) = self.on_end.take() {
            f(self.sent);
        }
    }
}

impl<F: FnOnce(u64) + Send + Unpin + 'static> http_body::Body for CountedBody<F> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.end(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<F: FnOnce(u64) + Send + Unpin + 'static> Drop for CountedBody<F> {
    fn drop(&mut self) {
        self.end();
    }
}
