//! GitHub webhooks over real HTTP on a real store: signatures, what is
//! stored, and what reviews, pushes, merges and deployment statuses do to
//! an incident. Payloads are GitHub's documented samples
//! (`fixtures/github/` at the workspace root, shared with the GitHub forge's tests; from octokit/webhooks), adapted to the incident's
//! branch, head and people.

#![allow(clippy::unwrap_used)]

use crate::common;

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

/// `X-Hub-Signature-256` of `body` under `secret`.
fn signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", sign_hmac_sha256_hex(secret.as_bytes(), body))
}

/// `POST /api/v1/webhooks/github` with exactly these headers and bytes.
fn webhook(t: &TestServer, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    post(&t.url("/api/v1/webhooks/github"), None, headers, body)
}

/// Sends a delivery signed with the test secret.
fn deliver(t: &TestServer, event: &str, delivery: &str, body: &Value) -> Resp {
    let body = body.to_string();
    let sig = signature(GITHUB_SECRET, body.as_bytes());
    webhook(
        t,
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

fn phase(t: &TestServer, id: &str) -> Value {
    incident(t, id)["incident"]["phase"].clone()
}

/// What the incident says to do next.
fn next(d: &Value) -> &str {
    d["incident"]["next"].as_str().unwrap()
}

fn approvals(d: &Value) -> &Vec<Value> {
    d["approvals"].as_array().unwrap()
}

/// Declared by `author` (`pdf-crash`, on `a…a`), pushed at `b…b` in one
/// commit by `author`, `more` recorded after the push, and the preview of
/// `b…b` smoke-passed.
fn pushed_and_previewed(t: &TestServer, author: &str, more: Vec<Value>) -> String {
    let tok = t.token(author, ApiRole::Developer);
    let id = declare(
        t,
        &tok,
        json!({"name": "pdf-crash", "severity": "critical", "base_sha": sha('a')}),
    );
    let mut events = vec![
        json!({"type": "pushed", "sha": sha('b'), "commits": [{"sha": sha('b'), "author_email": author, "committer_email": author, "subject": "fix"}], "diff": {"files": ["a.rs"], "lines_added": 3, "lines_removed": 1}}),
    ];
    events.extend(more);
    events.extend(preview_events());
    let r = append(t, &tok, &id, Value::Array(events));
    assert_eq!(r.status, 200, "{}", r.text);
    id
}

/// Declared by `author`, pushed at `b…b` (authored by `author`), PR #2
/// open, preview smoke-passed: it waits for the tech lead's approval.
fn awaiting_approval(t: &TestServer, author: &str) -> String {
    let pr = json!({"type": "pr_opened", "number": 2, "url": format!("https://github.com/{REPO}/pull/2")});
    let id = pushed_and_previewed(t, author, vec![pr]);
    assert_eq!(phase(t, &id), "awaiting_approval");
    id
}

/// Delivers the review by `login` of `b…b` (see [`review`]); the outcome.
fn deliver_review(t: &TestServer, delivery: &str, login: &str, state: &str) -> String {
    deliver_and_process(
        t,
        "pull_request_review",
        delivery,
        &review(login, state, &sha('b')),
    )
}

/// [`awaiting_approval`] by DEV, and the tech lead approved `b…b` on GitHub.
fn approved_on_github(t: &TestServer) -> String {
    let id = awaiting_approval(t, DEV);
    let out = deliver_review(t, "a-1", "lead-gh", "approved");
    assert!(out.starts_with("approved HF-1"), "{out}");
    id
}

/// GitHub's `pull_request_review` sample, as a review of `commit` on the
/// incident's PR (#2, our branch into main). Each (login, state, commit)
/// gets a review id of its own, the same on every redelivery.
fn review(login: &str, state: &str, commit: &str) -> Value {
    let mut v = fixture("pull_request_review_submitted.json");
    v["review"]["state"] = json!(state);
    v["review"]["user"]["login"] = json!(login);
    v["review"]["commit_id"] = json!(commit);
    v["pull_request"]["head"]["ref"] = json!(BRANCH);
    v["pull_request"]["head"]["sha"] = json!(commit);
    v["pull_request"]["base"]["ref"] = json!("main");
    let key = format!("{}/{state}/{commit}", login.to_ascii_lowercase());
    // FNV-1a: a stable id per review.
    let id = key.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    }) % 1_000_000_000;
    with_review_id(v, id)
}

/// The review with GitHub's review id `id`.
fn with_review_id(mut v: Value, id: u64) -> Value {
    v["review"]["id"] = json!(id);
    v
}

