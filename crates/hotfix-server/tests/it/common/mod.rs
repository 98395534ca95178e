//! A real server on 127.0.0.1:0 over a real store (a SQLite file in a temp
//! dir, or a schema of its own on the machine's PostgreSQL), spoken to over
//! real HTTP. Shared by the server's test files.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hotfix_core::admit::{Actor, Door};
use hotfix_core::config::Config;
use hotfix_core::event::{EventKind, NewEvent};
use hotfix_core::id::IncidentId;
use hotfix_core::provider::Notifier;
use hotfix_core::severity::Severity;
use hotfix_core::state::IncidentState;
use hotfix_core::team::{ApiRole, ServerStore};
use hotfix_engine::Clock;
use hotfix_providers::notify::FileNotifier;
use hotfix_server::{AppState, Running, Secrets, ServerParts, WorkerSettings, ops};
use serde_json::{Value, json};

pub const GITHUB_SECRET: &str = "It's a Secret to Everybody";
pub const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// The team of the tests' `hotfix.toml`.
pub const LEAD: &str = "lead@example.com";
pub const LEAD2: &str = "lead2@example.com";
pub const REVIEWER: &str = "rev@example.com";
pub const DEV: &str = "dev@example.com";

pub fn base_config() -> String {
    format!(
        r#"
[team]
tech_leads = ["{LEAD}", "{LEAD2}"]
reviewers = ["{REVIEWER}"]
on_call = ["{DEV}"]

[notify]
console = false
file = false

[status]
title = "Acme status"
components = ["API", "Web app"]

[[alerts.rules]]
match = {{ alertname = "HighErrorRate" }}
severity = "critical"
customer_facing = true
components = ["API"]

[[alerts.rules]]
source = "pagerduty"
severity = "high"

[server.slack_users]
U0LEAD = "{LEAD}"
U0DEV = "{DEV}"
"#
    )
}

/// Which store a test server runs on.
pub enum Backend {
    Sqlite,
    /// A schema of its own on `HOTFIX_TEST_DATABASE_URL`.
    Postgres {
        url: String,
        schema: String,
    },
}

pub fn pg_url() -> Option<String> {
    match std::env::var("HOTFIX_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            hotfix_testkit::skip(
                "HOTFIX_TEST_DATABASE_URL is not set: PostgreSQL server tests skipped",
            );
            None
        }
    }
}

pub fn unique_schema(tag: &str) -> String {
    format!(
        "hf_srv_{tag}_{}_{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond() % 1_000_000_000
    )
}

/// Drops a PostgreSQL schema when dropped.
pub struct DropSchema(pub String, pub String);

impl Drop for DropSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.0, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.1));
        }
    }
}

pub fn open_store(backend: &Backend, dir: &std::path::Path) -> Arc<dyn ServerStore> {
    match backend {
        Backend::Sqlite => {
            Arc::new(hotfix_store::SqliteStore::open(&dir.join("hotfix.db")).expect("sqlite store"))
        }
        Backend::Postgres { url, schema } => {
            Arc::new(hotfix_store::PgStore::open_in_schema(url, Some(schema)).expect("pg store"))
        }
    }
}

pub struct TestServer {
    pub base: String,
    pub st: AppState,
    pub dir: tempfile::TempDir,
    /// Where the file notifier writes (one JSON line per delivered message).
    pub notifications: PathBuf,
    rt: tokio::runtime::Runtime,
    running: Option<Running>,
    _drop: Option<DropSchema>,
}

