//! Traffic counters of the production proxy (`/v1/stats`, `/metrics`) and
//! canary releases, measured from real requests to real releases.

use crate::common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use hotfix_platform::{PlatformStats, ReleaseStats};

/// Routes with a failing and a slow path beside the healthy ones.
fn mixed_routes(version: &str) -> String {
    format!(
        "{}[[route]]\npath = \"/boom\"\nstatus = 500\nbody = \"{version}-boom\"\n\
         [[route]]\npath = \"/ok\"\nbody = \"{version}-ok\"\n",
        routes(version)
    )
}

fn release<'a>(s: &'a PlatformStats, role: &str) -> &'a ReleaseStats {
    s.releases
        .iter()
        .find(|r| r.role == role)
        .unwrap_or_else(|| panic!("no {role} release in {s:?}"))
}

fn route(r: &ReleaseStats, path: &str) -> (u64, u64) {
    r.routes
        .iter()
        .find(|x| x.path == path)
        .map(|x| (x.requests, x.errors_5xx))
        .unwrap_or((0, 0))
}

/// Count in the cumulative bucket `le` (ms).
fn bucket(r: &ReleaseStats, le: f64) -> u64 {
    r.latency_buckets_ms
        .iter()
        .find(|(l, _)| *l == le)
        .map(|b| b.1)
        .unwrap_or_else(|| panic!("no bucket {le} in {:?}", r.latency_buckets_ms))
}

#[test]
fn stats_count_real_requests_errors_routes_and_latency() {
    let fx = Fixture::new();
    let v1 = fx.commit(&mixed_routes("v1"));
    let p = InProcess::start(fx.config());
    p.client.deploy_production(&v1).expect("deploy");
    let before = p.client.stats().expect("stats");
    assert_eq!(
        release(&before, "production").requests,
        0,
        "health probes bypass the proxy"
    );

    let a = agent();
    for i in 0..40 {
        assert_eq!(get_with(&a, &fx.url(&format!("/ok?n={i}"))).0, 200);
    }
    for _ in 0..7 {
        assert_eq!(get_with(&a, &fx.url("/boom")).0, 500);
    }
    for _ in 0..3 {
        assert_eq!(get_with(&a, &fx.url("/slow")).0, 200);
    }
    let mut s = p.client.stats().expect("stats");
    eventually(Duration::from_secs(5), "every answer counted", || {
        s = p.client.stats().expect("stats");
        release(&s, "production").requests == 50
    });
    let r = release(&s, "production");
    assert_eq!(r.sha, v1);
    assert_eq!(r.errors_5xx, 7);
    assert_eq!(
        route(r, "/ok"),
        (40, 0),
        "the query is not part of the path"
    );
    assert_eq!(route(r, "/boom"), (7, 7));
    assert_eq!(route(r, "/slow"), (3, 0));
    assert_eq!(r.routes[0].path, "/ok", "busiest first");
    // The three 300 ms answers are above 250 ms and within 500 ms.
    assert_eq!(bucket(r, 250.0), 47);
    assert_eq!(bucket(r, 500.0), 50);
    assert_eq!(r.latency_buckets_ms.last().map(|b| b.1), Some(50));
    assert!(
        r.latency_buckets_ms
            .last()
            .is_some_and(|b| b.0.is_infinite())
    );
    assert!(r.latency_sum_ms >= 900.0, "sum {}", r.latency_sum_ms);

    // Stats need the token like every /v1 route.
    let (status, _) = get(&format!("{}/v1/stats", p.client.info().url()));
    assert_eq!(status, 401);

    // After a deploy the old release is the previous one, with its counts.
    let v2 = fx.commit(&mixed_routes("v2"));
    p.client.deploy_production(&v2).expect("deploy v2");
    assert_eq!(get_with(&a, &fx.url("/boom")).0, 500);
    eventually(Duration::from_secs(5), "v2 counted", || {
        s = p.client.stats().expect("stats");
        release(&s, "production").requests == 1
    });
    assert_eq!(release(&s, "production").errors_5xx, 1);
    assert_eq!(release(&s, "previous").sha, v1);
    assert_eq!(release(&s, "previous").requests, 50);
    p.stop();
}

