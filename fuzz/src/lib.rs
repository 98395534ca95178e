//! What the fuzz targets share: the team server of the webhook and Slack
//! targets (its real router on a real SQLite store, fresh for every input so
//! a run is reproducible), the incident the inputs act on, and the
//! "headers, blank line, body" input format.
//!
//! Every check that is not "no panic" is an `assert!` here or in a target:
//! libFuzzer reports a failed one as a crash, with the input that did it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Request, StatusCode};
use hotfix_core::admit::{Actor, Door};
use hotfix_core::config::Config;
use hotfix_core::event::{EventKind, NewEvent};
use hotfix_core::team::ServerStore;
use hotfix_engine::Clock;
use hotfix_server::{AppState, Secrets, ServerParts, WorkerSettings, ops};
use hotfix_store::SqliteStore;
use http_body_util::BodyExt;
use jiff::Timestamp;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The server's clock in every target: fixed, so a Slack timestamp that
/// passed once passes again when the crash is replayed.
pub const NOW_S: i64 = 1_800_000_000;

pub const GITHUB_SECRET: &str = "It's a Secret to Everybody";
pub const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

pub const LEAD: &str = "lead@example.com";
pub const LEAD2: &str = "lead2@example.com";
pub const REVIEWER: &str = "rev@example.com";
pub const DEV: &str = "dev@example.com";
pub const REPO: &str = "Codertocat/Hello-World";
pub const BRANCH: &str = "hotfix/pdf-crash";

/// A 40-hex sha made of one character.
pub fn sha(c: char) -> String {
    c.to_string().repeat(40)
}

/// The `hotfix.toml` of the server targets: the team of the server's own
/// tests, GitHub as the forge (so webhooks match the incident), Slack users.
pub fn team_config() -> String {
    format!(
        r##"
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

[[alerts.rules]]
severity = "high"

[server]
slack_channel = "#dev-alerts"

[server.slack_users]
U0LEAD = "{LEAD}"
U0DEV = "{DEV}"

[forge]
provider = "github"
repo = "{REPO}"

[forge.logins]
"{LEAD}" = "lead-gh"
"{LEAD2}" = "Lead2-GH"
"{DEV}" = "Codertocat"
"##
    )
}

/// The life of one incident as the CLI records it, in order: a target's
/// base state is a prefix of it (see [`stage`]).
pub fn lifecycle() -> Vec<(&'static str, Value)> {
    let (a, b, c) = (sha('a'), sha('b'), sha('c'));
    vec![
        (
            DEV,
            json!({"type": "pushed", "sha": b, "commits": [{"sha": b, "author_email": DEV, "committer_email": DEV, "subject": "fix"}], "diff": {"files": ["a.rs"], "lines_added": 3, "lines_removed": 1}}),
        ),
        (
            DEV,
            json!({"type": "pr_opened", "number": 2, "url": format!("https://github.com/{REPO}/pull/2")}),
        ),
        (
            DEV,
            json!({"type": "preview_deployed", "sha": b, "url": "http://127.0.0.1:1/"}),
        ),
        (DEV, json!({"type": "smoke_passed", "sha": b, "checks": []})),
        (
            LEAD,
            json!({"type": "approved", "by": LEAD, "role": "tech_lead", "sha": b, "source": "cli"}),
        ),
        (
            DEV,
            json!({"type": "merged", "merge_sha": c, "head_sha": b, "previous_main": a, "previous_deployment": "dep-1"}),
        ),
        (
            DEV,
            json!({"type": "deployed", "sha": c, "environment": "production", "deployment": "dep-2", "previous_deployment": "dep-1"}),
        ),
        (DEV, json!({"type": "health_passed", "sha": c, "probes": 3})),
        (DEV, json!({"type": "backported", "merge_sha": sha('d')})),
    ]
}

/// How many base states there are: just declared, then one per step of
/// [`lifecycle`].
pub fn stages() -> usize {
    lifecycle().len() + 1
}

/// The declaration every base state starts from.
pub fn declared() -> EventKind {
    EventKind::Declared {
        name: "pdf-crash".into(),
        title: "PDF export crashes".into(),
        severity: hotfix_core::severity::Severity::Critical,
        customer_facing: true,
        security: false,
        branch: BRANCH.into(),
        base_sha: sha('a'),
    }
}

/// The first `n` steps of [`lifecycle`], as `(actor, kind)`.
pub fn stage(n: usize) -> Vec<(&'static str, EventKind)> {
    lifecycle()
        .into_iter()
        .take(n)
        .map(|(who, v)| (who, serde_json::from_value(v).expect("lifecycle event")))
        .collect()
}

/// A team server whose store is laid anew from a template for every input.
pub struct Team {
    rt: tokio::runtime::Runtime,
    cfg: Config,
    /// One store file per base state, by stage.
    templates: Vec<Vec<u8>>,
    /// The API token of `monitoring@example.com` (a developer) in every
    /// template, for the alert door.
    pub token: String,
    dir: PathBuf,
    n: AtomicU64,
    /// The last server handed out, its stage and what its store held then:
    /// reused while nothing was written (most inputs are refused before
    /// anything is), so only inputs that wrote pay for a new store.
    current: std::sync::Mutex<Option<(usize, AppState, Fingerprint)>>,
}

