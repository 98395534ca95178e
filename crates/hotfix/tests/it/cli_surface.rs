//! The CLI as a tool among gh, git and kubectl: completions for the shells
//! people use, a man page, a description on every flag, `--as` only where
//! someone acts, examples in `--help`. On the real binary.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::process::Command;

use common::*;

/// `hotfix ARGS` outside any repository: none of these needs one.
fn hotfix(args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    Run::from(
        hotfix_testkit::hermetic(&mut Command::new(bin()))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap(),
    )
}

/// The verbs a person uses; each must be completed and have a page.
const VERBS: &[&str] = &[
    "init",
    "start",
    "triage",
    "status",
    "push",
    "pr",
    "approve",
    "ship",
    "backport",
    "rollback",
    "checklist",
    "postmortem",
    "close",
    "log",
    "backup",
    "platform",
    "demo",
    "serve",
    "completions",
    "man",
];

#[test]
fn completions_for_each_shell_name_every_verb() {
    for (shell, marker) in [
        ("bash", "complete -F _hotfix"),
        ("zsh", "#compdef hotfix"),
        ("fish", "complete -c hotfix"),
    ] {
        let r = hotfix(&["completions", shell]).ok();
        assert!(r.stdout.contains(marker), "{shell}: no {marker:?}");
        for verb in VERBS {
            assert!(
                r.stdout.contains(verb),
                "{shell} completion does not mention `{verb}`"
            );
        }
        // The flags too, with their values where they take one.
        assert!(r.stdout.contains("severity"), "{shell}");
        assert!(r.stdout.contains("impact-file"), "{shell}");
        assert!(r.stderr.is_empty(), "{shell}: {}", r.stderr);
    }
    // The zsh and fish scripts carry the descriptions.
    let fish = hotfix(&["completions", "fish"]).ok().stdout;
    assert!(fish.contains("critical or high"), "{fish}");
    hotfix(&["completions", "tcsh"]).fails(2, "tcsh");
}

#[test]
fn bash_accepts_the_completion_script_and_completes_verbs() {
    if Command::new("bash").arg("--version").output().is_err() {
        return hotfix_testkit::skip("no bash");
    }
    let script = hotfix(&["completions", "bash"]).ok().stdout;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hotfix.bash");
    std::fs::write(&path, script).unwrap();
    // Source it, then ask for the completions of `hotfix sh`.
    let probe = format!(
        "source {}\nCOMP_WORDS=(hotfix sh)\nCOMP_CWORD=1\n_hotfix hotfix sh hotfix\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display()
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &probe])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "ship", "{stdout}");
}

