//! Who reads a security incident's details (`hotfix_core::access`), over
//! real HTTP on a real store: a developer who is not on the incident, the
//! Slack channel, the public status page and a metrics scraper find none
//! of its secrets in any GET the server answers (API, dashboard pages and
//! their live stream, Slack, status page, metrics); the declarer, the
//! people who acted on it, tech leads and admins read it in full.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use hotfix_core::team::ApiRole;
use hotfix_providers::signature::sign_hmac_sha256_hex;
use serde_json::{Value, json};

/// A developer with a token who has nothing to do with the incident.
const OUTSIDER: &str = "dev2@example.com";
const ADMIN: &str = "admin@example.com";

const NAME: &str = "zeroday-auth-bypass";
const TITLE: &str = "Session tokens survive logout CVE-2099-7777";
const SUBJECT: &str = "Invalidate sessions on logout";
const FILE: &str = "src/session/revoke_all.rs";
const PR_URL: &str = "https://github.com/acme/app-ghsa-qqqq-wwww/pull/7";
const PREVIEW: &str = "https://preview-zeroday.example/";
const NOTE: &str = "attacker seen at 203.0.113.77";
const WITHDRAWN: &str = "recheck the refresh-token-secret path";

/// Pieces of every secret above (matched case-insensitively): none may
/// reach a reader who may not read the incident.
const SECRETS: [&str; 9] = [
    "zeroday",
    "session tokens survive",
    "cve-2099-7777",
    "invalidate sessions",
    "revoke_all",
    "ghsa-qqqq-wwww",
    "203.0.113.77",
    "refresh-token-secret",
    "auth-bypass",
];

/// The page or body as plain text: minijinja escapes `/`, quotes and
/// more, so the raw HTML could hide a leak from a search.
fn plain(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The secrets `body` shows.
fn leaks(body: &str) -> Vec<&'static str> {
    let b = plain(body).to_lowercase();
    SECRETS.into_iter().filter(|s| b.contains(s)).collect()
}

fn assert_no_secret(what: &str, r: &Resp) {
    assert_eq!(r.status, 200, "{what}: {}", r.text);
    let found = leaks(&r.text);
    assert!(found.is_empty(), "{what} shows {found:?}:\n{}", r.text);
}

/// A signed-in browser's GET (the session cookie, no bearer token).
fn page(t: &TestServer, path: &str, token: &str) -> Resp {
    get(
        &t.url(path),
        None,
        &[("Cookie", &format!("hotfix_session={token}"))],
    )
}

