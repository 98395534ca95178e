//! The JSON API over real HTTP on a real store: tokens and roles, declare,
//! append with compare-and-set, server-side approval rules, checklist, close.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;
use hotfix_core::team::ApiRole;
use serde_json::json;

#[test]
fn requests_without_a_valid_token_are_refused() {
    let t = TestServer::start();
    let r = get(&t.url("/api/v1/incidents"), None, &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "unauthorized");
    let r = get(&t.url("/api/v1/incidents"), Some("hf_not_a_token"), &[]);
    assert_eq!(r.status, 401);
    let dev = t.token(DEV, ApiRole::Developer);
    let r = get(&t.url("/api/v1/me"), Some(&dev), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["user"], DEV);
    assert_eq!(r.json()["role"], "developer");
}

#[test]
fn declare_refuses_medium_and_unknown_severities() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let r = post_json(
        &t.url("/api/v1/incidents"),
        Some(&dev),
        &json!({"name": "x", "severity": "medium"}),
    );
    assert_eq!(r.status, 422);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("normal release")
    );
    let r = post_json(
        &t.url("/api/v1/incidents"),
        Some(&dev),
        &json!({"name": "x", "severity": "urgent"}),
    );
    assert_eq!(r.status, 422);
    let r = post_json(
        &t.url("/api/v1/incidents"),
        Some(&dev),
        &json!({"name": "bad name!", "severity": "high"}),
    );
    assert_eq!(r.status, 422);
    // Names the CLI could never start (`hotfix start NAME --incident`) are refused here too.
    for bad in ["-x", "a..b", "x.lock", "x."] {
        let r = post_json(
            &t.url("/api/v1/incidents"),
            Some(&dev),
            &json!({"name": bad, "severity": "high"}),
        );
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
    }
    let r = post(
        &t.url("/api/v1/incidents"),
        Some(&dev),
        &[("Content-Type", "application/json")],
        b"{not json",
    );
    assert_eq!(r.status, 400);
    let r = get(&t.url("/api/v1/incidents?state=all"), Some(&dev), &[]);
    assert_eq!(
        r.json()["incidents"].as_array().unwrap().len(),
        0,
        "nothing was stored"
    );
}

/// Declares, then appends a push as the developer would through the CLI.
fn declared_and_pushed(t: &TestServer, dev: &str, severity: &str) -> String {
    let r = post_json(
        &t.url("/api/v1/incidents"),
        Some(dev),
        &json!({"name": "pdf-crash", "severity": severity, "base_sha": "a".repeat(40)}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json()["incident"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["incident"]["phase"], "fixing");
    let push = json!({"expected_version": 1, "events": [
        {"type": "pushed", "sha": "b".repeat(40), "commits": [{"sha": "b".repeat(40), "author_email": DEV, "committer_email": DEV, "subject": "fix"}], "diff": {"files": ["a.rs"], "lines_added": 3, "lines_removed": 1}},
        {"type": "pr_opened", "number": 7, "url": "local://pr/7"},
        {"type": "preview_deployed", "sha": "b".repeat(40), "url": "http://127.0.0.1:1/"},
        {"type": "smoke_passed", "sha": "b".repeat(40), "checks": []}
    ]});
    let r = post_json(
        &t.url(&format!("/api/v1/incidents/{id}/events")),
        Some(dev),
        &push,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["version"], 5);
    id
}

#[test]
fn appends_are_compare_and_set_and_stamped_by_the_server() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let id = declared_and_pushed(&t, &dev, "critical");
    let stale = json!({"expected_version": 1, "events": [{"type": "note", "text": "late"}]});
    let r = post_json(
        &t.url(&format!("/api/v1/incidents/{id}/events")),
        Some(&dev),
        &stale,
    );
    assert_eq!(r.status, 409, "{}", r.text);
    let r = get(
        &t.url(&format!("/api/v1/incidents/{id}/events")),
        Some(&dev),
        &[],
    );
    let events = r.json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|e| e["actor"] == DEV));
    let bad = json!({"events": [{"type": "declared", "name": "x", "title": "x", "severity": "high", "customer_facing": false, "security": false, "branch": "hotfix/x", "base_sha": ""}]});
    let r = post_json(
        &t.url(&format!("/api/v1/incidents/{id}/events")),
        Some(&dev),
        &bad,
    );
    assert_eq!(r.status, 422);
    let r = post_json(
        &t.url(&format!("/api/v1/incidents/{id}/events")),
        Some(&dev),
        &json!({"events": [{"type": "teleported"}]}),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn only_a_tech_lead_who_did_not_write_it_approves() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let id = declared_and_pushed(&t, &dev, "critical");
    let approve = |tok: &str| {
        post(
            &t.url(&format!("/api/v1/incidents/{id}/approve")),
            Some(tok),
            &[],
            b"",
        )
    };
    // The developer who declared and wrote it: never.
    let r = approve(&dev);
    assert_eq!(r.status, 403, "{}", r.text);
    // A tech lead named in [team] but holding a developer token: no.
    let lead_dev_token = t.token(LEAD, ApiRole::Developer);
    let r = approve(&lead_dev_token);
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("tech_lead"), "{}", r.text);
    // A tech_lead token for someone not in [team]: no.
    let stranger = t.token("stranger@example.com", ApiRole::TechLead);
    assert_eq!(approve(&stranger).status, 403);
    // Forging an approval in someone else's name through the event API: no.
    let forged = json!({"events": [{"type": "approved", "by": LEAD, "role": "tech_lead", "sha": "b".repeat(40), "source": "api"}]});
    let r = post_json(
        &t.url(&format!("/api/v1/incidents/{id}/events")),
        Some(&dev),
        &forged,
    );
    assert_eq!(r.status, 403, "{}", r.text);
    // The tech lead with a tech_lead token: yes, once.
    let lead = t.token(LEAD, ApiRole::TechLead);
    let r = approve(&lead);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["recorded"], true);
    assert_eq!(r.json()["incident"]["phase"], "ready_to_ship");
    let r = approve(&lead);
    assert_eq!(r.json()["recorded"], false);
}

