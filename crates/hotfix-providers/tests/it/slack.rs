//! Contract tests of the Slack notifier against a recording fake of the
//! Web API and of an incoming webhook.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use hotfix_core::id::IncidentId;
use hotfix_core::notify::Message;
use hotfix_core::provider::{Memory, Notifier};
use hotfix_providers::notify::slack::{MEMORY_ROOT, SlackConfig, SlackNotifier};
use hotfix_testkit::fake::{FakeServer, Recorded, Reply};
use serde_json::{Value, json};

const TOKEN: &str = "xoxb-111-222-SeCrEtToKeN";
const HOOK_PATH: &str = "/services/T0001/B0001/HookSecret123";

type Mem = hotfix_core::provider::InMemory;

fn msg(step: &str, n: i64) -> Message {
    Message {
        incident: IncidentId(7),
        step: step.into(),
        severity: "critical".into(),
        channel: "#dev-alerts".into(),
        text: format!(":x: HF-7 {step} for Checkout <down> & out"),
        mentions: vec![],
        customer_facing: true,
        security: false,
        at: jiff::Timestamp::from_second(1_700_000_000 + n).unwrap(),
        title: "Checkout down".into(),
        pr_url: Some("https://github.com/acme/shop/pull/55".into()),
        triage: false,
        public_text: None,
    }
}

fn config(api: &str) -> SlackConfig {
    let t: toml::Table = toml::from_str(&format!(
        "api_url = \"{api}/api\"\ntimeout = \"2s\"\n[mentions]\n\"Alice@Example.com\" = \"U0ALICE\"\n"
    ))
    .unwrap();
    SlackConfig::from_table(&t).unwrap()
}

fn bot(server: &FakeServer) -> SlackNotifier {
    SlackNotifier::bot(config(&server.url()), TOKEN.into()).unwrap()
}

fn hook(server: &FakeServer) -> SlackNotifier {
    SlackNotifier::webhook(
        config(&server.url()),
        format!("{}{HOOK_PATH}", server.url()),
    )
    .unwrap()
}

/// The Web API as Slack answers it: a root gets ts .000100 in C0CHAN, a thread reply .000200.
fn web_api(r: &Recorded) -> Reply {
    match r.route() {
        "/api/chat.postMessage" if r.json().get("thread_ts").is_some() => Reply::json(
            200,
            json!({"ok": true, "channel": "C0CHAN", "ts": "1700000000.000200"}),
        ),
        "/api/chat.postMessage" => Reply::json(
            200,
            json!({"ok": true, "channel": "C0CHAN", "ts": "1700000000.000100", "message": {}}),
        ),
        "/api/chat.update" => Reply::json(
            200,
            json!({"ok": true, "channel": "C0CHAN", "ts": "1700000000.000100"}),
        ),
        _ => Reply::json(404, json!({"ok": false, "error": "unknown_method"})),
    }
}

fn no_secret(e: &str) {
    assert!(!e.contains("SeCrEtToKeN"), "token leaked: {e}");
    assert!(!e.contains("HookSecret123"), "webhook URL leaked: {e}");
    assert!(!e.contains("B0001"), "webhook URL leaked: {e}");
}

fn assert_json_post(r: &Recorded) {
    assert_eq!(r.method, "POST");
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json"),
        "{:?}",
        r.header("content-type")
    );
    assert!(r.header("user-agent").unwrap().starts_with("hotfix/"));
}

