//! A new team's first config: committed but not pushed, different on the
//! remote's main, missing on the branch in use, promising checks it cannot
//! run; and a conflicted backport finished from inside its worktree, as the
//! conflict hint says. Real git repositories with a bare origin, real HTTP
//! on 127.0.0.1, the real binary.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::Path;

use common::*;

/// World's hotfix.toml without its `[[area_checks]]` block.
fn without_area_checks(toml: &str) -> String {
    let start = toml.find("[[area_checks]]").unwrap();
    let rest = &toml[start..];
    let end = rest.find("\n\n").map_or(rest.len(), |i| i + 1);
    format!("{}{}", &toml[..start], &rest[end..])
}

/// Runs `hotfix` as DEV in another directory of the repo (a worktree).
fn hf_in(w: &World, dir: &Path, args: &[&str]) -> Run {
    hotfix_testkit::run_bin(&bin(), &w.repo, dir, args, &[("HOTFIX_USER", DEV)])
}

fn incidents(w: &World) -> usize {
    w.log().as_array().unwrap().len()
}

#[test]
fn start_refuses_a_config_committed_on_main_but_not_pushed() {
    let w = World::new();
    let team = w.repo.read("hotfix.toml");
    // origin/main has no hotfix.toml yet; the team commits it on main and
    // forgets the push.
    w.repo.git(&["rm", "--quiet", "hotfix.toml"]);
    w.repo.commit_as(DEV, "before hotfix");
    w.repo.git(&["push", "--quiet", "origin", "main"]);
    w.repo.write("hotfix.toml", &team);
    w.repo
        .commit_as(DEV, "hotfix.toml: the team's hotfix policy");

    let r = w
        .hf(&["start", "pdf-crash", "--severity", "critical"])
        .fails(1, "hotfix.toml is committed on main but not pushed");
    assert!(r.all().contains("`git push origin main`"), "{}", r.all());
    // Nothing was created: no incident, no branch, still on main.
    assert_eq!(incidents(&w), 0);
    assert_eq!(w.repo.git(&["branch", "--list", "hotfix/*"]), "");
    assert_eq!(w.repo.git(&["branch", "--show-current"]), "main");

    // The hint, followed literally, is all it takes.
    w.repo.git(&["push", "--quiet", "origin", "main"]);
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    assert_eq!(w.repo.read("hotfix.toml"), team, "the branch carries it");
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.commit_as(DEV, "Fix PDF export");
    w.hf(&["push"]).ok();
    assert_eq!(w.status("HF-1")["state"], "awaiting_approval");
}

#[test]
fn a_config_that_is_not_committed_at_all_is_refused_too() {
    let w = World::new();
    let team = w.repo.read("hotfix.toml");
    w.repo.git(&["rm", "--quiet", "hotfix.toml"]);
    w.repo.commit_as(DEV, "before hotfix");
    w.repo.git(&["push", "--quiet", "origin", "main"]);
    w.repo.write("hotfix.toml", &team); // untracked
    let r = w
        .hf(&["start", "pdf-crash", "--severity", "critical"])
        .fails(1, "hotfix.toml is not on origin/main");
    assert!(r.all().contains("git push origin main"), "{}", r.all());
    assert_eq!(incidents(&w), 0);
}

#[test]
fn start_follows_origin_mains_config_and_says_which_sections_differ() {
    let w = World::new();
    let mine = w.repo.read("hotfix.toml");
    let theirs = mine.replacen(
        &format!("reviewers = [\"{REV}\"]"),
        &format!("reviewers = [\"{REV}\", \"rev2@example.com\"]"),
        1,
    );
    assert_ne!(mine, theirs);
    // A teammate changed the team on main; this clone's main is behind.
    w.repo
        .push_from_elsewhere("main", "hotfix.toml", &theirs, "add a reviewer");
    let r = w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    assert!(
        r.stderr
            .contains("your hotfix.toml differs from origin/main's in [team]"),
        "{}",
        r.all()
    );
    assert!(r.stderr.contains("git push origin main"), "{}", r.all());
    // The branch carries the team's, which every later command reads.
    assert_eq!(w.repo.read("hotfix.toml"), theirs);

    // A [git] that differs would name the branch under one config and work
    // it under the other: refused, and nothing is created.
    let w = World::new();
    let theirs = format!("[git]\nprefix = \"fix/\"\n{}", w.repo.read("hotfix.toml"));
    w.repo
        .push_from_elsewhere("main", "hotfix.toml", &theirs, "our own prefix");
    w.hf(&["start", "pdf-crash", "--severity", "critical"])
        .fails(1, "[git] differs from origin/main's");
    assert_eq!(incidents(&w), 0);
}