fn review_id(v: &Value) -> u64 {
    v["review"]["id"].as_u64().unwrap()
}

/// The `dismissed` delivery of `review` (same review id, state `dismissed`).
fn dismissal(review: &Value) -> Value {
    let mut v = review.clone();
    v["action"] = json!("dismissed");
    v["review"]["state"] = json!("dismissed");
    v
}

/// GitHub's `pull_request` sample as `action` on the incident's PR: #2,
/// from our branch at `head` into main, in the repository itself.
fn pr_event(action: &str, head: &str) -> Value {
    let mut v = fixture("pull_request_opened.json");
    v["action"] = json!(action);
    v["pull_request"]["head"]["ref"] = json!(BRANCH);
    v["pull_request"]["head"]["sha"] = json!(head);
    v["pull_request"]["base"]["ref"] = json!("main");
    v
}

/// PR #2 merged on GitHub by `by` at `merge` (its head at `head`).
fn merged_pr(merge: &str, head: &str, by: &str) -> Value {
    let mut v = pr_event("closed", head);
    v["pull_request"]["state"] = json!("closed");
    v["pull_request"]["merged"] = json!(true);
    v["pull_request"]["merge_commit_sha"] = json!(merge);
    v["pull_request"]["merged_by"] = json!({"login": by, "type": "User"});
    v
}

/// The PR of `v` from the fork `mallory/Hello-World` (a branch of the same name).
fn from_fork(mut v: Value) -> Value {
    v["pull_request"]["head"]["repo"]["full_name"] = json!("mallory/Hello-World");
    v
}

/// The PR of `v` numbered `n`.
fn numbered(mut v: Value, n: u64) -> Value {
    v["pull_request"]["number"] = json!(n);
    v
}

/// GitHub's `deployment_status` sample, about the deployment of `commit`.
fn deployment_of(commit: &str) -> Value {
    let mut v = fixture("deployment_status.json");
    v["deployment"]["sha"] = json!(commit);
    v
}

/// GitHub's `push` sample (a tag deletion), as a push of `after` to our branch.
fn push(after: &str) -> Value {
    push_from(&sha('b'), after)
}

/// A push of our branch from `before` to `after`.
fn push_from(before: &str, after: &str) -> Value {
    let mut v = fixture("push.json");
    v["ref"] = json!(format!("refs/heads/{BRANCH}"));
    v["before"] = json!(before);
    v["after"] = json!(after);
    v["deleted"] = json!(false);
    v
}

/// Every notification once the outbox is drained (nothing in flight).
fn settled_posts(t: &TestServer) -> Vec<Value> {
    t.wait_for("the outbox drained", || {
        t.st.store.undelivered().unwrap().is_empty()
    });
    t.delivered()
}

/// Waits until a notification of `step` was delivered (mentioning `who`, when given).
fn wait_for_post(t: &TestServer, step: &str, who: Option<&str>) {
    t.wait_for(&format!("the {step} notification"), || {
        t.delivered().iter().any(|m| {
            m["step"] == step
                && who.is_none_or(|w| m["mentions"].as_array().unwrap().contains(&json!(w)))
        })
    });
}

fn version(t: &TestServer, id: &str) -> u64 {
    incident(t, id)["incident"]["version"].as_u64().unwrap()
}

/// The incident's version and the number of posts, once the outbox is
/// drained: [`assert_unchanged`] shows that nothing happened since.
fn mark(t: &TestServer, id: &str) -> (u64, usize) {
    (version(t, id), settled_posts(t).len())
}

/// Nothing was recorded on `id` and nothing posted since `mark`.
fn assert_unchanged(t: &TestServer, id: &str, mark: (u64, usize)) {
    let d = incident(t, id);
    assert_eq!(d["incident"]["version"], mark.0, "nothing recorded: {d}");
    assert_eq!(settled_posts(t).len(), mark.1, "nothing posted");
}

/// The head of `id` moved to `head` on GitHub: recorded once, by the
/// webhook, announced, and the tech lead's approval of the old head no
/// longer counts.
fn assert_moved_and_stale(t: &TestServer, id: &str, head: &str) {
    let d = incident(t, id);
    assert_eq!(d["state"]["head_sha"], head);
    assert_eq!(d["incident"]["phase"], "in_review");
    assert_eq!(d["missing_approvals"], json!(["1 tech lead approval"]));
    assert_eq!(d["approvals"][0]["fresh"], false);
    let moved = of_kind(&d, "head_moved");
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0]["sha"], head);
    assert_eq!(moved[0]["source"], "github");
    assert_eq!(moved[0]["actor"], "github");
    wait_for_post(t, "head_moved", None);
}