/// The security incident, declared by DEV through the API and taken as
/// far as approvals: commits with a telling subject and file, its PR and
/// preview, a note, a tech lead's approval withdrawn with a reason and
/// given again, and a reviewer's. Returns its id.
fn security_incident(t: &TestServer, dev: &str) -> String {
    let id = declare(
        t,
        dev,
        json!({"name": NAME, "title": TITLE, "severity": "critical", "customer_facing": true,
               "security": true, "base_sha": sha('a'), "components": ["Web app"]}),
    );
    let b = sha('b');
    let r = append(
        t,
        dev,
        &id,
        json!([
            {"type": "note", "text": NOTE},
            {"type": "pushed", "sha": b, "commits": [{"sha": b, "author_email": DEV, "committer_email": DEV, "subject": SUBJECT}],
             "diff": {"files": [FILE, "src/auth.rs"], "lines_added": 14, "lines_removed": 2}},
            {"type": "pr_opened", "number": 7, "url": PR_URL},
            {"type": "preview_deployed", "sha": b, "url": PREVIEW},
            {"type": "smoke_passed", "sha": b, "checks": [{"name": "home", "url": format!("{PREVIEW}healthz"), "ok": true, "detail": "200 from zeroday preview"}]}
        ]),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let lead2 = t.token(LEAD2, ApiRole::TechLead);
    assert_eq!(approve(t, &lead2, &id).status, 200);
    let r = post_json(
        &t.url(&format!("/api/v1/incidents/{id}/withdraw")),
        Some(&lead2),
        &json!({ "reason": WITHDRAWN }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(approve(t, &lead2, &id).status, 200);
    let r = approve(t, &t.token(REVIEWER, ApiRole::Developer), &id);
    assert_eq!(r.status, 200, "{}", r.text);
    id
}

/// A GitHub push that deletes the incident's branch: its inbox outcome
/// names the branch ("ignored: hotfix/… was deleted").
fn branch_deleted_on_github(t: &TestServer) {
    let mut v: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/../../fixtures/github/push.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    v["ref"] = json!(format!("refs/heads/hotfix/{NAME}"));
    let body = v.to_string();
    let sig = format!(
        "sha256={}",
        sign_hmac_sha256_hex(GITHUB_SECRET.as_bytes(), body.as_bytes())
    );
    let r = post(
        &t.url("/api/v1/webhooks/github"),
        None,
        &[
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "security-view-1"),
            ("X-Hub-Signature-256", &sig),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 202, "{}", r.text);
}

/// `/hotfix <text>` from Slack user `user`, signed as Slack signs it.
fn slash(t: &TestServer, user: &str, text: &str) -> Resp {
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
    let body = [
        ("team_id", "T0001"),
        ("channel_id", "C2147483705"),
        ("channel_name", "dev-alerts"),
        ("user_id", user),
        ("user_name", "someone"),
        ("command", "/hotfix"),
        ("text", text),
        ("response_url", "https://hooks.slack.com/commands/1234/5678"),
    ]
    .iter()
    .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
    .collect::<Vec<_>>()
    .join("&");
    let ts = jiff::Timestamp::now().as_second().to_string();
    let sig = format!(
        "v0={}",
        sign_hmac_sha256_hex(
            SLACK_SECRET.as_bytes(),
            format!("v0:{ts}:{body}").as_bytes()
        )
    );
    post(
        &t.url("/api/v1/slack/commands"),
        None,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Slack-Request-Timestamp", &ts),
            ("X-Slack-Signature", &sig),
        ],
        body.as_bytes(),
    )
}

/// What `/events` sends in its first second, as the signed-in `token`.
fn first_second_of_the_stream(t: &TestServer, token: &str) -> String {
    let r = agent()
        .get(&t.url("/events"))
        .header("Cookie", &format!("hotfix_session={token}"))
        .header("Accept", "text/event-stream")
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    let (tx, rx) = mpsc::channel();
    let reader = BufReader::new(r.into_body().into_reader());
    std::thread::spawn(move || {
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut got = vec![];
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) => got.push(l),
            Err(_) => break,
        }
    }
    got.join("\n")
}

#[test]
fn a_developer_not_on_a_security_incident_reads_none_of_its_details_anywhere() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let outsider = t.token(OUTSIDER, ApiRole::Developer);
    let id = security_incident(&t, &dev);
    let other = declare(
        &t,
        &dev,
        json!({"name": "pdf-crash", "title": "PDF export crashes", "severity": "high"}),
    );
    branch_deleted_on_github(&t);
    let admin = t.token(ADMIN, ApiRole::Admin);
    t.wait_for("the push deletion processed", || {
        get(&t.url("/api/v1/inbox"), Some(&admin), &[]).json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["outcome"].as_str().is_some_and(|o| o.contains("deleted")))
    });

    let outcomes = |token: &str| {
        get(&t.url("/api/v1/inbox"), Some(token), &[]).json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["outcome"].as_str().map(String::from))
            .collect::<Vec<_>>()
    };
    assert!(
        outcomes(&admin).contains(&format!("ignored: hotfix/{NAME} was deleted")),
        "{:?}",
        outcomes(&admin)
    );
    assert!(
        outcomes(&outsider).contains(&"ignored: (restricted) was deleted".to_string()),
        "{:?}",
        outcomes(&outsider)
    );

    // ---- the JSON API: every GET.
    let api = |path: &str| get(&t.url(path), Some(&outsider), &[]);
    for path in [
        "/api/v1/me".to_string(),
        "/api/v1/incidents".to_string(),
        "/api/v1/incidents?state=all".to_string(),
        "/api/v1/incidents?ids_only=true".to_string(),
        format!("/api/v1/incidents/{id}"),
        format!("/api/v1/incidents/{id}/events"),
        "/api/v1/outbox".to_string(),
        "/api/v1/inbox".to_string(),
        "/api/v1/stats".to_string(),
        "/api/v1/stats?state=open".to_string(),
        "/api/openapi.json".to_string(),
    ] {
        assert_no_secret(&path, &api(&path));
    }
    assert_eq!(api("/api/v1/tokens").status, 403, "admins only");
    // What the restricted view still says: enough to know what is to be done.
    let d = api(&format!("/api/v1/incidents/{id}")).json();
    assert_eq!(d["restricted"], true);
    let inc = &d["incident"];
    assert_eq!(inc["restricted"], true);
    assert_eq!(inc["title"], "security incident (details restricted)");
    assert_eq!(inc["branch"], "hotfix/NAME");
    assert_eq!(inc["severity"], "critical");
    assert_eq!(inc["customer_facing"], true);
    assert_eq!(inc["declared_by"], DEV);
    assert_eq!(
        d["state"]["head_sha"],
        sha('b'),
        "the head an approver approves"
    );
    assert_eq!(d["state"]["pr"], 7);
    assert_eq!(d["state"]["preview_url"], "(restricted)");
    assert_eq!(d["approvals"].as_array().unwrap().len(), 3);
    let full = get(&t.url(&format!("/api/v1/incidents/{id}")), Some(&dev), &[]).json();
    for same in ["phase", "next", "elapsed_s", "version", "declared_at"] {
        assert_eq!(inc[same], full["incident"][same], "{same}");
    }
    assert_eq!(d["timeline"], full["timeline"]);
    assert_eq!(d["checklist"], full["checklist"]);
    assert_eq!(d["missing_approvals"], full["missing_approvals"]);
    let ev = api(&format!("/api/v1/incidents/{id}/events")).json();
    assert_eq!(ev["restricted"], true);
    assert_eq!(
        ev["events"].as_array().unwrap().len(),
        full["events"].as_array().unwrap().len(),
        "every event is there, with its words replaced"
    );
    // A search finds it by nothing it hides, the list by its id only.
    for q in ["zeroday", "session", "revoke", "bypass"] {
        let r = api(&format!("/api/v1/incidents?state=all&q={q}")).json();
        assert_eq!(r["total"], 0, "q={q}: {r}");
        let r = api(&format!("/api/v1/stats?q={q}")).json();
        assert_eq!(r["stats"]["incidents"], 0, "stats q={q}: {r}");
    }
    assert_eq!(api(&format!("/api/v1/incidents?q={id}")).json()["total"], 1);
    // Incidents that are not security incidents read as before.
    let o = api(&format!("/api/v1/incidents/{other}")).json();
    assert_eq!(o["incident"]["title"], "PDF export crashes");
    assert_eq!(o["restricted"], false);

    // ---- the dashboard, its search and its live stream.
    for path in [
        "/".to_string(),
        format!("/incidents/{id}"),
        "/log".to_string(),
        "/log?state=open".to_string(),
        "/log?q=critical".to_string(),
    ] {
        assert_no_secret(&path, &page(&t, &path, &outsider));
    }
    let p = page(&t, &format!("/incidents/{id}"), &outsider);
    assert!(p.text.contains(r#"id="restricted""#), "{}", p.text);
    // (The search box shows what was searched for: the reader's own words.)
    for q in ["zeroday", "revoke_all", "203.0.113.77"] {
        let r = page(&t, &format!("/log?q={q}"), &outsider);
        assert_eq!(r.status, 200);
        assert!(
            !r.text.contains(&format!(r#"data-id="{id}""#)),
            "no search oracle: {q}"
        );
    }
    assert!(
        page(&t, "/log?q=critical", &outsider)
            .text
            .contains(&format!(r#"data-id="{id}""#)),
        "found by what it shows"
    );
    let stream = first_second_of_the_stream(&t, &outsider);
    assert!(stream.contains("event: change"), "{stream}");
    assert!(leaks(&stream).is_empty(), "{stream}");

    // ---- Slack is a channel: restricted for everyone, the declarer and
    // a tech lead included.
    for user in ["U0DEV", "U0LEAD"] {
        for cmd in ["status".to_string(), format!("status {id}")] {
            let r = slash(&t, user, &cmd);
            assert_no_secret(&format!("{user} /hotfix {cmd}"), &r);
            assert!(r.text.contains(&id), "{}", r.text);
        }
    }

    // ---- what the server posts to the team channel (the notifiers).
    t.wait_for("the withdrawal posted", || {
        t.delivered()
            .iter()
            .any(|m| m["step"] == "approval_withdrawn")
    });
    for m in t.delivered() {
        let found = leaks(&m.to_string());
        assert!(found.is_empty(), "the channel reads {found:?}: {m}");
    }

    // ---- the public status page and metrics.
    for path in ["/status", "/status.json", "/metrics", "/healthz"] {
        assert_no_secret(path, &get(&t.url(path), None, &[]));
    }
}

#[test]
fn the_people_on_it_tech_leads_and_admins_read_it_in_full() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let id = security_incident(&t, &dev);
    let readers = [
        ("the declarer", dev.clone()),
        (
            "a reviewer who approved it",
            t.token(REVIEWER, ApiRole::Developer),
        ),
        (
            "a tech lead not on it",
            t.token("lead3@example.com", ApiRole::TechLead),
        ),
        ("an admin", t.token(ADMIN, ApiRole::Admin)),
    ];
    for (who, token) in &readers {
        let r = get(&t.url(&format!("/api/v1/incidents/{id}")), Some(token), &[]);
        assert_eq!(r.status, 200, "{who}: {}", r.text);
        let d = r.json();
        assert_eq!(d["restricted"], false, "{who}");
        assert_eq!(d["incident"]["title"], TITLE, "{who}");
        assert_eq!(d["incident"]["branch"], format!("hotfix/{NAME}"), "{who}");
        assert_eq!(d["state"]["preview_url"], PREVIEW, "{who}");
        assert_eq!(d["state"]["pr_url"], PR_URL, "{who}");
        let events = d["events"].to_string();
        for s in [NOTE, SUBJECT, FILE, WITHDRAWN] {
            assert!(events.contains(s), "{who} reads {s}");
        }
        let p = page(&t, &format!("/incidents/{id}"), token);
        assert_eq!(p.status, 200, "{who}");
        let text = plain(&p.text);
        assert!(text.contains(TITLE) && text.contains(NOTE), "{who}: {text}");
        assert!(!p.text.contains(r#"id="restricted""#), "{who}");
    }
    // A note, which any developer may write, does not open it: reading a
    // security incident is not one line away.
    let outsider = t.token(OUTSIDER, ApiRole::Developer);
    let detail = |tok: &str| get(&t.url(&format!("/api/v1/incidents/{id}")), Some(tok), &[]).json();
    assert_eq!(detail(&outsider)["restricted"], true);
    let r = append(
        &t,
        &outsider,
        &id,
        json!([{"type": "note", "text": "joining to help with the backport"}]),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let d = detail(&outsider);
    assert_eq!(d["restricted"], true);
    assert_ne!(d["incident"]["title"], TITLE);
    assert!(!d.to_string().contains(NOTE), "{d}");
}

/// With nothing delivered yet, the outbox holds the incident's messages:
/// the outsider's view of them quotes nothing of it (no PR address, no
/// title), while a tech lead's shows the messages as queued.
#[test]
fn the_outbox_quotes_nothing_of_it_to_an_outsider() {
    let t = TestServer::with(Options {
        workers: false,
        ..Default::default()
    });
    let dev = t.token(DEV, ApiRole::Developer);
    let id = security_incident(&t, &dev);
    let outbox = |token: &str| get(&t.url("/api/v1/outbox"), Some(token), &[]);
    let lead = outbox(&t.token(LEAD, ApiRole::TechLead)).json();
    let queued = lead["undelivered"].as_array().unwrap();
    assert!(
        queued
            .iter()
            .any(|o| o["message"]["incident"] == id.as_str()
                && o["message"]["step"] == "approval_withdrawn"),
        "{lead}"
    );
    let r = outbox(&t.token(OUTSIDER, ApiRole::Developer));
    assert_no_secret("/api/v1/outbox", &r);
    assert_eq!(
        r.json()["undelivered"].as_array().unwrap().len(),
        queued.len(),
        "the same messages, nothing they quote"
    );
}