#[test]
fn commands_on_a_branch_without_the_config_read_the_teams_from_main() {
    // The team's prefix is observable: with the built-in defaults, fix/*
    // would not be a hotfix branch at all.
    let w = World::with_config("[git]\nprefix = \"fix/\"\n");
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    assert_eq!(w.repo.git(&["branch", "--show-current"]), "fix/pdf-crash");
    // The branch loses its config (as a branch cut before the team
    // committed it has none).
    w.repo.git(&["rm", "--quiet", "hotfix.toml"]);
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.commit_as(DEV, "Fix PDF export");

    let r = w.hf(&["status"]).ok();
    assert!(r.stdout.contains("HF-1"), "{}", r.all());
    assert!(
        r.stderr.contains(
            "fix/pdf-crash has no hotfix.toml: using the team's, committed on origin/main"
        ),
        "{}",
        r.all()
    );
    // A write too: the team's deploy scripts run the preview.
    w.hf(&["push"]).ok();
    assert_eq!(w.status("HF-1")["state"], "awaiting_approval");
    // `init` here would write a second, default config into the hotfix.
    w.hf(&["init"])
        .fails(1, "the team's hotfix.toml is committed on origin/main");
    assert!(!w.repo.work.join("hotfix.toml").exists());
}

#[test]
fn init_writes_an_area_check_example_and_says_to_push_it() {
    let w = World::new();
    let r = w.hf(&["init", "--force"]).ok();
    assert!(
        r.stdout
            .contains("commit it and push it to main (git push origin main)"),
        "{}",
        r.all()
    );
    assert!(r.stdout.contains("[[area_checks]]"), "{}", r.all());
    let written = w.repo.read("hotfix.toml");
    assert!(
        written.contains("# [[area_checks]]\n# name = "),
        "{written}"
    );
    // As written, the high policy asks for area checks that are not there:
    // every command says so, naming the key, instead of passing silently.
    w.hf(&["log"]).fails(
        2,
        "policy.high.area_checks = true but no [[area_checks]] is configured",
    );
    // Taking the example in (as the comment says) makes it usable.
    let taken = written
        .replace("# [[area_checks]]\n", "[[area_checks]]\n")
        .replacen("# name = ", "name = ", 1)
        .replace("# path = \"/export", "path = \"/export")
        .replace("# status = 200\n# contains", "status = 200\n# contains");
    w.repo.write("hotfix.toml", &taken);
    w.hf(&["log"]).ok();
}

#[test]
fn area_checks_the_policy_states_but_nothing_configures_are_a_config_error() {
    let w = World::new();
    let cfg = without_area_checks(&w.repo.read("hotfix.toml")).replacen(
        "[deploy]",
        "[policy.high]\nresponse = \"within 1h\"\ntech_leads = 1\nreviewers = 1\npreview = true\nsmoke = true\narea_checks = true\n\n[deploy]",
        1,
    );
    w.repo.write("hotfix.toml", &cfg);
    for args in [
        &["start", "search-down", "--severity", "high"][..],
        &["status"][..],
        &["log", "--json"][..],
    ] {
        w.hf(args).fails(
            2,
            "policy.high.area_checks = true but no [[area_checks]] is configured",
        );
    }
    assert_eq!(w.repo.git(&["branch", "--list", "hotfix/*"]), "");
}

#[test]
fn push_says_which_checks_ran() {
    let w = World::new();
    w.hf(&["start", "pdf-crash", "--severity", "high"]).ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.commit_as(DEV, "Fix PDF export");
    let r = w.hf(&["push"]).ok();
    assert!(
        r.stderr.contains("smoke checks: GET /health ✓"),
        "{}",
        r.all()
    );
    assert!(
        r.stderr.contains("area checks: PDF export ✓"),
        "{}",
        r.all()
    );

    // The built-in policy (no [policy.high] written) with no area checks:
    // the push goes on, and says that nothing tested the affected areas.
    let w = World::new();
    let cfg = without_area_checks(&w.repo.read("hotfix.toml"));
    w.repo.write("hotfix.toml", &cfg);
    w.repo.commit_as(DEV, "no area checks");
    w.repo.git(&["push", "--quiet", "origin", "main"]);
    w.hf(&["start", "pdf-crash", "--severity", "high"]).ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.commit_as(DEV, "Fix PDF export");
    let r = w.hf(&["push"]).ok();
    assert!(
        r.stderr.contains(
            "policy.high.area_checks is on (the built-in policy) but no [[area_checks]] is configured: no affected-area check ran"
        ),
        "{}",
        r.all()
    );
}

