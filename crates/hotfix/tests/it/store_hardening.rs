//! The incident store under an unlucky operator, with the real binary: an
//! emptied store is an error (never set up again), `--reinit` moves it
//! aside, a read-only store reads and refuses writes, every file is 0600,
//! and a backup restores the log exactly.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;

fn db(w: &World) -> PathBuf {
    w.repo.work.join(".git/hotfix/hotfix.db")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// `: > FILE`
fn truncate(p: &Path) {
    std::fs::File::create(p).unwrap();
    assert_eq!(std::fs::metadata(p).unwrap().len(), 0);
}

/// The log as JSON at a fixed time, so two reads compare equal.
fn log_json(w: &World) -> serde_json::Value {
    let r = w
        .hf_env(
            DEV,
            &["log", "--json"],
            &[("HOTFIX_NOW", "2031-01-01T00:00:00Z")],
        )
        .ok();
    serde_json::from_str(&r.stdout).unwrap()
}

fn started(w: &World) {
    w.hf(&[
        "start",
        "pdf-crash",
        "--severity",
        "critical",
        "--title",
        "PDF export crashes",
    ])
    .ok();
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn an_emptied_store_is_refused_by_every_command_and_stays_empty() {
    let w = World::new();
    started(&w);
    let p = db(&w);
    truncate(&p);
    let shown = p.display().to_string();
    for args in [
        &["log"][..],
        &["log", "--json"],
        &["status", "HF-1"],
        &["start", "other", "--severity", "high"],
    ] {
        let r = w.hf(args).fails(1, &shown);
        let all = r.all();
        assert!(all.contains("is empty (0 bytes)"), "{args:?}: {all}");
        assert!(all.contains("--reinit") && all.contains("backup"), "{all}");
        assert!(!all.contains("no incidents yet"), "{all}");
    }
    // Nothing was set up again: still 0 bytes, no -wal or -shm beside it.
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
    let left: Vec<String> = names_in(p.parent().unwrap())
        .into_iter()
        .filter(|n| n.starts_with("hotfix.db"))
        .collect();
    assert_eq!(left, ["hotfix.db"]);
}

#[test]
fn reinit_moves_the_emptied_store_aside_and_starts_a_new_log() {
    let w = World::new();
    started(&w);
    let p = db(&w);
    truncate(&p);
    let r = w.hf(&["--reinit", "log", "--json"]).ok();
    assert_eq!(r.stdout.trim(), "[]");
    assert!(r.stderr.contains("moved it to"), "{}", r.stderr);
    let moved: Vec<String> = names_in(p.parent().unwrap())
        .into_iter()
        .filter(|n| n.starts_with("hotfix.db.broken-"))
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert!(r.stderr.contains(&moved[0]), "{}", r.stderr);
    let kept = p.parent().unwrap().join(&moved[0]);
    assert_eq!(std::fs::metadata(&kept).unwrap().len(), 0);
    assert_eq!(mode(&p), 0o600);
    // The new log works; --reinit again leaves the healthy store alone.
    w.hf(&["start", "other", "--severity", "high"]).ok();
    let r = w.hf(&["--reinit", "log", "--json"]).ok();
    assert!(r.stderr.contains("healthy"), "{}", r.stderr);
    assert_eq!(log_json(&w).as_array().unwrap().len(), 1);
}

#[test]
fn a_read_only_store_reads_and_refuses_writes_as_read_only() {
    let w = World::new();
    started(&w);
    let before = log_json(&w);
    let p = db(&w);
    chmod(&p, 0o444);
    let bytes = std::fs::read(&p).unwrap();
    assert_eq!(log_json(&w), before);
    w.hf(&["status", "HF-1"]).ok();
    w.hf(&["log"]).ok();
    let r = w
        .hf(&["start", "other", "--severity", "high"])
        .fails(1, &format!("incident store {} is read-only", p.display()));
    assert!(!r.all().contains("corrupt"), "{}", r.all());
    let r = w.hf(&["checklist", "HF-1", "--done", "team_notified"]);
    assert_ne!(r.code, 0);
    assert!(r.all().contains("is read-only"), "{}", r.all());
    assert_eq!(std::fs::read(&p).unwrap(), bytes, "the store was written");
    assert_eq!(mode(&p), 0o444);
}

/// Every file in `dir` (recursively) 0600, every directory 0700.
fn assert_private_tree(dir: &Path) -> usize {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    let mut files = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            files += assert_private_tree(&p);
        } else {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
            files += 1;
        }
    }
    files
}

