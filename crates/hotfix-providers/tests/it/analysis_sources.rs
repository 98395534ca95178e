//! The `http-json`, `command` and `platform` analysis providers against
//! real things on 127.0.0.1: a JSON endpoint, scripts in a temp directory,
//! and the embedded platform serving real releases to real requests.

use std::time::{Duration, Instant};

use hotfix_core::analysis::{
    AnalysisConfig, Baseline, Inconclusive, Measurement, PlatformMetric, Source, Verdict, judge,
};
use hotfix_providers::analysis::{AnalysisError, MeasureContext, source_for, source_in};
use hotfix_testkit::{FileServer, script};

use crate::common;

fn cfg(source: Source) -> AnalysisConfig {
    AnalysisConfig {
        name: "m".into(),
        source,
        max: Some(10.0),
        min: None,
        baseline: None,
        max_increase: None,
        interval: Duration::from_secs(2),
        failure_limit: 2,
        inconclusive: Inconclusive::Pause,
    }
}

fn cx(sha: &str) -> MeasureContext {
    MeasureContext {
        deployed_at: "2026-12-03T10:00:00Z".parse().expect("ts"),
        now: jiff::Timestamp::now(),
        window: Duration::from_secs(30),
        sha: sha.into(),
        previous_sha: Some("b".repeat(40)),
        platform_dir: None,
    }
}

fn json(url: String, pointer: &str) -> AnalysisConfig {
    cfg(Source::HttpJson {
        url,
        pointer: pointer.into(),
    })
}

#[test]
fn http_json_reads_the_number_at_the_pointer() {
    let tmp = tempfile::tempdir().expect("tmp");
    let server = FileServer::start(&tmp.path().join("www"));
    let write = |name: &str, body: &str| std::fs::write(server.dir.join(name), body).expect("w");
    write(
        "stats",
        r#"{"data": {"errors": 12.5, "p99": "0.25", "none": null, "list": [1, 2]}}"#,
    );
    let url = format!("{}/stats", server.url());
    let m = |p: &str| source_for(&json(url.clone(), p)).measure(&cx("a"));

    let errors = json(url.clone(), "/data/errors");
    let got = m("/data/errors").expect("number");
    assert_eq!(got, Measurement::of(12.5));
    assert_eq!(judge(&errors, &got), Verdict::Fail("12.5 > max 10".into()));
    assert_eq!(
        m("/data/p99"),
        Ok(Measurement::of(0.25)),
        "a numeric string"
    );
    assert_eq!(m("/data/list/1"), Ok(Measurement::of(2.0)));
    assert_eq!(
        m("/data/none"),
        Ok(Measurement::no_data()),
        "null is no data"
    );
    let e = m("/data/typo").expect_err("nothing there");
    assert_eq!(
        e,
        AnalysisError::BadAnswer(format!("{url}: no value at `/data/typo`"))
    );

    write("notjson", "<html>oops</html>");
    let e = source_for(&json(format!("{}/notjson", server.url()), ""))
        .measure(&cx("a"))
        .expect_err("not JSON");
    assert!(
        matches!(&e, AnalysisError::BadAnswer(m) if m.contains("is not JSON") && m.contains("<html>oops</html>")),
        "{e:?}"
    );
    write("broken", "crash");
    let e = source_for(&json(format!("{}/broken", server.url()), "/v"))
        .measure(&cx("a"))
        .expect_err("500");
    assert!(
        matches!(&e, AnalysisError::BadAnswer(m) if m.contains("answered 500: internal error")),
        "{e:?}"
    );
    let port = hotfix_platform::free_port().expect("port");
    let e = source_for(&json(format!("http://127.0.0.1:{port}/stats"), "/v"))
        .measure(&cx("a"))
        .expect_err("down");
    assert!(
        matches!(&e, AnalysisError::Unreachable(m) if m.contains("is not reachable") && m.to_lowercase().contains("refused")),
        "{e:?}"
    );
}

fn command(c: &str) -> AnalysisConfig {
    cfg(Source::Command { command: c.into() })
}

