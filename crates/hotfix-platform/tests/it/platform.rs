//! End-to-end tests: real git repositories, real processes, real HTTP on
//! 127.0.0.1. Each test has its own temp dir and ports, so they run in parallel.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::*;
use hotfix_platform::{Client, PlatformError, ReleaseState};

#[test]
fn production_deploy_switch_and_fast_rollback_with_no_failed_requests() {
    let fx = Fixture::new();
    let v1 = fx.commit(&routes("v1"));
    let p = InProcess::start(fx.config());

    // Before any deploy the stable port explains itself.
    let (s, body) = get(&fx.url("/version"));
    assert_eq!(s, 503, "{body}");
    assert!(body.contains("no production release"), "{body}");

    let out = p.client.deploy_production(&v1).expect("deploy v1");
    assert_eq!(out.release.sha, v1);
    assert_eq!(out.release.state, ReleaseState::Live);
    assert!(out.previous.is_none());
    assert!(out.built);
    assert_eq!(out.url, fx.url(""));
    assert_eq!(get(&fx.url("/version")), (200, "v1".to_string()));
    // Redeploying the live sha is a no-op (engine re-runs after a crash).
    let again = p.client.deploy_production(&v1).expect("redeploy");
    assert_eq!(again.release.id, out.release.id);
    assert!(!again.built);

    // Deploy v2 while hammering the stable port: nothing may fail.
    let v2 = fx.commit(&routes("v2"));
    let hammer = Hammer::start(fx.url("/version"), 4, |b| b == "v1" || b == "v2");
    let slow = std::thread::spawn({
        let url = fx.url("/slow");
        move || get(&url)
    });
    std::thread::sleep(Duration::from_millis(50));
    let out2 = p.client.deploy_production(&v2).expect("deploy v2");
    std::thread::sleep(Duration::from_millis(100));
    let (sent, failed, fails) = hammer.finish();
    assert!(sent > 10, "sent only {sent}");
    assert_eq!(failed, 0, "failed during deploy: {fails:?}");
    // A request in flight to v1 during the switch completed against v1.
    assert_eq!(slow.join().expect("slow"), (200, "v1-slow".to_string()));
    assert_eq!(get(&fx.url("/version")), (200, "v2".to_string()));
    let prev = out2.previous.expect("previous");
    assert_eq!(prev.sha, v1);
    assert_eq!(prev.state, ReleaseState::Warm);
    assert!(prev.warm_until.is_some());

    // Rollback is a proxy switch: fast, and nothing fails.
    let hammer = Hammer::start(fx.url("/version"), 4, |b| b == "v1" || b == "v2");
    std::thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    let back = p.client.rollback(None).expect("rollback");
    let took = t0.elapsed();
    assert_eq!(get(&fx.url("/version")), (200, "v1".to_string()));
    let (sent, failed, fails) = hammer.finish();
    assert_eq!(failed, 0, "failed during rollback ({sent} sent): {fails:?}");
    assert_eq!(back.release.sha, v1);
    assert_eq!(
        back.release.id, prev.id,
        "the warm release itself serves again"
    );
    assert!(!back.built);
    assert!(took < Duration::from_millis(500), "rollback took {took:?}");
    assert!(back.previous.is_none());

    // The release rolled back from is drained, stopped and its worktree removed.
    let v2_tree = out2.release.worktree.clone();
    eventually(Duration::from_secs(10), "v2 worktree removed", || {
        !v2_tree.exists()
    });
    // Nothing left to roll back to.
    match p.client.rollback(None) {
        Err(PlatformError::Conflict(m)) => assert!(m.contains("no previous release"), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    p.stop();
}

#[test]
fn previews_have_their_own_port_and_data_and_are_replaced_and_removed() {
    let fx = Fixture::new();
    let v1 = fx.commit(&routes("v1"));
    let v2 = fx.commit(&routes("v2"));
    let p = InProcess::start(fx.config());

    let a = p.client.deploy_preview("HF-3", &v1).expect("preview");
    assert_eq!(a.key, "HF-3");
    assert!(a.url.starts_with("http://127.0.0.1:"));
    assert_ne!(a.release.port, fx.port);
    assert_eq!(get(&format!("{}/version", a.url)), (200, "v1".to_string()));
    assert!(a.release.data_dir.is_dir(), "fresh DATA_DIR exists");
    let info: serde_json::Value =
        serde_json::from_str(&get(&format!("{}/__sample/info", a.url)).1).expect("info json");
    assert_eq!(
        info["data_dir"].as_str(),
        Some(a.release.data_dir.to_str().expect("utf8"))
    );
    let pid_a = service_pid(&a.url);
    // Production is untouched by previews.
    assert_eq!(get(&fx.url("/version")).0, 503);

    // A second preview runs beside it.
    let b = p.client.deploy_preview("HF-4", &v2).expect("preview 2");
    assert_eq!(get(&format!("{}/version", b.url)), (200, "v2".to_string()));

    // Redeploying HF-3 with a new sha replaces the old preview.
    let a2 = p
        .client
        .deploy_preview("HF-3", &v2)
        .expect("redeploy preview");
    assert_ne!(a2.release.id, a.release.id);
    assert_eq!(get(&format!("{}/version", a2.url)), (200, "v2".to_string()));
    assert!(!pid_alive(pid_a), "old preview process is gone");
    assert!(!a.release.data_dir.exists(), "old preview data is gone");
    assert!(!a.release.worktree.exists(), "old preview worktree is gone");

    let st = p.client.status().expect("status");
    assert_eq!(st.previews.len(), 2);

    // Removal stops it and deletes its data; its build stays, not running,
    // among the kept builds (a production deploy of its tree promotes it).
    let pid_a2 = service_pid(&a2.url);
    p.client.remove_preview("HF-3").expect("remove");
    assert!(!pid_alive(pid_a2));
    assert!(!a2.release.data_dir.exists());
    let kept = p.client.status().expect("status").builds;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].id, a2.release.id);
    assert_eq!(kept[0].state, hotfix_platform::ReleaseState::Cold);
    assert!(a2.release.worktree.join(".git").exists());
    assert_eq!(
        get(&format!("{}/version", a2.url)).0,
        0,
        "nothing answers any more"
    );
    match p.client.remove_preview("HF-3") {
        Err(PlatformError::NotFound(_)) => {}
        other => panic!("expected not found, got {other:?}"),
    }
    match p.client.deploy_preview("../etc", &v1) {
        Err(PlatformError::NotFound(_) | PlatformError::Invalid(_)) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(p.client.status().expect("status").previews.len(), 1);
    p.stop();
}

#[test]
fn a_release_that_never_gets_healthy_fails_with_its_log_and_leaves_production_alone() {
    let fx = Fixture::new();
    let good = fx.commit(&routes("good"));
    let mut cfg = fx.config();
    cfg.ready_timeout = Duration::from_millis(1500);
    let p = InProcess::start(cfg);
    p.client.deploy_production(&good).expect("deploy good");

    let bad = fx.commit(
        "[[route]]\npath = \"/health\"\nstatus = 503\nbody = \"db unreachable\"\n\
         [[route]]\npath = \"/version\"\nbody = \"bad\"\n",
    );
    let t0 = Instant::now();
    let err = p.client.deploy_production(&bad).expect_err("must fail");
    assert!(
        t0.elapsed() < Duration::from_secs(6),
        "took {:?}",
        t0.elapsed()
    );
    let msg = err.to_string();
    assert!(msg.contains("did not become healthy"), "{msg}");
    assert!(msg.contains("HTTP 503"), "{msg}");
    assert!(
        msg.contains("GET /health -> 503"),
        "the log tail is in the error: {msg}"
    );

    let st = p.client.status().expect("status");
    let prod = st.production.expect("production");
    assert_eq!(prod.sha, good);
    assert_eq!(prod.state, ReleaseState::Live);
    assert!(st.previous.is_none());
    assert_eq!(get(&fx.url("/version")), (200, "good".to_string()));
    // The failed release left no worktree behind.
    let left: Vec<_> = std::fs::read_dir(fx.state.join("releases"))
        .expect("ls")
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");

    // A release that exits while starting fails fast with its exit status.
    let dies = fx.commit("startup_delay_ms = 0\ncrash_after_ms = 0\ncrash_exit_code = 7\n");
    let err = p
        .client
        .deploy_production(&dies)
        .expect_err("must fail")
        .to_string();
    assert!(
        err.contains("exit code 7") || err.contains("HTTP 404"),
        "{err}"
    );
    assert_eq!(get(&fx.url("/version")), (200, "good".to_string()));
    p.stop();
}

#[test]
fn a_release_that_crashes_after_going_live_is_reported_not_restarted() {
    let fx = Fixture::new();
    let v1 = fx.commit(&format!("crash_after_ms = 400\n{}", routes("v1")));
    let p = InProcess::start(fx.config());
    let out = p.client.deploy_production(&v1).expect("deploy");
    let pid = service_pid(&fx.url(""));
    eventually(Duration::from_secs(10), "crash reported", || {
        p.client
            .status()
            .map(|s| !s.crashed.is_empty())
            .unwrap_or(false)
    });
    let st = p.client.status().expect("status");
    let crash = &st.crashed[0];
    assert_eq!(crash.release.id, out.release.id);
    assert_eq!(crash.exit_status, "exit code 3");
    assert!(
        crash.log_tail.contains("crashing as told"),
        "{}",
        crash.log_tail
    );
    assert_eq!(crash.log_path, out.release.log_path);
    let prod = st.production.expect("production");
    assert_eq!(prod.state, ReleaseState::Crashed);
    assert_eq!(prod.exit_status.as_deref(), Some("exit code 3"));
    assert!(!pid_alive(pid));
    let (s, body) = get(&fx.url("/version"));
    assert_eq!(s, 503);
    assert!(body.contains("crashed"), "{body}");
    // Not restarted behind our back.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(&fx.url("/version")).0, 503);
    // A fixed deploy recovers.
    let v2 = fx.commit(&routes("v2"));
    let fixed = p.client.deploy_production(&v2).expect("deploy fix");
    assert_eq!(get(&fx.url("/version")), (200, "v2".to_string()));
    // The crashed release is not kept as a rollback target.
    assert!(fixed.previous.is_none(), "{:?}", fixed.previous);
    p.stop();
}

#[test]
fn the_control_api_refuses_requests_without_the_right_token() {
    let fx = Fixture::new();
    let v1 = fx.commit(&routes("v1"));
    let p = InProcess::start(fx.config());
    let token_path = fx.state.join("token");
    let mode = std::fs::metadata(&token_path)
        .expect("token")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "token readable by the user alone");
    let token = std::fs::read_to_string(&token_path).expect("token");
    assert!(token.trim().len() >= 32, "at least 128 bits");
    let base = p.client.info().url();
    let a = agent();
    let body = serde_json::json!({"sha": v1});
    for auth in [
        None,
        Some("Bearer nope".to_string()),
        Some(format!("Basic {}", token.trim())),
    ] {
        for (method, path) in [
            ("POST", "/v1/production/deploy"),
            ("PUT", "/v1/previews/HF-1"),
            ("POST", "/v1/shutdown"),
            ("GET", "/v1/status"),
        ] {
            let url = format!("{base}{path}");
            let mut req = match method {
                "POST" => a.post(&url),
                _ => a.put(&url),
            };
            if method == "GET" {
                let mut g = a.get(&url);
                if let Some(h) = &auth {
                    g = g.header("Authorization", h);
                }
                let r = g.call().expect("http");
                assert_eq!(r.status().as_u16(), 401, "{method} {path} with {auth:?}");
                continue;
            }
            if let Some(h) = &auth {
                req = req.header("Authorization", h);
            }
            let r = req.send_json(&body).expect("http");
            assert_eq!(r.status().as_u16(), 401, "{method} {path} with {auth:?}");
        }
    }
    // Nothing happened: still running, no production, no preview, no worktree.
    let st = p.client.status().expect("still running");
    assert!(st.production.is_none());
    assert!(st.previews.is_empty());
    assert_eq!(
        std::fs::read_dir(fx.state.join("releases"))
            .expect("ls")
            .count(),
        0
    );
    assert_eq!(fx.builds(), 0);
    // A client with a wrong token gets a clear error.
    let ctl = serde_json::to_string(p.client.info()).expect("json");
    let other = tempfile::tempdir().expect("tmp");
    std::fs::write(other.path().join("control.json"), ctl).expect("write");
    std::fs::write(other.path().join("token"), "0000").expect("write");
    match Client::connect(other.path()).expect("connect").status() {
        Err(PlatformError::Unauthorized(_)) => {}
        other => panic!("expected unauthorized, got {other:?}"),
    }
    p.stop();
}

