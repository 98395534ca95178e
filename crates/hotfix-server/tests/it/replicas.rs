//! Two replicas on one PostgreSQL, one of them killed (SIGKILL) midway.
//!
//! Replica A is a real process: this test binary re-run as a child with
//! `HOTFIX_REPLICA_CHILD` set, serving on 127.0.0.1:0 with its workers on.
//! Replica B runs in this process. Both take alerts over HTTP and share the
//! inbox, the outbox and the timers through the store. A freezes at a known
//! point (in the middle of sending its claimed notifications, and between
//! processing an alert and recording it done), says so through a marker
//! file, and is killed with SIGKILL: nothing of it is flushed or released.
//! Then: every notification was delivered exactly once across both
//! replicas' files, every inbox item processed and no incident declared
//! twice, the timers fired once, and B still serves.
//!
//! Needs `HOTFIX_TEST_DATABASE_URL`; skipped (loudly) without it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use hotfix_core::config::Config;
use hotfix_core::event::{Event, EventKind, NewEvent};
use hotfix_core::id::IncidentId;
use hotfix_core::notify::Message;
use hotfix_core::provider::{Memory, Notifier, NotifyError, OutboxItem, Store, StoreError};
use hotfix_core::team::{
    ApiRole, InboxItem, InboxPut, InboxRecord, ServerStore, TeamStore, TokenRecord,
};
use hotfix_engine::Clock;
use hotfix_providers::notify::FileNotifier;
use hotfix_server::{AppState, Secrets, ServerParts, WorkerSettings, ops};
use hotfix_store::PgStore;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

const CHILD_ENV: &str = "HOTFIX_REPLICA_CHILD";
/// The child's lease: short, so that its work comes back within seconds.
const LEASE_S: i64 = 2;
/// A sends this many notifications, then freezes in the next send.
const A_SENDS: usize = 5;
/// A records this many inbox items done, then freezes recording the next.
const A_DONES: usize = 3;
const ALERTS_BEFORE_KILL: usize = 40;
const ALERTS_AFTER_KILL: usize = 10;

// ------------------------------------------------------------- replicas

/// A replica's state on `store`, with the base config and one notifier.
fn state(
    store: Arc<dyn ServerStore>,
    notifier: Box<dyn Notifier>,
    clock: Clock,
    dir: &Path,
    name: &str,
    workers: WorkerSettings,
) -> AppState {
    AppState::new(ServerParts {
        store,
        cfg: Config::parse(&base_config()).expect("config"),
        secrets: Secrets::default(),
        notifiers: vec![notifier],
        clock,
        data_dir: dir.to_path_buf(),
        replica: name.into(),
        workers,
    })
}

/// The runtime a replica serves on.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn pg_store(url: &str, schema: &str) -> Arc<dyn ServerStore> {
    Arc::new(PgStore::open_in_schema(url, Some(schema)).expect("pg"))
}

// ------------------------------------------------------------- replica A

/// Freezes the calling thread for good (what SIGKILL later makes final).
fn freeze(marker: &Path, what: &str) -> ! {
    std::fs::write(marker, what).expect("marker");
    loop {
        std::thread::park();
    }
}

/// The file notifier, frozen in its `A_SENDS + 1`-th send before writing.
struct FreezingNotifier {
    inner: FileNotifier,
    sends: AtomicUsize,
    marker: PathBuf,
}

impl Notifier for FreezingNotifier {
    fn name(&self) -> &str {
        "file"
    }
    fn send(&self, id: i64, msg: &Message, memory: &dyn Memory) -> Result<(), NotifyError> {
        if self.sends.fetch_add(1, Ordering::SeqCst) >= A_SENDS {
            freeze(&self.marker, &id.to_string());
        }
        self.inner.send(id, msg, memory)
    }
}

/// A's store: PostgreSQL, frozen when recording its `A_DONES + 1`-th inbox
/// item done (the item is processed, its outcome not recorded).
struct FreezingStore {
    inner: PgStore,
    dones: AtomicUsize,
    marker: PathBuf,
}

