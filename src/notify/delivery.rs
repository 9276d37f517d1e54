//! Posting one event to a webhook: JSON body, HMAC-SHA256 signature.
//!
//! Headers: `X-Berth-Event-Id` (the event's id: the same on every attempt, so a
//! receiver can drop repeats), `X-Berth-Timestamp` (Unix seconds of this attempt) and,
//! with a key, `X-Berth-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
//! A receiver checks the signature and that the timestamp is recent.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The signature header's value for `body` sent at `timestamp`.
pub fn signature(key: &[u8], timestamp: i64, body: &str) -> String {
    // HMAC takes keys of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POST `body` to `url`; Ok on a 2xx answer, else why not.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    event_id: &str,
    body: &str,
    key: Option<&[u8]>,
    timeout: std::time::Duration,
) -> Result<(), String> {
    let timestamp = crate::clock::now_ms() / 1000;
    let mut req = client
        .post(url)
        .timeout(timeout)
        .header("content-type", "application/json")
        .header("user-agent", "berth-webhooks")
        .header("x-berth-event-id", event_id)
        .header("x-berth-timestamp", timestamp.to_string());
    if let Some(key) = key {
        req = req.header("x-berth-signature", signature(key, timestamp, body));
    }
    match req.body(body.to_owned()).send().await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("answered {}", resp.status().as_u16())),
        Err(e) => Err(format!("{e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_covers_timestamp_and_body() {
        let a = signature(b"k", 1, "{}");
        assert!(a.starts_with("sha256="));
        assert_eq!(a.len(), 7 + 64);
        assert_ne!(a, signature(b"k", 2, "{}"));
        assert_ne!(a, signature(b"k", 1, "{ }"));
        assert_ne!(a, signature(b"j", 1, "{}"));
    }
}