/// What a request may change in a store: the incidents and their versions,
/// the watermark, the newest inbox item.
type Fingerprint = (Vec<(hotfix_core::id::IncidentId, u64)>, i64, Option<i64>);

fn fingerprint(st: &AppState) -> Fingerprint {
    (
        st.store.incident_versions().expect("versions"),
        st.store.watermark().expect("watermark"),
        st.store
            .inbox_recent(1)
            .expect("inbox")
            .first()
            .map(|i| i.id),
    )
}

/// The header a server target's input may carry to pick its base state
/// (`X-Fuzz-Stage: 6`); the harness takes it out before the request is sent.
pub const STAGE_HEADER: &str = "x-fuzz-stage";

impl Team {
    /// A server with `config`, its store holding the incident (HF-1,
    /// declared by DEV on `a…a`) at any of the [`stages`].
    pub fn new(config: &str) -> Team {
        let cfg = Config::parse(config).expect("the fuzz config parses");
        // tmpfs when there is one: every input writes a store.
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("hotfix-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("fuzz dir");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let token = format!("hf_{}", "7".repeat(64));
        let templates = (0..stages())
            .map(|n| template(&dir, &cfg, n, &token))
            .collect();
        Team {
            rt,
            cfg,
            templates,
            token,
            dir,
            n: AtomicU64::new(0),
            current: std::sync::Mutex::new(None),
        }
    }

    /// A server whose store holds exactly the base state `stage_n` (modulo
    /// the number of stages): the last one if the input before left its
    /// store as it was, else a fresh copy.
    pub fn state(&self, stage_n: usize) -> AppState {
        let stage_n = stage_n % self.templates.len();
        let mut cur = self.current.lock().expect("lock");
        if let Some((n, st, fp)) = cur.as_ref()
            && *n == stage_n
            && fingerprint(st) == *fp
        {
            return st.clone();
        }
        let st = self.fresh(stage_n);
        *cur = Some((stage_n, st.clone(), fingerprint(&st)));
        st
    }

    /// A server on a fresh copy of the store at stage `stage_n` (taken
    /// modulo the number of stages).
    pub fn fresh(&self, stage_n: usize) -> AppState {
        let i = self.n.fetch_add(1, Ordering::Relaxed) % 2;
        let path = self.dir.join(format!("run{i}.db"));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        std::fs::write(&path, &self.templates[stage_n % self.templates.len()]).expect("store copy");
        let store = SqliteStore::open(&path).expect("store");
        app(Arc::new(store), self.cfg.clone(), self.dir.clone())
    }

    /// Sends `req` through the server's router; the status and the body.
    pub fn call(&self, st: &AppState, req: Request<Body>) -> (StatusCode, Vec<u8>) {
        let router = hotfix_server::router(st.clone());
        self.rt.block_on(async move {
            let resp = router.oneshot(req).await.expect("the router is infallible");
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
            (status, body)
        })
    }

    /// Runs `f` inside the server's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

/// The bytes of a store holding HF-1 at stage `stage_n`.
fn template(dir: &std::path::Path, cfg: &Config, stage_n: usize, token: &str) -> Vec<u8> {
    let path = dir.join(format!("template{stage_n}.db"));
    {
        let store = SqliteStore::open(&path).expect("template store");
        let st = app(Arc::new(store), cfg.clone(), dir.to_path_buf());
        let id = ops::declare(
            &st,
            &Actor::new(DEV, Door::Api),
            declared(),
            vec![],
            &|_, _| vec![],
        )
        .expect("declare")
        .id;
        let now = st.clock.now();
        let events: Vec<NewEvent> = stage(stage_n)
            .into_iter()
            .map(|(who, kind)| NewEvent {
                at: now,
                actor: who.into(),
                kind,
            })
            .collect();
        if !events.is_empty() {
            st.store.append(id, 1, &events, &[]).expect("seed");
        }
        st.store
            .token_create(
                "monitoring@example.com",
                hotfix_core::team::ApiRole::Developer,
                &hotfix_server::auth::hash_token(token),
                0,
            )
            .expect("token");
    }
    // The connection is closed: its WAL is checkpointed into the file.
    std::fs::read(&path).expect("template bytes")
}

fn app(store: Arc<dyn ServerStore>, cfg: Config, dir: PathBuf) -> AppState {
    AppState::new(ServerParts {
        store,
        cfg,
        secrets: Secrets {
            github_webhook: Some(GITHUB_SECRET.into()),
            slack_signing: Some(SLACK_SECRET.into()),
            sentry_client: None,
        },
        notifiers: vec![],
        clock: Clock::Fixed(Timestamp::from_second(NOW_S).expect("time")),
        data_dir: dir,
        replica: "fuzz".into(),
        workers: WorkerSettings {
            enabled: false,
            tick: Duration::from_millis(50),
            lease_s: 30,
        },
    })
}

/// Runs every inbox item due through the inbox worker, as its loop would;
/// the outcomes. A `Failed` (retry later) on a fresh local store is a bug:
/// nothing there is unavailable.
pub fn drain_inbox(st: &AppState) -> Vec<String> {
    let items = st.store.inbox_claim(NOW_S + 3600, 30, 10).expect("claim");
    let mut out = vec![];
    for item in items {
        match hotfix_server::workers::process(st, &item) {
            Ok(o) => out.push(o),
            Err(hotfix_server::workers::NotYet::Deferred { why, .. }) => out.push(why),
            Err(hotfix_server::workers::NotYet::Failed(e)) => {
                panic!("inbox item {} failed on a healthy store: {e}", item.id)
            }
        }
    }
    out
}

/// An input as `Name: value` lines, a blank line, then the body. A line
/// that is not a valid header is dropped (a client could not send it); an
/// input without a blank line is all body.
pub fn split_headers(data: &[u8]) -> (Vec<(HeaderName, HeaderValue)>, &[u8]) {
    let Some(pos) = data.windows(2).position(|w| w == b"\n\n") else {
        return (vec![], data);
    };
    let (head, body) = (&data[..pos], &data[pos + 2..]);
    let headers = head
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let name = HeaderName::from_bytes(line[..colon].trim_ascii()).ok()?;
            let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii()).ok()?;
            Some((name, value))
        })
        .collect();
    (headers, body)
}

