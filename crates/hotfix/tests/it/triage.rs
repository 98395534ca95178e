//! Triage from the CLI, with the real binary on real git repositories: a
//! reported incident (declared without a branch, as an alert or Slack
//! declares it) waits for a tech lead, who confirms, declines or merges
//! it; nobody cuts its branch before. Locally and in remote mode against a
//! real `hotfix serve`.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Declares a reported incident (no branch) in the world's local store,
/// as the alert intake does on a server: `(alert)` in who declared it.
fn reported(w: &World, name: &str, title: &str) -> String {
    use hotfix_core::provider::Store;
    let db = w.repo.work.join(".git/hotfix/hotfix.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let store = hotfix_store::SqliteStore::open(&db).unwrap();
    let id = store
        .declare(
            &hotfix_core::event::NewEvent {
                at: jiff::Timestamp::now(),
                actor: "alertmanager (alert)".into(),
                kind: hotfix_core::event::EventKind::Declared {
                    name: name.into(),
                    title: title.into(),
                    severity: hotfix_core::Severity::Critical,
                    customer_facing: true,
                    security: false,
                    branch: format!("hotfix/{name}"),
                    base_sha: String::new(),
                },
            },
            &|_| vec![],
        )
        .unwrap();
    id.to_string()
}

/// The events of `id` in the log, oldest first.
fn events(w: &World, id: &str) -> Vec<Value> {
    w.log()
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .map(|i| i["events"].as_array().unwrap().clone())
        .unwrap_or_default()
}

#[test]
fn a_reported_incident_is_confirmed_by_a_tech_lead_before_anyone_takes_it() {
    let w = World::new();
    let id = reported(&w, "error-rate", "High error rate");
    assert_eq!(id, "HF-1");
    assert_eq!(w.status("HF-1")["state"], "triage");

    // The list of what waits for triage shows it.
    let r = w.hf(&["triage"]).ok();
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("HF-1"))
        .unwrap_or_else(|| panic!("{}", r.all()));
    assert!(line.contains("critical"), "{line}");
    assert!(line.contains("High error rate"), "{line}");
    let r = w.hf(&["triage", "--json"]).ok();
    let list: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(list[0]["id"], "HF-1");
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Nobody takes it before it is confirmed: refused, with the way forward.
    let before_main = w.origin_sha("main");
    let r = w
        .hf(&[
            "start",
            "error-rate",
            "--incident",
            "HF-1",
            "--severity",
            "critical",
        ])
        .fails(1, "in triage");
    assert!(
        r.all().contains("hotfix triage HF-1 confirm"),
        "{}",
        r.all()
    );
    assert_eq!(w.repo.git(&["branch", "--show-current"]), "main");
    assert_eq!(w.count("HF-1", "attempt_started"), 0);

    // Confirming is a tech lead's call.
    let r = w
        .hf(&["triage", "HF-1", "confirm", "--severity", "high"])
        .fails(1, "tech leads");
    assert!(r.all().contains(DEV), "{}", r.all());
    assert_eq!(w.count("HF-1", "confirmed"), 0);
    // Medium is not a hotfix: refused, pointing at the decline that says so.
    w.hf_as(LEAD, &["triage", "HF-1", "confirm", "--severity", "medium"])
        .fails(1, "decline --reason not_urgent");
    w.hf_as(LEAD, &["triage", "HF-1", "confirm", "--severity", "urgent"])
        .fails(2, "unknown severity");
    w.hf_as(LEAD, &["triage", "HF-1"]).fails(2, "confirm");

    // The tech lead confirms it, at another severity and with a public text.
    let r = w
        .hf_as(
            LEAD,
            &[
                "triage",
                "HF-1",
                "confirm",
                "--severity",
                "high",
                "--public-text",
                "Some requests fail",
            ],
        )
        .ok();
    assert!(
        r.stdout
            .contains("HF-1 confirmed as high by lead@example.com"),
        "{}",
        r.all()
    );
    assert!(
        r.stdout
            .contains("next: take it and cut the branch: `hotfix start error-rate --incident HF-1 --severity high`"),
        "{}",
        r.all()
    );
    let s = w.status("HF-1");
    assert_eq!(s["state"], "reported");
    assert_eq!(s["severity"], "high");
    // Confirming again is nothing to do; the list is empty.
    let r = w.hf_as(LEAD, &["triage", "HF-1", "confirm"]).ok();
    assert!(r.stdout.contains("already recorded"), "{}", r.all());
    assert_eq!(w.count("HF-1", "confirmed"), 1);
    assert!(
        w.hf(&["triage"]).ok().stdout.contains("nothing waits"),
        "nothing left to triage"
    );

    // Now the on-call developer takes it, naming who reported it.
    w.hf(&[
        "start",
        "error-rate",
        "--incident",
        "HF-1",
        "--severity",
        "high",
        "--reported-by",
        "support desk",
    ])
    .ok();
    assert_eq!(
        w.repo.git(&["branch", "--show-current"]),
        "hotfix/error-rate"
    );
    assert_eq!(w.repo.git(&["rev-parse", "HEAD"]), before_main);
    let s = w.status("HF-1");
    assert_eq!(s["state"], "fixing");
    assert_eq!(s["triage"]["confirmed_by"], LEAD);
    assert_eq!(s["triage"]["reported_by"], "support desk");
    let ev = events(&w, "HF-1");
    let reporter: Vec<&Value> = ev.iter().filter(|e| e["type"] == "reported_by").collect();
    assert_eq!(reporter.len(), 1, "{ev:?}");
    assert_eq!(reporter[0]["who"], "support desk");
    // Triage is over once a branch is cut.
    w.hf_as(
        LEAD,
        &["triage", "HF-1", "decline", "--reason", "false_alarm"],
    )
    .fails(1, "triage is over");
}

