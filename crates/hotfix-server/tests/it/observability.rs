//! The server's log and metrics, seen from outside: a real server on
//! 127.0.0.1 spoken to over HTTP, its log captured in both formats (the
//! same layers `hotfix serve` installs, writing to buffers instead of
//! stderr), its `/metrics` read back and checked with the real `promtool`.
//!
//! The log is global to the process: every test here shares one capture
//! and finds its own lines by their request ids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::*;
use hotfix_core::team::ApiRole;
use hotfix_server::log::{Format, Settings, layer};
use serde_json::{Value, json};
use tracing_subscriber::Layer as _;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;

/// A log sink: everything written to it, kept.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Sink {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = Sink;
    fn make_writer(&'a self) -> Sink {
        self.clone()
    }
}

struct Captured {
    text: Sink,
    json: Sink,
}

/// The process's log: the text and the JSON layer side by side, each
/// behind the filter `HOTFIX_LOG=info` makes.
fn captured() -> &'static Captured {
    static LOG: OnceLock<Captured> = OnceLock::new();
    LOG.get_or_init(|| {
        let (text, json) = (Sink::default(), Sink::default());
        let filter = || Settings::parse(Some("info"), None).unwrap().filter;
        let subscriber = tracing_subscriber::registry()
            .with(layer(Format::Text, text.clone()).with_filter(filter()))
            .with(layer(Format::Json, json.clone()).with_filter(filter()));
        tracing::subscriber::set_global_default(subscriber).unwrap();
        Captured { text, json }
    })
}