pub struct Options {
    pub config: String,
    pub backend: Backend,
    pub workers: bool,
    pub secrets: Secrets,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config: base_config(),
            backend: Backend::Sqlite,
            workers: true,
            secrets: Secrets {
                github_webhook: Some(GITHUB_SECRET.into()),
                slack_signing: Some(SLACK_SECRET.into()),
                ..Default::default()
            },
        }
    }
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::with(Options::default())
    }

    pub fn with(o: Options) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let drop = match &o.backend {
            Backend::Postgres { url, schema } => Some(DropSchema(url.clone(), schema.clone())),
            Backend::Sqlite => None,
        };
        let store = open_store(&o.backend, dir.path());
        let cfg = Config::parse(&o.config).expect("test config parses");
        let notifications = dir.path().join("notifications.jsonl");
        let notifiers: Vec<Box<dyn Notifier>> = vec![Box::new(FileNotifier {
            path: notifications.clone(),
        })];
        let st = AppState::new(ServerParts {
            store,
            cfg,
            secrets: o.secrets,
            notifiers,
            clock: Clock::System,
            data_dir: dir.path().to_path_buf(),
            replica: format!("test-{}", std::process::id()),
            workers: WorkerSettings {
                enabled: o.workers,
                tick: Duration::from_millis(50),
                lease_s: 30,
                ..WorkerSettings::default()
            },
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let running = rt
            .block_on(hotfix_server::start(st.clone(), "127.0.0.1:0"))
            .expect("server starts");
        TestServer {
            base: format!("http://{}", running.addr),
            st,
            dir,
            notifications,
            rt,
            running: Some(running),
            _drop: drop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A token for `user` with `role`, created straight in the store.
    pub fn token(&self, user: &str, role: ApiRole) -> String {
        hotfix_server::auth::create_token(self.st.store.as_ref(), user, role, 0)
            .expect("token")
            .0
    }

    /// The delivered notifications (file notifier), as JSON values.
    pub fn delivered(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.notifications)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until `f` holds (the workers run every 50 ms).
    pub fn wait_for(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("timed out waiting for: {what}");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.shutdown.send(true);
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(5), r.done).await });
        }
    }
}

/// A plain HTTP client that returns every status as a reply.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// What came back: status, headers we look at, body (JSON when it parses).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub location: Option<String>,
    pub set_cookie: Vec<String>,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }
}

fn into_resp(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Resp {
    let mut r = r.expect("HTTP request reached the server");
    let h = r.headers();
    let content_type = h
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let location = h
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let set_cookie = h
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(String::from))
        .collect();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    Resp {
        status,
        content_type,
        location,
        set_cookie,
        text,
    }
}