#[test]
fn a_false_alarm_is_declined_and_closed_without_the_checklist() {
    let w = World::new();
    reported(&w, "error-rate", "High error rate");
    // A developer may not decline it either.
    w.hf(&["triage", "HF-1", "decline", "--reason", "false_alarm"])
        .fails(1, "tech leads");
    w.hf_as(LEAD, &["triage", "HF-1", "decline", "--reason", "flaky"])
        .fails(2, "unknown decline reason");
    // A duplicate names what it duplicates.
    w.hf_as(
        LEAD,
        &["triage", "HF-1", "decline", "--reason", "duplicate"],
    )
    .fails(2, "a duplicate names the incident it duplicates");
    w.hf_as(
        LEAD,
        &[
            "triage",
            "HF-1",
            "decline",
            "--reason",
            "duplicate",
            "--of",
            "HF-9",
        ],
    )
    .fails(2, "there is no incident HF-9");
    let r = w
        .hf_as(
            LEAD,
            &[
                "triage",
                "HF-1",
                "decline",
                "--reason",
                "false_alarm",
                "--note",
                "threshold too low",
            ],
        )
        .ok();
    assert!(
        r.stdout
            .contains("HF-1 declined (false alarm): closed without the post-hotfix checklist"),
        "{}",
        r.all()
    );
    assert!(
        r.stdout.contains("next: nothing: declined at triage"),
        "{}",
        r.all()
    );
    let s = w.status("HF-1");
    assert_eq!(s["state"], "declined");
    assert!(s["closed_at"].is_string(), "{s}");
    assert_eq!(s["triage"]["declined"]["reason"], "false_alarm");
    assert_eq!(s["triage"]["declined"]["by"], LEAD);
    let r = w.hf(&["status", "HF-1"]).ok();
    assert!(r.stdout.contains("state:     declined"), "{}", r.all());
    assert!(
        r.stdout
            .contains("triage:    declined (false alarm) by lead@example.com: threshold too low"),
        "{}",
        r.all()
    );
    let ev = events(&w, "HF-1");
    let types: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["declared", "declined", "closed"]);
    assert_eq!(ev[1]["reason"], "false_alarm");
    assert_eq!(ev[1]["note"], "threshold too low");
    assert_eq!(ev[1]["actor"], LEAD);
    // Again: nothing to do, nothing appended.
    let r = w
        .hf_as(
            LEAD,
            &["triage", "HF-1", "decline", "--reason", "false_alarm"],
        )
        .ok();
    assert!(r.stdout.contains("already recorded"), "{}", r.all());
    assert_eq!(events(&w, "HF-1").len(), 3);
    // The name is free again for a real incident.
    let r = w
        .hf(&["start", "error-rate", "--severity", "critical"])
        .ok();
    assert!(
        r.stdout.contains("HF-2 started: hotfix/error-rate"),
        "{}",
        r.all()
    );
}