/// groff's verdict on a page: `-ww` warns about anything questionable,
/// `-z` renders nothing. Empty stderr = valid roff.
fn groff_warnings(page: &str) -> Option<String> {
    let mut child = Command::new("groff")
        .args(["-man", "-Tutf8", "-K", "utf8", "-ww", "-z"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    Some(String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn the_man_page_is_valid_roff_naming_every_verb() {
    let page = hotfix(&["man"]).ok().stdout;
    assert!(page.contains(".TH hotfix 1"), "{page}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS", ".SH SUBCOMMANDS"] {
        assert!(page.contains(section), "no {section}");
    }
    for verb in VERBS {
        assert!(
            page.contains(&format!("hotfix\\-{}(1)", verb.replace('-', "\\-"))),
            "hotfix(1) does not name `{verb}`"
        );
    }
    // The verb's own page, with its flags.
    let start = hotfix(&["man", "start"]).ok().stdout;
    assert!(start.contains(".TH hotfix-start 1"), "{start}");
    assert!(start.contains("\\-\\-severity"), "{start}");
    hotfix(&["man", "frobnicate"]).fails(2, "not a hotfix verb");
    match groff_warnings(&page) {
        Some(w) => assert!(w.is_empty(), "groff: {w}"),
        None => hotfix_testkit::skip("no groff to check the roff"),
    }
}

#[test]
fn man_dir_writes_every_page_that_hotfix_1_refers_to() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    hotfix(&["man", "--dir", out.to_str().unwrap()]).ok();
    for verb in VERBS {
        let p = out.join(format!("hotfix-{verb}.1"));
        let page = std::fs::read_to_string(&p).unwrap_or_else(|_| panic!("{}", p.display()));
        if let Some(w) = groff_warnings(&page) {
            assert!(w.is_empty(), "{}: {w}", p.display());
        }
    }
    assert!(out.join("hotfix.1").exists());
    assert!(out.join("hotfix-platform-status.1").exists());
    assert!(
        !out.join("hotfix-sample-service.1").exists(),
        "a hidden verb"
    );
}

#[test]
fn as_shows_only_on_verbs_where_someone_acts() {
    let help = |verb: &str| hotfix(&[verb, "--help"]).ok().stdout;
    for verb in ["status", "log", "demo", "serve", "completions", "man", "pr"] {
        assert!(!help(verb).contains("--as"), "`{verb} --help` offers --as");
    }
    for verb in [
        "start", "approve", "push", "ship", "backport", "rollback", "close",
    ] {
        assert!(help(verb).contains("--as <PERSON>"), "`{verb} --help`");
    }
    assert!(!hotfix(&["--help"]).ok().stdout.contains("--as"));
}

#[test]
fn as_still_works_after_the_verb_and_before_it() {
    let w = World::new();
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.commit_as(DEV, "Fix PDF export");
    w.hf(&["push"]).ok();
    // As the README writes it: after the verb.
    w.hf(&["approve", "HF-1", "--as", LEAD]).ok();
    // As it worked before the verb, kept for scripts written then.
    w.hf(&["--as", LEAD2, "approve", "HF-1"]).ok();
    let s = w.status("HF-1");
    let by: Vec<&str> = s["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["by"].as_str().unwrap())
        .collect();
    assert!(by.contains(&LEAD) && by.contains(&LEAD2), "{s}");
}

#[test]
fn start_push_and_ship_help_have_examples() {
    for verb in ["start", "push", "ship"] {
        let r = hotfix(&[verb, "--help"]).ok();
        assert!(
            r.stdout.contains("Examples:"),
            "`{verb} --help`:\n{}",
            r.stdout
        );
        assert!(
            r.stdout.contains(&format!("  hotfix {verb} ")),
            "`{verb} --help`:\n{}",
            r.stdout
        );
    }
}

/// Every option line of every verb's `--help` has text after the flag
/// (or an indented line under it): what the unit test checks on the
/// definitions, checked here on what a person reads.
#[test]
fn every_flag_in_every_verbs_help_has_a_description() {
    let mut verbs: Vec<Vec<&str>> = VERBS.iter().map(|v| vec![*v]).collect();
    verbs.extend([
        vec!["triage", "confirm"],
        vec!["triage", "decline"],
        vec!["triage", "merge"],
        vec!["platform", "status"],
        vec!["serve", "token", "create"],
        vec!["serve", "token", "list"],
        vec!["serve", "token", "revoke"],
    ]);
    for v in verbs {
        let mut args = v.clone();
        args.push("-h");
        let out = hotfix(&args).ok().stdout;
        let lines: Vec<&str> = out.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            // An entry: two spaces, then a flag or an argument.
            let entry = l
                .strip_prefix("  ")
                .is_some_and(|r| r.starts_with('-') || r.starts_with('<') || r.starts_with('['));
            if !entry {
                continue;
            }
            let spec_end = l[2..].find("  ").map(|p| p + 2);
            let same_line = spec_end.is_some_and(|p| !l[p..].trim().is_empty());
            let next_line = lines
                .get(i + 1)
                .is_some_and(|n| n.starts_with("          ") && !n.trim().is_empty());
            assert!(
                same_line || next_line,
                "`hotfix {}`: `{}` has no description",
                v.join(" "),
                l.trim()
            );
        }
    }
}

/// `hotfix man | head -1`: the reader goes away before hotfix writes. A
/// print-and-exit command then ends as every Unix filter does (quietly, by
/// SIGPIPE), never with a "failed printing to stdout" panic.
#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    for args in [&["man"][..], &["completions", "bash"][..]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let dir = tempfile::tempdir().unwrap();
        let out = hotfix_testkit::hermetic(&mut Command::new(bin()))
            .args(args)
            .current_dir(dir.path())
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(
            out.status.signal(),
            Some(libc_sigpipe()),
            "{args:?}: {:?} {stderr}",
            out.status
        );
    }
}

/// SIGPIPE's number on Linux (13), without a libc dependency in the tests.
fn libc_sigpipe() -> i32 {
    13
}
