//! "Nothing a client sends can skip a guard": the API's generic append
//! route and declare route, with real tokens over real HTTP, refuse what the
//! CLI refuses (issue findings 1 and 7), with the same codes.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;
use hotfix_core::team::ApiRole;
use serde_json::{Value, json};

fn code(r: &Resp) -> String {
    r.json()["error"]["code"].as_str().unwrap_or("").to_string()
}

fn merged_event() -> Value {
    json!({"type": "merged", "merge_sha": sha('c'), "head_sha": sha('b'), "previous_main": sha('a')})
}

#[test]
fn the_append_route_cannot_merge_deploy_or_close_past_the_guards() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let lead = t.token(LEAD, ApiRole::TechLead);
    let id = pushed_unpreviewed(&t, &dev, "pdf-crash", "high");

    // Merged with no preview and no approvals: refused with every reason.
    let r = append(&t, &dev, &id, json!([merged_event()]));
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(code(&r), "no_preview");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("approval"), "{msg}");
    // Deployed without a merge: refused.
    let r = append(
        &t,
        &dev,
        &id,
        json!([{"type": "deployed", "sha": sha('c'), "environment": "production"}]),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(code(&r), "not_merged");
    // Closed by a tech lead with the checklist open: refused as /close does.
    let r = append(&t, &lead, &id, json!([{"type": "closed"}]));
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(code(&r), "checklist_open");
    let r = post(
        &t.url(&format!("/api/v1/incidents/{id}/close")),
        Some(&lead),
        &[],
        b"",
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(code(&r), "checklist_open");
    // A developer may not close even a finished incident.
    let r = append(&t, &dev, &id, json!([{"type": "closed"}]));
    assert_eq!(r.status, 403, "{}", r.text);

    // Nothing of the refused batches was stored.
    let kinds: Vec<String> = events_of(&t, &dev, &id)
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["declared", "pushed", "pr_opened"]);

    // With the preview, the smoke checks and both approvals, the same merge is admitted.
    let r = append(&t, &dev, &id, Value::Array(preview_events()));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = append(&t, &dev, &id, json!([merged_event()]));
    assert_eq!(code(&r), "approvals", "{}", r.text);
    for (who, role) in [(LEAD, ApiRole::TechLead), (REVIEWER, ApiRole::Developer)] {
        let r = approve(&t, &t.token(who, role), &id);
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = append(
        &t,
        &dev,
        &id,
        json!([
            merged_event(),
            {"type": "deployed", "sha": sha('c'), "environment": "production"}
        ]),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // A health verdict is about what was deployed.
    let r = append(
        &t,
        &dev,
        &id,
        json!([{"type": "health_passed", "sha": sha('d'), "probes": 3}]),
    );
    assert_eq!(code(&r), "not_deployed", "{}", r.text);
}

#[test]
fn clients_cannot_write_what_only_the_server_observes() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let admin = t.token("admin@example.com", ApiRole::Admin);
    let id = pushed_unpreviewed(&t, &dev, "pdf-crash", "high");
    for (token, event) in [
        (
            &dev,
            json!({"type": "head_moved", "sha": sha('e'), "source": "github"}),
        ),
        (
            &admin,
            json!({"type": "external_update", "source": "github", "what": "merged on GitHub", "detail": ""}),
        ),
        (
            &dev,
            json!({"type": "alert_received", "source": "alertmanager", "status": "resolved", "key": "k", "summary": "fine"}),
        ),
        (&dev, json!({"type": "pr_closed", "number": 7})),
        (
            &admin,
            json!({"type": "anti_pattern_recorded", "pattern": "bypassed_guards", "reason": "x"}),
        ),
        (
            &dev,
            json!({"type": "merged", "merge_sha": sha('c'), "head_sha": sha('b'), "previous_main": "", "source": "github"}),
        ),
    ] {
        let r = append(&t, token, &id, json!([event]));
        assert_eq!(r.status, 403, "{event}: {}", r.text);
        assert_eq!(code(&r), "server_only", "{event}");
    }
    // Values are checked, whatever the state.
    for (event, want) in [
        (
            json!({"type": "checklist_done", "key": "made_up"}),
            "bad_checklist_key",
        ),
        (
            json!({"type": "checklist_done", "key": "fix_verified"}),
            "bad_checklist_key",
        ),
        (
            json!({"type": "attempt_started", "attempt": 2, "name": "pdf-crash", "branch": "hotfix/pdf-crash", "base_sha": sha('a'), "severity": "critical"}),
            "not_rolled_back",
        ),
        (
            json!({"type": "preview_deployed", "sha": "$(touch /tmp/pwn)", "url": "http://x"}),
            "bad_value",
        ),
        (
            json!({"type": "note", "text": "x".repeat(600_000)}),
            "bad_value",
        ),
        (
            json!({"type": "note", "text": "\u{1b}[31mred"}),
            "bad_value",
        ),
        (
            json!({"type": "postmortem_scheduled", "path": "../../etc/passwd", "due": "2030-01-01T00:00:00Z"}),
            "bad_value",
        ),
    ] {
        let r = append(&t, &dev, &id, json!([event.clone()]));
        assert_eq!(r.status, 422, "{event}: {}", r.text);
        assert_eq!(code(&r), want, "{event}: {}", r.text);
    }
    let s = get(&t.url(&format!("/api/v1/incidents/{id}")), Some(&dev), &[]).json();
    assert_eq!(s["incident"]["severity"], "high", "severity unchanged");
    assert_eq!(s["incident"]["version"], 3, "nothing stored");
}

#[test]
fn declarations_are_validated_before_they_are_stored() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    for (body, want) in [
        (
            json!({"name": "x", "severity": "high", "branch": "main"}),
            "bad_branch",
        ),
        (
            json!({"name": "x", "severity": "high", "branch": "../../etc"}),
            "bad_branch",
        ),
        (
            json!({"name": "../../etc", "severity": "high"}),
            "invalid_name",
        ),
        (
            json!({"name": "x", "severity": "high", "base_sha": "$(touch /tmp/pwn)"}),
            "bad_value",
        ),
        (
            json!({"name": "x", "severity": "high", "title": "t".repeat(600_000)}),
            "bad_value",
        ),
        (
            json!({"name": "x", "severity": "high", "title": "a\r\nb"}),
            "bad_value",
        ),
    ] {
        let r = try_declare(&t, &dev, &body);
        assert_eq!(r.status, 422, "{}: {}", body["name"], r.text);
        assert_eq!(code(&r), want, "{}", r.text);
    }
    assert!(!std::path::Path::new("/tmp/pwn").exists());
    let list = get(&t.url("/api/v1/incidents?state=all"), Some(&dev), &[]).json();
    assert_eq!(list["total"], 0, "nothing was declared");
}

