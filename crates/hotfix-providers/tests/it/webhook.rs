//! Contract tests of the generic signed webhook.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use hotfix_core::id::IncidentId;
use hotfix_core::notify::Message;
use hotfix_core::provider::{Memory, Notifier};
use hotfix_providers::notify::webhook::{WebhookConfig, WebhookNotifier, signature};
use hotfix_testkit::fake::{FakeServer, Reply};
use sha2::Sha256;

const SECRET: &str = "It's a Secret to Everybody";

struct NoMemory;

impl Memory for NoMemory {
    fn get(&self, _: IncidentId, _: &str) -> Option<String> {
        None
    }
    fn set(&self, _: IncidentId, _: &str, _: &str) -> Result<(), String> {
        Ok(())
    }
}

fn msg(step: &str) -> Message {
    Message {
        incident: IncidentId(12),
        step: step.into(),
        severity: "high".into(),
        channel: "#dev-alerts".into(),
        text: format!("HF-12 {step}"),
        mentions: vec!["lead@example.com".into()],
        customer_facing: true,
        security: false,
        at: "2026-03-01T10:00:00Z".parse().unwrap(),
        title: "PDF export crashes".into(),
        pr_url: Some("https://github.com/acme/shop/pull/9".into()),
        triage: false,
        public_text: None,
    }
}

fn notifier(url: &str, secret: Option<&str>) -> WebhookNotifier {
    let t: toml::Table = toml::from_str(&format!("url = \"{url}\"\ntimeout = \"2s\"")).unwrap();
    WebhookNotifier::new(
        WebhookConfig::from_table(&t).unwrap(),
        None,
        secret.map(str::to_string),
    )
    .unwrap()
}

