//! Contract tests of the Railway deployer against the testkit's recording
//! fake Railway (`hotfix_testkit::railway`): the operations and field names
//! of the schema, dispatched on `operationName`, with a small model of PR
//! environments and deployments whose statuses move one step per poll and
//! where a deployment going live supersedes the previous one (`REMOVED`).
#![allow(clippy::unwrap_used)] // tests: a panic is the right failure

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hotfix_core::id::IncidentId;
use hotfix_core::provider::{DeployCtx, DeployError, Deployer, PreviewedBuild};
use hotfix_providers::deploy::railway::{RailwayAuth, RailwayConfig, RailwayDeployer};
use hotfix_testkit::fake::{FakeServer, Reply};
use hotfix_testkit::railway::{Dep, FakeRailway, Model, PATH, TOKEN, handle, statuses};
use serde_json::{Value, json};

const SHA: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
const OLD: &str = "0000000000000000000000000000000000000001";
const OTHER: &str = "9999999999999999999999999999999999999999";

// ---------------------------------------------------------------- helpers

fn config(url: &str, extra: &str) -> RailwayConfig {
    let mut t: toml::Table = toml::from_str(&format!(
        r#"project = "proj"
service = "svc"
environment = "prod"
api_url = "{url}"
poll_interval = "5ms"
preview_timeout = "2s"
deploy_timeout = "2s"
trigger_after = "10s"
timeout = "500ms"
max_retry_wait = "10ms"
"#
    ))
    .unwrap();
    // The test's own settings override the fast defaults above.
    t.extend(toml::from_str::<toml::Table>(extra).unwrap());
    RailwayConfig::from_table(&t).unwrap()
}

fn ctx(sha: &str) -> DeployCtx {
    DeployCtx {
        incident: IncidentId(1),
        sha: sha.into(),
        branch: "hotfix/pdf-crash".into(),
        pr: Some(7),
        tree: None,
        previewed: None,
    }
}

fn deployer(f: &FakeRailway) -> RailwayDeployer {
    RailwayDeployer::new(config(&f.url(), ""), RailwayAuth::Bearer(TOKEN.into()))
}

fn at(url: &str) -> RailwayDeployer {
    RailwayDeployer::new(config(url, ""), RailwayAuth::Bearer(TOKEN.into()))
}

/// Production runs OLD (deployment "d-old"), the merge sha is SHA.
fn production(p: &[&str]) -> Model {
    let mut w = Model::default();
    w.deps.push(Dep::new("d-old", "prod", OLD, &["SUCCESS"]));
    w.auto.push(("prod".into(), SHA.into(), 2, statuses(p)));
    w.domains.insert(
        "prod".into(),
        (vec!["shop-web-production.up.railway.app".into()], vec![]),
    );
    w
}

fn assert_no_token(e: &DeployError) {
    let s = e.to_string();
    assert!(!s.contains(TOKEN), "token leaked: {s}");
    assert!(!format!("{e:?}").contains(TOKEN), "token leaked: {e:?}");
}

// ---------------------------------------------------------------- preview

#[test]
fn preview_is_the_pr_environment_found_by_number_across_pages_once_the_sha_is_live() {
    let mut w = Model {
        envs_visible_after: 1, // Railway creates it a moment after the PR opens
        pr_envs: vec![
            ("env-pr-3".into(), 3, "acme/shop".into()),
            ("env-pr-5".into(), 5, "acme/shop".into()),
            ("env-pr-7".into(), 7, "acme/shop".into()),
        ],
        ..Model::default()
    };
    w.domains.insert(
        "env-pr-7".into(),
        (
            vec!["shop-web-shop-pr-7.up.railway.app".into()],
            vec!["pr7.example.com".into()],
        ),
    );
    // The PR environment first ran an older head of the branch.
    w.deps
        .push(Dep::new("d-pr-old", "env-pr-7", OLD, &["SUCCESS"]));
    w.deps.push(Dep::new(
        "d-pr-new",
        "env-pr-7",
        SHA,
        &["QUEUED", "BUILDING", "DEPLOYING", "SUCCESS"],
    ));
    let f = FakeRailway::start(w);
    let d = deployer(&f).deploy_preview(&ctx(SHA)).unwrap();
    assert_eq!(d.id.as_deref(), Some("d-pr-new"));
    assert_eq!(
        d.url.as_deref(),
        Some("https://shop-web-shop-pr-7.up.railway.app")
    );

    // On the wire: POST /graphql/v2, Bearer token, our user agent, JSON.
    let reqs = f.server.requests();
    for r in &reqs {
        assert_eq!((r.method.as_str(), r.route()), ("POST", PATH));
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(r.header("project-access-token"), None);
        assert!(r.header("user-agent").unwrap().starts_with("hotfix/"));
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("application/json")
        );
        let b = r.json();
        assert!(b["query"].is_string() && b["variables"].is_object(), "{b}");
    }
    let ops = f.ops();
    let envs: Vec<_> = ops.iter().filter(|(n, _)| n == "PrEnvironments").collect();
    // One empty answer (not created yet), then pages of 2: the PR is on the second.
    assert_eq!(envs.len(), 3, "{ops:?}");
    assert_eq!(envs[1].1["after"], Value::Null);
    assert_eq!(envs[2].1["after"], "cur-2");
    assert_eq!(envs[2].1["projectId"], "proj");
    let deps: Vec<_> = ops
        .iter()
        .filter(|(n, _)| n == "ServiceDeployments")
        .collect();
    assert_eq!(deps.len(), 3, "polled until SUCCESS: {ops:?}");
    assert_eq!(
        deps[0].1["input"],
        json!({"projectId": "proj", "environmentId": "env-pr-7", "serviceId": "svc"})
    );
    assert_eq!(ops.last().unwrap().0, "ServiceDomains");
    assert_eq!(ops.last().unwrap().1["environmentId"], "env-pr-7");
}

