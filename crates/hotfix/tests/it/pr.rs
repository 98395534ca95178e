//! `hotfix pr [ID]` reads the incident's PR and its impact assessment from
//! the forge (the local one in .git/hotfix/forge.db, or GitHub), and
//! `hotfix push --impact TEXT | --impact-file F` gives the assessment
//! instead of the generated one. The real binary, real repos, a GitHub that
//! speaks its REST API on 127.0.0.1.
#![allow(clippy::unwrap_used)]

use crate::common;
// Only the GitHub fake is used here.
#[allow(dead_code)]
use crate::fakes;

use common::*;
use fakes::github::{FakeGithub, OWNER, REPO};
use serde_json::Value;

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

fn pr_json(w: &World, env: &[(&str, &str)]) -> Value {
    let r = w.hf_env(DEV, &["pr", "--json"], env).ok();
    serde_json::from_str(&r.stdout).unwrap_or_else(|_| panic!("{}", r.all()))
}

#[test]
fn pr_shows_the_local_forges_pr_with_its_impact_assessment() {
    let w = World::new();
    started(&w);
    // Before the push: no PR yet, said as an answer.
    let r = w.hf(&["pr"]).ok();
    assert!(
        r.stdout.contains("HF-1 has no pull request yet"),
        "{}",
        r.all()
    );
    assert!(r.stdout.contains("hotfix push HF-1"), "{}", r.all());
    assert_eq!(w.hf(&["pr", "--json"]).ok().stdout.trim(), "null");

    w.hf(&["push"]).ok();
    let head = w.repo.git(&["rev-parse", "hotfix/pdf-crash"]);
    let r = w.hf(&["pr"]).ok();
    let out = &r.stdout;
    assert!(
        out.starts_with("PR #1 [HOTFIX] PDF export crashes (open)"),
        "{out}"
    );
    assert!(out.contains("hotfix/pdf-crash → main"), "{out}");
    assert!(out.contains(&head[..10]), "{out}");
    assert!(out.contains("written by hotfix"), "{out}");
    // The assessment itself, as the reviewers get it.
    assert!(out.contains("## Impact assessment — HF-1"), "{out}");
    assert!(out.contains("### Rollback plan"), "{out}");
    assert!(out.contains("Fix PDF export crash"), "{out}");

    let v = pr_json(&w, &[]);
    assert_eq!(v["incident"], "HF-1");
    assert_eq!(v["number"], 1);
    assert_eq!(v["state"], "open");
    assert_eq!(v["head"], "hotfix/pdf-crash");
    assert_eq!(v["base"], "main");
    assert_eq!(v["head_sha"], head);
    assert_eq!(v["impact_given"], false);
    assert!(
        v["body"]
            .as_str()
            .unwrap()
            .contains("### Approvals required")
    );

    // Shipped: the forge says merged, with the merge commit.
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    w.hf(&["ship"]).ok();
    let v = pr_json(&w, &[]);
    assert_eq!(v["state"], "merged");
    assert_eq!(v["merge_sha"], w.origin_sha("main"));
    assert!(w.hf(&["pr", "HF-1"]).ok().stdout.contains("(merged)"));
}

#[test]
fn push_impact_is_the_pr_body_and_a_later_push_keeps_it() {
    let w = World::new();
    started(&w);
    let text = "Only EU tenants see failed PDF exports.\n\nNo data loss; the rollback is instant.";
    let r = w.hf(&["push", "--impact", text]).ok();
    assert!(r.all().contains("PR #1"), "{}", r.all());
    let v = pr_json(&w, &[]);
    assert_eq!(v["body"], text);
    assert_eq!(v["impact_given"], true);
    let out = w.hf(&["pr"]).ok().stdout;
    assert!(out.contains("given with `hotfix push --impact`"), "{out}");
    assert!(out.contains("Only EU tenants"), "{out}");
    assert!(!out.contains("<!--"), "the marker is not shown: {out}");
    assert!(!out.contains("Impact assessment — HF-1"), "{out}");

    // Another commit, pushed without --impact: what the person wrote stays.
    w.repo.write("app/pdf", "pdf ok, really\n");
    w.repo.commit_as(DEV, "Also handle empty font tables");
    w.hf(&["push"]).ok();
    assert_eq!(pr_json(&w, &[])["body"], text);

    // A file (with Windows line ends) replaces it.
    let f = w.repo.dir().join("impact.md");
    std::fs::write(&f, "Scope: EU only.\r\nRisk: low.\r\n").unwrap();
    w.repo.write("app/pdf", "pdf ok, really really\n");
    w.repo.commit_as(DEV, "Tidy");
    w.hf(&["push", "--impact-file", f.to_str().unwrap()]).ok();
    assert_eq!(pr_json(&w, &[])["body"], "Scope: EU only.\nRisk: low.");
}

