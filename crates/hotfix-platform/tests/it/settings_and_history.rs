//! What a deploy request carries besides its sha: the release settings of
//! `hotfix.toml` as they are now (so an edit applies without a platform
//! restart), and who asked and why (kept in the platform's history). Also
//! the log a deploy writes to, named before it starts, and errors that
//! read as the platform wrote them.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use hotfix_platform::{
    DeployMeta, DeployRequest, DeployVia, HistoryAction, LaunchStep, PlatformError, ReleaseKind,
    ReleaseSettings, RollbackRequest,
};

fn deploy(sha: &str, settings: Option<ReleaseSettings>, meta: DeployMeta) -> DeployRequest {
    DeployRequest {
        sha: sha.to_string(),
        settings,
        meta,
        ..DeployRequest::default()
    }
}

const NEVER_HEALTHY: &str =
    "[[route]]\npath = \"/health\"\nstatus = 503\nbody = \"db unreachable\"\n";

#[test]
fn settings_sent_with_a_deploy_apply_to_it_and_to_the_requests_after_it() {
    let fx = Fixture::new();
    let v1 = fx.commit(&routes("v1"));
    let v2 = fx.commit(&routes("v2"));
    let cfg = fx.config();
    let p = InProcess::start(cfg.clone());
    p.client.deploy_production(&v1).expect("deploy v1");
    assert_eq!(fx.builds(), 1);

    // The team edits hotfix.toml: another build command, a shorter ready
    // timeout. The platform, running since before, gets them with the deploy.
    let second = fx.tmp.path().join("second-build.txt");
    let mut edited = cfg.clone();
    edited.build = Some(vec![
        "sh".into(),
        "-c".into(),
        format!("echo second >> '{}'", second.display()),
    ]);
    edited.ready_timeout = Duration::from_millis(700);
    let sent = edited.settings();
    p.client
        .deploy_production_with(&deploy(&v2, Some(sent.clone()), DeployMeta::default()))
        .expect("deploy v2");
    assert_eq!(fx.builds(), 1, "the old build command ran again");
    assert_eq!(
        std::fs::read_to_string(&second).unwrap_or_default(),
        "second\n"
    );
    assert_eq!(get(&fx.url("/version")), (200, "v2".to_string()));
    let st = p.client.status().expect("status");
    assert_eq!(st.settings.as_ref(), Some(&sent));

    // The new ready timeout decides how long a bad release may take.
    let bad = fx.commit(NEVER_HEALTHY);
    let t0 = Instant::now();
    let err = p
        .client
        .deploy_production_with(&deploy(&bad, Some(sent.clone()), DeployMeta::default()))
        .expect_err("never healthy");
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    let msg = err.to_string();
    assert!(msg.contains("within 700ms"), "{msg}");
    // The platform's own words, once: no transport prefix in front.
    match &err {
        PlatformError::Remote { status, kind, .. } => {
            assert_eq!((*status, kind.as_str()), (422, "not_healthy"))
        }
        other => panic!("expected the platform's refusal, got {other:?}"),
    }
    assert!(msg.starts_with("release r"), "{msg}");
    assert!(!msg.contains("platform API error"), "{msg}");
    assert_eq!(get(&fx.url("/version")), (200, "v2".to_string()));

    // A request without settings goes by the last ones sent (the bad
    // release was built with them too).
    p.client.deploy_preview("HF-1", &v1).expect("preview");
    assert_eq!(
        std::fs::read_to_string(&second).unwrap_or_default(),
        "second\nsecond\nsecond\n"
    );
    assert_eq!(fx.builds(), 1);

    // Settings that cannot work are refused and change nothing.
    let mut broken = sent.clone();
    broken.run = vec![];
    match p
        .client
        .deploy_production_with(&deploy(&v1, Some(broken), DeployMeta::default()))
    {
        Err(PlatformError::Invalid(m)) => assert!(m.contains("run command is empty"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        p.client.status().expect("status").settings.as_ref(),
        Some(&sent)
    );
    p.stop();
}

#[test]
fn every_change_of_production_is_recorded_with_who_and_why_and_survives_a_restart() {
    let fx = Fixture::new();
    let v1 = fx.commit(&routes("v1"));
    let v2 = fx.commit(&routes("v2"));
    let p = InProcess::start(fx.config());
    let manual = DeployMeta {
        via: DeployVia::Manual,
        by: Some("alice@example.com".into()),
        reference: Some("origin/main".into()),
        incident: None,
    };
    let hotfix = DeployMeta {
        via: DeployVia::Incident,
        incident: Some("HF-1".into()),
        ..DeployMeta::default()
    };
    p.client
        .deploy_production_with(&deploy(&v1, None, manual.clone()))
        .expect("v1");
    // A redeploy of what runs changes nothing, so records nothing.
    p.client
        .deploy_production_with(&deploy(&v1, None, manual.clone()))
        .expect("v1 again");
    p.client
        .deploy_production_with(&deploy(&v2, None, hotfix.clone()))
        .expect("v2");
    p.client
        .rollback_with(&RollbackRequest {
            to_sha: None,
            settings: None,
            meta: hotfix.clone(),
        })
        .expect("rollback");

    let check = |st: &hotfix_platform::PlatformStatus| {
        let h = &st.history;
        assert_eq!(h.len(), 3, "{h:#?}");
        assert_eq!(
            (h[0].action, h[0].sha.as_str(), h[0].replaced.as_deref()),
            (HistoryAction::Rollback, v1.as_str(), Some(v2.as_str()))
        );
        assert_eq!(h[0].meta, hotfix);
        assert_eq!(
            (h[1].action, h[1].sha.as_str(), h[1].replaced.as_deref()),
            (HistoryAction::Deploy, v2.as_str(), Some(v1.as_str()))
        );
        assert_eq!(h[1].meta, hotfix);
        assert_eq!(
            (h[2].action, h[2].sha.as_str(), h[2].replaced.as_deref()),
            (HistoryAction::Deploy, v1.as_str(), None)
        );
        assert_eq!(h[2].meta, manual);
        assert!(h.iter().all(|e| e.at.parse::<jiff::Timestamp>().is_ok()));
        // Production is the release the manual deploy made (rolled back to).
        let prod = st.production.as_ref().expect("production");
        assert_eq!(prod.sha, v1);
        assert_eq!(prod.origin.as_ref(), Some(&manual));
    };
    check(&p.client.status().expect("status"));
    let json = serde_json::to_value(p.client.status().expect("status")).expect("json");
    assert_eq!(json["history"][2]["via"], "manual");
    assert_eq!(json["history"][2]["by"], "alice@example.com");
    assert_eq!(json["history"][2]["reference"], "origin/main");
    p.stop();

    let p = InProcess::start(fx.config());
    check(&p.client.status().expect("status after a restart"));
    p.stop();
}

#[test]
fn a_deploy_names_its_log_before_it_starts_and_says_which_step_it_is_at() {
    let fx = Fixture::new();
    let v1 = fx.commit(&routes("v1"));
    let mut cfg = fx.config();
    cfg.build = Some(vec![
        "sh".into(),
        "-c".into(),
        "echo compiling the service; sleep 1".into(),
    ]);
    let p = InProcess::start(cfg);
    let expected = hotfix_platform::release_log(&fx.state, ReleaseKind::Production, None, &v1);
    let client = p.client.clone();
    let sha = v1.clone();
    let t = std::thread::spawn(move || client.deploy_production(&sha));
    let mut seen = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.is_none() && Instant::now() < deadline {
        let st = p.client.status().expect("status");
        seen = st
            .starting
            .into_iter()
            .find(|r| r.step == Some(LaunchStep::Build));
        std::thread::sleep(Duration::from_millis(20));
    }
    let starting = seen.expect("the release shows as building while it builds");
    assert_eq!(starting.sha, v1);
    let same = |a: &std::path::Path, b: &std::path::Path| {
        std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok()
    };
    assert!(
        same(&starting.log_path, &expected),
        "{:?} vs {expected:?}",
        starting.log_path
    );
    let out = t.join().expect("join").expect("deploy");
    assert!(same(&out.release.log_path, &expected));
    assert!(out.release.step.is_none());
    let log = std::fs::read_to_string(&expected).expect("log");
    assert!(log.contains("compiling the service"), "{log}");
    assert!(p.client.status().expect("status").starting.is_empty());
    p.stop();
}