/// `promtool check metrics` on `text`; `None` if promtool is not installed
/// (allowed locally, a failure under CI).
fn promtool(text: &str) -> Option<(bool, String)> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "promtool is required under CI (Debian package prometheus): {e}"
            );
            eprintln!("SKIP: promtool not installed: {e}");
            return None;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    Some((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

#[test]
fn metrics_are_served_without_a_token_and_pass_promtool() {
    let fx = Fixture::new();
    let v1 = fx.commit(&mixed_routes("v1"));
    let p = InProcess::start(fx.config());
    p.client.deploy_production(&v1).expect("deploy");
    let a = agent();
    for _ in 0..5 {
        get_with(&a, &fx.url("/ok"));
    }
    for _ in 0..2 {
        get_with(&a, &fx.url("/boom"));
    }
    get_with(&a, &fx.url("/weird\"path"));
    let url = format!("{}/metrics", p.client.info().url());
    let mut text = String::new();
    eventually(Duration::from_secs(5), "metrics show the requests", || {
        let (s, t) = get(&url);
        assert_eq!(s, 200, "{t}");
        text = t;
        text.contains("code_class=\"5xx\"} 2")
    });
    let id = p
        .client
        .status()
        .expect("status")
        .production
        .expect("prod")
        .id;
    assert!(
        text.contains(&format!(
            "hotfix_platform_requests_total{{release=\"{id}\",sha=\"{v1}\",role=\"production\",code_class=\"2xx\"}} 5"
        )),
        "{text}"
    );
    assert!(
        text.contains("hotfix_platform_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(text.contains("le=\"+Inf\"} 8"), "{text}");
    assert!(
        text.contains("hotfix_platform_request_duration_seconds_count{"),
        "{text}"
    );
    assert!(
        text.contains("path=\"/weird\\\"path\""),
        "label values are escaped: {text}"
    );
    if let Some((ok, out)) = promtool(&text) {
        assert!(ok, "promtool check metrics failed: {out}\n{text}");
    }
    p.stop();
}

/// `GET url` with extra headers: (status, body, set-cookie).
fn get_h(a: &ureq::Agent, url: &str, headers: &[(&str, &str)]) -> (u16, String, Option<String>) {
    let mut req = a.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    match req.call() {
        Ok(mut r) => {
            let cookie = r
                .headers()
                .get("set-cookie")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let s = r.status().as_u16();
            (s, r.body_mut().read_to_string().unwrap_or_default(), cookie)
        }
        Err(e) => (0, e.to_string(), None),
    }
}

/// How many of `n` plain requests to `/version` answered `version`; every
/// answer must be `v1` or `v2`.
fn share(fx: &Fixture, n: usize, version: &str) -> usize {
    let a = agent();
    let mut hits = 0;
    for _ in 0..n {
        let (s, body, _) = get_h(&a, &fx.url("/version"), &[]);
        assert_eq!(s, 200, "{body}");
        assert!(body == "v1" || body == "v2", "{body}");
        hits += usize::from(body == version);
    }
    hits
}

fn canary(sha: &str, weight: f64) -> hotfix_platform::CanaryRequest {
    hotfix_platform::CanaryRequest {
        sha: sha.to_string(),
        weight,
        ..Default::default()
    }
}

#[test]
fn canary_weights_are_measured_from_real_requests_sticky_clients_stay_and_promote_keeps_the_process()
 {
    let fx = Fixture::new();
    let v1 = fx.commit(&routes("v1"));
    let v2 = fx.commit(&routes("v2"));
    let p = InProcess::start(fx.config());
    match p.client.canary_start(&canary(&v2, 10.0)) {
        Err(hotfix_platform::PlatformError::Conflict(m)) => {
            assert!(m.contains("deploy one first"), "{m}")
        }
        other => panic!("a canary needs production: {other:?}"),
    }
    let prod = p.client.deploy_production(&v1).expect("deploy v1").release;
    let out = p.client.canary_start(&canary(&v2, 10.0)).expect("canary");
    let c = out.canary.expect("canary info");
    assert_eq!((c.release.sha.as_str(), c.weight), (v2.as_str(), 10.0));
    assert_eq!(out.production.expect("prod").id, prod.id);
    let st = p.client.status().expect("status");
    assert_eq!(st.canary.as_ref().map(|c| c.weight), Some(10.0));

    let hits = share(&fx, 500, "v2");
    assert!(
        (40..=60).contains(&hits),
        "10% of 500 went to the canary: {hits}"
    );

    // The canary's answers carry the sticky cookie; a client sending it
    // back always gets the canary, and one naming production stays there.
    let a = agent();
    let cookie = loop {
        let (_, body, cookie) = get_h(&a, &fx.url("/version"), &[]);
        if body == "v2" {
            break cookie.expect("the canary sets its cookie");
        }
        assert!(cookie.is_none(), "production answers set no cookie");
    };
    assert!(
        cookie.starts_with(&format!("hotfix_release={}", c.release.id)),
        "{cookie}"
    );
    let pair = cookie.split(';').next().expect("pair").to_string();
    for _ in 0..30 {
        assert_eq!(get_h(&a, &fx.url("/version"), &[("Cookie", &pair)]).1, "v2");
        assert_eq!(
            get_h(&a, &fx.url("/version"), &[("X-Hotfix-Release", &prod.id)]).1,
            "v1"
        );
    }

    // Another production deploy waits for the canary's verdict.
    let v3 = fx.commit(&routes("v3"));
    match p.client.deploy_production(&v3) {
        Err(hotfix_platform::PlatformError::Conflict(m)) => {
            assert!(m.contains("promote it"), "{m}")
        }
        other => panic!("a deploy during a canary must be refused: {other:?}"),
    }

    let w = p.client.canary_weight(50.0).expect("weight");
    assert_eq!(w.canary.map(|c| c.weight), Some(50.0));
    let hits = share(&fx, 400, "v2");
    assert!(
        (180..=220).contains(&hits),
        "50% of 400 went to the canary: {hits}"
    );
    let s = p.client.stats().expect("stats");
    let canary_stats = release(&s, "canary");
    assert_eq!(canary_stats.id, c.release.id);
    assert!(canary_stats.requests >= 30 + 40, "{canary_stats:?}");

    // Promote: the same process takes all the requests, v1 stays warm.
    let canary_pid = service_pid(&format!("http://127.0.0.1:{}", c.release.port));
    let promoted = p.client.canary_promote(None).expect("promote");
    assert_eq!(promoted.release.id, c.release.id);
    assert_eq!(
        promoted.previous.as_ref().map(|r| r.sha.as_str()),
        Some(v1.as_str())
    );
    assert_eq!(share(&fx, 50, "v2"), 50);
    assert_eq!(
        service_pid(&fx.url("")),
        canary_pid,
        "no restart on promote"
    );
    let st = p.client.status().expect("status");
    assert!(st.canary.is_none());
    assert_eq!(
        st.previous.expect("previous").state,
        hotfix_platform::ReleaseState::Warm
    );
    assert_eq!(st.history[0].sha, v2);
    // And a rollback is the usual instant switch back to v1.
    p.client.rollback(None).expect("rollback");
    assert_eq!(share(&fx, 20, "v1"), 20);
    p.stop();
}

#[test]
fn aborting_a_canary_sends_it_nothing_at_once_and_drops_no_request_in_flight() {
    let fx = Fixture::new();
    let v1 = fx.commit(&routes("v1"));
    let v2 = fx.commit(&routes("v2"));
    let p = InProcess::start(fx.config());
    p.client.deploy_production(&v1).expect("deploy v1");
    let c = p
        .client
        .canary_start(&canary(&v2, 50.0))
        .expect("canary")
        .canary
        .expect("canary info");
    let canary_url = format!("http://127.0.0.1:{}", c.release.port);
    let canary_pid = service_pid(&canary_url);

    let hammer = Hammer::start(fx.url("/version"), 4, |b| b == "v1" || b == "v2");
    // A slow request in flight to the canary while it is aborted.
    let slow = std::thread::spawn({
        let url = fx.url("/slow");
        let id = c.release.id.clone();
        move || {
            let (s, body, _) = get_h(&agent(), &url, &[("X-Hotfix-Release", &id)]);
            (s, body)
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    let t0 = std::time::Instant::now();
    let out = p.client.canary_abort().expect("abort");
    let took = t0.elapsed();
    assert!(out.canary.is_none());
    assert!(took < Duration::from_millis(500), "abort took {took:?}");
    // 0% from the abort on, even for clients that asked for the canary.
    let a = agent();
    for _ in 0..50 {
        assert_eq!(
            get_h(
                &a,
                &fx.url("/version"),
                &[("X-Hotfix-Release", &c.release.id)]
            )
            .1,
            "v1"
        );
    }
    assert_eq!(slow.join().expect("slow"), (200, "v2-slow".to_string()));
    let (sent, failed, fails) = hammer.finish();
    assert!(sent > 20, "sent only {sent}");
    assert_eq!(failed, 0, "failed during the abort: {fails:?}");

    eventually(
        Duration::from_secs(10),
        "canary stopped and removed",
        || !pid_alive(canary_pid) && !c.release.worktree.exists(),
    );
    assert!(p.client.status().expect("status").canary.is_none());
    // An abort without a canary is a no-op (a re-run after a crash).
    assert!(
        p.client
            .canary_abort()
            .expect("abort again")
            .canary
            .is_none()
    );

    // A rollback during a canary aborts it first; with no previous
    // release that is all it does (production stays v1).
    p.client
        .canary_start(&canary(&v2, 50.0))
        .expect("canary again");
    let back = p.client.rollback(None).expect("rollback aborts the canary");
    assert_eq!(back.release.sha, v1);
    assert!(p.client.status().expect("status").canary.is_none());
    assert_eq!(share(&fx, 20, "v2"), 0);
    p.stop();
}

fn kill_9(pid: u32, state: &std::path::Path) {
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    eventually(Duration::from_secs(5), "platform gone", || !pid_alive(pid));
    eventually(Duration::from_secs(5), "platform lock released", || {
        !hotfix_platform::is_running(state)
    });
}

#[test]
fn after_kill_9_during_a_canary_the_platform_restores_the_recorded_weight() {
    let fx = Fixture::new();
    let v1 = fx.commit(&routes("v1"));
    let v2 = fx.commit(&routes("v2"));
    fx.write_hotfix_toml("");
    let mut cfg = hotfix_platform::PlatformConfig::load(&fx.repo).expect("config");
    cfg.state_dir = fx.state.clone();
    let info =
        hotfix_platform::start_background(&cfg, RUNNER.as_ref(), &fx.runner_args()).expect("start");
    let client = hotfix_platform::Client::connect(&fx.state).expect("client");
    client.deploy_production(&v1).expect("deploy");
    let c = client
        .canary_start(&canary(&v2, 20.0))
        .expect("canary")
        .canary
        .expect("canary info");
    kill_9(info.pid, &fx.state);

    let info2 = hotfix_platform::start_background(&cfg, RUNNER.as_ref(), &fx.runner_args())
        .expect("restart");
    let client = hotfix_platform::Client::connect(&fx.state).expect("client");
    eventually(Duration::from_secs(15), "recovered", || {
        client.status().is_ok_and(|s| !s.recovering)
    });
    let st = client.status().expect("status");
    let back = st.canary.expect("the canary is back");
    assert_eq!(
        (back.release.id.as_str(), back.weight),
        (c.release.id.as_str(), 20.0)
    );
    let hits = share(&fx, 300, "v2");
    assert!(
        (45..=75).contains(&hits),
        "20% of 300 went to the canary: {hits}"
    );
    client.canary_abort().expect("abort");
    assert_eq!(share(&fx, 30, "v2"), 0);
    hotfix_platform::stop(&fx.state).expect("stop");
    assert!(!pid_alive(info2.pid));
}

#[test]
fn after_kill_9_during_an_abort_the_restarted_platform_completes_it() {
    let fx = Fixture::new();
    let v1 = fx.commit(&routes("v1"));
    let v2 = fx.commit(&format!(
        "{}[[route]]\npath = \"/long\"\nbody = \"long\"\ndelay_ms = 5000\n",
        routes("v2")
    ));
    fx.write_hotfix_toml("drain = \"10s\"\n");
    let mut cfg = hotfix_platform::PlatformConfig::load(&fx.repo).expect("config");
    cfg.state_dir = fx.state.clone();
    let info =
        hotfix_platform::start_background(&cfg, RUNNER.as_ref(), &fx.runner_args()).expect("start");
    let client = hotfix_platform::Client::connect(&fx.state).expect("client");
    client.deploy_production(&v1).expect("deploy");
    let c = client
        .canary_start(&canary(&v2, 20.0))
        .expect("canary")
        .canary
        .expect("canary info");
    // A long request keeps the aborted canary draining.
    let long = std::thread::spawn({
        let url = fx.url("/long");
        let id = c.release.id.clone();
        move || get_h(&agent(), &url, &[("X-Hotfix-Release", &id)]).0
    });
    std::thread::sleep(Duration::from_millis(200));
    client.canary_abort().expect("abort");
    std::thread::sleep(Duration::from_millis(100));
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fx.state.join("state.json")).expect("state"))
            .expect("json");
    assert_eq!(state["aborting"][0]["id"], c.release.id.as_str(), "{state}");
    assert!(c.release.worktree.exists(), "still draining");
    kill_9(info.pid, &fx.state);
    let _ = long.join();

    hotfix_platform::start_background(&cfg, RUNNER.as_ref(), &fx.runner_args()).expect("restart");
    let client = hotfix_platform::Client::connect(&fx.state).expect("client");
    eventually(Duration::from_secs(15), "recovered", || {
        client.status().is_ok_and(|s| !s.recovering)
    });
    assert!(client.status().expect("status").canary.is_none());
    assert!(!c.release.worktree.exists(), "the abort was completed");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fx.state.join("state.json")).expect("state"))
            .expect("json");
    assert!(state.get("aborting").is_none(), "{state}");
    assert_eq!(share(&fx, 20, "v1"), 20);
    hotfix_platform::stop(&fx.state).expect("stop");
}