#[test]
fn preview_matches_the_repo_and_falls_back_to_the_static_url() {
    let mut w = Model {
        pr_envs: vec![
            ("env-other-7".into(), 7, "acme/other".into()),
            ("env-pr-7".into(), 7, "acme/shop".into()),
        ],
        ..Model::default()
    };
    let mut d = Dep::new("d7", "env-pr-7", SHA, &["BUILDING", "SUCCESS"]);
    d.static_url = Some("shop-web-shop-pr-7.up.railway.app".into());
    w.deps.push(d);
    let f = FakeRailway::start(w);
    let d = RailwayDeployer::new(
        config(&f.url(), "repo = \"acme/shop\"\nurl_scheme = \"http\""),
        RailwayAuth::Bearer(TOKEN.into()),
    );
    let out = d.deploy_preview(&ctx(SHA)).unwrap();
    assert_eq!(out.id.as_deref(), Some("d7"));
    assert_eq!(
        out.url.as_deref(),
        Some("http://shop-web-shop-pr-7.up.railway.app")
    );
}

#[test]
fn no_pr_environment_is_a_clear_error_after_the_timeout() {
    let w = Model {
        pr_envs: vec![("env-pr-3".into(), 3, "acme/shop".into())],
        ..Model::default()
    };
    let f = FakeRailway::start(w);
    let d = RailwayDeployer::new(
        config(&f.url(), "preview_timeout = \"150ms\""),
        RailwayAuth::Bearer(TOKEN.into()),
    );
    let t = Instant::now();
    let e = d.deploy_preview(&ctx(SHA)).unwrap_err();
    assert!(t.elapsed() >= Duration::from_millis(150));
    assert!(t.elapsed() < Duration::from_secs(2));
    let s = e.to_string();
    assert!(matches!(e, DeployError::Failed(_)), "{e:?}");
    assert!(
        s.contains("no Railway PR environment for PR #7")
            && s.contains("PR environments enabled")
            && s.contains("prDeploys"),
        "{s}"
    );
    assert!(!s.contains("project token"), "{s}");
    // Polled, not asked once.
    assert!(
        f.op_names()
            .iter()
            .filter(|n| *n == "PrEnvironments")
            .count()
            > 2
    );

    // With a project token the error says why it may never see one.
    let d = RailwayDeployer::new(
        config(&f.url(), "preview_timeout = \"30ms\""),
        RailwayAuth::ProjectAccessToken(TOKEN.into()),
    );
    let s = d.deploy_preview(&ctx(SHA)).unwrap_err().to_string();
    assert!(
        s.contains("project token")
            && s.contains("RAILWAY_API_TOKEN")
            && s.contains("one environment"),
        "{s}"
    );
}

#[test]
fn a_preview_that_fails_to_build_says_so_and_a_missing_pr_number_is_refused() {
    let mut w = Model {
        pr_envs: vec![("env-pr-7".into(), 7, "acme/shop".into())],
        ..Model::default()
    };
    w.deps
        .push(Dep::new("d7", "env-pr-7", SHA, &["BUILDING", "FAILED"]));
    let f = FakeRailway::start(w);
    let e = deployer(&f)
        .deploy_preview(&ctx(SHA))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("d7")
            && e.contains("FAILED")
            && e.contains("PR environment of #7")
            && e.contains("logs"),
        "{e}"
    );

    let mut c = ctx(SHA);
    c.pr = None;
    let e = deployer(&f).deploy_preview(&c).unwrap_err().to_string();
    assert!(e.contains("open the PR first"), "{e}");
    assert!(deployer(&f).remove_preview(&ctx(SHA)).is_ok());
}

// ---------------------------------------------------------------- production

#[test]
fn production_waits_for_railway_to_deploy_the_merge_sha() {
    let f = FakeRailway::start(production(&[
        "QUEUED",
        "WAITING",
        "BUILDING",
        "DEPLOYING",
        "SUCCESS",
    ]));
    let d = deployer(&f);
    let out = d.deploy_production(&ctx(SHA)).unwrap();
    assert_eq!(out.id.as_deref(), Some("dep-new-1"));
    assert_eq!(
        out.url.as_deref(),
        Some("https://shop-web-production.up.railway.app")
    );
    assert_eq!(
        d.health_url().as_deref(),
        Some("https://shop-web-production.up.railway.app/health")
    );
    // Railway deployed it by itself: no trigger, and the old one was superseded.
    assert!(!f.op_names().contains(&"DeployCommit".to_string()));
    assert_eq!(f.status_of("d-old"), "REMOVED");
    let ops = f.ops();
    let (_, v) = ops.iter().find(|(n, _)| n == "ServiceDeployments").unwrap();
    assert_eq!(v["input"]["environmentId"], "prod");
}

