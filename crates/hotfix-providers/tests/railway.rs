//! The Railway deployer against a local server speaking Railway's GraphQL API.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hotfix_core::id::IncidentId;
use hotfix_core::provider::{DeployCtx, DeployError, Deployer};
use hotfix_providers::deploy::railway::{RailwayAuth, RailwayConfig, RailwayDeployer};
use hotfix_testkit::fake::{FakeServer, Reply};
use hotfix_testkit::railway::{Dep, FakeRailway, Model, TOKEN};
use serde_json::json;

const SHA: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
const OLD: &str = "0000000000000000000000000000000000000001";

fn cfg(url: &str) -> RailwayConfig {
    let t: toml::Table = toml::from_str(&format!(
        "project = \"proj\"\nservice = \"svc\"\nenvironment = \"prod\"\napi_url = \"{url}\"\npoll_interval = \"10ms\"\npreview_timeout = \"2s\"\ndeploy_timeout = \"2s\"\ntrigger_after = \"100ms\"\nmax_retry_wait = \"20ms\"\nurl_scheme = \"http\"\ntimeout = \"2s\""
    ))
    .unwrap();
    RailwayConfig::from_table(&t).unwrap()
}

fn ctx(sha: &str) -> DeployCtx {
    DeployCtx {
        incident: IncidentId(1),
        sha: sha.into(),
        branch: "hotfix/x".into(),
        pr: Some(7),
    }
}

fn dep(id: &str, env: &str, commit: &str, path: &[&str]) -> Dep {
    Dep {
        id: id.into(),
        env: env.into(),
        commit: commit.into(),
        path: path.iter().map(|s| s.to_string()).collect(),
        can_rollback: true,
    }
}

fn deployer(f: &FakeRailway) -> RailwayDeployer {
    RailwayDeployer::new(cfg(&f.url()), RailwayAuth::Bearer(TOKEN.into()))
}

#[test]
fn the_preview_is_the_pr_environment_deployment_of_the_exact_sha() {
    let f = FakeRailway::start(Model {
        pr_envs: vec![("env-pr-3".into(), 3), ("env-pr-7".into(), 7)],
        domains: vec![("env-pr-7".into(), "127.0.0.1:9".into())],
        deps: vec![
            dep("d-old", "env-pr-7", OLD, &["SUCCESS"]),
            dep(
                "d-new",
                "env-pr-7",
                SHA,
                &["QUEUED", "BUILDING", "DEPLOYING", "SUCCESS"],
            ),
        ],
        ..Model::default()
    });
    let d = deployer(&f).deploy_preview(&ctx(SHA)).unwrap();
    assert_eq!(d.id.as_deref(), Some("d-new"));
    assert_eq!(d.url.as_deref(), Some("http://127.0.0.1:9"));
    // On the wire: POST to the GraphQL endpoint, Bearer auth, our user agent,
    // paginated environments(isEphemeral: true), deployments filtered by env + service.
    let reqs = f.server.requests();
    assert!(
        reqs.iter()
            .all(|r| r.method == "POST" && r.route() == "/graphql/v2")
    );
    assert!(
        reqs.iter()
            .all(|r| r.header("authorization") == Some(&format!("Bearer {TOKEN}")))
    );
    assert!(reqs[0].header("user-agent").unwrap().starts_with("hotfix/"));
    assert!(
        reqs[0]
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let qs = f.queries();
    let envs: Vec<_> = qs
        .iter()
        .filter(|(q, _)| q.contains("isEphemeral: true"))
        .collect();
    assert_eq!(envs.len(), 2, "two pages");
    assert_eq!(envs[1].1["after"], "c1");
    let deps = qs.iter().find(|(q, _)| q.contains("deployments(")).unwrap();
    assert_eq!(deps.1["input"]["environmentId"], "env-pr-7");
    assert_eq!(deps.1["input"]["serviceId"], "svc");
}

#[test]
fn no_pr_environment_is_a_clear_error() {
    let f = FakeRailway::start(Model::default());
    let e = deployer(&f)
        .deploy_preview(&ctx(SHA))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no Railway PR environment for PR #7") && e.contains("prDeploys"),
        "{e}"
    );
}

#[test]
fn production_waits_for_the_merge_sha_and_triggers_it_if_railway_does_not() {
    let f = FakeRailway::start(Model {
        deps: vec![dep("d1", "prod", OLD, &["SUCCESS"])],
        ..Model::default()
    });
    let d = deployer(&f);
    assert_eq!(d.current_production().unwrap().as_deref(), Some("d1"));
    let out = d.deploy_production(&ctx(SHA)).unwrap();
    assert!(out.id.is_some());
    let trig = f
        .queries()
        .into_iter()
        .find(|(q, _)| q.contains("serviceInstanceDeployV2"))
        .expect("triggered");
    assert_eq!(trig.1["commitSha"], SHA);
    assert_eq!(trig.1["environmentId"], "prod");
}

#[test]
fn every_terminal_failure_status_is_a_clear_outcome() {
    for (status, needle) in [
        ("FAILED", "failed"),
        ("CRASHED", "crashed"),
        ("SKIPPED", "skipped"),
        ("NEEDS_APPROVAL", "approve"),
        ("REMOVED", "removed"),
        ("TELEPORTED", "unknown deployment status TELEPORTED"),
    ] {
        let f = FakeRailway::start(Model {
            deps: vec![dep("d2", "prod", SHA, &["BUILDING", status])],
            ..Model::default()
        });
        let e = deployer(&f)
            .deploy_production(&ctx(SHA))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(status) && e.to_lowercase().contains(&needle.to_lowercase()),
            "{status}: {e}"
        );
    }
}

