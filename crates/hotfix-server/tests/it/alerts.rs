//! Alert intake over real HTTP on a real store: each source end to end
//! (acknowledged at once, stored durably, declared by the inbox worker,
//! the on-call paged, repeats deduplicated, resolves recorded without
//! closing), what is refused at the door, and processing that is safe to
//! run twice or on two workers at once. Payloads are realistic samples in
//! `tests/fixtures/alerts/`, built from the field lists of
//! Alertmanager v0.34 (webhook v4), Sentry's integration webhooks and
//! PagerDuty Events API v2.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use hotfix_core::event::{EventKind, NewEvent};
use hotfix_core::id::IncidentId;
use hotfix_core::team::{ApiRole, InboxItem, InboxPut};
use hotfix_server::alerts::{self, Parsed, Source, Status};
use hotfix_server::{ops, workers};
use serde_json::{Value, json};

fn fixture(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/tests/fixtures/alerts/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

fn send(t: &TestServer, source: &str, token: &str, body: &[u8]) -> Resp {
    post(
        &t.url(&format!("/api/v1/alerts/{source}")),
        Some(token),
        &[("Content-Type", "application/json")],
        body,
    )
}

fn accepted(r: &Resp) -> i64 {
    assert_eq!(r.status, 202, "{}", r.text);
    let j = r.json();
    assert_eq!(j["status"], "accepted");
    j["inbox_id"].as_i64().unwrap()
}

fn incidents(t: &TestServer, token: &str) -> Vec<Value> {
    let r = get(&t.url("/api/v1/incidents?state=all"), Some(token), &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["incidents"].as_array().unwrap().clone()
}

fn incident(t: &TestServer, token: &str, id: &str) -> Value {
    let r = get(&t.url(&format!("/api/v1/incidents/{id}")), Some(token), &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

fn inbox(t: &TestServer, token: &str) -> Vec<Value> {
    let r = get(&t.url("/api/v1/inbox"), Some(token), &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["items"].as_array().unwrap().clone()
}

/// Waits until the worker processed inbox item `id`; its outcome.
fn outcome(t: &TestServer, token: &str, id: i64) -> String {
    let mut out = String::new();
    t.wait_for(&format!("inbox item {id} processed"), || {
        let items = inbox(t, token);
        match items
            .iter()
            .find(|i| i["id"] == id && !i["processed_at"].is_null())
        {
            Some(i) => {
                out = i["outcome"].as_str().unwrap_or_default().to_string();
                true
            }
            None => false,
        }
    });
    out
}

fn pages(t: &TestServer) -> Vec<Value> {
    t.delivered()
        .into_iter()
        .filter(|m| m["step"] == "paged")
        .collect()
}

fn alert_events(inc: &Value) -> Vec<Value> {
    inc["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "alert_received")
        .cloned()
        .collect()
}

/// A variant of a JSON fixture (a repeat notification differs in some field).
fn with(name: &str, f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = fixture_json(name);
    f(&mut v);
    serde_json::to_vec_pretty(&v).unwrap()
}

fn config_with(extra: &str) -> String {
    format!("{}\n{extra}\n", base_config())
}

const SENTRY_RULE: &str = r#"
[[alerts.rules]]
source = "sentry"
match = { project = "checkout" }
severity = "high"
"#;

/// A server whose rules also declare for the `checkout` Sentry project,
/// checking Sentry's signature against `sentry_client` when given.
fn sentry_server(sentry_client: Option<&str>) -> TestServer {
    let mut o = Options {
        config: config_with(SENTRY_RULE),
        ..Default::default()
    };
    o.secrets.sentry_client = sentry_client.map(String::from);
    TestServer::with(o)
}

/// A server whose inbox is processed only when the test says so.
fn without_workers() -> TestServer {
    TestServer::with(Options {
        workers: false,
        ..Default::default()
    })
}

/// Firing → declared and paged; repeat → deduplicated; resolved →
/// recorded, incident still open. Returns the incident id and its detail
/// once resolved.
fn scenario(
    t: &TestServer,
    source: &str,
    firing: &[u8],
    repeat: &[u8],
    resolved: &[u8],
    severity: &str,
) -> (String, Value) {
    let tok = t.token("monitoring@example.com", ApiRole::Developer);
    let started = Instant::now();
    let r = send(t, source, &tok, firing);
    let took = started.elapsed();
    let first = accepted(&r);
    assert_eq!(r.json()["duplicate"], false);
    assert!(
        took < Duration::from_secs(2),
        "acknowledged in {took:?}: no incident work in the request path"
    );
    let out = outcome(t, &tok, first);
    assert!(out.starts_with("declared HF-"), "{out}");
    let id = out.trim_start_matches("declared ").to_string();

    let list = incidents(t, &tok);
    assert_eq!(list.len(), 1, "{list:?}");
    let inc = incident(t, &tok, &id);
    assert_eq!(inc["incident"]["phase"], "triage", "{inc}");
    assert_eq!(inc["incident"]["severity"], severity);
    assert_eq!(inc["incident"]["declared_by"], format!("{source} (alert)"));
    assert_eq!(inc["state"]["alert_status"], "firing");
    assert!(
        inc["incident"]["branch"]
            .as_str()
            .unwrap()
            .starts_with("hotfix/")
    );

    t.wait_for("the page is delivered", || !pages(t).is_empty());
    let p = &pages(t)[0];
    assert_eq!(p["mentions"], json!([DEV]), "{p}");
    let text = p["text"].as_str().unwrap();
    assert!(text.contains(&id), "{text}");
    assert!(text.contains(&format!("reported by {source}")), "{text}");
    assert!(
        text.contains(&format!("--incident {id} --severity {severity}")),
        "{text}"
    );

    let r = send(t, source, &tok, repeat);
    let second = accepted(&r);
    assert_ne!(first, second, "a repeat is a new delivery");
    assert_eq!(outcome(t, &tok, second), format!("repeat of {id}"));
    assert_eq!(incidents(t, &tok).len(), 1, "a repeat declares nothing");
    let inc = incident(t, &tok, &id);
    assert_eq!(
        alert_events(&inc).len(),
        1,
        "a repeat is not recorded again"
    );

    let r = send(t, source, &tok, resolved);
    let third = accepted(&r);
    assert_eq!(
        outcome(t, &tok, third),
        format!("resolved recorded on {id}")
    );
    let inc = incident(t, &tok, &id);
    assert_eq!(inc["state"]["alert_status"], "resolved");
    assert_eq!(inc["incident"]["closed"], false, "a resolve never closes");
    assert_eq!(inc["incident"]["phase"], "triage");
    assert_eq!(alert_events(&inc).len(), 2);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(pages(t).len(), 1, "paged once");
    (id, inc)
}

#[test]
fn alertmanager_group_declares_pages_dedupes_and_records_resolve() {
    let t = TestServer::start();
    let (_, inc) = scenario(
        &t,
        "alertmanager",
        &fixture("alertmanager_firing.json"),
        &fixture("alertmanager_repeat.json"),
        &fixture("alertmanager_resolved.json"),
        "critical",
    );
    assert_eq!(inc["incident"]["customer_facing"], true);
    assert_eq!(inc["state"]["components"], json!(["API"]));
    assert_eq!(
        inc["incident"]["title"],
        "API 5xx error rate above 5% (2 alerts)"
    );
    let name = inc["incident"]["branch"].as_str().unwrap();
    assert!(name.starts_with("hotfix/high-error-rate-"), "{name}");
    let p = &pages(&t)[0];
    assert_eq!(p["step"], "paged");
    assert!(p["text"].as_str().unwrap().contains("[CRITICAL]"));
    // Counted by source.
    let m = get(&t.url("/metrics"), None, &[]).text;
    assert!(
        m.contains("hotfix_alerts_received_total{source=\"alertmanager\"} 3"),
        "{m}"
    );
}

#[test]
fn alertmanager_accepts_http_basic_auth_with_the_token_as_password() {
    let t = TestServer::start();
    let tok = t.token("alertmanager@example.com", ApiRole::Developer);
    let basic = format!("Basic {}", b64(&format!("alertmanager:{tok}")));
    let r = post(
        &t.url("/api/v1/alerts/alertmanager"),
        None,
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &basic),
        ],
        &fixture("alertmanager_firing.json"),
    );
    accepted(&r);
    let bad = format!("Basic {}", b64("alertmanager:hf_wrong"));
    let r = post(
        &t.url("/api/v1/alerts/alertmanager"),
        None,
        &[("Authorization", &bad)],
        &fixture("alertmanager_repeat.json"),
    );
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(inbox(&t, &tok).len(), 1);
}

#[test]
fn pagerduty_trigger_acknowledge_resolve() {
    let t = TestServer::start();
    let repeat = with("pagerduty_trigger.json", |v| {
        v["payload"]["custom_details"]["waiting_clients"] = json!("212");
        v["payload"]["timestamp"] = json!("2025-06-03T09:25:11.402+00:00");
    });
    let tok = t.token(LEAD, ApiRole::TechLead);
    // Acknowledge between trigger and resolve: recorded as an external update.
    let id = {
        let r = send(&t, "pagerduty", &tok, &fixture("pagerduty_trigger.json"));
        let n = accepted(&r);
        let out = outcome(&t, &tok, n);
        assert!(out.starts_with("declared HF-"), "{out}");
        out.trim_start_matches("declared ").to_string()
    };
    let r = send(&t, "pagerduty", &tok, &repeat);
    assert_eq!(outcome(&t, &tok, accepted(&r)), format!("repeat of {id}"));
    let r = send(
        &t,
        "pagerduty",
        &tok,
        &fixture("pagerduty_acknowledge.json"),
    );
    assert_eq!(
        outcome(&t, &tok, accepted(&r)),
        format!("acknowledged recorded on {id}")
    );
    let r = send(&t, "pagerduty", &tok, &fixture("pagerduty_resolve.json"));
    assert_eq!(
        outcome(&t, &tok, accepted(&r)),
        format!("resolved recorded on {id}")
    );
    let inc = incident(&t, &tok, &id);
    assert_eq!(inc["incident"]["severity"], "high", "the pagerduty rule");
    assert_eq!(inc["state"]["alert_status"], "resolved");
    assert_eq!(inc["incident"]["closed"], false);
    assert_eq!(inc["incident"]["phase"], "triage");
    assert!(
        inc["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.to_string().contains("alert acknowledged")),
        "{inc}"
    );
    assert_eq!(incidents(&t, &tok).len(), 1);
    t.wait_for("the page is delivered", || pages(&t).len() == 1);
    let text = pages(&t)[0]["text"].as_str().unwrap().to_string();
    assert!(
        text.contains(
            "Checkout DB connection pool exhausted on prod-db-2 (pagerduty says critical)"
        ),
        "{text}"
    );
}

#[test]
fn pagerduty_full_scenario() {
    let t = TestServer::start();
    let repeat = with("pagerduty_trigger.json", |v| {
        v["payload"]["custom_details"]["waiting_clients"] = json!("212");
    });
    scenario(
        &t,
        "pagerduty",
        &fixture("pagerduty_trigger.json"),
        &repeat,
        &fixture("pagerduty_resolve.json"),
        "high",
    );
}

#[test]
fn sentry_metric_alert_critical_warning_resolved() {
    let t = sentry_server(None);
    let warning = with("sentry_metric_alert_critical.json", |v| {
        v["action"] = json!("warning");
        v["data"]["description_title"] = json!("Warning: Checkout errors above 100 in 5 minutes");
    });
    let (_, inc) = scenario(
        &t,
        "sentry",
        &fixture("sentry_metric_alert_critical.json"),
        &warning,
        &fixture("sentry_metric_alert_resolved.json"),
        "high",
    );
    assert_eq!(
        inc["incident"]["title"],
        "Critical: Checkout errors above 200 in 5 minutes"
    );
}

#[test]
fn sentry_issue_and_its_event_alert_share_one_incident() {
    let t = sentry_server(None);
    let tok = t.token(LEAD, ApiRole::TechLead);
    let resolved = with("sentry_issue_created.json", |v| {
        v["action"] = json!("resolved");
        v["data"]["issue"]["status"] = json!("resolved");
    });
    let (id, _) = scenario(
        &t,
        "sentry",
        &fixture("sentry_issue_created.json"),
        &fixture("sentry_event_alert.json"),
        &resolved,
        "high",
    );
    // An issue being assigned is not an alert state.
    let r = send(&t, "sentry", &tok, &fixture("sentry_issue_assigned.json"));
    let out = outcome(&t, &tok, accepted(&r));
    assert!(
        out.starts_with("ignored: sentry issue action `assigned`"),
        "{out}"
    );
    let inc = incident(&t, &tok, &id);
    assert_eq!(
        inc["incident"]["title"],
        "MemoryError: cannot allocate 268435456 bytes (pdf.export in render_invoice)"
    );
}

#[test]
fn generic_shape_end_to_end() {
    let t = TestServer::start();
    let repeat = with("generic_firing.json", |v| {
        v["title"] = json!("Checkout page returns 502 from 2 of 3 regions");
    });
    let (_, inc) = scenario(
        &t,
        "generic",
        &fixture("generic_firing.json"),
        &repeat,
        &fixture("generic_resolved.json"),
        "critical",
    );
    assert_eq!(inc["state"]["components"], json!(["API"]));
    let text = pages(&t)[0]["text"].as_str().unwrap().to_string();
    assert!(
        text.contains("<https://uptime.example.com/checks/8812>"),
        "{text}"
    );
}

#[test]
fn unmatched_and_medium_alerts_are_recorded_and_ignored() {
    let t = TestServer::with(Options {
        config: config_with(
            r#"
[[alerts.rules]]
match = { alertname = "DiskSpaceLow" }
severity = "medium"
"#,
        ),
        ..Default::default()
    });
    let tok = t.token(LEAD, ApiRole::TechLead);
    let r = send(
        &t,
        "alertmanager",
        &tok,
        &fixture("alertmanager_unmatched.json"),
    );
    assert_eq!(
        outcome(&t, &tok, accepted(&r)),
        "ignored: severity medium (use the normal release)"
    );
    let other = with("alertmanager_unmatched.json", |v| {
        v["groupKey"] = json!("{}:{alertname=\"CertExpiring\"}");
        v["commonLabels"]["alertname"] = json!("CertExpiring");
        v["alerts"][0]["labels"]["alertname"] = json!("CertExpiring");
    });
    let r = send(&t, "alertmanager", &tok, &other);
    assert_eq!(outcome(&t, &tok, accepted(&r)), "ignored: no rule matches");
    // A resolve for an alert never seen (T11).
    let r = send(
        &t,
        "alertmanager",
        &tok,
        &fixture("alertmanager_resolved.json"),
    );
    assert_eq!(
        outcome(&t, &tok, accepted(&r)),
        "ignored: resolved alert for no incident"
    );
    assert!(incidents(&t, &tok).is_empty());
    std::thread::sleep(Duration::from_millis(200));
    assert!(t.delivered().is_empty(), "nobody paged");
}

/// POSTs `body` with its `Content-Length` over a raw connection, writing
/// from another thread: a body declared too large is answered before it is
/// read, and the server closes the connection while the client is still
/// writing (which an HTTP client reports as a broken pipe, not the 413).
fn post_unread(t: &TestServer, path: &str, token: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(t.base.trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut w = s.try_clone().unwrap();
    let body = body.to_vec();
    let writer = std::thread::spawn(move || {
        for c in body.chunks(64 * 1024) {
            if w.write_all(c).is_err() {
                return;
            }
        }
    });
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    drop(s);
    writer.join().unwrap();
    let raw = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

#[test]
fn bad_requests_are_refused_and_store_nothing() {
    let t = TestServer::start();
    let tok = t.token(LEAD, ApiRole::TechLead);
    let url = |s: &str| t.url(&format!("/api/v1/alerts/{s}"));
    let json_ct = [("Content-Type", "application/json")];

    let r = post(
        &url("alertmanager"),
        Some(&tok),
        &json_ct,
        b"{\"groupKey\": ",
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "bad_json");

    // An Alertmanager body sent as a PagerDuty event, and a generic alert without a key.
    let r = post(
        &url("pagerduty"),
        Some(&tok),
        &json_ct,
        &fixture("alertmanager_firing.json"),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "bad_shape");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("event_action")
    );
    let r = post_json(
        &url("generic"),
        Some(&tok),
        &json!({"status": "firing", "title": "x"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("key")
    );
    let r = post_json(
        &url("pagerduty"),
        Some(&tok),
        &json!({"event_action": "trigger", "payload": {"summary": "s", "source": "h", "severity": "urgent"}}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = post_json(&url("alertmanager"), Some(&tok), &json!([1, 2]));
    assert_eq!(r.status, 400, "{}", r.text);
    let r = post(&url("generic"), Some(&tok), &json_ct, &[0xff, 0xfe, b'{']);
    assert_eq!(r.status, 400, "{}", r.text);

    // No token, a wrong token.
    let r = post(
        &url("alertmanager"),
        None,
        &json_ct,
        &fixture("alertmanager_firing.json"),
    );
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "unauthorized");
    let r = post(
        &url("alertmanager"),
        Some("hf_0000"),
        &json_ct,
        &fixture("alertmanager_firing.json"),
    );
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(!r.text.contains("hf_0000"), "the token is not echoed");

    // Too large (a valid-looking generic alert padded past 4 MB).
    let big = serde_json::to_vec(&json!({
        "key": "k", "status": "firing", "title": "big",
        "labels": {"pad": "x".repeat(4 * 1024 * 1024 + 1)}
    }))
    .unwrap();
    let (status, text) = post_unread(&t, "/api/v1/alerts/generic", &tok, &big);
    assert_eq!(status, 413, "{text}");
    let j: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(j["error"]["code"], "payload_too_large");
    assert!(
        j["error"]["message"].as_str().unwrap().contains("4096 KB"),
        "{j}"
    );

    // Unknown source.
    let r = post(&url("nagios"), Some(&tok), &json_ct, b"{}");
    assert_eq!(r.status, 404, "{}", r.text);

    assert!(inbox(&t, &tok).is_empty(), "nothing stored");
    assert!(incidents(&t, &tok).is_empty());
    let m = get(&t.url("/metrics"), None, &[]).text;
    for line in [
        "hotfix_rejected_total{source=\"alertmanager\",reason=\"bad_json\"} 1",
        "hotfix_rejected_total{source=\"pagerduty\",reason=\"bad_shape\"} 2",
        "hotfix_rejected_total{source=\"alertmanager\",reason=\"unauthorized\"} 2",
        "hotfix_rejected_total{source=\"generic\",reason=\"too_large\"} 1",
    ] {
        assert!(m.contains(line), "missing {line} in\n{m}");
    }
    assert!(!m.contains("hotfix_alerts_received_total{"), "{m}");
}

#[test]
fn the_same_delivery_twice_is_stored_and_processed_once() {
    let t = TestServer::start();
    let tok = t.token(LEAD, ApiRole::TechLead);
    let body = fixture("generic_firing.json");
    let r1 = send(&t, "generic", &tok, &body);
    let r2 = send(&t, "generic", &tok, &body);
    let (a, b) = (accepted(&r1), accepted(&r2));
    assert_eq!(a, b);
    assert_eq!(r1.json()["duplicate"], false);
    assert_eq!(r2.json()["duplicate"], true);
    assert!(outcome(&t, &tok, a).starts_with("declared HF-1"));
    assert_eq!(inbox(&t, &tok).len(), 1);
    assert_eq!(incidents(&t, &tok).len(), 1);
}

#[test]
fn acknowledged_before_any_processing_and_durable_on_disk() {
    let t = without_workers();
    let tok = t.token(LEAD, ApiRole::TechLead);
    let r = send(
        &t,
        "alertmanager",
        &tok,
        &fixture("alertmanager_firing.json"),
    );
    let id = accepted(&r);
    // Another connection to the same database file sees it, unprocessed.
    let other = hotfix_store::SqliteStore::open(&t.dir.path().join("hotfix.db")).unwrap();
    let items = hotfix_core::team::TeamStore::inbox_recent(&other, 10).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].id, id);
    assert_eq!(items[0].source, "alertmanager");
    assert!(items[0].processed_at.is_none());
    assert!(
        incidents(&t, &tok).is_empty(),
        "no incident work at the door"
    );

    assert_eq!(workers::run_inbox(&t.st), 1);
    let list = incidents(&t, &tok);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["phase"], "triage");
    workers::run_outbox(&t.st);
    assert_eq!(pages(&t).len(), 1);
}

/// What Sentry sends with a metric alert webhook.
fn sentry_headers<'a>(signature: &'a str, request_id: &'a str) -> [(&'a str, &'a str); 5] {
    [
        ("Content-Type", "application/json"),
        ("Sentry-Hook-Resource", "metric_alert"),
        ("Sentry-Hook-Timestamp", "1748942100"),
        ("Sentry-Hook-Signature", signature),
        ("Request-ID", request_id),
    ]
}

#[test]
fn sentry_signature_is_checked_against_the_client_secret() {
    const SECRET: &str = "sentry-client-secret-for-tests";
    let t = sentry_server(Some(SECRET));
    let tok = t.token(LEAD, ApiRole::TechLead);
    let url = t.url("/api/v1/alerts/sentry");
    let body = fixture("sentry_metric_alert_critical.json");
    let sig = hotfix_providers::signature::sign_hmac_sha256_hex(SECRET.as_bytes(), &body);
    let request_id = "3b1a5e0c-8f0d-4b7e-9c53-1d2b6a7f9e01";
    let h = sentry_headers(&sig, request_id);
    let r = post(&url, None, &h, &body);
    let id = accepted(&r);
    // Sentry retries with the same Request-ID: the same delivery.
    let r = post(&url, None, &h, &body);
    assert_eq!(r.json()["duplicate"], true);
    assert_eq!(r.json()["inbox_id"], id);

    let forged = format!(
        "{}{}",
        if sig.starts_with('0') { "1" } else { "0" },
        &sig[1..]
    );
    let h2 = sentry_headers(&forged, request_id);
    let other = fixture("sentry_metric_alert_resolved.json");
    let r = post(&url, None, &h2, &other);
    assert_eq!(r.status, 401, "{}", r.text);
    // The signature of another body does not carry over.
    let r = post(&url, None, &h, &other);
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(inbox(&t, &tok).len(), 1);
    assert!(outcome(&t, &tok, id).starts_with("declared HF-1"));

    // A server without the secret cannot check a signature: refused.
    let t2 = TestServer::start();
    let r = post(&t2.url("/api/v1/alerts/sentry"), None, &h, &body);
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.contains("SENTRY_CLIENT_SECRET"), "{}", r.text);
}

/// Closes an incident straight in the store (what `close` does once the
/// checklist is done; the checklist is not what is tested here).
fn force_close(t: &TestServer, id: &str) {
    let id: IncidentId = id.parse().unwrap();
    let s = ops::load(&t.st, id).unwrap();
    t.st.store
        .append(
            id,
            s.version,
            &[NewEvent {
                at: jiff::Timestamp::now(),
                actor: LEAD.into(),
                kind: EventKind::Closed,
            }],
            &[],
        )
        .unwrap();
}

#[test]
fn an_alert_firing_again_after_its_incident_closed_opens_a_new_one() {
    let t = TestServer::start();
    let tok = t.token(LEAD, ApiRole::TechLead);
    let r = send(
        &t,
        "alertmanager",
        &tok,
        &fixture("alertmanager_firing.json"),
    );
    assert_eq!(outcome(&t, &tok, accepted(&r)), "declared HF-1");
    force_close(&t, "HF-1");
    let r = send(
        &t,
        "alertmanager",
        &tok,
        &fixture("alertmanager_resolved.json"),
    );
    assert_eq!(
        outcome(&t, &tok, accepted(&r)),
        "ignored: resolved alert for HF-1, which is closed"
    );
    let r = send(
        &t,
        "alertmanager",
        &tok,
        &fixture("alertmanager_repeat.json"),
    );
    assert_eq!(outcome(&t, &tok, accepted(&r)), "declared HF-2");
    let again = with("alertmanager_resolved.json", |v| {
        v["alerts"][0]["endsAt"] = json!("2025-06-03T11:02:00Z");
    });
    let r = send(&t, "alertmanager", &tok, &again);
    assert_eq!(outcome(&t, &tok, accepted(&r)), "resolved recorded on HF-2");
    let list = incidents(&t, &tok);
    assert_eq!(list.len(), 2);
    assert_ne!(list[0]["branch"], list[1]["branch"], "names never collide");
    assert_eq!(
        t.st.store
            .alert_link_get("alertmanager", &alerts::link_key(GROUP_KEY, 2))
            .unwrap(),
        Some(IncidentId(2))
    );
}

const GROUP_KEY: &str = "{}/{severity=\"critical\"}:{alertname=\"HighErrorRate\", service=\"api\"}";

/// Puts bodies straight in the inbox and claims them, as a worker would.
fn claimed(t: &TestServer, bodies: &[(&str, Vec<u8>)]) -> Vec<InboxItem> {
    for (i, (source, body)) in bodies.iter().enumerate() {
        let put =
            t.st.store
                .inbox_put(
                    source,
                    &format!("test-{i}"),
                    std::str::from_utf8(body).unwrap(),
                    1,
                )
                .unwrap();
        assert!(matches!(put, InboxPut::Stored(_)));
    }
    let items = t.st.store.inbox_claim(i64::MAX / 4, 30, 10).unwrap();
    assert_eq!(items.len(), bodies.len());
    items
}

fn paged_in_outbox(t: &TestServer) -> usize {
    t.st.store
        .undelivered()
        .unwrap()
        .iter()
        .filter(|o| o.message.step == "paged")
        .count()
}

#[test]
fn processing_the_same_item_twice_is_idempotent() {
    let t = without_workers();
    let items = claimed(&t, &[("alertmanager", fixture("alertmanager_firing.json"))]);
    assert_eq!(alerts::process(&t.st, &items[0]).unwrap(), "declared HF-1");
    assert_eq!(alerts::process(&t.st, &items[0]).unwrap(), "repeat of HF-1");
    assert_eq!(t.st.store.incidents().unwrap().len(), 1);
    assert_eq!(paged_in_outbox(&t), 1);
}

#[test]
fn a_run_that_died_between_declaring_and_linking_is_finished_not_repeated() {
    let t = without_workers();
    let items = claimed(&t, &[("alertmanager", fixture("alertmanager_firing.json"))]);
    // What the interrupted run wrote: the declaration only (the crash came
    // before the events after it and before the link).
    let Parsed::Alert(a) =
        alerts::parse(Source::Alertmanager, items[0].body.as_bytes(), "unused").unwrap()
    else {
        panic!("an alert")
    };
    assert_eq!(a.status, Status::Firing);
    assert_eq!(a.key, GROUP_KEY);
    let rule = &t.st.cfg.alerts.rules[0];
    let name = alerts::rules::incident_name(rule, &a, &a.key);
    let declared = EventKind::Declared {
        name: name.clone(),
        title: a.summary.clone(),
        severity: hotfix_core::Severity::Critical,
        customer_facing: true,
        security: false,
        branch: format!("hotfix/{name}"),
        base_sha: String::new(),
    };
    ops::declare(
        &t.st,
        &hotfix_core::admit::Actor::new("alertmanager (alert)", hotfix_core::admit::Door::Alert),
        declared,
        vec![],
        &|_, _| vec![],
    )
    .unwrap();

    let out = alerts::process(&t.st, &items[0]).unwrap();
    assert_eq!(out, "declared HF-1 (linked after an interrupted run)");
    assert_eq!(t.st.store.incidents().unwrap().len(), 1);
    assert_eq!(
        t.st.store
            .alert_link_get("alertmanager", GROUP_KEY)
            .unwrap(),
        Some(IncidentId(1))
    );
    let s = ops::load(&t.st, IncidentId(1)).unwrap();
    assert_eq!(s.alert_status.as_deref(), Some("firing"));
    assert_eq!(s.components, vec!["API".to_string()]);
    assert_eq!(alerts::process(&t.st, &items[0]).unwrap(), "repeat of HF-1");
}

#[test]
fn two_workers_with_the_same_alert_key_declare_one_incident() {
    let t = without_workers();
    two_workers(&t);
}

fn two_workers(t: &TestServer) {
    let items = claimed(
        t,
        &[
            ("alertmanager", fixture("alertmanager_firing.json")),
            ("alertmanager", fixture("alertmanager_repeat.json")),
        ],
    );
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let handles: Vec<_> = items
        .into_iter()
        .map(|item| {
            let st = t.st.clone();
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                alerts::process(&st, &item)
            })
        })
        .collect();
    let mut outs: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    outs.sort();
    assert_eq!(outs, vec!["declared HF-1", "repeat of HF-1"]);
    assert_eq!(t.st.store.incidents().unwrap().len(), 1);
    assert_eq!(paged_in_outbox(t), 1);
}

#[test]
fn postgres_main_scenario_and_concurrency() {
    let Some(url) = pg_url() else { return };
    let t = TestServer::with(Options {
        backend: Backend::Postgres {
            url: url.clone(),
            schema: unique_schema("alerts"),
        },
        ..Default::default()
    });
    scenario(
        &t,
        "alertmanager",
        &fixture("alertmanager_firing.json"),
        &fixture("alertmanager_repeat.json"),
        &fixture("alertmanager_resolved.json"),
        "critical",
    );
    let tok = t.token(LEAD, ApiRole::TechLead);
    // The inbox reads each item's body back to say what it was.
    let items = inbox(&t, &tok);
    assert!(
        items
            .iter()
            .all(|i| i["key"] == GROUP_KEY && i["alertname"] == "HighErrorRate"),
        "{items:?}"
    );
    let body = fixture("pagerduty_trigger.json");
    let r1 = send(&t, "pagerduty", &tok, &body);
    let r2 = send(&t, "pagerduty", &tok, &body);
    assert_eq!(accepted(&r1), accepted(&r2));
    assert_eq!(r2.json()["duplicate"], true);

    let t2 = TestServer::with(Options {
        backend: Backend::Postgres {
            url,
            schema: unique_schema("alerts2"),
        },
        workers: false,
        ..Default::default()
    });
    two_workers(&t2);
}

#[test]
fn every_fixture_parses_to_what_the_rules_need() {
    let cases = [
        (
            "alertmanager_firing.json",
            Source::Alertmanager,
            Status::Firing,
            GROUP_KEY,
        ),
        (
            "alertmanager_resolved.json",
            Source::Alertmanager,
            Status::Resolved,
            GROUP_KEY,
        ),
        (
            "sentry_metric_alert_critical.json",
            Source::Sentry,
            Status::Firing,
            "metric_alert:98112",
        ),
        (
            "sentry_metric_alert_resolved.json",
            Source::Sentry,
            Status::Resolved,
            "metric_alert:98112",
        ),
        (
            "sentry_issue_created.json",
            Source::Sentry,
            Status::Firing,
            "issue:5512399017",
        ),
        (
            "sentry_event_alert.json",
            Source::Sentry,
            Status::Firing,
            "issue:5512399017",
        ),
        (
            "pagerduty_trigger.json",
            Source::Pagerduty,
            Status::Firing,
            "checkout-db-connections-2025-06-03",
        ),
        (
            "pagerduty_acknowledge.json",
            Source::Pagerduty,
            Status::Acknowledged,
            "checkout-db-connections-2025-06-03",
        ),
        (
            "pagerduty_resolve.json",
            Source::Pagerduty,
            Status::Resolved,
            "checkout-db-connections-2025-06-03",
        ),
        (
            "generic_firing.json",
            Source::Generic,
            Status::Firing,
            "uptime-checkout-https",
        ),
        (
            "generic_resolved.json",
            Source::Generic,
            Status::Resolved,
            "uptime-checkout-https",
        ),
    ];
    for (file, source, status, key) in cases {
        let Parsed::Alert(a) = alerts::parse(source, &fixture(file), "fallback").unwrap() else {
            panic!("{file} is an alert")
        };
        assert_eq!((a.status, a.key.as_str()), (status, key), "{file}");
    }
    let Parsed::Alert(pd) =
        alerts::parse(Source::Pagerduty, &fixture("pagerduty_trigger.json"), "f").unwrap()
    else {
        panic!()
    };
    for (k, v) in [
        ("severity", "critical"),
        ("source", "prod-db-2.example.com"),
        ("component", "postgres"),
        ("group", "prod-checkout"),
        ("class", "connection-pool"),
        ("service", "checkout"),
        ("active_connections", "500"),
    ] {
        assert_eq!(pd.labels.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert_eq!(
        pd.url.as_deref(),
        Some("https://grafana.example.com/alerting/list")
    );
    let Parsed::Alert(ev) =
        alerts::parse(Source::Sentry, &fixture("sentry_event_alert.json"), "f").unwrap()
    else {
        panic!()
    };
    assert_eq!(ev.labels["alertname"], "PDF export crashes");
    assert_eq!(ev.labels["service"], "pdf-export");
    assert_eq!(ev.labels["environment"], "production");
    let Parsed::Alert(am) = alerts::parse(
        Source::Alertmanager,
        &fixture("alertmanager_firing.json"),
        "f",
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(am.members.len(), 2);
    assert_eq!(am.labels["instance"], "api-7d9f8c6b5-x2k4q:9090");
    assert!(matches!(
        alerts::parse(Source::Sentry, &fixture("sentry_issue_assigned.json"), "f").unwrap(),
        Parsed::Ignored(_)
    ));
    assert!(matches!(
        alerts::parse(
            Source::Sentry,
            br#"{"action":"created","data":{"installation":{"uuid":"x"}}}"#,
            "f"
        )
        .unwrap(),
        Parsed::Ignored(_)
    ));
}

/// Standard base64, padded (for the basic-auth header), as Alertmanager
/// sends it.
fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A monitoring tool's text is not ours to refuse: a long, multi-line
/// summary with an ESC, a BEL and a bidi override still declares (the
/// title is its first line, cut to the longest title, controls made
/// visible) and nothing raw reaches the page or the incident.
#[test]
fn a_long_multi_line_summary_with_controls_still_declares() {
    let t = TestServer::start();
    let tok = t.token("monitoring@example.com", ApiRole::Developer);
    let body = with("alertmanager_firing.json", |v| {
        v["commonAnnotations"]["summary"] = json!(format!(
            "\u{1b}[31mAPI 5xx\u{7} \u{202e}above 5% {}\nsecond line: see runbook\r\nthird",
            "x".repeat(200)
        ));
    });
    let out = outcome(&t, &tok, accepted(&send(&t, "alertmanager", &tok, &body)));
    assert!(out.starts_with("declared HF-"), "{out}");
    let id = out.trim_start_matches("declared ").to_string();
    let inc = incident(&t, &tok, &id);
    let title = inc["incident"]["title"].as_str().unwrap();
    assert!(
        title.starts_with("\\u{1b}[31mAPI 5xx\\u{7} \\u{202e}above 5% xxx"),
        "{title}"
    );
    assert!(
        title.ends_with('…') && title.chars().count() == 200,
        "{title}"
    );
    let summary = alert_events(&inc)[0]["summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        summary.contains("\nsecond line: see runbook\\r\nthird"),
        "{summary}"
    );
    t.wait_for("the page is delivered", || !pages(&t).is_empty());
    let page = pages(&t)[0]["text"].as_str().unwrap().to_string();
    for text in [title, summary.as_str(), page.as_str()] {
        let raw: Vec<char> = text
            .chars()
            .filter(|&c| hotfix_core::display::is_unsafe(c) && c != '\n')
            .collect();
        assert_eq!(raw, Vec::<char>::new(), "{text:?}");
    }
}

// ------------------------------------------ Alertmanager as it really sends

/// Alertmanager's fingerprint of a label set (FNV-1a 64 over the sorted
/// `name 0xff value 0xff` pairs, as `model.LabelSet.Fingerprint`): checked
/// against what Alertmanager 0.25 sent for these labels.
fn fingerprint(labels: &std::collections::BTreeMap<String, String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for b in k.bytes().chain([0xff]).chain(v.bytes()).chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[test]
fn the_fingerprint_is_alertmanagers() {
    let l = [
        ("alertname", "HighErrorRate"),
        ("instance", "api-1:9090"),
        ("service", "api"),
        ("severity", "critical"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(fingerprint(&l), "b5449dc473925ed0");
}

/// One alert as Alertmanager lists it in a webhook.
fn am_alert(name: &str, instance: &str, severity: &str, summary: &str, firing: bool) -> Value {
    let labels: std::collections::BTreeMap<String, String> = [
        ("alertname", name),
        ("instance", instance),
        ("job", "api"),
        ("service", "api"),
        ("severity", severity),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    json!({
        "status": if firing { "firing" } else { "resolved" },
        "labels": labels,
        "annotations": {
            "summary": summary,
            "description": format!("{summary} on {instance}"),
            "runbook_url": format!("https://runbooks.example.com/{name}"),
        },
        "startsAt": "2025-06-03T09:14:27.31Z",
        "endsAt": if firing { "0001-01-01T00:00:00Z" } else { "2025-06-03T09:41:12.31Z" },
        "generatorURL": format!("http://prometheus.example.com:9090/graph?g0.expr=ALERTS%7Balertname%3D%22{name}%22%7D&g0.tab=1"),
        "fingerprint": fingerprint(&labels),
    })
}

/// What every listed alert shares in `field` (Alertmanager's
/// `commonLabels` / `commonAnnotations`).
fn common(alerts: &[Value], field: &str) -> Value {
    let Some(first) = alerts.first() else {
        return json!({});
    };
    let mut m = first[field].as_object().unwrap().clone();
    m.retain(|k, v| alerts.iter().all(|a| a[field].get(k) == Some(v)));
    Value::Object(m)
}

/// A webhook body as Alertmanager 0.25 builds it (compact JSON): the
/// whole group, firing if any of its alerts fires, `groupLabels` from the
/// route's `group_by`, what the alerts share in `commonLabels` and
/// `commonAnnotations`, and the alerts that `max_alerts` cut counted in
/// `truncatedAlerts`.
fn am_body(group_key: &str, group_by: &[&str], alerts: &[Value], truncated: u64) -> Vec<u8> {
    let firing = alerts.iter().any(|a| a["status"] == "firing");
    let group: serde_json::Map<String, Value> = group_by
        .iter()
        .filter_map(|k| {
            alerts
                .first()
                .and_then(|a| a["labels"].get(*k))
                .map(|v| (k.to_string(), v.clone()))
        })
        .collect();
    serde_json::to_vec(&json!({
        "receiver": "hotfix",
        "status": if firing { "firing" } else { "resolved" },
        "alerts": alerts,
        "groupLabels": group,
        "commonLabels": common(alerts, "labels"),
        "commonAnnotations": common(alerts, "annotations"),
        "externalURL": "http://alertmanager.example.com:9093",
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": truncated,
    }))
    .unwrap()
}

/// A route that groups by service only: unrelated alerts share a group.
const BY_SERVICE: &str = "{}:{service=\"api\"}";

fn disk_low(firing: bool) -> Value {
    am_alert(
        "DiskSpaceLow",
        "db-0:9100",
        "warning",
        "Disk space low on db-0",
        firing,
    )
}

fn error_rate(instance: &str, firing: bool) -> Value {
    am_alert(
        "HighErrorRate",
        instance,
        "critical",
        "API 5xx error rate above 5%",
        firing,
    )
}

fn latency(firing: bool) -> Value {
    am_alert(
        "HighLatency",
        "api-1:9090",
        "warning",
        "API p99 latency above 2s",
        firing,
    )
}

/// The base rules, and `HighLatency` proposing `high`.
fn latency_server() -> TestServer {
    TestServer::with(Options {
        config: config_with(
            r#"
[[alerts.rules]]
match = { alertname = "HighLatency" }
severity = "high"
"#,
        ),
        ..Default::default()
    })
}

/// Sends an Alertmanager body and waits for what the worker did.
fn am(t: &TestServer, tok: &str, body: &[u8]) -> String {
    outcome(t, tok, accepted(&send(t, "alertmanager", tok, body)))
}

fn events_named(inc: &Value, ty: &str) -> Vec<Value> {
    inc["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == ty)
        .cloned()
        .collect()
}

fn delivered_step(t: &TestServer, step: &str) -> Vec<Value> {
    t.delivered()
        .into_iter()
        .filter(|m| m["step"] == step)
        .collect()
}

fn triage(t: &TestServer, id: &str, body: Value) -> Resp {
    let lead = t.token(LEAD, ApiRole::TechLead);
    post_json(
        &t.url(&format!("/api/v1/incidents/{id}/triage")),
        Some(&lead),
        &body,
    )
}

#[test]
fn a_group_is_named_titled_and_rated_after_the_alert_its_rule_matched() {
    let t = TestServer::start();
    let tok = t.token("alertmanager@example.com", ApiRole::Developer);
    // Alertmanager happened to list the disk first; only the error rate
    // matches a rule.
    let body = am_body(
        BY_SERVICE,
        &["service"],
        &[disk_low(true), error_rate("api-1:9090", true)],
        0,
    );
    assert_eq!(am(&t, &tok, &body), "declared HF-1");
    let inc = incident(&t, &tok, "HF-1");
    let branch = inc["incident"]["branch"].as_str().unwrap();
    assert!(branch.starts_with("hotfix/high-error-rate-"), "{branch}");
    assert_eq!(
        inc["incident"]["title"],
        "API 5xx error rate above 5% (2 alerts)"
    );
    assert_eq!(inc["incident"]["severity"], "critical");
    assert_eq!(
        alert_events(&inc)[0]["summary"],
        "API 5xx error rate above 5% (2 alerts)"
    );
    t.wait_for("the page", || !pages(&t).is_empty());
    let page = pages(&t)[0]["text"].as_str().unwrap().to_string();
    assert!(
        page.contains("API 5xx error rate above 5% (2 alerts) (alertmanager says critical)"),
        "{page}"
    );
    assert!(
        page.contains("g0.expr=ALERTS%7Balertname%3D%22HighErrorRate"),
        "{page}"
    );
    assert!(!page.to_lowercase().contains("disk"), "{page}");
}

#[test]
fn a_more_severe_alert_joining_the_group_escalates_and_never_lowers() {
    let t = latency_server();
    let tok = t.token("alertmanager@example.com", ApiRole::Developer);
    let slow = am_body(BY_SERVICE, &["service"], &[latency(true)], 0);
    assert_eq!(am(&t, &tok, &slow), "declared HF-1");
    assert_eq!(incident(&t, &tok, "HF-1")["incident"]["severity"], "high");

    // The error rate joins the group: Alertmanager sends the group again.
    let both = am_body(
        BY_SERVICE,
        &["service"],
        &[latency(true), error_rate("api-1:9090", true)],
        0,
    );
    assert_eq!(am(&t, &tok, &both), "escalated HF-1 from high to critical");
    let inc = incident(&t, &tok, "HF-1");
    assert_eq!(inc["incident"]["severity"], "critical");
    let esc = events_named(&inc, "escalated");
    assert_eq!(esc.len(), 1, "{inc}");
    assert_eq!(esc[0]["from"], "high");
    assert_eq!(esc[0]["to"], "critical");
    assert_eq!(esc[0]["actor"], "alertmanager (alert)");
    let reason = esc[0]["reason"].as_str().unwrap();
    assert!(reason.contains("HighErrorRate"), "{reason}");
    // Paged again: the channel's escalation names the tech leads.
    t.wait_for("the escalation is posted", || {
        !delivered_step(&t, "escalated").is_empty()
    });
    let m = &delivered_step(&t, "escalated")[0];
    assert_eq!(m["mentions"], json!([LEAD, LEAD2]), "{m}");
    let text = m["text"].as_str().unwrap();
    assert!(text.contains("escalated from high to critical"), "{text}");

    // Repeats (repeat_interval) and the error rate resolving change nothing.
    // (A byte-identical resend is the same delivery, processed once; the
    // trailing space makes it another delivery that is processed.)
    assert_eq!(am(&t, &tok, &[&both[..], b" "].concat()), "repeat of HF-1");
    let calmer = am_body(
        BY_SERVICE,
        &["service"],
        &[latency(true), error_rate("api-1:9090", false)],
        0,
    );
    assert_eq!(am(&t, &tok, &calmer), "repeat of HF-1");
    let inc = incident(&t, &tok, "HF-1");
    assert_eq!(inc["incident"]["severity"], "critical", "never lowered");
    assert_eq!(events_named(&inc, "escalated").len(), 1);

    // A tech lead who sets a lower severity at triage is not overruled by
    // the same alerts repeating.
    let t = TestServer::start();
    let tok = t.token("alertmanager@example.com", ApiRole::Developer);
    assert_eq!(am(&t, &tok, &both), "declared HF-1");
    let r = triage(&t, "HF-1", json!({"action": "confirm", "severity": "high"}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(am(&t, &tok, &[&both[..], b" "].concat()), "repeat of HF-1");
    assert_eq!(incident(&t, &tok, "HF-1")["incident"]["severity"], "high");
}

/// The command an alert's page and the channel print, as words.
fn command_in(text: &str) -> Vec<String> {
    let start = text
        .find("`hotfix start ")
        .unwrap_or_else(|| panic!("no start command in {text}"));
    let rest = &text[start + 1..];
    rest[..rest.find('`').unwrap()]
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn the_page_says_to_confirm_first_and_prints_the_command_that_runs() {
    let t = TestServer::start();
    let tok = t.token("alertmanager@example.com", ApiRole::Developer);
    let dev = t.token(DEV, ApiRole::Developer);
    assert_eq!(
        am(&t, &tok, &fixture("alertmanager_firing.json")),
        "declared HF-1"
    );
    let inc = incident(&t, &tok, "HF-1");
    let name = inc["events"][0]["name"].as_str().unwrap().to_string();
    let expected: Vec<String> = [
        "hotfix",
        "start",
        &name,
        "--incident",
        "HF-1",
        "--severity",
        "critical",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    t.wait_for("the page and the post", || {
        !pages(&t).is_empty() && !delivered_step(&t, "declared").is_empty()
    });
    let page = pages(&t)[0]["text"].as_str().unwrap().to_string();
    let post = delivered_step(&t, "declared")[0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    for text in [&page, &post] {
        assert_eq!(command_in(text), expected, "{text}");
        assert!(text.contains("hotfix triage HF-1 confirm"), "{text}");
    }

    // The command as printed, sent as `hotfix start` records it: refused
    // in triage (the page says to confirm first), taken once confirmed.
    let take = |t: &TestServer| {
        append(
            t,
            &dev,
            "HF-1",
            json!([{"type": "attempt_started", "attempt": 1, "name": expected[2],
                    "branch": format!("hotfix/{}", expected[2]), "base_sha": sha('a'),
                    "severity": expected[6]}]),
        )
    };
    let r = take(&t);
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("in_triage"), "{}", r.text);
    let r = triage(&t, "HF-1", json!({"action": "confirm"}));
    assert_eq!(r.status, 200, "{}", r.text);
    t.wait_for("the confirmation is posted", || {
        !delivered_step(&t, "confirmed").is_empty()
    });
    let confirmed = delivered_step(&t, "confirmed")[0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(command_in(&confirmed), expected, "{confirmed}");
    let r = take(&t);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(incident(&t, &tok, "HF-1")["incident"]["phase"], "fixing");
}

#[test]
fn a_group_of_1500_alerts_is_accepted_and_counted_with_the_truncated_ones() {
    let t = TestServer::start();
    let tok = t.token("alertmanager@example.com", ApiRole::Developer);
    let key = "{}:{alertname=\"HighErrorRate\", service=\"api\"}";
    let all: Vec<Value> = (0..1500)
        .map(|i| error_rate(&format!("api-7d9f8c6b5-{i:05}:9090"), true))
        .collect();
    // Without `max_alerts`: the whole group, as Alertmanager sends it.
    let body = am_body(key, &["alertname", "service"], &all, 0);
    assert!(body.len() > 700 * 1024, "{} bytes", body.len());
    assert_eq!(am(&t, &tok, &body), "declared HF-1");
    let inc = incident(&t, &tok, "HF-1");
    assert_eq!(
        inc["incident"]["title"],
        "API 5xx error rate above 5% (1500 alerts)"
    );
    // The log keeps the summary, not the group.
    let event = alert_events(&inc)[0].to_string();
    assert!(event.len() < 2000, "{event}");
    let resolved: Vec<Value> = (0..1500)
        .map(|i| error_rate(&format!("api-7d9f8c6b5-{i:05}:9090"), false))
        .collect();
    assert_eq!(
        am(
            &t,
            &tok,
            &am_body(key, &["alertname", "service"], &resolved, 0)
        ),
        "resolved recorded on HF-1"
    );

    // With `max_alerts: 1000`: the rest is counted in `truncatedAlerts`.
    let t = TestServer::start();
    let tok = t.token("alertmanager@example.com", ApiRole::Developer);
    let body = am_body(key, &["alertname", "service"], &all[..1000], 500);
    assert_eq!(am(&t, &tok, &body), "declared HF-1");
    let inc = incident(&t, &tok, "HF-1");
    assert_eq!(
        inc["incident"]["title"],
        "API 5xx error rate above 5% (1500 alerts)"
    );
    assert_eq!(
        alert_events(&inc)[0]["summary"],
        "API 5xx error rate above 5% (1500 alerts)"
    );
    let item = &inbox(&t, &tok)[0];
    assert_eq!(item["alerts"], 1500, "{item}");
}

#[test]
fn a_route_change_gives_the_group_a_new_key_not_a_new_incident() {
    let t = TestServer::start();
    let tok = t.token("alertmanager@example.com", ApiRole::Developer);
    let alerts = [
        error_rate("api-1:9090", true),
        error_rate("api-2:9090", true),
    ];
    let old_key = "{}:{alertname=\"HighErrorRate\", service=\"api\"}";
    let by = ["alertname", "service"];
    assert_eq!(
        am(&t, &tok, &am_body(old_key, &by, &alerts, 0)),
        "declared HF-1"
    );
    // A child route for critical alerts is added: the same alerts now come
    // under another group key.
    let new_key = "{}/{severity=\"critical\"}:{alertname=\"HighErrorRate\", service=\"api\"}";
    let out = am(&t, &tok, &am_body(new_key, &by, &alerts, 0));
    assert!(
        out.starts_with("firing recorded on HF-1") && out.contains("new group key"),
        "{out}"
    );
    assert_eq!(incidents(&t, &tok).len(), 1);
    let resolved = [
        error_rate("api-1:9090", false),
        error_rate("api-2:9090", false),
    ];
    assert_eq!(
        am(&t, &tok, &am_body(new_key, &by, &resolved, 0)),
        "resolved recorded on HF-1"
    );
    assert_eq!(
        incident(&t, &tok, "HF-1")["state"]["alert_status"],
        "resolved"
    );
    // Another group whose alerts were never seen is another incident.
    let other = [error_rate("api-9:9090", true)];
    let other_key = "{}/{severity=\"critical\"}:{alertname=\"HighErrorRate\", service=\"web\"}";
    assert_eq!(
        am(&t, &tok, &am_body(other_key, &by, &other, 0)),
        "declared HF-2"
    );
}

#[test]
fn resolving_and_firing_again_are_posted_to_the_channel() {
    let t = TestServer::start();
    let tok = t.token("alertmanager@example.com", ApiRole::Developer);
    assert_eq!(
        am(&t, &tok, &fixture("alertmanager_firing.json")),
        "declared HF-1"
    );
    assert_eq!(
        am(&t, &tok, &fixture("alertmanager_resolved.json")),
        "resolved recorded on HF-1"
    );
    t.wait_for("the resolve is posted", || {
        !delivered_step(&t, "alert_resolved").is_empty()
    });
    let m = &delivered_step(&t, "alert_resolved")[0];
    assert_eq!(m["incident"], "HF-1");
    let text = m["text"].as_str().unwrap();
    assert!(
        text.contains("HF-1") && text.contains("resolved") && text.contains("stays open"),
        "{text}"
    );
    assert_eq!(
        am(&t, &tok, &fixture("alertmanager_repeat.json")),
        "firing again recorded on HF-1"
    );
    t.wait_for("the new firing is posted", || {
        !delivered_step(&t, "alert_firing").is_empty()
    });
    let m = &delivered_step(&t, "alert_firing")[0];
    assert!(m["text"].as_str().unwrap().contains("firing again"), "{m}");
    assert_eq!(m["mentions"], json!([DEV]));
    // A repeat posts nothing more.
    let r = am(
        &t,
        &tok,
        &with("alertmanager_repeat.json", |v| {
            v["alerts"][0]["annotations"]["description"] = json!("5xx at 13%");
        }),
    );
    assert_eq!(r, "repeat of HF-1");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(delivered_step(&t, "alert_firing").len(), 1);
    assert_eq!(delivered_step(&t, "alert_resolved").len(), 1);
}

#[test]
fn a_merged_incidents_alerts_land_on_the_one_it_was_merged_into() {
    let t = TestServer::start();
    let tok = t.token("alertmanager@example.com", ApiRole::Developer);
    let by = ["alertname", "service"];
    let a_key = "{}:{alertname=\"HighErrorRate\", service=\"api\"}";
    let b_key = "{}:{alertname=\"HighErrorRate\", service=\"checkout\"}";
    let b = |firing| {
        let mut v = error_rate("checkout-1:9090", firing);
        v["labels"]["service"] = json!("checkout");
        v
    };
    assert_eq!(
        am(
            &t,
            &tok,
            &am_body(a_key, &by, &[error_rate("api-1:9090", true)], 0)
        ),
        "declared HF-1"
    );
    assert_eq!(
        am(&t, &tok, &am_body(b_key, &by, &[b(true)], 0)),
        "declared HF-2"
    );
    let r = triage(&t, "HF-2", json!({"action": "merge", "into": "HF-1"}));
    assert_eq!(r.status, 200, "{}", r.text);

    assert_eq!(
        am(&t, &tok, &am_body(b_key, &by, &[b(false)], 0)),
        "resolved recorded on HF-1"
    );
    // It fires again (a new `startsAt`: another delivery).
    let mut again = b(true);
    again["startsAt"] = json!("2025-06-03T12:00:00Z");
    assert_eq!(
        am(&t, &tok, &am_body(b_key, &by, &[again], 0)),
        "firing again recorded on HF-1"
    );
    assert_eq!(incidents(&t, &tok).len(), 2, "nothing new declared");
    let inc = incident(&t, &tok, "HF-1");
    let keys: Vec<String> = alert_events(&inc)
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect();
    assert!(keys.iter().any(|k| k == b_key), "{keys:?}");
    assert_eq!(incident(&t, &tok, "HF-2")["incident"]["phase"], "declined");
}

#[test]
fn a_declined_groups_repeats_are_ignored_until_it_resolves() {
    let t = TestServer::start();
    let tok = t.token("alertmanager@example.com", ApiRole::Developer);
    let firing = fixture("alertmanager_firing.json");
    assert_eq!(am(&t, &tok, &firing), "declared HF-1");
    let r = triage(
        &t,
        "HF-1",
        json!({"action": "decline", "reason": "false_alarm"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(incident(&t, &tok, "HF-1")["incident"]["phase"], "declined");

    // Alertmanager repeats the group (repeat_interval): not a new incident.
    let out = am(&t, &tok, &fixture("alertmanager_repeat.json"));
    assert!(
        out.starts_with("ignored: HF-1 was declined at triage (false alarm)"),
        "{out}"
    );
    assert_eq!(incidents(&t, &tok).len(), 1);
    let before = incident(&t, &tok, "HF-1")["incident"]["version"].clone();

    // It resolves: recorded nowhere (HF-1 is closed), but the next firing
    // is a new incident, as after a close.
    let out = am(&t, &tok, &fixture("alertmanager_resolved.json"));
    assert!(
        out.starts_with("ignored: resolved alert for HF-1, which was declined at triage"),
        "{out}"
    );
    assert_eq!(incident(&t, &tok, "HF-1")["incident"]["version"], before);
    let again = with("alertmanager_firing.json", |v| {
        v["alerts"][0]["startsAt"] = json!("2025-06-03T12:00:00Z");
    });
    assert_eq!(am(&t, &tok, &again), "declared HF-2");
}

#[test]
fn inbox_items_say_what_they_were_and_the_counter_counts_deliveries() {
    let t = TestServer::start();
    let tok = t.token(LEAD, ApiRole::TechLead);
    let body = am_body(
        BY_SERVICE,
        &["service"],
        &[disk_low(true), error_rate("api-1:9090", true)],
        0,
    );
    // Alertmanager retries the same delivery after a timeout.
    let first = accepted(&send(&t, "alertmanager", &tok, &body));
    assert_eq!(accepted(&send(&t, "alertmanager", &tok, &body)), first);
    outcome(&t, &tok, first);
    let generic = accepted(&send(&t, "generic", &tok, &fixture("generic_firing.json")));
    outcome(&t, &tok, generic);
    let items = inbox(&t, &tok);
    let am_item = items.iter().find(|i| i["id"] == first).unwrap();
    assert_eq!(am_item["source"], "alertmanager");
    assert_eq!(am_item["key"], BY_SERVICE, "{am_item}");
    assert_eq!(am_item["alertname"], "HighErrorRate", "{am_item}");
    assert_eq!(am_item["status"], "firing");
    assert_eq!(am_item["alerts"], 2);
    let g = items.iter().find(|i| i["id"] == generic).unwrap();
    assert_eq!(g["key"], "uptime-checkout-https", "{g}");
    assert_eq!(g["source"], "generic");

    let m = get(&t.url("/metrics"), None, &[]).text;
    assert!(
        m.contains("hotfix_alerts_received_total{source=\"alertmanager\"} 1"),
        "one delivery, however often it was retried:\n{m}"
    );
    assert!(
        m.contains("hotfix_alerts_received_total{source=\"generic\"} 1"),
        "{m}"
    );
    let help = m
        .lines()
        .find(|l| l.starts_with("# HELP hotfix_alerts_received_total"))
        .unwrap();
    assert!(help.contains("deliveries"), "{help}");
}

#[test]
fn an_intake_token_only_posts_alerts() {
    let t = TestServer::start();
    let admin = t.token("admin@example.com", ApiRole::Admin);
    // Created over the API (and with `hotfix serve token create --role intake`).
    let r = post_json(
        &t.url("/api/v1/tokens"),
        Some(&admin),
        &json!({"user": "alertmanager@example.com", "role": "intake"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["role"], "intake");
    let intake = r.json()["token"].as_str().unwrap().to_string();

    // Bearer and basic auth both post alerts.
    let id = accepted(&send(
        &t,
        "alertmanager",
        &intake,
        &fixture("alertmanager_firing.json"),
    ));
    let basic = format!("Basic {}", b64(&format!("alertmanager:{intake}")));
    accepted(&post(
        &t.url("/api/v1/alerts/alertmanager"),
        None,
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &basic),
        ],
        &fixture("alertmanager_repeat.json"),
    ));
    assert_eq!(outcome(&t, &admin, id), "declared HF-1");

    // Nothing else.
    let forbidden = |r: Resp, what: &str| {
        assert_eq!(r.status, 403, "{what}: {}", r.text);
        assert!(r.text.contains("intake"), "{what}: {}", r.text);
    };
    forbidden(get(&t.url("/api/v1/incidents"), Some(&intake), &[]), "list");
    forbidden(
        get(&t.url("/api/v1/incidents/HF-1"), Some(&intake), &[]),
        "show",
    );
    forbidden(get(&t.url("/api/v1/inbox"), Some(&intake), &[]), "inbox");
    forbidden(get(&t.url("/api/v1/me"), Some(&intake), &[]), "me");
    forbidden(
        append(&t, &intake, "HF-1", json!([{"type": "note", "text": "x"}])),
        "append",
    );
    forbidden(approve(&t, &intake, "HF-1"), "approve");
    forbidden(
        post_json(
            &t.url("/api/v1/incidents/HF-1/triage"),
            Some(&intake),
            &json!({"action": "decline", "reason": "false_alarm"}),
        ),
        "triage",
    );
    forbidden(
        try_declare(
            &t,
            &intake,
            &json!({"name": "x", "severity": "critical", "base_sha": sha('a')}),
        ),
        "declare",
    );
    forbidden(
        post_json(
            &t.url("/api/v1/tokens"),
            Some(&intake),
            &json!({"user": "x@example.com", "role": "admin"}),
        ),
        "tokens",
    );
    // The dashboard neither shows it anything nor signs it in.
    let r = get(&t.url("/"), Some(&intake), &[]);
    assert_eq!(r.status, 403, "{}", r.text);
    let r = post(
        &t.url("/login"),
        None,
        &[
            ("Origin", &t.base),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        format!("token={intake}&next=%2F").as_bytes(),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.set_cookie.is_empty(), "{:?}", r.set_cookie);
    let inc = incident(&t, &admin, "HF-1");
    assert_eq!(inc["events"].as_array().unwrap().len(), 3, "{inc}");
}