#[test]
fn production_of_the_previewed_tree_says_railway_still_builds_main_itself() {
    let f = FakeRailway::start(production(&["BUILDING", "SUCCESS"]));
    let d = deployer(&f);
    let tree = "7".repeat(40);
    let mut c = ctx(SHA);
    c.tree = Some(tree.clone());
    c.previewed = Some(PreviewedBuild {
        sha: OTHER.into(),
        tree: tree.clone(),
    });
    let b = d.deploy_production(&c).unwrap().build.unwrap();
    // Railway cannot promote the PR environment's image: it built, honestly.
    assert!(b.built, "{b:?}");
    assert_eq!(b.promoted_from, None);
    assert_eq!(
        b.note.as_deref(),
        Some(
            "the tree equals the PR environment's deployed tree (9999999999): Railway still builds main itself"
        )
    );
}

#[test]
fn production_of_another_tree_builds_without_a_note() {
    let f = FakeRailway::start(production(&["SUCCESS"]));
    let d = deployer(&f);
    let mut c = ctx(SHA);
    c.tree = Some("7".repeat(40));
    c.previewed = Some(PreviewedBuild {
        sha: OTHER.into(),
        tree: "8".repeat(40),
    });
    let b = d.deploy_production(&c).unwrap().build.unwrap();
    assert!(
        b.built && b.note.is_none() && b.promoted_from.is_none(),
        "{b:?}"
    );
}

/// Production with auto-deploy off: hotfix has to trigger the deploy.
fn trigger_needed() -> Model {
    let mut w = production(&["SUCCESS"]);
    w.auto.clear();
    w
}

/// A deployer that triggers the deploy 30ms into the wait.
fn fast_trigger(f: &FakeRailway) -> RailwayDeployer {
    RailwayDeployer::new(
        config(&f.url(), "trigger_after = \"30ms\""),
        RailwayAuth::Bearer(TOKEN.into()),
    )
}

#[test]
fn production_triggers_the_deploy_if_railway_does_not_start_it() {
    let f = FakeRailway::start(trigger_needed());
    let out = fast_trigger(&f).deploy_production(&ctx(SHA)).unwrap();
    let ops = f.ops();
    let trig: Vec<_> = ops.iter().filter(|(n, _)| n == "DeployCommit").collect();
    assert_eq!(trig.len(), 1, "triggered once: {ops:?}");
    assert_eq!(
        trig[0].1,
        json!({"environmentId": "prod", "serviceId": "svc", "commitSha": SHA})
    );
    assert_eq!(out.id.as_deref(), Some("dep-new-1"));
}

#[test]
fn every_bad_or_unknown_status_is_a_clear_failure() {
    for (status, needle) in [
        ("FAILED", "logs"),
        ("CRASHED", "crashed"),
        ("SKIPPED", "Wait for CI"),
        ("NEEDS_APPROVAL", "approve"),
        ("REMOVED", "superseded"),
        ("TELEPORTED", "does not know that status"),
    ] {
        let f = FakeRailway::start(production(&["BUILDING", status]));
        let e = deployer(&f).deploy_production(&ctx(SHA)).unwrap_err();
        assert!(matches!(e, DeployError::Failed(_)), "{status}: {e:?}");
        let s = e.to_string();
        assert!(
            s.contains(status)
                && s.contains("dep-new-1")
                && s.contains(&SHA[..10])
                && s.contains(needle),
            "{status}: {s}"
        );
    }
}

#[test]
fn a_deploy_that_never_finishes_times_out_with_what_was_seen() {
    let f = FakeRailway::start(production(&["WAITING"]));
    let d = RailwayDeployer::new(
        config(
            &f.url(),
            "deploy_timeout = \"120ms\"\ntrigger_after = \"10s\"",
        ),
        RailwayAuth::Bearer(TOKEN.into()),
    );
    let e = d.deploy_production(&ctx(SHA)).unwrap_err().to_string();
    assert!(
        e.contains("did not finish")
            && e.contains("still WAITING")
            && e.contains("may still be running"),
        "{e}"
    );
}

#[test]
fn current_production_is_the_newest_live_deployment() {
    let mut w = Model::default();
    w.deps.push(Dep::new("d-1", "prod", OLD, &["REMOVED"]));
    w.deps.push(Dep::new("d-2", "prod", OLD, &["SUCCESS"]));
    w.deps.push(Dep::new("d-3", "prod", SHA, &["FAILED"]));
    w.deps.push(Dep::new("d-pr", "env-pr-7", SHA, &["SUCCESS"]));
    let f = FakeRailway::start(w);
    assert_eq!(
        deployer(&f).current_production().unwrap().as_deref(),
        Some("d-2")
    );
    let ops = f.ops();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].0, "ServiceDeployments");
    assert_eq!(
        ops[0].1,
        json!({"input": {"projectId": "proj", "environmentId": "prod", "serviceId": "svc",
                         "status": {"in": ["SUCCESS", "SLEEPING"]}}, "first": 1})
    );
    let empty = FakeRailway::start(Model::default());
    assert_eq!(deployer(&empty).current_production().unwrap(), None);
}

#[test]
fn the_health_url_is_the_override_or_the_domain_or_the_static_url() {
    let mut w = Model::default();
    w.domains
        .insert("prod".into(), (vec![], vec!["shop.example.com".into()]));
    let f = FakeRailway::start(w);
    assert_eq!(
        deployer(&f).health_url().as_deref(),
        Some("https://shop.example.com/health")
    );
    let d = RailwayDeployer::new(
        config(&f.url(), "health_url = \"https://status.example.com/ok\""),
        RailwayAuth::Bearer(TOKEN.into()),
    );
    assert_eq!(
        d.health_url().as_deref(),
        Some("https://status.example.com/ok")
    );

    let mut w = Model::default();
    let mut d = Dep::new("d-1", "prod", OLD, &["SUCCESS"]);
    d.static_url = Some("shop-web-production-4b7a.up.railway.app".into());
    w.deps.push(d);
    let f = FakeRailway::start(w);
    let d = RailwayDeployer::new(
        config(&f.url(), "health_path = \"/healthz\""),
        RailwayAuth::Bearer(TOKEN.into()),
    );
    assert_eq!(
        d.health_url().as_deref(),
        Some("https://shop-web-production-4b7a.up.railway.app/healthz")
    );
    // Known once, asked once.
    let n = f.server.requests().len();
    d.health_url();
    assert_eq!(f.server.requests().len(), n);
}

