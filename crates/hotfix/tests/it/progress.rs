//! Long steps are never silent: a deploy, a health watch, a rollback show
//! as timestamped start / `still …` / end lines naming their log when stderr
//! is not a terminal, as a spinner on one, and not at all with `--quiet`
//! (except when they fail). The real binary, the `command` deploy provider
//! with slow scripts, real HTTP on 127.0.0.1.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::process::{Command, Stdio};

use common::*;

/// The interval of `still …` lines in these tests.
const INTERVAL: (&str, &str) = ("HOTFIX_PROGRESS_INTERVAL", "400ms");

/// The timestamped lines of `stderr` (`  HH:MM:SS rest`), as `rest`.
fn stamped(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| {
            let (t, rest) = l.strip_prefix("  ")?.split_once(' ')?;
            is_time(t).then(|| rest.to_string())
        })
        .collect()
}

fn is_time(t: &str) -> bool {
    t.len() == 8
        && t.bytes().enumerate().all(|(i, b)| {
            if i == 2 || i == 5 {
                b == b':'
            } else {
                b.is_ascii_digit()
            }
        })
}

/// The elapsed time an end line gives, in seconds (`2.0s`, `12s`, `1m05s`).
fn took(line: &str) -> f64 {
    line.split(" · ")
        .find_map(|part| {
            let p = part.strip_suffix('s')?;
            match p.split_once('m') {
                Some((m, s)) => Some(m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?),
                None => p.parse().ok(),
            }
        })
        .unwrap_or_else(|| panic!("no elapsed time in {line:?}"))
}

/// The one stamped line starting with `prefix`.
#[track_caller]
fn line<'a>(lines: &'a [String], prefix: &str, all: &str) -> &'a str {
    let found: Vec<&String> = lines.iter().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(
        found.len(),
        1,
        "one line starting {prefix:?} expected in:\n{all}"
    );
    found[0]
}

/// Makes the deploy script `name` print a line and take `secs` first.
fn slow(w: &World, name: &str, secs: &str) {
    let p = w.scripts.join(name);
    let body = std::fs::read_to_string(&p).unwrap().replacen(
        "set -e\n",
        &format!("set -e\necho compiling {name}\nsleep {secs}\n"),
        1,
    );
    std::fs::write(&p, body).unwrap();
}

/// start + a fix commit, ready for `push`; returns the head's short sha.
fn fixed(w: &World) -> String {
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo
        .commit_as(DEV, "Fix PDF export crash: guard missing font table");
    w.repo.git(&["rev-parse", "HEAD"])[..10].to_string()
}

const LOG: &str = ".git/hotfix/logs/HF-1.log";

#[test]
fn a_slow_preview_deploy_shows_start_still_and_done_lines_naming_its_log() {
    let w = World::new();
    slow(&w, "preview.sh", "2");
    let sha = fixed(&w);
    let r = w.hf_env(DEV, &["push"], &[INTERVAL]).ok();
    let lines = stamped(&r.stderr);
    let what = format!("deploying preview of {sha}");
    assert_eq!(
        line(&lines, &what, &r.stderr),
        format!("{what} · log: {LOG}"),
        "the start names the step and its log, relative to where I am"
    );
    // Still running after the interval: said, with the log's last line.
    let still: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with(&format!("still {what}, ")))
        .collect();
    assert!(
        still.len() >= 2,
        "a 2s deploy with a 400ms interval says `still` a few times:\n{}",
        r.stderr
    );
    // Each shows the log's last line at that moment: the script's
    // "compiling" line while it sleeps, or (a tick landing between the
    // script's last echo and its exit) the preview URL it ends with.
    assert!(
        still
            .iter()
            .all(|l| l.ends_with("· last: compiling preview.sh")
                || l.contains("· last: http://127.0.0.1:")),
        "{}",
        r.stderr
    );
    assert!(
        still
            .iter()
            .filter(|l| l.ends_with("· last: compiling preview.sh"))
            .count()
            >= 2,
        "{}",
        r.stderr
    );
    let done = line(&lines, "✓ preview at http://127.0.0.1:", &r.stderr);
    assert!(took(done) >= 2.0, "{done}");
    // The smoke checks are a step too.
    line(
        &lines,
        "running 1 check against http://127.0.0.1:",
        &r.stderr,
    );
    line(&lines, "✓ 1 of 1 check passed", &r.stderr);
    // And the log it named is the one the script wrote.
    let log = std::fs::read_to_string(w.repo.work.join(LOG)).unwrap();
    assert!(log.contains("compiling preview.sh"), "{log}");
}

