//! `POST /api/v1/alerts/{source}` through the server's real router (token
//! or Sentry signature, body limit, the parser), then the inbox worker on
//! what it stored: the rules, the declaration of a reported incident, the
//! page, a repeat or a resolve recorded on HF-1's alert.
//!
//! Input: `Header: value` lines, a blank line, the body. `X-Fuzz-Source:`
//! names the source (`alertmanager`, `sentry`, `pagerduty`, `generic`;
//! anything else is sent as it is and must be a 404), `X-Fuzz-Stage: N` the
//! incident's base state. Without an `Authorization` or
//! `Sentry-Hook-Signature` line the harness sends the API token of the
//! store, so most inputs reach the parser and the worker.
//!
//! Checks: no panic; the door answers 202, 400, 401, 404 or 413, never a
//! 5xx; the worker never fails on a healthy store (a firing alert that
//! matches a rule always declares or is recorded).
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::Request;
use hotfix_fuzz::{Team, assert_status, drain_inbox, has, split_headers, take_stage, value};
use libfuzzer_sys::fuzz_target;

fn team() -> &'static Team {
    static T: OnceLock<Team> = OnceLock::new();
    T.get_or_init(|| Team::new(&hotfix_fuzz::team_config()))
}

fuzz_target!(|data: &[u8]| {
    let t = team();
    let (mut headers, body) = split_headers(data);
    let stage_n = take_stage(&mut headers);
    let source = value(&headers, "x-fuzz-source")
        .unwrap_or("generic")
        .trim()
        .to_string();
    headers.retain(|(n, _)| n.as_str() != "x-fuzz-source");
    let Ok(uri) = format!("/api/v1/alerts/{source}").parse::<axum::http::Uri>() else {
        return;
    };
    let mut req = Request::post(uri).header("content-type", "application/json");
    if !has(&headers, "authorization") && !has(&headers, "sentry-hook-signature") {
        req = req.header("authorization", format!("Bearer {}", t.token));
    }
    for (n, v) in &headers {
        req = req.header(n, v);
    }
    let req = req.body(Body::from(body.to_vec())).unwrap();
    let st = t.state(stage_n);
    let (status, resp) = t.call(&st, req);
    assert_status(status, &[202, 400, 401, 404, 413], &resp);
    if status == 202 {
        let st = st.clone();
        t.block_on(async move {
            tokio::task::spawn_blocking(move || drain_inbox(&st))
                .await
                .unwrap()
        });
    }
});