#[test]
fn a_command_runs_from_the_root_with_the_deploy_in_its_environment() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    std::fs::write(root.join("value.txt"), "0.5\n").expect("w");
    script(
        &root.join("scripts/measure.sh"),
        "echo \"measuring $HOTFIX_SHA since $HOTFIX_DEPLOYED_AT for $HOTFIX_WINDOW_S s after $HOTFIX_PREVIOUS_SHA with [$1]\" > seen.txt\n\
         echo 'some progress'\ncat value.txt\necho",
    );
    let c = command("./scripts/measure.sh 'two words'");
    let m = source_in(&c, root)
        .measure(&cx("abc123"))
        .expect("measured");
    assert_eq!(m, Measurement::of(0.5), "the last non-empty line");
    let seen = std::fs::read_to_string(root.join("seen.txt")).expect("ran in the root");
    assert_eq!(
        seen.trim(),
        format!(
            "measuring abc123 since 2026-12-03T10:00:00Z for 30 s after {} with [two words]",
            "b".repeat(40)
        )
    );

    // No output: no data.
    script(&root.join("scripts/quiet.sh"), "true");
    assert_eq!(
        source_in(&command("./scripts/quiet.sh"), root).measure(&cx("a")),
        Ok(Measurement::no_data())
    );
    // Not a number.
    script(&root.join("scripts/words.sh"), "echo 'about 3'");
    let e = source_in(&command("./scripts/words.sh"), root)
        .measure(&cx("a"))
        .expect_err("words");
    assert_eq!(
        e,
        AnalysisError::BadAnswer(
            "the last line of `./scripts/words.sh` is `about 3`, not a number".into()
        )
    );
    // A failure carries the end of its stderr.
    script(
        &root.join("scripts/fails.sh"),
        "echo 12\necho 'connecting to db' >&2\necho 'db: permission denied' >&2\nexit 3",
    );
    let e = source_in(&command("./scripts/fails.sh"), root)
        .measure(&cx("a"))
        .expect_err("exit 3");
    let AnalysisError::BadAnswer(msg) = &e else {
        panic!("{e:?}")
    };
    assert!(
        msg.starts_with("`./scripts/fails.sh` failed (exit status: 3)"),
        "{msg}"
    );
    assert!(
        msg.ends_with("connecting to db\ndb: permission denied"),
        "{msg}"
    );
    // Past the timeout it is stopped, with its children.
    script(&root.join("scripts/hangs.sh"), "sleep 30 &\nsleep 30");
    let slow = AnalysisConfig {
        interval: Duration::from_secs(1),
        ..command("./scripts/hangs.sh")
    };
    let started = Instant::now();
    let e = source_in(&slow, root)
        .measure(&cx("a"))
        .expect_err("timeout");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        e,
        AnalysisError::BadAnswer(
            "`./scripts/hangs.sh` did not finish within 1s; it was stopped".into()
        )
    );
    // A program that does not exist.
    let e = source_in(&command("./scripts/missing.sh"), root)
        .measure(&cx("a"))
        .expect_err("missing");
    assert!(
        matches!(&e, AnalysisError::Query(m) if m.starts_with("could not start `./scripts/missing.sh`")),
        "{e:?}"
    );
}

// --- the embedded platform ---------------------------------------------

/// `/ok` answers `ok_status` after `delay_ms`; `/fine` always answers 200 at once.
fn routes(ok_status: u16, delay_ms: u64) -> String {
    format!(
        "log_requests = false\n\
         [[route]]\npath = \"/health\"\nbody = \"ok\"\n\
         [[route]]\npath = \"/fine\"\nbody = \"fine\"\n\
         [[route]]\npath = \"/ok\"\nstatus = {ok_status}\nbody = \"ok\"\ndelay_ms = {delay_ms}\n"
    )
}

