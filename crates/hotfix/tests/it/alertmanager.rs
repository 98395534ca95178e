//! The alert intake and triage against the real Prometheus Alertmanager.
//!
//! Each test starts a real `hotfix serve` (child process, SQLite store in a
//! temp dir) and a real `prometheus-alertmanager` (child process, clustering
//! disabled, its web port picked by the kernel and read from its log, short
//! group timers) whose one receiver is hotfix's
//! `POST /api/v1/alerts/alertmanager` webhook, authenticated with an API
//! token. Alerts are injected the way Prometheus does it, through
//! Alertmanager's own `POST /api/v2/alerts`; a resolve is the same labels
//! posted again with `endsAt` in the past. Everything in between — grouping,
//! `group_wait`/`group_interval`, retries while hotfix is down, the webhook
//! body, `send_resolved`, `max_alerts` — is Alertmanager's own behaviour, not
//! a fixture of ours. The tests wait on hotfix's API with a deadline, never
//! with a fixed sleep.
//!
//! Skipped (with `hotfix_testkit::skip`, which fails under `CI=true`) only
//! when the Alertmanager binary is not installed: `.ci/run` installs the
//! Debian package `prometheus-alertmanager`.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{DEV, LEAD, bin};
use serde_json::{Value, json};

/// How long any one effect may take to show. Alertmanager's first
/// notification of a group comes after `group_wait` (1 s), a change after
/// `group_interval` (2 s), a retry within about a second; hotfix's inbox
/// worker ticks every 500 ms. Ten times that is a generous deadline that a
/// hang still hits quickly.
const DEADLINE: Duration = Duration::from_secs(20);

/// The role of the token Alertmanager posts with: it may post alerts and
/// nothing else.
const INTAKE_ROLE: &str = "intake";

/// Environment variables a test process may have that must not leak into
/// the binaries we start.
const SCRUB: &[&str] = &[
    "HOTFIX_SERVER",
    "HOTFIX_TOKEN",
    "HOTFIX_CONFIG",
    "HOTFIX_DATABASE_URL",
    "HOTFIX_DATA_DIR",
    "HOTFIX_REPLICA",
    "HOTFIX_NOW",
    "HOTFIX_USER",
    "HOTFIX_GITHUB_WEBHOOK_SECRET",
    "SLACK_SIGNING_SECRET",
    "SLACK_BOT_TOKEN",
    "HOTFIX_SLACK_WEBHOOK_URL",
    "HOTFIX_WEBHOOK_URL",
    "HOTFIX_WEBHOOK_SECRET",
];

/// The team's `hotfix.toml` on the server: the rules of a team that pages on
/// its error rate and its checkout latency. Order matters (the first match
/// wins): a `severity="critical"` error-rate alert is critical, any other
/// error-rate alert high.
const CONFIG: &str = r#"[team]
tech_leads = ["lead@example.com"]
on_call = ["dev@example.com"]

[status]
title = "Acme status"
components = ["API", "Checkout"]

[[alerts.rules]]
match = { alertname = "HighErrorRate", severity = "critical" }
severity = "critical"
customer_facing = true
components = ["API"]

[[alerts.rules]]
match = { alertname = "HighErrorRate" }
severity = "high"
customer_facing = true
components = ["API"]

[[alerts.rules]]
match = { alertname = "ApiLatencyHigh" }
severity = "high"
customer_facing = true
components = ["API"]

[[alerts.rules]]
match = { alertname = "CheckoutLatencyHigh" }
severity = "high"
customer_facing = true
components = ["Checkout"]
"#;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// Status and body (JSON, or `Null` when it is not) of a request that must
/// reach the server.
fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value), ureq::Error> {
    let a = agent();
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut r = match (method, body) {
        ("GET", _) => {
            let mut req = a.get(url);
            if let Some(h) = &auth {
                req = req.header("Authorization", h);
            }
            req.call()?
        }
        (_, b) => {
            let mut req = a.post(url).header("Content-Type", "application/json");
            if let Some(h) = &auth {
                req = req.header("Authorization", h);
            }
            req.send(b.map(Value::to_string).unwrap_or_default())?
        }
    };
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// Reads a child's stderr for its whole life (a full pipe would block it),
/// keeping every line, and hands over the first line `found` picks a value
/// from.
fn drain(
    pipe: std::process::ChildStderr,
    found: impl Fn(&str) -> Option<String> + Send + 'static,
) -> (Arc<Mutex<String>>, std::sync::mpsc::Receiver<String>) {
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(v) = found(&line) {
                let _ = tx.send(v);
            }
        }
    });
    (log, rx)
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