/// The log's lines (both formats) that mention `request_id`, waiting a
/// little for them: a response can reach the client just before the
/// line about it is written.
fn lines_of(
    request_id: &str,
    want: impl Fn(&[String], &[Value]) -> bool,
) -> (Vec<String>, Vec<Value>) {
    let log = captured();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text: Vec<String> = log
            .text
            .text()
            .lines()
            .filter(|l| l.contains(&format!("request_id={request_id}")))
            .map(String::from)
            .collect();
        let json: Vec<Value> = log
            .json
            .text()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .filter(|v| v["span"]["request_id"] == request_id)
            .collect();
        if want(&text, &json) || std::time::Instant::now() > deadline {
            return (text, json);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `req` with `x-request-id: id`; returns the status and the id the
/// answer carries back.
fn send(
    req: ureq::RequestBuilder<ureq::typestate::WithBody>,
    id: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let req = match id {
        Some(id) => req.header("x-request-id", id),
        None => req,
    };
    let r = req.send(body).expect("the server answers");
    let echoed = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (r.status().as_u16(), echoed)
}

fn send_get(
    req: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
    id: Option<&str>,
) -> (u16, String) {
    let req = match id {
        Some(id) => req.header("x-request-id", id),
        None => req,
    };
    let r = req.call().expect("the server answers");
    let echoed = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (r.status().as_u16(), echoed)
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The one refusal line of a request, in each format: status, rule, reason,
/// and the request's method and path from its span.
fn assert_refusal(
    id: &str,
    status: u16,
    rule: Option<&str>,
    reason_has: &str,
    method: &str,
    path: &str,
) {
    let (text, json) = lines_of(id, |t, j| {
        t.iter().any(|l| l.contains("request refused"))
            && j.iter().any(|v| v["message"] == "request refused")
    });
    let line = text
        .iter()
        .find(|l| l.contains("request refused"))
        .unwrap_or_else(|| panic!("no text refusal line for {id}: {text:#?}"));
    let level = if status == 422 { " INFO " } else { " WARN " };
    for part in [
        level,
        &format!("method={method}"),
        &format!("path={path}"),
        &format!("status={status}"),
        &format!("rule=\"{}", rule.unwrap_or("")),
        reason_has,
    ] {
        assert!(line.contains(part), "{id}: no `{part}` in {line}");
    }
    let v = json
        .iter()
        .find(|v| v["message"] == "request refused")
        .unwrap_or_else(|| panic!("no JSON refusal line for {id}: {json:#?}"));
    assert_eq!(v["level"], level.trim(), "{v}");
    assert_eq!(v["status"], status, "{v}");
    match rule {
        Some(rule) => assert_eq!(v["rule"], rule, "{v}"),
        // The rulebook's own code, whichever it is.
        None => assert!(
            v["rule"]
                .as_str()
                .is_some_and(|r| !r.is_empty() && r != "-"),
            "{v}"
        ),
    }
    assert!(v["reason"].as_str().unwrap().contains(reason_has), "{v}");
    assert_eq!(v["span"]["method"], method, "{v}");
    assert_eq!(v["span"]["path"], path, "{v}");
    // Each request is also logged once when it is answered.
    assert!(
        json.iter()
            .any(|v| v["message"] == "finished processing request"
                && v["status"] == status
                && v["level"] == "INFO"),
        "{id}: {json:#?}"
    );
}

#[test]
fn refused_requests_are_logged_with_their_reason_and_never_with_a_credential() {
    captured();
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let intake = t.token("alertmanager@example.com", ApiRole::Intake);
    // A token of the right shape that the store does not know.
    let stranger = hotfix_server::auth::generate_token();
    let a = agent();
    let incidents = t.url("/api/v1/incidents");

    // 401: an unknown bearer token.
    let (s, echoed) = send_get(
        a.get(incidents.as_str())
            .header("Authorization", &format!("Bearer {stranger}")),
        Some("t-unknown"),
    );
    assert_eq!(
        (s, echoed.as_str()),
        (401, "t-unknown"),
        "the id is sent back"
    );
    assert_refusal(
        "t-unknown",
        401,
        Some("unauthorized"),
        "unknown or revoked API token",
        "GET",
        "/api/v1/incidents",
    );

    // 401: the token without `Bearer ` (the message must not repeat it).
    let (s, _) = send_get(
        a.get(incidents.as_str()).header("Authorization", &dev),
        Some("t-noscheme"),
    );
    assert_eq!(s, 401);
    assert_refusal(
        "t-noscheme",
        401,
        Some("unauthorized"),
        "malformed Authorization header",
        "GET",
        "/api/v1/incidents",
    );

    // 401: basic auth carrying an unknown token.
    let basic = b64(&format!("alertmanager:{stranger}"));
    let (s, _) = send(
        a.post(t.url("/api/v1/alerts/alertmanager"))
            .header("Authorization", &format!("Basic {basic}"))
            .header("Content-Type", "application/json"),
        Some("t-basic"),
        b"{}",
    );
    assert_eq!(s, 401);
    assert_refusal(
        "t-basic",
        401,
        Some("unauthorized"),
        "",
        "POST",
        "/api/v1/alerts/alertmanager",
    );

    // 401: a write with only the dashboard's cookie.
    let (s, _) = send(
        a.post(incidents.as_str())
            .header("Cookie", &format!("hotfix_session={dev}"))
            .header("Content-Type", "application/json"),
        Some("t-cookie"),
        br#"{"name":"x","severity":"high"}"#,
    );
    assert_eq!(s, 401);
    assert_refusal(
        "t-cookie",
        401,
        Some("unauthorized"),
        "the browser session only reads",
        "POST",
        "/api/v1/incidents",
    );

    // 403: an intake token on the incidents.
    let (s, _) = send_get(
        a.get(incidents.as_str())
            .header("Authorization", &format!("Bearer {intake}")),
        Some("t-intake"),
    );
    assert_eq!(s, 403);
    assert_refusal(
        "t-intake",
        403,
        Some("forbidden"),
        "has an intake token",
        "GET",
        "/api/v1/incidents",
    );

    // 401: a GitHub delivery signed with another secret.
    let body = br#"{"zen":"hi"}"#;
    let bad_sig = format!(
        "sha256={}",
        hotfix_providers::signature::sign_hmac_sha256_hex(b"not the secret", body)
    );
    let (s, _) = send(
        a.post(t.url("/api/v1/webhooks/github"))
            .header("X-Hub-Signature-256", &bad_sig)
            .header("X-GitHub-Event", "ping")
            .header("Content-Type", "application/json"),
        Some("t-github"),
        body,
    );
    assert_eq!(s, 401);
    assert_refusal(
        "t-github",
        401,
        Some("unauthorized"),
        "X-Hub-Signature-256",
        "POST",
        "/api/v1/webhooks/github",
    );

    // 401: a Slack command with a wrong signature.
    let slack_sig = format!("v0={}", "ab".repeat(32));
    let (s, _) = send(
        a.post(t.url("/api/v1/slack/commands"))
            .header(
                "X-Slack-Request-Timestamp",
                &jiff::Timestamp::now().as_second().to_string(),
            )
            .header("X-Slack-Signature", &slack_sig)
            .header("Content-Type", "application/x-www-form-urlencoded"),
        Some("t-slack"),
        b"command=%2Fhotfix&text=status",
    );
    assert_eq!(s, 401);
    assert_refusal(
        "t-slack",
        401,
        Some("unauthorized"),
        "not a signed Slack request",
        "POST",
        "/api/v1/slack/commands",
    );

    // 422: the rulebook says no (a severity the hotfix process does not take).
    let (s, _) = send(
        a.post(incidents.as_str())
            .header("Authorization", &format!("Bearer {dev}"))
            .header("Content-Type", "application/json"),
        Some("t-rulebook"),
        br#"{"name":"x","severity":"medium"}"#,
    );
    assert_eq!(s, 422);
    assert_refusal(
        "t-rulebook",
        422,
        None,
        "normal release",
        "POST",
        "/api/v1/incidents",
    );

    // No id sent: one is made, sent back, and the log uses it.
    let (s, made) = send_get(
        a.get(incidents.as_str())
            .header("Authorization", &format!("Bearer {stranger}")),
        None,
    );
    assert_eq!(s, 401);
    assert_eq!(made.len(), 36, "a UUID: {made}");
    assert_refusal(
        &made,
        401,
        Some("unauthorized"),
        "unknown or revoked",
        "GET",
        "/api/v1/incidents",
    );

    // Not one credential in either format.
    let log = captured();
    for (format, all) in [("text", log.text.text()), ("json", log.json.text())] {
        for secret in [
            stranger.as_str(),
            &stranger[3..],
            &dev,
            &dev[3..],
            &intake,
            &basic,
            &bad_sig[7..],
            &slack_sig[3..],
            GITHUB_SECRET,
            SLACK_SECRET,
        ] {
            assert!(
                !all.contains(secret),
                "{format} log has a credential ({secret}):\n{all}"
            );
        }
        assert!(
            !all.to_ascii_lowercase().contains("authorization: "),
            "{format}:\n{all}"
        );
    }
}

#[test]
fn a_control_character_in_a_logged_value_cannot_forge_a_line() {
    let log = captured();
    let hostile = "pdf\r\n2026-01-01T00:00:00Z ERROR hotfix: forged \x1b[31mred";
    {
        let span =
            tracing::info_span!("request", request_id = %"t-hostile", incident_name = %hostile);
        let _in = span.enter();
        tracing::warn!(incident = %hostile, quoted = hostile, "incident {hostile} says");
    }
    let (text, json) = lines_of("t-hostile", |t, j| !t.is_empty() && !j.is_empty());
    // One event, one line, in each format.
    assert_eq!(text.len(), 1, "{text:#?}");
    let line = &text[0];
    assert!(line.contains(" WARN "), "{line}");
    assert!(
        line.contains(r"pdf\r\n2026-01-01T00:00:00Z ERROR hotfix: forged \u{1b}[31mred"),
        "{line}"
    );
    assert!(
        !log.text
            .text()
            .lines()
            .any(|l| l.starts_with("2026-01-01T00:00:00Z ERROR"))
    );
    assert!(!log.text.text().contains('\x1b') && !log.text.text().contains('\r'));
    assert_eq!(json.len(), 1, "{json:#?}");
    // JSON keeps the value as it was (escaped on the wire, exact once parsed).
    assert_eq!(json[0]["incident"], hostile);
    assert_eq!(json[0]["quoted"], hostile);
    assert_eq!(json[0]["span"]["incident_name"], hostile);
    assert_eq!(json[0]["message"], format!("incident {hostile} says"));
}

/// `promtool check metrics` on `text`: `Ok(())` when it is clean, the
/// problems it printed otherwise; `None` when there is no promtool (which
/// fails the test under `CI=true`, where `.ci/run` installs it).
fn promtool(text: &str) -> Option<Result<(), String>> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "promtool is not installed (Debian package `prometheus`); CI must have it"
            );
            eprintln!("SKIPPED the promtool check: promtool is not installed");
            return None;
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {said}", out.status))
    })
}