/// The events of `kind` in the incident `d`.
fn of_kind(d: &Value, kind: &str) -> Vec<Value> {
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
    let send = |extra: Vec<(&str, &str)>, bytes: &[u8]| {
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", "pull_request_review"),
            ("X-GitHub-Delivery", "d-1"),
        ];
        headers.extend(extra);
        webhook(&t, &headers, bytes)
    };
    for (what, extra, bytes) in cases {
        let r = send(extra, &bytes);
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        assert_eq!(r.json()["error"]["code"], "unauthorized", "{what}");
        assert!(
            !r.text.contains(GITHUB_SECRET) && !r.text.contains(&good[7..]),
            "{what}: the answer echoes no secret: {}",
            r.text
        );
    }
    assert!(inbox(&t).is_empty(), "nothing was stored");
    assert!(approvals(&incident(&t, "HF-1")).is_empty());
    let metrics = get(&t.url("/metrics"), None, &[]).text;
    assert!(
        metrics.contains(r#"hotfix_rejected_total{source="github",reason="bad_signature"} 4"#),
        "{metrics}"
    );
    // The same body, signed properly, goes through.
    let r = send(vec![("X-Hub-Signature-256", &good)], body.as_bytes());
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
    let r = webhook(
        &t,
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
    let r = webhook(
        &t,
        &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &sig)],
        body,
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = webhook(&t, &[("X-Hub-Signature-256", &sig)], body);
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(inbox(&t).is_empty(), "nothing was stored");
}

