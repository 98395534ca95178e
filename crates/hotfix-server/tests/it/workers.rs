//! Background work that must happen once, on a real SQLite file shared by
//! several replicas (several `AppState`s, each with its own connection):
//! timers fire once however many replicas scan, the production watch probes
//! a real HTTP health endpoint on 127.0.0.1 from the lease holder only, and
//! a replica that dies mid-round leaves its claimed outbox and inbox items
//! to the others once its lease runs out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use hotfix_core::config::Config;
use hotfix_core::event::{CommitInfo, DiffStat, EventKind};
use hotfix_core::id::IncidentId;
use hotfix_core::notify::Message;
use hotfix_core::provider::{Memory, Notifier, NotifyError};
use hotfix_core::state::IncidentState;
use hotfix_engine::Clock;
use hotfix_providers::notify::FileNotifier;
use hotfix_server::workers::{self, timers, watching};
use hotfix_server::{AppState, Secrets, ServerParts, WorkerSettings, ops};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

/// One replica: its own connection to the shared SQLite file, its own
/// clock and name, its own notification file (so a message two replicas
/// both sent would show up twice across the files).
fn replica(
    dir: &Path,
    cfg: &str,
    clock: Clock,
    name: &str,
    lease_s: i64,
    notifiers: Vec<Box<dyn Notifier>>,
) -> AppState {
    let store = open_store(&Backend::Sqlite, dir);
    AppState::new(ServerParts {
        store,
        cfg: Config::parse(cfg).expect("config"),
        secrets: Secrets::default(),
        notifiers,
        clock,
        data_dir: dir.to_path_buf(),
        replica: name.into(),
        workers: WorkerSettings {
            enabled: false,
            tick: Duration::from_millis(50),
            lease_s,
            ..WorkerSettings::default()
        },
    })
}

/// Replica `name` delivering into its own `{name}.jsonl`, and that file.
fn noted(dir: &Path, cfg: &str, clock: Clock, name: &str, lease_s: i64) -> (AppState, PathBuf) {
    let path = dir.join(format!("{name}.jsonl"));
    let notifiers: Vec<Box<dyn Notifier>> = vec![Box::new(FileNotifier { path: path.clone() })];
    (replica(dir, cfg, clock, name, lease_s, notifiers), path)
}

/// Replicas `r{i}` for each `i` of `ns`, all on `clock` with a 30 s lease,
/// each delivering into its own `r{i}.jsonl`; and those files.
fn noted_replicas(
    dir: &Path,
    cfg: &str,
    clock: Clock,
    ns: std::ops::RangeInclusive<usize>,
) -> (Vec<AppState>, Vec<PathBuf>) {
    ns.map(|i| noted(dir, cfg, clock, &format!("r{i}"), 30))
        .unzip()
}

/// Every notification delivered into these files.
fn delivered(files: &[PathBuf]) -> Vec<Value> {
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("a whole JSON line"))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn steps<'a>(msgs: &'a [Value], step: &str) -> Vec<&'a Value> {
    msgs.iter().filter(|m| m["step"] == step).collect()
}

fn mentions(m: &Value) -> Vec<String> {
    m["mentions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Pushed, merged and deployed `sha` (production not judged yet).
fn shipped(st: &AppState, id: IncidentId, sha: &str) {
    shipped_as(st, id, sha, &merge_of(sha), &"b".repeat(40));
}

/// Pushed `head`, merged as `merge` over `previous_main`, `merge` deployed.
fn shipped_as(st: &AppState, id: IncidentId, sha: &str, merge: &str, previous_main: &str) {
    seed(
        st,
        id,
        vec![
            EventKind::Pushed {
                sha: sha.into(),
                commits: vec![CommitInfo {
                    sha: sha.into(),
                    author_email: DEV.into(),
                    committer_email: DEV.into(),
                    subject: "fix".into(),
                }],
                diff: DiffStat {
                    files: vec!["src/pdf.rs".into()],
                    lines_added: 3,
                    lines_removed: 1,
                    conflict_markers: vec![],
                },
            },
            EventKind::Merged {
                merge_sha: merge.into(),
                head_sha: sha.into(),
                previous_main: previous_main.into(),
                previous_deployment: None,
                source: "cli".into(),
            },
            EventKind::Deployed {
                sha: merge.into(),
                environment: "production".into(),
                deployment: None,
                previous_deployment: None,
                build: None,
            },
        ],
    );
}

fn updates(s: &IncidentState, what: &str) -> usize {
    s.events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::ExternalUpdate { what: w, .. } if w == what))
        .count()
}

