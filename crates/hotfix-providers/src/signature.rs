//! Webhook and slash-command signatures: GitHub's `X-Hub-Signature-256` and
//! Slack's `X-Slack-Signature` (v0). Both are HMAC-SHA256 over the raw body,
//! hex-encoded; both are compared in constant time so a forger cannot learn
//! the expected value byte by byte from response timings.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a Slack request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("X-Slack-Request-Timestamp `{0}` is not a unix timestamp")]
    BadTimestamp(String),
    /// Outside the replay window: an old request replayed, or a skewed clock.
    #[error(
        "request timestamp is {age_s}s away from now (allowed: {max_age_s}s); replayed request or skewed clock"
    )]
    Expired { age_s: i64, max_age_s: i64 },
    #[error("X-Slack-Signature is not of the form v0=<hex>")]
    Malformed,
    #[error("signature does not match")]
    Mismatch,
}

/// `hex(HMAC-SHA256(secret, body))`, lower case.
pub fn sign_hmac_sha256_hex(secret: &[u8], body: &[u8]) -> String {
    hex::encode(mac(secret, &[body]).finalize().into_bytes())
}

fn mac(secret: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail; the fallback
    // keeps the function total without an unwrap.
    let mut m = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => <HmacSha256 as KeyInit>::new(&Default::default()),
    };
    for p in parts {
        m.update(p);
    }
    m
}

/// Checks the hex digest in `given` against the MAC in constant time
/// (`verify_slice` compares without early exit).
fn verify_hex(m: HmacSha256, given: &str) -> bool {
    match hex::decode(given.trim()) {
        Ok(bytes) => m.verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

/// Verifies a GitHub webhook delivery: `header` is the value of
/// `X-Hub-Signature-256` (`sha256=<hex>`), `body` the raw request body
/// (before any JSON parsing: re-serialising changes the bytes).
pub fn verify_github(secret: &[u8], body: &[u8], header: &str) -> bool {
    match header.trim().strip_prefix("sha256=") {
        Some(hex_sig) => verify_hex(mac(secret, &[body]), hex_sig),
        None => false,
    }
}

/// Verifies a Slack request: `timestamp` is `X-Slack-Request-Timestamp`,
/// `header` is `X-Slack-Signature` (`v0=<hex>` of HMAC-SHA256 over
/// `v0:{timestamp}:{body}`), `now_s` the current unix time. Requests older
/// (or newer) than `max_age_s` are refused before the MAC is even checked,
/// so a captured request cannot be replayed later (Slack recommends 300 s).
pub fn verify_slack(
    signing_secret: &[u8],
    timestamp: &str,
    body: &[u8],
    header: &str,
    now_s: i64,
    max_age_s: i64,
) -> Result<(), SignatureError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp(timestamp.to_string()))?;
    let age_s = now_s.saturating_sub(ts).saturating_abs();
    if age_s > max_age_s {
        return Err(SignatureError::Expired { age_s, max_age_s });
    }
    let hex_sig = header
        .trim()
        .strip_prefix("v0=")
        .ok_or(SignatureError::Malformed)?;
    let m = mac(
        signing_secret,
        &[b"v0:", timestamp.trim().as_bytes(), b":", body],
    );
    if verify_hex(m, hex_sig) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}