/// Approval on GitHub, redelivery, a push that makes it stale, a merge and
/// a deployment status: the whole life of a hotfix seen through the webhook.
fn approvals_pushes_merges_and_deployments(backend: Backend) {
    let t = server(backend);
    let id = awaiting_approval(&t, DEV);

    // A comment is not an approval.
    let out = deliver_review(&t, "r-0", "lead-gh", "commented");
    assert!(out.starts_with("ignored:"), "{out}");

    // The tech lead approves the head on GitHub (login case differs).
    let approve = review("LEAD-gh", "APPROVED", &sha('b'));
    let out = deliver_and_process(&t, "pull_request_review", "r-1", &approve);
    assert!(out.starts_with("approved HF-1"), "{out}");
    let d = incident(&t, &id);
    assert_eq!(d["incident"]["phase"], "ready_to_ship", "{d}");
    let given = approvals(&d);
    assert_eq!(given.len(), 1);
    assert_eq!(given[0]["by"], LEAD);
    assert_eq!(given[0]["role"], "tech_lead");
    assert_eq!(given[0]["source"], "github");
    assert_eq!(given[0]["sha"], sha('b'));
    assert_eq!(of_kind(&d, "approved")[0]["actor"], LEAD);

    // GitHub redelivers the same delivery: stored once, processed once.
    let r = deliver(&t, "pull_request_review", "r-1", &approve);
    assert_eq!(r.status, 202);
    assert_eq!(r.json()["status"], "duplicate");
    assert_eq!(inbox(&t).len(), 2);
    // The same review under another delivery id records nothing either.
    let out = deliver_and_process(&t, "pull_request_review", "r-1b", &approve);
    assert!(out.contains("already approved"), "{out}");
    assert_eq!(approvals(&incident(&t, &id)).len(), 1);

    // hotfix's own push echoed back (the head it recorded): nothing.
    let out = deliver_and_process(&t, "push", "p-0", &push(&sha('b')));
    assert!(out.starts_with("ignored:"), "{out}");
    assert_eq!(phase(&t, &id), "ready_to_ship");

    // Someone pushes to the branch on GitHub: the approval is stale.
    let out = deliver_and_process(&t, "push", "p-1", &push(&sha('c')));
    assert!(out.contains("approvals are stale"), "{out}");
    assert_moved_and_stale(&t, &id, &sha('c'));
    // An approval of the old head now is stale: nothing recorded.
    let out = deliver_review(&t, "r-2", "lead2-gh", "approved");
    assert!(out.contains("stale review"), "{out}");
    assert_eq!(approvals(&incident(&t, &id)).len(), 1);

    // The PR is merged on GitHub (its approval stale: past the guards).
    let merged = merged_pr(&sha('d'), &sha('c'), "Codertocat");
    let out = deliver_and_process(&t, "pull_request", "m-1", &merged);
    assert!(
        out.starts_with("recorded on HF-1: merged on GitHub"),
        "{out}"
    );
    let out = deliver_and_process(&t, "pull_request", "m-1-again", &merged);
    assert!(out.starts_with("ignored:"), "{out}");
    let d = incident(&t, &id);
    let m = of_kind(&d, "merged");
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0]["merge_sha"], sha('d'));
    assert_eq!(m[0]["head_sha"], sha('c'));
    assert_eq!(m[0]["source"], "github");
    assert_eq!(d["state"]["merge_sha"], sha('d'));
    assert!(of_kind(&d, "external_update").is_empty(), "{d}");

    // A deployment of the head reports success.
    let mut dep = deployment_of(&sha('c'));
    dep["deployment_status"]["target_url"] = json!("https://pdf-crash.up.railway.app");
    let out = deliver_and_process(&t, "deployment_status", "dep-1", &dep);
    assert!(out.starts_with("recorded on HF-1"), "{out}");
    let d = incident(&t, &id);
    let ext = of_kind(&d, "external_update");
    assert_eq!(ext.len(), 1);
    assert_eq!(ext[0]["what"], "deployment success");
    assert_eq!(
        ext[0]["detail"],
        "production https://pdf-crash.up.railway.app"
    );
    // A deployment of a commit no incident has: ignored.
    let out = deliver_and_process(&t, "deployment_status", "dep-2", &deployment_of(&sha('e')));
    assert!(out.starts_with("ignored: no incident"), "{out}");
    assert_eq!(of_kind(&incident(&t, &id), "external_update").len(), 1);
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
    let out = deliver_review(&t, "own", "lead2-gh", "approved");
    assert!(out.starts_with("refused:"), "{out}");
    assert!(out.contains("nobody approves their own hotfix"), "{out}");
    // The developer is mapped but not an approver.
    let out = deliver_review(&t, "dev", "Codertocat", "approved");
    assert!(out.starts_with("refused:"), "{out}");
    // Somebody GitHub knows but hotfix.toml does not.
    let out = deliver_review(&t, "stranger", "octocat", "approved");
    assert_eq!(
        out,
        "ignored: login octocat is not mapped in [forge.logins]"
    );
    let d = incident(&t, &id);
    assert!(approvals(&d).is_empty(), "{d}");
    assert_eq!(d["incident"]["phase"], "awaiting_approval");
    // The other tech lead may.
    let out = deliver_review(&t, "other", "lead-gh", "approved");
    assert!(out.starts_with("approved"), "{out}");
    assert_eq!(phase(&t, &id), "ready_to_ship");
    // Dismissing that review withdraws the approval it gave.
    let dismissed = dismissal(&review("lead-gh", "approved", &sha('b')));
    let out = deliver_and_process(&t, "pull_request_review", "dis", &dismissed);
    assert!(out.contains("dismissed"), "{out}");
    let d = incident(&t, &id);
    let w = of_kind(&d, "approval_withdrawn");
    assert_eq!(w.len(), 1, "{d}");
    assert_eq!(w[0]["by"], LEAD);
    assert_eq!(d["incident"]["phase"], "awaiting_approval");
    wait_for_post(&t, "approval_withdrawn", None);
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
    assert!(of_kind(&d, "head_moved").is_empty(), "{d}");
    assert_eq!(of_kind(&d, "pushed").len(), 2);
}