/// The proxy counts an answer once its body is sent: wait until it has.
fn counted(p: &common::Platform, sha: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = p.client.stats().expect("stats");
        if s.releases.iter().any(|r| r.sha == sha && r.requests >= n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} requests never counted: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn platform(metric: PlatformMetric, route: Option<&str>) -> AnalysisConfig {
    cfg(Source::Platform {
        metric,
        route: route.map(String::from),
    })
}

#[test]
fn the_platform_provider_measures_the_new_release_over_each_window() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (repo, state) = (tmp.path().join("repo"), tmp.path().join("state"));
    std::fs::create_dir_all(&repo).expect("mkdir");
    common::git(&repo, &["init", "-q", "-b", "main"]);
    let v1 = common::commit_routes(&repo, &routes(200, 0));
    let v2 = common::commit_routes(&repo, &routes(500, 120));
    let p = common::start_platform(&repo, &state);
    let port = p.port;
    p.client.deploy_production(&v1).expect("deploy v1");
    common::traffic(port, "/ok", 20);
    counted(&p, &v1, 20);

    p.client.deploy_production(&v2).expect("deploy v2");
    let deployed_at = jiff::Timestamp::now();
    let cx = MeasureContext {
        deployed_at,
        now: deployed_at,
        window: Duration::from_secs(30),
        sha: v2.clone(),
        previous_sha: Some(v1.clone()),
        platform_dir: Some(state.clone()),
    };
    let ratio_cfg = AnalysisConfig {
        max: Some(0.01),
        ..platform(PlatformMetric::ErrorRatio, None)
    };
    let ratio = source_for(&ratio_cfg);
    // Nothing served yet by the new release: no data, not a ratio of 0.
    assert_eq!(ratio.measure(&cx), Ok(Measurement::no_data()));

    // Half the requests of the window fail.
    common::traffic(port, "/ok", 10);
    common::traffic(port, "/fine", 10);
    counted(&p, &v2, 20);
    let m = ratio.measure(&cx).expect("measured");
    assert_eq!(m, Measurement::of(0.5));
    assert_eq!(
        judge(&ratio_cfg, &m),
        Verdict::Fail("0.5 > max 0.01".into())
    );
    // The next window has only good requests: the ratio is of the window.
    common::traffic(port, "/fine", 10);
    counted(&p, &v2, 30);
    assert_eq!(ratio.measure(&cx), Ok(Measurement::of(0.0)));

    // One route: all of /ok fails since the deploy.
    let route = source_for(&platform(PlatformMetric::ErrorRatio, Some("/ok")));
    assert_eq!(route.measure(&cx), Ok(Measurement::of(1.0)));

    // p99 latency against the previous release, which served fast answers
    // before the switch and nothing since.
    let p99_cfg = AnalysisConfig {
        max: None,
        baseline: Some(Baseline::Previous),
        max_increase: Some(0.5),
        ..platform(PlatformMetric::LatencyP99, None)
    };
    let m = source_for(&p99_cfg).measure(&cx).expect("measured");
    let (value, baseline) = (m.value.expect("p99"), m.baseline.expect("baseline"));
    assert!(baseline < 25.0, "v1 answered at once: {baseline} ms");
    assert!(
        value > 100.0,
        "v2 waits 120 ms on a third of them: {value} ms"
    );
    assert!(matches!(judge(&p99_cfg, &m), Verdict::Fail(_)), "{m:?}");

    // A release the platform does not serve.
    let e = ratio
        .measure(&MeasureContext {
            sha: "c".repeat(40),
            ..cx.clone()
        })
        .expect_err("not served");
    assert!(
        matches!(&e, AnalysisError::Query(m) if m.contains("serves no production or canary release of cccccccccccc")),
        "{e:?}"
    );
    drop(p);

    // No platform running: unreachable, saying so.
    let e = ratio.measure(&cx).expect_err("stopped");
    assert!(
        matches!(&e, AnalysisError::Unreachable(m) if m.contains("not running") || m.contains("cannot reach")),
        "{e:?}"
    );
    let e = ratio
        .measure(&MeasureContext {
            platform_dir: None,
            ..cx
        })
        .expect_err("no dir");
    assert!(
        matches!(&e, AnalysisError::Unreachable(m) if m.contains("needs the embedded platform")),
        "{e:?}"
    );
}
