//! Crash safety: every command killed at each side effect and run again
//! finishes the job with no second PR, merge commit, or event; and racing
//! approvals both land (or land once for the same person).
#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;

/// Runs `args` with the failpoint armed (it must die), then again without.
fn crash_then_rerun(w: &World, who: &str, args: &[&str], failpoint: &str) {
    let r = w.hf_env(who, args, &[("HOTFIX_FAILPOINTS", failpoint)]);
    assert_eq!(
        r.code,
        137,
        "failpoint {failpoint} did not fire for {args:?}:\n{}",
        r.all()
    );
    w.hf_as(who, args).ok();
}

fn assert_single(w: &World, kinds: &[&str]) {
    for k in kinds {
        assert_eq!(w.count("HF-1", k), 1, "exactly one `{k}` event");
    }
    // No notification twice.
    let jsonl = std::fs::read_to_string(w.repo.work.join(".git/hotfix/notifications.jsonl"))
        .unwrap_or_default();
    let mut ids: Vec<i64> = jsonl
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["outbox_id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "a notification was written twice");
}

#[test]
fn start_survives_a_crash_at_every_step() {
    for fp in ["start.declared", "start.branched"] {
        let w = World::new();
        crash_then_rerun(
            &w,
            DEV,
            &["start", "pdf-crash", "--severity", "critical"],
            fp,
        );
        assert_eq!(
            w.repo.git(&["branch", "--show-current"]),
            "hotfix/pdf-crash",
            "{fp}"
        );
        assert_eq!(w.log().as_array().unwrap().len(), 1, "{fp}");
        assert_single(&w, &["declared"]);
    }
}

#[test]
fn push_survives_a_crash_at_every_step() {
    for fp in [
        "push.pushed",
        "push.recorded",
        "push.pr_opened",
        "push.preview_deployed",
    ] {
        let w = World::new();
        w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
        w.repo.write("app/pdf", "pdf ok\n");
        w.repo.commit_as(DEV, "fix");
        crash_then_rerun(&w, DEV, &["push"], fp);
        assert_single(&w, &["pushed", "pr_opened", "smoke_passed"]);
        let s = w.status("HF-1");
        assert_eq!(s["pr"], 1, "{fp}");
        assert_eq!(s["state"], "awaiting_approval", "{fp}");
    }
}

#[test]
fn ship_survives_a_crash_at_every_step() {
    for fp in ["ship.merged", "ship.deployed"] {
        let w = World::new();
        w.started_and_pushed("pdf-crash", "critical");
        w.hf_as(LEAD, &["approve", "HF-1"]).ok();
        crash_then_rerun(&w, DEV, &["ship"], fp);
        assert_eq!(
            w.repo
                .origin_git(&["rev-list", "--merges", "--count", "main"]),
            "1",
            "{fp}: one merge commit"
        );
        assert_single(&w, &["merged", "health_passed"]);
        assert_eq!(w.prod_sha(), w.origin_sha("main"), "{fp}");
    }
}

#[test]
fn backport_survives_a_crash_after_the_push() {
    let w = World::new();
    w.shipped();
    crash_then_rerun(&w, DEV, &["backport"], "backport.pushed");
    assert_single(&w, &["backported"]);
    assert_eq!(
        w.repo
            .origin_git(&["rev-list", "--merges", "--count", "develop"]),
        "1"
    );
}

#[test]
fn backport_continue_survives_a_crash_after_the_push() {
    let w = World::new();
    w.repo.push_from_elsewhere(
        "develop",
        "app/pdf",
        "rewritten on develop\n",
        "develop rewrites pdf",
    );
    w.shipped();
    w.hf(&["backport"]).fails(1, "conflicts in");
    let wt = std::path::PathBuf::from(
        w.status("HF-1")["backport_conflict"]["worktree"]
            .as_str()
            .unwrap(),
    );
    std::fs::write(wt.join("app/pdf"), "resolved\n").unwrap();
    w.repo.git_in(&wt, &["add", "app/pdf"]);
    crash_then_rerun(&w, DEV, &["backport", "--continue"], "backport.pushed");
    assert_single(&w, &["backported"]);
    assert_eq!(w.repo.origin_git(&["show", "develop:app/pdf"]), "resolved");
}

#[test]
fn rollback_survives_a_crash_at_every_step() {
    for fp in [
        "rollback.deployed",
        "rollback.main_reverted",
        "rollback.develop_reverted",
    ] {
        let w = World::new();
        w.shipped();
        w.hf(&["backport"]).ok();
        crash_then_rerun(&w, DEV, &["rollback", "--reason", "worse"], fp);
        assert_single(&w, &["rolled_back"]);
        // One revert on each branch.
        let reverts = |b: &str| {
            w.repo
                .origin_git(&["log", "--format=%s", b])
                .lines()
                .filter(|l| l.starts_with("Revert hotfix"))
                .count()
        };
        assert_eq!(reverts("main"), 1, "{fp}");
        assert_eq!(reverts("develop"), 1, "{fp}");
    }
}

#[test]
fn racing_approvals_both_land_and_the_same_person_lands_once() {
    for round in 0..3 {
        let w = World::new();
        w.started_and_pushed("pdf-crash", "high");
        let spawn = |who: &'static str| {
            let mut cmd = std::process::Command::new(bin());
            hotfix_testkit::hermetic(&mut cmd)
                .args(["approve", "HF-1"])
                .current_dir(&w.repo.work)
                .envs(w.repo.env())
                .env("HOTFIX_USER", who)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            cmd.spawn().unwrap()
        };
        let kids = vec![spawn(LEAD), spawn(REV), spawn(LEAD), spawn(REV)];
        for k in kids {
            let out = k.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(w.count("HF-1", "approved"), 2, "round {round}");
        assert_eq!(w.status("HF-1")["state"], "ready_to_ship");
    }
}

#[test]
fn a_combined_ship_survives_a_crash_after_the_push() {
    for fp in ["ship.merged", "ship.deployed"] {
        let w = World::new();
        w.started_and_pushed("pdf-crash", "critical");
        w.hf_as(LEAD, &["approve", "HF-1"]).ok();
        crash_then_rerun(&w, DEV, &["ship", "--backport"], fp);
        assert_single(&w, &["merged", "backported", "health_passed"]);
        assert_eq!(
            w.repo
                .origin_git(&["rev-list", "--merges", "--count", "main"]),
            "1",
            "{fp}"
        );
        assert_eq!(
            w.repo
                .origin_git(&["rev-list", "--merges", "--count", "develop"]),
            "1",
            "{fp}"
        );
    }
}
