//! Contract tests of the Statuspage notifier: the public incident follows
//! the hotfix, with the component status in every call.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hotfix_core::id::IncidentId;
use hotfix_core::notify::Message;
use hotfix_core::provider::{Memory, Notifier};
use hotfix_providers::notify::statuspage::{MEMORY_INCIDENT, StatuspageConfig, StatuspageNotifier};
use hotfix_testkit::fake::{FakeServer, Recorded, Reply};
use serde_json::json;

const KEY: &str = "sp-key-0123456789abcdef";
const CREATE: &str = "/v1/pages/pg1/incidents";
const UPDATE: &str = "/v1/pages/pg1/incidents/inc42";

type Mem = hotfix_core::provider::InMemory;

fn msg(step: &str, minute: i64) -> Message {
    Message {
        incident: IncidentId(3),
        step: step.into(),
        severity: "critical".into(),
        channel: "#dev-alerts".into(),
        text: format!("HF-3 {step} on branch `hotfix/pdf` PR #9"),
        mentions: vec![],
        customer_facing: true,
        security: false,
        at: jiff::Timestamp::from_second(1_700_000_000 + minute * 60).unwrap(),
        title: "PDF export fails".into(),
        pr_url: Some("https://github.com/acme/shop/pull/9".into()),
        triage: false,
        // What the core gives for an incident a person declared: its title.
        public_text: Some("PDF export fails".into()),
    }
}

/// The title an alert gave its incident: engineers' words, not customers'.
const ALERT_TITLE: &str = "HighErrorRate: 5xx ratio 7.3% on api-gw-2 (pod api-7f9c)";

/// A message about an incident an alert declared: no public text unless
/// one was set at confirmation; `triage` while nobody confirmed it.
fn alert_msg(step: &str, minute: i64, triage: bool, public_text: Option<&str>) -> Message {
    let mut m = msg(step, minute);
    m.title = ALERT_TITLE.into();
    m.text = format!("HF-3 {step}: {ALERT_TITLE}");
    m.triage = triage;
    m.public_text = public_text.map(str::to_string);
    m
}

/// The Statuspage notifier as `hotfix serve` builds it: from a whole
/// `hotfix.toml` (its `[status]` table included) and the API key.
fn configured(server: &FakeServer, status: &str) -> Box<dyn Notifier> {
    let cfg = hotfix_core::config::Config::parse(&format!(
        "[status]\n{status}\n\n[notify.statuspage]\npage_id = \"pg1\"\ncomponent_id = \"cmp7\"\napi_url = \"{}/v1\"\ntimeout = \"2s\"\n",
        server.url()
    ))
    .unwrap();
    let mut built = hotfix_providers::notify::from_config(&cfg, &|k| {
        (k == "STATUSPAGE_API_KEY").then(|| KEY.to_string())
    })
    .unwrap();
    assert_eq!(built.len(), 1);
    built.remove(0)
}

/// Statuspage as documented: 201 with the incident on create, 200 on update.
fn statuspage(r: &Recorded) -> Reply {
    match (r.method.as_str(), r.route()) {
        ("POST", CREATE) => Reply::json(
            201,
            json!({"id": "inc42", "name": r.json()["incident"]["name"], "status": "investigating", "shortlink": "https://stspg.io/x"}),
        ),
        ("PATCH", UPDATE) => Reply::json(
            200,
            json!({"id": "inc42", "status": r.json()["incident"]["status"]}),
        ),
        _ => Reply::json(404, json!({"error": "not found"})),
    }
}

fn notifier(server: &FakeServer) -> StatuspageNotifier {
    let t: toml::Table = toml::from_str(&format!(
        "page_id = \"pg1\"\ncomponent_id = \"cmp7\"\napi_url = \"{}/v1\"\ntimeout = \"2s\"",
        server.url()
    ))
    .unwrap();
    StatuspageNotifier::new(StatuspageConfig::from_table(&t).unwrap(), KEY.into()).unwrap()
}

