//! Remote mode and `hotfix serve`, end to end with the real binary: the
//! server runs as a child process (`hotfix serve --listen 127.0.0.1:0`, its
//! port read from stderr) over a real SQLite file (or the real PostgreSQL),
//! tokens are made with `hotfix serve token create`, and the CLI drives a
//! whole hotfix in a real git repository with `HOTFIX_SERVER`/`HOTFIX_TOKEN`.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn hermetic(args: &[&str], dir: &Path) -> Command {
    let mut c = Command::new(bin());
    hotfix_testkit::hermetic(&mut c)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null());
    c
}

/// `hotfix serve` as a child process.
struct Server {
    child: Option<Child>,
    base: String,
    /// Everything the server printed on stderr so far.
    stderr: Arc<Mutex<String>>,
    /// `--data-dir` (and `--database-url`) for `serve token ...`.
    store_args: Vec<String>,
    data: PathBuf,
}

impl Server {
    /// `hotfix serve` with the world's `hotfix.toml`, its files and SQLite
    /// store in the world's `server` directory (the same one each time).
    fn for_world(w: &World) -> Server {
        Server::start(
            &w.repo.work.join("hotfix.toml"),
            &w.repo.dir().join("server"),
        )
    }

    /// Starts `hotfix serve` with `config`, its files and SQLite store in `data`.
    fn start(config: &Path, data: &Path) -> Server {
        Server::start_with(config, data, vec![])
    }