#[test]
fn a_duplicate_is_merged_into_the_open_incident_and_a_crash_in_between_is_finished() {
    let w = World::new();
    reported(&w, "error-rate", "High error rate");
    reported(&w, "api-errors", "API 5xx");
    reported(&w, "api-latency", "API slow");
    w.hf(&["triage", "HF-2", "merge", "--into", "HF-1"])
        .fails(1, "tech leads");
    w.hf_as(LEAD, &["triage", "HF-2", "merge", "--into", "HF-2"])
        .fails(2, "cannot duplicate itself");
    let r = w
        .hf_as(LEAD, &["triage", "HF-2", "merge", "--into", "HF-1"])
        .ok();
    assert!(
        r.stdout.contains("HF-2 merged into HF-1: closed"),
        "{}",
        r.all()
    );
    // The next step is the target's: it is still waiting for triage.
    assert!(
        r.stdout.contains("hotfix triage HF-1 confirm"),
        "{}",
        r.all()
    );
    assert_eq!(w.status("HF-2")["state"], "declined");
    let merged: Vec<String> = events(&w, "HF-2")
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(merged, ["declared", "merged_into", "closed"]);
    let absorbed: Vec<Value> = events(&w, "HF-1")
        .into_iter()
        .filter(|e| e["type"] == "absorbed")
        .collect();
    assert_eq!(absorbed.len(), 1);
    assert_eq!(absorbed[0]["from"], "HF-2");
    assert_eq!(
        w.status("HF-1")["triage"]["absorbed"],
        serde_json::json!(["HF-2"])
    );
    assert_eq!(
        w.status("HF-2")["triage"]["declined"]["merged_into"],
        "HF-1"
    );
    // Run again: nothing twice.
    w.hf_as(LEAD, &["triage", "HF-2", "merge", "--into", "HF-1"])
        .ok();
    assert_eq!(w.count("HF-1", "absorbed"), 1);
    assert_eq!(w.count("HF-2", "merged_into"), 1);
    // Into a closed incident: refused.
    w.hf_as(LEAD, &["triage", "HF-3", "merge", "--into", "HF-2"])
        .fails(1, "HF-2 is closed");

    // Killed between the two appends: the re-run appends the second.
    w.hf_env(
        LEAD,
        &["triage", "HF-3", "merge", "--into", "HF-1"],
        &[("HOTFIX_FAILPOINTS", "triage.merged")],
    )
    .fails(137, "failpoint triage.merged");
    assert_eq!(w.status("HF-3")["state"], "declined");
    assert_eq!(w.count("HF-1", "absorbed"), 1);
    w.hf_as(LEAD, &["triage", "HF-3", "merge", "--into", "HF-1"])
        .ok();
    assert_eq!(w.count("HF-1", "absorbed"), 2);
    assert_eq!(w.count("HF-3", "merged_into"), 1);
}

/// `hotfix serve` as a child process on the world's config; its SQLite
/// store in the world's `server` directory.
struct Serve {
    child: Child,
    base: String,
    data: std::path::PathBuf,
}