#[test]
fn a_policy_the_team_cannot_approve_is_said_when_acting() {
    let w = World::new();
    let cfg = w
        .repo
        .read("hotfix.toml")
        .replacen(&format!("reviewers = [\"{REV}\"]"), "reviewers = []", 1)
        .replacen(
            &format!("tech_leads = [\"{LEAD}\", \"{LEAD2}\"]"),
            &format!("tech_leads = [\"{LEAD}\"]"),
            1,
        );
    w.repo.write("hotfix.toml", &cfg);
    w.repo.commit_as(DEV, "a team of one");
    w.repo.git(&["push", "--quiet", "origin", "main"]);
    let r = w.hf(&["start", "pdf-crash", "--severity", "high"]).ok();
    assert!(
        r.stderr.contains(
            "[policy.high] asks for 2 approvals (1 from tech leads, 1 from reviewers) but [team] names 1 person who may approve"
        ),
        "{}",
        r.all()
    );
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
fn backport_continue_works_from_inside_the_conflict_worktree() {
    let w = conflicting_world();
    let r = w.hf(&["backport"]).fails(1, "conflicts in");
    let wt = std::path::PathBuf::from(
        w.status("HF-1")["backport_conflict"]["worktree"]
            .as_str()
            .unwrap(),
    );
    assert!(
        r.all().contains(&format!("cd {}", wt.display())),
        "{}",
        r.all()
    );
    // The person does what the hint says: goes there, resolves, continues.
    // From there, without an id too: the main work tree is on the hotfix branch.
    hf_in(&w, &wt, &["backport", "--continue"]).fails(1, "still unresolved");
    hf_in(&w, &wt, &["status", "HF-1"]).ok();
    std::fs::write(wt.join("app/pdf"), "rewritten on develop, pdf ok\n").unwrap();
    w.repo.git_in(&wt, &["add", "app/pdf"]);
    let r = hf_in(&w, &wt, &["backport", "HF-1", "--continue"]).ok();
    assert!(
        r.all().contains(&format!(
            "your shell is still in it: `cd {}`",
            w.repo.work.display()
        )),
        "{}",
        r.all()
    );
    assert!(
        r.stdout.contains("HF-1 backported to develop"),
        "{}",
        r.all()
    );
    assert!(!wt.exists());
    assert_eq!(w.count("HF-1", "backported"), 1);
    assert_eq!(w.status("HF-1")["state"], "backported");
    let head = w.status("HF-1")["head_sha"].as_str().unwrap().to_string();
    let develop = w.origin_sha("develop");
    assert!(
        w.repo
            .git_ok(&["merge-base", "--is-ancestor", &head, &develop])
    );
    assert_eq!(
        w.repo.origin_git(&["show", "develop:app/pdf"]),
        "rewritten on develop, pdf ok"
    );
    assert!(!w.repo.git(&["worktree", "list"]).contains("backport"));
}

#[test]
fn backport_abort_works_from_inside_the_conflict_worktree() {
    let w = conflicting_world();
    let develop_before = w.origin_sha("develop");
    w.hf(&["backport"]).fails(1, "conflicts in");
    let wt = std::path::PathBuf::from(
        w.status("HF-1")["backport_conflict"]["worktree"]
            .as_str()
            .unwrap(),
    );
    let r = hf_in(&w, &wt, &["backport", "HF-1", "--abort"]).ok();
    assert!(
        r.all().contains(&format!(
            "your shell is still in it: `cd {}`",
            w.repo.work.display()
        )),
        "{}",
        r.all()
    );
    assert!(!wt.exists());
    assert_eq!(w.origin_sha("develop"), develop_before);
    assert!(w.status("HF-1")["backport_conflict"].is_null());
    assert_eq!(w.count("HF-1", "backport_aborted"), 1);
}

#[test]
fn a_config_deleted_in_the_work_tree_is_said_not_replaced_by_the_defaults() {
    let w = World::with_config("[git]\nprefix = \"fix/\"\n");
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    std::fs::remove_file(w.repo.work.join("hotfix.toml")).unwrap();
    // A read goes on with the committed file, and says so.
    let r = w.hf(&["status"]).ok();
    assert!(r.stdout.contains("HF-1"), "{}", r.all());
    assert!(
        r.stderr
            .contains("hotfix.toml is deleted in this work tree"),
        "{}",
        r.all()
    );
    // A command that acts asks instead of guessing.
    w.hf(&["push"]).fails(2, "git checkout -- hotfix.toml");
}