impl Store for FreezingStore {
    fn declare(
        &self,
        event: &NewEvent,
        outbox: &dyn Fn(IncidentId) -> Vec<(String, Message)>,
    ) -> Result<IncidentId, StoreError> {
        self.inner.declare(event, outbox)
    }
    fn append(
        &self,
        incident: IncidentId,
        expected_version: u64,
        events: &[NewEvent],
        outbox: &[(String, Message)],
    ) -> Result<u64, StoreError> {
        self.inner
            .append(incident, expected_version, events, outbox)
    }
    fn events(&self, incident: IncidentId) -> Result<Vec<Event>, StoreError> {
        self.inner.events(incident)
    }
    fn incidents(&self) -> Result<Vec<IncidentId>, StoreError> {
        self.inner.incidents()
    }
    fn claim_outbox(
        &self,
        now_s: i64,
        lease_s: i64,
        notifiers: &[String],
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        self.inner.claim_outbox(now_s, lease_s, notifiers, limit)
    }
    fn release_outbox(&self, id: i64) -> Result<(), StoreError> {
        self.inner.release_outbox(id)
    }
    fn undelivered(&self) -> Result<Vec<OutboxItem>, StoreError> {
        self.inner.undelivered()
    }
    fn mark_delivered(&self, id: i64, at_s: i64) -> Result<(), StoreError> {
        self.inner.mark_delivered(id, at_s)
    }
    fn mark_failed(&self, id: i64, error: &str, retry_at_s: i64) -> Result<(), StoreError> {
        self.inner.mark_failed(id, error, retry_at_s)
    }
    fn memory_get(&self, incident: IncidentId, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.memory_get(incident, key)
    }
    fn memory_set(&self, incident: IncidentId, key: &str, value: &str) -> Result<(), StoreError> {
        self.inner.memory_set(incident, key, value)
    }
}

impl TeamStore for FreezingStore {
    fn token_create(
        &self,
        user: &str,
        role: ApiRole,
        hash: &str,
        now_s: i64,
    ) -> Result<i64, StoreError> {
        self.inner.token_create(user, role, hash, now_s)
    }
    fn token_lookup(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.inner.token_lookup(hash)
    }
    fn token_list(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.inner.token_list()
    }
    fn token_revoke(
        &self,
        id: i64,
        guard: hotfix_core::team::AdminGuard,
    ) -> Result<hotfix_core::team::Revoke, StoreError> {
        self.inner.token_revoke(id, guard)
    }
    fn inbox_put(
        &self,
        source: &str,
        delivery: &str,
        body: &str,
        now_s: i64,
    ) -> Result<InboxPut, StoreError> {
        self.inner.inbox_put(source, delivery, body, now_s)
    }
    fn inbox_claim(
        &self,
        now_s: i64,
        lease_s: i64,
        limit: usize,
    ) -> Result<Vec<InboxItem>, StoreError> {
        self.inner.inbox_claim(now_s, lease_s, limit)
    }
    fn inbox_done(&self, id: i64, outcome: &str, now_s: i64) -> Result<(), StoreError> {
        if self.dones.fetch_add(1, Ordering::SeqCst) >= A_DONES {
            freeze(&self.marker, &id.to_string());
        }
        self.inner.inbox_done(id, outcome, now_s)
    }
    fn inbox_failed(&self, id: i64, error: &str, retry_at_s: i64) -> Result<(), StoreError> {
        self.inner.inbox_failed(id, error, retry_at_s)
    }
    fn inbox_defer(&self, id: i64, why: &str, due_at_s: i64) -> Result<(), StoreError> {
        self.inner.inbox_defer(id, why, due_at_s)
    }
    fn inbox_recent(&self, limit: usize) -> Result<Vec<InboxRecord>, StoreError> {
        self.inner.inbox_recent(limit)
    }
    fn inbox_body(&self, id: i64) -> Result<Option<String>, StoreError> {
        self.inner.inbox_body(id)
    }
    fn alert_link_get(&self, source: &str, key: &str) -> Result<Option<IncidentId>, StoreError> {
        self.inner.alert_link_get(source, key)
    }
    fn alert_link_set(
        &self,
        source: &str,
        key: &str,
        incident: IncidentId,
    ) -> Result<IncidentId, StoreError> {
        self.inner.alert_link_set(source, key, incident)
    }
    fn lease_acquire(
        &self,
        name: &str,
        holder: &str,
        now_s: i64,
        ttl_s: i64,
    ) -> Result<bool, StoreError> {
        self.inner.lease_acquire(name, holder, now_s, ttl_s)
    }
    fn lease_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.inner.lease_release(name, holder)
    }
    fn once(&self, key: &str, now_s: i64) -> Result<bool, StoreError> {
        self.inner.once(key, now_s)
    }
    fn watermark(&self) -> Result<i64, StoreError> {
        self.inner.watermark()
    }
    fn incident_versions(&self) -> Result<Vec<(IncidentId, u64)>, StoreError> {
        self.inner.incident_versions()
    }
}