impl Serve {
    fn start(w: &World) -> Serve {
        let data = w.repo.dir().join("server");
        std::fs::create_dir_all(&data).unwrap();
        let cfg = w.repo.work.join("hotfix.toml");
        let mut child = self::hermetic(&data)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&cfg)
            .arg("--data-dir")
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.trim().to_string());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("hotfix serve says where it listens");
        Serve { child, base, data }
    }

    fn token(&self, user: &str, role: &str) -> String {
        let out = self::hermetic(&self.data)
            .args(["serve", "token", "create", "--user", user, "--role", role])
            .arg("--data-dir")
            .arg(&self.data)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// `hotfix ARGS` in remote mode with `token`.
    fn hf(&self, w: &World, who: &str, token: &str, args: &[&str]) -> Run {
        w.hf_env(
            who,
            args,
            &[("HOTFIX_SERVER", &self.base), ("HOTFIX_TOKEN", token)],
        )
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process without the test's own hotfix environment.
fn hermetic(dir: &std::path::Path) -> Command {
    let mut c = Command::new(bin());
    hotfix_testkit::hermetic(&mut c)
        .current_dir(dir)
        .stdin(Stdio::null());
    c
}

#[test]
fn triage_in_remote_mode_is_decided_on_the_server() {
    let w = World::new();
    let server = Serve::start(&w);
    let dev = server.token(DEV, "developer");
    let lead = server.token(LEAD, "tech_lead");
    // Reported through the API, as Slack or an alert would: no branch.
    let r = server.hf(&w, DEV, &dev, &["log", "--json"]).ok();
    assert_eq!(r.stdout.trim(), "[]", "{}", r.all());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for name in ["error-rate", "api-errors"] {
        let r = agent
            .post(format!("{}/api/v1/incidents", server.base))
            .header("Authorization", &format!("Bearer {dev}"))
            .send_json(serde_json::json!({"name": name, "severity": "critical"}))
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
    let r = server.hf(&w, DEV, &dev, &["triage"]).ok();
    assert!(
        r.stdout.contains("HF-1") && r.stdout.contains("HF-2"),
        "{}",
        r.all()
    );
    // A developer may not triage; nor may a tech lead with a developer's
    // token: the server says no.
    server
        .hf(&w, DEV, &dev, &["triage", "HF-1", "confirm"])
        .fails(1, "tech leads");
    let lead_as_dev = server.token(LEAD, "developer");
    server
        .hf(&w, LEAD, &lead_as_dev, &["triage", "HF-1", "confirm"])
        .fails(
            1,
            "server refused: confirming an incident needs a tech_lead token",
        );
    // The tech lead's does: confirm one, merge the other into it.
    let r = server
        .hf(&w, LEAD, &lead, &["triage", "HF-1", "confirm"])
        .ok();
    assert!(
        r.stdout.contains("HF-1 confirmed as critical"),
        "{}",
        r.all()
    );
    let r = server
        .hf(
            &w,
            LEAD,
            &lead,
            &["triage", "HF-2", "merge", "--into", "HF-1"],
        )
        .ok();
    assert!(r.stdout.contains("HF-2 merged into HF-1"), "{}", r.all());
    let log: Value =
        serde_json::from_str(&server.hf(&w, DEV, &dev, &["log", "--json"]).ok().stdout).unwrap();
    let types = |id: &str| -> Vec<String> {
        log.as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .unwrap()["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(types("HF-1"), ["declared", "confirmed", "absorbed"]);
    assert_eq!(types("HF-2"), ["declared", "merged_into", "closed"]);
    // Stamped by the server as the token's user.
    let hf1 = log
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "HF-1")
        .unwrap();
    assert_eq!(hf1["events"][1]["actor"], LEAD);
    // Then the developer takes it, through the server too.
    server
        .hf(
            &w,
            DEV,
            &dev,
            &[
                "start",
                "error-rate",
                "--incident",
                "HF-1",
                "--severity",
                "critical",
            ],
        )
        .ok();
    assert_eq!(
        w.repo.git(&["branch", "--show-current"]),
        "hotfix/error-rate"
    );
    // Nothing of it went to a local log.
    assert!(
        !w.repo.work.join(".git/hotfix/hotfix.db").exists() || {
            w.hf_env(DEV, &["log", "--json"], &[("HOTFIX_SERVER", "off")])
                .ok()
                .stdout
                .trim()
                == "[]"
        }
    );
}
