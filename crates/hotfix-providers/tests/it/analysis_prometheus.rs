//! `provider = "prometheus"` against a real Prometheus (`/usr/bin/prometheus`,
//! the Debian package), started by each test on a free 127.0.0.1 port and
//! scraping a tiny metrics server the test runs (every second). Skipped
//! when the binary is missing, except under `CI=true`, where `.ci/run`
//! installs it and a skip would hide a broken analysis.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hotfix_core::analysis::{
    AnalysisConfig, Baseline, Inconclusive, Measurement, Source, Verdict, judge,
};
use hotfix_providers::analysis::{AnalysisError, MeasureContext, source_for};

use crate::common;

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// The metrics the test serves, as Prometheus text; changeable mid-test.
struct Exporter {
    port: u16,
    body: Arc<Mutex<String>>,
}

impl Exporter {
    fn start(body: &str) -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let body = Arc::new(Mutex::new(body.to_string()));
        let shared = body.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                // The request head, up to its blank line.
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if line == "\r\n" || line == "\n" {
                        break;
                    }
                    line.clear();
                }
                let text = shared.lock().expect("body").clone();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            }
        });
        Exporter { port, body }
    }

    fn set(&self, body: &str) {
        *self.body.lock().expect("body") = body.to_string();
    }
}

/// A Prometheus process, killed when dropped.
struct Prom {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prom {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `None` = skip (no binary, not in CI).
fn prometheus_scraping(target_port: u16) -> Option<Prom> {
    if !Path::new(PROMETHEUS).exists() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "{PROMETHEUS} is missing under CI=true: .ci/run must install the `prometheus` package"
            );
        }
        eprintln!("skipped: {PROMETHEUS} is not installed (apt-get install prometheus)");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: demo\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
        ),
    )
    .expect("config");
    let port = hotfix_platform::free_port().expect("free port");
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("prometheus starts");
    let prom = Prom {
        child,
        address: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    // Up = the target scraped at least once.
    let up = source_for(&analysis("up", "up{job=\"demo\"}", &prom.address));
    wait_for(
        &format!("Prometheus to scrape 127.0.0.1:{target_port}"),
        || matches!(up.measure(&cx(ts_now())), Ok(Measurement { value: Some(v), .. }) if v == 1.0),
    );
    Some(prom)
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ts_now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

fn cx(deployed_at: jiff::Timestamp) -> MeasureContext {
    MeasureContext {
        deployed_at,
        now: jiff::Timestamp::now(),
        window: Duration::from_secs(30),
        sha: "a".repeat(40),
        previous_sha: None,
        platform_dir: None,
    }
}

fn analysis(name: &str, query: &str, address: &str) -> AnalysisConfig {
    AnalysisConfig {
        name: name.into(),
        source: Source::Prometheus {
            address: address.into(),
            query: query.into(),
        },
        max: Some(0.01),
        min: None,
        baseline: None,
        max_increase: None,
        interval: Duration::from_secs(2),
        failure_limit: 2,
        inconclusive: Inconclusive::Pause,
    }
}

const METRICS: &str = "# TYPE demo_error_ratio gauge\n\
demo_error_ratio{release=\"good\"} 0.004\n\
demo_error_ratio{release=\"bad\"} 0.12\n";

#[test]
fn a_query_within_max_passes_and_one_above_fails_with_the_numbers() {
    let exporter = Exporter::start(METRICS);
    let Some(prom) = prometheus_scraping(exporter.port) else {
        return;
    };
    let good = analysis("5xx", "demo_error_ratio{release=\"good\"}", &prom.address);
    let m = source_for(&good).measure(&cx(ts_now())).expect("measured");
    assert_eq!(m, Measurement::of(0.004));
    assert_eq!(judge(&good, &m), Verdict::Pass);

    let bad = analysis("5xx", "demo_error_ratio{release=\"bad\"}", &prom.address);
    let m = source_for(&bad).measure(&cx(ts_now())).expect("measured");
    assert_eq!(judge(&bad, &m), Verdict::Fail("0.12 > max 0.01".into()));

    // A scalar is a number too.
    let scalar = analysis(
        "s",
        "scalar(demo_error_ratio{release=\"bad\"}) * 2",
        &prom.address,
    );
    assert_eq!(
        source_for(&scalar).measure(&cx(ts_now())).expect("scalar"),
        Measurement::of(0.24)
    );
    // Two series are not one number: the answer says how many and what to do.
    let two = analysis("both", "demo_error_ratio", &prom.address);
    let e = source_for(&two)
        .measure(&cx(ts_now()))
        .expect_err("two series");
    assert!(
        matches!(&e, AnalysisError::BadAnswer(m) if m.contains("returns 2 series") && m.contains("sum(")),
        "{e:?}"
    );
    let _ = exporter;
}

#[test]
fn baseline_before_evaluates_the_query_at_the_deploy_moment() {
    let exporter = Exporter::start("demo_latency_ms 100\n");
    let Some(prom) = prometheus_scraping(exporter.port) else {
        return;
    };
    let q = "demo_latency_ms";
    let plain = source_for(&analysis("p", q, &prom.address));
    // Let 100 be scraped a few times, deploy, then the value rises.
    std::thread::sleep(Duration::from_millis(1500));
    let deployed_at = ts_now();
    std::thread::sleep(Duration::from_millis(200));
    exporter.set("demo_latency_ms 300\n");
    wait_for("the new value to be scraped", || {
        plain.measure(&cx(deployed_at)).ok() == Some(Measurement::of(300.0))
    });
    let rel = AnalysisConfig {
        max: None,
        baseline: Some(Baseline::Before),
        max_increase: Some(0.5),
        ..analysis("p99 latency", q, &prom.address)
    };
    let m = source_for(&rel)
        .measure(&cx(deployed_at))
        .expect("measured");
    assert_eq!(m, Measurement::of(300.0).with_baseline(Some(100.0)));
    assert_eq!(
        judge(&rel, &m),
        Verdict::Fail("300 > 150 (baseline before 100 + 50%)".into())
    );
    // ×3 fails; within +200% it passes.
    let loose = AnalysisConfig {
        max_increase: Some(2.0),
        ..rel
    };
    assert_eq!(judge(&loose, &m), Verdict::Pass);
}

#[test]
fn a_query_selecting_nothing_is_no_data_under_the_configured_policy() {
    let exporter = Exporter::start(METRICS);
    let Some(prom) = prometheus_scraping(exporter.port) else {
        return;
    };
    let none = analysis("5xx", "demo_error_ratio{release=\"absent\"}", &prom.address);
    let m = source_for(&none)
        .measure(&cx(ts_now()))
        .expect("an empty vector is an answer");
    assert_eq!(m, Measurement::no_data());
    assert_eq!(judge(&none, &m), Verdict::Inconclusive("no data".into()));
    let fail = AnalysisConfig {
        inconclusive: Inconclusive::Fail,
        ..none.clone()
    };
    assert!(matches!(judge(&fail, &m), Verdict::Fail(_)));
    // 0/0 is NaN in PromQL: no data as well, never a pass.
    let nan = analysis("nan", "scalar(vector(0)) / 0 * 0", &prom.address);
    assert_eq!(
        source_for(&nan).measure(&cx(ts_now())).expect("NaN"),
        Measurement::no_data()
    );
}

#[test]
fn a_promql_error_carries_prometheus_own_error_text() {
    let exporter = Exporter::start(METRICS);
    let Some(prom) = prometheus_scraping(exporter.port) else {
        return;
    };
    let bad = analysis("5xx", "sum(rate(demo_error_ratio[1m]", &prom.address);
    let e = source_for(&bad)
        .measure(&cx(ts_now()))
        .expect_err("bad syntax");
    let AnalysisError::Query(msg) = &e else {
        panic!("expected a query error: {e:?}");
    };
    assert!(msg.contains("parse error"), "{msg}");
    assert!(msg.contains("bad_data"), "{msg}");
    assert!(
        msg.contains(&prom.address) && msg.contains("sum(rate(demo_error_ratio[1m]"),
        "{msg}"
    );
    // A range vector is not a number either.
    let range = analysis("r", "demo_error_ratio{release=\"good\"}[1m]", &prom.address);
    let e = source_for(&range)
        .measure(&cx(ts_now()))
        .expect_err("matrix");
    assert!(
        matches!(&e, AnalysisError::BadAnswer(m) if m.contains("range vector")),
        "{e:?}"
    );
}

#[test]
fn prometheus_down_is_unreachable_with_a_clear_message() {
    // A port nothing listens on: the connection is refused at once.
    let port = hotfix_platform::free_port().expect("free port");
    let address = format!("http://127.0.0.1:{port}");
    let cfg = analysis("5xx", "up", &address);
    let started = Instant::now();
    let e = source_for(&cfg).measure(&cx(ts_now())).expect_err("down");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused, not timed out"
    );
    let AnalysisError::Unreachable(msg) = &e else {
        panic!("expected unreachable: {e:?}");
    };
    assert!(
        msg.starts_with(&format!("Prometheus at {address} is not reachable")),
        "{msg}"
    );
    assert!(msg.to_lowercase().contains("refused"), "{msg}");

    // Something that is not Prometheus at the address: said so.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().expect("clone"));
            let mut l = String::new();
            let _ = r.read_line(&mut l);
            let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot here\n");
        }
    });
    let other = analysis("5xx", "up", &format!("http://127.0.0.1:{port}"));
    let e = source_for(&other)
        .measure(&cx(ts_now()))
        .expect_err("not prometheus");
    assert!(
        matches!(&e, AnalysisError::BadAnswer(m) if m.contains("answered 404 with something that is not the Prometheus API: not here")),
        "{e:?}"
    );
}