// ---------------------------------------------------------------- rollback

/// Production ran OLD (d-old, now superseded) and runs SHA (d-bad) since the merge.
fn after_a_bad_deploy(can_rollback: bool) -> Model {
    let mut w = Model::default();
    let mut old = Dep::new("d-old", "prod", OLD, &["REMOVED"]);
    old.can_rollback = can_rollback;
    w.deps.push(old);
    w.deps.push(Dep::new("d-bad", "prod", SHA, &["SUCCESS"]));
    w.new_path = statuses(&["INITIALIZING", "DEPLOYING", "SUCCESS"]);
    w
}

#[test]
fn rollback_uses_deployment_rollback_while_it_can_and_waits_until_it_serves() {
    let f = FakeRailway::start(after_a_bad_deploy(true));
    deployer(&f).rollback(&ctx(OLD), Some("d-old")).unwrap();
    let ops = f.ops();
    let names = f.op_names();
    let at = names
        .iter()
        .position(|n| n == "Rollback")
        .expect("Rollback sent");
    assert_eq!(ops[at].1, json!({"id": "d-old"}));
    assert!(!names.contains(&"Redeploy".to_string()));
    // It looked at the target first and waited after: production is OLD again.
    assert!(names[..at].contains(&"DeploymentById".to_string()));
    assert!(
        names[at + 1..]
            .iter()
            .filter(|n| *n == "ServiceDeployments")
            .count()
            >= 2,
        "{names:?}"
    );
    assert_eq!(f.status_of("dep-new-1"), "SUCCESS");
    assert_eq!(f.status_of("d-bad"), "REMOVED");
    assert_eq!(
        deployer(&f).current_production().unwrap().as_deref(),
        Some("dep-new-1")
    );
}

#[test]
fn rollback_redeploys_when_the_image_is_gone() {
    let f = FakeRailway::start(after_a_bad_deploy(false));
    deployer(&f).rollback(&ctx(OLD), Some("d-old")).unwrap();
    let ops = f.ops();
    let (_, v) = ops
        .iter()
        .find(|(n, _)| n == "Redeploy")
        .expect("Redeploy sent");
    assert_eq!(v, &json!({"id": "d-old"}));
    assert!(!f.op_names().contains(&"Rollback".to_string()));
    assert_eq!(f.status_of("dep-new-1"), "SUCCESS");
}

#[test]
fn rollback_without_a_recorded_deployment_finds_the_last_one_of_the_sha() {
    let mut w = after_a_bad_deploy(true);
    w.deps
        .insert(0, Dep::new("d-older", "prod", OLD, &["REMOVED"]));
    w.deps[0].can_rollback = false;
    let f = FakeRailway::start(w);
    deployer(&f).rollback(&ctx(OLD), None).unwrap();
    let ops = f.ops();
    let (_, v) = ops.iter().find(|(n, _)| n == "Rollback").unwrap();
    assert_eq!(v["id"], "d-old");
    let (_, v) = ops
        .iter()
        .find(|(n, v)| n == "ServiceDeployments" && v["first"] == 50)
        .unwrap();
    assert_eq!(
        v["input"]["status"],
        json!({"in": ["SUCCESS", "SLEEPING", "REMOVED"]})
    );

    // Nothing of that sha ever ran: a clear refusal, no mutation.
    let f = FakeRailway::start(after_a_bad_deploy(true));
    let e = deployer(&f)
        .rollback(&ctx(OTHER), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no earlier production deployment of 9999999999"),
        "{e}"
    );
    assert!(
        !f.op_names()
            .iter()
            .any(|n| n == "Rollback" || n == "Redeploy")
    );
}

#[test]
fn rollback_is_idempotent() {
    let mut w = Model::default();
    w.deps.push(Dep::new("d-bad", "prod", SHA, &["REMOVED"]));
    w.deps
        .push(Dep::new("dep-new-1", "prod", OLD, &["SUCCESS"]));
    let f = FakeRailway::start(w);
    deployer(&f).rollback(&ctx(OLD), Some("d-old")).unwrap();
    assert_eq!(f.op_names(), vec!["ServiceDeployments"]);
}