/// A dismissed review, or *changes requested*, takes the approval back; the
/// same review delivered again (under a new delivery id) changes nothing.
#[test]
fn a_dismissed_review_or_changes_requested_withdraws_the_approval_once() {
    let t = server(Backend::Sqlite);
    let id = awaiting_approval(&t, DEV);
    // GitHub numbers reviews in the order they are given.
    let approve = with_review_id(review("lead-gh", "approved", &sha('b')), 4240);
    let out = deliver_and_process(&t, "pull_request_review", "a-1", &approve);
    assert!(out.starts_with("approved HF-1"), "{out}");
    assert_eq!(phase(&t, &id), "ready_to_ship");

    // The review is dismissed on GitHub: the approval no longer counts.
    let dismiss = dismissal(&approve);
    let out = deliver_and_process(&t, "pull_request_review", "d-1", &dismiss);
    assert!(out.starts_with("withdrawn on HF-1"), "{out}");
    let d = incident(&t, &id);
    let w = of_kind(&d, "approval_withdrawn");
    assert_eq!(w.len(), 1, "{d}");
    assert_eq!(w[0]["by"], LEAD);
    assert_eq!(w[0]["sha"], sha('b'));
    assert_eq!(
        w[0]["reason"],
        format!("GitHub review {} dismissed", review_id(&approve))
    );
    assert_eq!(w[0]["source"], "github");
    assert_eq!(d["missing_approvals"], json!(["1 tech lead approval"]));
    assert!(!d["approvals"][0]["withdrawn"].is_null(), "{d}");
    assert_eq!(
        d["approvals"][0]["fresh"], false,
        "withdrawn: it does not count"
    );
    assert_eq!(d["incident"]["phase"], "awaiting_approval");
    wait_for_post(&t, "approval_withdrawn", None);
    let before = mark(&t, &id);

    // The same dismissal again, and the approval it dismissed replayed:
    // nothing recorded, nobody paged.
    let out = deliver_and_process(&t, "pull_request_review", "d-1-again", &dismiss);
    assert!(out.starts_with("ignored: already withdrawn"), "{out}");
    let out = deliver_and_process(&t, "pull_request_review", "a-1-replay", &approve);
    assert!(out.starts_with("ignored: already withdrawn"), "{out}");
    assert_unchanged(&t, &id, before);

    // A new approval counts again; changes requested by the same person
    // withdraws it, once.
    let again = with_review_id(review("lead-gh", "approved", &sha('b')), 4242);
    let out = deliver_and_process(&t, "pull_request_review", "a-2", &again);
    assert!(out.starts_with("approved HF-1"), "{out}");
    assert_eq!(phase(&t, &id), "ready_to_ship");
    let changes = with_review_id(review("lead-gh", "changes_requested", &sha('b')), 4243);
    let out = deliver_and_process(&t, "pull_request_review", "c-1", &changes);
    assert!(out.starts_with("withdrawn on HF-1"), "{out}");
    let d = incident(&t, &id);
    let w = of_kind(&d, "approval_withdrawn");
    assert_eq!(w.len(), 2, "{d}");
    assert!(
        w[1]["reason"]
            .as_str()
            .unwrap()
            .starts_with("GitHub review 4243: changes requested"),
        "{}",
        w[1]
    );
    assert!(!d["missing_approvals"].as_array().unwrap().is_empty());
    assert!(!d["approvals"][1]["withdrawn"].is_null(), "{d}");
    let v = version(&t, &id);
    let out = deliver_and_process(&t, "pull_request_review", "c-1-again", &changes);
    assert!(out.starts_with("ignored: already withdrawn"), "{out}");
    // The approval before the changes request, replayed: older, so nothing.
    let out = deliver_and_process(&t, "pull_request_review", "a-2-replay", &again);
    assert!(out.starts_with("ignored: replay"), "{out}");
    // Changes requested by somebody with no approval: nothing to withdraw.
    let out = deliver_review(&t, "c-2", "lead2-gh", "changes_requested");
    assert!(out.starts_with("ignored:"), "{out}");
    assert_eq!(version(&t, &id), v);

    // A dismissed review that gave no hotfix approval is kept with its id,
    // so its redelivery is recognised.
    let stranger = dismissal(&with_review_id(
        review("octocat", "approved", &sha('b')),
        5150,
    ));
    let out = deliver_and_process(&t, "pull_request_review", "d-2", &stranger);
    assert!(out.starts_with("recorded on HF-1"), "{out}");
    let ext = of_kind(&incident(&t, &id), "external_update");
    assert_eq!(ext.len(), 1);
    assert_eq!(ext[0]["what"], "review dismissed");
    assert!(
        ext[0]["detail"].as_str().unwrap().contains("5150"),
        "{}",
        ext[0]
    );
    let v = version(&t, &id);
    let out = deliver_and_process(&t, "pull_request_review", "d-2-again", &stranger);
    assert!(out.starts_with("ignored:"), "{out}");
    assert_eq!(version(&t, &id), v);
}

/// `pull_request` `synchronize` (and `edited` with a new head) moves the
/// head as a push does, without waiting for the push delivery.
#[test]
fn a_pr_synchronize_or_edit_moves_the_head_like_a_push() {
    let t = server(Backend::Sqlite);
    let id = approved_on_github(&t);
    let mut sync = pr_event("synchronize", &sha('c'));
    sync["before"] = json!(sha('b'));
    sync["after"] = json!(sha('c'));
    let out = deliver_and_process(&t, "pull_request", "s-1", &sync);
    assert_eq!(
        out, "recorded on HF-1: head moved to ccccccc; approvals are stale",
        "{out}"
    );
    assert_moved_and_stale(&t, &id, &sha('c'));
    // The push of the same move, and an edit of the title, change nothing.
    let out = deliver_and_process(&t, "push", "p-1", &push(&sha('c')));
    assert_eq!(out, "ignored: the head of HF-1 is already ccccccc");
    let out = deliver_and_process(&t, "pull_request", "e-1", &pr_event("edited", &sha('c')));
    assert_eq!(out, "ignored: the head of HF-1 is already ccccccc");
    // An edit showing a head hotfix has not seen (its push never came).
    let out = deliver_and_process(&t, "pull_request", "e-2", &pr_event("edited", &sha('d')));
    assert!(
        out.starts_with("recorded on HF-1: head moved to ddddddd"),
        "{out}"
    );
    let d = incident(&t, &id);
    assert_eq!(d["state"]["head_sha"], sha('d'));
    assert_eq!(of_kind(&d, "head_moved").len(), 2);
}