// ------------------------------------------------------------ hotfix serve

/// `hotfix serve` as a child process, killed on drop.
struct Server {
    child: Option<Child>,
    base: String,
    stderr: Arc<Mutex<String>>,
    config: PathBuf,
    data: PathBuf,
}

impl Server {
    /// Starts `hotfix serve --listen LISTEN` with `config`, its SQLite store
    /// and files in `data`.
    fn start(config: &Path, data: &Path, listen: &str) -> Server {
        std::fs::create_dir_all(data).unwrap();
        let mut cmd = Command::new(bin());
        cmd.args(["serve", "--listen", listen, "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .current_dir(data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for k in SCRUB {
            cmd.env_remove(k);
        }
        let mut child = cmd.spawn().unwrap();
        let (stderr, rx) = drain(child.stderr.take().unwrap(), |line| {
            line.split("listening on ")
                .nth(1)
                .map(|rest| rest.trim().to_string())
        });
        let Ok(base) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "hotfix serve did not say where it listens:\n{}",
                stderr.lock().unwrap()
            );
        };
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        Server {
            child: Some(child),
            base,
            stderr,
            config: config.to_path_buf(),
            data: data.to_path_buf(),
        }
    }

    /// `127.0.0.1:PORT`, where it listens.
    fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    /// A new token for `user` with `role`, made with `hotfix serve token create`.
    fn token(&self, user: &str, role: &str) -> String {
        let mut cmd = Command::new(bin());
        cmd.args(["serve", "token", "create", "--user", user, "--role", role])
            .arg("--data-dir")
            .arg(&self.data)
            .current_dir(&self.data)
            .stdin(Stdio::null());
        for k in SCRUB {
            cmd.env_remove(k);
        }
        let out = cmd.output().unwrap();
        let t = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success() && t.starts_with("hf_"),
            "token create --role {role}: {}{}",
            t,
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, and waits for the exit (a clean stop: the listener is closed
    /// and the store flushed before the same port and data dir are reused).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert_eq!(status.code(), Some(0), "{}", self.stderr());
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("hotfix serve did not stop on SIGTERM:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the server's file notifier delivered.
    fn delivered(&self) -> Vec<Value> {
        std::fs::read_to_string(self.data.join("notifications.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ------------------------------------------------------------ Alertmanager

/// The installed Alertmanager: Debian's `prometheus-alertmanager`, or the
/// upstream binary's name.
fn alertmanager_bin() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["prometheus-alertmanager", "alertmanager"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// The `alertmanager.yml` the tests run: the README's snippet (the
/// receiver, `send_resolved`, `max_alerts`, the `intake` token read from
/// `token_file` as a bearer credential, `group_by`) with short timers.
fn alertmanager_yml(hotfix: &str, token_file: &Path, max_alerts: u32) -> String {
    format!(
        r#"global:
  resolve_timeout: 5m
route:
  receiver: hotfix
  group_by: ['alertname', 'service']
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: hotfix
    webhook_configs:
      - url: {hotfix}/api/v1/alerts/alertmanager
        send_resolved: true
        max_alerts: {max_alerts}
        http_config:
          authorization:
            type: Bearer
            credentials_file: {token_file}
"#,
        token_file = token_file.display()
    )
}

/// `prometheus-alertmanager` as a child process, killed on drop.
struct Alertmanager {
    child: Option<Child>,
    base: String,
    log: Arc<Mutex<String>>,
}

impl Alertmanager {
    /// Starts Alertmanager in `dir` (config and storage), on a port the
    /// kernel picks (it logs the real one), clustering off.
    fn start(exe: &Path, dir: &Path, yml: &str) -> Alertmanager {
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = dir.join("alertmanager.yml");
        std::fs::write(&config, yml).unwrap();
        let mut child = Command::new(exe)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg("--cluster.listen-address=")
            .arg("--web.listen-address=127.0.0.1:0")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `msg="Listening on" address=127.0.0.1:40641`
        let (log, rx) = drain(child.stderr.take().unwrap(), |line| {
            if !line.contains("Listening on") {
                return None;
            }
            line.split("address=")
                .nth(1)
                .and_then(|a| a.split_whitespace().next())
                .filter(|a| a.starts_with("127.0.0.1:") && !a.ends_with(":0"))
                .map(String::from)
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "Alertmanager did not say where it listens:\n{}",
                log.lock().unwrap()
            );
        };
        let am = Alertmanager {
            child: Some(child),
            base: format!("http://{addr}"),
            log,
        };
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok((200, _)) = call("GET", &format!("{}/-/ready", am.base), None, None) {
                return am;
            }
            assert!(
                Instant::now() < deadline,
                "Alertmanager is not ready:\n{}",
                am.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `POST /api/v2/alerts`, as Prometheus sends them.
    fn post(&self, alerts: Vec<Value>) {
        let (status, v) = call(
            "POST",
            &format!("{}/api/v2/alerts", self.base),
            None,
            Some(&Value::Array(alerts)),
        )
        .unwrap();
        assert_eq!(status, 200, "Alertmanager refused the alerts: {v}");
    }

    fn fire(&self, alerts: &[&TestAlert]) {
        self.post(alerts.iter().map(|a| a.firing()).collect());
    }

    fn resolve(&self, alerts: &[&TestAlert]) {
        self.post(alerts.iter().map(|a| a.resolved()).collect());
    }

    /// The sum of a counter of Alertmanager's `/metrics` over the series
    /// whose labels contain `labels` (e.g. `integration="webhook"`).
    fn counter(&self, name: &str, labels: &str) -> f64 {
        let (_, v) = call("GET", &format!("{}/metrics", self.base), None, None).unwrap();
        v.as_str()
            .unwrap_or("")
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One alert as Prometheus would send it: fixed labels, a summary, and the
/// time it started firing (sent again with the resolve, as Prometheus does).
struct TestAlert {
    labels: Value,
    summary: String,
    starts_at: String,
}

impl TestAlert {
    fn new(labels: &[(&str, &str)], summary: &str) -> TestAlert {
        TestAlert {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
            summary: summary.into(),
            starts_at: jiff::Timestamp::now().to_string(),
        }
    }

    fn firing(&self) -> Value {
        json!({
            "labels": self.labels,
            "annotations": {"summary": self.summary},
            "startsAt": self.starts_at,
            "generatorURL": "http://prometheus.example.com/graph?g0.expr=up",
        })
    }

    /// The same alert with `endsAt` now: Alertmanager marks it resolved.
    fn resolved(&self) -> Value {
        let mut v = self.firing();
        v["endsAt"] = json!(jiff::Timestamp::now().to_string());
        v
    }

    /// Fires again later: a new `startsAt` (a new activity range).
    fn refire(&mut self) {
        self.starts_at = jiff::Timestamp::now().to_string();
    }
}

// ------------------------------------------------------- the whole chain

/// Alertmanager → hotfix serve, with a developer and a tech lead token.
struct Chain {
    // Field order is drop order: Alertmanager stops before hotfix.
    am: Alertmanager,
    srv: Server,
    dev: String,
    lead: String,
    am_token: String,
    /// Holds the config, the store and Alertmanager's files; removed last.
    _tmp: tempfile::TempDir,
}

impl Chain {
    /// None (skipped) when Alertmanager is not installed.
    fn start() -> Option<Chain> {
        Chain::start_with(100)
    }

    fn start_with(max_alerts: u32) -> Option<Chain> {
        let Some(exe) = alertmanager_bin() else {
            hotfix_testkit::skip(
                "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager): the real-Alertmanager tests are skipped",
            );
            return None;
        };
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("hotfix.toml");
        std::fs::write(&config, CONFIG).unwrap();
        let srv = Server::start(&config, &tmp.path().join("server"), "127.0.0.1:0");
        let dev = srv.token(DEV, "developer");
        let lead = srv.token(LEAD, "tech_lead");
        let am_token = srv.token("alertmanager@example.com", INTAKE_ROLE);
        let am_dir = tmp.path().join("am");
        std::fs::create_dir_all(&am_dir).unwrap();
        let token_file = am_dir.join("hotfix-token");
        std::fs::write(&token_file, format!("{am_token}\n")).unwrap();
        let am = Alertmanager::start(
            &exe,
            &am_dir,
            &alertmanager_yml(&srv.base, &token_file, max_alerts),
        );
        Some(Chain {
            am,
            srv,
            dev,
            lead,
            am_token,
            _tmp: tmp,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.srv.base)
    }

    fn get(&self, path: &str, token: &str) -> Value {
        let (status, v) = call("GET", &self.url(path), Some(token), None).unwrap();
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        call("POST", &self.url(path), Some(token), Some(body)).unwrap()
    }

    /// Every incident, newest first.
    fn incidents(&self) -> Vec<Value> {
        self.get("/api/v1/incidents?state=all", &self.dev)["incidents"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn detail(&self, id: &str) -> Value {
        self.get(&format!("/api/v1/incidents/{id}"), &self.dev)
    }

    fn events(&self, id: &str) -> Vec<Value> {
        self.get(&format!("/api/v1/incidents/{id}/events"), &self.dev)["events"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn inbox(&self) -> Vec<Value> {
        self.get("/api/v1/inbox", &self.dev)["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// `POST /api/v1/incidents/{id}/triage` as `token`'s user.
    fn triage(&self, id: &str, token: &str, body: Value) -> (u16, Value) {
        self.post(&format!("/api/v1/incidents/{id}/triage"), token, &body)
    }

    /// The tech lead's triage decision, which must be taken.
    fn triage_ok(&self, id: &str, body: Value) -> Value {
        let (status, v) = self.triage(id, &self.lead, body.clone());
        assert_eq!(status, 200, "triage {id} {body}: {v}");
        v
    }

    /// Appends `events` through the generic route as the developer.
    fn append(&self, id: &str, events: Value) {
        let (status, v) = self.post(
            &format!("/api/v1/incidents/{id}/events"),
            &self.dev,
            &json!({ "events": events }),
        );
        assert_eq!(status, 200, "append to {id}: {v}");
    }

    /// The real CLI in remote mode as `token`'s user, in a git repository
    /// with the team's `hotfix.toml` (the CLI runs in one; the incident log
    /// is the server's).
    fn cli(&self, token: &str, args: &[&str]) -> common::Run {
        let dir = self._tmp.path().join("cli");
        let env = |cmd: &mut Command| {
            for k in SCRUB {
                cmd.env_remove(k);
            }
            cmd.current_dir(&dir)
                .stdin(Stdio::null())
                .env("HOME", &dir)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", dir.join("gitconfig"));
        };
        if !dir.join(".git").exists() {
            std::fs::create_dir_all(&dir).unwrap();
            let mut git = Command::new("git");
            git.args(["init", "--quiet"]);
            env(&mut git);
            assert!(git.status().unwrap().success(), "git init");
            std::fs::write(dir.join("hotfix.toml"), CONFIG).unwrap();
        }
        let mut cmd = Command::new(bin());
        cmd.args(args);
        env(&mut cmd);
        cmd.env("HOTFIX_SERVER", &self.srv.base)
            .env("HOTFIX_TOKEN", token);
        common::Run::from(cmd.output().unwrap())
    }

    /// The public status page's JSON (no sign-in).
    fn status_json(&self) -> Value {
        let (status, v) = call("GET", &self.url("/status.json"), None, None).unwrap();
        assert_eq!(status, 200, "{v}");
        v
    }

    /// What the chain looks like, for a failure message.
    fn dump(&self) -> String {
        let incidents = call(
            "GET",
            &self.url("/api/v1/incidents?state=all"),
            Some(&self.dev),
            None,
        )
        .map(|(_, v)| v)
        .unwrap_or(Value::Null);
        let inbox = call("GET", &self.url("/api/v1/inbox"), Some(&self.dev), None)
            .map(|(_, v)| v)
            .unwrap_or(Value::Null);
        format!(
            "incidents: {incidents:#}\ninbox: {inbox:#}\n--- hotfix serve:\n{}\n--- alertmanager:\n{}",
            tail(&self.srv.stderr(), 40),
            tail(&self.am.log(), 20)
        )
    }

    /// Polls `f` until it gives a value, or fails with `what` and the dump.
    fn wait<T>(&self, what: &str, mut f: impl FnMut(&Chain) -> Option<T>) -> T {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for: {what}\n{}", self.dump());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The incident whose title is `title`, once there is one.
    fn wait_incident(&self, title: &str) -> Value {
        self.wait(&format!("an incident titled {title:?}"), |c| {
            c.incidents().into_iter().find(|i| i["title"] == title)
        })
    }

    /// The summary of `id` once it is in `phase`.
    fn wait_phase(&self, id: &str, phase: &str) -> Value {
        self.wait(&format!("{id} in phase {phase}"), |c| {
            let d = c.detail(id);
            (d["incident"]["phase"] == phase).then(|| d["incident"].clone())
        })
    }

    /// The events of `id` once one matches `pred`.
    fn wait_event(&self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.wait(&format!("{what} on {id}"), |c| {
            let ev = c.events(id);
            ev.iter().any(&pred).then_some(ev)
        })
    }

    /// Waits until Alertmanager has no notification left to make: every
    /// inbox item hotfix holds is processed and nothing new came for two
    /// group intervals. Used before asserting that something did NOT happen.
    fn settle(&self) {
        let mut last = (usize::MAX, Instant::now());
        self.wait("the inbox to settle", |c| {
            let items = c.inbox();
            let pending = items.iter().any(|i| i["outcome"].is_null());
            if pending || items.len() != last.0 {
                last = (items.len(), Instant::now());
                return None;
            }
            (last.1.elapsed() >= Duration::from_millis(4500)).then_some(())
        });
    }
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("").to_string())
        .collect()
}

fn id_of(incident: &Value) -> String {
    incident["id"].as_str().unwrap().to_string()
}

/// An `alert_received` event with this status.
fn alert_event(status: &str) -> impl Fn(&Value) -> bool + '_ {
    move |e| e["type"] == "alert_received" && e["status"] == status
}

// ---------------------------------------------------------------- the tests

#[test]
fn a_firing_alert_opens_an_incident_in_triage_that_a_tech_lead_confirms() {
    let Some(c) = Chain::start() else { return };
    let a = TestAlert::new(
        &[
            ("alertname", "HighErrorRate"),
            ("service", "api"),
            ("severity", "critical"),
        ],
        "Error rate above 5% on api",
    );
    c.am.fire(&[&a]);

    let inc = c.wait_incident("Error rate above 5% on api");
    let id = id_of(&inc);
    assert_eq!(inc["phase"], "triage", "{inc}");
    assert_eq!(inc["severity"], "critical", "{inc}");
    assert_eq!(inc["customer_facing"], true, "{inc}");
    let ev = c.events(&id);
    let first = ev
        .iter()
        .find(|e| e["type"] == "alert_received")
        .expect("the alert is on the incident");
    // The key is Alertmanager's groupKey, which `group_by` makes.
    assert_eq!(
        first["key"], "{}:{alertname=\"HighErrorRate\", service=\"api\"}",
        "{first}"
    );
    // The inbox says which delivery declared it, and what it was (its
    // outcome is recorded just after the declaration: wait for it).
    let item = c.wait("the inbox item that declared it", |c| {
        c.inbox().into_iter().find(|i| {
            i["outcome"]
                .as_str()
                .is_some_and(|o| o.contains(&format!("declared {id}")))
        })
    });
    assert_eq!(item["source"], "alertmanager", "{item}");
    assert_eq!(item["key"], first["key"], "{item}");
    assert_eq!(item["alertname"], "HighErrorRate", "{item}");
    assert_eq!(item["status"], "firing", "{item}");

    // A developer cannot confirm; nothing is recorded.
    let (status, v) = c.triage(&id, &c.dev, json!({"action": "confirm"}));
    assert_eq!(status, 403, "{v}");
    // Alertmanager's own credential cannot either.
    let (status, v) = c.triage(&id, &c.am_token, json!({"action": "confirm"}));
    assert_eq!(status, 403, "{v}");
    // Nor read the incidents, nor append a step.
    let (status, v) = call("GET", &c.url("/api/v1/incidents"), Some(&c.am_token), None).unwrap();
    assert_eq!(status, 403, "{v}");
    let (status, v) = c.post(
        &format!("/api/v1/incidents/{id}/events"),
        &c.am_token,
        &json!({"events": [{"type": "note", "text": "hello"}]}),
    );
    assert_eq!(status, 403, "{v}");
    assert!(
        !types(&c.events(&id))
            .iter()
            .any(|t| t == "confirmed" || t == "note")
    );

    c.triage_ok(
        &id,
        json!({"action": "confirm", "public_text": "Some API requests fail"}),
    );
    let inc = c.wait_phase(&id, "reported");
    assert_eq!(inc["severity"], "critical");
    let ev = c.events(&id);
    let confirmed = ev.iter().find(|e| e["type"] == "confirmed").unwrap();
    assert_eq!(confirmed["actor"], LEAD, "{confirmed}");
    // The on-call developer is told to take it, with a command that runs
    // as printed (name and severity filled in).
    let name = inc["branch"]
        .as_str()
        .unwrap()
        .trim_start_matches("hotfix/")
        .to_string();
    let take = format!("hotfix start {name} --incident {id} --severity critical");
    c.wait("the confirmation's take command in the channel", |c| {
        c.srv
            .delivered()
            .iter()
            .any(|m| m["step"] == "confirmed" && m["text"].as_str().unwrap().contains(&take))
            .then_some(())
    });

    // Alertmanager resolves it: recorded on the incident, which stays open
    // (a quiet alert is not a verified fix).
    c.am.resolve(&[&a]);
    c.wait_event(&id, "the resolved alert", alert_event("resolved"));
    let inc = c.detail(&id)["incident"].clone();
    assert_eq!(inc["phase"], "reported", "{inc}");
    assert_eq!(c.incidents().len(), 1);
}

#[test]
fn a_declined_false_alarm_leaves_nothing_on_the_status_page() {
    let Some(c) = Chain::start() else { return };
    let title = "Checkout p99 latency above 2s";
    let a = TestAlert::new(
        &[
            ("alertname", "CheckoutLatencyHigh"),
            ("service", "checkout"),
        ],
        title,
    );
    c.am.fire(&[&a]);
    let inc = c.wait_incident(title);
    let id = id_of(&inc);
    assert_eq!(inc["phase"], "triage", "{inc}");

    let public = |c: &Chain| {
        let v = c.status_json();
        let text = v.to_string();
        (v, text)
    };
    // Unconfirmed: not published by default.
    let (v, text) = public(&c);
    assert!(
        !text.contains(&id) && !text.contains(title),
        "an unconfirmed incident is on the status page: {v:#}"
    );

    // Declined from the CLI, in remote mode.
    let r = c.cli(
        &c.lead,
        &["triage", &id, "decline", "--reason", "false_alarm"],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let inc = c.wait_phase(&id, "declined");
    assert_eq!(inc["closed"], true, "{inc}");
    let t = types(&c.events(&id));
    assert!(t.ends_with(&["declined".into(), "closed".into()]), "{t:?}");

    // Alertmanager resolves it afterwards; that changes nothing either.
    c.am.resolve(&[&a]);
    c.settle();
    let (v, text) = public(&c);
    assert!(
        !text.contains(&id) && !text.contains(title),
        "a declined false alarm is on the status page: {v:#}"
    );
    assert_eq!(v["overall"], "operational", "{v:#}");
    assert!(
        !text.contains("major_outage")
            && !text.contains("partial_outage")
            && !text.contains("degraded"),
        "{v:#}"
    );
    let checkout = v["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "Checkout")
        .cloned()
        .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(checkout["status"], "operational", "{v:#}");
    // Still the one incident, still declined.
    assert_eq!(c.incidents().len(), 1, "{}", c.dump());
    assert_eq!(c.detail(&id)["incident"]["phase"], "declined");
}

#[test]
fn a_duplicate_merged_into_another_incident_takes_its_later_alerts() {
    let Some(c) = Chain::start() else { return };
    let errors = TestAlert::new(
        &[
            ("alertname", "HighErrorRate"),
            ("service", "api"),
            ("severity", "critical"),
        ],
        "Error rate above 5% on api",
    );
    let mut latency = TestAlert::new(
        &[("alertname", "ApiLatencyHigh"), ("service", "api")],
        "API p99 latency above 1s",
    );
    // Two groups (different alertname): two incidents for one problem.
    c.am.fire(&[&errors, &latency]);
    let target = id_of(&c.wait_incident("Error rate above 5% on api"));
    let dup = id_of(&c.wait_incident("API p99 latency above 1s"));
    assert_ne!(target, dup);

    c.triage_ok(&dup, json!({"action": "merge", "into": target}));
    let d = c.wait_phase(&dup, "declined");
    assert_eq!(d["closed"], true, "{d}");
    let t = types(&c.events(&dup));
    assert!(
        t.ends_with(&["merged_into".into(), "closed".into()]),
        "{t:?}"
    );
    c.wait_event(&target, "absorbed", |e| {
        e["type"] == "absorbed" && e["from"] == dup.as_str()
    });
    let dup_events = c.events(&dup).len();

    // The merged group resolves: the resolve lands on the target.
    let latency_key = "{}:{alertname=\"ApiLatencyHigh\", service=\"api\"}";
    c.am.resolve(&[&latency]);
    c.wait_event(&target, "the merged group's resolve", |e| {
        alert_event("resolved")(e) && e["key"] == latency_key
    });
    // And it fires again: still the target's, no third incident.
    latency.refire();
    c.am.fire(&[&latency]);
    let ev = c.wait_event(&target, "the merged group firing again", |e| {
        alert_event("firing")(e) && e["key"] == latency_key
    });
    assert!(
        ev.iter()
            .filter(|e| alert_event("firing")(e) && e["key"] == latency_key)
            .count()
            >= 1
    );
    c.settle();
    assert_eq!(c.incidents().len(), 2, "{}", c.dump());
    assert_eq!(
        c.events(&dup).len(),
        dup_events,
        "the merged incident got nothing after the merge"
    );
    assert_eq!(c.detail(&target)["incident"]["closed"], false);
}

#[test]
fn a_more_severe_alert_joining_the_group_escalates_the_incident() {
    let Some(c) = Chain::start() else { return };
    let warn = TestAlert::new(
        &[
            ("alertname", "HighErrorRate"),
            ("service", "api"),
            ("severity", "warning"),
            ("instance", "api-1"),
        ],
        "Error rate above 1% on api-1",
    );
    c.am.fire(&[&warn]);
    let inc = c.wait_incident("Error rate above 1% on api-1");
    let id = id_of(&inc);
    assert_eq!(inc["severity"], "high", "{inc}");

    // Same alertname and service: the same Alertmanager group, now with a
    // critical alert in it.
    let crit = TestAlert::new(
        &[
            ("alertname", "HighErrorRate"),
            ("service", "api"),
            ("severity", "critical"),
            ("instance", "api-2"),
        ],
        "Error rate above 5% on api-2",
    );
    c.am.fire(&[&crit]);
    let ev = c.wait_event(&id, "escalated", |e| e["type"] == "escalated");
    let esc = ev.iter().find(|e| e["type"] == "escalated").unwrap();
    assert_eq!(esc["from"], "high", "{esc}");
    assert_eq!(esc["to"], "critical", "{esc}");
    assert_eq!(c.detail(&id)["incident"]["severity"], "critical");
    // Paged again.
    c.wait("the escalation in the channel", |c| {
        c.srv
            .delivered()
            .iter()
            .any(|m| m["step"] == "escalated" && m["incident"] == id.as_str())
            .then_some(())
    });
    c.settle();
    assert_eq!(c.incidents().len(), 1, "{}", c.dump());
    let n = types(&c.events(&id))
        .iter()
        .filter(|t| *t == "escalated")
        .count();
    assert_eq!(n, 1, "escalated once");
}

#[test]
fn the_reporting_alert_resolving_after_the_deploy_is_the_fix_verified_evidence() {
    let Some(c) = Chain::start() else { return };
    let a = TestAlert::new(
        &[
            ("alertname", "HighErrorRate"),
            ("service", "api"),
            ("severity", "critical"),
        ],
        "Error rate above 5% on api",
    );
    c.am.fire(&[&a]);
    let id = id_of(&c.wait_incident("Error rate above 5% on api"));
    c.triage_ok(&id, json!({"action": "confirm"}));
    let inc = c.wait_phase(&id, "reported");
    let name = inc["branch"]
        .as_str()
        .unwrap()
        .trim_start_matches("hotfix/")
        .to_string();

    // The on-call developer takes it and fixes it, as the CLI records it
    // (`hotfix start NAME --incident`, push, preview, smoke).
    let (a40, b40, c40) = ("a".repeat(40), "b".repeat(40), "c".repeat(40));
    c.append(
        &id,
        json!([
            {"type": "attempt_started", "attempt": inc["attempt"], "name": name, "branch": format!("hotfix/{name}"), "base_sha": a40, "severity": "critical"},
            {"type": "pushed", "sha": b40, "commits": [{"sha": b40, "author_email": DEV, "committer_email": DEV, "subject": "fix"}], "diff": {"files": ["api.rs"], "lines_added": 3, "lines_removed": 1}},
            {"type": "pr_opened", "number": 7, "url": "https://github.com/acme/app/pull/7"},
            {"type": "preview_deployed", "sha": b40, "url": "http://127.0.0.1:1/"},
            {"type": "smoke_passed", "sha": b40, "checks": []},
        ]),
    );
    let (status, v) = c.post(
        &format!("/api/v1/incidents/{id}/approve"),
        &c.lead,
        &json!({}),
    );
    assert_eq!(status, 200, "approve: {v}");
    c.append(
        &id,
        json!([
            {"type": "merged", "merge_sha": c40, "head_sha": b40, "previous_main": a40},
            {"type": "deployed", "sha": c40, "environment": "production"},
            {"type": "health_passed", "sha": c40, "probes": 3},
        ]),
    );
    let fix_verified = |c: &Chain| {
        c.detail(&id)["checklist"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["key"] == "fix_verified")
            .cloned()
            .unwrap()
    };
    // Issue 12: an incident an alert opened is verified once that alert
    // resolves after the deploy; until then the item says what it waits for.
    let before = fix_verified(&c);
    assert_eq!(
        before["done"], false,
        "verified before the alert resolved: {before}"
    );
    assert!(
        before["evidence"].as_str().is_some_and(
            |e| e.contains("health watch passed") && e.contains("waiting for the alert")
        ),
        "{before}"
    );

    // Alertmanager resolves the alert that reported it: the evidence.
    c.am.resolve(&[&a]);
    c.wait_event(&id, "the resolved alert", alert_event("resolved"));
    let item = fix_verified(&c);
    let evidence = item["evidence"].as_str().unwrap_or_else(|| {
        panic!(
            "fix_verified has no evidence after the resolve: {item}\n{}",
            c.dump()
        )
    });
    assert!(
        evidence.contains("alertmanager") && evidence.contains("after the deploy"),
        "{evidence}"
    );
    assert_eq!(item["done"], true, "{item}");
}

#[test]
fn an_alert_sent_while_hotfix_is_down_declares_one_incident_after_the_restart() {
    let Some(mut c) = Chain::start() else { return };
    let addr = c.srv.addr();
    c.srv.stop();

    let a = TestAlert::new(
        &[
            ("alertname", "HighErrorRate"),
            ("service", "api"),
            ("severity", "critical"),
        ],
        "Error rate above 5% on api",
    );
    c.am.fire(&[&a]);
    // Alertmanager tried, failed, and keeps retrying.
    let deadline = Instant::now() + DEADLINE;
    while c.am.counter(
        "alertmanager_notifications_failed_total",
        "integration=\"webhook\"",
    ) < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "Alertmanager never failed a delivery:\n{}",
            c.am.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // hotfix is back on the same port, with the same store.
    c.srv = Server::start(&c.srv.config.clone(), &c.srv.data.clone(), &addr);
    let inc = c.wait_incident("Error rate above 5% on api");
    let id = id_of(&inc);
    assert_eq!(inc["phase"], "triage", "{inc}");
    // Whatever Alertmanager retried, it is one incident with one firing.
    c.settle();
    assert_eq!(c.incidents().len(), 1, "{}", c.dump());
    let firing = c
        .events(&id)
        .iter()
        .filter(|e| alert_event("firing")(e))
        .count();
    assert_eq!(firing, 1, "{}", c.dump());

    // And the chain works on: the resolve lands on it.
    c.am.resolve(&[&a]);
    c.wait_event(&id, "the resolved alert", alert_event("resolved"));
    assert_eq!(c.incidents().len(), 1, "{}", c.dump());
}

#[test]
fn a_group_cut_by_max_alerts_declares_one_incident_and_counts_every_alert() {
    // Alertmanager sends at most two alerts of a group and says how many
    // it left out (`truncatedAlerts`).
    let Some(c) = Chain::start_with(2) else {
        return;
    };
    let pods: Vec<TestAlert> = (1..=5)
        .map(|n| {
            TestAlert::new(
                &[
                    ("alertname", "HighErrorRate"),
                    ("service", "api"),
                    ("severity", "critical"),
                    ("instance", &format!("api-{n}")),
                ],
                "Error rate above 5% on api",
            )
        })
        .collect();
    c.am.fire(&pods.iter().collect::<Vec<_>>());
    let inc = c.wait("the group's incident", |c| c.incidents().into_iter().next());
    assert!(
        inc["title"]
            .as_str()
            .unwrap()
            .starts_with("Error rate above 5% on api"),
        "{inc}"
    );
    let id = id_of(&inc);
    let item = c.wait("the inbox item of the group", |c| {
        c.inbox().into_iter().find(|i| {
            i["outcome"]
                .as_str()
                .is_some_and(|o| o.contains(&format!("declared {id}")))
        })
    });
    assert_eq!(item["alerts"], 5, "all five alerts counted: {item}");
    c.am.resolve(&pods.iter().collect::<Vec<_>>());
    c.wait_event(&id, "the resolved group", alert_event("resolved"));
    assert_eq!(c.incidents().len(), 1, "{}", c.dump());
}