#[test]
fn rollback_uses_deployment_rollback_when_it_can_and_redeploy_otherwise() {
    for can in [true, false] {
        let mut old = dep("d1", "prod", OLD, &["SUCCESS"]);
        old.can_rollback = can;
        let f = FakeRailway::start(Model {
            deps: vec![old, dep("d2", "prod", SHA, &["SUCCESS"])],
            ..Model::default()
        });
        deployer(&f).rollback(&ctx(OLD), Some("d1")).unwrap();
        let qs = f.queries();
        let used = if can {
            "deploymentRollback"
        } else {
            "deploymentRedeploy"
        };
        let m = qs
            .iter()
            .find(|(q, _)| q.contains(used))
            .unwrap_or_else(|| panic!("{used} not sent"));
        assert_eq!(m.1["id"], "d1");
        // Then it waited until the old code serves again.
        let st = f.model.lock().unwrap();
        let newest = st.deps.last().unwrap();
        assert_eq!(
            (newest.commit.as_str(), newest.status().as_str()),
            (OLD, "SUCCESS")
        );
    }
}

#[test]
fn rollback_is_idempotent() {
    let f = FakeRailway::start(Model {
        deps: vec![dep("d1", "prod", OLD, &["SUCCESS"])],
        ..Model::default()
    });
    deployer(&f).rollback(&ctx(OLD), Some("d1")).unwrap();
    assert!(
        !f.queries()
            .iter()
            .any(|(q, _)| q.contains("deploymentRollback"))
    );
}

#[test]
fn project_tokens_use_their_own_header() {
    let f = FakeRailway::start(Model {
        deps: vec![dep("d1", "prod", OLD, &["SUCCESS"])],
        ..Model::default()
    });
    let d = RailwayDeployer::new(cfg(&f.url()), RailwayAuth::ProjectAccessToken(TOKEN.into()));
    d.current_production().unwrap();
    let r = &f.server.requests()[0];
    assert_eq!(r.header("project-access-token"), Some(TOKEN));
    assert_eq!(r.header("authorization"), None);
}

#[test]
fn graphql_errors_on_200_and_bad_tokens_say_what_to_do_without_the_token() {
    let f = FakeRailway::start(Model::default());
    let d = RailwayDeployer::new(cfg(&f.url()), RailwayAuth::Bearer("rw-wrong-secret".into()));
    let e = d.current_production().unwrap_err().to_string();
    assert!(
        e.contains("Not Authorized") && e.contains("RAILWAY_API_TOKEN"),
        "{e}"
    );
    assert!(!e.contains("rw-wrong-secret"));
    let s = FakeServer::start(|_| Reply::json(401, json!({"message": "unauthorized"})));
    let d = RailwayDeployer::new(
        cfg(&format!("{}/graphql/v2", s.url())),
        RailwayAuth::Bearer("rw-wrong-secret".into()),
    );
    let e = d.current_production().unwrap_err().to_string();
    assert!(e.contains("401") && !e.contains("rw-wrong-secret"), "{e}");
}

#[test]
fn rate_limits_and_server_errors_are_retried_boundedly() {
    let n = Arc::new(AtomicU32::new(0));
    let c = n.clone();
    let s = FakeServer::start(move |_| match c.fetch_add(1, Ordering::Relaxed) {
        0 => Reply::json(429, json!({"errors": [{"message": "rate limited"}]}))
            .header("Retry-After", "1"),
        1 => Reply::text(502, "bad gateway"),
        _ => Reply::json(
            200,
            json!({"data": {"deployments": {"edges": [{"node": {"id": "d9", "status": "SUCCESS", "meta": {"commitHash": OLD}}}]}}}),
        ),
    });
    let d = RailwayDeployer::new(
        cfg(&format!("{}/graphql/v2", s.url())),
        RailwayAuth::Bearer(TOKEN.into()),
    );
    assert_eq!(d.current_production().unwrap().as_deref(), Some("d9"));
    assert_eq!(n.load(Ordering::Relaxed), 3);
    // Always 503: gives up after max_retries with a clear error.
    let always = FakeServer::start(|_| Reply::text(503, "down"));
    let d = RailwayDeployer::new(
        cfg(&format!("{}/graphql/v2", always.url())),
        RailwayAuth::Bearer(TOKEN.into()),
    );
    let e = d.current_production().unwrap_err();
    assert!(matches!(e, DeployError::Unreachable(_)), "{e}");
    assert_eq!(always.requests().len(), 4);
}

#[test]
fn timeouts_and_malformed_answers() {
    let slow = FakeServer::start(|_| Reply::text(200, "{}").delayed(Duration::from_secs(4)));
    let d = RailwayDeployer::new(
        cfg(&format!("{}/graphql/v2", slow.url())),
        RailwayAuth::Bearer(TOKEN.into()),
    );
    assert!(matches!(
        d.current_production().unwrap_err(),
        DeployError::Unreachable(_)
    ));
    let junk = FakeServer::start(|_| Reply::raw(200, "application/json", "{not json"));
    let d = RailwayDeployer::new(
        cfg(&format!("{}/graphql/v2", junk.url())),
        RailwayAuth::Bearer(TOKEN.into()),
    );
    let e = d.current_production().unwrap_err().to_string();
    assert!(e.contains("malformed"), "{e}");
}