#[test]
fn a_rollback_that_crashes_is_reported() {
    let mut w = after_a_bad_deploy(true);
    w.new_path = statuses(&["DEPLOYING", "CRASHED"]);
    let f = FakeRailway::start(w);
    let e = deployer(&f)
        .rollback(&ctx(OLD), Some("d-old"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("rollback deployment dep-new-1") && e.contains("CRASHED"),
        "{e}"
    );
}

#[test]
fn rollback_refuses_a_deployment_of_another_environment() {
    let mut w = after_a_bad_deploy(true);
    w.deps.push(Dep::new("d-pr", "env-pr-7", OLD, &["SUCCESS"]));
    let f = FakeRailway::start(w);
    let e = deployer(&f)
        .rollback(&ctx(OLD), Some("d-pr"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not in production"), "{e}");
    assert!(!f.op_names().iter().any(|n| n == "Rollback"));
}

// ---------------------------------------------------------------- auth and errors

#[test]
fn project_tokens_go_in_their_own_header() {
    let mut w = Model::default();
    w.deps.push(Dep::new("d-1", "prod", OLD, &["SUCCESS"]));
    let f = FakeRailway::start(w);
    let d = RailwayDeployer::new(
        config(&f.url(), ""),
        RailwayAuth::ProjectAccessToken(TOKEN.into()),
    );
    assert_eq!(d.current_production().unwrap().as_deref(), Some("d-1"));
    let r = &f.server.requests()[0];
    assert_eq!(r.header("project-access-token"), Some(TOKEN));
    assert_eq!(r.header("authorization"), None);
}

#[test]
fn graphql_errors_on_200_are_errors_and_not_authorized_names_the_variable() {
    let f = FakeRailway::start(Model::default());
    let d = RailwayDeployer::new(
        config(&f.url(), ""),
        RailwayAuth::Bearer("rw-wrong-secret".into()),
    );
    let e = d.current_production().unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("RAILWAY_API_TOKEN") && s.contains("Not Authorized"),
        "{s}"
    );
    assert!(!s.contains("rw-wrong-secret"), "{s}");
    let d = RailwayDeployer::new(
        config(&f.url(), ""),
        RailwayAuth::ProjectAccessToken("rw-wrong-secret".into()),
    );
    let s = d.current_production().unwrap_err().to_string();
    assert!(
        s.contains("RAILWAY_TOKEN") && s.contains("one environment"),
        "{s}"
    );

    // Any other error in errors[] (with HTTP 200) is a failure that says what Railway said.
    let s = FakeServer::start(|_| {
        Reply::json(
            200,
            json!({"data": null, "errors": [{"message": "Problem processing request", "traceId": "123"}]}),
        )
    });
    let e = at(&format!("{}{PATH}", s.url()))
        .current_production()
        .unwrap_err();
    assert!(matches!(e, DeployError::Failed(_)), "{e:?}");
    assert!(
        e.to_string().contains("Problem processing request")
            && e.to_string().contains("ServiceDeployments"),
        "{e}"
    );
}

#[test]
fn http_401_and_403_are_auth_errors_without_the_token() {
    for status in [401, 403] {
        let s = FakeServer::start(move |_| {
            Reply::json(
                status,
                json!({"errors": [{"message": format!("bad token {TOKEN}")}]}),
            )
        });
        let e = at(&format!("{}{PATH}", s.url()))
            .current_production()
            .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains(&status.to_string()) && m.contains("RAILWAY_API_TOKEN"),
            "{m}"
        );
        assert_no_token(&e);
        assert_eq!(s.requests().len(), 1, "auth errors are not retried");
    }
}

#[test]
fn rate_limits_honour_retry_after_within_the_cap_then_succeed() {
    let n = Arc::new(AtomicU32::new(0));
    let c = n.clone();
    let s = FakeServer::start(move |_| match c.fetch_add(1, Ordering::Relaxed) {
        // Retry-After says an hour; max_retry_wait (10ms) caps it.
        0 => Reply::json(429, json!({"errors": [{"message": "rate limited"}]}))
            .header("Retry-After", "3600"),
        1 => Reply::json(429, json!({})).header("Retry-After", "0"),
        _ => Reply::json(
            200,
            json!({"data": {"deployments": {"edges": [{"node": {"id": "d9", "status": "SUCCESS", "meta": {"commitHash": OLD}}}]}}}),
        ),
    });
    let t = Instant::now();
    assert_eq!(
        at(&format!("{}{PATH}", s.url()))
            .current_production()
            .unwrap()
            .as_deref(),
        Some("d9")
    );
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(n.load(Ordering::Relaxed), 3);

    // Always 429: bounded, then a clear error.
    let always = FakeServer::start(|_| Reply::json(429, json!({})).header("Retry-After", "1"));
    let e = at(&format!("{}{PATH}", always.url()))
        .current_production()
        .unwrap_err();
    assert!(e.to_string().contains("rate-limited"), "{e}");
    assert_eq!(always.requests().len(), 4, "1 + max_retries (3)");
}

#[test]
fn server_errors_are_retried_with_bounded_backoff() {
    let n = Arc::new(AtomicU32::new(0));
    let c = n.clone();
    let s = FakeServer::start(move |_| match c.fetch_add(1, Ordering::Relaxed) {
        0 => Reply::text(502, "bad gateway"),
        1 => Reply::text(503, "unavailable"),
        _ => Reply::json(200, json!({"data": {"deployments": {"edges": []}}})),
    });
    assert_eq!(
        at(&format!("{}{PATH}", s.url()))
            .current_production()
            .unwrap(),
        None
    );
    assert_eq!(n.load(Ordering::Relaxed), 3);

    let always = FakeServer::start(|_| Reply::text(503, "down"));
    let d = RailwayDeployer::new(
        config(&format!("{}{PATH}", always.url()), "max_retries = 1"),
        RailwayAuth::Bearer(TOKEN.into()),
    );
    let e = d.current_production().unwrap_err();
    assert!(matches!(e, DeployError::Unreachable(_)), "{e:?}");
    assert!(e.to_string().contains("503"), "{e}");
    assert_eq!(always.requests().len(), 2);
}

#[test]
fn a_wait_rides_out_a_short_outage() {
    let f = FakeRailway::start(production(&["BUILDING", "SUCCESS"]));
    let model = f.model.clone();
    let n = Arc::new(AtomicU32::new(0));
    let c = n.clone();
    // Every other request fails: a 500 (retried inside one call), then a
    // dropped connection (no answer: ridden out by the wait loop itself).
    f.server
        .set_handler(move |r| match c.fetch_add(1, Ordering::Relaxed) % 4 {
            0 => Reply::text(500, "oops"),
            2 => Reply::hang_up(),
            _ => handle(&model, r),
        });
    let out = deployer(&f).deploy_production(&ctx(SHA)).unwrap();
    assert_eq!(out.id.as_deref(), Some("dep-new-1"));
    assert!(
        n.load(Ordering::Relaxed) > 3,
        "a dropped poll was ridden out"
    );
}

#[test]
fn timeouts_and_refused_connections_are_unreachable() {
    let slow = FakeServer::start(|_| {
        Reply::json(200, json!({"data": {}})).delayed(Duration::from_secs(2))
    });
    let t = Instant::now();
    let e = at(&format!("{}{PATH}", slow.url()))
        .current_production()
        .unwrap_err();
    assert!(matches!(e, DeployError::Unreachable(_)), "{e:?}");
    assert!(t.elapsed() < Duration::from_millis(1500));

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = at(&format!("http://127.0.0.1:{port}{PATH}"))
        .current_production()
        .unwrap_err();
    assert!(matches!(e, DeployError::Unreachable(_)), "{e:?}");
    assert_no_token(&e);
}

#[test]
fn malformed_answers_are_clear_errors() {
    for (reply, needle) in [
        (
            Reply::raw(200, "application/json", "{not json"),
            "malformed",
        ),
        (
            Reply::raw(200, "text/html", "<html>login</html>"),
            "malformed",
        ),
        (Reply::json(200, json!({"data": null})), "malformed"),
        (
            Reply::json(200, json!({"data": {"deployments": {"edges": 3}}})),
            "deployments.edges",
        ),
        (
            Reply::json(
                200,
                json!({"data": {"deployments": {"edges": [{"node": {"status": "SUCCESS"}}]}}}),
            ),
            "id",
        ),
        (Reply::text(404, "no such route"), "HTTP 404"),
    ] {
        let r = reply.clone();
        let s = FakeServer::start(move |_| r.clone());
        let e = at(&format!("{}{PATH}", s.url()))
            .current_production()
            .unwrap_err();
        assert!(matches!(e, DeployError::Failed(_)), "{e:?}");
        assert!(e.to_string().contains(needle), "{needle}: {e}");
    }
}

#[test]
fn the_token_never_appears_in_an_error() {
    // Railway echoes the token back in an error message.
    let s = FakeServer::start(|r| {
        let t = r.header("authorization").unwrap_or("").to_string();
        Reply::json(
            200,
            json!({"data": null, "errors": [{"message": format!("invalid header {t}")}]}),
        )
    });
    let e = at(&format!("{}{PATH}", s.url()))
        .current_production()
        .unwrap_err();
    assert!(e.to_string().contains("invalid header Bearer ***"), "{e}");
    assert_no_token(&e);
    let s = FakeServer::start(|_| Reply::text(418, &format!("teapot {TOKEN}")));
    let e = at(&format!("{}{PATH}", s.url()))
        .current_production()
        .unwrap_err();
    assert_no_token(&e);
    assert!(!format!("{:?}", RailwayAuth::Bearer(TOKEN.into())).contains(TOKEN));
}

#[test]
fn a_real_shaped_answer_parses() {
    let body = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/railway/service_deployments.json"
    ))
    .unwrap();
    let s = FakeServer::start(move |_| Reply::raw(200, "application/json; charset=utf-8", &body));
    let d = at(&format!("{}{PATH}", s.url()));
    assert_eq!(
        d.current_production().unwrap().as_deref(),
        Some("8f6c1d2e-4b7a-4c1e-9a3d-2b5e7f9a0c11")
    );
    let list = d.deployments("prod", None, 20).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        list[0].commit.as_deref(),
        Some("c0ffee1234567890abcdef1234567890abcdef12")
    );
    assert_eq!(
        list[0].url.as_deref(),
        Some("shop-web-production-4b7a.up.railway.app")
    );
    assert!(list[1].can_rollback);
    let out = d
        .deploy_production(&ctx("c0ffee1234567890abcdef1234567890abcdef12"))
        .unwrap();
    assert_eq!(
        out.id.as_deref(),
        Some("8f6c1d2e-4b7a-4c1e-9a3d-2b5e7f9a0c11")
    );
}

