//! What the public sees of triage, the triage timer and the figures, over
//! real HTTP on a real server and SQLite store: an incident an alert
//! declared is not on `/status` or `/status.json` until a tech lead confirms
//! it (then under its public text, never the alert's words); a declined one
//! never shows; a component's outage is never beside an `overall` of
//! "operational"; the triage timer pages the tech leads once however many
//! replicas scan; declined incidents are counted apart (stats, `/metrics`)
//! and shown with their own phase label and evidence on the dashboard.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use hotfix_core::admit::{Actor, Door};
use hotfix_core::config::Config;
use hotfix_core::event::EventKind;
use hotfix_core::id::IncidentId;
use hotfix_core::provider::Notifier;
use hotfix_core::severity::Severity;
use hotfix_core::team::ApiRole;
use hotfix_engine::Clock;
use hotfix_providers::notify::FileNotifier;
use hotfix_server::workers::{self, timers};
use hotfix_server::{AppState, Secrets, ServerParts, WorkerSettings, ops};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

/// What the alert said: engineers' words, which customers must not read.
const ALERT_TITLE: &str = "HighErrorRate: 5xx ratio 7.3% on api-gw-2";
/// What the tech lead lets customers read.
const PUBLIC: &str = "Some card payments fail at checkout";

/// An incident `name` declared by Alertmanager (critical, customer-facing,
/// affecting `components`), as the alert intake declares one: through the
/// alert door, without a branch, with its firing alert.
fn alert_declares(st: &AppState, name: &str, components: &[&str]) -> IncidentId {
    let actor = Actor::new("alertmanager (alert)", Door::Alert);
    let mut then = vec![EventKind::AlertReceived {
        source: "alertmanager".into(),
        status: "firing".into(),
        key: format!("{{}}:{{alertname=\"{name}\"}}"),
        summary: ALERT_TITLE.into(),
    }];
    if !components.is_empty() {
        then.push(EventKind::Affects {
            components: components.iter().map(|c| c.to_string()).collect(),
        });
    }
    ops::declare(
        st,
        &actor,
        EventKind::Declared {
            name: name.into(),
            title: ALERT_TITLE.into(),
            severity: Severity::Critical,
            customer_facing: true,
            security: false,
            branch: format!("hotfix/{name}"),
            base_sha: String::new(),
        },
        then,
        &|_, _| vec![],
    )
    .unwrap()
    .id
}