/// A GitHub event is the incident's when it is about the incident's own PR:
/// its number, in the [forge] repository, into main, from the branch in
/// that same repository. A fork's `hotfix/<name>` is somebody else's.
#[test]
fn only_the_incidents_own_pr_is_matched_not_a_fork_or_another_number() {
    let t = server(Backend::Sqlite);
    let id = awaiting_approval(&t, DEV);
    let before = mark(&t, &id);
    let out = deliver_and_process(
        &t,
        "pull_request_review",
        "f-1",
        &from_fork(review("lead-gh", "approved", &sha('b'))),
    );
    assert!(
        out.starts_with("ignored: PR #2 comes from the fork mallory/Hello-World"),
        "{out}"
    );
    let out = deliver_and_process(
        &t,
        "pull_request",
        "f-2",
        &from_fork(merged_pr(&sha('e'), &sha('b'), "mallory")),
    );
    assert!(out.contains("fork"), "{out}");
    let mut closed = pr_event("closed", &sha('b'));
    closed["pull_request"]["head"]["repo"] = Value::Null;
    let out = deliver_and_process(&t, "pull_request", "f-3", &closed);
    assert!(out.contains("fork (deleted)"), "{out}");
    let other = numbered(review("lead-gh", "approved", &sha('b')), 7);
    let out = deliver_and_process(&t, "pull_request_review", "n-7", &other);
    assert_eq!(out, "ignored: PR #7 is not the PR of HF-1 (#2)");
    let mut release = merged_pr(&sha('e'), &sha('b'), "lead-gh");
    release["pull_request"]["base"]["ref"] = json!("release");
    let out = deliver_and_process(&t, "pull_request", "r-1", &release);
    assert!(out.contains("is into release, not main"), "{out}");
    let mut elsewhere = review("lead-gh", "approved", &sha('b'));
    elsewhere["pull_request"]["base"]["repo"]["full_name"] = json!("mallory/Hello-World");
    let out = deliver_and_process(&t, "pull_request_review", "x-1", &elsewhere);
    assert!(out.contains("not the [forge] repo"), "{out}");
    // Nothing recorded, nothing posted.
    assert_unchanged(&t, &id, before);
    let d = incident(&t, &id);
    assert!(approvals(&d).is_empty());
    assert!(d["state"]["merge_sha"].is_null());
    // The PR itself still is.
    let out = deliver_review(&t, "own", "lead-gh", "approved");
    assert!(out.starts_with("approved HF-1"), "{out}");
}

/// Before `pr_opened` is recorded the branch decides, still only for a PR
/// into main from the same repository.
#[test]
fn before_the_incident_has_a_pr_its_branch_into_main_decides() {
    let t = server(Backend::Sqlite);
    let id = pushed_and_previewed(&t, DEV, vec![]);
    assert!(incident(&t, &id)["state"]["pr"].is_null());
    let pr9 = || numbered(review("lead-gh", "approved", &sha('b')), 9);
    let out = deliver_and_process(&t, "pull_request_review", "f-9", &from_fork(pr9()));
    assert!(out.contains("fork"), "{out}");
    let mut into_develop = pr9();
    into_develop["pull_request"]["base"]["ref"] = json!("develop");
    let out = deliver_and_process(&t, "pull_request_review", "d-9", &into_develop);
    assert!(out.contains("backport"), "{out}");
    assert!(approvals(&incident(&t, &id)).is_empty());
    let out = deliver_and_process(&t, "pull_request_review", "o-9", &pr9());
    assert!(out.starts_with("approved HF-1"), "{out}");
}