#[test]
fn rollback_to_a_cold_previous_restarts_it_without_rebuilding() {
    let fx = Fixture::new();
    let v1 = fx.commit(&routes("v1"));
    let v2 = fx.commit(&routes("v2"));
    let mut cfg = fx.config();
    cfg.warm = Duration::from_millis(200);
    let p = InProcess::start(cfg);
    p.client.deploy_production(&v1).expect("v1");
    let out = p.client.deploy_production(&v2).expect("v2");
    let prev = out.previous.expect("previous");
    let v1_pid_dead = || {
        p.client
            .status()
            .ok()
            .and_then(|s| s.previous)
            .is_some_and(|p| p.state == ReleaseState::Cold)
    };
    eventually(Duration::from_secs(10), "previous goes cold", v1_pid_dead);
    assert_eq!(fx.builds(), 2);
    let back = p.client.rollback(None).expect("rollback");
    assert_eq!(back.release.id, prev.id);
    assert!(!back.built, "restarted from its worktree");
    assert_eq!(fx.builds(), 2);
    assert_eq!(get(&fx.url("/version")), (200, "v1".to_string()));

    // Rollback to an explicit sha that is no longer around rebuilds it.
    let v3 = fx.commit(&routes("v3"));
    p.client.deploy_production(&v3).expect("v3");
    let back = p.client.rollback(Some(&v2)).expect("rollback to v2");
    assert_eq!(back.release.sha, v2);
    assert!(back.built);
    assert_eq!(get(&fx.url("/version")), (200, "v2".to_string()));
    p.stop();
}