#[test]
fn timers_fire_once_however_many_replicas_scan() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = base_config();
    // Everything happened three days ago, by a fixed clock.
    let t0 = Timestamp::now() - SignedDuration::from_hours(72);
    let (past, _) = noted(dir.path(), &cfg, Clock::Fixed(t0), "past", 30);
    let fixed = declare_in(&past, "pdf-crash", &"b".repeat(40));
    shipped(&past, fixed, &"c".repeat(40));
    seed(
        &past,
        fixed,
        vec![EventKind::HealthPassed {
            sha: merge_of(&"c".repeat(40)),
            probes: 5,
        }],
    );
    // Reported and confirmed at once (so no triage timer is due on it):
    // waiting for the on-call developer to take it.
    let reported = declare_in(&past, "checkout-down", "");
    seed(
        &past,
        reported,
        vec![EventKind::Confirmed {
            severity: hotfix_core::severity::Severity::Critical,
            public_text: None,
        }],
    );
    assert_eq!(
        ops::load(&past, reported).unwrap().phase(&past.cfg.policy),
        hotfix_core::state::Phase::Reported
    );
    let closed = declare_in(&past, "closed-one", "");
    seed(&past, closed, vec![EventKind::Closed]);

    // Fourteen minutes later: nothing is due yet.
    let (early, _) = noted(
        dir.path(),
        &cfg,
        Clock::Fixed(t0 + SignedDuration::from_mins(14)),
        "early",
        30,
    );
    assert_eq!(timers::run(&early), 0);
    early.store.lease_release(timers::LEASE, "early").unwrap();

    // Two hours later, two replicas scan at once, over and over.
    let later = t0 + SignedDuration::from_hours(2);
    let (replicas, files) = noted_replicas(dir.path(), &cfg, Clock::Fixed(later), 1..=2);
    let fired = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|sc| {
        for st in &replicas {
            let fired = fired.clone();
            sc.spawn(move || {
                for _ in 0..15 {
                    fired.fetch_add(timers::run(st), Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(fired.load(Ordering::SeqCst), 2, "one reminder, one re-page");
    let wall = Timestamp::now().as_second();
    assert!(
        !replicas[0]
            .store
            .lease_acquire(timers::LEASE, "someone-else", wall, 30)
            .unwrap(),
        "one of them holds the timers lease"
    );

    // Even without the lease (two scanners at once), the compare-and-set
    // append lets one of them fire each timer.
    let wins = Arc::new(AtomicUsize::new(0));
    let late_overdue = t0 + SignedDuration::from_hours(25);
    let (overdue_replicas, overdue_files) =
        noted_replicas(dir.path(), &cfg, Clock::Fixed(late_overdue), 3..=4);
    std::thread::scope(|sc| {
        for st in &overdue_replicas {
            let wins = wins.clone();
            sc.spawn(move || {
                for _ in 0..10 {
                    if timers::fire(st, fixed, timers::Timer::PostmortemOverdue).unwrap() {
                        wins.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(
        wins.load(Ordering::SeqCst),
        1,
        "the overdue page fired once"
    );
    // r1 or r2 still holds the lease: give it up, so that r3's round is a
    // scan that finds nothing, not a round refused for want of the lease.
    for r in ["r1", "r2"] {
        replicas[0].store.lease_release(timers::LEASE, r).unwrap();
    }
    assert_eq!(timers::run(&overdue_replicas[0]), 0, "nothing left to fire");
    assert!(
        !replicas[0]
            .store
            .lease_acquire(timers::LEASE, "someone-else", wall, 30)
            .unwrap(),
        "the lease was free: r3 took it, so its round did scan"
    );

    let s = ops::load(&past, fixed).unwrap();
    assert_eq!(updates(&s, "post-mortem reminder"), 1);
    assert_eq!(updates(&s, "post-mortem overdue"), 1);
    let reminder = s
        .events
        .iter()
        .find(|e| matches!(&e.kind, EventKind::ExternalUpdate { what, .. } if what == "post-mortem reminder"))
        .unwrap();
    let due = Timestamp::from_second((t0 + SignedDuration::from_hours(24)).as_second()).unwrap();
    assert_eq!(
        reminder.kind,
        EventKind::ExternalUpdate {
            source: "hotfix".into(),
            what: "post-mortem reminder".into(),
            detail: format!("due by {}", hotfix_core::timeline::utc(due)),
        }
    );
    assert_eq!(reminder.at, later, "stamped by the server's clock");
    let r = ops::load(&past, reported).unwrap();
    assert_eq!(updates(&r, "on call paged again"), 1);
    let c = ops::load(&past, closed).unwrap();
    assert_eq!(c.version, 2, "a closed incident gets no timers");

    // Delivery: each replica delivers with its own file; each message once.
    for st in replicas.iter().chain(&overdue_replicas) {
        workers::run_outbox(st);
    }
    let all_files: Vec<PathBuf> = files.iter().chain(&overdue_files).cloned().collect();
    let msgs = delivered(&all_files);
    let reminders = steps(&msgs, "postmortem_reminder");
    assert_eq!(reminders.len(), 1, "{msgs:#?}");
    assert_eq!(reminders[0]["incident"], fixed.to_string());
    assert_eq!(mentions(reminders[0]), vec![LEAD, LEAD2]);
    assert!(
        reminders[0]["text"]
            .as_str()
            .unwrap()
            .contains(&format!("hotfix postmortem {fixed}"))
    );
    let repages = steps(&msgs, "repaged");
    assert_eq!(repages.len(), 1);
    assert_eq!(repages[0]["incident"], reported.to_string());
    assert_eq!(mentions(repages[0]), vec![DEV]);
    assert!(
        repages[0]["text"]
            .as_str()
            .unwrap()
            .contains(&format!("--incident {reported}"))
    );
    let overdue = steps(&msgs, "postmortem_overdue");
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0]["incident"], fixed.to_string());
    assert_eq!(mentions(overdue[0]), vec![LEAD, LEAD2]);
    assert!(overdue[0]["text"].as_str().unwrap().contains("overdue"));
    let mut ids: Vec<i64> = msgs
        .iter()
        .map(|m| m["outbox_id"].as_i64().unwrap())
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "no message delivered twice");
}

#[test]
fn a_dead_timer_holder_is_taken_over_when_its_lease_lapses() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = base_config();
    let t0 = Timestamp::now() - SignedDuration::from_hours(1);
    let a = replica(dir.path(), &cfg, Clock::Fixed(t0), "a", 2, vec![]);
    let (b, b_notes) = noted(
        dir.path(),
        &cfg,
        Clock::Fixed(t0 + SignedDuration::from_mins(20)),
        "b",
        2,
    );
    // A scans (nothing due by its clock) and dies holding the lease; the
    // incident reported meanwhile stays in triage past its target.
    assert_eq!(timers::run(&a), 0);
    let reported = declare_in(&a, "checkout-down", "");
    assert_eq!(timers::run(&b), 0, "a's lease still holds");
    assert!(ops::load(&b, reported).unwrap().version == 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut fired = 0;
    while fired == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        fired = timers::run(&b);
    }
    assert_eq!(
        fired, 1,
        "b took the lease over and paged the tech leads about triage"
    );
    assert!(ops::load(&b, reported).unwrap().triage_overdue);
    workers::run_outbox(&b);
    let msgs = delivered(&[b_notes]);
    let paged = steps(&msgs, "triage_overdue");
    assert_eq!(paged.len(), 1, "{msgs:#?}");
    assert_eq!(mentions(paged[0]), vec![LEAD, LEAD2]);
}

/// A real HTTP health endpoint on 127.0.0.1: answers the statuses in turn
/// (the last one repeats) and counts the requests.
struct Health {
    url: String,
    hits: Arc<AtomicUsize>,
}

fn health_server(statuses: &[u16]) -> Health {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/healthz", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let statuses = statuses.to_vec();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = vec![];
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let n = h.fetch_add(1, Ordering::SeqCst);
            let status = statuses[n.min(statuses.len() - 1)];
            let body = if status == 200 {
                "ok\n"
            } else {
                "database unreachable\n"
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Health { url, hits }
}

fn watch_config(url: &str, window: &str) -> String {
    format!(
        "{}\n[deploy]\nhealth_url = \"{url}\"\nwatch = \"{window}\"\nprobe_interval = \"100ms\"\nunhealthy_after = 3\nprobe_timeout = \"2s\"\n",
        base_config()
    )
}

/// Runs `f` every 30 ms until it returns true or `secs` pass.
fn until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    false
}

fn verdicts(s: &IncidentState) -> Vec<EventKind> {
    s.events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::HealthPassed { .. } | EventKind::HealthFailed { .. }
            )
        })
        .map(|e| e.kind.clone())
        .collect()
}

#[test]
fn a_healthy_watch_window_passes_once_probed_by_the_lease_holder_only() {
    let health = health_server(&[200]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = watch_config(&health.url, "1s");
    let (rs, files) = noted_replicas(dir.path(), &cfg, Clock::System, 1..=2);
    let id = declare_in(&rs[0], "pdf-crash", &"b".repeat(40));
    let started = Instant::now();
    shipped(&rs[0], id, &"c".repeat(40));
    // Both replicas watch at once, each on its own thread.
    let appended = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|sc| {
        for st in &rs {
            let appended = appended.clone();
            sc.spawn(move || {
                until(6, || {
                    appended.fetch_add(watching::run(st), Ordering::SeqCst);
                    !verdicts(&ops::load(st, id).unwrap()).is_empty()
                });
            });
        }
    });
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the whole window"
    );
    assert_eq!(appended.load(Ordering::SeqCst), 1);
    let s = ops::load(&rs[0], id).unwrap();
    let v = verdicts(&s);
    let hits = health.hits.load(Ordering::SeqCst);
    match v.as_slice() {
        [EventKind::HealthPassed { sha, probes }] => {
            assert_eq!(sha, &merge_of(&"c".repeat(40)));
            assert_eq!(
                *probes as usize, hits,
                "every probe the endpoint saw came from the one lease holder"
            );
            assert!(
                (3..=20).contains(&hits),
                "about one probe per 100 ms: {hits}"
            );
        }
        other => panic!("expected one health_passed, got {other:?}"),
    }
    assert!(s.resolved_at.is_some());
    assert_eq!(s.events.last().unwrap().actor, watching::ACTOR);
    // Over: nobody probes any more, nothing more is appended.
    for st in &rs {
        for _ in 0..5 {
            assert_eq!(watching::run(st), 0);
        }
    }
    assert_eq!(health.hits.load(Ordering::SeqCst), hits);
    for st in &rs {
        workers::run_outbox(st);
    }
    let msgs = delivered(&files);
    assert_eq!(steps(&msgs, "health_passed").len(), 1);
}

#[test]
fn a_failing_deploy_is_judged_unhealthy_once_and_pages() {
    let health = health_server(&[500]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = watch_config(&health.url, "10s");
    let (st, notes) = noted(dir.path(), &cfg, Clock::System, "r1", 30);
    let id = declare_in(&st, "pdf-crash", &"b".repeat(40));
    shipped(&st, id, &"c".repeat(40));
    assert!(until(5, || {
        watching::run(&st);
        !verdicts(&ops::load(&st, id).unwrap()).is_empty()
    }));
    let s = ops::load(&st, id).unwrap();
    match verdicts(&s).as_slice() {
        [EventKind::HealthFailed { sha, reason }] => {
            assert_eq!(sha, &merge_of(&"c".repeat(40)));
            assert!(
                reason.starts_with("server watch: 3 consecutive probes failed"),
                "{reason}"
            );
            assert!(
                reason.contains("answered 500: database unreachable"),
                "{reason}"
            );
        }
        other => panic!("expected one health_failed, got {other:?}"),
    }
    assert_eq!(health.hits.load(Ordering::SeqCst), 3, "unhealthy_after = 3");
    assert_eq!(
        s.phase(&st.cfg.policy).as_str(),
        "merged",
        "the server does not roll back"
    );
    for _ in 0..5 {
        assert_eq!(watching::run(&st), 0);
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(verdicts(&ops::load(&st, id).unwrap()).len(), 1);
    assert_eq!(
        health.hits.load(Ordering::SeqCst),
        3,
        "no probing after the verdict"
    );
    workers::run_outbox(&st);
    let msgs = delivered(&[notes]);
    assert_eq!(steps(&msgs, "health_failed").len(), 1);
    let page = steps(&msgs, "health_page");
    assert_eq!(page.len(), 1, "{msgs:#?}");
    assert_eq!(mentions(page[0]), vec![DEV, LEAD, LEAD2]);
    assert!(
        page[0]["text"]
            .as_str()
            .unwrap()
            .contains(&format!("hotfix rollback {id}"))
    );
}

#[test]
fn failures_that_recover_before_the_threshold_still_pass() {
    let health = health_server(&[500, 503, 200]);
    let dir = tempfile::tempdir().unwrap();
    let st = replica(
        dir.path(),
        &watch_config(&health.url, "600ms"),
        Clock::System,
        "r1",
        30,
        vec![],
    );
    let id = declare_in(&st, "pdf-crash", &"b".repeat(40));
    shipped(&st, id, &"c".repeat(40));
    assert!(until(5, || {
        watching::run(&st);
        !verdicts(&ops::load(&st, id).unwrap()).is_empty()
    }));
    match verdicts(&ops::load(&st, id).unwrap()).as_slice() {
        [EventKind::HealthPassed { probes, .. }] => assert!(*probes >= 3),
        other => panic!("expected health_passed, got {other:?}"),
    }
}

#[test]
fn a_watch_another_replica_holds_is_not_probed_here() {
    let health = health_server(&[200]);
    let dir = tempfile::tempdir().unwrap();
    let st = replica(
        dir.path(),
        &watch_config(&health.url, "2s"),
        Clock::System,
        "me",
        30,
        vec![],
    );
    let id = declare_in(&st, "pdf-crash", &"b".repeat(40));
    shipped(&st, id, &"c".repeat(40));
    let now = Timestamp::now().as_second();
    assert!(
        st.store
            .lease_acquire(&watching::lease_name(id), "other", now, 60)
            .unwrap()
    );
    for _ in 0..10 {
        assert_eq!(watching::run(&st), 0);
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(
        health.hits.load(Ordering::SeqCst),
        0,
        "the holder probes, not us"
    );
    // The other replica gives it up (or dies and its lease lapses): we go on.
    st.store
        .lease_release(&watching::lease_name(id), "other")
        .unwrap();
    assert!(until(5, || {
        watching::run(&st);
        !verdicts(&ops::load(&st, id).unwrap()).is_empty()
    }));
    assert!(health.hits.load(Ordering::SeqCst) > 0);
}

#[test]
fn without_a_health_url_nothing_is_probed_or_judged() {
    let dir = tempfile::tempdir().unwrap();
    let st = replica(dir.path(), &base_config(), Clock::System, "me", 30, vec![]);
    let id = declare_in(&st, "pdf-crash", &"b".repeat(40));
    shipped(&st, id, &"c".repeat(40));
    for _ in 0..5 {
        assert_eq!(watching::run(&st), 0);
    }
    assert!(verdicts(&ops::load(&st, id).unwrap()).is_empty());
}

/// A notifier that never returns from its first send: a replica frozen
/// (or killed) in the middle of a round, its claims still in the store.
struct Hanging {
    entered: Arc<AtomicBool>,
}

impl Notifier for Hanging {
    fn name(&self) -> &str {
        "file"
    }
    fn send(&self, _id: i64, _msg: &Message, _memory: &dyn Memory) -> Result<(), NotifyError> {
        self.entered.store(true, Ordering::SeqCst);
        loop {
            std::thread::park();
        }
    }
}

#[test]
fn a_replica_that_dies_mid_round_leaves_its_items_to_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = base_config();
    let entered = Arc::new(AtomicBool::new(false));
    let a = replica(
        dir.path(),
        &cfg,
        Clock::System,
        "a",
        2,
        vec![Box::new(Hanging {
            entered: entered.clone(),
        })],
    );
    let (b, b_notes) = noted(dir.path(), &cfg, Clock::System, "b", 2);
    for i in 0..8 {
        declare_in(&a, &format!("incident-{i}"), &"b".repeat(40));
    }
    let total = a.store.undelivered().unwrap().len();
    assert_eq!(total, 8, "one declared message each");
    // A claims the whole outbox and hangs in its first send.
    let a2 = a.clone();
    std::thread::spawn(move || workers::run_outbox(&a2));
    assert!(until(5, || entered.load(Ordering::SeqCst)));
    // Inbox: A claims two items and dies before processing them.
    let now = Timestamp::now().as_second();
    for k in 0..2 {
        b.store
            .inbox_put("nobody-processes-this", &format!("d{k}"), "{}", now)
            .unwrap();
    }
    assert_eq!(a.store.inbox_claim(now, 2, 50).unwrap().len(), 2);
    // While A's leases hold, B gets nothing.
    workers::run_outbox(&b);
    assert_eq!(workers::run_inbox(&b), 0);
    assert!(delivered(std::slice::from_ref(&b_notes)).is_empty());
    // Once they lapse, B delivers and processes everything, once.
    assert!(until(8, || {
        workers::run_outbox(&b);
        workers::run_inbox(&b);
        b.store.undelivered().unwrap().is_empty()
            && b.store
                .inbox_recent(10)
                .unwrap()
                .iter()
                .all(|r| r.processed_at.is_some())
    }));
    let msgs = delivered(&[b_notes]);
    let mut ids: Vec<i64> = msgs
        .iter()
        .map(|m| m["outbox_id"].as_i64().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!((ids.len(), msgs.len()), (total, total));
    for r in b.store.inbox_recent(10).unwrap() {
        assert_eq!(r.attempts, 2, "claimed by A, then by B");
        assert!(r.outcome.unwrap().starts_with("ignored: no processor"));
    }
}

/// The merge commit of a hotfix head in these tests (an object id, as the
/// rulebook wants: the head with its first digit replaced).
fn merge_of(sha: &str) -> String {
    format!("e{}", sha.get(1..).unwrap_or(""))
}

/// A watch config with one `command` analysis that prints `value`.
fn analysis_watch_config(url: &str, window: &str, value: &str) -> String {
    format!(
        "{}\n[[analysis]]\nname = \"5xx ratio\"\nprovider = \"command\"\ncommand = \"echo {value}\"\nmax = 0.01\ninterval = \"100ms\"\nfailure_limit = 2\n",
        watch_config(url, window)
    )
}

fn kinds<'a>(s: &'a IncidentState, name: &str) -> Vec<&'a EventKind> {
    s.events
        .iter()
        .filter(|e| e.kind.name() == name)
        .map(|e| &e.kind)
        .collect()
}

#[test]
fn the_server_watch_runs_the_same_analysis_and_fails_a_bad_metric_with_health_green() {
    let health = health_server(&[200]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = analysis_watch_config(&health.url, "10s", "0.3");
    let (st, _notes) = noted(dir.path(), &cfg, Clock::System, "r1", 30);
    let id = declare_in(&st, "pdf-crash", &"b".repeat(40));
    shipped(&st, id, &"c".repeat(40));
    let started = Instant::now();
    assert!(until(6, || {
        watching::run(&st);
        !verdicts(&ops::load(&st, id).unwrap()).is_empty()
    }));
    // Two intervals, not the 10 s window.
    assert!(started.elapsed() < Duration::from_secs(3));
    let s = ops::load(&st, id).unwrap();
    match verdicts(&s).as_slice() {
        [EventKind::HealthFailed { reason, .. }] => {
            assert!(reason.contains("0.3 > max 0.01"), "{reason}")
        }
        other => panic!("expected one health_failed, got {other:?}"),
    }
    match kinds(&s, "analysis_failed").as_slice() {
        [
            EventKind::AnalysisFailed {
                values, threshold, ..
            },
        ] => {
            assert_eq!(values, &vec![0.3, 0.3]);
            assert_eq!(threshold, "max 0.01");
        }
        other => panic!("expected one analysis_failed, got {other:?}"),
    }
    assert_eq!(kinds(&s, "analysis_measured").len(), 1);
}

#[test]
fn the_server_watch_passes_a_good_metric_with_its_measurements_recorded() {
    let health = health_server(&[200]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = analysis_watch_config(&health.url, "1s", "0.001");
    let (st, _notes) = noted(dir.path(), &cfg, Clock::System, "r1", 30);
    let id = declare_in(&st, "pdf-crash", &"b".repeat(40));
    shipped(&st, id, &"c".repeat(40));
    assert!(until(6, || {
        watching::run(&st);
        !verdicts(&ops::load(&st, id).unwrap()).is_empty()
    }));
    let s = ops::load(&st, id).unwrap();
    assert!(matches!(
        verdicts(&s).as_slice(),
        [EventKind::HealthPassed { .. }]
    ));
    match kinds(&s, "analysis_measured").as_slice() {
        [
            EventKind::AnalysisMeasured {
                verdict, samples, ..
            },
        ] => {
            assert_eq!(verdict, "pass");
            assert!(samples.len() >= 3, "{samples:?}");
        }
        other => panic!("expected one analysis_measured, got {other:?}"),
    }
    assert!(hotfix_core::checklist::fix_verified(&s).0);
}

/// A sample-service route file: `/health` fine, `/api` answering `status`.
fn api_routes(status: u16) -> String {
    format!(
        "log_requests = false\n[[route]]\npath = \"/health\"\nbody = \"ok\"\n[[route]]\npath = \"/api\"\nstatus = {status}\nbody = \"api\"\n"
    )
}

#[test]
fn the_server_watch_measures_platform_analyses_from_the_platforms_counters() {
    use hotfix_testkit::platform as tp;
    let tmp = tempfile::tempdir().unwrap();
    let (repo, state) = (tmp.path().join("repo"), tmp.path().join("state"));
    std::fs::create_dir_all(&repo).unwrap();
    tp::git(&repo, &["init", "-q", "-b", "main"]);
    let good = tp::commit_routes(&repo, &api_routes(200));
    let bad = tp::commit_routes(&repo, &api_routes(500));
    let p = tp::start_platform(&repo, &state);
    p.client.deploy_production(&good).unwrap();
    p.client.deploy_production(&bad).unwrap();
    // Users keep calling /api through the proxy during the watch.
    let stop = Arc::new(AtomicBool::new(false));
    let port = p.port;
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                tp::traffic(port, "/api", 5);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let health = format!("http://127.0.0.1:{port}/health");
    let cfg = format!(
        "{}\n[[analysis]]\nname = \"5xx ratio\"\nprovider = \"platform\"\nmetric = \"error_ratio\"\nmax = 0.01\ninterval = \"200ms\"\nfailure_limit = 2\n",
        watch_config(&health, "20s")
    );
    let run = |platform_dir: Option<PathBuf>, name: &str| {
        let sub = tmp.path().join(name);
        std::fs::create_dir_all(&sub).unwrap();
        let store = open_store(&Backend::Sqlite, &sub);
        let st = AppState::new(ServerParts {
            store,
            cfg: Config::parse(&cfg).expect("config"),
            secrets: Secrets::default(),
            notifiers: vec![],
            clock: Clock::System,
            data_dir: sub.clone(),
            replica: name.into(),
            workers: WorkerSettings {
                enabled: false,
                tick: Duration::from_millis(50),
                platform_dir,
                ..WorkerSettings::default()
            },
        });
        let id = declare_in(&st, "api-500", &good);
        shipped_as(&st, id, &"c".repeat(40), &bad, &good);
        (st, id)
    };

    // With the platform's state directory: the release's own 5xx answers
    // fail the analysis while /health stays green.
    let (st, id) = run(Some(state.clone()), "with");
    assert!(until(10, || {
        watching::run(&st);
        !verdicts(&ops::load(&st, id).unwrap()).is_empty()
    }));
    let s = ops::load(&st, id).unwrap();
    match verdicts(&s).as_slice() {
        [EventKind::HealthFailed { reason, .. }] => {
            assert!(reason.contains("5xx ratio"), "{reason}");
            assert!(reason.contains("> max 0.01"), "{reason}");
            assert!(
                reason.contains("consecutive failed measurements"),
                "{reason}"
            );
        }
        other => panic!("expected one health_failed, got {other:?}"),
    }

    // Without it the server cannot measure: no verdict from a blind
    // analysis (`inconclusive = "pause"`).
    let (st, id) = run(None, "without");
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        watching::run(&st);
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = ops::load(&st, id).unwrap();
    assert!(
        !verdicts(&s)
            .iter()
            .any(|v| matches!(v, EventKind::HealthFailed { .. })),
        "{:?}",
        verdicts(&s)
    );
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
}
