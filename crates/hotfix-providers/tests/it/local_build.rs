//! Issue 13 through the `local` deployer: it hands the engine's previewed
//! build to the platform and returns the platform's answer as a
//! `BuildReport` (promoted from the tested sha, or built and why). A real
//! embedded platform in this process, real releases (this test binary
//! serving the sample service), a real build script, real git merges.

use std::path::Path;
use std::time::{Duration, Instant};

use hotfix_core::id::IncidentId;
use hotfix_core::provider::{DeployCtx, Deployer, PreviewedBuild};
use hotfix_platform::{Client, PlatformConfig};
use hotfix_providers::deploy::local::LocalDeployer;

use crate::common;

use common::git;

fn commit(repo: &Path, path: &str, text: &str) -> String {
    let p = repo.join(path);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", path]);
    git(repo, &["rev-parse", "HEAD"])
}

fn routes(version: &str) -> String {
    format!(
        "log_requests = false\n[[route]]\npath = \"/health\"\nbody = \"ok\"\n\
         [[route]]\npath = \"/version\"\nbody = \"{version}\"\n"
    )
}

/// A fix on `hotfix/x` merged with `--no-ff`, as `ship` does; `moved`:
/// main gets another commit first. Returns (fix sha, merge sha).
fn fix_and_merge(repo: &Path, version: &str, moved: bool) -> (String, String) {
    git(repo, &["checkout", "-q", "-B", "hotfix/x"]);
    let fix = commit(repo, "service/routes.toml", &routes(version));
    git(repo, &["checkout", "-q", "main"]);
    if moved {
        commit(repo, "NOTES.md", &format!("meanwhile, {version}\n"));
    }
    git(
        repo,
        &["merge", "-q", "--no-ff", "-m", "Merge hotfix", "hotfix/x"],
    );
    (fix, git(repo, &["rev-parse", "HEAD"]))
}

fn body(url: &str) -> String {
    let cfg = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(10)))
        .build();
    match ureq::Agent::new_with_config(cfg).get(url).call() {
        Ok(mut r) => r.body_mut().read_to_string().unwrap_or_default(),
        Err(e) => e.to_string(),
    }
}

fn tree(repo: &Path, sha: &str) -> String {
    git(repo, &["rev-parse", &format!("{sha}^{{tree}}")])
}

fn ctx(sha: &str, previewed: Option<(&str, String)>) -> DeployCtx {
    DeployCtx {
        incident: IncidentId(13),
        sha: sha.to_string(),
        branch: "hotfix/x".into(),
        pr: None,
        tree: None,
        previewed: previewed.map(|(sha, tree)| PreviewedBuild {
            sha: sha.to_string(),
            tree,
        }),
    }
}

#[test]
fn the_local_deployer_reports_promoted_and_built_releases_for_preview_production_and_canary() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(&repo, &["init", "-q", "-b", "main"]);
    let builds = tmp.path().join("builds.txt");
    std::fs::write(repo.join(".gitignore"), "target/\n").expect("write");
    commit(
        &repo,
        "build.sh",
        "#!/bin/sh\nset -e\necho \"$HOTFIX_SHA\" >> \"$1\"\nmkdir -p target\necho \"built $HOTFIX_SHA\" > target/app.bin\n",
    );
    let v1 = commit(&repo, "service/routes.toml", &routes("v1"));
    let mut cfg = PlatformConfig::new(&repo, tmp.path().join("state"), common::release_argv());
    cfg.build = Some(vec![
        "sh".into(),
        "build.sh".into(),
        builds.display().to_string(),
    ]);
    cfg.cache = vec!["target".into()];
    cfg.port = hotfix_platform::free_port().expect("port");
    cfg.ready_timeout = Duration::from_secs(10);
    cfg.stop_timeout = Duration::from_secs(1);
    let state = cfg.state_dir.clone();
    let platform = {
        let cfg = cfg.clone();
        std::thread::spawn(move || hotfix_platform::run_foreground(cfg))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !Client::connect(&state).is_ok_and(|c| c.status().is_ok_and(|s| !s.recovering)) {
        assert!(Instant::now() < deadline, "platform did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let d = LocalDeployer {
        platform: cfg.clone(),
        autostart: None,
    };
    let n_builds = || std::fs::read_to_string(&builds).map_or(0, |s| s.lines().count());
    let prod = format!("http://127.0.0.1:{}/version", cfg.port);
    let first = d.deploy_production(&ctx(&v1, None)).expect("deploy v1");
    let b = first.build.expect("a build report");
    assert!(
        b.built && b.promoted_from.is_none() && b.build_ms.is_some(),
        "{b:?}"
    );
    assert!(
        b.note.as_deref().is_some_and(|n| n.starts_with("cold")),
        "{b:?}"
    );

    // Preview, merge (main did not move), production: promoted.
    let (fix, merge) = fix_and_merge(&repo, "v2", false);
    let pv = d.deploy_preview(&ctx(&fix, None)).expect("preview");
    let b = pv.build.expect("preview build report");
    assert!(b.built, "{b:?}");
    assert!(
        b.note
            .as_deref()
            .is_some_and(|n| n.starts_with("cached from")),
        "{b:?}"
    );
    d.remove_preview(&ctx(&fix, None)).expect("remove preview");
    let o = d
        .deploy_production(&ctx(&merge, Some((&fix, tree(&repo, &fix)))))
        .expect("ship");
    let b = o.build.expect("production build report");
    assert_eq!(b.promoted_from.as_deref(), Some(fix.as_str()), "{b:?}");
    assert!(!b.built);
    assert!(
        b.note
            .as_deref()
            .is_some_and(|n| n.contains("promoted from") && n.contains("same tree, no build ran")),
        "{b:?}"
    );
    assert_eq!(
        n_builds(),
        2,
        "v1 and the preview built; production did not"
    );
    assert_eq!(body(&prod), "v2");

    // Main moved: built, and the report says why.
    let (fix2, merge2) = fix_and_merge(&repo, "v3", true);
    d.deploy_preview(&ctx(&fix2, None)).expect("preview 2");
    let o = d
        .deploy_production(&ctx(&merge2, Some((&fix2, tree(&repo, &fix2)))))
        .expect("ship 2");
    let b = o.build.expect("report");
    assert!(b.built && b.promoted_from.is_none(), "{b:?}");
    assert!(
        b.note
            .as_deref()
            .is_some_and(|n| n.contains("main moved: tree")),
        "{b:?}"
    );
    assert_eq!(body(&prod), "v3");

    // A canary of a previewed tree starts from the tested build too.
    let (fix3, merge3) = fix_and_merge(&repo, "v4", false);
    d.deploy_preview(&ctx(&fix3, None)).expect("preview 3");
    let before = n_builds();
    let c = d
        .canary_start(&ctx(&merge3, Some((&fix3, tree(&repo, &fix3)))), 100.0)
        .expect("canary");
    let b = c.build.expect("canary report");
    assert_eq!(b.promoted_from.as_deref(), Some(fix3.as_str()), "{b:?}");
    assert_eq!(n_builds(), before, "the canary did not build");
    assert_eq!(body(&prod), "v4");
    let p = d.canary_promote().expect("promote");
    assert_eq!(
        p.build.and_then(|b| b.promoted_from).as_deref(),
        Some(fix3.as_str())
    );

    Client::connect(&state)
        .expect("client")
        .shutdown()
        .expect("shutdown");
    platform.join().expect("join").expect("platform");
}