#[test]
fn after_kill_9_a_restarted_platform_brings_production_back_without_a_rebuild() {
    let fx = Fixture::new();
    let v1 = fx.commit(&routes("v1"));
    fx.write_hotfix_toml("");
    let cfg = hotfix_platform::PlatformConfig::load(&fx.repo).expect("config");
    let mut cfg = cfg;
    cfg.state_dir = fx.state.clone();
    let info =
        hotfix_platform::start_background(&cfg, RUNNER.as_ref(), &fx.runner_args()).expect("start");
    assert_eq!(info.proxy_port, fx.port);
    // Idempotent: a second start finds the running one.
    let again = hotfix_platform::start_background(&cfg, RUNNER.as_ref(), &fx.runner_args())
        .expect("start again");
    assert_eq!(again.pid, info.pid);

    let client = Client::connect(&fx.state).expect("client");
    client.deploy_production(&v1).expect("deploy");
    let preview = client.deploy_preview("HF-1", &v1).expect("preview");
    assert_eq!(fx.builds(), 2);
    let prod_pid = service_pid(&fx.url(""));
    let preview_pid = service_pid(&preview.url);

    // kill -9 the platform: its releases die with it (no orphans).
    let killed = std::process::Command::new("kill")
        .args(["-9", &info.pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    eventually(Duration::from_secs(5), "platform gone", || {
        !pid_alive(info.pid)
    });
    eventually(Duration::from_secs(5), "release processes gone", || {
        !pid_alive(prod_pid) && !pid_alive(preview_pid)
    });
    // The lock goes with the last process of the killed tree, which the
    // kernel may tear down a moment after the platform's own pid.
    eventually(Duration::from_secs(5), "platform lock released", || {
        !hotfix_platform::is_running(&fx.state)
    });

    let info2 = hotfix_platform::start_background(&cfg, RUNNER.as_ref(), &fx.runner_args())
        .expect("restart");
    assert_ne!(info2.pid, info.pid);
    assert_eq!(info2.proxy_port, fx.port, "same production port");
    let client = Client::connect(&fx.state).expect("client");
    eventually(Duration::from_secs(15), "recovered", || {
        client.status().is_ok_and(|s| !s.recovering)
    });
    assert_eq!(get(&fx.url("/version")), (200, "v1".to_string()));
    assert_eq!(
        get(&format!("{}/version", preview.url)),
        (200, "v1".to_string()),
        "preview on its old port"
    );
    assert_eq!(fx.builds(), 2, "no rebuild");
    let st = client.status().expect("status");
    assert_eq!(st.production.expect("prod").sha, v1);

    // stop leaves nothing behind.
    let pids = [
        info2.pid,
        service_pid(&fx.url("")),
        service_pid(&preview.url),
    ];
    assert!(hotfix_platform::stop(&fx.state).expect("stop"));
    for pid in pids {
        assert!(!pid_alive(pid), "pid {pid} survived stop");
    }
    assert!(!fx.state.join("control.json").exists());
    assert!(
        !hotfix_platform::stop(&fx.state).expect("second stop"),
        "nothing was running"
    );
    assert!(matches!(
        Client::connect(&fx.state),
        Err(PlatformError::NotRunning { .. })
    ));
}

#[test]
fn default_state_dir_is_under_the_git_common_dir() {
    let fx = Fixture::new();
    let d = hotfix_platform::default_state_dir(&fx.repo).expect("state dir");
    assert!(d.ends_with(".git/hotfix/platform"), "{}", d.display());
}

#[test]
fn sigterm_stops_the_platform_and_every_release_it_started() {
    let fx = Fixture::new();
    let v1 = fx.commit(&routes("v1"));
    let v2 = fx.commit(&routes("v2"));
    fx.write_hotfix_toml("");
    let mut cfg = hotfix_platform::PlatformConfig::load(&fx.repo).expect("config");
    cfg.state_dir = fx.state.clone();
    let info =
        hotfix_platform::start_background(&cfg, RUNNER.as_ref(), &fx.runner_args()).expect("start");
    let client = Client::connect(&fx.state).expect("client");
    client.deploy_production(&v1).expect("v1");
    let v1_pid = service_pid(&fx.url(""));
    client.deploy_production(&v2).expect("v2");
    let v2_pid = service_pid(&fx.url(""));
    let preview = client.deploy_preview("HF-9", &v1).expect("preview");
    let preview_pid = service_pid(&preview.url);
    assert!(pid_alive(v1_pid), "previous is warm");
    let term = std::process::Command::new("kill")
        .args(["-TERM", &info.pid.to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    eventually(Duration::from_secs(10), "everything stopped", || {
        [info.pid, v1_pid, v2_pid, preview_pid]
            .iter()
            .all(|p| !pid_alive(*p))
    });
    assert!(!fx.state.join("control.json").exists());
    assert!(!fx.state.join("token").exists());
    // The state survives a clean stop: production is what comes back.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fx.state.join("state.json")).expect("state"))
            .expect("json");
    assert_eq!(state["production"]["sha"].as_str(), Some(v2.as_str()));
}