// ---------------------------------------------------------------- config

#[test]
fn config_defaults_and_mistakes() {
    let t: toml::Table =
        toml::from_str("project = \"p\"\nservice = \"s\"\nenvironment = \"e\"").unwrap();
    let c = RailwayConfig::from_table(&t).unwrap();
    assert_eq!(c.api_url, "https://backboard.railway.com/graphql/v2");
    assert_eq!(c.preview_timeout.0, Duration::from_secs(900));
    assert_eq!(c.deploy_timeout.0, Duration::from_secs(900));
    assert_eq!(c.poll_interval.0, Duration::from_secs(5));
    assert_eq!(c.trigger_after.0, Duration::from_secs(90));
    assert_eq!(c.health_path, "/health");
    assert_eq!(c.health_url, None);
    assert_eq!(c.url_scheme, "https");
    assert_eq!(c.max_retries, 3);

    for (toml, needle) in [
        (
            "project = \"p\"\nservice = \"s\"\nenvironment = \"e\"\nservce = \"x\"",
            "servce",
        ),
        ("project = \"p\"\nservice = \"s\"", "environment"),
        (
            "project = \"\"\nservice = \"s\"\nenvironment = \"e\"",
            "project",
        ),
        (
            "project = \"p\"\nservice = \"s\"\nenvironment = \"e\"\nhealth_path = \"health\"",
            "health_path",
        ),
        (
            "project = \"p\"\nservice = \"s\"\nenvironment = \"e\"\npoll_interval = \"soon\"",
            "soon",
        ),
        (
            "project = \"p\"\nservice = \"s\"\nenvironment = \"e\"\nurl_scheme = \"ftp\"",
            "url_scheme",
        ),
    ] {
        let t: toml::Table = toml::from_str(toml).unwrap();
        let e = RailwayConfig::from_table(&t).unwrap_err();
        assert!(e.contains(needle), "{needle}: {e}");
    }
}