#[test]
fn signature_matches_githubs_test_vector() {
    assert_eq!(
        signature(SECRET.as_bytes(), b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}

#[test]
fn posts_a_signed_event_with_delivery_id() {
    let server = FakeServer::start(|_| Reply::text(204, ""));
    let n = notifier(&format!("{}/hooks/hotfix", server.url()), Some(SECRET));
    n.send(42, &msg("merged"), &NoMemory).unwrap();
    let reqs = server.calls("POST", "/hooks/hotfix");
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-hotfix-delivery"), Some("42"));
    assert_eq!(r.header("x-hotfix-event"), Some("merged"));
    assert_eq!(
        r.header("user-agent"),
        Some(concat!("hotfix/", env!("CARGO_PKG_VERSION")))
    );
    // The receiver's check: HMAC-SHA256 over the raw body, constant-time compare.
    let sig = r.header("x-hotfix-signature-256").unwrap();
    let hex_sig = sig.strip_prefix("sha256=").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&r.body);
    mac.verify_slice(&hex::decode(hex_sig).unwrap()).unwrap();

    let b = r.json();
    assert_eq!(b["incident"], "HF-12");
    assert_eq!(b["step"], "merged");
    assert_eq!(b["severity"], "high");
    assert_eq!(b["text"], "HF-12 merged");
    assert_eq!(b["title"], "PDF export crashes");
    assert_eq!(b["customer_facing"], true);
    assert_eq!(b["security"], false);
    assert_eq!(b["at"], "2026-03-01T10:00:00Z");
    assert_eq!(b["pr_url"], "https://github.com/acme/shop/pull/9");
    assert_eq!(b["outbox_id"], 42);
    assert_eq!(b["mentions"][0], "lead@example.com");

    // A retry carries the same delivery id, so receivers can dedupe.
    n.send(42, &msg("merged"), &NoMemory).unwrap();
    let reqs = server.calls("POST", "/hooks/hotfix");
    assert_eq!(reqs[1].header("x-hotfix-delivery"), Some("42"));
    assert_eq!(reqs[0].body, reqs[1].body);
}

#[test]
fn unsigned_without_a_secret() {
    let server = FakeServer::start(|_| Reply::text(200, "ok"));
    notifier(&server.url(), None)
        .send(1, &msg("declared"), &NoMemory)
        .unwrap();
    let r = &server.requests()[0];
    assert!(r.header("x-hotfix-signature-256").is_none());
    assert_eq!(r.header("x-hotfix-delivery"), Some("1"));
}

#[test]
fn security_events_carry_no_pr_link() {
    let server = FakeServer::start(|_| Reply::text(200, "ok"));
    let mut m = msg("declared");
    m.security = true;
    m.title = String::new();
    notifier(&server.url(), Some(SECRET))
        .send(1, &m, &NoMemory)
        .unwrap();
    let b = server.requests()[0].json();
    assert_eq!(b["pr_url"], serde_json::Value::Null);
    assert_eq!(b["title"], "");
    assert_eq!(b["security"], true);
}

#[test]
fn non_2xx_is_an_error() {
    let url_secret = "tok3n-in-the-path";
    let server = FakeServer::start(|_| Reply::text(500, "boom"));
    let n = notifier(&format!("{}/in/{url_secret}", server.url()), Some(SECRET));
    let e = n
        .send(1, &msg("merged"), &NoMemory)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("webhook: ") && e.contains("500") && e.contains("boom"),
        "{e}"
    );

    server.set_handler(|_| Reply::text(404, "no such hook"));
    let e = n
        .send(1, &msg("merged"), &NoMemory)
        .unwrap_err()
        .to_string();
    assert!(e.contains("404"), "{e}");

    server.set_handler(|_| Reply::text(401, "bad signature"));
    let e = n
        .send(1, &msg("merged"), &NoMemory)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("401") && e.contains("HOTFIX_WEBHOOK_SECRET"),
        "{e}"
    );

    server.set_handler(|_| Reply::text(429, "slow down").header("Retry-After", "12"));
    let e = n
        .send(1, &msg("merged"), &NoMemory)
        .unwrap_err()
        .to_string();
    assert!(e.contains("retry after 12s"), "{e}");

    // Redirects are not followed (they could carry the body elsewhere).
    server.set_handler(|_| Reply::text(302, "").header("Location", "http://127.0.0.1:1/x"));
    let e = n
        .send(1, &msg("merged"), &NoMemory)
        .unwrap_err()
        .to_string();
    assert!(e.contains("302") || e.contains("redirect"), "{e}");

    // A receiver echoing secrets back does not get them into our errors.
    server.set_handler(move |r| {
        Reply::text(400, &format!("bad request to {} signed {SECRET}", r.path))
    });
    let e = n
        .send(1, &msg("merged"), &NoMemory)
        .unwrap_err()
        .to_string();
    assert!(!e.contains(url_secret) && !e.contains(SECRET), "{e}");
}

#[test]
fn unreachable_fails_quickly() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let start = Instant::now();
    let e = notifier(&format!("http://127.0.0.1:{port}/secret-path"), None)
        .send(1, &msg("merged"), &NoMemory)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unreachable") && !e.contains("secret-path"),
        "{e}"
    );
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn url_comes_from_config_or_environment() {
    let server = FakeServer::start(|_| Reply::text(200, "ok"));
    let t: toml::Table = toml::from_str("url = \"http://127.0.0.1:1/unused\"").unwrap();
    // The environment's URL wins.
    let n = WebhookNotifier::new(
        WebhookConfig::from_table(&t).unwrap(),
        Some(format!("{}/from-env", server.url())),
        None,
    )
    .unwrap();
    n.send(1, &msg("merged"), &NoMemory).unwrap();
    assert_eq!(server.calls("POST", "/from-env").len(), 1);

    let empty = WebhookConfig::from_table(&toml::Table::new()).unwrap();
    assert_eq!(empty.timeout.0, Duration::from_secs(5));
    let e = WebhookNotifier::new(empty.clone(), None, None).unwrap_err();
    assert!(e.contains("HOTFIX_WEBHOOK_URL"), "{e}");
    let e = WebhookNotifier::new(empty, Some("not a url/secret-bits".into()), None).unwrap_err();
    assert!(!e.contains("secret-bits"), "{e}");
    let t: toml::Table = toml::from_str("url = \"http://x\"\nsecret = \"s\"").unwrap();
    let e = WebhookConfig::from_table(&t).unwrap_err();
    assert!(e.contains("secret"), "{e}");
}