/// (status, component status) of an incident body, checking that both are
/// always there together.
fn states(r: &Recorded) -> (String, String) {
    assert_eq!(
        r.header("authorization"),
        Some(format!("OAuth {KEY}").as_str())
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let b = r.json();
    let i = &b["incident"];
    assert_eq!(i["component_ids"], json!(["cmp7"]), "{b}");
    let comps = i["components"].as_object().unwrap();
    assert_eq!(comps.len(), 1, "{b}");
    (
        i["status"].as_str().unwrap().to_string(),
        comps["cmp7"].as_str().unwrap().to_string(),
    )
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[test]
fn the_whole_lifecycle_keeps_incident_and_component_in_lockstep() {
    let server = FakeServer::start(statuspage);
    let n = notifier(&server);
    let mem = Mem::default();
    let steps = [
        "declared",
        "pr_opened",
        "smoke_passed",
        "approved",
        "merged",
        "health_passed",
        "backported",
        "postmortem_scheduled",
        "closed",
    ];
    for (i, s) in steps.iter().enumerate() {
        n.send(i as i64 + 1, &msg(s, i as i64), &mem).unwrap();
    }
    let reqs = server.requests();
    let seen: Vec<_> = reqs
        .iter()
        .map(|r| (r.method.clone(), r.route().to_string()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("POST".to_string(), CREATE.to_string()),
            ("PATCH".to_string(), UPDATE.to_string()), // pr_opened (smoke_passed, approved: no change)
            ("PATCH".to_string(), UPDATE.to_string()), // merged
            ("PATCH".to_string(), UPDATE.to_string()), // health_passed
            ("PATCH".to_string(), UPDATE.to_string()), // closed
        ]
    );
    let st: Vec<_> = reqs.iter().map(states).collect();
    assert_eq!(
        st,
        vec![
            pair("investigating", "major_outage"),
            pair("identified", "major_outage"),
            pair("identified", "major_outage"),
            pair("monitoring", "degraded_performance"),
            pair("resolved", "operational"),
        ]
    );
    let create = reqs[0].json();
    assert_eq!(create["incident"]["name"], "PDF export fails");
    assert!(
        create["incident"]["body"]
            .as_str()
            .unwrap()
            .contains("investigating")
    );
    assert!(
        reqs[2].json()["incident"]["body"]
            .as_str()
            .unwrap()
            .contains("being deployed")
    );
    // Customers never read internal text (branches, PR numbers).
    for r in &reqs {
        let s = r.body_str();
        assert!(
            !s.contains("hotfix/pdf") && !s.contains("PR #9") && !s.contains("github.com"),
            "{s}"
        );
    }
    assert_eq!(
        mem.get(IncidentId(3), MEMORY_INCIDENT).as_deref(),
        Some("inc42")
    );
}

#[test]
fn a_rollback_puts_the_component_back_to_its_outage() {
    let server = FakeServer::start(statuspage);
    let n = notifier(&server);
    let mem = Mem::default();
    let m = |s: &str, i: i64| {
        let mut x = msg(s, i);
        x.severity = "high".into();
        x
    };
    for (i, s) in [
        "declared",
        "merged",
        "health_passed",
        "rolled_back",
        "attempt_started",
    ]
    .iter()
    .enumerate()
    {
        n.send(i as i64, &m(s, i as i64), &mem).unwrap();
    }
    let st: Vec<_> = server.requests().iter().map(states).collect();
    assert_eq!(
        st,
        vec![
            pair("investigating", "partial_outage"),
            pair("identified", "partial_outage"),
            pair("monitoring", "degraded_performance"),
            pair("identified", "partial_outage"),
            pair("identified", "partial_outage"),
        ]
    );
}

#[test]
fn no_second_incident_on_re_send() {
    let server = FakeServer::start(statuspage);
    let n = notifier(&server);
    let mem = Mem::default();
    n.send(1, &msg("declared", 0), &mem).unwrap();
    n.send(1, &msg("declared", 0), &mem).unwrap();
    assert_eq!(server.calls("POST", CREATE).len(), 1);
    assert_eq!(server.requests().len(), 1);
    // A remembered incident is never created again, even if the phase memory is gone.
    let mem2 = Mem::default();
    mem2.set(IncidentId(3), MEMORY_INCIDENT, "inc42").unwrap();
    n.send(1, &msg("declared", 0), &mem2).unwrap();
    assert_eq!(server.calls("POST", CREATE).len(), 1);
    assert_eq!(server.calls("PATCH", UPDATE).len(), 1);
    // A step older than what the page shows is ignored.
    n.send(5, &msg("merged", 10), &mem).unwrap();
    n.send(4, &msg("pr_opened", 5), &mem).unwrap();
    let st: Vec<_> = server.calls("PATCH", UPDATE).iter().map(states).collect();
    assert_eq!(st.len(), 2);
    assert!(
        server.calls("PATCH", UPDATE)[1].json()["incident"]["body"]
            .as_str()
            .unwrap()
            .contains("deployed")
    );
}

#[test]
fn not_customer_facing_sends_nothing() {
    let server = FakeServer::start(statuspage);
    let n = notifier(&server);
    let mem = Mem::default();
    for s in ["declared", "merged", "closed"] {
        let mut m = msg(s, 0);
        m.customer_facing = false;
        n.send(1, &m, &mem).unwrap();
    }
    // Steps customers do not see send nothing either, and closing an
    // incident never posted resolves nothing.
    for s in ["smoke_failed", "backported", "closed"] {
        n.send(1, &msg(s, 0), &mem).unwrap();
    }
    assert!(server.requests().is_empty());
    assert!(mem.get(IncidentId(3), MEMORY_INCIDENT).is_none());
}

#[test]
fn security_incidents_say_nothing_but_service_disruption() {
    let server = FakeServer::start(statuspage);
    let mut m = msg("declared", 0);
    m.security = true;
    m.title = String::new();
    notifier(&server).send(1, &m, &Mem::default()).unwrap();
    let b = server.requests()[0].json();
    assert_eq!(b["incident"]["name"], "Service disruption");
    assert!(!b.to_string().contains("PDF"));
}

#[test]
fn refusals_are_errors_that_name_the_fix() {
    let server =
        FakeServer::start(|_| Reply::json(401, json!({"error": "Could not authenticate"})));
    let n = notifier(&server);
    let mem = Mem::default();
    let e = n
        .send(1, &msg("declared", 0), &mem)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("statuspage: ") && e.contains("401") && e.contains("STATUSPAGE_API_KEY"),
        "{e}"
    );
    assert!(!e.contains(KEY), "{e}");
    assert!(mem.get(IncidentId(3), MEMORY_INCIDENT).is_none());

    server.set_handler(|_| Reply::json(422, json!({"error": ["Components cmp7 is invalid"]})));
    let e = n
        .send(1, &msg("declared", 0), &mem)
        .unwrap_err()
        .to_string();
    assert!(e.contains("422") && e.contains("cmp7 is invalid"), "{e}");

    server.set_handler(|_| {
        Reply::json(429, json!({"error": "rate limited"})).header("Retry-After", "1")
    });
    let e = n
        .send(1, &msg("declared", 0), &mem)
        .unwrap_err()
        .to_string();
    assert!(e.contains("retry after 1s"), "{e}");

    server.set_handler(|_| Reply::text(502, "bad gateway"));
    let e = n
        .send(1, &msg("declared", 0), &mem)
        .unwrap_err()
        .to_string();
    assert!(e.contains("502"), "{e}");

    // Created but the answer is unusable: an error, nothing remembered.
    server.set_handler(|_| Reply::raw(201, "application/json", "{\"id\": "));
    let e = n
        .send(1, &msg("declared", 0), &mem)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not JSON"), "{e}");
    assert!(mem.get(IncidentId(3), MEMORY_INCIDENT).is_none());

    // A failed update is an error and does not move the remembered phase.
    server.set_handler(statuspage);
    n.send(1, &msg("declared", 0), &mem).unwrap();
    server.set_handler(|_| Reply::json(500, json!({"error": "oops"})));
    assert!(n.send(2, &msg("merged", 1), &mem).is_err());
    server.set_handler(statuspage);
    n.send(2, &msg("merged", 1), &mem).unwrap();
    let last = server.requests().pop().unwrap();
    assert_eq!(states(&last), pair("identified", "major_outage"));
    // The server echoing the key back does not put it in our errors.
    server.set_handler(|r: &Recorded| {
        Reply::json(
            403,
            json!({"error": format!("forbidden for {}", r.header("authorization").unwrap_or(""))}),
        )
    });
    let e = n
        .send(3, &msg("health_passed", 2), &mem)
        .unwrap_err()
        .to_string();
    assert!(!e.contains(KEY), "{e}");
}

#[test]
fn unreachable_fails_quickly() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let t: toml::Table = toml::from_str(&format!(
        "page_id = \"pg1\"\ncomponent_id = \"cmp7\"\napi_url = \"http://127.0.0.1:{port}/v1\""
    ))
    .unwrap();
    let n = StatuspageNotifier::new(StatuspageConfig::from_table(&t).unwrap(), KEY.into()).unwrap();
    let start = std::time::Instant::now();
    let e = n
        .send(1, &msg("declared", 0), &Mem::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("unreachable"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn config_is_validated() {
    let t: toml::Table = toml::from_str("page_id = \"pg1\"\ncomponent_id = \"cmp7\"").unwrap();
    let c = StatuspageConfig::from_table(&t).unwrap();
    assert_eq!(c.api_url, "https://api.statuspage.io/v1");
    assert_eq!(c.monitoring_component_status, "degraded_performance");
    assert_eq!(c.timeout.0, Duration::from_secs(5));
    for bad in [
        "page_id = \"pg1\"",
        "page_id = \"../x\"\ncomponent_id = \"c\"",
        "page_id = \"p\"\ncomponent_id = \"c\"\nmonitoring_component_status = \"major_outage\"",
        "page_id = \"p\"\ncomponent_id = \"c\"\ncomponent = \"typo\"",
    ] {
        let t: toml::Table = toml::from_str(bad).unwrap();
        assert!(StatuspageConfig::from_table(&t).is_err(), "{bad}");
    }
    let e = StatuspageNotifier::new(c, " ".into()).unwrap_err();
    assert!(e.contains("STATUSPAGE_API_KEY"), "{e}");
}

#[test]
fn an_unconfirmed_incident_is_posted_once_confirmed_under_its_public_text() {
    let server = FakeServer::start(statuspage);
    let n = configured(&server, "");
    let mem = Mem::default();
    // In triage: the alert's declaration and anything else before the
    // confirmation reach no customer.
    n.send(1, &alert_msg("declared", 0, true, None), &mem)
        .unwrap();
    n.send(2, &alert_msg("escalated", 1, true, None), &mem)
        .unwrap();
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    // Confirmed with a public text: created under that text.
    let public = "Checkout fails for some card payments";
    n.send(3, &alert_msg("confirmed", 2, false, Some(public)), &mem)
        .unwrap();
    n.send(4, &alert_msg("pr_opened", 3, false, Some(public)), &mem)
        .unwrap();
    n.send(5, &alert_msg("closed", 9, false, Some(public)), &mem)
        .unwrap();
    let reqs = server.requests();
    assert_eq!(server.calls("POST", CREATE).len(), 1);
    assert_eq!(reqs.len(), 3);
    let create = reqs[0].json();
    assert_eq!(create["incident"]["name"], public);
    assert_eq!(
        reqs.iter().map(states).collect::<Vec<_>>(),
        vec![
            pair("investigating", "major_outage"),
            pair("identified", "major_outage"),
            pair("resolved", "operational"),
        ]
    );
    for r in &reqs {
        assert!(!r.body_str().contains("HighErrorRate"), "{}", r.body_str());
    }

    // Confirmed without a public text: the generic name, never the
    // alert's title; a step after the confirmation that comes first (the
    // confirmation's own message lost) creates it just the same.
    let server = FakeServer::start(statuspage);
    let n = configured(&server, "");
    let mem = Mem::default();
    n.send(1, &alert_msg("declared", 0, true, None), &mem)
        .unwrap();
    n.send(2, &alert_msg("attempt_started", 4, false, None), &mem)
        .unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].json()["incident"]["name"], "Service disruption");
    assert_eq!(states(&reqs[0]), pair("identified", "major_outage"));
    assert!(!reqs[0].body_str().contains("HighErrorRate"));
}

#[test]
fn a_declined_or_merged_incident_never_posted_posts_nothing() {
    let server = FakeServer::start(statuspage);
    let n = configured(&server, "publish_unconfirmed = false");
    for (i, end) in ["declined", "merged_into"].iter().enumerate() {
        let mem = Mem::default();
        n.send(1, &alert_msg("declared", 0, true, None), &mem)
            .unwrap();
        n.send(2, &alert_msg(end, 3, false, None), &mem).unwrap();
        n.send(3, &alert_msg("closed", 3, false, None), &mem)
            .unwrap();
        assert!(server.requests().is_empty(), "#{i} {end}");
        assert!(mem.get(IncidentId(3), MEMORY_INCIDENT).is_none());
    }
}

#[test]
fn published_while_unconfirmed_a_decline_resolves_what_was_posted() {
    let server = FakeServer::start(statuspage);
    let n = configured(&server, "publish_unconfirmed = true");
    let mem = Mem::default();
    n.send(1, &alert_msg("declared", 0, true, None), &mem)
        .unwrap();
    n.send(2, &alert_msg("declined", 3, false, None), &mem)
        .unwrap();
    n.send(3, &alert_msg("closed", 3, false, None), &mem)
        .unwrap();
    let reqs = server.requests();
    let seen: Vec<_> = reqs
        .iter()
        .map(|r| (r.method.as_str(), r.route()))
        .collect();
    assert_eq!(seen, vec![("POST", CREATE), ("PATCH", UPDATE)]);
    assert_eq!(
        reqs[0].json()["incident"]["name"],
        "Service disruption",
        "published early, still not in the alert's words"
    );
    assert_eq!(states(&reqs[1]), pair("resolved", "operational"));

    // `publish_alert_text` lets the alert's title be the name.
    let server = FakeServer::start(statuspage);
    let n = configured(
        &server,
        "publish_unconfirmed = true\npublish_alert_text = true",
    );
    n.send(1, &alert_msg("declared", 0, true, None), &Mem::default())
        .unwrap();
    assert_eq!(server.requests()[0].json()["incident"]["name"], ALERT_TITLE);
}