#[test]
fn a_bad_impact_assessment_is_refused_before_anything_is_pushed() {
    let w = World::new();
    started(&w);
    w.hf(&["push", "--impact", "  \n "]).fails(2, "empty");
    w.hf(&["push", "--impact", "ok\n\u{1b}[2Jgone"])
        .fails(2, "control character (U+001B) on line 2");
    w.hf(&["push", "--impact-file", "/nonexistent/impact.md"])
        .fails(2, "cannot read --impact-file /nonexistent/impact.md");
    w.hf(&["push", "--impact", "a", "--impact-file", "b"])
        .fails(2, "cannot be used with");
    let big = "x".repeat(60_001);
    w.hf(&["push", "--impact", &big]).fails(2, "at most 60000");
    // Nothing reached the remote, nothing was recorded.
    assert!(
        !w.repo
            .git_ok(&["ls-remote", "--exit-code", "origin", "hotfix/pdf-crash"])
    );
    assert_eq!(w.count("HF-1", "pushed"), 0);
}

/// The world with the GitHub forge on a fake that speaks its API, backed
/// by the bare origin; deploys stay the world's scripts.
fn github_world() -> (World, FakeGithub) {
    let w = World::new();
    let gh = FakeGithub::start(&w.repo.origin);
    let toml = w.repo.read("hotfix.toml")
        + &format!(
            r#"
[forge]
provider = "github"
repo = "{OWNER}/{REPO}"
api_url = "{api}"
graphql_url = "{api}/graphql"
max_retry_wait = "100ms"
[forge.logins]
"{LEAD}" = "lead-gh"
"{REV}" = "rev-gh"
"#,
            api = gh.server.url()
        );
    w.repo.write("hotfix.toml", &toml);
    w.repo.commit_as(DEV, "GitHub forge");
    w.repo.git(&["push", "--quiet", "origin", "main"]);
    (w, gh)
}

const TOKEN: (&str, &str) = ("GITHUB_TOKEN", "ghp_testtoken");

#[test]
fn pr_reads_the_pr_from_github_as_github_has_it_now() {
    let (w, gh) = github_world();
    w.hf_env(
        DEV,
        &[
            "start",
            "pdf-crash",
            "--severity",
            "critical",
            "--title",
            "PDF export crashes",
        ],
        &[TOKEN],
    )
    .ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.commit_as(DEV, "Fix PDF export crash");
    w.hf_env(DEV, &["push", "--impact", "EU only; low risk."], &[TOKEN])
        .ok();
    // What push sent is what GitHub holds, marker and all.
    let body = gh.state.lock().unwrap().prs[0].body.clone();
    assert!(body.starts_with("EU only; low risk.\n\n<!--"), "{body}");

    let v = pr_json(&w, &[TOKEN]);
    assert_eq!(v["number"], 1);
    assert_eq!(
        v["url"],
        format!("https://github.com/{OWNER}/{REPO}/pull/1")
    );
    assert_eq!(v["body"], "EU only; low risk.");
    assert_eq!(v["impact_given"], true);
    assert_eq!(v["state"], "open");
    assert!(
        !gh.server
            .calls("GET", &format!("/repos/{OWNER}/{REPO}/pulls/1"))
            .is_empty()
    );

    // Someone closes it on GitHub: `pr` says so (the log does not know yet).
    gh.state.lock().unwrap().prs[0].state = "closed".into();
    let out = w.hf_env(DEV, &["pr"], &[TOKEN]).ok().stdout;
    assert!(out.contains("(closed, not merged)"), "{out}");

    // Without a token it cannot ask GitHub: a usage error, with the URL.
    let r = w.hf(&["pr", "HF-1"]).fails(2, "needs a token");
    assert!(
        r.stderr.contains(&format!(
            "hint: or open https://github.com/{OWNER}/{REPO}/pull/1"
        )),
        "{}",
        r.stderr
    );
}