#[test]
fn closing_needs_a_tech_lead_and_a_done_checklist() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let lead = t.token(LEAD, ApiRole::TechLead);
    let id = declared_and_pushed(&t, &dev, "critical");
    let r = post(
        &t.url(&format!("/api/v1/incidents/{id}/close")),
        Some(&dev),
        &[],
        b"",
    );
    assert_eq!(r.status, 403);
    let r = post(
        &t.url(&format!("/api/v1/incidents/{id}/close")),
        Some(&lead),
        &[],
        b"",
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["code"], "checklist_open");
    let r = post_json(
        &t.url(&format!("/api/v1/incidents/{id}/checklist")),
        Some(&dev),
        &json!({"done": ["no_such_item"]}),
    );
    assert_eq!(r.status, 422);
    let r = post_json(
        &t.url(&format!("/api/v1/incidents/{id}/checklist")),
        Some(&dev),
        &json!({"done": ["incident_log", "docs_updated"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let done: Vec<_> = r.json()["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["done"] == true)
        .map(|i| i["key"].as_str().unwrap().to_string())
        .collect();
    assert!(done.contains(&"incident_log".to_string()));
}

#[test]
fn tokens_are_managed_by_admins_and_stored_hashed() {
    let t = TestServer::start();
    let admin = t.token("admin@example.com", ApiRole::Admin);
    let dev = t.token(DEV, ApiRole::Developer);
    let r = post_json(
        &t.url("/api/v1/tokens"),
        Some(&dev),
        &json!({"user": "x@example.com", "role": "admin"}),
    );
    assert_eq!(r.status, 403);
    let r = post_json(
        &t.url("/api/v1/tokens"),
        Some(&admin),
        &json!({"user": LEAD2, "role": "tech-lead"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let token = r.json()["token"].as_str().unwrap().to_string();
    let id = r.json()["id"].as_i64().unwrap();
    assert_eq!(
        get(&t.url("/api/v1/me"), Some(&token), &[]).json()["role"],
        "tech_lead"
    );
    let list = get(&t.url("/api/v1/tokens"), Some(&admin), &[]);
    assert!(!list.text.contains(&token), "the list never shows a token");
    let r = post_json(
        &t.url("/api/v1/tokens"),
        Some(&admin),
        &json!({"user": "x", "role": "god"}),
    );
    assert_eq!(r.status, 422);
    assert_eq!(
        delete(&t.url(&format!("/api/v1/tokens/{id}")), Some(&admin)).status,
        200
    );
    assert_eq!(get(&t.url("/api/v1/me"), Some(&token), &[]).status, 401);
    assert_eq!(
        delete(&t.url(&format!("/api/v1/tokens/{id}")), Some(&admin)).status,
        404
    );
}

#[test]
fn notifications_of_api_steps_are_delivered_by_the_server() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let _id = declared_and_pushed(&t, &dev, "high");
    t.wait_for("declared and pr_opened delivered", || {
        let d = t.delivered();
        d.iter().any(|m| m["step"] == "declared") && d.iter().any(|m| m["step"] == "pr_opened")
    });
}

#[test]
fn the_browser_session_cookie_cannot_write_through_the_api() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let id = declared_and_pushed(&t, &dev, "critical");
    let lead = t.token(LEAD, ApiRole::TechLead);
    let cookie = format!("hotfix_session={lead}");
    // Reads with the cookie work (the dashboard's own fetches).
    let r = get(&t.url("/api/v1/me"), None, &[("Cookie", &cookie)]);
    assert_eq!(r.status, 200, "{}", r.text);
    // A write carried only by the cookie (what a forged cross-site form would send) is refused.
    let r = post(
        &t.url(&format!("/api/v1/incidents/{id}/approve")),
        None,
        &[("Cookie", &cookie)],
        b"",
    );
    assert_eq!(r.status, 401, "{}", r.text);
    let r = get(&t.url(&format!("/api/v1/incidents/{id}")), Some(&lead), &[]);
    assert_eq!(r.json()["approvals"].as_array().unwrap().len(), 0);
}

/// A bad `Authorization` header is refused for what it is: the browser's
/// session cookie next to it never signs the request in instead (else a
/// write carrying any junk header would pass as the cookie's owner).
#[test]
fn a_malformed_authorization_header_is_refused_even_with_a_session_cookie() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let id = declared_and_pushed(&t, &dev, "critical");
    let lead = t.token(LEAD, ApiRole::TechLead);
    let cookie = format!("hotfix_session={lead}");
    for bad in ["xyz", "Basic !!!", "Bearer ", "Digest abc", &lead] {
        let r = post(
            &t.url(&format!("/api/v1/incidents/{id}/approve")),
            None,
            &[("Cookie", &cookie), ("Authorization", bad)],
            b"",
        );
        assert_eq!(r.status, 401, "{bad}: {}", r.text);
        assert_eq!(r.json()["error"]["code"], "unauthorized");
        let m = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(m.contains("malformed Authorization header"), "{bad}: {m}");
        assert!(!m.contains(&lead), "the header is not echoed: {m}");
        // Reads too: the header is the credential, or nothing is.
        let r = get(
            &t.url("/api/v1/me"),
            None,
            &[("Cookie", &cookie), ("Authorization", bad)],
        );
        assert_eq!(r.status, 401, "{bad}: {}", r.text);
    }
    let r = get(&t.url(&format!("/api/v1/incidents/{id}")), Some(&lead), &[]);
    assert_eq!(r.json()["approvals"].as_array().unwrap().len(), 0);
    // A well-formed header still works, cookie or not.
    let r = get(&t.url("/api/v1/me"), Some(&dev), &[("Cookie", &cookie)]);
    assert_eq!(r.json()["user"], DEV);
}

/// One open incident per name: parallel declarations of one name make one
/// incident, the others are told which one holds it (409 `name_in_use`),
/// through the API and through the CLI's remote store alike.
#[test]
fn one_open_incident_per_name_however_many_declare_it_at_once() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let url = t.url("/api/v1/incidents");
    let answers: Vec<Resp> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                sc.spawn(|| {
                    post_json(
                        &url,
                        Some(&dev),
                        &json!({"name": "pdf-crash", "severity": "critical"}),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created: Vec<&Resp> = answers.iter().filter(|r| r.status == 201).collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    let holder = created[0].json()["incident"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for r in answers.iter().filter(|r| r.status != 201) {
        assert_eq!(r.status, 409, "{}", r.text);
        assert_eq!(r.json()["error"]["code"], "name_in_use");
        assert_eq!(
            r.json()["error"]["message"],
            format!("an open incident already uses the name `pdf-crash`: {holder}")
        );
    }
    let r = get(&t.url("/api/v1/incidents?state=all"), Some(&dev), &[]);
    assert_eq!(r.json()["incidents"].as_array().unwrap().len(), 1);

    // Remote mode: the engine sees the store error it sees locally.
    let remote = hotfix_client::RemoteStore::new(&t.base, Some(&dev)).unwrap();
    let event = |kind| hotfix_core::event::NewEvent {
        at: jiff::Timestamp::now(),
        actor: DEV.into(),
        kind,
    };
    let declared = |name: &str, title: &str| {
        event(hotfix_core::event::EventKind::Declared {
            name: name.into(),
            title: title.into(),
            severity: hotfix_core::severity::Severity::Critical,
            customer_facing: false,
            security: false,
            branch: format!("hotfix/{name}"),
            base_sha: String::new(),
        })
    };
    use hotfix_core::provider::{Store, StoreError};
    match remote.declare(&declared("pdf-crash", "PDF crash"), &|_| vec![]) {
        Err(StoreError::NameInUse { name, incident }) => {
            assert_eq!(
                (name.as_str(), incident.to_string()),
                ("pdf-crash", holder.clone())
            );
        }
        other => panic!("{other:?}"),
    }
    let other = remote
        .declare(&declared("login-loop", "Login loop"), &|_| vec![])
        .unwrap();
    // Reported without a branch: a tech lead confirms it at triage before
    // anyone takes it.
    let lead = t.token(LEAD, ApiRole::TechLead);
    let r = post_json(
        &t.url(&format!("/api/v1/incidents/{other}/triage")),
        Some(&lead),
        &json!({"action": "confirm"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // A new attempt under a held name is refused the same way, not as a
    // compare-and-set conflict (the version did not move).
    let attempt = event(hotfix_core::event::EventKind::AttemptStarted {
        attempt: 1,
        name: "pdf-crash".into(),
        branch: "hotfix/pdf-crash".into(),
        base_sha: "a".repeat(40),
        severity: hotfix_core::severity::Severity::Critical,
    });
    match remote.append(other, 2, &[attempt], &[]) {
        Err(StoreError::NameInUse { name, incident }) => {
            assert_eq!((name.as_str(), incident.to_string()), ("pdf-crash", holder));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_list_pages_newest_first_and_gives_every_id_on_request() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    for i in 0..5 {
        let r = post_json(
            &t.url("/api/v1/incidents"),
            Some(&dev),
            &json!({"name": format!("inc-{i}"), "severity": "high"}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = get(
        &t.url("/api/v1/incidents?limit=2&offset=1"),
        Some(&dev),
        &[],
    )
    .json();
    assert_eq!(r["total"], 5);
    let ids: Vec<&str> = r["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["HF-4", "HF-3"]);
    let r = get(
        &t.url("/api/v1/incidents?ids_only=true&state=all"),
        Some(&dev),
        &[],
    )
    .json();
    assert_eq!(r["ids"], json!(["HF-1", "HF-2", "HF-3", "HF-4", "HF-5"]));
    let r = get(&t.url("/api/v1/incidents?q=inc-3"), Some(&dev), &[]).json();
    assert_eq!(r["total"], 1);
    for bad in [
        "limit=0",
        "limit=5000",
        "state=weird",
        "limit=x",
        "nonsense=1",
    ] {
        let r = get(&t.url(&format!("/api/v1/incidents?{bad}")), Some(&dev), &[]);
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
}

#[test]
fn bad_ids_and_bodies_are_clear_400s_and_unknown_incidents_404() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let r = get(&t.url("/api/v1/incidents/nonsense"), Some(&dev), &[]);
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("HF-N")
    );
    assert_eq!(
        get(&t.url("/api/v1/incidents/HF-99"), Some(&dev), &[]).status,
        404
    );
    let r = post(
        &t.url("/api/v1/incidents/HF-99/notes"),
        Some(&dev),
        &[],
        b"{}",
    );
    assert_eq!(r.status, 400, "no JSON content type: {}", r.text);
    assert_eq!(r.json()["error"]["code"], "bad_request");
    let r = post_json(
        &t.url("/api/v1/incidents/HF-99/notes"),
        Some(&dev),
        &json!({"text": "x"}),
    );
    assert_eq!(r.status, 404);
    // A token id that is not a number: the same JSON 400 as a bad incident id.
    let admin = t.token("admin@example.com", ApiRole::Admin);
    let r = delete(&t.url("/api/v1/tokens/abc"), Some(&admin));
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "bad_request");
}
