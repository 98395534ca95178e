//! `hotfix serve` and `hotfix serve token` with the real binary: the
//! connection limits of `[server]` are checked when the config is read,
//! and the CLI on the server's machine may revoke the last admin token
//! (it is the way back in: it can always create one) but says so.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::bin;

fn hotfix(args: &[&str], dir: &Path) -> Output {
    hotfix_testkit::hermetic(&mut Command::new(bin()))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn serve_refuses_connection_limits_out_of_range() {
    let tmp = tempfile::tempdir().unwrap();
    for line in [
        "max_connections = 0",
        "header_read_timeout_s = 0",
        "idle_timeout_s = 100000",
    ] {
        std::fs::write(
            tmp.path().join("hotfix.toml"),
            format!("[server]\n{line}\n"),
        )
        .unwrap();
        let o = hotfix(
            &[
                "serve",
                "--config",
                "hotfix.toml",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                "data",
            ],
            tmp.path(),
        );
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{line}: {err}");
        assert!(
            err.contains(&format!("[server] {line} is out of range")),
            "{line}: {err}"
        );
    }
}

#[test]
fn the_cli_may_revoke_the_last_admin_token_and_says_how_to_get_one_back() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let create = |user: &str| {
        let o = hotfix(
            &[
                "serve",
                "token",
                "create",
                "--user",
                user,
                "--role",
                "admin",
                "--data-dir",
                "data",
            ],
            d,
        );
        assert!(o.status.success(), "{:?}", text(&o));
    };
    create("a@example.com");
    create("b@example.com");
    let revoke = |id: &str| hotfix(&["serve", "token", "revoke", id, "--data-dir", "data"], d);

    let o = revoke("1");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("revoked token 1"), "{out}");
    assert!(!err.contains("no live admin token"), "b is left: {err}");

    let o = revoke("2");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("revoked token 2"), "{out}");
    assert!(
        err.contains("no live admin token is left")
            && err.contains("hotfix serve token create --user YOU --role admin"),
        "{err}"
    );
    let (out, _) = text(&hotfix(
        &["serve", "token", "list", "--json", "--data-dir", "data"],
        d,
    ));
    assert!(out.matches("\"revoked\": true").count() == 2, "{out}");
}

/// `hotfix serve` on a free port with `env` set, its stderr piped.
fn serve_with(dir: &Path, env: &[(&str, &str)]) -> std::process::Child {
    let mut c = Command::new(bin());
    c.args(["serve", "--listen", "127.0.0.1:0", "--data-dir", "data"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for k in [
        "HOTFIX_SERVER",
        "HOTFIX_TOKEN",
        "HOTFIX_CONFIG",
        "HOTFIX_DATABASE_URL",
        "HOTFIX_DATA_DIR",
        "HOTFIX_LOG",
        "HOTFIX_LOG_FORMAT",
        "HOTFIX_GITHUB_WEBHOOK_SECRET",
        "SLACK_SIGNING_SECRET",
    ] {
        c.env_remove(k);
    }
    c.envs(env.iter().copied());
    c.spawn().unwrap()
}

/// Every line `child` writes on stderr, collected by a thread as they come.
fn collect_stderr(
    child: &mut std::process::Child,
) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    use std::io::BufRead as _;
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = lines.clone();
    let pipe = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// Waits (up to 30 s) for a line that `f` picks something out of.
fn wait_line<T>(
    lines: &std::sync::Mutex<Vec<String>>,
    what: &str,
    f: impl Fn(&str) -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(v) = lines.lock().unwrap().iter().find_map(|l| f(l)) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no line with {what}:\n{}",
            lines.lock().unwrap().join("\n")
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn stop(child: &mut std::process::Child) -> Option<i32> {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM");
    child.wait().unwrap().code()
}

#[test]
fn serve_refuses_a_log_format_or_filter_it_cannot_use() {
    let tmp = tempfile::tempdir().unwrap();
    for (var, value, says) in [
        (
            "HOTFIX_LOG_FORMAT",
            "yaml",
            "HOTFIX_LOG_FORMAT=yaml is not a log format: use `text` (the default) or `json`",
        ),
        (
            "HOTFIX_LOG",
            "info,hotfix=loud",
            "HOTFIX_LOG=info,hotfix=loud is not a log filter",
        ),
    ] {
        let mut child = serve_with(tmp.path(), &[(var, value)]);
        let lines = collect_stderr(&mut child);
        let status = child.wait().unwrap();
        // The reader thread may still hold the last lines for a moment.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let err = lines.lock().unwrap().join("\n");
        assert_eq!(status.code(), Some(2), "{var}={value}: {err}");
        assert!(err.contains(says), "{var}={value}: {err}");
        assert!(!err.contains("listening on"), "{err}");
    }
}

#[test]
fn serve_logs_json_lines_with_request_ids_and_no_token() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = serve_with(tmp.path(), &[("HOTFIX_LOG_FORMAT", "json")]);
    let lines = collect_stderr(&mut child);
    let json = |l: &str| serde_json::from_str::<serde_json::Value>(l).ok();
    let base = wait_line(&lines, "listening on", |l| {
        json(l)?["message"]
            .as_str()?
            .strip_prefix("listening on ")
            .map(String::from)
    });
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let token = format!("hf_{}", "5e".repeat(32));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let r = agent
        .get(format!("{base}/api/v1/incidents"))
        .header("Authorization", &format!("Bearer {token}"))
        .header("x-request-id", "cli-json-1")
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers().get("x-request-id").unwrap(), "cli-json-1");
    let refused = wait_line(&lines, "the refusal", |l| {
        let v = json(l)?;
        (v["message"] == "request refused" && v["span"]["request_id"] == "cli-json-1").then_some(v)
    });
    assert_eq!(refused["level"], "WARN", "{refused}");
    assert_eq!(refused["status"], 401, "{refused}");
    assert_eq!(refused["span"]["path"], "/api/v1/incidents", "{refused}");
    assert_eq!(
        refused["reason"], "unknown or revoked API token",
        "{refused}"
    );
    assert_eq!(stop(&mut child), Some(0));
    std::thread::sleep(std::time::Duration::from_millis(100));
    let all = lines.lock().unwrap().clone();
    for l in &all {
        assert!(json(l).is_some(), "not a JSON line: {l}");
    }
    let messages: Vec<String> = all
        .iter()
        .filter_map(|l| json(l)?["message"].as_str().map(String::from))
        .collect();
    for said in ["SIGTERM: stopping", "stopped"] {
        assert!(messages.iter().any(|m| m == said), "{said}: {messages:#?}");
    }
    assert!(
        all.iter().any(|l| l.contains(r#""level":"WARN""#)
            && l.contains("HOTFIX_GITHUB_WEBHOOK_SECRET is not set")),
        "{all:#?}"
    );
    let joined = all.join("\n");
    assert!(
        !joined.contains(&token[3..]),
        "the log has the token:\n{joined}"
    );
}

#[test]
fn serve_logs_readable_text_lines_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = serve_with(tmp.path(), &[]);
    let lines = collect_stderr(&mut child);
    let line = wait_line(&lines, "listening on", |l| {
        l.contains("listening on ").then(|| l.to_string())
    });
    // `<time>  INFO hotfix::serve: listening on http://127.0.0.1:PORT`,
    // the address last on its line.
    assert!(
        line.contains(" INFO hotfix::serve: listening on http://127.0.0.1:"),
        "{line}"
    );
    let port = line.rsplit(':').next().unwrap();
    assert!(port.parse::<u16>().is_ok_and(|p| p != 0), "{line}");
    assert_eq!(stop(&mut child), Some(0));
}
