//! GitHub webhooks over real HTTP on a real store: signatures, what is
//! stored, and what reviews, pushes, merges and deployment statuses do to
//! an incident. Payloads are GitHub's documented samples
//! (`fixtures/github/` at the workspace root, shared with the GitHub forge's tests; from octokit/webhooks), adapted to the incident's
//! branch, head and people.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use hotfix_core::team::ApiRole;
use hotfix_providers::signature::sign_hmac_sha256_hex;
use hotfix_server::Secrets;
use serde_json::{Value, json};

const REPO: &str = "Codertocat/Hello-World";
const BRANCH: &str = "hotfix/pdf-crash";

fn config() -> String {
    format!(
        r#"{}
[forge]
provider = "github"
repo = "{REPO}"

[forge.logins]
"{LEAD}" = "lead-gh"
"{LEAD2}" = "Lead2-GH"
"{DEV}" = "Codertocat"
"#,
        base_config()
    )
}

fn server(backend: Backend) -> TestServer {
    TestServer::with(Options {
        config: config(),
        backend,
        ..Default::default()
    })
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../fixtures/github/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn sha(c: char) -> String {
    c.to_string().repeat(40)
}

/// `X-Hub-Signature-256` of `body` under `secret`.
fn signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", sign_hmac_sha256_hex(secret.as_bytes(), body))
}

/// Sends a delivery signed with the test secret.
fn deliver(t: &TestServer, event: &str, delivery: &str, body: &Value) -> Resp {
    let body = body.to_string();
    let sig = signature(GITHUB_SECRET, body.as_bytes());
    post(
        &t.url("/api/v1/webhooks/github"),
        None,
        &[
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", event),
            ("X-GitHub-Delivery", delivery),
            ("X-Hub-Signature-256", &sig),
            ("User-Agent", "GitHub-Hookshot/044aadd"),
        ],
        body.as_bytes(),
    )
}

