//! The whole workflow, driven through the real binary against real git
//! repositories with bare remotes and real HTTP servers on 127.0.0.1.
#![allow(clippy::unwrap_used)]

use crate::common;

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
    tick_the_hand_items(&w);
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

/// Ticks the checklist items left to a person on these tests' incidents
/// (hotfix ticks the others itself).
fn tick_the_hand_items(w: &World) {
    w.hf(&[
        "checklist",
        "--done",
        "incident_log",
        "monitoring_reviewed",
        "docs_updated",
        "team_notified",
    ])
    .ok();
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
            .fails(2, "not a valid hotfix name");
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
fn a_named_config_that_is_missing_is_refused_by_every_command() {
    let w = World::new();
    w.started_and_pushed("pdf-crash", "critical");
    let missing = w.repo.work.join("team").join("hotfix.toml");
    let missing = missing.to_str().unwrap();
    let env = [("HOTFIX_CONFIG", missing)];
    let commands: [&[&str]; 14] = [
        &["status"],
        &["status", "HF-1", "--json"],
        &["log"],
        &["log", "--json"],
        &["start", "other", "--severity", "high"],
        &["push"],
        &["approve", "HF-1"],
        &["ship", "HF-1"],
        &["backport", "HF-1"],
        &["rollback", "HF-1", "--reason", "worse"],
        &["checklist", "HF-1"],
        &["postmortem", "HF-1"],
        &["close", "HF-1"],
        &["platform", "status"],
    ];
    let before = w.log();
    for args in commands {
        let r = w.hf_env(DEV, args, &env);
        assert_eq!(r.code, 2, "{args:?} must refuse:\n{}", r.all());
        assert!(
            r.all().contains("names a config file that does not exist")
                && r.all().contains(missing),
            "{args:?}: {}",
            r.all()
        );
    }
    assert_eq!(w.log(), before, "nothing was written");
    // An empty HOTFIX_CONFIG is unset: the repo's hotfix.toml applies.
    w.hf_env(DEV, &["status", "HF-1"], &[("HOTFIX_CONFIG", "")])
        .ok();
    // `init` creates the named file, and then every command reads it.
    std::fs::create_dir_all(w.repo.work.join("team")).unwrap();
    w.hf_env(DEV, &["init"], &env).ok();
    // The template's high policy asks for area checks: until the team
    // lists them, the file is read and refused, naming the key.
    w.hf_env(DEV, &["status", "HF-1"], &env)
        .fails(2, "policy.high.area_checks = true");
    let mut named = std::fs::read_to_string(missing).unwrap();
    named.push_str("\n[[area_checks]]\npath = \"/export/pdf\"\n");
    std::fs::write(missing, named).unwrap();
    w.hf_env(DEV, &["status", "HF-1"], &env).ok();
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
        hotfix_testkit::skip("HOTFIX_TEST_DATABASE_URL is not set: the PostgreSQL workflow test");
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
    // Reported: in triage until a tech lead confirms it, and nobody takes
    // it before (the refusal says how to go on).
    assert_eq!(w.status(&id.to_string())["state"], "triage");
    w.hf(&["start", "error-rate", "--severity", "critical"])
        .fails(1, "hotfix triage HF-1 confirm");
    w.hf(&[
        "start",
        "error-rate",
        "--incident",
        "HF-1",
        "--severity",
        "critical",
    ])
    .fails(1, "in triage");
    w.hf_as(LEAD, &["triage", "HF-1", "confirm"]).ok();
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

// ---------------------------------------------------------------------------
// Rollback guards, rollback steps, withdrawn approvals.

/// The events of one incident, from `hotfix log --json`.
fn events_of(w: &World, id: &str) -> Vec<serde_json::Value> {
    w.log()
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .map(|i| i["events"].as_array().unwrap().clone())
        .unwrap_or_default()
}

/// The `rollback_step` steps of an incident, in order (`production`,
/// `main_reverted`, `develop_reverted`, `stalled`).
fn rollback_steps(w: &World, id: &str) -> Vec<String> {
    events_of(w, id)
        .iter()
        .filter(|e| e["type"] == "rollback_step")
        .map(|e| e["step"]["step"].as_str().unwrap().to_string())
        .collect()
}

/// The commit an incident's `step` (`main_reverted`, `develop_reverted`)
/// recorded.
fn rollback_step_sha(w: &World, id: &str, step: &str) -> String {
    events_of(w, id)
        .iter()
        .find(|e| e["type"] == "rollback_step" && e["step"]["step"] == step)
        .and_then(|e| e["step"]["sha"].as_str())
        .unwrap_or_else(|| panic!("no {step} step with a sha on {id}"))
        .to_string()
}

/// What production's deploy script was asked to roll back to, one line a rollback.
fn production_rollbacks(w: &World) -> String {
    std::fs::read_to_string(w.prod.dir.join("rollbacks")).unwrap()
}

/// Revert commits on origin's `branch`.
fn reverts_on(w: &World, branch: &str) -> usize {
    let log = w
        .repo
        .origin_git(&["log", "--format=%s", "--grep=^Revert", branch]);
    log.lines().filter(|l| !l.is_empty()).count()
}

/// HF-1 shipped, backported, post-mortem scheduled, checklist ticked, closed.
fn shipped_and_closed(w: &World) {
    w.shipped();
    w.hf(&["backport"]).ok();
    w.hf(&["postmortem"]).ok();
    tick_the_hand_items(w);
    w.hf(&["close"]).ok();
    assert_eq!(w.status("HF-1")["state"], "closed");
}

/// A second incident, HF-2, fixing another file, shipped on top of HF-1.
fn ship_second(w: &World) -> String {
    w.repo.git(&["checkout", "--quiet", "main"]);
    w.hf(&[
        "start",
        "main-typo",
        "--severity",
        "critical",
        "--title",
        "Main page typo",
    ])
    .ok();
    w.repo.write("app/main.txt", "line 1\nline two\nline 3\n");
    w.repo.commit_as(DEV, "Fix the main page typo");
    w.hf(&["push"]).ok();
    w.hf_as(LEAD, &["approve", "HF-2"]).ok();
    w.hf(&["ship", "HF-2"]).ok();
    let s = w.status("HF-2");
    assert_eq!(s["state"], "deployed");
    s["merge_sha"].as_str().unwrap().to_string()
}

#[test]
fn rolling_back_an_old_incident_is_refused_unless_forced() {
    let w = World::new();
    let good_main = w.origin_sha("main");
    shipped_and_closed(&w);
    let hf2_merge = ship_second(&w);
    let main_before = w.origin_sha("main");
    assert_eq!(main_before, hf2_merge);
    let develop_before = w.origin_sha("develop");
    assert_eq!(w.prod_sha(), hf2_merge);
    let hf1_events = events_of(&w, "HF-1").len();

    // Refused: HF-1 is closed and HF-2 shipped on top of it.
    let r = w
        .hf(&["rollback", "HF-1", "--reason", "x"])
        .fails(1, "HF-2");
    assert!(r.stderr.contains("HF-2"), "{}", r.all());
    assert!(r.stderr.contains("closed"), "{}", r.all());
    assert!(r.stderr.contains("--force"), "{}", r.all());
    // Nothing changed: not main, not develop, not production, not the log.
    assert_eq!(w.origin_sha("main"), main_before);
    assert_eq!(w.origin_sha("develop"), develop_before);
    assert_eq!(reverts_on(&w, "main"), 0);
    assert_eq!(reverts_on(&w, "develop"), 0);
    assert_eq!(
        w.repo.origin_git(&["show", "main:app/main.txt"]),
        "line 1\nline two\nline 3"
    );
    assert_eq!(w.repo.origin_git(&["show", "main:app/pdf"]), "pdf ok");
    assert_eq!(w.prod_sha(), hf2_merge);
    assert!(!w.prod.dir.join("rollbacks").exists());
    let ev = events_of(&w, "HF-1");
    assert_eq!(ev.len(), hf1_events, "{ev:#?}");
    assert!(
        ev.iter()
            .all(|e| e["type"] != "rollback_step" && e["type"] != "rolled_back"),
        "{ev:#?}"
    );
    let s = w.status("HF-1");
    assert_eq!(s["state"], "closed");
    assert!(s["rolled_back"].is_null());
    assert!(s["rollback_in_progress"].is_null());
    assert_eq!(w.status("HF-2")["state"], "deployed");

    // Forced: done, and recorded as forced with its reason.
    w.hf(&["rollback", "HF-1", "--reason", "x", "--force"]).ok();
    let s = w.status("HF-1");
    assert_eq!(s["state"], "rolled_back");
    assert_eq!(s["rolled_back"]["forced"], "x");
    assert_eq!(s["rolled_back"]["automatic"], false);
    let rolled: Vec<_> = events_of(&w, "HF-1")
        .into_iter()
        .filter(|e| e["type"] == "rolled_back")
        .collect();
    assert_eq!(rolled.len(), 1);
    assert_eq!(rolled[0]["forced"], "x");
    assert_eq!(
        rollback_steps(&w, "HF-1"),
        ["production", "main_reverted", "develop_reverted"]
    );
    // HF-1's fix reverted on main and develop; HF-2's fix stays on main.
    assert_eq!(reverts_on(&w, "main"), 1);
    assert_eq!(reverts_on(&w, "develop"), 1);
    assert_eq!(w.repo.origin_git(&["show", "main:app/pdf"]), "crash");
    assert_eq!(
        w.repo.origin_git(&["show", "main:app/main.txt"]),
        "line 1\nline two\nline 3"
    );
    assert_eq!(w.repo.origin_git(&["show", "develop:app/pdf"]), "crash");
    assert_eq!(
        production_rollbacks(&w).trim(),
        format!("rollback {good_main}")
    );
    let text = w.hf(&["status", "HF-1"]).ok().stdout;
    assert!(!text.contains("state:     closed"), "{text}");
    assert!(text.contains("state:     rolled_back"), "{text}");
    assert!(text.contains("forced: x"), "{text}");
}

#[test]
fn rolling_back_the_live_incident_still_works() {
    let w = World::new();
    let good_main = w.origin_sha("main");
    w.shipped();
    let hf1_merge = w.origin_sha("main");
    let hf2_merge = ship_second(&w);
    // HF-2 is what production runs: no --force needed.
    let r = w.hf(&["rollback", "HF-2", "--reason", "typo fix broke the page"]);
    let r = r.ok();
    assert!(r.stdout.contains("HF-2 rolled back"), "{}", r.all());
    assert!(!r.all().contains("forced"), "{}", r.all());
    let s = w.status("HF-2");
    assert_eq!(s["state"], "rolled_back");
    assert!(s["rolled_back"]["forced"].is_null());
    // Steps recorded as they happened, then the rollback itself.
    let kinds: Vec<String> = events_of(&w, "HF-2")
        .iter()
        .filter(|e| e["type"] == "rollback_step" || e["type"] == "rolled_back")
        .map(|e| {
            if e["type"] == "rollback_step" {
                e["step"]["step"].as_str().unwrap().to_string()
            } else {
                "rolled_back".to_string()
            }
        })
        .collect();
    assert_eq!(kinds, ["production", "main_reverted", "rolled_back"]);
    let main = w.origin_sha("main");
    assert_eq!(rollback_step_sha(&w, "HF-2", "main_reverted"), main);
    assert_eq!(
        w.repo.origin_git(&["rev-parse", &format!("{main}^")]),
        hf2_merge
    );
    // Production back on HF-1's merge; HF-1's fix untouched everywhere.
    assert_eq!(
        production_rollbacks(&w).trim(),
        format!("rollback {hf1_merge}")
    );
    assert_eq!(w.prod_sha(), hf1_merge);
    assert_eq!(w.repo.origin_git(&["show", "main:app/pdf"]), "pdf ok");
    assert_eq!(
        w.repo.origin_git(&["show", "main:app/main.txt"]),
        "line 1\nline 2\nline 3"
    );
    assert_eq!(w.status("HF-1")["state"], "deployed");
    assert_eq!(w.count("HF-1", "rollback_step"), 0);
    assert_eq!(w.count("HF-1", "rolled_back"), 0);
    // With HF-2 rolled back, HF-1 is what production runs again: no --force.
    w.hf(&["rollback", "HF-1", "--reason", "pdf fix broke too"])
        .ok();
    let s = w.status("HF-1");
    assert_eq!(s["state"], "rolled_back");
    assert!(s["rolled_back"]["forced"].is_null());
    assert_eq!(rollback_steps(&w, "HF-1"), ["production", "main_reverted"]);
    assert_eq!(reverts_on(&w, "main"), 2);
    assert_eq!(w.repo.origin_git(&["show", "main:app/pdf"]), "crash");
    assert_eq!(w.prod_sha(), good_main);
}

/// A rollback of HF-1 stalled on develop: shipped and backported, then
/// develop rewrites the backported lines (from elsewhere), so reverting the
/// backport conflicts.
struct StalledOnDevelop {
    /// HF-1's merge on main.
    merge: String,
    /// The backport on develop.
    backport: String,
    /// develop's rewrite on top of the backport.
    rewrite: String,
    /// The rollback that stalled.
    run: Run,
}

fn stalled_on_develop(w: &World) -> StalledOnDevelop {
    w.shipped();
    w.hf(&["backport"]).ok();
    let backport = w.origin_sha("develop");
    let merge = w.origin_sha("main");
    let rewrite = w.repo.push_from_elsewhere(
        "develop",
        "app/pdf",
        "pdf rewritten on develop\n",
        "develop rewrites pdf",
    );
    let run = w
        .hf(&["rollback", "HF-1", "--reason", "exports time out"])
        .fails(1, "incomplete");
    assert_eq!(w.status("HF-1")["state"], "rolling_back");
    StalledOnDevelop {
        merge,
        backport,
        rewrite,
        run,
    }
}

#[test]
fn a_rollback_cut_short_is_recorded_and_a_rerun_finishes_it() {
    let w = World::new();
    let good_main = w.origin_sha("main");
    let StalledOnDevelop {
        merge,
        backport: backported,
        rewrite,
        run: r,
    } = stalled_on_develop(&w);
    assert!(r.all().contains("develop"), "{}", r.all());
    // Production and main are rolled back; develop is not (and was not touched).
    assert_eq!(
        production_rollbacks(&w).trim(),
        format!("rollback {good_main}")
    );
    assert_eq!(reverts_on(&w, "main"), 1);
    let main = w.origin_sha("main");
    assert_eq!(
        w.repo.origin_git(&["rev-parse", &format!("{main}^")]),
        merge
    );
    assert_eq!(w.origin_sha("develop"), rewrite);
    assert_eq!(reverts_on(&w, "develop"), 0);
    // status says so.
    let s = w.status("HF-1");
    assert_eq!(s["state"], "rolling_back");
    assert!(s["rolled_back"].is_null());
    assert_eq!(s["rollback_in_progress"]["production"], true);
    assert_eq!(s["rollback_in_progress"]["main_revert"], main.as_str());
    assert!(s["rollback_in_progress"]["develop_revert"].is_null());
    let text = w.hf(&["status", "HF-1"]).ok().stdout;
    assert!(text.contains("rollback:  INCOMPLETE"), "{text}");
    assert!(text.contains("merge reverted on main"), "{text}");
    assert!(text.contains("stalled:"), "{text}");
    assert_eq!(
        rollback_steps(&w, "HF-1"),
        ["production", "main_reverted", "stalled"]
    );
    assert_eq!(w.count("HF-1", "rolled_back"), 0);
    // Nothing else can be closed over it.
    w.hf(&["close", "HF-1"]).fails(1, "cannot be closed");

    // The cause goes away; the re-run finishes what was left, once.
    w.repo
        .origin_git(&["update-ref", "refs/heads/develop", &backported, &rewrite]);
    w.hf(&["rollback", "HF-1", "--reason", "x"]).ok();
    let s = w.status("HF-1");
    assert_eq!(s["state"], "rolled_back");
    assert!(s["rollback_in_progress"].is_null());
    // The reason decided when it started is kept.
    assert_eq!(s["rolled_back"]["reason"], "exports time out");
    assert_eq!(w.count("HF-1", "rolled_back"), 1);
    assert_eq!(reverts_on(&w, "main"), 1);
    assert_eq!(w.origin_sha("main"), main);
    assert_eq!(reverts_on(&w, "develop"), 1);
    let develop = w.origin_sha("develop");
    assert_eq!(
        w.repo.origin_git(&["rev-parse", &format!("{develop}^")]),
        backported
    );
    assert_eq!(w.repo.origin_git(&["show", "develop:app/pdf"]), "crash");
    // Production was not rolled back a second time.
    let rollbacks = production_rollbacks(&w);
    assert_eq!(rollbacks.lines().count(), 1, "{rollbacks}");
    assert_eq!(
        rollback_steps(&w, "HF-1"),
        ["production", "main_reverted", "stalled", "develop_reverted"]
    );
    let text = w.hf(&["status", "HF-1"]).ok().stdout;
    assert!(!text.contains("INCOMPLETE"), "{text}");
    // And a third run has nothing to do.
    w.hf(&["rollback", "HF-1", "--reason", "x"]).ok();
    assert_eq!(w.count("HF-1", "rolled_back"), 1);
    assert_eq!(w.origin_sha("main"), main);
    assert_eq!(w.origin_sha("develop"), develop);
}

/// The stall says "revert <backport> on develop by hand, then run `hotfix
/// rollback HF-1 --reason TEXT` again". Done exactly so (a plain `git
/// revert -m1`, the conflict resolved), the re-run takes the hand revert
/// (git's own "This reverts commit" line, no `Reverts-Merge:` trailer) as
/// the develop step and finishes, reverting nothing a second time.
#[test]
fn a_backport_reverted_by_hand_as_the_stall_says_lets_the_rerun_finish() {
    let w = World::new();
    let stall = stalled_on_develop(&w);
    let r = &stall.run;
    assert!(r.all().contains("on develop by hand"), "{}", r.all());
    let other = w.repo.dir().join("by-hand");
    w.repo.git_in(
        w.repo.dir(),
        &[
            "clone",
            "--quiet",
            "--branch",
            "develop",
            w.repo.origin.to_str().unwrap(),
            other.to_str().unwrap(),
        ],
    );
    let reverted = std::process::Command::new("git")
        .args(["revert", "--no-edit", "-m1", &stall.backport])
        .current_dir(&other)
        .envs(w.repo.env())
        .output()
        .unwrap();
    assert!(
        !reverted.status.success(),
        "the revert conflicts by hand too"
    );
    std::fs::write(other.join("app/pdf"), "pdf rewritten on develop, no fix\n").unwrap();
    w.repo.git_in(&other, &["add", "app/pdf"]);
    w.repo
        .git_in(&other, &["-c", "core.editor=true", "revert", "--continue"]);
    w.repo
        .git_in(&other, &["push", "--quiet", "origin", "develop"]);
    let by_hand = w.origin_sha("develop");

    let r = w.hf(&["rollback", "HF-1", "--reason", "x"]);
    assert_eq!(r.code, 0, "the re-run after the hand revert:\n{}", r.all());
    let s = w.status("HF-1");
    assert_eq!(s["state"], "rolled_back");
    assert_eq!(rollback_step_sha(&w, "HF-1", "develop_reverted"), by_hand);
    assert_eq!(w.origin_sha("develop"), by_hand);
    assert_eq!(
        rollback_steps(&w, "HF-1"),
        ["production", "main_reverted", "stalled", "develop_reverted"]
    );
}

/// `hotfix rollback HF-1` alone is a usage error (exit 2): `--reason` is
/// required, also for a re-run (whose reason is then ignored). So the
/// stall's hints, on stderr and in the chat notification, name the command
/// with its `--reason`.
#[test]
fn a_stalled_rollback_hints_only_commands_that_run() {
    let w = World::new();
    let stall = stalled_on_develop(&w);
    w.hf(&["rollback", "HF-1"]).fails(2, "--reason");
    let runs = "`hotfix rollback HF-1 --reason TEXT`";
    let out = stall.run.all();
    assert!(out.contains(runs), "the hint on stderr:\n{out}");
    assert!(
        !out.contains("`hotfix rollback HF-1`"),
        "the hint names a command that exits 2:\n{out}"
    );
    let jsonl =
        std::fs::read_to_string(w.repo.work.join(".git/hotfix/notifications.jsonl")).unwrap();
    assert!(jsonl.contains(runs), "the notification's hint:\n{jsonl}");
    assert!(
        !jsonl.contains("`hotfix rollback HF-1`"),
        "the notification names a command that exits 2:\n{jsonl}"
    );
}

/// A forced rollback of HF-1 put production back on the release before
/// HF-1, so HF-2 no longer runs there either, though it still reads
/// `deployed`; its "previous release" is HF-1's merge. Rolling HF-2 back
/// without --force is refused (it would put HF-1's rolled-back fix back into
/// production while main has it reverted), and changes nothing.
#[test]
fn a_forced_rollback_is_not_undone_by_rolling_back_the_later_incident() {
    let w = World::new();
    let good_main = w.origin_sha("main");
    shipped_and_closed(&w);
    let hf1_merge = w.origin_sha("main");
    ship_second(&w);
    w.hf(&["rollback", "HF-1", "--reason", "x", "--force"]).ok();
    assert_eq!(w.prod_sha(), good_main);
    let main = w.origin_sha("main");
    let r = w
        .hf(&["rollback", "HF-2", "--reason", "y"])
        .fails(1, "the forced rollback of HF-1");
    assert!(r.all().contains("--force"), "{}", r.all());
    assert_eq!(w.prod_sha(), good_main);
    assert_ne!(
        w.prod_sha(),
        hf1_merge,
        "production runs HF-1's rolled-back merge again"
    );
    assert_eq!(w.origin_sha("main"), main);
    assert_eq!(w.repo.origin_git(&["show", "main:app/pdf"]), "crash");
    assert_eq!(w.status("HF-2")["state"], "deployed");
    assert!(rollback_steps(&w, "HF-2").is_empty());
    assert_eq!(
        production_rollbacks(&w).lines().count(),
        1,
        "only HF-1's forced rollback reached production"
    );
}

#[test]
fn an_approval_can_be_withdrawn_and_then_no_longer_counts() {
    let w = World::new();
    w.started_and_pushed("pdf-crash", "critical");
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    assert_eq!(w.status("HF-1")["state"], "ready_to_ship");
    // --withdraw needs a reason.
    w.hf_as(LEAD, &["approve", "HF-1", "--withdraw"])
        .fails(2, "--reason");
    assert_eq!(w.count("HF-1", "approval_withdrawn"), 0);
    let r = w
        .hf_as(
            LEAD,
            &["approve", "HF-1", "--withdraw", "--reason", "found a bug"],
        )
        .ok();
    assert!(r.all().contains("withdrawn"), "{}", r.all());
    let s = w.status("HF-1");
    assert_eq!(s["state"], "awaiting_approval");
    assert_eq!(s["approvals"][0]["by"], LEAD);
    assert_eq!(s["approvals"][0]["withdrawn"], "found a bug");
    assert_eq!(s["approvals"][0]["fresh"], false);
    assert_eq!(s["missing_approvals"].as_array().unwrap().len(), 1);
    let text = w.hf(&["status", "HF-1"]).ok().stdout;
    assert!(text.contains("withdrawn: found a bug"), "{text}");
    // It no longer counts: ship refuses and merges nothing.
    w.hf(&["ship"]).fails(1, "missing 1 tech lead approval");
    assert_eq!(
        w.repo
            .origin_git(&["rev-list", "--merges", "--count", "main"]),
        "0"
    );
    // Withdrawing again: nothing to do.
    let r = w
        .hf_as(
            LEAD,
            &["approve", "HF-1", "--withdraw", "--reason", "found a bug"],
        )
        .ok();
    assert!(r.all().contains("nothing to do"), "{}", r.all());
    assert_eq!(w.count("HF-1", "approval_withdrawn"), 1);
    // Approving again (after a look at the bug) counts again.
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    assert_eq!(w.status("HF-1")["state"], "ready_to_ship");
    // Nobody withdraws someone else's approval (the lead's, fresh again).
    let r = w
        .hf_as(LEAD2, &["approve", "HF-1", "--withdraw", "--reason", "no"])
        .ok();
    assert!(r.all().contains("nothing to do"), "{}", r.all());
    assert_eq!(w.count("HF-1", "approval_withdrawn"), 1);
    let s = w.status("HF-1");
    assert_eq!(s["state"], "ready_to_ship");
    assert_eq!(s["missing_approvals"].as_array().unwrap().len(), 0);
    w.hf(&["ship"]).ok();
}
