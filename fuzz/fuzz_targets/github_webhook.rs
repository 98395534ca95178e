//! `POST /api/v1/webhooks/github` through the server's real router, then
//! the inbox worker on what it stored (the payload parsed as its event kind
//! and matched against HF-1).
//!
//! Input: `Header: value` lines, a blank line, the body (see
//! `hotfix_fuzz::split_headers`). Without an `X-Hub-Signature-256` line the
//! harness signs the body with the server's secret, so most inputs get past
//! the signature and reach the payload parsers; with one, the fuzzer's own
//! header is checked (and must be refused unless it is right).
//! `X-Fuzz-Stage: N` picks the incident's base state.
//!
//! Checks: no panic; the door answers 200 (ping), 202, 400 or 401, never a
//! 5xx; the worker never reports a failure on a healthy store.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{HeaderValue, Request};
use hotfix_fuzz::{
    GITHUB_SECRET, Team, assert_status, drain_inbox, has, split_headers, take_stage, value,
};
use hotfix_providers::signature::{sign_hmac_sha256_hex, verify_github};
use libfuzzer_sys::fuzz_target;

fn team() -> &'static Team {
    static T: OnceLock<Team> = OnceLock::new();
    T.get_or_init(|| Team::new(&hotfix_fuzz::team_config()))
}

fuzz_target!(|data: &[u8]| {
    let t = team();
    let (mut headers, body) = split_headers(data);
    let stage_n = take_stage(&mut headers);
    let own_signature = has(&headers, "x-hub-signature-256");
    let good = format!(
        "sha256={}",
        sign_hmac_sha256_hex(GITHUB_SECRET.as_bytes(), body)
    );
    // The fuzzer's own signature must be judged exactly like the real one.
    if let Some(sig) = value(&headers, "x-hub-signature-256") {
        let ok = verify_github(GITHUB_SECRET.as_bytes(), body, sig);
        if ok {
            assert!(
                sig.trim().eq_ignore_ascii_case(&good),
                "accepted a signature that is not the body's: {sig:?}"
            );
        }
    }
    let mut req = Request::post("/api/v1/webhooks/github");
    for (n, v) in &headers {
        req = req.header(n, v);
    }
    if !own_signature {
        req = req.header("x-hub-signature-256", HeaderValue::from_str(&good).unwrap());
    }
    let req = req.body(Body::from(body.to_vec())).unwrap();
    let st = t.state(stage_n);
    let (status, resp) = t.call(&st, req);
    assert_status(status, &[200, 202, 400, 401, 413], &resp);
    if status == 202 {
        let _outcomes = t.block_on(async {
            let st = st.clone();
            tokio::task::spawn_blocking(move || drain_inbox(&st))
                .await
                .unwrap()
        });
    }
});