/// A merge on GitHub is the incident's merge: the merge sha is recorded
/// (with the bypass of the guards that still refused), so the deployment
/// of that commit is matched and the backport PR is recognised.
#[test]
fn a_merge_on_github_records_the_merge_past_the_guards_and_its_backport() {
    let t = server(Backend::Sqlite);
    let id = awaiting_approval(&t, DEV);
    // The backport PR (our branch into develop) merged first: not yet.
    let mut backport = numbered(merged_pr(&sha('f'), &sha('b'), "lead-gh"), 3);
    backport["number"] = json!(3);
    backport["pull_request"]["base"]["ref"] = json!("develop");
    let out = deliver_and_process(&t, "pull_request", "bp-0", &backport);
    assert!(out.starts_with("refused:"), "{out}");
    assert!(out.contains("not merged"), "{out}");

    // An admin merges PR #2 on GitHub without the tech lead's approval.
    let merge = merged_pr(&sha('e'), &sha('b'), "octocat");
    let out = deliver_and_process(&t, "pull_request", "m-1", &merge);
    assert!(
        out.starts_with("recorded on HF-1: merged on GitHub by octocat at eeeeeee"),
        "{out}"
    );
    let d = incident(&t, &id);
    assert_eq!(d["state"]["merge_sha"], sha('e'));
    assert_eq!(d["incident"]["phase"], "merged");
    let m = of_kind(&d, "merged");
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["merge_sha"], sha('e'));
    assert_eq!(m[0]["head_sha"], sha('b'));
    assert_eq!(m[0]["previous_main"], "");
    assert!(m[0]["previous_deployment"].is_null());
    assert_eq!(m[0]["source"], "github");
    let bypass = of_kind(&d, "anti_pattern_recorded");
    assert_eq!(bypass.len(), 1);
    assert_eq!(bypass[0]["pattern"], "bypassed_guards");
    let reason = bypass[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("merged on GitHub by octocat past: "),
        "{reason}"
    );
    assert!(reason.contains("missing 1 tech lead approval"), "{reason}");
    assert_eq!(
        bypass[0]["seq"].as_u64().unwrap() + 1,
        m[0]["seq"].as_u64().unwrap()
    );
    assert!(of_kind(&d, "external_update").is_empty());
    // The tech leads are told of the bypass.
    wait_for_post(&t, "anti_pattern_recorded", Some(LEAD));
    // Delivered again: nothing.
    let v = version(&t, &id);
    let out = deliver_and_process(&t, "pull_request", "m-1-again", &merge);
    assert!(
        out.starts_with("ignored: HF-1 already records the merge"),
        "{out}"
    );
    assert_eq!(version(&t, &id), v);

    // Production reports the merge commit failed to deploy: the tech leads are paged.
    let mut dep = deployment_of(&sha('e'));
    dep["deployment_status"]["state"] = json!("failure");
    let out = deliver_and_process(&t, "deployment_status", "dep-1", &dep);
    assert!(
        out.starts_with("recorded on HF-1: deployment failure"),
        "{out}"
    );
    wait_for_post(&t, "github_deployment", Some(LEAD));

    // Now the backport PR's merge is the backport, not another merge.
    let out = deliver_and_process(&t, "pull_request", "bp-1", &backport);
    assert!(out.starts_with("recorded on HF-1: backported"), "{out}");
    let d = incident(&t, &id);
    assert_eq!(d["state"]["backport_sha"], sha('f'));
    assert_eq!(d["state"]["merge_sha"], sha('e'));
    assert_eq!(of_kind(&d, "merged").len(), 1);
    assert_eq!(of_kind(&d, "backported").len(), 1);
    let out = deliver_and_process(&t, "pull_request", "bp-1-again", &backport);
    assert!(out.starts_with("ignored:"), "{out}");
    assert_eq!(of_kind(&incident(&t, &id), "backported").len(), 1);
}

/// A ready hotfix merged on GitHub: the merge, and no bypass.
#[test]
fn a_ready_hotfix_merged_on_github_records_no_bypass() {
    let t = server(Backend::Sqlite);
    let id = approved_on_github(&t);
    let out = deliver_and_process(
        &t,
        "pull_request",
        "m-1",
        &merged_pr(&sha('e'), &sha('b'), "lead-gh"),
    );
    assert_eq!(
        out,
        "recorded on HF-1: merged on GitHub by lead-gh at eeeeeee"
    );
    let d = incident(&t, &id);
    assert_eq!(d["state"]["merge_sha"], sha('e'));
    assert!(of_kind(&d, "anti_pattern_recorded").is_empty(), "{d}");
    assert!(next(&d).contains("finish the production deploy"), "{d}");
}

