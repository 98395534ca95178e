//! The dashboard in a real headless Chromium, driven over WebDriver: sign
//! in through the form, open an incident, approve it with the button, see
//! a change made through the API appear without a reload (server-sent
//! events), and look at the public status page. Screenshots go to
//! `target/screenshots/` (CI keeps them as artifacts).
//!
//! Needs `chromedriver` and `chromium` (Debian: `apt-get install chromium
//! chromium-driver`; `.ci/run` installs them). Without them the test says
//! so loudly and passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::webdriver;

use common::*;
use hotfix_core::team::ApiRole;
use serde_json::{Value, json};
use webdriver::{Driver, Session, chromedriver_path};

/// A JSON API call that must answer `status`; its answer.
fn api(t: &TestServer, token: &str, path: &str, body: Value, status: u16) -> Value {
    let r = post_json(&t.url(path), Some(token), &body);
    assert_eq!(r.status, status, "{path}: {}", r.text);
    r.json()
}

#[test]
fn a_tech_lead_approves_in_the_browser_and_the_page_follows_live_changes() {
    let Some(chromedriver) = chromedriver_path() else {
        hotfix_testkit::skip(
            "no chromedriver at /usr/bin/chromedriver (or $CHROMEDRIVER): the browser test \
             did not run. Install it with `apt-get install -y chromium chromium-driver`",
        );
        return;
    };
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let lead = t.token(LEAD, ApiRole::TechLead);

    // A critical, customer-facing incident waiting for its tech lead.
    let r = api(
        &t,
        &dev,
        "/api/v1/incidents",
        json!({"name": "pdf-export-crash", "title": "PDF export crashes for large invoices",
                "severity": "critical", "customer_facing": true, "components": ["Web app"],
                "base_sha": "a".repeat(40)}),
        201,
    );
    let id = r["incident"]["id"].as_str().unwrap().to_string();
    let events = format!("/api/v1/incidents/{id}/events");
    let head = "b".repeat(40);
    api(
        &t,
        &dev,
        &events,
        json!({"events": [
            {"type": "pushed", "sha": head, "commits": [{"sha": head, "author_email": DEV, "committer_email": DEV, "subject": "Guard against empty page lists"}], "diff": {"files": ["src/pdf.rs"], "lines_added": 6, "lines_removed": 2}},
            {"type": "pr_opened", "number": 42, "url": "https://github.com/acme/app/pull/42"},
            {"type": "preview_deployed", "sha": head, "url": "https://app-pr-42.up.railway.app/"},
            {"type": "smoke_passed", "sha": head, "checks": [{"name": "home", "url": "/", "ok": true, "detail": "200"}]}
        ]}),
        200,
    );
    api(
        &t,
        &dev,
        "/api/v1/incidents",
        json!({"name": "slow-search", "title": "Search takes 20 s", "severity": "high", "customer_facing": true}),
        201,
    );

    let driver = Driver::start(&chromedriver);
    let b = Session::new(&driver);

    // Signed out: the dashboard sends the browser to the sign-in form.
    b.goto(&t.url("/"));
    assert!(b.url().contains("/login?next=/"), "{}", b.url());
    let field = b.find("#token");
    b.send_keys(&field, &lead);
    b.click(&b.find("#sign-in"));
    b.wait_for_text("#incidents", &id);
    assert_eq!(b.text("#who"), LEAD);
    let list = b.text("#incidents");
    assert!(
        list.contains("PDF export crashes for large invoices"),
        "{list}"
    );
    assert!(list.contains("needs 1 tech lead approval"), "{list}");
    b.screenshot("1-incidents");

    // The incident page, and its approve button.
    b.click(&b.find(&format!("a[href=\"/incidents/{id}\"]")));
    b.wait_for_text("#incident-title", &id);
    assert_eq!(b.text("#phase"), "awaiting approval");
    assert!(b.text("#timeline").contains("Emergency approval"));
    b.screenshot("2-incident");
    b.click(&b.find("#approve"));
    b.wait_for_text("#flash", "Approved bbbbbbbbbbbb");
    b.wait_for_text("#approvals", "fresh");
    assert_eq!(b.text("#phase"), "ready to ship");
    assert!(b.try_find("#approve").is_none(), "approved once");
    let log = get(&t.url(&events), Some(&dev), &[]).json();
    let last = log["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "approved");
    assert_eq!(last["by"], LEAD);
    assert_eq!(last["source"], "dashboard");
    b.screenshot("3-approved");

    // Someone else ships it through the API; the open page follows
    // without reloading (a reload would lose the marker).
    b.script("window.__no_reload = 'still here'; return true;");
    let merge = "c".repeat(40);
    api(
        &t,
        &dev,
        &events,
        json!({"events": [
            {"type": "merged", "merge_sha": merge, "head_sha": head, "previous_main": "a".repeat(40)},
            {"type": "deployed", "sha": merge, "environment": "production"},
            {"type": "note", "text": "Canary at 10%: error rate back to 0.2%"}
        ]}),
        200,
    );
    b.wait_for_text("#events", "Canary at 10%: error rate back to 0.2%");
    b.wait_for_text("#phase", "merged");
    assert_eq!(
        b.script("return window.__no_reload || null;"),
        json!("still here"),
        "the page was updated in place, not reloaded"
    );
    b.screenshot("4-live-update");
    b.script("document.getElementById('approvals').scrollIntoView(); return true;");
    b.screenshot("4b-approvals-checklist-deploys");
    b.script("document.getElementById('events').scrollIntoView(); return true;");
    b.screenshot("4c-event-log");

    b.goto(&t.url("/log"));
    b.wait_for_text("#figures", "incidents");
    b.screenshot("5-log");

    // The public status page, signed in or not, shows no internals.
    b.goto(&t.url("/status"));
    let overall = b.text("#overall");
    assert_eq!(overall, "Major outage");
    let page = b.text("main");
    assert!(page.contains("PDF export crashes for large invoices"));
    for secret in [
        "@example.com",
        "bbbbbbb",
        "hotfix/",
        "pull/42",
        "railway.app",
    ] {
        assert!(!page.contains(secret), "status page shows {secret}");
    }
    let shot = b.screenshot("6-status");
    eprintln!("screenshots in {}", shot.parent().unwrap().display());
}