/// Replica A's process. Not a test of its own: it does nothing unless the
/// two-replica test started this binary as its child.
#[test]
fn replica_a_child_process() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let url = std::env::var("HOTFIX_TEST_DATABASE_URL").expect("database url");
    let schema = std::env::var("HOTFIX_REPLICA_SCHEMA").expect("schema");
    let store = FreezingStore {
        inner: PgStore::open_in_schema(&url, Some(&schema)).expect("pg"),
        dones: AtomicUsize::new(0),
        marker: dir.join("a-inbox-frozen"),
    };
    let notifier = FreezingNotifier {
        inner: FileNotifier {
            path: dir.join("a.jsonl"),
        },
        sends: AtomicUsize::new(0),
        marker: dir.join("a-outbox-frozen"),
    };
    let st = state(
        Arc::new(store),
        Box::new(notifier),
        Clock::System,
        &dir,
        "A",
        WorkerSettings {
            enabled: true,
            tick: Duration::from_millis(50),
            lease_s: LEASE_S,
            ..WorkerSettings::default()
        },
    );
    let rt = runtime();
    let running = rt
        .block_on(hotfix_server::start(st, "127.0.0.1:0"))
        .expect("A starts");
    println!("REPLICA_LISTENING http://{}", running.addr);
    // Until killed; or, should the test die first, until its end of our
    // stdin closes (no replica left running on a dropped schema).
    let mut sink = String::new();
    while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
    std::process::exit(0);
}

// ------------------------------------------------------------- the test

/// Kills the child if the test ends early.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_a(dir: &Path, schema: &str) -> (ChildGuard, String) {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args([
            // Its full name in the crate's one test binary (tests/it).
            "replicas::replica_a_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .env("HOTFIX_REPLICA_SCHEMA", schema)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn replica A");
    let mut child = ChildGuard(child);
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            // libtest's "test replicas::replica_a_child_process ... " shares the line.
            if let Some((_, base)) = line.split_once("REPLICA_LISTENING ") {
                let _ = tx.send(base.trim().to_string());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("replica A said where it listens");
    (child, base)
}

struct ReplicaB {
    st: AppState,
    base: String,
    rt: tokio::runtime::Runtime,
    running: Option<hotfix_server::Running>,
}

impl Drop for ReplicaB {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.shutdown.send(true);
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(5), r.done).await });
        }
    }
}

fn start_b(url: &str, schema: &str, dir: &Path, notes: PathBuf) -> ReplicaB {
    let st = state(
        pg_store(url, schema),
        Box::new(FileNotifier { path: notes }),
        Clock::System,
        dir,
        "B",
        WorkerSettings {
            enabled: true,
            // Slower than A, so that A has claimed work when it dies.
            tick: Duration::from_millis(300),
            lease_s: LEASE_S,
            ..WorkerSettings::default()
        },
    );
    let rt = runtime();
    let running = rt
        .block_on(hotfix_server::start(st.clone(), "127.0.0.1:0"))
        .unwrap();
    ReplicaB {
        st,
        base: format!("http://{}", running.addr),
        rt,
        running: Some(running),
    }
}

/// A replica without server or workers, on a clock of its own: writes the
/// incidents the timers will find.
fn writer(url: &str, schema: &str, clock: Clock, dir: &Path) -> AppState {
    state(
        pg_store(url, schema),
        Box::new(FileNotifier {
            path: dir.join("never-used.jsonl"),
        }),
        clock,
        dir,
        "writer",
        WorkerSettings {
            enabled: false,
            ..WorkerSettings::default()
        },
    )
}

/// Alertmanager's group notification for service `svc-{i}` (its own group key).
fn alert_body(i: usize) -> (String, String) {
    let raw = include_str!("../fixtures/alerts/alertmanager_firing.json");
    let mut v: Value = serde_json::from_str(raw).unwrap();
    let svc = format!("svc-{i}");
    let key = format!(
        "{{}}/{{severity=\"critical\"}}:{{alertname=\"HighErrorRate\", service=\"{svc}\"}}"
    );
    v["groupKey"] = key.clone().into();
    v["groupLabels"]["service"] = svc.clone().into();
    v["commonLabels"]["service"] = svc.clone().into();
    v["commonAnnotations"]["summary"] = format!("{svc} 5xx error rate above 5%").into();
    for (j, a) in v["alerts"].as_array_mut().unwrap().iter_mut().enumerate() {
        a["labels"]["service"] = svc.clone().into();
        a["fingerprint"] = format!("{:012x}{:04x}", i, j).into();
    }
    (key, v.to_string())
}

