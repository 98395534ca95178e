//! `POST /api/v1/slack/commands` through the server's real router: the
//! signature check (`verify_slack`), the form parser, the channel and user
//! mapping, the `/hotfix` text parser and the command run against HF-1.
//!
//! Input: `Header: value` lines, a blank line, the form body. Without an
//! `X-Slack-Signature` line the harness signs the body as Slack would, at
//! the given `X-Slack-Request-Timestamp` (the server's fixed now when
//! there is none), so most inputs reach the form and the commands.
//! `X-Fuzz-Stage: N` picks the incident's base state.
//!
//! Checks: no panic; a request the harness signed is answered 200 (Slack
//! shows anything else as a failure) unless its timestamp is outside the
//! replay window (401); never a 5xx.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{HeaderValue, Request};
use hotfix_fuzz::{
    NOW_S, SLACK_SECRET, Team, assert_status, has, split_headers, take_stage, value,
};
use hotfix_providers::signature::{sign_hmac_sha256_hex, verify_slack};
use libfuzzer_sys::fuzz_target;

fn team() -> &'static Team {
    static T: OnceLock<Team> = OnceLock::new();
    T.get_or_init(|| Team::new(&hotfix_fuzz::team_config()))
}

fuzz_target!(|data: &[u8]| {
    let t = team();
    let (mut headers, body) = split_headers(data);
    let stage_n = take_stage(&mut headers);
    let mut req = Request::post("/api/v1/slack/commands")
        .header("content-type", "application/x-www-form-urlencoded");
    let ts = match value(&headers, "x-slack-request-timestamp") {
        Some(ts) => ts.to_string(),
        None => {
            req = req.header("x-slack-request-timestamp", NOW_S.to_string());
            NOW_S.to_string()
        }
    };
    let we_sign = !has(&headers, "x-slack-signature");
    let mut base = format!("v0:{}:", ts.trim()).into_bytes();
    base.extend_from_slice(body);
    let good = format!(
        "v0={}",
        sign_hmac_sha256_hex(SLACK_SECRET.as_bytes(), &base)
    );
    if we_sign {
        req = req.header("x-slack-signature", HeaderValue::from_str(&good).unwrap());
    }
    for (n, v) in &headers {
        req = req.header(n, v);
    }
    let in_window = verify_slack(SLACK_SECRET.as_bytes(), &ts, body, &good, NOW_S, 300).is_ok();
    let req = req.body(Body::from(body.to_vec())).unwrap();
    let st = t.state(stage_n);
    let (status, resp) = t.call(&st, req);
    assert_status(status, &[200, 401, 413], &resp);
    if we_sign && in_window {
        assert_status(status, &[200], &resp);
    }
});