#[test]
fn ship_shows_the_production_deploy_and_the_health_watch() {
    let w = World::new();
    let head = fixed(&w);
    w.hf(&["push"]).ok();
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    slow(&w, "deploy.sh", "1");
    let r = w.hf_env(DEV, &["ship"], &[INTERVAL]).ok();
    let lines = stamped(&r.stderr);
    let merge = w.origin_sha("main")[..10].to_string();
    assert_eq!(
        line(
            &lines,
            &format!("deploying {merge} to production"),
            &r.stderr
        ),
        // Main did not move: said before the deploy (issue 13).
        format!(
            "deploying {merge} to production (same tree as the preview {head}: the tested build may be promoted) · log: {LOG}"
        )
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "still deploying {merge} to production (same tree "
        ))),
        "{}",
        r.stderr
    );
    let done = line(&lines, &format!("✓ production runs {merge} · "), &r.stderr);
    assert!(took(done) >= 1.0, "{done}");
    let health = format!("{}/health", w.prod.url());
    assert_eq!(
        line(&lines, "watching ", &r.stderr),
        format!("watching {health} for 600ms")
    );
    let healthy = line(&lines, "✓ production is healthy after ", &r.stderr);
    assert!(
        took(healthy) >= 0.6,
        "the watch lasts its window: {healthy}"
    );
}

#[test]
fn an_unhealthy_production_shows_the_failed_watch_and_the_rollback() {
    let w = World::new();
    let good_main = w.origin_sha("main")[..10].to_string();
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.write("app/health_prod", "db pool exhausted\n");
    w.repo.commit_as(DEV, "fix that breaks production");
    w.hf(&["push"]).ok();
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    let r = w
        .hf_env(DEV, &["ship"], &[INTERVAL])
        .fails(1, "rolled back automatically");
    let lines = stamped(&r.stderr);
    let failed = line(&lines, "✗ production unhealthy: ", &r.stderr);
    assert!(failed.contains("db pool exhausted"), "{failed}");
    assert_eq!(
        line(&lines, "rolling production back to ", &r.stderr),
        format!("rolling production back to {good_main} · log: {LOG}")
    );
    line(
        &lines,
        &format!("✓ production is back on {good_main} · "),
        &r.stderr,
    );
}

#[test]
fn a_failed_deploy_names_its_log_even_with_quiet() {
    for quiet in [false, true] {
        let w = World::new();
        let p = w.scripts.join("preview.sh");
        script(&p, "echo npm ERR! missing script: build\nexit 1");
        let sha = fixed(&w);
        let args: &[&str] = if quiet {
            &["push", "--quiet"]
        } else {
            &["push"]
        };
        let r = w.hf_env(DEV, args, &[INTERVAL]);
        assert_eq!(r.code, 1, "{}", r.all());
        let lines = stamped(&r.stderr);
        let failed = line(
            &lines,
            &format!("✗ preview deploy of {sha} failed · "),
            &r.stderr,
        );
        assert!(failed.ends_with(&format!(" · log: {LOG}")), "{failed}");
        assert!(r.stderr.contains("npm ERR! missing script"), "{}", r.stderr);
    }
}

#[test]
fn quiet_shows_no_progress_at_all() {
    let w = World::new();
    slow(&w, "preview.sh", "1");
    fixed(&w);
    let r = w.hf_env(DEV, &["--quiet", "push"], &[INTERVAL]).ok();
    assert_eq!(stamped(&r.stderr), Vec::<String>::new(), "{}", r.stderr);
    assert!(!r.stderr.contains("deploying"), "{}", r.stderr);
    assert!(!r.stderr.contains("still"), "{}", r.stderr);
    assert!(!r.stderr.contains("preview at"), "{}", r.stderr);
    // It did the work all the same.
    assert_eq!(
        w.status("HF-1")["state"],
        "awaiting_approval",
        "{}",
        r.all()
    );
}

#[test]
fn on_a_terminal_the_step_is_a_spinner_then_one_line() {
    if Command::new("script").arg("--version").output().is_err() {
        return hotfix_testkit::skip("no `script` (util-linux) to give hotfix a terminal");
    }
    let w = World::new();
    slow(&w, "preview.sh", "1");
    let sha = fixed(&w);
    // A pty of a known size (none is inherited under CI).
    let cmd = format!(
        "stty cols 200 rows 40 2>/dev/null; exec '{}' push",
        bin().display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(&w.repo.work)
        .envs(w.repo.env())
        .env("HOTFIX_USER", DEV)
        .env("TERM", "xterm")
        .env_remove("HOTFIX_DATABASE_URL")
        .env_remove("HOTFIX_CONFIG")
        .env_remove("HOTFIX_SERVER")
        .env(INTERVAL.0, INTERVAL.1)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    assert!(out.status.success(), "{tty}");
    assert!(
        tty.contains(&format!("deploying preview of {sha} · "))
            && tty.contains(&format!("· log: {LOG}")),
        "the spinner names the step and its log:\n{tty}"
    );
    assert!(
        "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏".chars().any(|c| tty.contains(c)),
        "a spinner:\n{tty}"
    );
    assert!(tty.contains("  ✓ preview at http://127.0.0.1:"), "{tty}");
    assert!(
        stamped(&tty).is_empty(),
        "no timestamped lines on a terminal:\n{tty}"
    );
    assert!(!tty.contains("still "), "{tty}");
}