// ---------------------------------------------------------------- mutations are never sent twice blindly

/// What the flaky front of the fake does to one request of one mutation.
#[derive(Clone)]
enum Fault {
    /// Railway applies it, then the answer is lost: this reply instead.
    AppliedThen(Reply),
    /// Railway fails before applying it: this reply, nothing changes.
    NotApplied(Reply),
    /// Railway applies it, then goes down: this reply, and a 503 to every
    /// request after it.
    AppliedThenDown(Reply),
}

/// Puts a flaky front before the fake: the nth request (from 0) of
/// operation `op` gets `faults[n]`; every other request is answered by the
/// model as usual (unless Railway went down).
fn flaky(f: &FakeRailway, op: &'static str, faults: Vec<Fault>) {
    let model = f.model.clone();
    let n = Arc::new(AtomicU32::new(0));
    let down = Arc::new(AtomicBool::new(false));
    f.server.set_handler(move |r| {
        if down.load(Ordering::Relaxed) {
            return Reply::text(503, "down");
        }
        if r.json()["operationName"] != op {
            return handle(&model, r);
        }
        let i = n.fetch_add(1, Ordering::Relaxed) as usize;
        match faults.get(i) {
            Some(Fault::AppliedThen(reply)) => {
                let _ = handle(&model, r);
                reply.clone()
            }
            Some(Fault::AppliedThenDown(reply)) => {
                let _ = handle(&model, r);
                down.store(true, Ordering::Relaxed);
                reply.clone()
            }
            Some(Fault::NotApplied(reply)) => reply.clone(),
            None => handle(&model, r),
        }
    });
}

/// Asserts that `op` was sent exactly twice, and that hotfix looked at the
/// deployments between the two sends.
fn assert_sent_again_only_after_a_check(f: &FakeRailway, op: &str) {
    let names = f.op_names();
    let at: Vec<usize> = (0..names.len()).filter(|&i| names[i] == op).collect();
    assert_eq!(at.len(), 2, "sent once more, not more: {names:?}");
    assert!(
        names[at[0] + 1..at[1]].contains(&"ServiceDeployments".to_string()),
        "verified before sending again: {names:?}"
    );
}

/// How many requests of operation `op` the fake received.
fn sent(f: &FakeRailway, op: &str) -> usize {
    f.op_names().iter().filter(|n| *n == op).count()
}

/// Deployments of `commit` in production in the fake's model.
fn deployments_of(f: &FakeRailway, commit: &str) -> Vec<String> {
    let m = f.model.lock().unwrap();
    m.deps
        .iter()
        .filter(|d| d.env == "prod" && d.commit == commit)
        .map(|d| d.id.clone())
        .collect()
}

/// The answers that leave hotfix not knowing whether Railway applied a
/// mutation: a 5xx, a connection closed without an answer, a timeout
/// (`timeout` is 500ms in these tests).
fn lost_answers() -> Vec<(&'static str, Reply)> {
    vec![
        ("HTTP 500", Reply::text(500, "internal error")),
        ("dropped connection", Reply::hang_up()),
        (
            "timeout",
            Reply::json(200, json!({"data": {"serviceInstanceDeployV2": "late"}}))
                .delayed(Duration::from_millis(900)),
        ),
    ]
}

#[test]
fn a_deploy_trigger_applied_before_a_lost_answer_is_not_sent_again() {
    for (what, reply) in lost_answers() {
        let f = FakeRailway::start(trigger_needed());
        flaky(&f, "DeployCommit", vec![Fault::AppliedThen(reply)]);
        let out = fast_trigger(&f)
            .deploy_production(&ctx(SHA))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(sent(&f, "DeployCommit"), 1, "{what}: {:?}", f.op_names());
        assert_eq!(deployments_of(&f, SHA), ["dep-new-1"], "{what}");
        assert_eq!(out.id.as_deref(), Some("dep-new-1"), "{what}");
        // It asked Railway what happened before doing anything else.
        let names = f.op_names();
        let at = names.iter().position(|n| n == "DeployCommit").unwrap();
        assert_eq!(names[at + 1], "ServiceDeployments", "{what}: {names:?}");
    }
}

