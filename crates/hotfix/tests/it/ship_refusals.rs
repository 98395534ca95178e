//! `hotfix ship` says everything that stops it in one run, in the order a
//! person fixes it, and every next step is a command this person can run as
//! it stands: the real binary, real git repositories with a bare origin and
//! real HTTP preview/production servers on 127.0.0.1.
#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;

/// The numbered refusal that contains `needle` (1-based), from an error
/// listing `  1. …`, `  2. …`.
fn step_of(out: &str, needle: &str) -> usize {
    let mut step = 0;
    for line in out.lines() {
        let t = line.trim_start();
        if let Some((n, _)) = t.split_once(". ")
            && let Ok(n) = n.parse::<usize>()
        {
            step = n;
        }
        if line.contains(needle) {
            return step;
        }
    }
    panic!("`{needle}` is not in:\n{out}");
}

#[test]
fn one_ship_run_reports_the_unpushed_commit_and_the_missing_approvals_push_first() {
    let w = World::new();
    w.started_and_pushed("search-crash", "high");
    let pushed = w.origin_sha("hotfix/search-crash");
    // One more local commit, not pushed, and nobody approved yet.
    w.repo.write("app/main.txt", "one more thing\n");
    let local = w.repo.commit_as(DEV, "one more thing");

    let r = w.hf(&["ship"]).fails(1, "");
    let out = r.all();
    // Both in one run.
    assert!(out.contains("1 commit not pushed"), "{out}");
    assert!(out.contains(&local[..10]), "names the local commit: {out}");
    assert!(
        out.contains("1 tech lead + 1 reviewer approval"),
        "the approvals too: {out}"
    );
    // In the order to fix them: push, the preview and smoke checks of the
    // new head (the push runs them), then its approvals.
    let push = step_of(&out, "`hotfix push`");
    let smoke = step_of(&out, "smoke checks");
    let approve = step_of(&out, "hotfix approve HF-1");
    assert_eq!(push, 1, "{out}");
    assert!(push < smoke && smoke < approve, "{out}");
    // Never "approve the old head": the push makes it stale.
    assert!(
        !out.contains(&format!("on head {}", &pushed[..10])),
        "asks to approve the head the push replaces: {out}"
    );
    assert!(out.contains("after `hotfix push`"), "{out}");
    // Who approves, by name, as a command they can run here.
    assert!(
        out.contains("`hotfix approve HF-1 --as lead@example.com`"),
        "{out}"
    );
    assert!(
        out.contains("`hotfix approve HF-1 --as rev@example.com`"),
        "{out}"
    );
    assert!(!out.contains("PERSON"), "{out}");
    // Nothing was merged.
    assert_eq!(
        w.repo
            .origin_git(&["rev-list", "--merges", "--count", "main"]),
        "0"
    );

    // Done in that order, ship goes through.
    w.hf(&["push"]).ok();
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    w.hf_as(REV, &["approve", "HF-1"]).ok();
    w.hf(&["ship"]).ok();
}

#[test]
fn approvals_of_the_pushed_head_are_asked_for_again_when_a_push_is_pending() {
    let w = World::new();
    w.started_and_pushed("pdf-crash", "critical");
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    let pushed = w.origin_sha("hotfix/pdf-crash");
    w.repo.write("app/main.txt", "one more thing\n");
    w.repo.commit_as(DEV, "one more thing");

    let out = w.hf(&["ship"]).fails(1, "").all();
    // The approval on the pushed head is enough today, but it will not
    // count for the head that must be pushed first.
    let push = step_of(&out, "`hotfix push`");
    let approve = step_of(&out, "lead@example.com");
    assert!(push < approve, "{out}");
    assert!(
        out.contains(&format!(
            "lead@example.com's approval of {} will not count",
            &pushed[..10]
        )),
        "{out}"
    );
    assert!(out.contains("after `hotfix push`"), "{out}");
}

#[test]
fn a_rewritten_local_branch_is_reported_with_the_other_refusals() {
    let w = World::new();
    w.started_and_pushed("pdf-crash", "critical");
    // Amended after the push: neither contains the other.
    w.repo.write("app/pdf", "pdf ok, reworded\n");
    w.repo
        .git(&["commit", "--quiet", "-a", "--amend", "-m", "Fix PDF export"]);
    let out = w.hf(&["ship"]).fails(1, "").all();
    assert!(out.contains("rewritten since the push"), "{out}");
    assert_eq!(step_of(&out, "rewritten since the push"), 1, "{out}");
    assert!(out.contains("1 tech lead approval"), "{out}");
}

#[test]
fn without_a_pending_push_the_approve_hint_names_the_approvers_and_the_head() {
    let w = World::new();
    w.started_and_pushed("pdf-crash", "critical");
    let head = w.origin_sha("hotfix/pdf-crash");
    let out = w
        .hf(&["ship"])
        .fails(1, "missing 1 tech lead approval")
        .all();
    assert!(
        out.contains(&format!(
            "ask a tech lead (lead@example.com or lead2@example.com) to approve head {}: `hotfix approve HF-1 --as lead@example.com`",
            &head[..10]
        )),
        "{out}"
    );
    assert!(!out.contains("PERSON"), "{out}");
}

#[test]
fn next_steps_are_the_real_command_for_the_person_reading_them() {
    let w = World::new();
    // The developer pushed: a tech lead approves, by name.
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.commit_as(DEV, "Fix PDF export crash");
    let r = w.hf(&["push"]).ok();
    assert!(
        r.stdout.contains(
            "next: needs 1 tech lead approval: ask a tech lead (lead@example.com or lead2@example.com) to approve it: `hotfix approve HF-1 --as lead@example.com`"
        ),
        "{}",
        r.all()
    );
    // The tech lead reads the same incident: it is theirs to approve.
    let r = w.hf_as(LEAD, &["status", "HF-1"]).ok();
    assert!(
        r.stdout.contains("next: approve it: `hotfix approve HF-1`"),
        "{}",
        r.all()
    );
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    w.hf(&["ship"]).ok();
    w.hf(&["backport"]).ok();
    w.hf(&["postmortem", "HF-1"]).ok();
    w.hf(&[
        "checklist",
        "HF-1",
        "--done",
        "incident_log",
        "monitoring_reviewed",
        "docs_updated",
        "team_notified",
    ])
    .ok();
    // On a local log the rulebook lets the person at the keyboard close it
    // (the team server asks for a tech_lead token): the line says so.
    let r = w.hf(&["status", "HF-1"]).ok();
    assert!(
        r.stdout
            .contains("next: close the incident: `hotfix close HF-1`"),
        "{}",
        r.all()
    );
    let r = w.hf_as(LEAD, &["status", "HF-1"]).ok();
    assert!(
        r.stdout
            .contains("next: close the incident: `hotfix close HF-1`"),
        "{}",
        r.all()
    );
}
