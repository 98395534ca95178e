//! The whole workflow, driven through the real binary against real git
//! repositories with bare remotes and real HTTP servers on 127.0.0.1.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[test]
fn critical_happy_path_start_to_close() {
    let w = World::new();
    let before_main = w.origin_sha("main");
    let r = w
        .hf(&[
            "start",
            "pdf-crash",
            "--severity",
            "critical",
            "--title",
            "PDF export crashes",
        ])
        .ok();
    assert!(
        r.stdout.contains("HF-1 started: hotfix/pdf-crash"),
        "{}",
        r.all()
    );
    assert_eq!(
        w.repo.git(&["branch", "--show-current"]),
        "hotfix/pdf-crash"
    );
    assert_eq!(w.repo.git(&["rev-parse", "HEAD"]), before_main);

    w.repo.write("app/pdf", "pdf ok\n");
    let fix = w.repo.commit_as(DEV, "Fix PDF export crash");
    let r = w.hf(&["push"]).ok();
    assert!(r.stdout.contains("PR #1"), "{}", r.all());
    assert_eq!(w.origin_sha("hotfix/pdf-crash"), fix);
    // The preview script got the documented environment.
    let calls = std::fs::read_to_string(w.preview.dir.join("calls")).unwrap();
    assert_eq!(
        calls.trim(),
        format!("preview HF-1 hotfix/pdf-crash 1 {fix}")
    );
    let s = w.status("HF-1");
    assert_eq!(s["state"], "awaiting_approval");
    assert_eq!(s["pr"], 1);
    assert_eq!(s["smoke_passed"], true);
    assert_eq!(s["preview_url"], w.preview.url());

    // No approval yet: ship refuses, saying what is missing.
    w.hf(&["ship"]).fails(1, "missing 1 tech lead approval");
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    assert_eq!(w.status("HF-1")["state"], "ready_to_ship");

    let r = w.hf(&["ship"]).ok();
    assert!(r.stdout.contains("shipped"), "{}", r.all());
    // A real --no-ff merge commit on origin/main: parents = old main + the fix.
    let main = w.origin_sha("main");
    let parents = w.repo.origin_git(&["rev-list", "--parents", "-n1", &main]);
    assert_eq!(parents, format!("{main} {before_main} {fix}"));
    let msg = w.repo.origin_git(&["log", "-1", "--format=%B", &main]);
    assert!(
        msg.contains("[HOTFIX] PDF export crashes") && msg.contains("Hotfix-Incident: HF-1"),
        "{msg}"
    );
    // Production runs the merge, and the user's work tree was not touched.
    assert_eq!(w.prod_sha(), main);
    assert_eq!(
        w.repo.git(&["branch", "--show-current"]),
        "hotfix/pdf-crash"
    );
    assert_eq!(
        w.repo
            .git(&["status", "--porcelain", "--untracked-files=no"]),
        ""
    );
    let s = w.status("HF-1");
    assert_eq!(s["state"], "deployed");
    assert_eq!(s["healthy"], true);

    // Close refuses with the forgotten backport named first.
    let r = w.hf(&["close"]).fails(1, "cannot be closed");
    let first_item = r
        .all()
        .lines()
        .find(|l| l.contains("(backported)") || l.contains("(incident_log)"))
        .unwrap()
        .to_string();
    assert!(first_item.contains("backported"), "{}", r.all());

    w.hf(&["backport"]).ok();
    let develop = w.origin_sha("develop");
    assert!(
        w.repo
            .git_ok(&["merge-base", "--is-ancestor", &fix, &develop])
    );
    // develop kept its own work.
    assert_eq!(
        w.repo
            .origin_git(&["show", &format!("{develop}:app/feature.txt")]),
        "next release"
    );

    let r = w.hf(&["postmortem"]).ok();
    assert!(r.stdout.contains("postmortems/HF-1.md"), "{}", r.all());
    let pm = w.repo.read("postmortems/HF-1.md");
    assert!(
        pm.contains("# Post-mortem: HF-1 — PDF export crashes") && pm.contains("Production deploy"),
        "{pm}"
    );
    let ics = w.repo.read("postmortems/HF-1.ics");
    assert!(
        ics.contains("BEGIN:VEVENT\r\n")
            && ics.contains("DTSTART:")
            && ics.contains("SUMMARY:Post-mortem HF-1"),
        "{ics}"
    );

    let cl: serde_json::Value =
        serde_json::from_str(&w.hf(&["checklist", "--json"]).ok().stdout).unwrap();
    let items = cl.as_array().unwrap();
    assert_eq!(items.len(), 8);
    let done = |k: &str| {
        items.iter().find(|i| i["key"] == k).unwrap()["done"]
            .as_bool()
            .unwrap()
    };
    assert!(
        done("fix_verified")
            && done("backported")
            && done("postmortem_scheduled")
            && done("status_page")
    );
    assert!(!done("incident_log"));
    // Auto items cannot be ticked by hand.
    w.hf(&["checklist", "--done", "backported"])
        .fails(2, "ticked by hotfix itself");
    w.hf(&["checklist", "--done", "nonsense"])
        .fails(2, "unknown checklist item");
    w.hf(&["close"]).fails(1, "incident_log");
    w.hf(&[
        "checklist",
        "--done",
        "incident_log",
        "monitoring_reviewed",
        "docs_updated",
        "team_notified",
    ])
    .ok();
    w.hf(&["close"]).ok();
    assert_eq!(w.status("HF-1")["state"], "closed");

    // One message per step in the notifications file, each once.
    let jsonl =
        std::fs::read_to_string(w.repo.work.join(".git/hotfix/notifications.jsonl")).unwrap();
    let steps: Vec<String> = jsonl
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for s in [
        "declared",
        "pr_opened",
        "smoke_passed",
        "approved",
        "merged",
        "health_passed",
        "backported",
        "postmortem_scheduled",
        "closed",
    ] {
        assert_eq!(
            steps.iter().filter(|x| *x == s).count(),
            1,
            "{s} in {steps:?}"
        );
    }
    let declared: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(declared["channel"], "#dev-alerts");
    assert!(
        declared["mentions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == LEAD)
    );
}

#[test]
fn high_needs_tech_lead_and_reviewer_and_the_affected_area() {
    let w = World::new();
    w.hf(&["start", "pdf-crash", "--severity", "high"]).ok();
    // A fix that does not fix the affected area: high runs the area checks.
    w.repo.write("app/main.txt", "tweak\n");
    w.repo.commit_as(DEV, "not the fix");
    w.hf(&["push"]).fails(1, "PDF export");
    assert_eq!(w.status("HF-1")["state"], "in_review");
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.commit_as(DEV, "the fix");
    w.hf(&["push"]).ok();
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    w.hf(&["ship"]).fails(1, "missing 1 reviewer approval");
    w.hf_as(REV, &["approve", "HF-1"]).ok();
    w.hf(&["ship"]).ok();
    w.hf(&["backport"]).ok();
    assert_eq!(w.status("HF-1")["state"], "backported");
}

#[test]
fn a_second_tech_lead_can_fill_the_reviewer_slot() {
    let w = World::new();
    w.started_and_pushed("pdf-crash", "high");
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    w.hf_as(LEAD2, &["approve", "HF-1"]).ok();
    assert_eq!(
        w.status("HF-1")["missing_approvals"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn medium_and_low_are_refused_and_create_nothing() {
    let w = World::new();
    for sev in ["medium", "low", "Medium"] {
        w.hf(&["start", "typo", "--severity", sev])
            .fails(1, "use the normal release");
    }
    w.hf(&["start", "typo", "--severity", "urgent"])
        .fails(2, "unknown severity");
    assert!(!w.repo.git_ok(&["rev-parse", "--verify", "hotfix/typo"]));
    assert_eq!(w.repo.git(&["branch", "--show-current"]), "main");
    assert_eq!(w.log().as_array().unwrap().len(), 0);
}

#[test]
fn a_dirty_tree_is_refused_and_left_exactly_as_it_was() {
    let w = World::new();
    w.repo.write("app/main.txt", "my unsaved work\n");
    w.repo.git(&["add", "app/main.txt"]);
    w.repo.write("app/health", "half-edited\n");
    let before = w.repo.git(&["status", "--porcelain"]);
    w.hf(&["start", "pdf-crash", "--severity", "critical"])
        .fails(1, "uncommitted changes");
    assert_eq!(w.repo.git(&["status", "--porcelain"]), before);
    assert_eq!(w.repo.read("app/main.txt"), "my unsaved work\n");
    assert_eq!(w.repo.read("app/health"), "half-edited\n");
    assert_eq!(w.repo.git(&["branch", "--show-current"]), "main");
    assert_eq!(w.log().as_array().unwrap().len(), 0);
}

#[test]
fn existing_branches_and_bad_names_are_refused() {
    let w = World::new();
    w.repo.git(&["branch", "hotfix/local-one"]);
    w.hf(&["start", "local-one", "--severity", "critical"])
        .fails(1, "already exists locally");
    w.repo.push_from_elsewhere("main", "x.txt", "x", "x");
    w.repo.origin_git(&["branch", "hotfix/remote-one", "main"]);
    w.hf(&["start", "remote-one", "--severity", "critical"])
        .fails(1, "already exists on origin");
    for bad in [
        "has space",
        "../up",
        "x.lock",
        "a/b",
        "semi;colon",
        "$(touch pwned)",
        ".hidden",
    ] {
        w.hf(&["start", bad, "--severity", "critical"])
            .fails(1, "not a valid hotfix name");
    }
    assert!(!w.repo.work.join("pwned").exists());
    assert_eq!(w.log().as_array().unwrap().len(), 0);
}

#[test]
fn start_cuts_from_the_remote_main_not_a_stale_local_one() {
    let w = World::new();
    let newer = w.repo.push_from_elsewhere(
        "main",
        "app/other.txt",
        "someone else's fix\n",
        "newer main",
    );
    assert_ne!(w.repo.git(&["rev-parse", "main"]), newer);
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    assert_eq!(w.repo.git(&["rev-parse", "HEAD"]), newer);
}

#[test]
fn approvals_are_role_checked_and_nobody_approves_their_own_hotfix() {
    let w = World::new();
    // Before anything is pushed there is nothing to approve.
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.hf_as(LEAD, &["approve", "HF-1"])
        .fails(1, "nothing to approve yet");
    w.repo.write("app/pdf", "pdf ok\n");
    // The tech lead wrote a commit of the fix: they cannot approve it.
    w.repo.commit_as(LEAD, "fix by the lead");
    w.hf(&["push"]).ok();
    w.hf_as(LEAD, &["approve", "HF-1"])
        .fails(1, "nobody approves their own hotfix");
    w.hf_as(DEV, &["approve", "HF-1"])
        .fails(1, "may not approve");
    w.hf_as("random@example.com", &["approve", "HF-1"])
        .fails(1, "only the tech leads and reviewers");
    w.hf(&["ship"]).fails(1, "missing 1 tech lead approval");
    w.hf_as(LEAD2, &["approve", "HF-1"]).ok();
    // Approving twice is a no-op.
    let r = w.hf_as(LEAD2, &["approve", "HF-1"]).ok();
    assert!(r.all().contains("already approved"), "{}", r.all());
    assert_eq!(w.count("HF-1", "approved"), 1);
    w.hf(&["ship"]).ok();
}

#[test]
fn the_person_who_started_it_cannot_approve() {
    let w = World::new();
    w.hf_as(LEAD, &["start", "pdf-crash", "--severity", "critical"])
        .ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.commit_as(DEV, "fix");
    w.hf(&["push"]).ok();
    w.hf_as(LEAD, &["approve", "HF-1"])
        .fails(1, "nobody approves their own hotfix");
}

#[test]
fn a_push_after_an_approval_makes_it_stale() {
    let w = World::new();
    w.started_and_pushed("pdf-crash", "critical");
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    w.repo.write("app/main.txt", "one more thing\n");
    w.repo.commit_as(DEV, "one more thing");
    // Unpushed commit: ship refuses, the tested head is not the branch.
    w.hf(&["ship"])
        .fails(1, "push it through the preview first");
    w.hf(&["push"]).ok();
    w.hf(&["ship"]).fails(1, "stale after the last push");
    let s = w.status("HF-1");
    assert_eq!(s["approvals"][0]["fresh"], false);
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    w.hf(&["ship"]).ok();
}

#[test]
fn no_preview_no_ship() {
    let w = World::new();
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.commit_as(DEV, "fix");
    // The preview deploy fails: nothing was tested.
    let preview = w.scripts.join("preview.sh");
    let good = std::fs::read_to_string(&preview).unwrap();
    script(&preview, "echo 'build failed: out of disk' >&2\nexit 3");
    w.hf(&["push"]).fails(1, "out of disk");
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    w.hf(&["ship"])
        .fails(1, "no preview deploy of the current head");
    std::fs::write(&preview, good).unwrap();
    w.hf(&["push"]).ok();
    w.hf(&["ship"]).ok();
}

#[test]
fn a_hanging_deploy_command_times_out_with_a_clear_error() {
    let w = World::with_config("");
    let toml = w
        .repo
        .read("hotfix.toml")
        .replace("timeout = \"20s\"", "timeout = \"1s\"");
    w.repo.write("hotfix.toml", &toml);
    w.repo.commit_as(DEV, "short timeout");
    w.repo.git(&["push", "--quiet", "origin", "main"]);
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.commit_as(DEV, "fix");
    script(
        &w.scripts.join("preview.sh"),
        "echo starting\nsleep 30\necho never",
    );
    let t = std::time::Instant::now();
    w.hf(&["push"]).fails(1, "did not finish within 1s");
    assert!(t.elapsed() < std::time::Duration::from_secs(15));
}

#[test]
fn a_wide_diff_is_refused_unless_allowed_with_a_reason_which_is_recorded() {
    let w = World::new();
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.repo.write("app/pdf", "pdf ok\n");
    for i in 0..12 {
        w.repo
            .write(&format!("app/while_we_are_here_{i}.txt"), "refactor\n");
    }
    w.repo.commit_as(DEV, "fix and a refactor");
    w.hf(&["push"]).ok();
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    w.hf(&["ship"])
        .fails(1, "the diff is not focused: 13 files");
    w.hf(&["ship", "--allow-wide"]).fails(2, "--reason");
    w.hf(&[
        "ship",
        "--allow-wide",
        "--reason",
        "generated files of the fix",
    ])
    .ok();
    let s = w.status("HF-1");
    assert_eq!(s["anti_patterns"][0]["pattern"], "wide_diff");
    assert!(
        s["anti_patterns"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("generated files")
    );
}

#[test]
fn conflict_markers_are_refused() {
    let w = World::new();
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.write(
        "app/main.txt",
        "<<<<<<< HEAD\nline 1\n=======\nline one\n>>>>>>> other\n",
    );
    w.repo.commit_as(DEV, "oops");
    w.hf(&["push"]).ok();
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    w.hf(&["ship"]).fails(1, "conflict markers in app/main.txt");
}

#[test]
fn ship_refuses_when_the_head_moved_since_the_preview() {
    let w = World::new();
    w.started_and_pushed("pdf-crash", "critical");
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    w.repo.push_from_elsewhere(
        "hotfix/pdf-crash",
        "app/sneaky.txt",
        "untested\n",
        "untested change",
    );
    w.hf(&["ship"])
        .fails(1, "moved since the preview was tested");
    assert_eq!(
        w.repo
            .origin_git(&["rev-list", "--merges", "--count", "main"]),
        "0"
    );
}

#[test]
fn production_unhealthy_after_deploy_rolls_back_by_itself() {
    let w = World::new();
    let good_main = w.origin_sha("main");
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.repo.write("app/pdf", "pdf ok\n");
    // Passes in preview, fails in production.
    w.repo.write("app/health_prod", "db pool exhausted\n");
    w.repo.commit_as(DEV, "fix that breaks production");
    w.hf(&["push"]).ok();
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    let r = w.hf(&["ship"]).fails(1, "rolled back automatically");
    assert!(r.all().contains("db pool exhausted"), "{}", r.all());
    // Production back on the previous release, main reverted to the good code.
    let rollbacks = std::fs::read_to_string(w.prod.dir.join("rollbacks")).unwrap();
    assert_eq!(rollbacks.trim(), format!("rollback {good_main}"));
    assert_eq!(
        std::fs::read_to_string(w.prod.dir.join("health"))
            .unwrap()
            .trim(),
        "ok"
    );
    let main = w.origin_sha("main");
    assert_ne!(main, good_main);
    assert_eq!(
        w.repo
            .origin_git(&["rev-parse", &format!("{main}^{{tree}}")]),
        w.repo
            .origin_git(&["rev-parse", &format!("{good_main}^{{tree}}")])
    );
    let s = w.status("HF-1");
    assert_eq!(s["state"], "rolled_back");
    assert_eq!(s["rolled_back"]["automatic"], true);
    // The incident stays open; a new attempt starts from the reverted main.
    w.hf(&["close"]).fails(1, "cannot be closed");
    w.hf(&[
        "start",
        "pdf-crash-2",
        "--severity",
        "critical",
        "--incident",
        "HF-1",
    ])
    .ok();
    assert_eq!(w.repo.git(&["rev-parse", "HEAD"]), main);
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.commit_as(DEV, "better fix");
    w.hf(&["push"]).ok();
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    w.hf(&["ship"]).ok();
    let s = w.status("HF-1");
    assert_eq!(s["state"], "deployed");
    assert_eq!(s["attempt"], 2);
    assert_eq!(s["rollbacks"], 1);
    assert_eq!(s["branch"], "hotfix/pdf-crash-2");
}

#[test]
fn start_incident_is_only_for_rolled_back_incidents() {
    let w = World::new();
    w.started_and_pushed("pdf-crash", "critical");
    w.repo.git(&["checkout", "--quiet", "main"]);
    w.hf(&[
        "start",
        "again",
        "--severity",
        "critical",
        "--incident",
        "HF-1",
    ])
    .fails(1, "not rolled back");
    w.hf(&[
        "start",
        "again",
        "--severity",
        "critical",
        "--incident",
        "HF-9",
    ])
    .fails(2, "no incident HF-9");
}

#[test]
fn manual_rollback_after_backport_reverts_main_and_develop() {
    let w = World::new();
    let good_main = w.origin_sha("main");
    w.shipped();
    w.hf(&["backport"]).ok();
    let develop_before = w.origin_sha("develop");
    assert_eq!(w.repo.origin_git(&["show", "develop:app/pdf"]), "pdf ok");
    w.hf(&["rollback", "--reason", ""])
        .fails(2, "needs --reason");
    w.hf(&["rollback", "--reason", "exports now time out"]).ok();
    let main = w.origin_sha("main");
    assert_eq!(
        w.repo
            .origin_git(&["rev-parse", &format!("{main}^{{tree}}")]),
        w.repo
            .origin_git(&["rev-parse", &format!("{good_main}^{{tree}}")])
    );
    // develop: the fix is reverted there too, develop's own work stays.
    let develop = w.origin_sha("develop");
    assert_eq!(
        w.repo.origin_git(&["rev-parse", &format!("{develop}^")]),
        develop_before
    );
    assert_eq!(w.repo.origin_git(&["show", "develop:app/pdf"]), "crash");
    assert_eq!(
        w.repo.origin_git(&["show", "develop:app/feature.txt"]),
        "next release"
    );
    let rollbacks = std::fs::read_to_string(w.prod.dir.join("rollbacks")).unwrap();
    assert_eq!(rollbacks.trim(), format!("rollback {good_main}"));
    let s = w.status("HF-1");
    assert_eq!(s["state"], "rolled_back");
    assert_eq!(s["rolled_back"]["automatic"], false);
    // Idempotent.
    w.hf(&["rollback", "--reason", "again"]).ok();
    assert_eq!(w.count("HF-1", "rolled_back"), 1);
    assert_eq!(w.origin_sha("main"), main);
}

#[test]
fn rollback_before_merge_is_refused() {
    let w = World::new();
    w.started_and_pushed("pdf-crash", "critical");
    w.hf(&["rollback", "--reason", "x"]).fails(1, "not merged");
}

fn conflicting_world() -> World {
    let w = World::new();
    // develop changed the same lines as the fix will.
    w.repo.push_from_elsewhere(
        "develop",
        "app/pdf",
        "rewritten on develop\n",
        "develop rewrites pdf",
    );
    w.shipped();
    w
}

#[test]
fn backport_conflict_resolved_with_continue() {
    let w = conflicting_world();
    let develop_before = w.origin_sha("develop");
    let r = w.hf(&["backport"]).fails(1, "conflicts in");
    assert!(r.all().contains("app/pdf"), "{}", r.all());
    let s = w.status("HF-1");
    let wt = std::path::PathBuf::from(s["backport_conflict"]["worktree"].as_str().unwrap());
    assert!(wt.join("app/pdf").exists());
    // Nothing was pushed; the user's work tree is untouched.
    assert_eq!(w.origin_sha("develop"), develop_before);
    assert_eq!(
        w.repo.git(&["branch", "--show-current"]),
        "hotfix/pdf-crash"
    );
    w.hf(&["backport"]).fails(1, "waiting for conflicts");
    w.hf(&["backport", "--continue"])
        .fails(1, "still unresolved");
    let git_wt = |args: &[&str]| w.repo.git_in(&wt, args);
    // Marked as resolved but markers left in: refused, never committed.
    git_wt(&["add", "app/pdf"]);
    w.hf(&["backport", "--continue"])
        .fails(1, "conflict markers remain in app/pdf");
    std::fs::write(wt.join("app/pdf"), "rewritten on develop, pdf ok\n").unwrap();
    git_wt(&["add", "app/pdf"]);
    w.hf(&["backport", "--continue"]).ok();
    let develop = w.origin_sha("develop");
    let head = w.status("HF-1")["head_sha"].as_str().unwrap().to_string();
    assert!(
        w.repo
            .git_ok(&["merge-base", "--is-ancestor", &head, &develop])
    );
    assert_eq!(
        w.repo.origin_git(&["show", "develop:app/pdf"]),
        "rewritten on develop, pdf ok"
    );
    assert!(!wt.exists());
    assert_eq!(w.status("HF-1")["state"], "backported");
}

#[test]
fn backport_abort_leaves_everything_as_before() {
    let w = conflicting_world();
    let develop_before = w.origin_sha("develop");
    w.hf(&["backport"]).fails(1, "conflicts in");
    let wt = w.status("HF-1")["backport_conflict"]["worktree"]
        .as_str()
        .unwrap()
        .to_string();
    w.hf(&["backport", "--abort"]).ok();
    assert!(!std::path::Path::new(&wt).exists());
    assert_eq!(w.origin_sha("develop"), develop_before);
    assert!(w.status("HF-1")["backport_conflict"].is_null());
    assert!(!w.repo.git(&["worktree", "list"]).contains("backport"));
    // And it can be started again.
    w.hf(&["backport"]).fails(1, "conflicts in");
}

#[test]
fn timeline_against_targets_with_a_fixed_clock() {
    let mut w = World::new();
    w.now = Some("2026-03-01T10:00:00Z".into());
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.commit_as(DEV, "fix");
    w.now = Some("2026-03-01T10:12:00Z".into());
    w.hf(&["push"]).ok();
    w.now = Some("2026-03-01T10:40:00Z".into());
    let s = w.status("HF-1");
    let step = |name: &str| {
        s["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["step"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(step("fix")["elapsed_s"], 720);
    assert_eq!(step("fix")["target_s"], 1200);
    assert_eq!(step("fix")["over"], false);
    assert_eq!(step("preview")["elapsed_s"], 720);
    // Not approved yet at 40 minutes: over its 27-minute target.
    assert_eq!(step("approval")["done"], false);
    assert_eq!(step("approval")["elapsed_s"], 2400);
    assert_eq!(step("approval")["over"], true);
    assert_eq!(step("resolved")["target_s"], 1800);
    let text = w.hf(&["status"]).ok().stdout;
    assert!(text.contains("OVER TARGET"), "{text}");
}

#[test]
fn security_incidents_carry_no_details() {
    let w = World::new();
    w.hf(&[
        "start",
        "token-leak",
        "--severity",
        "critical",
        "--security",
        "--title",
        "Session tokens leak via referer",
    ])
    .ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.commit_as(DEV, "fix");
    w.hf(&["push"]).ok();
    let jsonl =
        std::fs::read_to_string(w.repo.work.join(".git/hotfix/notifications.jsonl")).unwrap();
    assert!(
        !jsonl.contains("Session tokens") && !jsonl.contains("referer"),
        "{jsonl}"
    );
    let st = w.hf(&["status"]).ok().stdout;
    assert!(!st.contains("Session tokens"), "{st}");
    let s = w.status("HF-1");
    assert_eq!(s["title"], "HF-1 security incident");
}

#[test]
fn corrupt_config_and_missing_config_are_usage_errors() {
    let w = World::new();
    w.repo.write("hotfix.toml", "[team\ntech_leads = ");
    w.hf(&["start", "pdf-crash", "--severity", "critical"])
        .fails(2, "hotfix.toml is not valid");
    w.repo
        .write("hotfix.toml", "[deploy]\nwatch = \"soonish\"\n");
    w.hf(&["start", "pdf-crash", "--severity", "critical"])
        .fails(2, "not a duration");
    std::fs::remove_file(w.repo.work.join("hotfix.toml")).unwrap();
    w.hf(&["start", "pdf-crash", "--severity", "critical"])
        .fails(2, "run `hotfix init`");
    w.hf(&["init"]).ok();
    assert!(w.repo.read("hotfix.toml").contains("[policy.critical]"));
    w.hf(&["init"]).fails(1, "exists already");
}

#[test]
fn commands_without_an_id_need_a_hotfix_branch() {
    let w = World::new();
    w.hf(&["push"]).fails(2, "not a hotfix/* branch");
    w.hf(&["status", "HF-3"]).fails(2, "no incident HF-3");
    w.hf(&["status", "HF-x"]).fails(2, "not an incident id");
}

#[test]
fn an_unreachable_remote_is_a_clear_error() {
    let w = World::new();
    w.repo
        .git(&["remote", "set-url", "origin", "/nonexistent/origin.git"]);
    w.hf(&["start", "pdf-crash", "--severity", "critical"])
        .fails(1, "cannot fetch from `origin`");
    assert_eq!(w.log().as_array().unwrap().len(), 0);
}

#[test]
fn ship_backport_moves_main_and_develop_in_one_atomic_push() {
    let w = World::new();
    w.started_and_pushed("pdf-crash", "critical");
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    let r = w.hf(&["ship", "--backport"]).ok();
    assert!(r.all().contains("in one atomic push"), "{}", r.all());
    let head = w.status("HF-1")["head_sha"].as_str().unwrap().to_string();
    let develop = w.origin_sha("develop");
    assert!(
        w.repo
            .git_ok(&["merge-base", "--is-ancestor", &head, &develop])
    );
    assert_eq!(
        w.repo.origin_git(&["show", "develop:app/feature.txt"]),
        "next release"
    );
    assert_eq!(w.status("HF-1")["state"], "backported");
    assert_eq!(w.count("HF-1", "backported"), 1);
    // Nothing left for `backport` to do.
    w.hf(&["backport"]).ok();
    assert_eq!(w.origin_sha("develop"), develop);
}

#[test]
fn ship_backport_falls_back_when_develop_conflicts() {
    let w = World::new();
    w.repo.push_from_elsewhere(
        "develop",
        "app/pdf",
        "rewritten on develop\n",
        "develop rewrites pdf",
    );
    let develop_before = w.origin_sha("develop");
    w.started_and_pushed("pdf-crash", "critical");
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    w.hf(&["ship", "--backport"]).fails(1, "conflicts in");
    // main shipped; develop untouched; the backport waits for a person.
    assert_eq!(w.origin_sha("develop"), develop_before);
    let s = w.status("HF-1");
    assert_eq!(s["state"], "deployed");
    assert!(
        s["backport_conflict"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "app/pdf")
    );
}

#[test]
fn a_combined_ship_that_fails_in_production_is_reverted_on_develop_too() {
    let w = World::new();
    let develop_before = w.origin_sha("develop");
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.write("app/health_prod", "db pool exhausted\n");
    w.repo.commit_as(DEV, "fix that breaks production");
    w.hf(&["push"]).ok();
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    w.hf(&["ship", "--backport"])
        .fails(1, "rolled back automatically");
    let develop = w.origin_sha("develop");
    assert_eq!(
        w.repo
            .origin_git(&["rev-parse", &format!("{develop}^{{tree}}")]),
        w.repo
            .origin_git(&["rev-parse", &format!("{develop_before}^{{tree}}")])
    );
    assert_eq!(w.status("HF-1")["state"], "rolled_back");
}

/// The CLI on the team's PostgreSQL (`HOTFIX_DATABASE_URL=postgres://…`):
/// the same workflow, the incident log shared by everyone pointed at it.
#[test]
fn the_workflow_runs_on_postgresql() {
    let Ok(base) = std::env::var("HOTFIX_TEST_DATABASE_URL") else {
        eprintln!("HOTFIX_TEST_DATABASE_URL is not set: skipped");
        return;
    };
    let schema = format!(
        "hf_cli_{}_{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond() % 1_000_000_000
    );
    let mut admin = postgres::Client::connect(&base, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let w = World::new();
    let db = [("HOTFIX_DATABASE_URL", url.as_str())];
    w.hf_env(DEV, &["start", "pdf-crash", "--severity", "critical"], &db)
        .ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.commit_as(DEV, "fix");
    w.hf_env(DEV, &["push"], &db).ok();
    w.hf_env(LEAD, &["approve", "HF-1"], &db).ok();
    w.hf_env(DEV, &["ship"], &db).ok();
    let st = w.hf_env(DEV, &["status", "HF-1", "--json"], &db).ok();
    let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    assert_eq!(v["state"], "deployed");
    // The events are in PostgreSQL, not in the local SQLite file.
    let n: i64 = admin
        .query_one(&format!("SELECT COUNT(*) FROM {schema}.events"), &[])
        .unwrap()
        .get(0);
    assert!(n >= 6, "{n} events");
    assert_eq!(
        w.log().as_array().unwrap().len(),
        0,
        "nothing in the local SQLite log"
    );
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}

/// An incident reported by an alert on the team server has no branch; the
/// developer who takes it cuts the branch with `start --incident`.
#[test]
fn a_reported_incident_is_taken_with_start_incident() {
    use hotfix_core::provider::Store;
    let w = World::new();
    let db = w.repo.work.join(".git/hotfix/hotfix.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let store = hotfix_store::SqliteStore::open(&db).unwrap();
    let id = store
        .declare(
            &hotfix_core::event::NewEvent {
                at: jiff::Timestamp::now(),
                actor: "alertmanager (alert)".into(),
                kind: hotfix_core::event::EventKind::Declared {
                    name: "error-rate".into(),
                    title: "High error rate".into(),
                    severity: hotfix_core::Severity::Critical,
                    customer_facing: true,
                    security: false,
                    branch: "hotfix/error-rate".into(),
                    base_sha: String::new(),
                },
            },
            &|_| vec![],
        )
        .unwrap();
    drop(store);
    assert_eq!(w.status(&id.to_string())["state"], "reported");
    // Starting the same name without taking the incident is refused with the way to take it.
    w.hf(&["start", "error-rate", "--severity", "critical"])
        .fails(1, "--incident HF-1");
    let before_main = w.origin_sha("main");
    w.hf(&[
        "start",
        "error-rate",
        "--incident",
        "HF-1",
        "--severity",
        "critical",
    ])
    .ok();
    assert_eq!(
        w.repo.git(&["branch", "--show-current"]),
        "hotfix/error-rate"
    );
    assert_eq!(w.repo.git(&["rev-parse", "HEAD"]), before_main);
    let s = w.status("HF-1");
    assert_eq!(s["state"], "fixing");
    assert_eq!(s["attempt"], 1);
    assert_eq!(w.count("HF-1", "attempt_started"), 1);
}

/// The team server may record the forge's echo of a push (`head_moved`)
/// before the CLI records the push itself: the push is still recorded with
/// its commits and diff, so nobody approves their own hotfix unnoticed.
#[test]
fn a_push_seen_first_by_the_forge_is_still_recorded_with_its_authors() {
    use hotfix_core::provider::Store;
    let w = World::new();
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.repo.write("app/pdf", "pdf ok\n");
    let fix = w.repo.commit_as(LEAD, "Fix PDF export crash");
    let db = w.repo.work.join(".git/hotfix/hotfix.db");
    let store = hotfix_store::SqliteStore::open(&db).unwrap();
    let id = hotfix_core::IncidentId(1);
    let v = store.events(id).unwrap().len() as u64;
    store
        .append(
            id,
            v,
            &[hotfix_core::event::NewEvent {
                at: jiff::Timestamp::now(),
                actor: "github".into(),
                kind: hotfix_core::event::EventKind::HeadMoved {
                    sha: fix.clone(),
                    source: "github".into(),
                },
            }],
            &[],
        )
        .unwrap();
    drop(store);
    w.hf(&["push"]).ok();
    assert_eq!(w.count("HF-1", "pushed"), 1);
    // The lead wrote the fix, so the lead may not approve it.
    w.hf_as(LEAD, &["approve", "HF-1"])
        .fails(1, "nobody approves their own hotfix");
}