fn post_alert(base: &str, token: &str, i: usize) -> String {
    let (key, body) = alert_body(i);
    let r = post(
        &format!("{base}/api/v1/alerts/alertmanager"),
        Some(token),
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 202, "alert {i}: {}", r.text);
    key
}

fn pg(url: &str, schema: &str) -> postgres::Client {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.batch_execute(&format!("SET search_path TO {schema}"))
        .unwrap();
    c
}

fn count(c: &mut postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

/// Every notification in these files, by outbox id (a list: twice is a bug).
fn delivered_ids(files: &[PathBuf]) -> BTreeMap<i64, Vec<Value>> {
    let mut m: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
    for f in files {
        for line in std::fs::read_to_string(f).unwrap_or_default().lines() {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a torn line in {}: {e}: {line}", f.display()));
            m.entry(v["outbox_id"].as_i64().unwrap())
                .or_default()
                .push(v);
        }
    }
    m
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {secs}s waiting for: {what}");
}

fn fired(st: &AppState, id: IncidentId, what: &str) -> usize {
    ops::load(st, id)
        .unwrap()
        .events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::ExternalUpdate { what: w, .. } if w == what))
        .count()
}

/// How many times the triage timer paged the tech leads about `id`.
fn triage_paged(st: &AppState, id: IncidentId) -> usize {
    ops::load(st, id)
        .unwrap()
        .events
        .iter()
        .filter(|e| e.kind == EventKind::TriageOverdue)
        .count()
}