#[test]
fn metrics_pass_promtool_and_time_requests_by_route_method_and_status_class() {
    captured();
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    for _ in 0..2 {
        assert_eq!(get(&t.url("/healthz"), None, &[]).status, 200);
    }
    let incident = declare(
        &t,
        &dev,
        json!({"name": "pdf-crash", "severity": "critical"}),
    );
    assert_eq!(
        get(
            &t.url(&format!("/api/v1/incidents/{incident}")),
            Some(&dev),
            &[]
        )
        .status,
        200
    );
    assert_eq!(
        get(&t.url("/api/v1/incidents"), Some("hf_nobody"), &[]).status,
        401
    );
    assert_eq!(get(&t.url("/no/such/page"), None, &[]).status, 404);
    let r = get(&t.url("/metrics"), None, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    let m = r.text;
    for line in [
        "# TYPE hotfix_http_requests_total counter",
        r#"hotfix_http_requests_total{route="/healthz",method="GET",status="200"} 2"#,
        r#"hotfix_http_requests_total{route="/api/v1/incidents/{id}",method="GET",status="200"} 1"#,
        r#"hotfix_http_requests_total{route="/api/v1/incidents",method="GET",status="401"} 1"#,
        "# TYPE hotfix_http_request_duration_seconds histogram",
        r#"hotfix_http_request_duration_seconds_count{route="/healthz",method="GET",status_class="2xx"} 2"#,
        r#"hotfix_http_request_duration_seconds_bucket{route="/healthz",method="GET",status_class="2xx",le="+Inf"} 2"#,
        r#"hotfix_http_request_duration_seconds_count{route="/api/v1/incidents",method="POST",status_class="2xx"} 1"#,
        r#"hotfix_http_request_duration_seconds_count{route="/api/v1/incidents",method="GET",status_class="4xx"} 1"#,
        r#"hotfix_http_request_duration_seconds_count{route="unmatched",method="GET",status_class="4xx"} 1"#,
        "hotfix_incidents_declared_total 1",
        r#"hotfix_incidents_open{severity="critical",phase="triage"} 1"#,
        "# TYPE hotfix_incidents_declined_total counter",
        r#"hotfix_incidents_declined_total{reason="false_alarm"} 0"#,
        "# TYPE hotfix_notifications_undelivered gauge",
        "# TYPE hotfix_store_up gauge",
        "hotfix_store_up 1",
    ] {
        assert!(m.lines().any(|l| l == line), "no `{line}` in:\n{m}");
    }
    // Every bucket of a series, the sum and the count: one histogram per
    // route, method and status class.
    let healthz = m
        .lines()
        .filter(|l| l.contains(r#"route="/healthz",method="GET",status_class="2xx""#))
        .count();
    assert_eq!(healthz, 10 + 1 + 2, "{m}");
    // Help texts end with one period, as the registry writes them.
    assert!(
        m.lines()
            .filter(|l| l.starts_with("# HELP "))
            .all(|l| l.ends_with('.') && !l.ends_with("..")),
        "{m}"
    );
    if let Some(checked) = promtool(&m) {
        checked.unwrap_or_else(|e| panic!("promtool check metrics: {e}\n{m}"));
    }
}

#[test]
fn the_promtool_check_can_fail() {
    // The check above means something: promtool rejects what is not clean.
    let bad = "# TYPE x_total counter\nx_total 1\nx_total{le=\"a\"} 2\n";
    if let Some(checked) = promtool(bad) {
        assert!(
            checked.is_err(),
            "promtool accepted a counter without help text"
        );
    }
}
