//! The `local` deployer's canary: a real embedded platform (in this
//! process) running real releases (this test binary, serving the sample
//! service from the release's worktree), real HTTP on 127.0.0.1.

use std::path::Path;
use std::time::{Duration, Instant};

use hotfix_core::id::IncidentId;
use hotfix_core::provider::{DeployCtx, Deployer};
use hotfix_platform::{Client, PlatformConfig};
use hotfix_providers::deploy::local::LocalDeployer;

use crate::common;

use common::git;

fn commit(repo: &Path, version: &str) -> String {
    std::fs::create_dir_all(repo.join("service")).expect("mkdir");
    std::fs::write(
        repo.join("service/routes.toml"),
        format!(
            "log_requests = false\n[[route]]\npath = \"/health\"\nbody = \"ok\"\n\
             [[route]]\npath = \"/version\"\nbody = \"{version}\"\n"
        ),
    )
    .expect("write");
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", version]);
    git(repo, &["rev-parse", "HEAD"])
}

fn body(url: &str) -> String {
    let cfg = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(10)))
        .build();
    let agent = ureq::Agent::new_with_config(cfg);
    match agent.get(url).call() {
        Ok(mut r) => r.body_mut().read_to_string().unwrap_or_default(),
        Err(e) => e.to_string(),
    }
}

fn ctx(sha: &str) -> DeployCtx {
    DeployCtx {
        incident: IncidentId(7),
        sha: sha.to_string(),
        branch: "hotfix/HF-7".into(),
        pr: None,
        tree: None,
        previewed: None,
    }
}

#[test]
fn the_local_deployer_starts_weights_promotes_and_aborts_a_canary() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(&repo, &["init", "-q", "-b", "main"]);
    let v1 = commit(&repo, "v1");
    let v2 = commit(&repo, "v2");
    let v3 = commit(&repo, "v3");
    let mut cfg = PlatformConfig::new(&repo, tmp.path().join("state"), common::release_argv());
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
    let prod = format!("http://127.0.0.1:{}/version", cfg.port);
    d.deploy_production(&ctx(&v1)).expect("deploy v1");
    assert_eq!(body(&prod), "v1");

    // 100% canary: every request goes to it, production still v1.
    let c = d.canary_start(&ctx(&v2), 100.0).expect("canary");
    assert!(
        c.id.as_deref().is_some_and(|id| id.ends_with(&v2[..7])),
        "{c:?}"
    );
    assert_eq!(body(&prod), "v2");
    d.canary_weight(0.0).expect("weight 0");
    assert_eq!(body(&prod), "v1");
    d.canary_abort().expect("abort");
    d.canary_abort().expect("abort is idempotent");
    let st = d.status().expect("status");
    assert!(st.canary.is_none());
    assert_eq!(st.production.expect("prod").sha, v1);

    // The workflow's rollback (to the code production runs) stops a canary.
    d.canary_start(&ctx(&v2), 100.0).expect("canary v2 again");
    assert_eq!(body(&prod), "v2");
    d.rollback(&ctx(&v1), None).expect("rollback");
    assert_eq!(body(&prod), "v1");
    assert!(d.status().expect("status").canary.is_none());

    d.canary_start(&ctx(&v3), 30.0).expect("canary v3");
    let promoted = d.canary_promote().expect("promote");
    assert!(
        promoted
            .id
            .as_deref()
            .is_some_and(|id| id.ends_with(&v3[..7]))
    );
    assert_eq!(body(&prod), "v3");
    let st = d.status().expect("status");
    assert_eq!(st.production.expect("prod").sha, v3);
    assert_eq!(st.previous.expect("previous").sha, v1);
    let e = d.canary_weight(10.0).expect_err("no canary any more");
    assert!(e.to_string().contains("no canary runs"), "{e}");

    Client::connect(&state)
        .expect("client")
        .shutdown()
        .expect("shutdown");
    platform.join().expect("join").expect("platform");
}