#[test]
fn parallel_declarations_of_one_name_make_one_incident() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let url = t.url("/api/v1/incidents");
    let statuses: Vec<u16> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..20)
            .map(|_| {
                let (url, dev) = (url.clone(), dev.clone());
                sc.spawn(move || {
                    post_json(
                        &url,
                        Some(&dev),
                        &json!({"name": "pdf-crash", "severity": "critical"}),
                    )
                    .status
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    let list = get(&t.url("/api/v1/incidents?state=all"), Some(&dev), &[]).json();
    assert_eq!(list["total"], 1);
}

#[test]
fn an_approval_withdrawn_through_the_api_no_longer_counts() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let lead = t.token(LEAD, ApiRole::TechLead);
    let id = pushed(&t, &dev, "pdf-crash", "critical");
    let r = approve(&t, &lead, &id);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["incident"]["phase"], "ready_to_ship");
    // Someone else cannot withdraw the lead's approval for them.
    let r = append(
        &t,
        &dev,
        &id,
        json!([{"type": "approval_withdrawn", "by": LEAD, "sha": sha('b'), "reason": "x", "source": "api"}]),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let withdraw = |body: Value| {
        post_json(
            &t.url(&format!("/api/v1/incidents/{id}/withdraw")),
            Some(&lead),
            &body,
        )
    };
    assert_eq!(withdraw(json!({"reason": " "})).status, 422);
    let r = withdraw(json!({"reason": "found a bug in the fix"}));
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["recorded"], true);
    assert_eq!(v["incident"]["phase"], "awaiting_approval");
    assert_eq!(v["approvals"][0]["withdrawn"], "found a bug in the fix");
    assert_eq!(v["approvals"][0]["fresh"], false);
    assert_eq!(v["missing_approvals"][0], "1 tech lead approval");
    // The merge is refused again; withdrawing twice records nothing.
    let r = append(&t, &dev, &id, json!([merged_event()]));
    assert_eq!(code(&r), "approvals", "{}", r.text);
    let r = withdraw(json!({"reason": "again"}));
    assert_eq!(r.json()["recorded"], false);
    let withdrawals = events_of(&t, &dev, &id)
        .iter()
        .filter(|e| e["type"] == "approval_withdrawn")
        .count();
    assert_eq!(withdrawals, 1, "the second withdrawal stored nothing");
}
