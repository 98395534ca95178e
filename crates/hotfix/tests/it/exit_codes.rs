//! The exit-code table of the README, row by row, on the real binary in real
//! repos with a bare origin: 0 done (an empty answer too), 1 refused or
//! failed, 2 the command as typed cannot work, 3 waiting on something
//! outside. And every error prints `error: …` then `hint: …` lines.
#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;

/// A started incident with its fix committed, not pushed: HF-1.
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
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.commit_as(DEV, "Fix PDF export crash");
}

/// A reported incident (no branch yet), as the alert intake declares it.
fn reported(w: &World, name: &str) {
    use hotfix_core::provider::Store;
    let db = w.repo.work.join(".git/hotfix/hotfix.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let store = hotfix_store::SqliteStore::open(&db).unwrap();
    store
        .declare(
            &hotfix_core::event::NewEvent {
                at: jiff::Timestamp::now(),
                actor: "alertmanager (alert)".into(),
                kind: hotfix_core::event::EventKind::Declared {
                    name: name.into(),
                    title: "High error rate".into(),
                    severity: hotfix_core::Severity::Critical,
                    customer_facing: true,
                    security: false,
                    branch: format!("hotfix/{name}"),
                    base_sha: String::new(),
                },
            },
            &|_| vec![],
        )
        .unwrap();
}

/// stderr is `error: MESSAGE` then one `hint: …` line per hint.
#[track_caller]
fn error_then_hint(r: &Run, message: &str, hint: &str) {
    let lines: Vec<&str> = r.stderr.lines().collect();
    let e = lines
        .iter()
        .position(|l| l.starts_with("error: ") && l.contains(message))
        .unwrap_or_else(|| panic!("no `error: …{message}…` line in:\n{}", r.stderr));
    assert!(
        lines[e + 1..]
            .iter()
            .any(|l| l.starts_with("hint: ") && l.contains(hint)),
        "no `hint: …{hint}…` line after the error in:\n{}",
        r.stderr
    );
}

// ------------------------------------------------------------------ 0

#[test]
fn status_with_no_incident_at_all_is_an_empty_answer_not_an_error() {
    let w = World::new();
    let r = w.hf(&["status"]).ok();
    assert!(r.stdout.contains("no open incident"), "{}", r.all());
    assert!(r.stdout.contains("hotfix start"), "{}", r.all());
    let r = w.hf(&["status", "--json"]).ok();
    assert_eq!(r.stdout.trim(), "null");
    // The same read of a PR.
    let r = w.hf(&["pr"]).ok();
    assert!(r.stdout.contains("no open incident"), "{}", r.all());
}

#[test]
fn status_without_an_id_but_with_incidents_open_asks_which_one() {
    let w = World::new();
    started(&w);
    w.repo.git(&["checkout", "--quiet", "main"]);
    w.hf(&["status"]).fails(2, "HF-1 (hotfix/pdf-crash)");
}

// ------------------------------------------------------------------ 1

#[test]
fn a_guard_that_says_no_is_1_with_its_hint_as_a_hint() {
    let w = World::new();
    w.started_and_pushed("pdf-crash", "critical");
    let r = w.hf(&["ship"]).fails(1, "missing 1 tech lead approval");
    error_then_hint(&r, "missing 1 tech lead approval", "hotfix approve");
    let r = w.hf(&["approve", "HF-1"]).fails(1, "may not approve");
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    // medium is understood, and refused by the process: 1.
    w.hf(&["start", "later", "--severity", "medium"])
        .fails(1, "use the normal release");
}

#[test]
fn a_step_that_fails_is_1() {
    let w = World::new();
    started(&w);
    script(
        &w.scripts.join("preview.sh"),
        "echo 'no space left on device' >&2\nexit 7",
    );
    w.hf(&["push"]).fails(1, "no space left on device");
}

// ------------------------------------------------------------------ 2

#[test]
fn an_unknown_id_is_2_for_every_verb() {
    let w = World::new();
    started(&w);
    w.hf(&["push"]).ok();
    for args in [
        &["approve", "HF-9"][..],
        &["status", "HF-9"],
        &["pr", "HF-9"],
        &["ship", "HF-9"],
        &["checklist", "HF-9"],
        &["rollback", "HF-9", "--reason", "x"],
        &["close", "HF-9"],
    ] {
        let r = w.hf_as(LEAD, args).fails(2, "no incident HF-9");
        error_then_hint(&r, "no incident HF-9", "hotfix log");
    }
    // Malformed ids, the same.
    w.hf_as(LEAD, &["approve", "nope"]).fails(2, "nope");
    w.hf(&["status", "HF-x"]).fails(2, "HF-x");
}

#[test]
fn an_invalid_name_is_2_like_an_unknown_severity() {
    let w = World::new();
    let r = w
        .hf(&["start", "semi;colon", "--severity", "critical"])
        .fails(2, "not a valid hotfix name");
    error_then_hint(&r, "not a valid hotfix name", "pdf-crash");
    w.hf(&["start", "pdf-crash", "--severity", "urgent"])
        .fails(2, "unknown severity");
    assert_eq!(w.log().as_array().unwrap().len(), 0);
}

#[test]
fn a_bad_value_in_a_triage_decision_is_2() {
    let w = World::new();
    reported(&w, "error-rate");
    w.hf_as(
        LEAD,
        &[
            "triage",
            "HF-1",
            "decline",
            "--reason",
            "duplicate",
            "--of",
            "HF-9",
        ],
    )
    .fails(2, "HF-9");
    w.hf_as(LEAD, &["triage", "HF-1", "decline", "--reason", "bored"])
        .fails(2, "unknown decline reason");
}

#[test]
fn bad_flags_and_bad_configuration_are_2() {
    let w = World::new();
    started(&w);
    // clap's own usage errors.
    w.hf(&["ship", "--allow-wide"]).fails(2, "--reason");
    w.hf(&["status", "--as", LEAD]).fails(2, "--as");
    // Two different people in one command.
    w.hf(&["--as", REV, "approve", "HF-1", "--as", LEAD])
        .fails(2, "--as is given twice");
    // A hotfix.toml with a key that does not exist.
    w.repo.write("hotfix.toml", "[team]\ntech_lead = [\"x\"]\n");
    w.hf(&["status", "HF-1"]).fails(2, "tech_lead");
    // A verb without a man page.
    w.hf(&["man", "deploy-everything"])
        .fails(2, "not a hotfix verb");
}

/// A duration too long for any clock (the issue's `99999999999999999h`)
/// is a bad value naming its key, for the CLI's keys and for the local
/// platform's (one parser reads both): 2, never a panic.
#[test]
fn a_huge_duration_in_hotfix_toml_is_2_not_a_panic() {
    let w = World::new();
    for (toml, key) in [
        ("[deploy]\nwatch = \"99999999999999999h\"\n", "watch"),
        (
            "[deploy]\nprovider = \"local\"\nrun = \"true\"\nwarm = \"99999999999999999h\"\n",
            "warm",
        ),
    ] {
        w.repo.write("hotfix.toml", toml);
        for args in [&["status"][..], &["platform", "status"]] {
            let r = w.hf(args).fails(2, key);
            assert!(
                r.stderr.contains("99999999999999999h"),
                "{args:?}: {}",
                r.stderr
            );
            assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
        }
    }
}

// ------------------------------------------------------------------ 3

#[test]
fn platform_status_when_it_is_not_running_is_3() {
    let w = World::new();
    w.repo.write(
        "hotfix.toml",
        "[deploy]\nprovider = \"local\"\nrun = \"true\"\nport = 1\n",
    );
    let r = w.hf(&["platform", "status"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stdout.contains("not running"), "{}", r.all());
    let r = w.hf(&["platform", "status", "--json"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert_eq!(r.stdout.trim(), "{\"running\": false}");
}