#[test]
fn what_hotfix_writes_is_readable_by_its_owner_alone() {
    let w = World::new();
    let id = w.shipped();
    w.hf(&["postmortem", &id]).ok();
    let state = w.repo.work.join(".git/hotfix");
    // The store, the local forge, the notification log, the deploy logs.
    let names = names_in(&state);
    for f in ["hotfix.db", "forge.db", "notifications.jsonl", "logs"] {
        assert!(names.iter().any(|n| n == f), "{f} not in {names:?}");
    }
    assert!(assert_private_tree(&state) >= 4);
    // The post-mortem draft and invite (in the work tree, to be committed).
    for f in ["HF-1.md", "HF-1.ics"] {
        assert_eq!(mode(&w.repo.work.join("postmortems").join(f)), 0o600, "{f}");
    }
    assert_eq!(mode(&w.repo.work.join("postmortems")), 0o700);
    // The server's data directory and store.
    let data = w.repo.dir().join("server-data");
    let data_arg = data.display().to_string();
    w.hf(&[
        "serve",
        "token",
        "create",
        "--user",
        LEAD,
        "--role",
        "admin",
        "--data-dir",
        &data_arg,
    ])
    .ok();
    assert!(assert_private_tree(&data) >= 1);
    // A backup too.
    let copy = w.repo.dir().join("backups/log.db");
    w.hf(&["backup", copy.to_str().unwrap()]).ok();
    assert_private_tree(copy.parent().unwrap());
}

#[test]
fn a_state_directory_an_older_version_left_open_is_tightened() {
    let w = World::new();
    started(&w);
    let state = w.repo.work.join(".git/hotfix");
    chmod(&state, 0o755);
    chmod(&db(&w), 0o644);
    w.hf(&["status", "HF-1"]).ok();
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&db(&w)), 0o600);
}

#[test]
fn a_backup_restores_the_log_exactly() {
    let w = World::new();
    let id = w.shipped();
    w.hf(&["start", "login-loop", "--severity", "high"]).ok();
    let before = log_json(&w);
    assert_eq!(before.as_array().unwrap().len(), 2);
    let copy = w.repo.dir().join("hotfix-backup.db");
    let copy_arg = copy.display().to_string();
    let r = w.hf(&["backup", &copy_arg]).ok();
    assert!(r.stdout.contains("backed up 2 incidents"), "{}", r.stdout);
    assert_eq!(mode(&copy), 0o600);
    // Never over an existing file.
    w.hf(&["backup", &copy_arg]).fails(1, "exists already");

    // The store is lost: every command refuses, naming it.
    let p = db(&w);
    truncate(&p);
    w.hf(&["log", "--json"]).fails(1, &p.display().to_string());
    w.hf(&["status", &id]).fails(1, "is empty (0 bytes)");

    // Restore: nothing is writing; copy the backup into place.
    std::fs::copy(&copy, &p).unwrap();
    assert_eq!(log_json(&w), before);
    // And the restored log goes on.
    w.hf(&["checklist", &id]).ok();
    w.hf(&["start", "third", "--severity", "high"]).ok();
    assert_eq!(log_json(&w).as_array().unwrap().len(), 3);
}

#[test]
fn the_server_refuses_an_emptied_store_and_reinit_starts_afresh() {
    let w = World::new();
    let data = w.repo.dir().join("srv");
    let url = format!("sqlite:{}", data.join("team.db").display());
    let list = ["serve", "token", "list", "--database-url", &url];
    w.hf(&[
        "serve",
        "token",
        "create",
        "--user",
        LEAD,
        "--role",
        "admin",
        "--database-url",
        &url,
    ])
    .ok();
    assert!(w.hf(&list).ok().stdout.contains(LEAD));
    truncate(&data.join("team.db"));
    let r = w
        .hf(&list)
        .fails(1, &data.join("team.db").display().to_string());
    assert!(r.all().contains("is empty (0 bytes)"), "{}", r.all());
    assert_eq!(std::fs::metadata(data.join("team.db")).unwrap().len(), 0);
    let mut again = vec!["--reinit"];
    again.extend_from_slice(&list);
    let r = w.hf(&again).ok();
    assert!(r.stderr.contains("moved it to"), "{}", r.stderr);
    assert!(!r.stdout.contains(LEAD));
    // A server cannot run on a store it may not write: said once, at start.
    chmod(&data.join("team.db"), 0o444);
    w.hf(&list).fails(1, "is read-only");
}

#[test]
fn a_postgres_store_is_backed_up_with_pg_dump() {
    let w = World::new();
    w.hf(&[
        "backup",
        "out.db",
        "--database-url",
        "postgres://hotfix:secret@127.0.0.1:1/hotfix",
    ])
    .fails(2, "pg_dump");
    assert!(!w.repo.work.join("out.db").exists());
}