#[test]
fn a_rollback_or_redeploy_applied_before_a_lost_answer_is_not_sent_again() {
    for (op, can_rollback) in [("Rollback", true), ("Redeploy", false)] {
        for (what, reply) in lost_answers().into_iter().take(2) {
            let f = FakeRailway::start(after_a_bad_deploy(can_rollback));
            flaky(&f, op, vec![Fault::AppliedThen(reply)]);
            deployer(&f)
                .rollback(&ctx(OLD), Some("d-old"))
                .unwrap_or_else(|e| panic!("{op}, {what}: {e}"));
            assert_eq!(sent(&f, op), 1, "{op}, {what}: {:?}", f.op_names());
            assert_eq!(sent(&f, "Rollback") + sent(&f, "Redeploy"), 1);
            assert_eq!(
                deployments_of(&f, OLD),
                ["d-old", "dep-new-1"],
                "{op}, {what}: one new deployment"
            );
            assert_eq!(
                deployer(&f).current_production().unwrap().as_deref(),
                Some("dep-new-1"),
                "{op}, {what}"
            );
        }
    }
}

#[test]
fn a_mutation_that_failed_without_being_applied_is_verified_then_sent_once_more() {
    // Deploy trigger: 503 before Railway did anything.
    let f = FakeRailway::start(trigger_needed());
    flaky(
        &f,
        "DeployCommit",
        vec![Fault::NotApplied(Reply::text(503, "unavailable"))],
    );
    let out = fast_trigger(&f).deploy_production(&ctx(SHA)).unwrap();
    assert_sent_again_only_after_a_check(&f, "DeployCommit");
    assert_eq!(deployments_of(&f, SHA), ["dep-new-1"]);
    assert_eq!(out.id.as_deref(), Some("dep-new-1"));

    // Rollback: the connection drops before Railway did anything.
    let f = FakeRailway::start(after_a_bad_deploy(true));
    flaky(&f, "Rollback", vec![Fault::NotApplied(Reply::hang_up())]);
    deployer(&f).rollback(&ctx(OLD), Some("d-old")).unwrap();
    assert_sent_again_only_after_a_check(&f, "Rollback");
    assert_eq!(deployments_of(&f, OLD), ["d-old", "dep-new-1"]);

    // Not applied twice: a clear error, no third send.
    let f = FakeRailway::start(trigger_needed());
    let fail = Fault::NotApplied(Reply::text(500, "internal error"));
    flaky(&f, "DeployCommit", vec![fail.clone(), fail]);
    let e = fast_trigger(&f).deploy_production(&ctx(SHA)).unwrap_err();
    assert_eq!(sent(&f, "DeployCommit"), 2, "{:?}", f.op_names());
    assert!(deployments_of(&f, SHA).is_empty());
    assert!(matches!(e, DeployError::Unreachable(_)), "{e:?}");
    let s = e.to_string();
    assert!(
        s.contains("DeployCommit")
            && s.contains("failed twice")
            && s.contains("nothing was applied"),
        "{s}"
    );
}

#[test]
fn a_refused_mutation_is_final_and_says_it_was_not_applied() {
    for (what, reply, needle) in [
        (
            "GraphQL error",
            Reply::json(
                200,
                json!({"data": null, "errors": [{"message": "Service instance not found"}]}),
            ),
            "Service instance not found",
        ),
        (
            "HTTP 400",
            Reply::json(
                400,
                json!({"errors": [{"message": "Variable \"$commitSha\" is invalid"}]}),
            ),
            "$commitSha",
        ),
        (
            "HTTP 429",
            Reply::json(429, json!({})).header("Retry-After", "0"),
            "429",
        ),
    ] {
        let f = FakeRailway::start(trigger_needed());
        flaky(&f, "DeployCommit", vec![Fault::NotApplied(reply); 4]);
        let e = fast_trigger(&f).deploy_production(&ctx(SHA)).unwrap_err();
        assert_eq!(sent(&f, "DeployCommit"), 1, "{what}: {:?}", f.op_names());
        let s = e.to_string();
        assert!(
            s.contains("DeployCommit") && s.contains(needle) && s.contains("not appl"),
            "{what}: {s}"
        );
        assert!(!s.contains("may or may not"), "{what}: {s}");
        assert_no_token(&e);
    }
}

#[test]
fn when_railway_cannot_say_whether_a_mutation_was_applied_the_error_says_what_to_check() {
    for (op, model) in [
        ("DeployCommit", trigger_needed()),
        ("Rollback", after_a_bad_deploy(true)),
    ] {
        let f = FakeRailway::start(model);
        // The mutation is applied, then Railway goes down: its answer and
        // every later request fail.
        flaky(
            &f,
            op,
            vec![Fault::AppliedThenDown(Reply::text(502, "bad gateway"))],
        );
        let e = if op == "DeployCommit" {
            fast_trigger(&f).deploy_production(&ctx(SHA)).unwrap_err()
        } else {
            deployer(&f).rollback(&ctx(OLD), Some("d-old")).unwrap_err()
        };
        assert_eq!(sent(&f, op), 1, "{op}: {:?}", f.op_names());
        assert!(matches!(e, DeployError::Failed(_)), "{op}: {e:?}");
        let s = e.to_string();
        assert!(
            s.contains(op) && s.contains("may or may not have been applied") && s.contains("502"),
            "{op}: {s}"
        );
        let look = if op == "DeployCommit" {
            "deployments in production include one of commit a1b2c3d4e5"
        } else {
            "a new deployment of 0000000000 (the rollback to deployment d-old) or serves d-old again"
        };
        assert!(s.contains(look), "{op}: {s}");
        assert_no_token(&e);
    }
}
