//! `hotfix demo` is the README's first command: it must pass, finish well
//! within 30 s, and leave no process behind, with and without the rollback.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Processes whose command line or working directory is inside `dir`.
fn processes_in(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut found = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().to_string();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let cwd = std::fs::read_link(entry.path().join("cwd"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if cmdline.contains(&needle) || cwd.starts_with(&needle) {
            found.push(format!("{pid}: {cmdline} (cwd {cwd})"));
        }
    }
    found
}

fn demo(args: &[&str]) -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let t = Instant::now();
    let out = hotfix_testkit::hermetic(&mut Command::new(env!("CARGO_BIN_EXE_hotfix")))
        .arg("demo")
        .arg("--dir")
        .arg(&dir)
        .args(args)
        .output()
        .unwrap();
    let elapsed = t.elapsed();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "demo failed:\n{text}");
    assert!(elapsed < Duration::from_secs(30), "demo took {elapsed:?}");
    let left = processes_in(&dir);
    assert!(left.is_empty(), "processes left behind: {left:#?}");
    (tmp, text)
}

fn origin_show(dir: &Path, spec: &str) -> String {
    let out = Command::new("git")
        .args(["show", spec])
        .current_dir(dir.join("demo/origin.git"))
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn the_demo_plays_a_whole_incident_and_leaves_nothing_running() {
    let (tmp, text) = demo(&[]);
    for step in [
        "hotfix start pdf-crash",
        "hotfix push",
        "hotfix approve HF-1",
        "hotfix ship",
        "hotfix backport",
        "hotfix postmortem",
        "hotfix close",
        "Production deploy",
    ] {
        assert!(text.contains(step), "{step} missing:\n{text}");
    }
    assert!(text.contains("GET /export/pdf → 200"), "{text}");
    assert!(text.contains("state:     closed"), "{text}");
    // What it leaves in --dir: the repo, its origin, the incident log and post-mortem.
    let work = tmp.path().join("demo/pdf-service");
    assert!(work.join("postmortems/HF-1.md").exists());
    assert!(work.join(".git/hotfix/hotfix.db").exists());
    let develop_routes = origin_show(tmp.path(), "develop:service/routes.toml");
    assert!(
        develop_routes.contains("%PDF-1.7") && develop_routes.contains("/export/csv"),
        "{develop_routes}"
    );
}

#[test]
fn the_demo_with_rollback_ends_with_main_back_at_the_good_code() {
    let (tmp, text) = demo(&["--with-rollback"]);
    assert!(text.contains("automatically rolled back"), "{text}");
    assert!(
        text.contains("production /health after the rollback: 200"),
        "{text}"
    );
    let main_routes = origin_show(tmp.path(), "main:service/routes.toml");
    assert!(main_routes.contains("%PDF-1.7"), "{main_routes}");
    assert!(!main_routes.contains("migration 0042"), "{main_routes}");
    let log = origin_show(tmp.path(), "main");
    assert!(log.contains("Merge hotfix/pdf-crash-2"), "{log}");
}

#[test]
fn an_interrupted_demo_leaves_nothing_running() {
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    // Its own process group, like a terminal's foreground job: Ctrl-C reaches all of it.
    let mut child = hotfix_testkit::hermetic(&mut Command::new(env!("CARGO_BIN_EXE_hotfix")))
        .arg("demo")
        .arg("--dir")
        .arg(&dir)
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until production runs (a release's worktree exists), then Ctrl-C.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dir
        .join("pdf-service/.git/hotfix/platform/state.json")
        .exists()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let pgid = child.id().to_string();
    let st = Command::new("kill")
        .args(["-INT", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    assert!(st.success());
    let _ = child.wait();
    // Give the platform its stop grace period.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = processes_in(&dir);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        left = processes_in(&dir);
    }
    assert!(left.is_empty(), "processes left behind: {left:#?}");
}
