//! The dashboard, the status page and the live stream over real HTTP on a
//! real store: sign-in, role-dependent buttons that call the same server
//! rules as the API, CSRF refusal, the status page's secrecy about
//! security incidents, the log's search and figures, server-sent events,
//! and the incident cache (also on PostgreSQL when
//! `HOTFIX_TEST_DATABASE_URL` is set).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use hotfix_core::Severity;
use hotfix_core::config::StatusConfig;
use hotfix_core::event::{Event, EventKind, NewEvent, Role};
use hotfix_core::id::IncidentId;
use hotfix_core::policy::Policy;
use hotfix_core::state::IncidentState;
use hotfix_core::team::ApiRole;
use hotfix_server::AppState;
use hotfix_server::dashboard::stats::{compute, percentile};
use hotfix_server::status::{ComponentState, public_status};
use jiff::Timestamp;
use serde_json::{Value, json};

// ------------------------------------------------------------ helpers

fn cookie(token: &str) -> String {
    format!("hotfix_session={token}")
}

/// A signed-in browser's GET (cookie, no bearer token).
fn page(t: &TestServer, path: &str, cookies: &str) -> Resp {
    get(&t.url(path), None, &[("Cookie", cookies)])
}

/// A form POST the way a browser on the dashboard sends it (same Origin).
fn form(t: &TestServer, path: &str, cookies: &str, body: &str) -> Resp {
    post(
        &t.url(path),
        None,
        &[
            ("Cookie", cookies),
            ("Origin", &t.base),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body.as_bytes(),
    )
}

/// The page as text: minijinja escapes `/` and quotes too, so searching
/// the raw HTML for a URL or a title would find nothing even if it leaked.
fn text(r: &Resp) -> String {
    r.text
        .replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The `name=value` of a Set-Cookie.
fn set_cookie_pair(r: &Resp, name: &str) -> Option<String> {
    r.set_cookie
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().to_string())
}

/// The incident page as `cookies` sees it.
fn incident_page(t: &TestServer, id: &str, cookies: &str) -> Resp {
    page(t, &format!("/incidents/{id}"), cookies)
}

/// Follows a dashboard action's redirect the way the browser does: to
/// where it points, with the flash cookie it set.
fn follow(t: &TestServer, r: &Resp, cookies: &str) -> Resp {
    assert_eq!(r.status, 303, "{}", r.text);
    let flash = set_cookie_pair(r, "hotfix_flash").unwrap();
    page(
        t,
        r.location.as_deref().unwrap(),
        &format!("{cookies}; {flash}"),
    )
}

/// Closes through the API.
fn close(t: &TestServer, lead: &str, id: &str) -> Resp {
    post(
        &t.url(&format!("/api/v1/incidents/{id}/close")),
        Some(lead),
        &[],
        b"",
    )
}

/// The fix's head in these tests.
fn head() -> String {
    sha('b')
}

/// Records merge, deploy, health, backport and post-mortem, and ticks `done`
/// (through the API).
fn deploy_backport_and_tick(t: &TestServer, dev: &str, id: &str, done: &[&str]) {
    // The approvals the policy asks for (the rulebook refuses a merge without them).
    for (who, role) in [(LEAD2, ApiRole::TechLead), (REVIEWER, ApiRole::Developer)] {
        let r = approve(t, &t.token(who, role), id);
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = append(
        t,
        dev,
        id,
        json!([
            {"type": "merged", "merge_sha": "c".repeat(40), "head_sha": head(), "previous_main": "a".repeat(40)},
            {"type": "deployed", "sha": "c".repeat(40), "environment": "production"},
            {"type": "health_passed", "sha": "c".repeat(40), "probes": 3},
            {"type": "backported", "merge_sha": "d".repeat(40)},
            {"type": "postmortem_scheduled", "path": "postmortems/x.md", "due": "2030-01-01T00:00:00Z"}
        ]),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    tick(t, dev, id, done);
}

/// Ticks `done` on the checklist (through the API).
fn tick(t: &TestServer, dev: &str, id: &str, done: &[&str]) {
    let r = post_json(
        &t.url(&format!("/api/v1/incidents/{id}/checklist")),
        Some(dev),
        &json!({"done": done}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Takes an incident through deploy, backport and post-mortem, ticks the
/// checklist and closes it (through the API).
fn ship_and_close(t: &TestServer, dev: &str, lead: &str, id: &str) {
    deploy_backport_and_tick(
        t,
        dev,
        id,
        &[
            "incident_log",
            "status_page",
            "monitoring_reviewed",
            "docs_updated",
            "team_notified",
        ],
    );
    let r = close(t, lead, id);
    assert_eq!(r.status, 200, "{}", r.text);
}

// ------------------------------------------------------------ sign-in

#[test]
fn anonymous_visitors_are_sent_to_the_sign_in_form() {
    let t = TestServer::start();
    for (path, back) in [
        ("/", "/"),
        ("/incidents/HF-1", "/incidents/HF-1"),
        ("/log?q=pdf", "/log%3Fq%3Dpdf"),
    ] {
        let r = get(&t.url(path), None, &[]);
        assert_eq!(r.status, 303, "{path}");
        assert_eq!(
            r.location.as_deref(),
            Some(format!("/login?next={back}").as_str())
        );
    }
    let r = get(&t.url("/login?next=%2Flog"), None, &[]);
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/html"));
    assert!(r.text.contains(r#"name="token""#));
    assert!(text(&r).contains(r#"value="/log""#));
    // Not a page, so no redirect: a clear 401.
    assert_eq!(get(&t.url("/events"), None, &[]).status, 401);
    let r = get(&t.url("/api/v1/stats"), None, &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "unauthorized");
    // A forged cookie is no sign-in.
    let r = page(&t, "/", "hotfix_session=hf_forged");
    assert_eq!(r.status, 303);
    // The status page is public.
    assert_eq!(get(&t.url("/status"), None, &[]).status, 200);
}

#[test]
fn signing_in_sets_a_strict_http_only_cookie_and_signing_out_clears_it() {
    let t = TestServer::start();
    let lead = t.token(LEAD, ApiRole::TechLead);

    let r = form(&t, "/login", "", "token=hf_wrong&next=%2Flog");
    assert_eq!(r.status, 401);
    assert!(r.text.contains("unknown or revoked token"));
    assert!(set_cookie_pair(&r, "hotfix_session").is_none());
    assert!(
        !r.text.contains("hf_wrong"),
        "a pasted token is never echoed"
    );

    let r = form(
        &t,
        "/login",
        "",
        "token=has%20spaces%0d%0aSet-Cookie:x&next=/",
    );
    assert_eq!(r.status, 400);
    assert!(set_cookie_pair(&r, "hotfix_session").is_none());

    let r = form(&t, "/login", "", &format!("token={lead}&next=%2Flog"));
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.location.as_deref(), Some("/log"));
    let sc = r
        .set_cookie
        .iter()
        .find(|c| c.starts_with("hotfix_session="))
        .unwrap();
    assert!(sc.contains("HttpOnly") && sc.contains("SameSite=Strict") && sc.contains("Path=/"));
    assert!(
        !sc.contains("Secure"),
        "plain http://127.0.0.1 cannot keep a Secure cookie"
    );
    let jar = set_cookie_pair(&r, "hotfix_session").unwrap();
    assert_eq!(jar, cookie(&lead));

    let home = page(&t, "/", &jar);
    assert_eq!(home.status, 200);
    assert!(home.text.contains(LEAD));
    assert!(home.text.contains("tech lead"));
    assert_eq!(home.content_type, "text/html; charset=utf-8");

    // `next` never leaves the site.
    let r = form(
        &t,
        "/login",
        "",
        &format!("token={lead}&next=%2F%2Fevil.example%2F"),
    );
    assert_eq!(r.location.as_deref(), Some("/"));

    // Behind a TLS proxy the cookie is Secure.
    let r = post(
        &t.url("/login"),
        None,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Forwarded-Proto", "https"),
        ],
        format!("token={lead}").as_bytes(),
    );
    assert!(r.set_cookie.iter().any(|c| c.contains("Secure")));

    let r = form(&t, "/logout", &jar, "");
    assert_eq!(r.status, 303);
    assert_eq!(r.location.as_deref(), Some("/login"));
    assert!(
        r.set_cookie
            .iter()
            .any(|c| c.starts_with("hotfix_session=;") && c.contains("Max-Age=0"))
    );
}

#[test]
fn a_revoked_token_signs_the_browser_out() {
    let t = TestServer::start();
    let admin = t.token("admin@example.com", ApiRole::Admin);
    let r = post_json(
        &t.url("/api/v1/tokens"),
        Some(&admin),
        &json!({"user": DEV, "role": "developer"}),
    );
    let tok = r.json()["token"].as_str().unwrap().to_string();
    let id = r.json()["id"].as_i64().unwrap();
    assert_eq!(page(&t, "/", &cookie(&tok)).status, 200);
    assert_eq!(
        delete(&t.url(&format!("/api/v1/tokens/{id}")), Some(&admin)).status,
        200
    );
    assert_eq!(page(&t, "/", &cookie(&tok)).status, 303);
}

// ------------------------------------------------------------ pages

#[test]
fn the_home_page_lists_open_incidents_newest_first_with_their_next_action() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let lead = t.token(LEAD, ApiRole::TechLead);
    let first = pushed(&t, &dev, "pdf-crash", "critical");
    let second = declare(
        &t,
        &dev,
        json!({"name": "login-bypass", "title": "Login bypass via reset token", "severity": "high", "security": true}),
    );
    let gone = pushed(&t, &dev, "old-thing", "high");
    // Closed: in the log, not on the home page.
    ship_and_close(&t, &dev, &lead, &gone);

    let r = page(&t, "/", &cookie(&dev));
    assert_eq!(r.status, 200, "{}", r.text);
    let (a, b) = (
        r.text.find(&format!(r#"data-id="{first}""#)).unwrap(),
        r.text.find(&format!(r#"data-id="{second}""#)).unwrap(),
    );
    assert!(b < a, "newest first");
    assert!(
        !r.text.contains(&format!(r#"data-id="{gone}""#)),
        "closed ones are in the log only"
    );
    assert!(r.text.contains("pdf crash"));
    assert!(
        text(&r).contains(&format!(
            "needs 1 tech lead approval: ask a tech lead ({LEAD} or {LEAD2}) to approve it: they run `hotfix approve {first}`"
        )),
        "the next action: {}",
        r.text
    );
    // The declarer is on the security incident and reads it in full; a
    // developer who is not reads its restricted view (hotfix_core::access).
    assert!(r.text.contains("Login bypass"), "the declarer reads it");
    let outsider = cookie(&t.token("dev2@example.com", ApiRole::Developer));
    let r = page(&t, "/", &outsider);
    assert!(r.text.contains("security incident (details restricted)"));
    assert!(
        !r.text.contains("Login bypass"),
        "security titles stay off the outsider's list"
    );
    // ...and out of their search: no oracle for the hidden title or name.
    for q in ["reset+token", "login-bypass"] {
        let hidden = page(&t, &format!("/log?q={q}"), &outsider);
        assert_eq!(hidden.status, 200, "{}", hidden.text);
        assert!(
            !hidden.text.contains(&format!(r#"data-id="{second}""#)),
            "{q}"
        );
        assert!(
            page(&t, &format!("/log?q={q}"), &cookie(&dev))
                .text
                .contains(&format!(r#"data-id="{second}""#)),
            "the declarer finds it: {q}"
        );
    }
    let page_of = incident_page(&t, &second, &outsider);
    assert!(!text(&page_of).contains("Login bypass"), "{}", page_of.text);
    assert!(r.text.contains("awaiting approval"));
    assert!(r.text.contains("sev-critical"));
    assert!(r.text.contains(r#"<script src="/assets/live.js"#));
    let css = get(&t.url("/assets/dashboard.css"), None, &[]);
    assert_eq!(css.status, 200);
    assert!(css.content_type.starts_with("text/css"));
}

#[test]
fn the_incident_page_shows_the_timeline_and_the_buttons_each_role_may_use() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let lead = t.token(LEAD, ApiRole::TechLead);
    let id = pushed(&t, &dev, "pdf-crash", "critical");

    let mine = incident_page(&t, &id, &cookie(&dev));
    assert_eq!(mine.status, 200, "{}", mine.text);
    let plain = text(&mine);
    for part in [
        "Alert & triage",
        "Create branch & fix",
        "Emergency approval",
        "Issue resolved",
        r#"<svg class="bar""#,
        r#"id="timeline""#,
        r#"id="checklist""#,
        r#"id="deploys""#,
        r#"id="events""#,
        "https://github.com/acme/app/pull/7",
        "smoke checks passed",
        "Still needed: 1 tech lead approval.",
        r#"id="tick-incident_log""#,
        r#"id="add-note""#,
    ] {
        assert!(plain.contains(part), "missing {part}");
    }
    assert!(
        !mine.text.contains(r#"id="approve""#),
        "a developer gets no approve button"
    );
    assert!(!mine.text.contains(r#"id="close""#));
    assert!(
        !mine.text.contains(r#"id="tick-fix_verified""#),
        "hotfix ticks what it verifies itself"
    );

    let theirs = incident_page(&t, &id, &cookie(&lead));
    assert!(theirs.text.contains(r#"id="approve""#));
    assert!(
        theirs
            .text
            .contains(&format!(r#"name="head" value="{}""#, head()))
    );
    assert!(theirs.text.contains("Close needs the checklist done"));

    let missing = page(&t, "/incidents/HF-999", &cookie(&lead));
    assert_eq!(missing.status, 404);
    assert!(missing.text.contains("no incident HF-999"));
    let bad = page(&t, "/incidents/nope", &cookie(&lead));
    assert_eq!(bad.status, 400);
}

/// The part of `html` from `start` to the next `end`.
fn section<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html.find(start).unwrap_or_else(|| panic!("no {start}"));
    let rest = &html[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

#[test]
fn after_a_rollback_the_deploys_box_shows_what_production_runs_and_the_fix_rolled_back() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let lead = t.token(LEAD, ApiRole::TechLead);
    let id = pushed(&t, &dev, "pdf-crash", "critical");
    let r = approve(&t, &lead, &id);
    assert_eq!(r.status, 200, "{}", r.text);
    let (main, merge, revert) = (sha('a'), sha('c'), sha('e'));
    let why = "production unhealthy after deploy: db pool exhausted";
    let r = append(
        &t,
        &dev,
        &id,
        json!([
            {"type": "merged", "merge_sha": merge, "head_sha": head(), "previous_main": main},
            {"type": "deployed", "sha": merge, "environment": "production"},
            {"type": "health_failed", "sha": merge, "reason": "db pool exhausted"},
            {"type": "rollback_step", "reason": why, "automatic": true,
             "step": {"step": "production", "previous_deployment": null, "sha": main,
                      "health": {"healthy": true, "probes": 1, "detail": "status 200"}}},
            {"type": "rollback_step", "reason": why, "automatic": true,
             "step": {"step": "main_reverted", "sha": revert}},
            {"type": "rolled_back", "reason": why, "automatic": true,
             "main_revert": revert, "develop_revert": null}
        ]),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    let page = incident_page(&t, &id, &cookie(&dev));
    assert_eq!(page.status, 200, "{}", page.text);
    let html = text(&page);
    let deploys = section(&html, r#"id="deploys""#, "</dl>");
    // Production: the previous release, healthy by the rollback's own probe.
    let now = section(deploys, r#"id="production-now""#, "</dd>");
    assert!(
        now.contains(&format!(
            "<code>{}</code> the previous release",
            &main[..12]
        )) && now.contains(r#"<span class="st st-done">healthy</span>"#)
            && now.contains("1 probe after the rollback"),
        "{now}"
    );
    // The fix's deploy: rolled back, not "checking", not "unhealthy" now.
    let fix = section(deploys, r#"id="fix-deploy""#, "</dd>");
    assert!(
        fix.contains(&format!(
            r#"<code>{}</code> <span class="st st-rolled_back">rolled back</span>"#,
            &merge[..12]
        )),
        "{fix}"
    );
    assert!(!deploys.contains("checking"), "{deploys}");
    assert!(!now.contains(&merge[..12]), "{now}");
    // The timeline marks the deploy and the rollback row "rolled back", never done.
    let timeline = section(&html, r#"id="timeline""#, "</table>");
    for label in ["Production deploy", "Rolled back"] {
        let row = section(
            timeline,
            &format!(r#"<th scope="row">{label}</th>"#),
            "</tr>",
        );
        assert!(
            row.contains(r#"<span class="st st-rolled_back">rolled back</span>"#),
            "{label}: {row}"
        );
        assert!(!row.contains(">done<"), "{label}: {row}");
    }
    // And the deploys table says where production went and how it was.
    assert!(
        html.contains(&format!(
            "rollback: production back on the previous release {}, healthy (1 probe)",
            &main[..12]
        )),
        "{html}"
    );
}

#[test]
fn approving_through_the_form_follows_the_servers_rules() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let lead = t.token(LEAD, ApiRole::TechLead);
    let id = pushed(&t, &dev, "pdf-crash", "critical");
    let path = format!("/incidents/{id}/actions/approve");
    let before = events_of(&t, &dev, &id).len();

    // The developer forges the form: refused, shown, nothing recorded.
    let r = form(&t, &path, &cookie(&dev), &format!("head={}", head()));
    assert_eq!(r.status, 303);
    assert_eq!(
        r.location.as_deref(),
        Some(format!("/incidents/{id}").as_str())
    );
    let shown = follow(&t, &r, &cookie(&dev));
    assert!(shown.text.contains("flash-error"), "{}", shown.text);
    assert!(shown.text.contains("may not approve"), "{}", shown.text);
    assert!(
        shown
            .set_cookie
            .iter()
            .any(|c| c.starts_with("hotfix_flash=;")),
        "a flash is shown once"
    );
    assert_eq!(events_of(&t, &dev, &id).len(), before);

    // A stale page (the head moved since) is refused too.
    let r = form(
        &t,
        &path,
        &cookie(&lead),
        &format!("head={}", "e".repeat(40)),
    );
    let shown = follow(&t, &r, &cookie(&lead));
    assert!(
        shown.text.contains("look at the new head"),
        "{}",
        shown.text
    );
    assert_eq!(events_of(&t, &dev, &id).len(), before);

    // The tech lead approves what the page showed.
    let r = form(&t, &path, &cookie(&lead), &format!("head={}", head()));
    assert_eq!(r.status, 303);
    let shown = follow(&t, &r, &cookie(&lead));
    assert!(shown.text.contains("flash-ok"), "{}", shown.text);
    assert!(shown.text.contains("Approved bbbbbbbbbbbb"));
    assert!(
        shown
            .text
            .contains(r#"<span class="st st-done">fresh</span>"#)
    );
    assert!(
        !shown.text.contains(r#"id="approve""#),
        "no second approval"
    );
    assert!(shown.text.contains("ready to ship"));
    let events = events_of(&t, &dev, &id);
    assert_eq!(events.len(), before + 1);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "approved");
    assert_eq!(last["by"], LEAD);
    assert_eq!(last["role"], "tech_lead");
    assert_eq!(last["source"], "dashboard");
    assert_eq!(last["actor"], LEAD);

    // Clicking again changes nothing.
    form(&t, &path, &cookie(&lead), &format!("head={}", head()));
    assert_eq!(events_of(&t, &dev, &id).len(), before + 1);
}

#[test]
fn ticking_noting_and_closing_through_the_forms() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let lead = t.token(LEAD, ApiRole::TechLead);
    let id = pushed(&t, &dev, "pdf-crash", "critical");
    let act =
        |c: &str, a: &str, body: &str| form(&t, &format!("/incidents/{id}/actions/{a}"), c, body);

    act(
        &cookie(&dev),
        "note",
        "text=%3Cscript%3Ealert(1)%3C%2Fscript%3E+rolled+a+canary",
    );
    act(&cookie(&dev), "tick", "key=incident_log");
    let r = act(&cookie(&dev), "tick", "key=fix_verified");
    let shown = follow(&t, &r, &cookie(&dev));
    assert!(
        shown.text.contains("ticked by hotfix itself"),
        "{}",
        shown.text
    );
    assert!(text(&shown).contains("<script>alert(1)</script> rolled a canary"));
    assert!(!shown.text.contains("<script>alert"));
    let r = act(&cookie(&dev), "note", "text=+++");
    assert!(follow(&t, &r, &cookie(&dev)).text.contains("an empty note"));
    let r = act(&cookie(&dev), "launch", "");
    assert!(
        follow(&t, &r, &cookie(&dev))
            .text
            .contains("no action `launch`")
    );

    let kinds: Vec<String> = events_of(&t, &dev, &id)
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds[5..], ["note", "checklist_done"]);

    // Closing: a developer is refused; a tech lead once the checklist is done.
    ship_and_close_prep(&t, &dev, &id);
    let lead_page = incident_page(&t, &id, &cookie(&lead));
    assert!(
        lead_page.text.contains(r#"id="close""#),
        "{}",
        lead_page.text
    );
    assert!(
        !incident_page(&t, &id, &cookie(&dev))
            .text
            .contains(r#"id="close""#)
    );
    let r = act(&cookie(&dev), "close", "");
    assert!(
        follow(&t, &r, &cookie(&dev))
            .text
            .contains("needs a tech_lead token")
    );
    act(&cookie(&lead), "close", "");
    let closed = incident_page(&t, &id, &cookie(&lead));
    assert!(
        closed.text.contains(r#"id="phase">closed"#),
        "{}",
        closed.text
    );
    assert!(!closed.text.contains(r#"id="close""#));
}

/// Everything but closing (`status_page` left open).
fn ship_and_close_prep(t: &TestServer, dev: &str, id: &str) {
    deploy_backport_and_tick(
        t,
        dev,
        id,
        &[
            "incident_log",
            "monitoring_reviewed",
            "docs_updated",
            "team_notified",
        ],
    );
}

#[test]
fn cross_origin_posts_are_refused_before_anything_happens() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let lead = t.token(LEAD, ApiRole::TechLead);
    let id = pushed(&t, &dev, "pdf-crash", "critical");
    let before = events_of(&t, &dev, &id).len();
    let forged = |headers: &[(&str, &str)], path: &str, body: &str| {
        let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
        h.extend_from_slice(headers);
        let c = cookie(&lead);
        h.push(("Cookie", &c));
        post(&t.url(path), None, &h, body.as_bytes())
    };
    let approve = format!("/incidents/{id}/actions/approve");
    let body = format!("head={}", head());
    for h in [
        vec![("Origin", "http://evil.example")],
        vec![("Origin", "null")],
        vec![("Sec-Fetch-Site", "cross-site")],
    ] {
        let r = forged(&h, &approve, &body);
        assert_eq!(r.status, 403, "{h:?}");
        assert!(r.text.contains("cross-origin request refused"));
    }
    let r = forged(
        &[("Origin", "http://evil.example")],
        "/login",
        &format!("token={lead}"),
    );
    assert_eq!(r.status, 403);
    assert!(set_cookie_pair(&r, "hotfix_session").is_none());
    assert_eq!(
        events_of(&t, &dev, &id).len(),
        before,
        "nothing was recorded"
    );
    // The same form from the dashboard's own origin works.
    assert_eq!(form(&t, &approve, &cookie(&lead), &body).status, 303);
    assert_eq!(events_of(&t, &dev, &id).len(), before + 1);
}

#[test]
fn pages_carry_a_strict_content_security_policy() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    for path in ["/", "/log", "/login"] {
        let r = agent()
            .get(&t.url(path))
            .header("Cookie", &cookie(&dev))
            .call()
            .unwrap();
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["cache-control"], "no-store");
    }
}

// ------------------------------------------------------------ status page

#[test]
fn the_status_page_shows_component_states_and_hides_security_incidents() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let lead = t.token(LEAD, ApiRole::TechLead);
    // Reported without a branch: in triage until a tech lead confirms
    // them, and not on the public page until then.
    let confirm = |id: &str, severity: &str| {
        let r = append(
            &t,
            &lead,
            id,
            json!([{"type": "confirmed", "severity": severity}]),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    };
    let checkout = declare(
        &t,
        &dev,
        json!({"name": "checkout-down", "title": "Checkout fails for card payments", "severity": "critical", "customer_facing": true, "components": ["API"]}),
    );
    confirm(&checkout, "critical");
    let search = declare(
        &t,
        &dev,
        json!({"name": "slow-search", "title": "Search is slow", "severity": "high", "customer_facing": true}),
    );
    confirm(&search, "high");
    let sec = declare(
        &t,
        &dev,
        json!({"name": "zeroday-session-forgery", "title": "Session forgery via CVE-2099-4321", "severity": "high", "customer_facing": true, "security": true, "branch": "hotfix/zeroday-session-forgery", "components": ["Web app"]}),
    );
    confirm(&sec, "high");
    append(
        &t,
        &dev,
        &sec,
        json!([{"type": "note", "text": "attacker IP 203.0.113.9"}]),
    );
    declare(
        &t,
        &dev,
        json!({"name": "internal-cron", "title": "Internal cron backlog", "severity": "high"}),
    );
    let past = declare(
        &t,
        &dev,
        json!({"name": "pdf-export", "title": "PDF export crashed", "severity": "high", "customer_facing": true, "base_sha": "a".repeat(40), "components": ["Web app"]}),
    );
    append(
        &t,
        &dev,
        &past,
        json!([
            {"type": "pushed", "sha": head(), "commits": [], "diff": {"files": [], "lines_added": 1, "lines_removed": 0}},
            {"type": "pr_opened", "number": 9, "url": "https://github.com/acme/app/pull/9"},
            {"type": "preview_deployed", "sha": head(), "url": "http://127.0.0.1:1/"},
            {"type": "smoke_passed", "sha": head(), "checks": []}
        ]),
    );
    ship_and_close_prep(&t, &dev, &past);
    assert_eq!(
        close(&t, &lead, &past).status,
        422,
        "status_page is still open for a customer-facing incident"
    );
    tick(&t, &dev, &past, &["status_page"]);
    assert_eq!(close(&t, &lead, &past).status, 200);

    let html = get(&t.url("/status"), None, &[]);
    assert_eq!(html.status, 200);
    let json = get(&t.url("/status.json"), None, &[]);
    assert_eq!(json.status, 200);
    let j = json.json();
    assert_eq!(j["title"], "Acme status");
    let comp = |name: &str| {
        j["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(comp("API"), "major_outage");
    // The security incident's state shows; nothing else about it does.
    assert_eq!(comp("Web app"), "partial_outage");
    assert_eq!(
        j["unlisted"], "partial_outage",
        "an incident without components"
    );
    assert_eq!(
        j["overall"], "major_outage",
        "never better than a component"
    );
    assert_eq!(j["status"], "major_outage");
    let current: Vec<&str> = j["current"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        current,
        [
            "Search is slow",
            "Checkout fails for card payments",
            "We are investigating an issue"
        ]
    );
    assert_eq!(j["current"][0]["status"], "investigating");
    assert_eq!(j["current"][2]["id"], Value::Null);
    assert_eq!(j["past"].as_array().unwrap().len(), 1);
    assert_eq!(j["past"][0]["title"], "PDF export crashed");
    assert_eq!(j["past"][0]["status"], "resolved");

    for body in [&text(&html), &json.text] {
        for secret in [
            "Session forgery",
            "CVE-2099-4321",
            "zeroday",
            "203.0.113.9",
            "Internal cron",
            "@example.com",
            "bbbbbbb",
            "ccccccc",
            "hotfix/",
            "github.com",
            "pull/7",
            "postmortems/",
        ] {
            assert!(
                !body.contains(secret),
                "the public page shows {secret}: {body}"
            );
        }
    }
    assert!(html.text.contains("Major outage"));
    assert!(html.text.contains("We are investigating an issue"));
    assert!(
        html.text
            .contains(r#"data-component="API" data-status="major_outage""#)
    );
    assert!(
        !html.text.contains("/assets/live.js"),
        "no script on the public page"
    );
}

#[test]
fn the_status_page_turns_an_alert_that_declared_an_incident_into_an_outage() {
    let t = TestServer::start();
    let am = t.token("alertmanager@example.com", ApiRole::Developer);
    let before = get(&t.url("/status.json"), None, &[]).json();
    assert_eq!(before["status"], "operational");
    assert!(
        get(&t.url("/status"), None, &[])
            .text
            .contains("All systems operational")
    );
    let body = std::fs::read(format!(
        "{}/tests/fixtures/alerts/alertmanager_firing.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let r = post(
        &t.url("/api/v1/alerts/alertmanager"),
        Some(&am),
        &[("Content-Type", "application/json")],
        &body,
    );
    assert_eq!(r.status, 202, "{}", r.text);
    let lead = t.token(LEAD, ApiRole::TechLead);
    let mut id = String::new();
    t.wait_for("the alert to declare an incident", || {
        let list = get(&t.url("/api/v1/incidents"), Some(&lead), &[]).json();
        match list["incidents"][0]["id"].as_str() {
            Some(i) => {
                id = i.to_string();
                true
            }
            None => false,
        }
    });
    // In triage it is not public yet; a tech lead's confirmation makes it so.
    assert_eq!(
        get(&t.url("/status.json"), None, &[]).json()["status"],
        "operational"
    );
    let r = append(
        &t,
        &lead,
        &id,
        json!([{"type": "confirmed", "severity": "critical"}]),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let j = get(&t.url("/status.json"), None, &[]).json();
    assert_eq!(j["status"], "major_outage");
    assert_eq!(j["components"][0]["name"], "API");
    assert_eq!(j["components"][0]["status"], "major_outage");
    assert_eq!(j["components"][1]["status"], "operational");
    assert_eq!(j["current"][0]["status"], "investigating");
}

#[test]
fn public_status_from_hand_built_logs() {
    let now = Timestamp::from_second(100 * 86_400).unwrap();
    let cfg = StatusConfig {
        title: "S".into(),
        components: vec!["API".into(), "Web".into()],
        ..StatusConfig::default()
    };
    let policy = Policy::default();
    // Fixed: production healthy, still open: monitoring, operational again.
    let monitoring = fold(
        1,
        &[
            (0, declared("fixed", Severity::Critical, true, false)),
            (
                10,
                EventKind::Affects {
                    components: vec!["API".into()],
                },
            ),
            (
                600,
                EventKind::HealthPassed {
                    sha: "s".into(),
                    probes: 1,
                },
            ),
        ],
        now.as_second() - 3600,
    );
    // Customer-facing, declared `days_ago` and closed a minute later.
    let closed = |id: u64, name: &str, severity: Severity, security: bool, days_ago: i64| {
        fold(
            id,
            &[
                (0, declared(name, severity, true, security)),
                (60, EventKind::Closed),
            ],
            now.as_second() - days_ago * 86_400,
        )
    };
    let old = closed(2, "old", Severity::High, false, 40);
    let recent = closed(3, "recent", Severity::High, false, 2);
    let secret_closed = closed(4, "secret", Severity::Critical, true, 1);
    let p = public_status(
        [&monitoring, &old, &recent, &secret_closed],
        &cfg,
        &policy,
        now,
    );
    assert_eq!(p.status, ComponentState::Operational);
    assert_eq!(p.description, "All systems operational");
    assert_eq!(p.current.len(), 1);
    assert_eq!(p.current[0].status, "monitoring");
    assert_eq!(p.current[0].components, ["API"]);
    let past: Vec<&str> = p.past.iter().map(|i| i.title.as_str()).collect();
    assert_eq!(past, ["recent"], "30 days, never security");
}

// ------------------------------------------------------------ log and figures

#[test]
fn long_lists_come_in_pages_whose_links_keep_the_search() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    for i in 0..101 {
        store_declare(
            &t.st,
            declared(&format!("n{i}"), Severity::High, false, false),
        );
    }
    let c = cookie(&dev);
    let rows = |r: &Resp| r.text.matches("<tr data-id=").count();
    let first = page(&t, "/", &c);
    assert_eq!(rows(&first), 100);
    assert!(
        text(&first).contains(r#"page 1 of 2 <a href="/?page=2">older →</a>"#),
        "{}",
        first.text
    );
    let second = page(&t, "/?page=2", &c);
    assert_eq!(rows(&second), 1);
    assert!(text(&second).contains(r#"<a href="/?page=1">← newer</a> page 2 of 2"#));
    assert!(
        text(&page(&t, "/?page=9", &c)).contains("page 2 of 2"),
        "past the end: the last page"
    );
    let log = page(&t, "/log?q=N&severity=high", &c);
    assert_eq!(rows(&log), 100);
    assert!(
        text(&log).contains(r#"href="/log?q=N&severity=high&state=all&page=2""#),
        "{}",
        log.text
    );
}

#[test]
fn the_log_searches_every_incident_and_its_events() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let lead = t.token(LEAD, ApiRole::TechLead);
    let pdf = pushed(&t, &dev, "pdf-crash", "critical");
    let login = declare(
        &t,
        &dev,
        json!({"name": "login-timeout", "severity": "high"}),
    );
    append(
        &t,
        &dev,
        &login,
        json!([{"type": "note", "text": "Redis connection pool exhausted"}]),
    );
    let gone = pushed(&t, &dev, "cache-stampede", "high");
    ship_and_close(&t, &dev, &lead, &gone);
    let c = cookie(&lead);

    let ids = |r: &Resp| -> Vec<String> {
        r.text
            .match_indices("<tr data-id=\"")
            .map(|(i, _)| {
                let rest = &r.text[i + 13..];
                rest[..rest.find('"').unwrap()].to_string()
            })
            .collect()
    };
    let all = page(&t, "/log", &c);
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(ids(&all), [gone.as_str(), login.as_str(), pdf.as_str()]);
    assert_eq!(
        ids(&page(&t, "/log?q=redis+POOL", &c)),
        [login.as_str()],
        "event text, all words"
    );
    assert_eq!(
        ids(&page(&t, "/log?q=hotfix%2Fpdf", &c)),
        [pdf.as_str()],
        "branch"
    );
    assert_eq!(
        ids(&page(&t, &format!("/log?q={}", pdf.to_lowercase()), &c)),
        [pdf.as_str()]
    );
    assert_eq!(
        ids(&page(&t, "/log?q=lead%40example.com", &c)),
        [gone.as_str()],
        "an actor"
    );
    assert_eq!(ids(&page(&t, "/log?severity=critical", &c)), [pdf.as_str()]);
    assert_eq!(ids(&page(&t, "/log?state=closed", &c)), [gone.as_str()]);
    assert_eq!(
        ids(&page(&t, "/log?q=nothing-like-this", &c)),
        Vec::<String>::new()
    );
    assert_eq!(page(&t, "/log?severity=medium", &c).status, 400);
    assert_eq!(page(&t, "/log?page=0", &c).status, 400);

    let s = get(&t.url("/api/v1/stats"), Some(&lead), &[]).json();
    assert_eq!(s["stats"]["incidents"], 3);
    assert_eq!(s["stats"]["open"], 2);
    assert_eq!(s["stats"]["by_severity"]["high"], 2);
    assert_eq!(s["stats"]["time_to_restore"]["count"], 1);
    assert_eq!(s["stats"]["resolved_target"]["met"], 1);
    assert_eq!(s["stats"]["rollbacks"]["hotfixes"], 1);
    let s = get(&t.url("/api/v1/stats?severity=critical"), Some(&lead), &[]).json();
    assert_eq!(s["stats"]["incidents"], 1);
    assert_eq!(s["filter"]["severity"], "critical");
    let r = get(&t.url("/api/v1/stats?state=sideways"), Some(&lead), &[]);
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sideways")
    );
    assert!(all.text.contains(r#"id="fig-target">100%"#), "{}", all.text);
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

fn declared(name: &str, severity: Severity, customer_facing: bool, security: bool) -> EventKind {
    EventKind::Declared {
        name: name.into(),
        title: name.into(),
        severity,
        customer_facing,
        security,
        branch: format!("hotfix/{name}"),
        base_sha: "a".repeat(40),
    }
}

/// Folds `(seconds after start, event)` pairs into an incident.
fn fold(id: u64, events: &[(i64, EventKind)], start: i64) -> IncidentState {
    let log: Vec<Event> = events
        .iter()
        .enumerate()
        .map(|(i, (dt, kind))| Event {
            incident: IncidentId(id),
            seq: i as u64 + 1,
            at: at(start + dt),
            actor: DEV.into(),
            kind: kind.clone(),
        })
        .collect();
    IncidentState::fold(&log).unwrap()
}

/// A hotfix that was pushed at `fix`, approved at `approve`, healthy at
/// `healthy` (seconds after declared), with `rollbacks` rollbacks before.
fn timed(id: u64, fix: i64, approve: i64, healthy: Option<i64>, rollbacks: u32) -> IncidentState {
    let sha = "f".repeat(40);
    let mut ev = vec![
        (
            0,
            declared(&format!("i{id}"), Severity::Critical, false, false),
        ),
        (
            fix,
            EventKind::Pushed {
                sha: sha.clone(),
                commits: vec![],
                diff: Default::default(),
            },
        ),
        (
            fix + 1,
            EventKind::SmokePassed {
                sha: sha.clone(),
                checks: vec![],
            },
        ),
        (
            approve,
            EventKind::Approved {
                by: LEAD.into(),
                role: Role::TechLead,
                sha: sha.clone(),
                source: "cli".into(),
            },
        ),
    ];
    for r in 0..rollbacks {
        let t = approve + 1 + i64::from(r) * 2;
        ev.push((
            t,
            EventKind::Merged {
                merge_sha: "m".into(),
                head_sha: sha.clone(),
                previous_main: "a".into(),
                previous_deployment: None,
                source: "cli".into(),
            },
        ));
        ev.push((
            t + 1,
            EventKind::RolledBack {
                reason: "bad".into(),
                automatic: true,
                main_revert: None,
                develop_revert: None,
                forced: None,
            },
        ));
    }
    if let Some(h) = healthy {
        ev.push((
            h - 2,
            EventKind::Merged {
                merge_sha: "m2".into(),
                head_sha: sha.clone(),
                previous_main: "a".into(),
                previous_deployment: None,
                source: "cli".into(),
            },
        ));
        ev.push((
            h - 1,
            EventKind::Deployed {
                sha: "m2".into(),
                environment: "production".into(),
                deployment: None,
                previous_deployment: None,
                build: None,
            },
        ));
        ev.push((
            h,
            EventKind::HealthPassed {
                sha: "m2".into(),
                probes: 3,
            },
        ));
    }
    fold(id, &ev, 1_000_000)
}

#[test]
fn the_figures_from_incidents_with_known_timings() {
    let policy = Policy::default();
    let now = at(1_000_000 + 7200);
    // Restored after 10, 20, 25, 40 and 50 minutes; one still open at 2 h.
    let v = [
        timed(1, 300, 500, Some(600), 0),
        timed(2, 900, 1000, Some(1200), 1),
        timed(3, 600, 1400, Some(1500), 0),
        timed(4, 1500, 2000, Some(2400), 2),
        timed(5, 1000, 2800, Some(3000), 0),
        timed(6, 600, 700, None, 0),
    ];
    let s = compute(v.iter(), &policy, now);
    assert_eq!(s.incidents, 6);
    assert_eq!(s.open, 6, "none closed");
    assert_eq!(s.by_severity["critical"], 6);
    assert_eq!(s.time_to_restore.count, 5);
    assert_eq!(s.time_to_restore.median_s, Some(1500));
    // p90 of [600, 1200, 1500, 2400, 3000]: rank 3.6 → 2400 + 0.6 × 600.
    assert_eq!(s.time_to_restore.p90_s, Some(2760));
    assert_eq!(s.resolved_target.target_s, 1800);
    assert_eq!(
        (s.resolved_target.met, s.resolved_target.missed),
        (3, 3),
        "open past 30 min is missed"
    );
    assert_eq!(s.resolved_target.share, Some(0.5));
    let fix = s.steps.iter().find(|x| x.step == "fix").unwrap();
    assert_eq!(fix.done, 6);
    // [300, 600, 600, 900, 1000, 1500] → (600 + 900) / 2.
    assert_eq!(fix.median_s, Some(750));
    assert_eq!(fix.target_s, Some(1200));
    assert_eq!(fix.late, 1);
    let deploy = s.steps.iter().find(|x| x.step == "deploy").unwrap();
    assert_eq!(deploy.done, 5);
    let resolved = s.steps.iter().find(|x| x.step == "resolved").unwrap();
    assert_eq!(resolved.median_s, Some(1500));
    assert_eq!(resolved.late, 2);
    assert!(s.steps.iter().all(|x| x.step != "rolled_back"));
    assert_eq!(s.rollbacks.total, 3);
    assert_eq!(s.rollbacks.hotfixes, 5);
    assert_eq!(s.rollbacks.per_hotfix, Some(0.6));

    let empty = compute(std::iter::empty(), &policy, now);
    assert_eq!(empty.time_to_restore.median_s, None);
    assert_eq!(empty.resolved_target.share, None);
    assert_eq!(empty.rollbacks.per_hotfix, None);
    assert_eq!(percentile(&[10, 20], 50.0), Some(15));
    assert_eq!(percentile(&[7], 90.0), Some(7));
}

// ------------------------------------------------------------ live updates

/// Reads `change` events from `/events` on a thread; each arrives as its watermark.
fn watch_events(t: &TestServer, cookies: &str) -> mpsc::Receiver<i64> {
    let r = agent()
        .get(&t.url("/events"))
        .header("Cookie", cookies)
        .header("Accept", "text/event-stream")
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (tx, rx) = mpsc::channel();
    let reader = BufReader::new(r.into_body().into_reader());
    std::thread::spawn(move || {
        let mut change = false;
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if line == "event: change" {
                change = true;
            } else if let Some(d) = line
                .strip_prefix("data: ")
                .or_else(|| line.strip_prefix("data:"))
            {
                if change && tx.send(d.trim().parse().unwrap()).is_err() {
                    return;
                }
                change = false;
            }
        }
    });
    rx
}

#[test]
fn the_live_stream_announces_every_change() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let id = declare(&t, &dev, json!({"name": "pdf-crash", "severity": "high"}));
    let live = watch_events(&t, &cookie(&dev));
    let first = live
        .recv_timeout(Duration::from_secs(3))
        .expect("a first event right away");
    let mut seen = first;
    // The poller may publish the declaration after we connected.
    while let Ok(w) = live.recv_timeout(Duration::from_millis(700)) {
        seen = w;
    }
    let started = Instant::now();
    append(&t, &dev, &id, json!([{"type": "note", "text": "looking"}]));
    let w = live
        .recv_timeout(Duration::from_secs(3))
        .expect("a change event within a few seconds");
    assert!(w > seen, "{w} > {seen}");
    eprintln!(
        "change announced {:?} after the append began",
        started.elapsed()
    );
}

#[test]
fn shutting_down_ends_open_live_streams() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let live = watch_events(&t, &cookie(&dev));
    live.recv_timeout(Duration::from_secs(3)).unwrap();
    let started = Instant::now();
    drop(t);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "graceful shutdown waited {:?} on the stream",
        started.elapsed()
    );
}

// ------------------------------------------------------------ the cache

/// Declares straight in the store, as another replica (or a bulk load) would.
fn store_declare(st: &AppState, kind: EventKind) -> IncidentId {
    st.store
        .declare(
            &NewEvent {
                at: Timestamp::now(),
                actor: DEV.into(),
                kind,
            },
            &|_| vec![],
        )
        .unwrap()
}

/// Appends straight in the store, at `version`, as another replica would.
fn store_append(st: &AppState, id: IncidentId, version: u64, actor: &str, kind: EventKind) {
    st.store
        .append(
            id,
            version,
            &[NewEvent {
                at: Timestamp::now(),
                actor: actor.into(),
                kind,
            }],
            &[],
        )
        .unwrap();
}

/// Another replica (here: the store itself) writes; the pages see it on
/// the next request, and only the incidents that changed are re-read.
fn cache_follows_writes_it_did_not_make(t: &TestServer) {
    let dev = t.token(DEV, ApiRole::Developer);
    let a = declare(t, &dev, json!({"name": "one", "severity": "high"}));
    declare(t, &dev, json!({"name": "two", "severity": "high"}));
    let c = cookie(&dev);
    assert!(incident_page(t, &a, &c).text.contains("one"));
    let st = &t.st;
    let id: IncidentId = a.parse().unwrap();
    let v = st.store.events(id).unwrap().len() as u64;
    store_append(
        st,
        id,
        v,
        LEAD2,
        EventKind::Note {
            text: "written by another replica".into(),
        },
    );
    assert!(
        incident_page(t, &a, &c)
            .text
            .contains("written by another replica")
    );
    let third = store_declare(st, declared("three", Severity::Critical, false, false));
    assert!(
        page(t, "/", &c)
            .text
            .contains(&format!(r#"data-id="{third}""#))
    );
    let versions = st.store.incident_versions().unwrap();
    assert_eq!(versions.len(), 3);
    assert_eq!(versions[0], (id, v + 1));
    assert_eq!(versions[2], (third, 1));
    let view = st.dashboard.cache.get(st).unwrap();
    assert_eq!(view.incidents.len(), 3);
    assert_eq!(view.watermark, st.store.watermark().unwrap());
    // Nothing changed: the same snapshot, not a re-read.
    let again = st.dashboard.cache.get(st).unwrap();
    assert!(std::sync::Arc::ptr_eq(&view.incidents, &again.incidents));
}

#[test]
fn the_cache_follows_writes_of_other_replicas_on_sqlite() {
    cache_follows_writes_it_did_not_make(&TestServer::start());
}

#[test]
fn the_cache_follows_writes_of_other_replicas_on_postgres() {
    let Some(url) = pg_url() else { return };
    let t = TestServer::with(Options {
        backend: Backend::Postgres {
            url,
            schema: unique_schema("dash"),
        },
        ..Default::default()
    });
    cache_follows_writes_it_did_not_make(&t);
}

/// `cargo test -p hotfix-server --test dashboard -- --ignored --nocapture`
/// (with `HOTFIX_TEST_DATABASE_URL` for PostgreSQL): `/` with 10,000 incidents.
#[test]
#[ignore]
fn bench_home_page_with_ten_thousand_incidents() {
    let mut backends = vec![("sqlite", Backend::Sqlite)];
    if let Some(url) = pg_url() {
        backends.push((
            "postgres",
            Backend::Postgres {
                url,
                schema: unique_schema("bench"),
            },
        ));
    }
    for (name, backend) in backends {
        let t = TestServer::with(Options {
            backend,
            workers: false,
            ..Default::default()
        });
        let dev = t.token(DEV, ApiRole::Developer);
        for i in 0..10_000u64 {
            let id = store_declare(
                &t.st,
                declared(&format!("n{i}"), Severity::High, i % 3 == 0, false),
            );
            if i % 10 != 0 {
                store_append(&t.st, id, 1, DEV, EventKind::Closed);
            }
        }
        let c = cookie(&dev);
        let time = |what: &str, f: &dyn Fn() -> Resp| {
            let s = Instant::now();
            let r = f();
            assert_eq!(r.status, 200);
            eprintln!("{name}: {what}: {:?} ({} bytes)", s.elapsed(), r.text.len());
        };
        time("first / (cold cache)", &|| page(&t, "/", &c));
        for _ in 0..3 {
            time("/ (warm)", &|| page(&t, "/", &c));
        }
        append(&t, &dev, "HF-5000", json!([{"type": "note", "text": "x"}]));
        time("/ after one change", &|| page(&t, "/", &c));
        time("/log", &|| page(&t, "/log", &c));
        time("/log?q=n42", &|| page(&t, "/log?q=n42", &c));
        time("/status", &|| get(&t.url("/status"), None, &[]));
        let s = Instant::now();
        for _ in 0..50 {
            page(&t, "/", &c);
        }
        eprintln!("{name}: 50 × / in {:?}", s.elapsed());
    }
}

#[test]
fn an_approver_withdraws_their_approval_with_the_button() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let lead = t.token(LEAD, ApiRole::TechLead);
    let id = pushed(&t, &dev, "pdf-crash", "critical");
    let r = form(
        &t,
        &format!("/incidents/{id}/actions/approve"),
        &cookie(&lead),
        &format!("head={}", head()),
    );
    assert_eq!(r.status, 303, "{}", r.text);
    let shown = page(&t, &format!("/incidents/{id}"), &cookie(&lead));
    assert!(
        shown.text.contains(r#"id="withdraw""#),
        "the lead's own approval offers Withdraw"
    );
    let theirs = page(&t, &format!("/incidents/{id}"), &cookie(&dev));
    assert!(
        !theirs.text.contains(r#"id="withdraw""#),
        "not to someone else"
    );
    let r = form(
        &t,
        &format!("/incidents/{id}/actions/withdraw"),
        &cookie(&lead),
        "text=found+a+bug",
    );
    let shown = follow(&t, &r, &cookie(&lead));
    assert!(
        shown.text.contains("Your approval is withdrawn."),
        "{}",
        shown.text
    );
    assert!(
        shown.text.contains("withdrawn: found a bug"),
        "{}",
        shown.text
    );
    assert!(
        shown.text.contains("Still needed: 1 tech lead approval"),
        "{}",
        shown.text
    );
    assert!(!shown.text.contains(r#"id="withdraw""#));
}

#[test]
fn each_analysis_gets_a_small_chart_with_its_samples_and_the_deploy_moment() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let lead = t.token(LEAD, ApiRole::TechLead);
    let id = pushed(&t, &dev, "pdf-crash", "critical");
    let r = approve(&t, &lead, &id);
    assert_eq!(r.status, 200, "{}", r.text);
    let merge = sha('c');
    // What `hotfix ship` in remote mode records after its watch.
    let r = append(
        &t,
        &dev,
        &id,
        json!([
            {"type": "merged", "merge_sha": merge, "head_sha": head(), "previous_main": sha('a')},
            {"type": "deployed", "sha": merge, "environment": "production"},
            {"type": "analysis_measured", "name": "<b>5xx</b> ratio", "sha": merge,
             "samples": [[0, 0.001], [5, null], [10, 0.2], [15, 0.3]], "baseline": null,
             "verdict": "fail", "query": "sum(rate(x[1m]))"},
            {"type": "analysis_failed", "name": "<b>5xx</b> ratio", "sha": merge,
             "values": [0.2, 0.3], "threshold": "max 0.01", "query": "sum(rate(x[1m]))"},
            {"type": "health_failed", "sha": merge, "reason": "analysis 5xx ratio: 0.3 > max 0.01"}
        ]),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let page = incident_page(&t, &id, &cookie(&dev));
    assert_eq!(page.status, 200, "{}", page.text);
    // The name is text, never markup.
    assert!(!page.text.contains("<b>5xx</b>"), "{}", page.text);
    let html = text(&page);
    let charts = section(&html, r#"id="analyses""#, "</div>");
    assert!(charts.contains("<b>5xx</b> ratio"), "{charts}");
    assert!(charts.contains(r#"<svg class="metric""#), "{charts}");
    assert!(charts.contains(r#"<line class="deploy""#), "{charts}");
    assert_eq!(
        charts.matches(r#"<circle class="dot""#).count(),
        3,
        "{charts}"
    );
    assert_eq!(
        charts.matches(r#"<line class="gap""#).count(),
        1,
        "{charts}"
    );
    assert!(charts.contains("st-overdue\">fail"), "{charts}");
    assert!(charts.contains("last 0.3"), "{charts}");
}