#[test]
fn webhook_posts_text_and_blocks() {
    let server = FakeServer::start(|_| Reply::text(200, "ok"));
    let mem = Mem::default();
    let mut m = msg("declared", 0);
    m.mentions = vec!["alice@example.com".into(), "bob@example.com".into()];
    hook(&server).send(1, &m, &mem).unwrap();
    let reqs = server.calls("POST", HOOK_PATH);
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_json_post(r);
    assert!(r.header("authorization").is_none());
    let b = r.json();
    let text = b["text"].as_str().unwrap();
    assert!(text.contains("HF-7 declared"), "{text}");
    // Slack control characters are escaped; the tech lead is pinged by id.
    assert!(text.contains("&lt;down&gt; &amp; out"), "{text}");
    assert!(text.contains("cc <@U0ALICE> bob@example.com"), "{text}");
    let blocks = b["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    let header = blocks[0]["text"]["text"].as_str().unwrap();
    assert!(
        header.contains("HF-7") && header.contains("CRITICAL") && header.contains("Checkout down")
    );
    let s = b.to_string();
    assert!(
        s.contains("<https://github.com/acme/shop/pull/55|Pull request>"),
        "{s}"
    );
    assert!(blocks.iter().any(|b| b["type"] == "context"));
    // Webhooks are bound to a channel; no channel override is sent.
    assert!(b.get("channel").is_none());
    // Nothing to remember: webhooks cannot edit.
    assert!(mem.get(IncidentId(7), MEMORY_ROOT).is_none());
}

#[test]
fn webhook_errors_name_the_fix_and_hide_the_url() {
    let server = FakeServer::start(|_| Reply::text(404, "no_service"));
    let e = hook(&server)
        .send(1, &msg("merged", 0), &Mem::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no_service") && e.contains("HOTFIX_SLACK_WEBHOOK_URL"),
        "{e}"
    );
    no_secret(&e);
    server.set_handler(|_| Reply::text(400, "invalid_payload"));
    let e = hook(&server)
        .send(1, &msg("merged", 0), &Mem::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid_payload"), "{e}");
    no_secret(&e);
    server.set_handler(|_| Reply::text(429, "rate_limited").header("Retry-After", "7"));
    let e = hook(&server)
        .send(1, &msg("merged", 0), &Mem::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("retry after 7s"), "{e}");
    no_secret(&e);
}

#[test]
fn bot_posts_root_then_updates_it_and_replies_in_thread() {
    let server = FakeServer::start(web_api);
    let n = bot(&server);
    let mem = Mem::default();

    let mut declared = msg("declared", 0);
    declared.mentions = vec!["alice@example.com".into()];
    n.send(1, &declared, &mem).unwrap();
    let posts = server.calls("POST", "/api/chat.postMessage");
    assert_eq!(posts.len(), 1);
    let r = &posts[0];
    assert_json_post(r);
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let b = r.json();
    assert_eq!(b["channel"], "#dev-alerts");
    assert!(b["text"].as_str().unwrap().contains("<@U0ALICE>"));
    assert!(b["blocks"].is_array());
    assert!(b.get("thread_ts").is_none());
    assert_eq!(
        mem.get(IncidentId(7), MEMORY_ROOT).as_deref(),
        Some("C0CHAN 1700000000.000100")
    );

    n.send(2, &msg("pr_opened", 60), &mem).unwrap();
    let updates = server.calls("POST", "/api/chat.update");
    assert_eq!(updates.len(), 1);
    let u = updates[0].json();
    assert_eq!(u["channel"], "C0CHAN");
    assert_eq!(u["ts"], "1700000000.000100");
    assert!(u["text"].as_str().unwrap().contains("pr_opened"));
    assert!(u["blocks"].to_string().contains("PR open"), "{u}");
    assert_eq!(
        updates[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let posts = server.calls("POST", "/api/chat.postMessage");
    assert_eq!(posts.len(), 2);
    let reply = posts[1].json();
    assert_eq!(reply["channel"], "C0CHAN");
    assert_eq!(reply["thread_ts"], "1700000000.000100");
    assert!(reply["text"].as_str().unwrap().contains("HF-7 pr_opened"));
    assert_eq!(reply["reply_broadcast"], false);

    // A rollback is broadcast to the channel and pings the tech lead again.
    let mut rb = msg("rolled_back", 120);
    rb.mentions = vec!["alice@example.com".into()];
    n.send(3, &rb, &mem).unwrap();
    let posts = server.calls("POST", "/api/chat.postMessage");
    let reply = posts.last().unwrap().json();
    assert_eq!(reply["reply_broadcast"], true);
    assert!(reply["text"].as_str().unwrap().contains("<@U0ALICE>"));

    // Re-delivering the first message does not post a second root.
    n.send(1, &declared, &mem).unwrap();
    let roots = server
        .calls("POST", "/api/chat.postMessage")
        .into_iter()
        .filter(|r| r.json().get("thread_ts").is_none())
        .count();
    assert_eq!(roots, 1);
    assert_eq!(server.calls("POST", "/api/chat.update").len(), 3);
}

#[test]
fn bot_uses_the_configured_channel() {
    let server = FakeServer::start(web_api);
    let t: toml::Table = toml::from_str(&format!(
        "channel = \"C0INCIDENTS\"\napi_url = \"{}/api/\"",
        server.url()
    ))
    .unwrap();
    let n = SlackNotifier::bot(SlackConfig::from_table(&t).unwrap(), TOKEN.into()).unwrap();
    n.send(1, &msg("declared", 0), &Mem::default()).unwrap();
    assert_eq!(
        server.calls("POST", "/api/chat.postMessage")[0].json()["channel"],
        "C0INCIDENTS"
    );
}

#[test]
fn ok_false_errors_say_what_to_fix() {
    for (code, needle) in [
        ("channel_not_found", "#dev-alerts"),
        ("not_in_channel", "invite"),
        ("invalid_auth", "SLACK_BOT_TOKEN"),
        ("is_archived", "archived"),
    ] {
        let server =
            FakeServer::start(move |_| Reply::json(200, json!({"ok": false, "error": code})));
        let mem = Mem::default();
        let e = bot(&server)
            .send(1, &msg("declared", 0), &mem)
            .unwrap_err()
            .to_string();
        assert!(e.contains(code) && e.contains(needle), "{code}: {e}");
        assert!(e.starts_with("slack: "), "{e}");
        no_secret(&e);
        assert!(mem.get(IncidentId(7), MEMORY_ROOT).is_none());
    }
}

#[test]
fn update_errors_fail_the_step_so_it_is_retried() {
    let server = FakeServer::start(|r: &Recorded| match r.route() {
        "/api/chat.update" => Reply::json(200, json!({"ok": false, "error": "not_in_channel"})),
        _ => web_api(r),
    });
    let mem = Mem::default();
    mem.set(IncidentId(7), MEMORY_ROOT, "C0CHAN 1700000000.000100")
        .unwrap();
    let e = bot(&server)
        .send(2, &msg("merged", 0), &mem)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("chat.update") && e.contains("not_in_channel"),
        "{e}"
    );
    // No thread reply without the root being current.
    assert!(server.calls("POST", "/api/chat.postMessage").is_empty());
}

#[test]
fn a_deleted_root_is_replaced() {
    let server = FakeServer::start(|r: &Recorded| match r.route() {
        "/api/chat.update" => Reply::json(200, json!({"ok": false, "error": "message_not_found"})),
        "/api/chat.postMessage" => Reply::json(
            200,
            json!({"ok": true, "channel": "C0CHAN", "ts": "1700000099.000900"}),
        ),
        _ => Reply::json(404, json!({"ok": false})),
    });
    let mem = Mem::default();
    mem.set(IncidentId(7), MEMORY_ROOT, "C0CHAN 1700000000.000100")
        .unwrap();
    bot(&server).send(2, &msg("merged", 0), &mem).unwrap();
    let posts = server.calls("POST", "/api/chat.postMessage");
    assert_eq!(posts.len(), 1);
    assert!(posts[0].json().get("thread_ts").is_none());
    assert_eq!(
        mem.get(IncidentId(7), MEMORY_ROOT).as_deref(),
        Some("C0CHAN 1700000099.000900")
    );
}

#[test]
fn rate_limit_is_an_error_with_the_retry_hint() {
    let server = FakeServer::start(|_| {
        Reply::json(429, json!({"ok": false, "error": "ratelimited"})).header("Retry-After", "30")
    });
    let e = bot(&server)
        .send(1, &msg("declared", 0), &Mem::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("rate limited") && e.contains("retry after 30s"),
        "{e}"
    );
    no_secret(&e);
}

#[test]
fn server_errors_fail() {
    let server = FakeServer::start(|_| Reply::text(503, "upstream down"));
    let e = bot(&server)
        .send(1, &msg("declared", 0), &Mem::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("503") && e.contains("retry"), "{e}");
    let e = hook(&server)
        .send(1, &msg("declared", 0), &Mem::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("503"), "{e}");
    no_secret(&e);
}

#[test]
fn malformed_answers_fail_and_remember_nothing() {
    let server = FakeServer::start(|_| Reply::raw(200, "application/json", "{\"ok\": tru"));
    let mem = Mem::default();
    let e = bot(&server)
        .send(1, &msg("declared", 0), &mem)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not JSON"), "{e}");
    assert!(mem.get(IncidentId(7), MEMORY_ROOT).is_none());
    // ok:true without a ts: nothing usable to remember.
    server.set_handler(|_| Reply::json(200, json!({"ok": true, "ts": "../../x"})));
    let e = bot(&server)
        .send(1, &msg("declared", 0), &mem)
        .unwrap_err()
        .to_string();
    assert!(e.contains("ts"), "{e}");
    assert!(mem.get(IncidentId(7), MEMORY_ROOT).is_none());
}

#[test]
fn unreachable_fails_quickly() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let t = Instant::now();
    let n = SlackNotifier::bot(config(&url), TOKEN.into()).unwrap();
    let e = n
        .send(1, &msg("declared", 0), &Mem::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("unreachable"), "{e}");
    let n = SlackNotifier::webhook(config(&url), format!("{url}{HOOK_PATH}")).unwrap();
    let e = n
        .send(1, &msg("declared", 0), &Mem::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("unreachable"), "{e}");
    no_secret(&e);
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_slow_slack_times_out() {
    let server = FakeServer::start(|_| Reply::text(200, "ok").delayed(Duration::from_secs(3)));
    let t: toml::Table = toml::from_str("timeout = \"300ms\"").unwrap();
    let n = SlackNotifier::webhook(
        SlackConfig::from_table(&t).unwrap(),
        format!("{}{HOOK_PATH}", server.url()),
    )
    .unwrap();
    let start = Instant::now();
    let e = n
        .send(1, &msg("declared", 0), &Mem::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no answer in time"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(2));
    no_secret(&e);
}

#[test]
fn security_incidents_carry_no_title_or_pr() {
    let server = FakeServer::start(|r: &Recorded| {
        if r.route() == HOOK_PATH {
            Reply::text(200, "ok")
        } else {
            web_api(r)
        }
    });
    let mut m = msg("declared", 0);
    m.security = true;
    m.title = String::new();
    m.text =
        ":rotating_light: HF-7 [CRITICAL] hotfix started: security incident (details restricted)."
            .into();
    for n in [hook(&server), bot(&server)] {
        n.send(1, &m, &Mem::default()).unwrap();
    }
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    for r in reqs {
        let s = r.body_str();
        assert!(!s.contains("pull/55") && !s.contains("github.com"), "{s}");
        assert!(!s.contains("Checkout"), "{s}");
        let b: Value = r.json();
        let header = b["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(header, "HF-7 · CRITICAL · security incident");
    }
}

#[test]
fn config_is_validated() {
    let c = SlackConfig::from_table(&toml::Table::new()).unwrap();
    assert_eq!(c.api_url, "https://slack.com/api");
    assert_eq!(c.channel, None);
    assert_eq!(c.timeout.0, Duration::from_secs(5));
    let t: toml::Table = toml::from_str("chanel = \"#x\"").unwrap();
    let e = SlackConfig::from_table(&t).unwrap_err();
    assert!(e.contains("chanel"), "{e}");
    let e = SlackNotifier::from_secrets(c.clone(), None, None).unwrap_err();
    assert!(
        e.contains("SLACK_BOT_TOKEN") && e.contains("HOTFIX_SLACK_WEBHOOK_URL"),
        "{e}"
    );
    let e = SlackNotifier::bot(c.clone(), "not-a-SeCrEtToKeN".into()).unwrap_err();
    no_secret(&e);
    let e = SlackNotifier::webhook(c.clone(), "hooks.slack.com/B0001/HookSecret123".into())
        .unwrap_err();
    no_secret(&e);
    // The bot wins when both are given.
    let n = SlackNotifier::from_secrets(c, Some(TOKEN.into()), Some("https://x/y".into())).unwrap();
    let d = format!("{n:?}");
    assert!(d.contains("bot"));
    no_secret(&d);
}