// --- Prometheus scraping the embedded platform's /metrics -------------------

/// Commits routes where `/ok` answers `ok_status` and `/fine` always 200.
fn commit(repo: &Path, ok_status: u16) -> String {
    common::commit_routes(
        repo,
        &format!(
            "log_requests = false\n[[route]]\npath = \"/health\"\nbody = \"ok\"\n\
             [[route]]\npath = \"/fine\"\nbody = \"fine\"\n\
             [[route]]\npath = \"/ok\"\nstatus = {ok_status}\nbody = \"ok\"\n"
        ),
    )
}

#[test]
fn prometheus_scraping_the_platform_metrics_sees_the_bad_release() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (repo, state) = (tmp.path().join("repo"), tmp.path().join("state"));
    std::fs::create_dir_all(&repo).expect("mkdir");
    common::git(&repo, &["init", "-q", "-b", "main"]);
    let good = commit(&repo, 200);
    let bad = commit(&repo, 500);
    let p = common::start_platform(&repo, &state);
    // Prometheus scrapes the control port's /metrics (no token needed).
    let Some(prom) = prometheus_scraping(p.client.info().port) else {
        return;
    };
    let ratio = |sha: &str| {
        analysis(
            "5xx ratio",
            &format!(
                "sum(hotfix_platform_requests_total{{sha=\"{sha}\",code_class=\"5xx\"}}) / sum(hotfix_platform_requests_total{{sha=\"{sha}\"}})"
            ),
            &prom.address,
        )
    };
    p.client.deploy_production(&good).expect("deploy good");
    common::traffic(p.port, "/ok", 10);
    common::traffic(p.port, "/fine", 10);
    let good_cfg = ratio(&good);
    let src = source_for(&good_cfg);
    wait_for("the good release's 20 answers to be scraped", || {
        src.measure(&cx(ts_now())).ok() == Some(Measurement::of(0.0))
    });
    assert_eq!(judge(&good_cfg, &Measurement::of(0.0)), Verdict::Pass);

    p.client.deploy_production(&bad).expect("deploy bad");
    let bad_cfg = ratio(&bad);
    let src = source_for(&bad_cfg);
    // Before it served anything: 0/0, no data.
    assert_eq!(src.measure(&cx(ts_now())), Ok(Measurement::no_data()));
    common::traffic(p.port, "/ok", 10);
    common::traffic(p.port, "/fine", 10);
    wait_for("the bad release's 20 answers to be scraped", || {
        src.measure(&cx(ts_now())).ok() == Some(Measurement::of(0.5))
    });
    assert_eq!(
        judge(&bad_cfg, &Measurement::of(0.5)),
        Verdict::Fail("0.5 > max 0.01".into())
    );
    drop(prom);
}