/// GitHub merged a head whose push hotfix has not recorded yet (it is
/// still settling): the head moves to it first, so the merge is not lost.
#[test]
fn a_merge_of_a_head_not_seen_yet_moves_the_head_first() {
    let t = server(Backend::Sqlite);
    let id = approved_on_github(&t);
    let out = deliver_and_process(
        &t,
        "pull_request",
        "m-1",
        &merged_pr(&sha('e'), &sha('c'), "lead-gh"),
    );
    assert!(
        out.starts_with("recorded on HF-1: merged on GitHub"),
        "{out}"
    );
    let d = incident(&t, &id);
    let kinds: Vec<&str> = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .take(3)
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["merged", "anti_pattern_recorded", "head_moved"]);
    assert_eq!(d["state"]["head_sha"], sha('c'));
    assert_eq!(d["state"]["merge_sha"], sha('e'));
    // Its push, when it comes, changes nothing.
    let out = deliver_and_process(&t, "push", "p-1", &push(&sha('c')));
    assert!(out.starts_with("ignored:"), "{out}");
}

/// A PR closed without merging is `pr_closed`, and the next action says so;
/// reopening it on GitHub puts it back.
#[test]
fn a_pr_closed_without_merging_is_recorded_and_said_next() {
    let t = server(Backend::Sqlite);
    let id = awaiting_approval(&t, DEV);
    let mut closed = pr_event("closed", &sha('b'));
    closed["pull_request"]["state"] = json!("closed");
    let out = deliver_and_process(&t, "pull_request", "c-1", &closed);
    assert_eq!(out, "recorded on HF-1: PR #2 closed without merging");
    let d = incident(&t, &id);
    let c = of_kind(&d, "pr_closed");
    assert_eq!(c.len(), 1);
    assert_eq!(c[0]["number"], 2);
    assert!(of_kind(&d, "external_update").is_empty());
    assert!(next(&d).contains("PR #2 was closed without merging"), "{d}");
    wait_for_post(&t, "pr_closed", None);
    let out = deliver_and_process(&t, "pull_request", "c-1-again", &closed);
    assert!(out.starts_with("ignored:"), "{out}");
    assert_eq!(of_kind(&incident(&t, &id), "pr_closed").len(), 1);
    let out = deliver_and_process(&t, "pull_request", "o-1", &pr_event("reopened", &sha('b')));
    assert_eq!(out, "recorded on HF-1: PR #2 reopened");
    let d = incident(&t, &id);
    assert!(!next(&d).contains("closed without merging"), "{d}");
    assert_eq!(d["incident"]["phase"], "awaiting_approval");
}

/// Pushes are taken only when they move the branch from the head hotfix
/// knows to a head it never had: a signed push body replayed under a new
/// delivery id, or a flip back and forth, changes nothing.
#[test]
fn replayed_pushes_change_nothing() {
    let t = server(Backend::Sqlite);
    let id = awaiting_approval(&t, DEV);
    // Legitimate: from the recorded head.
    let bc = push_from(&sha('b'), &sha('c'));
    let out = deliver_and_process(&t, "push", "p-1", &bc);
    assert!(
        out.starts_with("recorded on HF-1: head moved to ccccccc"),
        "{out}"
    );
    let cd = push_from(&sha('c'), &sha('d'));
    let out = deliver_and_process(&t, "push", "p-2", &cd);
    assert!(
        out.starts_with("recorded on HF-1: head moved to ddddddd"),
        "{out}"
    );
    let before = mark(&t, &id);
    // The first push again, twice, under new delivery ids.
    for n in ["p-1-replay", "p-1-replay-2"] {
        let out = deliver_and_process(&t, "push", n, &bc);
        assert!(out.starts_with("ignored: replay"), "{n}: {out}");
    }
    // d → c → d: back to a head it had, then forth from a head it does not have.
    let out = deliver_and_process(&t, "push", "p-3", &push_from(&sha('d'), &sha('c')));
    assert!(out.starts_with("ignored: replay"), "{out}");
    assert!(out.contains("already a head"), "{out}");
    let out = deliver_and_process(&t, "push", "p-4", &cd);
    assert!(out.starts_with("ignored:"), "{out}");
    // From a commit hotfix never saw.
    let out = deliver_and_process(&t, "push", "p-5", &push_from(&sha('e'), &sha('f')));
    assert!(out.starts_with("ignored: replay"), "{out}");
    assert_unchanged(&t, &id, before);
    let d = incident(&t, &id);
    assert_eq!(d["state"]["head_sha"], sha('d'));
    assert_eq!(of_kind(&d, "head_moved").len(), 2);
}