fn status_json(t: &TestServer) -> Value {
    let r = get(&t.url("/status.json"), None, &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

fn status_html(t: &TestServer) -> String {
    let r = get(&t.url("/status"), None, &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    r.text
}

fn component(j: &Value, name: &str) -> Value {
    j["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no component {name}: {j}"))["status"]
        .clone()
}

fn titles(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap().to_string())
        .collect()
}

/// Nothing on the page: no incident listed, now or in the past, and every
/// component operational.
fn assert_quiet(j: &Value) {
    assert_eq!(j["status"], "operational", "{j}");
    assert_eq!(j["overall"], "operational", "{j}");
    assert_eq!(component(j, "API"), "operational", "{j}");
    assert!(j["current"].as_array().unwrap().is_empty(), "{j}");
    assert!(j["past"].as_array().unwrap().is_empty(), "{j}");
}

fn confirm(t: &TestServer, lead: &str, id: IncidentId, public_text: Option<&str>) {
    let mut e = json!({"type": "confirmed", "severity": "critical"});
    if let Some(p) = public_text {
        e["public_text"] = json!(p);
    }
    let r = append(t, lead, &id.to_string(), json!([e]));
    assert_eq!(r.status, 200, "{}", r.text);
}

fn decline(t: &TestServer, lead: &str, id: IncidentId, reason: &str, of: Option<IncidentId>) {
    let mut e = json!({"type": "declined", "reason": reason, "note": "seen at triage"});
    if let Some(of) = of {
        e["duplicate_of"] = json!(of.to_string());
    }
    let r = append(t, lead, &id.to_string(), json!([e, {"type": "closed"}]));
    assert_eq!(r.status, 200, "{}", r.text);
}

fn server_with(status: &str) -> TestServer {
    TestServer::with(Options {
        config: base_config().replace("[status]\n", &format!("[status]\n{status}\n")),
        ..Options::default()
    })
}

// ------------------------------------------------------- the public page

#[test]
fn an_alert_in_triage_is_not_public_until_confirmed_then_under_its_public_text() {
    let t = server_with("");
    let lead = t.token(LEAD, ApiRole::TechLead);
    let id = alert_declares(&t.st, "checkout-errors", &["API"]);

    // In triage: not on the page, and no component marked for it.
    assert_quiet(&status_json(&t));
    let html = status_html(&t);
    assert!(html.contains("All systems operational"), "{html}");
    assert!(!html.contains("HighErrorRate"), "{html}");

    // Confirmed with a public text: listed under it, the component down.
    confirm(&t, &lead, id, Some(PUBLIC));
    let j = status_json(&t);
    assert_eq!(titles(&j["current"]), [PUBLIC]);
    assert_eq!(j["current"][0]["id"], id.to_string());
    assert_eq!(j["current"][0]["status"], "investigating");
    assert_eq!(component(&j, "API"), "major_outage");
    assert_eq!(j["overall"], "major_outage");
    let html = status_html(&t);
    assert!(html.contains(PUBLIC), "{html}");
    assert!(html.contains("Major outage"), "{html}");
    for body in [html.as_str(), &j.to_string()] {
        assert!(!body.contains("HighErrorRate"), "{body}");
    }

    // Confirmed without one: the generic name, never the alert's title.
    let other = alert_declares(&t.st, "search-errors", &[]);
    confirm(&t, &lead, other, None);
    let j = status_json(&t);
    assert_eq!(titles(&j["current"]), ["Service disruption", PUBLIC]);
    assert!(!j.to_string().contains("HighErrorRate"), "{j}");
}

#[test]
fn a_declined_incident_never_shows_not_even_as_resolved() {
    for status in ["", "publish_unconfirmed = true\npublish_alert_text = true"] {
        let t = server_with(status);
        let lead = t.token(LEAD, ApiRole::TechLead);
        // Declined straight from triage, and confirmed first then declined
        // (a tech lead may still decline until a branch is cut).
        let false_alarm = alert_declares(&t.st, "flapping-probe", &["API"]);
        decline(&t, &lead, false_alarm, "false_alarm", None);
        let later = alert_declares(&t.st, "slow-batch", &["API"]);
        confirm(&t, &lead, later, Some(PUBLIC));
        assert_eq!(titles(&status_json(&t)["current"]), [PUBLIC], "{status}");
        decline(&t, &lead, later, "not_urgent", None);

        let j = status_json(&t);
        assert_quiet(&j);
        let html = status_html(&t);
        assert!(
            html.contains("No incidents in the last 30 days."),
            "{status}: {html}"
        );
        assert!(
            !html.contains(PUBLIC) && !html.contains("HighErrorRate"),
            "{html}"
        );
    }
}

#[test]
fn published_unconfirmed_an_incident_in_triage_shows_in_safe_words() {
    let t = server_with("publish_unconfirmed = true");
    alert_declares(&t.st, "checkout-errors", &["API"]);
    let j = status_json(&t);
    assert_eq!(titles(&j["current"]), ["Service disruption"]);
    assert_eq!(component(&j, "API"), "major_outage");

    let t = server_with("publish_unconfirmed = true\npublish_alert_text = true");
    alert_declares(&t.st, "checkout-errors", &["API"]);
    assert_eq!(titles(&status_json(&t)["current"]), [ALERT_TITLE]);
}

#[test]
fn overall_is_never_better_than_a_component() {
    let t = server_with("");
    let lead = t.token(LEAD, ApiRole::TechLead);
    let check = |j: &Value| {
        let worst = j["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| rank(&c["status"]))
            .max()
            .unwrap();
        assert!(rank(&j["overall"]) >= worst, "{j}");
        assert!(rank(&j["overall"]) >= rank(&j["unlisted"]), "{j}");
        assert_eq!(j["overall"], j["status"], "{j}");
    };
    // An outage of a listed component only.
    let api = alert_declares(&t.st, "api-errors", &["API"]);
    confirm(&t, &lead, api, Some(PUBLIC));
    let j = status_json(&t);
    check(&j);
    assert_eq!(component(&j, "API"), "major_outage");
    assert_eq!(j["overall"], "major_outage");
    assert_eq!(
        j["unlisted"], "operational",
        "no incident without a component"
    );
    assert_eq!(component(&j, "Web app"), "operational");
    // One in triage marks nothing, listed component or not.
    alert_declares(&t.st, "web-errors", &["Web app"]);
    alert_declares(&t.st, "anything", &[]);
    let j2 = status_json(&t);
    check(&j2);
    assert_eq!(component(&j2, "Web app"), "operational");
    assert_eq!(j2["unlisted"], "operational");
    assert_eq!(j2["current"], j["current"]);
}

fn rank(v: &Value) -> usize {
    [
        "operational",
        "degraded_performance",
        "partial_outage",
        "major_outage",
    ]
    .iter()
    .position(|s| v == s)
    .unwrap_or_else(|| panic!("not a component state: {v}"))
}

// ------------------------------------------------------- the triage timer

/// A replica on the tests' SQLite file with its own clock, delivering into
/// its own `{name}.jsonl`.
fn replica(dir: &Path, clock: Clock, name: &str) -> (AppState, PathBuf) {
    let path = dir.join(format!("{name}.jsonl"));
    let notifiers: Vec<Box<dyn Notifier>> = vec![Box::new(FileNotifier { path: path.clone() })];
    let st = AppState::new(ServerParts {
        store: open_store(&Backend::Sqlite, dir),
        cfg: Config::parse(&base_config()).unwrap(),
        secrets: Secrets::default(),
        notifiers,
        clock,
        data_dir: dir.to_path_buf(),
        replica: name.into(),
        workers: WorkerSettings {
            enabled: false,
            tick: Duration::from_millis(50),
            lease_s: 30,
            ..WorkerSettings::default()
        },
    });
    (st, path)
}

fn delivered(files: &[PathBuf]) -> Vec<Value> {
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn overdue_events(st: &AppState, id: IncidentId) -> usize {
    ops::load(st, id)
        .unwrap()
        .events
        .iter()
        .filter(|e| e.kind == EventKind::TriageOverdue)
        .count()
}

#[test]
fn the_triage_timer_pages_the_tech_leads_once() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Timestamp::now() - SignedDuration::from_hours(1);
    let (past, _) = replica(dir.path(), Clock::Fixed(t0), "past");
    let waiting = alert_declares(&past, "checkout-errors", &["API"]);
    // Confirmed in time: no page for it.
    let decided = alert_declares(&past, "search-errors", &[]);
    seed(
        &past,
        decided,
        vec![EventKind::Confirmed {
            severity: Severity::Critical,
            public_text: None,
        }],
    );

    // Four minutes in: within the 5-minute target.
    let (early, _) = replica(
        dir.path(),
        Clock::Fixed(t0 + SignedDuration::from_mins(4)),
        "early",
    );
    assert_eq!(timers::run(&early), 0);
    early.store.lease_release(timers::LEASE, "early").unwrap();

    // Six minutes in, two replicas scanning over and over, and firing by
    // hand besides (the lease does not make it once: the log does).
    let at = Clock::Fixed(t0 + SignedDuration::from_mins(6));
    let (r1, f1) = replica(dir.path(), at, "r1");
    let (r2, f2) = replica(dir.path(), at, "r2");
    let fired = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|sc| {
        for st in [&r1, &r2] {
            let fired = fired.clone();
            sc.spawn(move || {
                for _ in 0..10 {
                    fired.fetch_add(timers::run(st), Ordering::SeqCst);
                    if timers::fire(st, waiting, timers::Timer::TriageOverdue).unwrap() {
                        fired.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    assert_eq!(overdue_events(&r1, waiting), 1);
    assert!(ops::load(&r1, waiting).unwrap().triage_overdue);
    assert_eq!(overdue_events(&r1, decided), 0);
    // And never again, however long it stays in triage (before the
    // confirmed one's own 15 minutes are up).
    let (late, f3) = replica(
        dir.path(),
        Clock::Fixed(t0 + SignedDuration::from_mins(14)),
        "late",
    );
    for r in ["r1", "r2"] {
        late.store.lease_release(timers::LEASE, r).unwrap();
    }
    assert_eq!(timers::run(&late), 0);
    assert_eq!(overdue_events(&late, waiting), 1);

    for st in [&r1, &r2, &late] {
        workers::run_outbox(st);
    }
    let msgs = delivered(&[f1, f2, f3]);
    let pages: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["step"] == "triage_overdue")
        .collect();
    assert_eq!(pages.len(), 1, "{msgs:#?}");
    assert_eq!(pages[0]["incident"], waiting.to_string());
    assert_eq!(pages[0]["mentions"], json!([LEAD, LEAD2]));
    assert!(
        pages[0]["text"]
            .as_str()
            .unwrap()
            .contains(&format!("hotfix triage {waiting}")),
        "{}",
        pages[0]["text"]
    );
    assert!(
        msgs.iter().all(|m| m["step"] != "repaged"),
        "the on-call's re-page is for confirmed incidents: {msgs:#?}"
    );
}

// ------------------------------------------------------- stats and metrics

#[test]
fn declined_incidents_are_counted_apart_and_not_in_time_to_restore() {
    let t = server_with("");
    let lead = t.token(LEAD, ApiRole::TechLead);
    // One hotfix restored, one still in triage, one confirmed and waiting,
    // and two declined: a false alarm and a duplicate of the waiting one.
    let restored = declare_in(&t.st, "pdf-crash", &sha('a'));
    seed(
        &t.st,
        restored,
        vec![
            EventKind::Deployed {
                sha: sha('c'),
                environment: "production".into(),
                deployment: None,
                previous_deployment: None,
                build: None,
            },
            EventKind::HealthPassed {
                sha: sha('c'),
                probes: 3,
            },
        ],
    );
    alert_declares(&t.st, "in-triage", &[]);
    let waiting = alert_declares(&t.st, "checkout-errors", &["API"]);
    confirm(&t, &lead, waiting, None);
    let false_alarm = alert_declares(&t.st, "flapping-probe", &[]);
    decline(&t, &lead, false_alarm, "false_alarm", None);
    let duplicate = alert_declares(&t.st, "checkout-errors-2", &["API"]);
    decline(&t, &lead, duplicate, "duplicate", Some(waiting));

    let r = get(&t.url("/api/v1/stats"), Some(&lead), &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    let s = &r.json()["stats"];
    assert_eq!(s["incidents"], 5, "{s}");
    assert_eq!(s["open"], 3, "{s}");
    assert_eq!(s["triage"], 1, "{s}");
    assert_eq!(s["closed"], 2, "{s}");
    assert_eq!(
        s["declined"],
        json!({"count": 2, "by_reason": {"false_alarm": 1, "duplicate": 1}, "merged": 0}),
        "{s}"
    );
    assert_eq!(s["time_to_restore"]["count"], 1, "{s}");
    let step = |name: &str| {
        s["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["step"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(step("resolved")["done"], 1, "{s}");
    assert_eq!(
        step("triage")["done"],
        4,
        "triage decided on the hotfix, the confirmed one and both declined: {s}"
    );

    // The log page shows the same.
    let log = get(
        &t.url("/log"),
        None,
        &[("Cookie", &format!("hotfix_session={lead}"))],
    );
    assert_eq!(log.status, 200, "{}", log.text);
    assert!(log.text.contains("1 in triage"), "{}", log.text);
    assert!(log.text.contains(r#"id="fig-declined">2<"#), "{}", log.text);
    assert!(log.text.contains("1 false alarm"), "{}", log.text);
    assert!(log.text.contains("declined: false alarm"), "{}", log.text);
    assert!(
        log.text
            .contains(&format!("declined: duplicate of {waiting}")),
        "{}",
        log.text
    );

    // /metrics: the declines by reason (every reason from the first
    // scrape), and triage among the open phases.
    let m = get(&t.url("/metrics"), None, &[]).text;
    for line in [
        "# TYPE hotfix_incidents_declined_total counter",
        "hotfix_incidents_declined_total{reason=\"false_alarm\"} 1",
        "hotfix_incidents_declined_total{reason=\"duplicate\"} 1",
        "hotfix_incidents_declined_total{reason=\"not_urgent\"} 0",
        "hotfix_incidents_open{severity=\"critical\",phase=\"triage\"} 1",
        "hotfix_incidents_open{severity=\"critical\",phase=\"reported\"} 1",
    ] {
        assert!(m.lines().any(|l| l == line), "no `{line}` in:\n{m}");
    }
}

// ------------------------------------------------------- the dashboard

#[test]
fn the_dashboard_labels_triage_and_declines_and_shows_the_reporters_evidence() {
    let t = server_with("");
    let lead = t.token(LEAD, ApiRole::TechLead);
    let cookies = format!("hotfix_session={lead}");
    let page = |path: &str| {
        let r = get(&t.url(path), None, &[("Cookie", &cookies)]);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        r.text
    };
    let triage = alert_declares(&t.st, "checkout-errors", &["API"]);
    let home = page("/");
    assert!(home.contains("in triage"), "{home}");
    let inc = page(&format!("/incidents/{triage}"));
    assert!(inc.contains(r#"id="phase">in triage<"#), "{inc}");
    assert!(inc.contains("Alert &amp; triage"), "{inc}");

    let declined = alert_declares(&t.st, "flapping-probe", &[]);
    decline(&t, &lead, declined, "false_alarm", None);
    let inc = page(&format!("/incidents/{declined}"));
    assert!(
        inc.contains(r#"id="phase">declined: false alarm<"#),
        "{inc}"
    );

    // Fixed and deployed; then the alert that reported it resolves: the
    // "fix verified" item says so.
    confirm(&t, &lead, triage, Some(PUBLIC));
    seed(
        &t.st,
        triage,
        vec![
            EventKind::Deployed {
                sha: sha('c'),
                environment: "production".into(),
                deployment: None,
                previous_deployment: None,
                build: None,
            },
            EventKind::HealthPassed {
                sha: sha('c'),
                probes: 3,
            },
            EventKind::AlertReceived {
                source: "alertmanager".into(),
                status: "resolved".into(),
                key: "{}:{alertname=\"checkout-errors\"}".into(),
                summary: ALERT_TITLE.into(),
            },
        ],
    );
    let inc = page(&format!("/incidents/{triage}"));
    assert!(inc.contains(r#"id="evidence-fix_verified""#), "{inc}");
    assert!(
        inc.contains("the alertmanager alert that reported it resolved at"),
        "{inc}"
    );
}