fn inbox(t: &TestServer) -> Vec<Value> {
    let admin = t.token("admin@example.com", ApiRole::Admin);
    let r = get(&t.url("/api/v1/inbox"), Some(&admin), &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["items"].as_array().unwrap().clone()
}

/// Waits until the worker processed inbox item `id`; the item.
fn processed(t: &TestServer, id: i64) -> Value {
    let mut item = Value::Null;
    t.wait_for(&format!("inbox item {id} processed"), || {
        match inbox(t)
            .into_iter()
            .find(|i| i["id"] == id && !i["processed_at"].is_null())
        {
            Some(i) => {
                item = i;
                true
            }
            None => false,
        }
    });
    item
}

/// Delivers and waits until the worker processed it; returns the outcome.
fn deliver_and_process(t: &TestServer, event: &str, delivery: &str, body: &Value) -> String {
    let r = deliver(t, event, delivery, body);
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json()["status"], "accepted", "{}", r.text);
    let id = r.json()["inbox_id"].as_i64().unwrap();
    processed(t, id)["outcome"]
        .as_str()
        .unwrap_or("")
        .to_string()
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

/// Declared by `author`, pushed at `b…b` (authored by `author`), PR #2
/// open, preview smoke-passed: it waits for the tech lead's approval.
fn awaiting_approval(t: &TestServer, author: &str) -> String {
    let tok = t.token(author, ApiRole::Developer);
    let r = post_json(
        &t.url("/api/v1/incidents"),
        Some(&tok),
        &json!({"name": "pdf-crash", "severity": "critical", "base_sha": sha('a')}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json()["incident"]["id"].as_str().unwrap().to_string();
    let push = json!({"events": [
        {"type": "pushed", "sha": sha('b'), "commits": [{"sha": sha('b'), "author_email": author, "committer_email": author, "subject": "fix"}], "diff": {"files": ["a.rs"], "lines_added": 3, "lines_removed": 1}},
        {"type": "pr_opened", "number": 2, "url": format!("https://github.com/{REPO}/pull/2")},
        {"type": "preview_deployed", "sha": sha('b'), "url": "http://127.0.0.1:1/"},
        {"type": "smoke_passed", "sha": sha('b'), "checks": []}
    ]});
    let r = post_json(
        &t.url(&format!("/api/v1/incidents/{id}/events")),
        Some(&tok),
        &push,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(incident(t, &id)["incident"]["phase"], "awaiting_approval");
    id
}

/// GitHub's `pull_request_review` sample, as a review of `commit` on our branch.
fn review(login: &str, state: &str, commit: &str) -> Value {
    let mut v = fixture("pull_request_review_submitted.json");
    v["review"]["state"] = json!(state);
    v["review"]["user"]["login"] = json!(login);
    v["review"]["commit_id"] = json!(commit);
    v["pull_request"]["head"]["ref"] = json!(BRANCH);
    v["pull_request"]["head"]["sha"] = json!(commit);
    v
}

/// GitHub's `push` sample (a tag deletion), as a push of `after` to our branch.
fn push(after: &str) -> Value {
    let mut v = fixture("push.json");
    v["ref"] = json!(format!("refs/heads/{BRANCH}"));
    v["before"] = json!(sha('b'));
    v["after"] = json!(after);
    v["deleted"] = json!(false);
    v
}

fn events_of(d: &Value, kind: &str) -> Vec<Value> {
    d["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == kind)
        .cloned()
        .collect()
}

/// What a refused delivery is: its name, extra headers, body.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>);

#[test]
fn unsigned_and_badly_signed_deliveries_are_refused_and_nothing_is_stored() {
    let t = server(Backend::Sqlite);
    let _id = awaiting_approval(&t, DEV);
    let body = review("lead-gh", "approved", &sha('b')).to_string();
    let url = t.url("/api/v1/webhooks/github");
    let good = signature(GITHUB_SECRET, body.as_bytes());
    let wrong_secret = signature("not the secret", body.as_bytes());
    let cases: Vec<Case> = vec![
        ("no signature", vec![], body.clone().into_bytes()),
        (
            "wrong secret",
            vec![("X-Hub-Signature-256", wrong_secret.as_str())],
            body.clone().into_bytes(),
        ),
        (
            "hex without the sha256= prefix",
            vec![("X-Hub-Signature-256", &good[7..])],
            body.clone().into_bytes(),
        ),
        (
            "tampered body",
            vec![("X-Hub-Signature-256", good.as_str())],
            body.replace("approved", "APPROVED").into_bytes(),
        ),
    ];
    for (what, extra, bytes) in cases {
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", "pull_request_review"),
            ("X-GitHub-Delivery", "d-1"),
        ];
        headers.extend(extra);
        let r = post(&url, None, &headers, &bytes);
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        assert_eq!(r.json()["error"]["code"], "unauthorized", "{what}");
        assert!(
            !r.text.contains(GITHUB_SECRET) && !r.text.contains(&good[7..]),
            "{what}: the answer echoes no secret: {}",
            r.text
        );
    }
    assert!(inbox(&t).is_empty(), "nothing was stored");
    let d = incident(&t, "HF-1");
    assert!(d["approvals"].as_array().unwrap().is_empty());
    let metrics = get(&t.url("/metrics"), None, &[]).text;
    assert!(
        metrics.contains(r#"hotfix_rejected_total{source="github",reason="bad_signature"} 4"#),
        "{metrics}"
    );
    // The same body, signed properly, goes through.
    let r = post(
        &url,
        None,
        &[
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", "pull_request_review"),
            ("X-GitHub-Delivery", "d-1"),
            ("X-Hub-Signature-256", &good),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 202, "{}", r.text);
}

#[test]
fn without_a_secret_the_webhook_is_off() {
    let t = TestServer::with(Options {
        config: config(),
        // No secret at all.
        secrets: Secrets::default(),
        ..Default::default()
    });
    let r = deliver(
        &t,
        "ping",
        "d-ping",
        &json!({"zen": "Keep it logically awesome."}),
    );
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "unavailable");
    assert!(
        r.json()["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("HOTFIX_GITHUB_WEBHOOK_SECRET")
    );
    let r = deliver(&t, "push", "d-push", &push(&sha('c')));
    assert_eq!(r.status, 503);
    assert!(inbox(&t).is_empty());
}

#[test]
fn ping_is_answered_and_events_hotfix_does_not_use_are_not_stored() {
    let t = server(Backend::Sqlite);
    let r = deliver(
        &t,
        "ping",
        "d-0",
        &json!({"zen": "Design for failure.", "hook_id": 1}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["status"], "pong");
    // A PR being opened: hotfix opened it itself.
    let r = deliver(
        &t,
        "pull_request",
        "d-1",
        &fixture("pull_request_opened.json"),
    );
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json()["status"], "ignored");
    let r = deliver(&t, "issues", "d-2", &json!({"action": "opened"}));
    assert_eq!(r.json()["status"], "ignored");
    // Signed but not JSON, or no event name: a clear 400.
    let body = b"payload=%7B%7D";
    let sig = signature(GITHUB_SECRET, body);
    let r = post(
        &t.url("/api/v1/webhooks/github"),
        None,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", &sig),
        ],
        body,
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("application/json"), "{}", r.text);
    let body = b"{not json";
    let sig = signature(GITHUB_SECRET, body);
    let r = post(
        &t.url("/api/v1/webhooks/github"),
        None,
        &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &sig)],
        body,
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = post(
        &t.url("/api/v1/webhooks/github"),
        None,
        &[("X-Hub-Signature-256", &sig)],
        body,
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(inbox(&t).is_empty(), "nothing was stored");
}

/// Approval on GitHub, redelivery, a push that makes it stale, a merge and
/// a deployment status: the whole life of a hotfix seen through the webhook.
fn approvals_pushes_merges_and_deployments(backend: Backend) {
    let t = server(backend);
    let id = awaiting_approval(&t, DEV);

    // A comment is not an approval.
    let out = deliver_and_process(
        &t,
        "pull_request_review",
        "r-0",
        &review("lead-gh", "commented", &sha('b')),
    );
    assert!(out.starts_with("ignored:"), "{out}");

    // The tech lead approves the head on GitHub (login case differs).
    let approve = review("LEAD-gh", "APPROVED", &sha('b'));
    let out = deliver_and_process(&t, "pull_request_review", "r-1", &approve);
    assert!(out.starts_with("approved HF-1"), "{out}");
    let d = incident(&t, &id);
    assert_eq!(d["incident"]["phase"], "ready_to_ship", "{d}");
    let approvals = d["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0]["by"], LEAD);
    assert_eq!(approvals[0]["role"], "tech_lead");
    assert_eq!(approvals[0]["source"], "github");
    assert_eq!(approvals[0]["sha"], sha('b'));
    assert_eq!(events_of(&d, "approved")[0]["actor"], LEAD);

    // GitHub redelivers the same delivery: stored once, processed once.
    let r = deliver(&t, "pull_request_review", "r-1", &approve);
    assert_eq!(r.status, 202);
    assert_eq!(r.json()["status"], "duplicate");
    assert_eq!(inbox(&t).len(), 2);
    // The same review under another delivery id records nothing either.
    let out = deliver_and_process(&t, "pull_request_review", "r-1b", &approve);
    assert!(out.contains("already approved"), "{out}");
    assert_eq!(incident(&t, &id)["approvals"].as_array().unwrap().len(), 1);

    // hotfix's own push echoed back (the head it recorded): nothing.
    let out = deliver_and_process(&t, "push", "p-0", &push(&sha('b')));
    assert!(out.starts_with("ignored:"), "{out}");
    assert_eq!(incident(&t, &id)["incident"]["phase"], "ready_to_ship");

    // Someone pushes to the branch on GitHub: the approval is stale.
    let out = deliver_and_process(&t, "push", "p-1", &push(&sha('c')));
    assert!(out.contains("approvals are stale"), "{out}");
    let d = incident(&t, &id);
    assert_eq!(d["state"]["head_sha"], sha('c'));
    assert_ne!(d["incident"]["phase"], "ready_to_ship");
    assert_eq!(d["incident"]["phase"], "in_review");
    assert_eq!(d["missing_approvals"], json!(["1 tech lead approval"]));
    assert_eq!(d["approvals"][0]["fresh"], false);
    let moved = events_of(&d, "head_moved");
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0]["source"], "github");
    assert_eq!(moved[0]["actor"], "github");
    t.wait_for("the head_moved notification", || {
        t.delivered().iter().any(|m| m["step"] == "head_moved")
    });
    // An approval of the old head now is stale: nothing recorded.
    let out = deliver_and_process(
        &t,
        "pull_request_review",
        "r-2",
        &review("lead2-gh", "approved", &sha('b')),
    );
    assert!(out.contains("stale review"), "{out}");
    assert_eq!(incident(&t, &id)["approvals"].as_array().unwrap().len(), 1);

    // The PR is merged on GitHub.
    let mut merged = fixture("pull_request_opened.json");
    merged["action"] = json!("closed");
    merged["pull_request"]["state"] = json!("closed");
    merged["pull_request"]["merged"] = json!(true);
    merged["pull_request"]["merge_commit_sha"] = json!(sha('d'));
    merged["pull_request"]["head"]["ref"] = json!(BRANCH);
    let out = deliver_and_process(&t, "pull_request", "m-1", &merged);
    assert!(out.starts_with("recorded on HF-1"), "{out}");
    let out = deliver_and_process(&t, "pull_request", "m-1-again", &merged);
    assert!(out.starts_with("ignored:"), "{out}");
    let d = incident(&t, &id);
    let ext = events_of(&d, "external_update");
    assert_eq!(ext.len(), 1, "{ext:?}");
    assert_eq!(ext[0]["what"], "merged on GitHub");
    assert_eq!(ext[0]["detail"], sha('d'));
    assert_eq!(ext[0]["source"], "github");

    // A deployment of the head reports success.
    let mut dep = fixture("deployment_status.json");
    dep["deployment"]["sha"] = json!(sha('c'));
    dep["deployment_status"]["target_url"] = json!("https://pdf-crash.up.railway.app");
    let out = deliver_and_process(&t, "deployment_status", "dep-1", &dep);
    assert!(out.starts_with("recorded on HF-1"), "{out}");
    let d = incident(&t, &id);
    let ext = events_of(&d, "external_update");
    assert_eq!(ext.len(), 2);
    assert_eq!(ext[1]["what"], "deployment success");
    assert_eq!(
        ext[1]["detail"],
        "production https://pdf-crash.up.railway.app"
    );
    // A deployment of a commit no incident has: ignored.
    let mut other = fixture("deployment_status.json");
    other["deployment"]["sha"] = json!(sha('e'));
    let out = deliver_and_process(&t, "deployment_status", "dep-2", &other);
    assert!(out.starts_with("ignored: no incident"), "{out}");
    assert_eq!(events_of(&incident(&t, &id), "external_update").len(), 2);
}

#[test]
fn approvals_pushes_merges_and_deployments_sqlite() {
    approvals_pushes_merges_and_deployments(Backend::Sqlite);
}

#[test]
fn approvals_pushes_merges_and_deployments_postgres() {
    let Some(url) = pg_url() else { return };
    approvals_pushes_merges_and_deployments(Backend::Postgres {
        url,
        schema: unique_schema("gh"),
    });
}

#[test]
fn nobody_approves_their_own_hotfix_on_github_either() {
    let t = server(Backend::Sqlite);
    // A tech lead wrote this one.
    let id = awaiting_approval(&t, LEAD2);
    let out = deliver_and_process(
        &t,
        "pull_request_review",
        "own",
        &review("lead2-gh", "approved", &sha('b')),
    );
    assert!(out.starts_with("refused:"), "{out}");
    assert!(out.contains("nobody approves their own hotfix"), "{out}");
    // The developer is mapped but not an approver.
    let out = deliver_and_process(
        &t,
        "pull_request_review",
        "dev",
        &review("Codertocat", "approved", &sha('b')),
    );
    assert!(out.starts_with("refused:"), "{out}");
    // Somebody GitHub knows but hotfix.toml does not.
    let out = deliver_and_process(
        &t,
        "pull_request_review",
        "stranger",
        &review("octocat", "approved", &sha('b')),
    );
    assert_eq!(
        out,
        "ignored: login octocat is not mapped in [forge.logins]"
    );
    let d = incident(&t, &id);
    assert!(d["approvals"].as_array().unwrap().is_empty(), "{d}");
    assert_eq!(d["incident"]["phase"], "awaiting_approval");
    // The other tech lead may.
    let out = deliver_and_process(
        &t,
        "pull_request_review",
        "other",
        &review("lead-gh", "approved", &sha('b')),
    );
    assert!(out.starts_with("approved"), "{out}");
    assert_eq!(incident(&t, &id)["incident"]["phase"], "ready_to_ship");
    // A dismissal is on the record, and the channel is told the approval still counts.
    let mut dismissed = review("lead-gh", "dismissed", &sha('b'));
    dismissed["action"] = json!("dismissed");
    let out = deliver_and_process(&t, "pull_request_review", "dis", &dismissed);
    assert!(out.contains("dismissed"), "{out}");
    let ext = events_of(&incident(&t, &id), "external_update");
    assert_eq!(ext[0]["what"], "review dismissed");
    assert_eq!(ext[0]["detail"], format!("lead-gh ({LEAD})"));
    t.wait_for("the dismissal notice", || {
        t.delivered()
            .iter()
            .any(|m| m["step"] == "review_dismissed")
    });
}

#[test]
fn deliveries_about_other_repositories_or_branches_change_nothing() {
    let t = server(Backend::Sqlite);
    let id = awaiting_approval(&t, DEV);
    let mut foreign = review("lead-gh", "approved", &sha('b'));
    foreign["repository"]["full_name"] = json!("someone/else");
    let out = deliver_and_process(&t, "pull_request_review", "f-1", &foreign);
    assert!(out.contains("not the [forge] repo"), "{out}");
    let mut elsewhere = push(&sha('c'));
    elsewhere["ref"] = json!("refs/heads/hotfix/other");
    let out = deliver_and_process(&t, "push", "f-2", &elsewhere);
    assert_eq!(out, "ignored: no incident for hotfix/other");
    // GitHub's sample as is: a tag deleted.
    let out = deliver_and_process(&t, "push", "f-3", &fixture("push.json"));
    assert!(out.starts_with("ignored:"), "{out}");
    let mut deleted = push("0000000000000000000000000000000000000000");
    deleted["deleted"] = json!(true);
    let out = deliver_and_process(&t, "push", "f-4", &deleted);
    assert!(out.contains("deleted"), "{out}");
    let d = incident(&t, &id);
    assert_eq!(d["incident"]["version"], 5, "nothing appended: {d}");
}

/// `hotfix push` pushes and then records `pushed` (with the commits the
/// approval rules read) under compare-and-set; GitHub's echo of that push
/// may arrive in between. The echo is left to settle, so the CLI's record
/// wins and the echo then changes nothing: no `head_moved` in the log and
/// no "pushed on GitHub" in the channel for hotfix's own push.
#[test]
fn the_echo_of_hotfixs_own_push_does_not_race_its_record() {
    let t = server(Backend::Sqlite);
    let id = awaiting_approval(&t, DEV);
    let r = deliver(&t, "push", "echo", &push(&sha('c')));
    assert_eq!(r.status, 202, "{}", r.text);
    let inbox_id = r.json()["inbox_id"].as_i64().unwrap();
    // The worker has seen the echo before the CLI records its push.
    t.wait_for("the echo looked at", || {
        inbox(&t).iter().any(|i| {
            i["id"] == inbox_id
                && i["outcome"]
                    .as_str()
                    .is_some_and(|o| o.starts_with("deferred"))
        })
    });
    // The CLI records its push, at the version it read before pushing.
    let dev = t.token(DEV, ApiRole::Developer);
    let pushed = json!({"expected_version": 5, "events": [
        {"type": "pushed", "sha": sha('c'), "commits": [{"sha": sha('c'), "author_email": DEV, "committer_email": DEV, "subject": "fix, take 2"}], "diff": {"files": ["a.rs"], "lines_added": 4, "lines_removed": 1}}
    ]});
    let r = post_json(
        &t.url(&format!("/api/v1/incidents/{id}/events")),
        Some(&dev),
        &pushed,
    );
    assert_eq!(
        r.status, 200,
        "the CLI's append was not beaten by the echo: {}",
        r.text
    );
    let item = processed(&t, inbox_id);
    assert!(
        item["outcome"].as_str().unwrap().contains("already"),
        "{item}"
    );
    // Settling is not a failure: the item was tried once, and no failure counted.
    assert_eq!(item["attempts"], 1, "{item}");
    assert_eq!(t.st.metrics.inbox_failed.get(), 0);
    let d = incident(&t, &id);
    assert!(events_of(&d, "head_moved").is_empty(), "{d}");
    assert_eq!(events_of(&d, "pushed").len(), 2);
}
