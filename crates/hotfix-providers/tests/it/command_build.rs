//! The `command` deployer and build once (issue 13): the team's scripts get
//! the tree of the sha, the previewed sha and whether the tree was
//! previewed, and a production script that promoted the preview's artifact
//! says so. Real scripts, run as processes.
#![allow(clippy::unwrap_used)] // tests: a panic is the right failure

use std::path::Path;

use hotfix_core::config::Config;
use hotfix_core::id::IncidentId;
use hotfix_core::provider::{DeployCtx, Deployer, PreviewedBuild};
use hotfix_providers::deploy::command::CommandDeployer;
use hotfix_testkit::script;

const MERGE: &str = "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0";
const HEAD: &str = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0";
const TREE: &str = "7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e";
const OTHER_TREE: &str = "8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e";

/// A deployer whose preview and production scripts write what they were
/// told to `seen` (one `NAME=value` per line); production ends with `last`.
fn deployer(dir: &Path, last: &str) -> CommandDeployer {
    let seen = dir.join("seen");
    let print = format!(
        "echo \"$HOTFIX_ENV TREE=$HOTFIX_TREE PREVIEW_SHA=$HOTFIX_PREVIEW_SHA PREVIEWED=$HOTFIX_PREVIEWED\" >> {}",
        seen.display()
    );
    script(
        &dir.join("preview.sh"),
        &format!("{print}\necho http://127.0.0.1:9/preview"),
    );
    script(&dir.join("deploy.sh"), &format!("{print}\n{last}"));
    let cfg = Config::parse(&format!(
        "[deploy]\nprovider = \"command\"\npreview = \"{d}/preview.sh\"\nproduction = \"{d}/deploy.sh\"\nhealth_url = \"http://127.0.0.1:9/health\"\n",
        d = dir.display()
    ))
    .unwrap();
    CommandDeployer::new(dir.to_path_buf(), dir.join("logs"), cfg.deploy)
}

fn ctx(sha: &str, tree: Option<&str>, previewed: Option<(&str, &str)>) -> DeployCtx {
    DeployCtx {
        incident: IncidentId(4),
        sha: sha.into(),
        branch: "hotfix/pdf".into(),
        pr: Some(7),
        tree: tree.map(String::from),
        previewed: previewed.map(|(sha, tree)| PreviewedBuild {
            sha: sha.into(),
            tree: tree.into(),
        }),
    }
}

fn seen(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("seen"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn scripts_are_told_the_tree_the_previewed_sha_and_whether_the_tree_was_previewed() {
    let tmp = tempfile::tempdir().unwrap();
    let d = deployer(tmp.path(), "echo built");
    d.deploy_preview(&ctx(HEAD, Some(TREE), None)).unwrap();
    // Main did not move: the merge's tree is the preview's.
    let same = d
        .deploy_production(&ctx(MERGE, Some(TREE), Some((HEAD, TREE))))
        .unwrap();
    // Main moved: another tree.
    d.deploy_production(&ctx(MERGE, Some(OTHER_TREE), Some((HEAD, TREE))))
        .unwrap();
    // Nothing known (no preview passed, no tree).
    d.deploy_production(&ctx(MERGE, None, None)).unwrap();
    assert_eq!(
        seen(tmp.path()),
        vec![
            format!("preview TREE={TREE} PREVIEW_SHA= PREVIEWED=0"),
            format!("production TREE={TREE} PREVIEW_SHA={HEAD} PREVIEWED=1"),
            format!("production TREE={OTHER_TREE} PREVIEW_SHA={HEAD} PREVIEWED=0"),
            "production TREE= PREVIEW_SHA= PREVIEWED=0".to_string(),
        ]
    );
    // A script that does not say it promoted is not taken to have.
    assert_eq!(same.build, None);
    // The log keeps what each call was told.
    let log = std::fs::read_to_string(tmp.path().join("logs").join("HF-4.log")).unwrap();
    assert!(log.contains("HOTFIX_PREVIEWED=1"), "{log}");
}

#[test]
fn a_script_that_promoted_the_previewed_artifact_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let d = deployer(
        tmp.path(),
        "if [ \"$HOTFIX_PREVIEWED\" = 1 ]; then echo \"HOTFIX_PROMOTED=$HOTFIX_PREVIEW_SHA\"; else echo building; fi",
    );
    let out = d
        .deploy_production(&ctx(MERGE, Some(TREE), Some((HEAD, TREE))))
        .unwrap();
    let b = out.build.unwrap();
    assert_eq!(b.promoted_from.as_deref(), Some(HEAD));
    assert!(!b.built);
    assert!(b.build_ms.is_some());
    // When main moved the same script builds, and says nothing of a promotion.
    let out = d
        .deploy_production(&ctx(MERGE, Some(OTHER_TREE), Some((HEAD, TREE))))
        .unwrap();
    assert_eq!(out.build, None);
}

#[test]
fn unknown_values_are_set_empty_and_a_promotion_must_name_a_sha() {
    // The variables are always set (empty, `0`), so a stale value in the
    // environment hotfix runs in cannot pass for this deploy's.
    let tmp = tempfile::tempdir().unwrap();
    let d = deployer(tmp.path(), "echo \"HOTFIX_PROMOTED=not a sha\"");
    let out = d.deploy_production(&ctx(MERGE, None, None)).unwrap();
    assert_eq!(
        seen(tmp.path()),
        vec!["production TREE= PREVIEW_SHA= PREVIEWED=0".to_string()]
    );
    // A line that names no sha is no promotion.
    assert_eq!(out.build, None);
}