/// Whether `headers` has `name` (lower case).
pub fn has(headers: &[(HeaderName, HeaderValue)], name: &str) -> bool {
    headers.iter().any(|(n, _)| n.as_str() == name)
}

/// The value of `name`, if it is text.
pub fn value<'a>(headers: &'a [(HeaderName, HeaderValue)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.as_str() == name)
        .and_then(|(_, v)| v.to_str().ok())
}

/// The statuses a door may answer; anything else (a 5xx above all) is a bug.
pub fn assert_status(status: StatusCode, allowed: &[u16], body: &[u8]) {
    assert!(
        allowed.contains(&status.as_u16()),
        "unexpected status {status}: {}",
        String::from_utf8_lossy(body)
    );
}

/// Takes the [`STAGE_HEADER`] out of `headers`; the stage it names (0 when
/// there is none or it is not a number).
pub fn take_stage(headers: &mut Vec<(HeaderName, HeaderValue)>) -> usize {
    let stage_n = value(headers, STAGE_HEADER)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    headers.retain(|(n, _)| n.as_str() != STAGE_HEADER);
    stage_n
}

/// The alert targets: `alerts::parse` (what the door and the inbox worker
/// both run) on `data` as an alert of `source`, and the rules' functions
/// the worker runs on what it parsed (whether a rule matches, the hotfix
/// name it declares under). The whole worker runs in `alert_intake`.
pub fn alert(source: hotfix_server::alerts::Source, data: &[u8]) {
    use hotfix_core::config::AlertRule;
    use hotfix_server::alerts::rules::{first_match, incident_name};
    use hotfix_server::alerts::{Parsed, link_key, parse};
    // alerts::parse's limits (MAX_KEY, MAX_SUMMARY; a cut summary ends in `…`).
    const MAX_KEY: usize = 1024;
    const MAX_SUMMARY: usize = 300;
    static CFG: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
    let cfg = CFG.get_or_init(|| Config::parse(&team_config()).expect("config"));

    // The door parses with a placeholder key, the worker with the item's.
    let door = parse(source, data, "pending");
    let worker = parse(source, data, "inbox-7");
    assert_eq!(door.is_ok(), worker.is_ok(), "door and worker disagree");
    let Ok(Parsed::Alert(a)) = worker else {
        return;
    };
    assert!(!a.key.is_empty() && a.key.len() <= MAX_KEY);
    assert!(
        !a.key.chars().any(char::is_control),
        "control character in key {:?}",
        a.key
    );
    assert!(a.summary.chars().count() <= MAX_SUMMARY + 1);
    if let Some(u) = &a.url {
        assert!(u.starts_with("http://") || u.starts_with("https://"));
    }
    // The rules of the config, then a catch-all, a named and a security
    // one: the name the worker declares under must be a valid hotfix name.
    let mut rules: Vec<AlertRule> = cfg.alerts.rules.clone();
    let mut extra = rules.last().cloned().expect("a rule");
    extra.labels.clear();
    extra.source = None;
    for (name, security) in [(None, false), (Some("Checkout API"), false), (None, true)] {
        let mut r = extra.clone();
        r.name = name.map(String::from);
        r.security = security;
        rules.push(r);
    }
    let _ = first_match(&cfg.alerts.rules, &a);
    for rule in &rules {
        for n in [1, 2, 1000] {
            let name = incident_name(rule, &a, &link_key(&a.key, n));
            assert!(
                hotfix_core::name::valid_name(&name),
                "the worker would declare under an invalid name {name:?}"
            );
        }
    }
}