    /// `store_args` (e.g. `--database-url URL`) go to `serve` and `serve token`.
    fn start_with(config: &Path, data: &Path, store_args: Vec<String>) -> Server {
        std::fs::create_dir_all(data).unwrap();
        let mut store_args = store_args;
        store_args.extend(["--data-dir".to_string(), data.display().to_string()]);
        let mut args = vec![
            "serve".to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--config".into(),
            config.display().to_string(),
        ];
        args.extend(store_args.iter().cloned());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = hermetic(&argv, data);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        // Drained for the whole life of the server: a full pipe would block it.
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.trim().to_string());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "hotfix serve did not say where it listens:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        assert!(!base.ends_with(":0"), "the real port is printed: {base}");
        Server {
            child: Some(child),
            base,
            stderr,
            store_args,
            data: data.to_path_buf(),
        }
    }

    /// `hotfix serve token ARGS` on this server's store.
    fn token_cmd(&self, args: &[&str]) -> Run {
        let mut all: Vec<&str> = vec!["serve", "token"];
        all.extend_from_slice(args);
        all.extend(self.store_args.iter().map(String::as_str));
        Run::from(hermetic(&all, &self.data).output().unwrap())
    }

    /// A new token for `user` with `role`: stdout is the token and nothing else.
    fn token(&self, user: &str, role: &str) -> String {
        let r = self
            .token_cmd(&["create", "--user", user, "--role", role])
            .ok();
        let t = r.stdout.trim_end_matches('\n');
        assert!(
            t.starts_with("hf_")
                && t.len() == 67
                && !t.contains('\n')
                && t[3..].chars().all(|c| c.is_ascii_hexdigit()),
            "stdout is only the token: {:?}",
            r.stdout
        );
        assert!(!r.stderr.contains(t), "the token is printed once");
        t.to_string()
    }

    fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut r = agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn events(&self, id: &str, token: &str) -> Vec<Value> {
        let (status, v) = self.get(&format!("/api/v1/incidents/{id}/events"), token);
        assert_eq!(status, 200, "{v}");
        v["events"].as_array().unwrap().clone()
    }

    /// What the server's file notifier delivered.
    fn delivered(&self) -> Vec<Value> {
        std::fs::read_to_string(self.data.join("notifications.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, and the exit code.
    fn stop(&mut self) -> i32 {
        let mut child = self.child.take().unwrap();
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("hotfix serve did not stop on SIGTERM:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for: {what}");
}

/// Runs the CLI in the world's work tree against `server` with `token`.
fn remote(w: &World, server: &str, who: &str, token: &str, args: &[&str]) -> Run {
    w.hf_env(
        who,
        args,
        &[("HOTFIX_SERVER", server), ("HOTFIX_TOKEN", token)],
    )
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

fn local_db(w: &World) -> PathBuf {
    w.repo.work.join(".git/hotfix/hotfix.db")
}

#[test]
fn a_whole_hotfix_in_remote_mode_lives_on_the_server() {
    let w = World::new();
    let mut srv = Server::for_world(&w);
    let dev = srv.token(DEV, "developer");
    let lead = srv.token(LEAD, "tech_lead");
    // Right person, wrong token: a tech lead's approval needs a tech_lead token.
    let lead_dev = srv.token(LEAD, "developer");
    let s = srv.base.clone();

    let r = remote(
        &w,
        &s,
        DEV,
        &dev,
        &[
            "start",
            "pdf-crash",
            "--severity",
            "critical",
            "--title",
            "PDF export crashes",
        ],
    )
    .ok();
    assert!(
        r.stdout.contains("HF-1 started: hotfix/pdf-crash"),
        "{}",
        r.all()
    );
    // The git work is local: the branch is cut in this work tree.
    assert_eq!(
        w.repo.git(&["branch", "--show-current"]),
        "hotfix/pdf-crash"
    );
    w.repo.write("app/pdf", "pdf ok\n");
    let fix = w.repo.commit_as(DEV, "Fix PDF export crash");
    let r = remote(&w, &s, DEV, &dev, &["push"]).ok();
    assert_eq!(w.origin_sha("hotfix/pdf-crash"), fix);
    // The next step names who approves; their token says who acts (no --as).
    assert!(
        r.stdout.contains(
            "next: needs 1 tech lead approval: ask a tech lead (lead@example.com or lead2@example.com) to approve it: they run `hotfix approve HF-1`"
        ),
        "{}",
        r.all()
    );

    // The server refuses, and says why; nothing is recorded.
    remote(&w, &s, LEAD, &lead_dev, &["approve", "HF-1"])
        .fails(1, "a tech lead's approval needs a tech_lead token");
    assert!(!types(&srv.events("HF-1", &dev)).contains(&"approved".to_string()));
    // In remote mode the token says who you are.
    remote(&w, &s, LEAD, &lead, &["--as", REV, "approve", "HF-1"])
        .fails(2, "in remote mode you act as lead@example.com (your token)");
    remote(&w, &s, LEAD, &lead, &["approve", "HF-1"]).ok();

    let r = remote(&w, &s, DEV, &dev, &["ship"]).ok();
    assert!(r.stdout.contains("shipped"), "{}", r.all());
    assert_eq!(w.prod_sha(), w.origin_sha("main"));
    remote(&w, &s, DEV, &dev, &["backport"]).ok();
    let r = remote(&w, &s, DEV, &dev, &["postmortem"]).ok();
    assert!(r.stdout.contains("postmortems/HF-1.md"), "{}", r.all());
    remote(
        &w,
        &s,
        DEV,
        &dev,
        &[
            "checklist",
            "--done",
            "incident_log",
            "monitoring_reviewed",
            "docs_updated",
            "team_notified",
        ],
    )
    .ok();
    // Closing is for tech leads: the developer is told who closes it, and
    // the server says so to a developer token.
    let st = remote(&w, &s, DEV, &dev, &["status", "HF-1"]).ok();
    assert!(
        st.stdout.contains(
            "next: ask a tech lead (lead@example.com or lead2@example.com) to close it: they run `hotfix close HF-1`"
        ),
        "{}",
        st.all()
    );
    remote(&w, &s, DEV, &dev, &["close", "HF-1"])
        .fails(1, "closing an incident needs a tech_lead token");
    remote(&w, &s, LEAD, &lead, &["close", "HF-1"]).ok();

    let st = remote(&w, &s, DEV, &dev, &["status", "HF-1", "--json"]).ok();
    let v: Value = serde_json::from_str(&st.stdout).unwrap();
    assert_eq!(v["state"], "closed");
    let log = remote(&w, &s, DEV, &dev, &["log", "--json"]).ok();
    let log: Value = serde_json::from_str(&log.stdout).unwrap();
    assert_eq!(log.as_array().unwrap().len(), 1);

    // Every step is on the server, attributed to the token's user.
    let events = srv.events("HF-1", &dev);
    let t = types(&events);
    for step in [
        "declared",
        "pushed",
        "pr_opened",
        "preview_deployed",
        "smoke_passed",
        "approved",
        "merged",
        "deployed",
        "health_passed",
        "backported",
        "postmortem_scheduled",
        "checklist_done",
        "closed",
    ] {
        assert!(t.contains(&step.to_string()), "{step} missing in {t:?}");
    }
    let by = |ty: &str| {
        events
            .iter()
            .find(|e| e["type"] == ty)
            .map(|e| e["actor"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(by("declared"), DEV);
    assert_eq!(by("approved"), LEAD);
    assert_eq!(by("closed"), LEAD);

    // Nothing of the incident is kept locally: no local log, no local notifications.
    assert!(!local_db(&w).exists(), "a local incident log was created");
    assert!(!w.repo.work.join(".git/hotfix/notifications.jsonl").exists());
    // The server notified, once per step.
    wait_for("the server's notifications", || {
        srv.delivered().iter().any(|m| m["step"] == "closed")
    });
    let steps: Vec<String> = srv
        .delivered()
        .iter()
        .map(|m| m["step"].as_str().unwrap().to_string())
        .collect();
    for step in ["declared", "approved", "merged", "backported", "closed"] {
        assert_eq!(
            steps.iter().filter(|s| *s == step).count(),
            1,
            "{step} in {steps:?}"
        );
    }

    assert_eq!(srv.stop(), 0, "a clean stop on SIGTERM");
    let err = srv.stderr();
    assert!(err.contains("stopped"), "{err}");
    for tok in [&dev, &lead, &lead_dev] {
        assert!(!err.contains(tok.as_str()), "the server printed a token");
    }
}

#[test]
fn an_unreachable_server_fails_clearly_and_loses_nothing() {
    let w = World::new();
    let mut srv = Server::for_world(&w);
    let dev = srv.token(DEV, "developer");
    remote(
        &w,
        &srv.base,
        DEV,
        &dev,
        &["start", "pdf-crash", "--severity", "high"],
    )
    .ok();
    w.repo.write("app/pdf", "pdf ok\n");
    let fix = w.repo.commit_as(DEV, "Fix PDF export crash");
    let gone = srv.base.clone();
    assert_eq!(srv.stop(), 0);

    let r = remote(&w, &gone, DEV, &dev, &["push"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains(&format!("cannot reach the hotfix server at {gone}")),
        "{}",
        r.all()
    );
    assert!(!r.all().contains(&dev), "the token is never shown");
    // Nothing happened locally or on the remote, and nothing was lost.
    assert_eq!(w.repo.git(&["rev-parse", "HEAD"]), fix);
    assert!(
        !w.repo
            .git_ok(&["ls-remote", "--exit-code", "origin", "hotfix/pdf-crash"])
    );
    assert!(!local_db(&w).exists());

    // The server is back (new port, same store): the same command completes.
    let srv = Server::for_world(&w);
    remote(&w, &srv.base, DEV, &dev, &["push"]).ok();
    assert_eq!(w.origin_sha("hotfix/pdf-crash"), fix);
    assert!(types(&srv.events("HF-1", &dev)).contains(&"pushed".to_string()));
}

#[test]
fn remote_mode_from_the_config_needs_a_token_and_can_be_turned_off() {
    // Port 9 (discard) on 127.0.0.1: nothing listens there.
    let w = World::with_config("\n[server]\nurl = \"http://127.0.0.1:9\"\n");
    w.hf(&["log"])
        .fails(2, "needs an API token: set HOTFIX_TOKEN");
    let r = w
        .hf_env(DEV, &["log"], &[("HOTFIX_TOKEN", "hf_whatever")])
        .fails(1, "cannot reach the hotfix server at http://127.0.0.1:9");
    assert!(!r.all().contains("hf_whatever"));
    w.hf_env(
        DEV,
        &["log"],
        &[("HOTFIX_SERVER", "ftp://x"), ("HOTFIX_TOKEN", "hf_x")],
    )
    .fails(2, "is not a hotfix server URL");
    // Something else answers there (the world's production web server).
    w.hf_env(
        DEV,
        &["log"],
        &[("HOTFIX_SERVER", &w.prod.url()), ("HOTFIX_TOKEN", "hf_x")],
    )
    .fails(1, "does not serve the hotfix API");
    // `HOTFIX_SERVER=off` keeps the log local.
    w.hf_env(DEV, &["log", "--json"], &[("HOTFIX_SERVER", "off")])
        .ok();
    assert!(local_db(&w).exists());
}

#[test]
fn a_revoked_or_unknown_token_is_refused_by_the_server() {
    let w = World::new();
    let srv = Server::for_world(&w);
    let dev = srv.token(DEV, "developer");
    remote(&w, &srv.base, DEV, &dev, &["log"]).ok();
    let list = srv.token_cmd(&["list"]).ok();
    assert!(
        list.stdout.contains(DEV) && list.stdout.contains("developer"),
        "{}",
        list.stdout
    );
    assert!(!list.stdout.contains(&dev), "list never shows tokens");
    let json: Value =
        serde_json::from_str(&srv.token_cmd(&["list", "--json"]).ok().stdout).unwrap();
    let id = json[0]["id"].as_i64().unwrap();
    assert_eq!(json[0]["revoked"], false);
    srv.token_cmd(&["revoke", &id.to_string()]).ok();
    srv.token_cmd(&["revoke", &id.to_string()])
        .fails(1, "no live token");
    remote(&w, &srv.base, DEV, &dev, &["log"]).fails(
        1,
        "does not accept HOTFIX_TOKEN: unknown or revoked API token",
    );
    srv.token_cmd(&["create", "--user", DEV, "--role", "boss"])
        .fails(2, "use developer, tech_lead or admin");
    srv.token_cmd(&["create", "--user", " ", "--role", "admin"])
        .fails(2, "team identity");
}

#[test]
fn serve_refuses_a_corrupt_config_and_runs_without_one() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[team\ntech_leads = 1").unwrap();
    let r = Run::from(
        hermetic(
            &[
                "serve",
                "--config",
                bad.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ],
            tmp.path(),
        )
        .output()
        .unwrap(),
    );
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("bad.toml"), "{}", r.all());
    let r = Run::from(
        hermetic(
            &[
                "serve",
                "--config",
                "missing.toml",
                "--listen",
                "127.0.0.1:0",
            ],
            tmp.path(),
        )
        .output()
        .unwrap(),
    );
    assert_eq!(r.code, 2, "an explicit config must exist: {}", r.all());

    // No repository and no hotfix.toml: defaults, with a warning; the store
    // lands in ./hotfix-data.
    let mut child = hermetic(&["serve", "--listen", "127.0.0.1:0"], tmp.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("listening on") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.contains("running with the default configuration"),
        "{seen}"
    );
    assert!(seen.contains("listening on http://127.0.0.1:"), "{seen}");
    assert!(tmp.path().join("hotfix-data/hotfix-server.db").exists());
}

#[test]
fn a_notifier_without_its_secret_keeps_its_messages_pending_and_the_others_deliver() {
    let hook =
        hotfix_testkit::fake::FakeServer::start(|_| hotfix_testkit::fake::Reply::text(200, "ok"));
    let w = World::new();
    let tmp = w.repo.dir().join("server");
    std::fs::create_dir_all(&tmp).unwrap();
    let cfg = tmp.join("server.toml");
    let mut text = std::fs::read_to_string(w.repo.work.join("hotfix.toml")).unwrap();
    text.push_str(&format!(
        "\n[notify.slack]\nchannel = \"#dev-alerts\"\n\n[notify.webhook]\nurl = \"{}/hook\"\n",
        hook.url()
    ));
    std::fs::write(&cfg, text).unwrap();
    let srv = Server::start(&cfg, &tmp.join("data"));
    assert!(
        srv.stderr()
            .contains("notifiers: console, file, slack, webhook")
            || srv
                .stderr()
                .contains("notifiers: console, file, webhook, slack"),
        "{}",
        srv.stderr()
    );
    assert!(srv.stderr().contains("SLACK_BOT_TOKEN"), "{}", srv.stderr());
    let dev = srv.token(DEV, "developer");
    remote(
        &w,
        &srv.base,
        DEV,
        &dev,
        &["start", "pdf-crash", "--severity", "critical"],
    )
    .ok();
    wait_for("the webhook delivery", || !hook.requests().is_empty());
    wait_for("the slack message failing", || {
        srv.get("/api/v1/outbox", &dev).1["undelivered"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["notifier"] == "slack" && i["attempts"].as_u64() >= Some(1))
    });
    let (_, outbox) = srv.get("/api/v1/outbox", &dev);
    let pending = outbox["undelivered"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{outbox}");
    assert_eq!(pending[0]["message"]["step"], "declared");
    assert!(
        pending[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("not configured on this server"),
        "{outbox}"
    );
    // `hotfix status` shows it, read from the server.
    let st = remote(&w, &srv.base, DEV, &dev, &["status", "HF-1", "--json"]).ok();
    let v: Value = serde_json::from_str(&st.stdout).unwrap();
    assert_eq!(v["undelivered_notifications"][0]["notifier"], "slack");
}

#[test]
fn serve_and_remote_mode_on_postgresql() {
    let Ok(base) = std::env::var("HOTFIX_TEST_DATABASE_URL") else {
        hotfix_testkit::skip("HOTFIX_TEST_DATABASE_URL is not set: PostgreSQL remote test skipped");
        return;
    };
    let schema = format!(
        "hf_remote_{}_{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond() % 1_000_000_000
    );
    let mut admin = postgres::Client::connect(&base, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .unwrap();
    struct Drop1(String, String);
    impl Drop for Drop1 {
        fn drop(&mut self) {
            if let Ok(mut c) = postgres::Client::connect(&self.0, postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.1));
            }
        }
    }
    let _drop = Drop1(base.clone(), schema.clone());
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let w = World::new();
    let data = w.repo.dir().join("server");
    let srv = Server::start_with(
        &w.repo.work.join("hotfix.toml"),
        &data,
        vec!["--database-url".into(), url.clone()],
    );
    let dev = srv.token(DEV, "developer");
    let lead = srv.token(LEAD, "tech_lead");
    remote(
        &w,
        &srv.base,
        DEV,
        &dev,
        &["start", "pdf-crash", "--severity", "critical"],
    )
    .ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.commit_as(DEV, "fix");
    remote(&w, &srv.base, DEV, &dev, &["push"]).ok();
    remote(&w, &srv.base, LEAD, &lead, &["approve", "HF-1"]).ok();
    // The events and tokens are in PostgreSQL, not in a SQLite file.
    let n: i64 = admin
        .query_one(&format!("SELECT COUNT(*) FROM {schema}.events"), &[])
        .unwrap()
        .get(0);
    assert!(n >= 5, "{n} events");
    assert!(!data.join("hotfix-server.db").exists());
    assert!(!local_db(&w).exists());
}