#[test]
fn two_replicas_share_the_work_and_survive_one_being_killed() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let Some(url) = pg_url() else {
        return;
    };
    let schema = unique_schema("replicas");
    let _drop = DropSchema(url.clone(), schema.clone());
    let dir = tempfile::tempdir().unwrap();
    let a_notes = dir.path().join("a.jsonl");
    let b_notes = dir.path().join("b.jsonl");

    // The schema, the tokens, and a fix resolved three hours ago whose
    // post-mortem reminder is due: whichever replica scans first fires it.
    let hours_ago = writer(
        &url,
        &schema,
        Clock::Fixed(Timestamp::now() - SignedDuration::from_hours(3)),
        dir.path(),
    );
    let token =
        hotfix_server::auth::create_token(hours_ago.store.as_ref(), DEV, ApiRole::Developer, 0)
            .unwrap()
            .0;
    let resolved = declare_in(&hours_ago, "pdf-crash", &"b".repeat(40));
    seed(
        &hours_ago,
        resolved,
        vec![
            EventKind::Deployed {
                sha: "c".repeat(40),
                environment: "production".into(),
                deployment: None,
                previous_deployment: None,
                build: None,
            },
            EventKind::HealthPassed {
                sha: "c".repeat(40),
                probes: 4,
            },
        ],
    );

    let (mut a, a_base) = spawn_a(dir.path(), &schema);
    let b = start_b(&url, &schema, dir.path(), b_notes.clone());
    let get_ok = |base: &str, path: &str| {
        let r = get(&format!("{base}{path}"), Some(&token), &[]);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        r.json()
    };
    assert_eq!(get_ok(&a_base, "/healthz")["replica"], "A");
    assert_eq!(get_ok(&b.base, "/healthz")["replica"], "B");

    // Alerts come in through both replicas, in turns.
    let mut keys = vec![];
    for i in 0..ALERTS_BEFORE_KILL {
        let base = if i % 2 == 0 { &a_base } else { &b.base };
        keys.push(post_alert(base, &token, i));
    }

    // A freezes in the middle of its work; then it is killed outright.
    let frozen_send = dir.path().join("a-outbox-frozen");
    let frozen_done = dir.path().join("a-inbox-frozen");
    wait_until("replica A froze mid-round", 60, || {
        frozen_send.exists() && frozen_done.exists()
    });
    a.0.kill().expect("SIGKILL replica A");
    a.0.wait().unwrap();
    let stuck_outbox: i64 = std::fs::read_to_string(&frozen_send)
        .unwrap()
        .parse()
        .unwrap();
    let stuck_inbox: i64 = std::fs::read_to_string(&frozen_done)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        agent().get(format!("{a_base}/healthz")).call().is_err(),
        "A is gone"
    );

    // B carries on: more alerts, and an incident reported 20 minutes ago
    // that nobody triaged (paging the tech leads about it is for the
    // timers, now B's alone).
    for i in ALERTS_BEFORE_KILL..ALERTS_BEFORE_KILL + ALERTS_AFTER_KILL {
        keys.push(post_alert(&b.base, &token, i));
    }
    let minutes_ago = writer(
        &url,
        &schema,
        Clock::Fixed(Timestamp::now() - SignedDuration::from_mins(20)),
        dir.path(),
    );
    let unclaimed = declare_in(&minutes_ago, "checkout-down", "");

    let mut db = pg(&url, &schema);
    wait_until("B finished everything, A's share included", 150, || {
        count(
            &mut db,
            "SELECT count(*) FROM outbox WHERE delivered_at IS NULL",
        ) == 0
            && count(
                &mut db,
                "SELECT count(*) FROM inbox WHERE processed_at IS NULL",
            ) == 0
            && triage_paged(&b.st, unclaimed) == 1
    });

    // Every notification delivered exactly once, across both replicas.
    let all_ids: BTreeSet<i64> = db
        .query("SELECT id FROM outbox", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let by_id = delivered_ids(&[a_notes.clone(), b_notes.clone()]);
    let twice: Vec<_> = by_id.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(twice.is_empty(), "delivered twice: {twice:#?}");
    assert_eq!(
        by_id.keys().copied().collect::<BTreeSet<_>>(),
        all_ids,
        "each outbox item delivered"
    );
    let from_a = delivered_ids(&[a_notes]);
    assert_eq!(
        from_a.len(),
        A_SENDS,
        "A delivered its share until it froze"
    );
    assert!(
        delivered_ids(std::slice::from_ref(&b_notes)).contains_key(&stuck_outbox),
        "the message A was sending when it died was delivered by B"
    );

    // Every inbox item processed; no incident declared twice.
    let rows = db
        .query("SELECT id, attempts, outcome FROM inbox ORDER BY id", &[])
        .unwrap();
    assert_eq!(rows.len(), keys.len());
    let stuck = rows
        .iter()
        .find(|r| r.get::<_, i64>(0) == stuck_inbox)
        .unwrap();
    assert!(
        stuck.get::<_, i32>(1) >= 2,
        "the item A processed but never recorded was claimed again"
    );
    let outcomes: Vec<String> = rows
        .iter()
        .map(|r| r.get::<_, Option<String>>(2).unwrap_or_default())
        .collect();
    let incidents = ops::all(&b.st).unwrap();
    for key in &keys {
        let with_key: Vec<_> = incidents
            .iter()
            .filter(|s| {
                s.events
                    .iter()
                    .any(|e| matches!(&e.kind, EventKind::AlertReceived { key: k, .. } if k == key))
            })
            .collect();
        assert_eq!(
            with_key.len(),
            1,
            "one incident for {key}; outcomes: {outcomes:#?}"
        );
        assert_eq!(
            with_key[0].phase(&b.st.cfg.policy).as_str(),
            "triage",
            "declared from the alert, waiting for a tech lead"
        );
    }
    assert_eq!(incidents.len(), keys.len() + 2);

    // Timers fired once each, and their notifications went out once.
    assert_eq!(fired(&b.st, resolved, "post-mortem reminder"), 1);
    assert_eq!(triage_paged(&b.st, unclaimed), 1);
    let steps = |step: &str| {
        by_id
            .values()
            .flatten()
            .filter(|m| m["step"] == step)
            .count()
    };
    assert_eq!(steps("postmortem_reminder"), 1);
    assert_eq!(steps("triage_overdue"), 1);
    // Each alert's page once (declared message + page per incident).
    assert_eq!(steps("paged"), keys.len(), "one page per alert");

    // B still serves the API, its health check and its live watermark.
    let list = get_ok(&b.base, "/api/v1/incidents?state=all");
    assert_eq!(list["incidents"].as_array().unwrap().len(), keys.len() + 2);
    assert_eq!(get_ok(&b.base, "/healthz")["status"], "ok");
    let inbox = get_ok(&b.base, "/api/v1/inbox");
    assert!(!inbox["items"].as_array().unwrap().is_empty());
    let watermark = b.st.store.watermark().unwrap();
    wait_until("B's live watermark caught up", 10, || {
        b.st.live.current() >= watermark
    });
    eprintln!(
        "replicas: {} notifications ({} by A before it died), {} alerts, A frozen on outbox #{stuck_outbox} and inbox #{stuck_inbox}",
        by_id.len(),
        from_a.len(),
        keys.len()
    );
}