/// The bearer token (if any) and extra headers on a request.
fn with_headers<B>(
    mut req: ureq::RequestBuilder<B>,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> ureq::RequestBuilder<B> {
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req
}

/// GET with optional bearer token and extra headers.
pub fn get(url: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Resp {
    into_resp(with_headers(agent().get(url), token, headers).call())
}

/// POST a raw body with optional bearer token and extra headers.
pub fn post(url: &str, token: Option<&str>, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    into_resp(with_headers(agent().post(url), token, headers).send(body))
}

/// POST JSON.
pub fn post_json(url: &str, token: Option<&str>, body: &Value) -> Resp {
    post(
        url,
        token,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
}

/// DELETE.
pub fn delete(url: &str, token: Option<&str>) -> Resp {
    into_resp(with_headers(agent().delete(url), token, &[]).call())
}

// ------------------------------------------------- incidents over the API

/// An object id made of one hex digit: `a…a` is the base in these tests,
/// `b…b` the fix's head.
pub fn sha(c: char) -> String {
    c.to_string().repeat(40)
}

/// `POST /api/v1/incidents`, whatever comes back.
pub fn try_declare(t: &TestServer, token: &str, body: &Value) -> Resp {
    post_json(&t.url("/api/v1/incidents"), Some(token), body)
}

/// Declares through the API (201) and returns the incident's id.
pub fn declare(t: &TestServer, token: &str, body: Value) -> String {
    let r = try_declare(t, token, &body);
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()["incident"]["id"].as_str().unwrap().to_string()
}

/// Appends `events` through the API's generic route, whatever comes back.
pub fn append(t: &TestServer, token: &str, id: &str, events: Value) -> Resp {
    post_json(
        &t.url(&format!("/api/v1/incidents/{id}/events")),
        Some(token),
        &json!({ "events": events }),
    )
}

/// Approves (the head shown) as `token`'s user, whatever comes back.
pub fn approve(t: &TestServer, token: &str, id: &str) -> Resp {
    post(
        &t.url(&format!("/api/v1/incidents/{id}/approve")),
        Some(token),
        &[],
        b"",
    )
}

/// The incident's events, oldest first.
pub fn events_of(t: &TestServer, token: &str, id: &str) -> Vec<Value> {
    get(
        &t.url(&format!("/api/v1/incidents/{id}/events")),
        Some(token),
        &[],
    )
    .json()["events"]
        .as_array()
        .unwrap()
        .clone()
}

/// The developer's push of `b…b` (one commit by DEV) and its PR #7, as the
/// CLI records them.
pub fn push_events() -> Vec<Value> {
    let b = sha('b');
    vec![
        json!({"type": "pushed", "sha": b, "commits": [{"sha": b, "author_email": DEV, "committer_email": DEV, "subject": "fix"}], "diff": {"files": ["a.rs"], "lines_added": 3, "lines_removed": 1}}),
        json!({"type": "pr_opened", "number": 7, "url": "https://github.com/acme/app/pull/7"}),
    ]
}

/// The preview of `b…b` deployed and its smoke checks passed.
pub fn preview_events() -> Vec<Value> {
    let b = sha('b');
    vec![
        json!({"type": "preview_deployed", "sha": b, "url": "http://127.0.0.1:1/"}),
        json!({"type": "smoke_passed", "sha": b, "checks": []}),
    ]
}

/// Declared by the developer on `a…a` and `events` appended (200).
fn declared_with(
    t: &TestServer,
    dev: &str,
    name: &str,
    severity: &str,
    events: Vec<Value>,
) -> String {
    let id = declare(
        t,
        dev,
        json!({"name": name, "severity": severity, "base_sha": sha('a')}),
    );
    let r = append(t, dev, &id, Value::Array(events));
    assert_eq!(r.status, 200, "{}", r.text);
    id
}

/// Declared by the developer, pushed, PR open: no preview, no approval yet.
pub fn pushed_unpreviewed(t: &TestServer, dev: &str, name: &str, severity: &str) -> String {
    declared_with(t, dev, name, severity, push_events())
}

/// Declared by the developer, pushed, PR open, preview passed: waiting for approval.
pub fn pushed(t: &TestServer, dev: &str, name: &str, severity: &str) -> String {
    let mut events = push_events();
    events.extend(preview_events());
    declared_with(t, dev, name, severity, events)
}

// ------------------------------------------- incidents straight in the store

/// A critical, customer-facing incident `name` declared by DEV through
/// the API's door, straight on `st` (no HTTP).
pub fn declare_in(st: &AppState, name: &str, base_sha: &str) -> IncidentId {
    ops::declare(
        st,
        &Actor::new(DEV, Door::Api),
        EventKind::Declared {
            name: name.into(),
            title: format!("{name} broken"),
            severity: Severity::Critical,
            customer_facing: true,
            security: false,
            branch: format!("hotfix/{name}"),
            base_sha: base_sha.into(),
        },
        vec![],
        &|_, _| vec![],
    )
    .unwrap()
    .id
}

/// Writes `kinds` to the log as they are, past the rulebook: the worker
/// tests seed a history (a ship that happened, hours ago) to exercise the
/// workers, as a fixture would; the rulebook itself is tested in
/// hotfix-core and by the API tests.
pub fn seed(st: &AppState, id: IncidentId, kinds: Vec<EventKind>) -> IncidentState {
    let s = ops::load(st, id).unwrap();
    let now = st.clock.now();
    let events: Vec<NewEvent> = kinds
        .into_iter()
        .map(|kind| NewEvent {
            at: now,
            actor: DEV.into(),
            kind,
        })
        .collect();
    st.store.append(id, s.version, &events, &[]).unwrap();
    ops::load(st, id).unwrap()
}
