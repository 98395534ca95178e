//! The `/hotfix` slash command over real HTTP on a real store: Slack's
//! signature and replay window, the channel and person checks, declare,
//! status and approve under the API's rules, and the 3-second answer.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use hotfix_core::team::ApiRole;
use hotfix_providers::signature::{sign_hmac_sha256_hex, verify_slack};
use hotfix_server::Secrets;
use serde_json::{Value, json};

/// Slack's limit; the server must answer well within it.
const SLACK_DEADLINE: Duration = Duration::from_secs(3);

fn config() -> String {
    base_config().replace(
        "[server.slack_users]\n",
        &format!("[server.slack_users]\nU0LEAD2 = \"{LEAD2}\"\nU0REV = \"{REVIEWER}\"\n"),
    )
}

fn server(backend: Backend) -> TestServer {
    TestServer::with(Options {
        config: config(),
        backend,
        ..Default::default()
    })
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/slack/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// `application/x-www-form-urlencoded`, as Slack encodes it.
fn form(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The fields Slack sends for `/hotfix <text>` by `user` in `channel`.
fn command_body(user: &str, channel: &str, text: &str) -> String {
    form(&[
        ("token", "gIkuvaNzQIHg97ATvDxqgjtO"),
        ("team_id", "T0001"),
        ("team_domain", "acme"),
        ("channel_id", "C2147483705"),
        ("channel_name", channel),
        ("user_id", user),
        ("user_name", "someone"),
        ("command", "/hotfix"),
        ("text", text),
        ("response_url", "https://hooks.slack.com/commands/1234/5678"),
        ("trigger_id", "13345224609.738474920.8088930838d88f008e0"),
        ("api_app_id", "A123456"),
    ])
}

fn now_s() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// `X-Slack-Signature` of `body` sent at `ts`, under `secret`.
fn signature(secret: &str, ts: i64, body: &str) -> String {
    format!(
        "v0={}",
        sign_hmac_sha256_hex(secret.as_bytes(), format!("v0:{ts}:{body}").as_bytes())
    )
}

/// Posts `body` signed over `ts`, and checks the 3-second requirement.
fn signed(t: &TestServer, body: &str, ts: i64) -> Resp {
    raw(t, body, &ts.to_string(), &signature(SLACK_SECRET, ts, body))
}

/// The text of a reply.
fn reply_text(v: &Value) -> &str {
    v["text"].as_str().unwrap()
}

fn raw(t: &TestServer, body: &str, ts: &str, sig: &str) -> Resp {
    let started = Instant::now();
    let r = post(
        &t.url("/api/v1/slack/commands"),
        None,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Slack-Request-Timestamp", ts),
            ("X-Slack-Signature", sig),
            ("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)"),
        ],
        body.as_bytes(),
    );
    let took = started.elapsed();
    assert!(
        took < SLACK_DEADLINE,
        "Slack needs an answer within 3 s; this one took {took:?}"
    );
    r
}

/// `/hotfix <text>` by `user` in #dev-alerts: the reply (always 200).
fn slash(t: &TestServer, user: &str, text: &str) -> Value {
    let r = signed(t, &command_body(user, "dev-alerts", text), now_s());
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert!(
        v["response_type"] == "ephemeral" || v["response_type"] == "in_channel",
        "{v}"
    );
    v
}

fn incidents(t: &TestServer) -> Vec<Value> {
    let admin = t.token("admin@example.com", ApiRole::Admin);
    let r = get(&t.url("/api/v1/incidents?state=all"), Some(&admin), &[]);
    r.json()["incidents"].as_array().unwrap().clone()
}

fn incident(t: &TestServer, id: &str) -> Value {
    let admin = t.token("admin@example.com", ApiRole::Admin);
    let r = get(
        &t.url(&format!("/api/v1/incidents/{id}")),
        Some(&admin),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

/// The developer takes the reported incident (`hotfix start NAME
/// --incident`), pushes the fix and the preview passes (as the CLI records it).
fn pushed_and_smoke_passed(t: &TestServer, id: &str) {
    let dev = t.token(DEV, ApiRole::Developer);
    let shown = &incident(t, id)["incident"];
    let name = shown["branch"]
        .as_str()
        .unwrap()
        .trim_start_matches("hotfix/")
        .to_string();
    let mut events = vec![
        json!({"type": "attempt_started", "attempt": 1, "name": name, "branch": format!("hotfix/{name}"), "base_sha": sha('a'), "severity": shown["severity"]}),
    ];
    events.extend(push_events());
    events.extend(preview_events());
    let r = append(t, &dev, id, Value::Array(events));
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn slacks_documented_example_verifies_and_is_refused_as_a_replay_today() {
    let meta: Value = serde_json::from_str(&fixture("documented_request.json")).unwrap();
    let body = fixture("documented_request.body");
    let ts = meta["timestamp"].as_str().unwrap();
    let sig = meta["signature"].as_str().unwrap();
    assert_eq!(meta["signing_secret"], SLACK_SECRET);
    assert!(sig.starts_with("v0=a2114d57"));
    let then: i64 = ts.parse().unwrap();
    assert_eq!(
        verify_slack(
            SLACK_SECRET.as_bytes(),
            ts,
            body.as_bytes(),
            sig,
            then + 5,
            300
        ),
        Ok(())
    );
    assert!(
        verify_slack(
            SLACK_SECRET.as_bytes(),
            ts,
            format!("{body}x").as_bytes(),
            sig,
            then + 5,
            300
        )
        .is_err()
    );
    // The same signed request sent now is years old: a replay.
    let t = server(Backend::Sqlite);
    let r = raw(&t, &body, ts, sig);
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("away from now")
    );
}

#[test]
fn unsigned_stale_or_tampered_requests_are_refused_and_do_nothing() {
    let t = server(Backend::Sqlite);
    let body = command_body(
        "U0DEV",
        "dev-alerts",
        "declare critical pdf-crash PDF export crashes",
    );
    // Ten minutes old, properly signed.
    let r = signed(&t, &body, now_s() - 600);
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "unauthorized");
    // Signed, then changed on the way.
    let ts = now_s();
    let sig = signature(SLACK_SECRET, ts, &body);
    let tampered = body.replace("critical", "high");
    let r = raw(&t, &tampered, &ts.to_string(), &sig);
    assert_eq!(r.status, 401, "{}", r.text);
    // Signed with another secret.
    let other = signature("another secret", ts, &body);
    assert_eq!(raw(&t, &body, &ts.to_string(), &other).status, 401);
    // No signature headers at all.
    let r = post(
        &t.url("/api/v1/slack/commands"),
        None,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 401);
    assert!(!r.text.contains(SLACK_SECRET));
    assert!(incidents(&t).is_empty(), "nothing was declared");
    let metrics = get(&t.url("/metrics"), None, &[]).text;
    assert!(
        metrics.contains(r#"hotfix_rejected_total{source="slack",reason="expired"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"hotfix_rejected_total{source="slack",reason="bad_signature"} 3"#),
        "{metrics}"
    );
    // The same body, signed now: it goes through.
    let r = signed(&t, &body, now_s());
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(incidents(&t).len(), 1);
}

#[test]
fn without_a_signing_secret_the_command_is_off() {
    let t = TestServer::with(Options {
        config: config(),
        secrets: Secrets::default(),
        ..Default::default()
    });
    let r = signed(&t, &command_body("U0DEV", "dev-alerts", "status"), now_s());
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.text.contains("SLACK_SIGNING_SECRET"), "{}", r.text);
}

#[test]
fn only_the_incident_channel_and_mapped_people() {
    let t = server(Backend::Sqlite);
    let r = signed(
        &t,
        &command_body("U0DEV", "random", "declare critical pdf-crash"),
        now_s(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["response_type"], "ephemeral");
    assert!(
        reply_text(&r.json()).contains("use /hotfix in #dev-alerts"),
        "{}",
        r.text
    );
    let v = slash(&t, "U0NOBODY", "declare critical pdf-crash");
    assert_eq!(v["response_type"], "ephemeral");
    assert!(reply_text(&v).contains("[server.slack_users]"), "{v}");
    assert!(incidents(&t).is_empty(), "nothing was declared");
    // Not a slash command form at all (signed, so answered 200 with why).
    let r = signed(&t, "this is not a form", now_s());
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["response_type"], "ephemeral");
    assert!(
        reply_text(&r.json()).contains("could not read"),
        "{}",
        r.text
    );
    // Help, and a typo.
    let v = slash(&t, "U0DEV", "");
    assert!(reply_text(&v).contains("/hotfix declare"), "{v}");
    let v = slash(&t, "U0DEV", "deploy HF-1");
    assert!(reply_text(&v).contains("not a /hotfix subcommand"), "{v}");
    // Medium is not a hotfix.
    let v = slash(&t, "U0DEV", "declare medium button-colour");
    assert!(reply_text(&v).contains("normal release"), "{v}");
    assert!(incidents(&t).is_empty());
}

/// Declare, status, approve: the whole Slack path of one incident.
fn declare_status_approve(backend: Backend) {
    let t = server(backend);
    // A tech lead declares from #dev-alerts.
    let v = slash(
        &t,
        "U0LEAD2",
        "declare critical pdf-crash PDF export crashes for everyone",
    );
    assert_eq!(v["response_type"], "in_channel", "{v}");
    let text = reply_text(&v);
    assert!(text.contains("HF-1"), "{text}");
    // Reported from Slack: in triage until a tech lead confirms it.
    assert!(text.contains("hotfix triage HF-1 confirm"), "{text}");
    let d = incident(&t, "HF-1");
    assert_eq!(d["incident"]["phase"], "triage");
    assert_eq!(d["incident"]["severity"], "critical");
    assert_eq!(d["incident"]["declared_by"], LEAD2);
    assert_eq!(d["incident"]["title"], "PDF export crashes for everyone");
    assert_eq!(d["incident"]["branch"], "hotfix/pdf-crash");
    // Declaring it twice does not open a second one.
    let v = slash(&t, "U0DEV", "declare high pdf-crash");
    assert!(reply_text(&v).contains("already open"), "{v}");
    assert_eq!(incidents(&t).len(), 1);
    t.wait_for("the declaration notification", || {
        t.delivered().iter().any(|m| m["step"] == "declared")
    });

    // Status lists it.
    let v = slash(&t, "U0DEV", "status");
    assert_eq!(v["response_type"], "ephemeral");
    let text = reply_text(&v);
    assert!(
        text.contains("HF-1") && text.contains("critical") && text.contains("triage"),
        "{text}"
    );
    assert!(text.contains("PDF export crashes"), "{text}");

    // Nothing to approve before the push.
    let v = slash(&t, "U0LEAD", "approve HF-1");
    assert!(reply_text(&v).contains("not been pushed"), "{v}");

    // The other tech lead confirms it; the channel is told how to take it.
    let v = slash(&t, "U0LEAD", "confirm HF-1");
    assert_eq!(v["response_type"], "in_channel", "{v}");
    let text = reply_text(&v);
    assert!(
        text.contains("hotfix start pdf-crash --incident HF-1 --severity critical"),
        "{text}"
    );
    assert_eq!(incident(&t, "HF-1")["incident"]["phase"], "reported");

    pushed_and_smoke_passed(&t, "HF-1");
    assert_eq!(
        incident(&t, "HF-1")["incident"]["phase"],
        "awaiting_approval"
    );

    // The tech lead who declared it is its author: refused.
    let v = slash(&t, "U0LEAD2", "approve HF-1");
    assert_eq!(v["response_type"], "ephemeral");
    assert!(
        reply_text(&v).contains("nobody approves their own hotfix"),
        "{v}"
    );
    // The developer is not an approver.
    let v = slash(&t, "U0DEV", "approve HF-1");
    assert!(reply_text(&v).contains("may not approve"), "{v}");
    assert!(
        incident(&t, "HF-1")["approvals"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The other tech lead approves: ready to ship.
    let v = slash(&t, "U0LEAD", "approve hf-1");
    assert_eq!(v["response_type"], "in_channel", "{v}");
    let text = reply_text(&v);
    assert!(
        text.contains("approved by lead@example.com as tech lead at bbbbbbb"),
        "{text}"
    );
    assert!(text.contains("ready_to_ship"), "{text}");
    let d = incident(&t, "HF-1");
    assert_eq!(d["incident"]["phase"], "ready_to_ship");
    assert_eq!(d["approvals"][0]["by"], LEAD);
    assert_eq!(d["approvals"][0]["role"], "tech_lead");
    assert_eq!(d["approvals"][0]["source"], "slack");
    let v = slash(&t, "U0LEAD", "approve HF-1");
    assert!(reply_text(&v).contains("already approved"), "{v}");
    assert_eq!(
        incident(&t, "HF-1")["approvals"].as_array().unwrap().len(),
        1
    );

    // One incident in detail.
    let v = slash(&t, "U0DEV", "status HF-1");
    let text = reply_text(&v);
    assert!(text.contains("ready_to_ship"), "{text}");
    assert!(text.contains("lead@example.com (tech lead)"), "{text}");
    assert!(text.contains("hotfix ship HF-1"), "{text}");
    let v = slash(&t, "U0DEV", "status HF-99");
    assert!(reply_text(&v).contains("no incident HF-99"), "{v}");
}

#[test]
fn declare_status_approve_sqlite() {
    declare_status_approve(Backend::Sqlite);
}

#[test]
fn declare_status_approve_postgres() {
    let Some(url) = pg_url() else { return };
    declare_status_approve(Backend::Postgres {
        url,
        schema: unique_schema("slack"),
    });
}

#[test]
fn security_incidents_show_no_details() {
    let t = server(Backend::Sqlite);
    let v = slash(
        &t,
        "U0DEV",
        "declare critical auth-bypass Tokens accepted after logout --security",
    );
    assert_eq!(v["response_type"], "in_channel");
    let text = reply_text(&v);
    assert!(text.contains("HF-1"), "{text}");
    assert!(!text.contains("Tokens accepted"), "{text}");
    for cmd in ["status", "status HF-1"] {
        let v = slash(&t, "U0DEV", cmd);
        let text = reply_text(&v);
        assert!(
            text.contains("HF-1") && text.contains("restricted"),
            "{text}"
        );
        assert!(
            !text.contains("Tokens accepted") && !text.contains("auth-bypass"),
            "{text}"
        );
    }
    // The title is kept, just not shown.
    assert!(
        incident(&t, "HF-1")["incident"]["security"]
            .as_bool()
            .unwrap()
    );
    let s = hotfix_server::ops::load(&t.st, hotfix_core::id::IncidentId(1)).unwrap();
    assert_eq!(s.title, "Tokens accepted after logout");
}

/// A slow store must not make Slack time out: the answer comes within the
/// deadline and says the result will show in the channel. The store is made
/// slow for real, by a transaction that locks the incidents table.
#[test]
fn a_slow_store_still_gets_an_answer_within_three_seconds() {
    let Some(url) = pg_url() else { return };
    let schema = unique_schema("slackslow");
    let t = server(Backend::Postgres {
        url: url.clone(),
        schema: schema.clone(),
    });
    let v = slash(&t, "U0DEV", "declare high pdf-crash");
    assert_eq!(v["response_type"], "in_channel", "{v}");
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute(&format!(
        "SET search_path TO {schema}; BEGIN; LOCK TABLE incidents, event_watermark IN ACCESS EXCLUSIVE MODE;"
    ))
    .unwrap();
    let v = slash(&t, "U0DEV", "status");
    assert!(reply_text(&v).contains("still working"), "{v}");
    c.batch_execute("COMMIT").unwrap();
    // Once the store is back, the answers are too.
    t.wait_for("the store answering again", || {
        reply_text(&slash(&t, "U0DEV", "status")).contains("HF-1")
    });
}

/// An incident whose log holds raw control characters (an older hotfix
/// wrote them, or a hand edit): the status list and the incident's reply
/// show them escaped, so nothing in Slack reads differently from what it is.
#[test]
fn replies_show_control_characters_escaped() {
    let t = server(Backend::Sqlite);
    let evil = "\u{1b}[31mPDF\u{7} export\r\nHF-9 closed \u{202e}gpj.exe";
    t.st.store
        .declare(
            &hotfix_core::event::NewEvent {
                at: jiff::Timestamp::now(),
                actor: format!("old\u{1b}[2J{DEV}"),
                kind: hotfix_core::event::EventKind::Declared {
                    name: "pdf-crash".into(),
                    title: evil.into(),
                    severity: hotfix_core::Severity::Critical,
                    customer_facing: false,
                    security: false,
                    branch: "hotfix/pdf-crash".into(),
                    base_sha: String::new(),
                },
            },
            &|_| vec![],
        )
        .unwrap();
    for text in ["status", "status HF-1"] {
        let v = slash(&t, "U0LEAD2", text);
        let reply = reply_text(&v);
        assert!(
            reply.contains("\\u{1b}[31mPDF\\u{7} export\\r\\nHF-9"),
            "{text}: {reply}"
        );
        let raw: Vec<char> = reply
            .chars()
            .filter(|&c| hotfix_core::display::is_unsafe(c) && c != '\n')
            .collect();
        assert_eq!(raw, Vec::<char>::new(), "{text}: {reply:?}");
    }
}
