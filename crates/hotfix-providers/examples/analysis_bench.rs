//! Benchmark of metric analysis on the embedded platform (run it with
//! `bench/analysis/run.sh`).
//!
//! Why it exists: a health URL cannot see a release that keeps `/health`
//! green while real requests fail or slow down. This program measures, on
//! 127.0.0.1 only and bounded in time, how fast the platform analysis
//! notices such a release and how much traffic it costs, against the
//! health-URL-only watch on the very same releases, in the same run.
//!
//! Setup: a real platform process (`hotfix-platform-runner`) serving the
//! sample service from a throw-away git repository; one commit per release
//! writes its `service/routes.toml`. An open-loop load generator sends a
//! fixed rate of requests to the production port, spread pseudo-randomly:
//! 199 of every 200 over ten routes `/api/0`..`/api/9`, 1 in 200 to a rarely used
//! `/export/pdf`. Every route answers after 60 ms in a good release.
//!
//! Bad releases, all with `/health` green:
//! - (a) errors: `/api/3` answers 500 (≈10% of requests);
//! - (b) slow: every route answers after 180 ms (p99 ×3);
//! - (c) route: `/export/pdf` answers 500 (0.5% of requests: under the
//!   overall 1% limit, only a route-level analysis sees it).
//!
//! The analysis loop is the engine's (`hotfix_engine::watch`), rebuilt here
//! from the same parts so the benchmark does not depend on the engine's
//! wiring: `hotfix_providers::analysis::source_in` (the platform source,
//! reading `GET /v1/stats`) feeding a `hotfix_core::analysis::Tracker` per
//! analysis; every analysis measured at the start of the watch, then every
//! `interval`; the first `Unhealthy` ends the watch and the release is
//! rolled back through the platform client (`Client::rollback`, the warm
//! previous release) or, for a canary, aborted (`Client::canary_abort`).
//!
//! Scale with environment variables (defaults keep the run under 3 min):
//! `BENCH_RATE` (requests/s, 200), `BENCH_INTERVAL_MS` (1000),
//! `BENCH_FAILURE_LIMIT` (2), `BENCH_REPEATS` (trials per bad release, 2),
//! `BENCH_CANARY_REPEATS` (canary trials of release (a), 4), `BENCH_WARMUP_S` (3),
//! `BENCH_GOOD_RUNS` (20), `BENCH_GOOD_WATCH_S` (4, the detection target), `BENCH_HEALTH_WATCH_S`
//! (4, the detection target), `BENCH_WORKERS` (load generator threads, 64), `BENCH_BIN_DIR`
//! (where the platform binaries are; default: the example's target dir).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use hotfix_core::analysis::{
    AnalysisConfig, Baseline, Inconclusive, PlatformMetric, Source, Status, Tracker,
};
use hotfix_platform::{CanaryRequest, Client, PlatformConfig};
use hotfix_providers::analysis::{MeasureContext, source_in};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Latency of every route in a good release, and in the slow one.
const GOOD_DELAY_MS: u64 = 60;
const SLOW_DELAY_MS: u64 = 180;
/// Time for requests in flight to the old release to finish after a switch.
const DRAIN: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Good,
    Errors,
    Slow,
    Route,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Good => "good release",
            Kind::Errors => "(a) 10% of requests 500",
            Kind::Slow => "(b) p99 latency x3",
            Kind::Route => "(c) /export/pdf broken",
        }
    }
}

struct Opts {
    rate: u64,
    interval: Duration,
    failure_limit: u32,
    repeats: usize,
    canary_repeats: usize,
    good_runs: usize,
    good_watch: Duration,
    health_watch: Duration,
    workers: usize,
    warmup: Duration,
}

fn env_num(name: &str, default: u64) -> Res<u64> {
    match std::env::var(name) {
        Ok(v) => Ok(v.trim().parse().map_err(|e| format!("{name}={v}: {e}"))?),
        Err(_) => Ok(default),
    }
}

impl Opts {
    fn from_env() -> Res<Opts> {
        Ok(Opts {
            rate: env_num("BENCH_RATE", 200)?.max(1),
            interval: Duration::from_millis(env_num("BENCH_INTERVAL_MS", 1000)?.max(100)),
            failure_limit: u32::try_from(env_num("BENCH_FAILURE_LIMIT", 2)?.max(1))?,
            repeats: usize::try_from(env_num("BENCH_REPEATS", 2)?.max(1))?,
            canary_repeats: usize::try_from(env_num("BENCH_CANARY_REPEATS", 4)?.max(1))?,
            good_runs: usize::try_from(env_num("BENCH_GOOD_RUNS", 20)?)?,
            good_watch: Duration::from_secs(env_num("BENCH_GOOD_WATCH_S", 4)?.max(1)),
            health_watch: Duration::from_secs(env_num("BENCH_HEALTH_WATCH_S", 4)?.max(1)),
            workers: usize::try_from(env_num("BENCH_WORKERS", 64)?.max(1))?,
            warmup: Duration::from_secs(env_num("BENCH_WARMUP_S", 3)?),
        })
    }

    /// The detection target of the issue: interval × (failure_limit + 1) + 1 s.
    fn detection_target(&self) -> Duration {
        self.interval * (self.failure_limit + 1) + Duration::from_secs(1)
    }

    /// The team's analyses, the same for every release.
    fn analyses(&self) -> Vec<AnalysisConfig> {
        let base = |name: &str, metric, route: Option<&str>| AnalysisConfig {
            name: name.to_string(),
            source: Source::Platform {
                metric,
                route: route.map(str::to_string),
            },
            max: None,
            min: None,
            baseline: None,
            max_increase: None,
            interval: self.interval,
            failure_limit: self.failure_limit,
            inconclusive: Inconclusive::Pause,
        };
        vec![
            AnalysisConfig {
                max: Some(0.01),
                ..base("5xx ratio", PlatformMetric::ErrorRatio, None)
            },
            AnalysisConfig {
                baseline: Some(Baseline::Previous),
                max_increase: Some(0.5),
                ..base("p99 latency", PlatformMetric::LatencyP99, None)
            },
            AnalysisConfig {
                max: Some(0.01),
                ..base(
                    "export 5xx ratio",
                    PlatformMetric::ErrorRatio,
                    Some("/export/pdf"),
                )
            },
        ]
    }
}

fn main() -> Res<()> {
    let opts = Opts::from_env()?;
    let bin_dir = match std::env::var_os("BENCH_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .ok_or("cannot locate the target dir")?
            .to_path_buf(),
    };
    let runner = bin_dir.join("hotfix-platform-runner");
    let sample = bin_dir.join("hotfix-sample-service");
    for b in [&runner, &sample] {
        if !b.exists() {
            return Err(format!(
                "{} is missing: build with `cargo build -p hotfix-platform --bins`",
                b.display()
            )
            .into());
        }
    }
    let tmp = tempfile::tempdir()?;
    let repo = tmp.path().join("repo");
    let state = tmp.path().join("state");
    std::fs::create_dir_all(repo.join("service"))?;
    git(&repo, &["init", "-q", "-b", "main"])?;
    let port = hotfix_platform::free_port()?;
    std::fs::write(
        repo.join("hotfix.toml"),
        format!(
            "[deploy]\nprovider = \"local\"\nrun = \"'{}'\"\nport = {port}\nready_timeout = \"30s\"\nwarm = \"10m\"\ndrain = \"2s\"\n",
            sample.display()
        ),
    )?;
    let mut cfg = PlatformConfig::load(&repo)?;
    cfg.state_dir = state.clone();
    let run_args = vec![
        "--repo".to_string(),
        repo.display().to_string(),
        "--state-dir".to_string(),
        state.display().to_string(),
    ];
    hotfix_platform::start_background(&cfg, &runner, &run_args)?;
    let result = Client::connect(&state)
        .map_err(Into::into)
        .and_then(|client| {
            let mut bench = Bench {
                opts,
                repo,
                state: state.clone(),
                client,
                port,
                version: 0,
                prod_sha: String::new(),
                epoch: Instant::now(),
                loadavg: loadavg(),
            };
            bench.run()
        });
    let stopped = hotfix_platform::stop(&state);
    result?;
    stopped?;
    Ok(())
}

/// One answer the load generator got.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// When it completed, since the bench epoch.
    done: Duration,
    status: u16,
    latency: Duration,
    /// The release version that answered (`v<N>` in the body), 0 = unknown.
    version: u32,
}

/// An open-loop load generator: a dispatcher releases one request every
/// `1/rate` s on a fixed schedule (a slow release does not slow the rate
/// down), a pool of keep-alive workers sends them.
struct Load {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    behind: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, rate: u64, workers: usize, epoch: Instant) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let behind = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel::<u64>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = vec![];
        for _ in 0..workers {
            let (rx, samples) = (rx.clone(), samples.clone());
            threads.push(std::thread::spawn(move || {
                let a = agent(Duration::from_secs(10));
                loop {
                    let next = rx.lock().ok().and_then(|r| r.recv().ok());
                    let Some(k) = next else { return };
                    // Pseudo-random, not round robin: the canary split
                    // must not line up with the route order.
                    let r = splitmix(k);
                    let path = if r.is_multiple_of(200) {
                        "/export/pdf".to_string()
                    } else {
                        format!("/api/{}", (r / 200) % 10)
                    };
                    let t = Instant::now();
                    let (status, body) = get(&a, &format!("http://127.0.0.1:{port}{path}"));
                    let s = Sample {
                        done: epoch.elapsed(),
                        status,
                        latency: t.elapsed(),
                        version: body
                            .strip_prefix('v')
                            .and_then(|b| b.split_whitespace().next())
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0),
                    };
                    if let Ok(mut v) = samples.lock() {
                        v.push(s);
                    }
                }
            }));
        }
        {
            let (stop, behind) = (stop.clone(), behind.clone());
            threads.push(std::thread::spawn(move || {
                let period = Duration::from_secs_f64(1.0 / rate as f64);
                let t0 = Instant::now();
                let mut k = 0u64;
                // Bounded: at most one hour of requests.
                while !stop.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(3600) {
                    let due = t0 + period.mul_f64(k as f64);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    } else if now - due > Duration::from_millis(50) {
                        behind.fetch_add(1, Ordering::Relaxed);
                    }
                    if tx.send(k).is_err() {
                        return;
                    }
                    k += 1;
                }
            }));
        }
        Load {
            stop,
            samples,
            behind,
            threads,
        }
    }

    /// The answers completed in `[from, to]` (since the epoch).
    fn between(&self, from: Duration, to: Duration) -> Vec<Sample> {
        self.samples
            .lock()
            .map(|v| {
                v.iter()
                    .filter(|s| s.done >= from && s.done <= to)
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn finish(self) -> (usize, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let n = self.samples.lock().map(|v| v.len()).unwrap_or(0);
        (n, self.behind.load(Ordering::Relaxed))
    }
}

/// How one trial went.
#[derive(Debug, Clone, Default)]
struct Trial {
    /// Switch (deploy or canary start answered) → unhealthy.
    detect: Option<Duration>,
    /// Unhealthy → rollback (or abort) answered.
    rollback: Option<Duration>,
    /// Which analysis (or health) said so, with the numbers.
    why: String,
    /// Requests answered between the deploy request and rollback + drain.
    sent: usize,
    /// Of those, not 200.
    failed: usize,
    /// Of those, slower than 2× a good release's latency.
    slow: usize,
    /// Answered by the bad release.
    served_by_new: usize,
    /// A watch that ended with an analysis without data (`pause`).
    inconclusive_end: bool,
    /// What the p99 analysis saw: its samples (ms) and its last baseline.
    p99: String,
    /// p99 (ms) of the load generator's own latencies, per release, in the trial.
    client_p99: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watcher {
    Analysis,
    HealthOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Switch {
    Full,
    Canary(u32),
}

struct Bench {
    opts: Opts,
    repo: PathBuf,
    state: PathBuf,
    client: Client,
    port: u16,
    version: u32,
    prod_sha: String,
    epoch: Instant,
    loadavg: String,
}

impl Bench {
    /// Commits a release of `kind`; returns (sha, version).
    fn commit(&mut self, kind: Kind) -> Res<(String, u32)> {
        self.version += 1;
        let v = self.version;
        let delay = if kind == Kind::Slow {
            SLOW_DELAY_MS
        } else {
            GOOD_DELAY_MS
        };
        let mut text =
            "log_requests = false\n[[route]]\npath = \"/health\"\nbody = \"ok\"\n".to_string();
        for i in 0..10 {
            let status = if kind == Kind::Errors && i == 3 {
                500
            } else {
                200
            };
            text.push_str(&format!(
                "[[route]]\npath = \"/api/{i}\"\nstatus = {status}\nbody = \"v{v} api\"\ndelay_ms = {delay}\n"
            ));
        }
        let status = if kind == Kind::Route { 500 } else { 200 };
        text.push_str(&format!(
            "[[route]]\npath = \"/export/pdf\"\nstatus = {status}\nbody = \"v{v} export\"\ndelay_ms = {delay}\n"
        ));
        std::fs::write(self.repo.join("service/routes.toml"), text)?;
        git(&self.repo, &["add", "-A", "service"])?;
        git(&self.repo, &["commit", "-q", "-m", &format!("v{v}")])?;
        Ok((git(&self.repo, &["rev-parse", "HEAD"])?, v))
    }

    fn run(&mut self) -> Res<()> {
        let o = &self.opts;
        eprintln!(
            "analysis bench: {} req/s, interval {} ms, failure_limit {}, {} trial(s) per bad release, {} good runs x {} s",
            o.rate,
            o.interval.as_millis(),
            o.failure_limit,
            o.repeats,
            o.good_runs,
            o.good_watch.as_secs()
        );
        let (base, _) = self.commit(Kind::Good)?;
        self.client.deploy_production(&base)?;
        self.prod_sha = base;
        self.epoch = Instant::now();
        let load = Load::start(self.port, self.opts.rate, self.opts.workers, self.epoch);
        // Warm-up: the baseline release serves real traffic first (the p99
        // baseline is what the previous release served).
        std::thread::sleep(self.opts.warmup);
        let out = self.scenarios(&load);
        let (answered, behind) = load.finish();
        let out = out?;
        self.report(&out, answered, behind);
        Ok(())
    }

    fn scenarios(&mut self, load: &Load) -> Res<Results> {
        let mut r = Results::default();
        for kind in [Kind::Errors, Kind::Slow, Kind::Route] {
            let mut trials = vec![];
            for i in 0..self.opts.repeats {
                let t = self.trial(load, kind, Watcher::Analysis, Switch::Full, None)?;
                eprintln!("{} analysis #{}: {t:?}", kind.label(), i + 1);
                trials.push(t);
            }
            let window = self.opts.health_watch;
            let h = self.trial(load, kind, Watcher::HealthOnly, Switch::Full, Some(window))?;
            eprintln!("{} health-only: {h:?}", kind.label());
            r.bad.push((kind, trials, h));
        }
        for i in 0..self.opts.canary_repeats {
            let t = self.trial(
                load,
                Kind::Errors,
                Watcher::Analysis,
                Switch::Canary(10),
                None,
            )?;
            eprintln!("(a) canary 10% #{}: {t:?}", i + 1);
            r.canary.push(t);
        }
        for i in 0..self.opts.good_runs {
            let w = self.opts.good_watch;
            let t = self.trial(load, Kind::Good, Watcher::Analysis, Switch::Full, Some(w))?;
            if t.detect.is_some() {
                eprintln!("good run #{}: FALSE ROLLBACK: {}", i + 1, t.why);
            }
            r.good.push(t);
        }
        Ok(r)
    }

    /// Deploys a release of `kind` under load, watches it and rolls it back
    /// when the watcher says so. A watch without a `window` lasts until
    /// detection, bounded by 2× the detection target (then it counts as missed). A health-only watch that ends without
    /// detecting is followed by a rollback, as the person who finally
    /// notices would do, so the next trial starts from the same state.
    fn trial(
        &mut self,
        load: &Load,
        kind: Kind,
        watcher: Watcher,
        switch: Switch,
        window: Option<Duration>,
    ) -> Res<Trial> {
        let (sha, version) = self.commit(kind)?;
        std::thread::sleep(Duration::from_millis(100));
        let t_deploy = self.epoch.elapsed();
        match switch {
            Switch::Full => {
                self.client.deploy_production(&sha)?;
            }
            Switch::Canary(w) => {
                self.client.canary_start(&CanaryRequest {
                    sha: sha.clone(),
                    weight: f64::from(w),
                    ..Default::default()
                })?;
            }
        }
        let t_switch = self.epoch.elapsed();
        let limit = window.unwrap_or(self.opts.detection_target() * 2);
        let found = match watcher {
            Watcher::Analysis => self.watch_analysis(&sha, limit)?,
            Watcher::HealthOnly => self.watch_health(limit),
        };
        let (detect_at, why, inconclusive_end, p99) = match found {
            Found::Unhealthy(at, why, p99) => (Some(at), why, false, p99),
            Found::Healthy { inconclusive, p99 } => (None, String::new(), inconclusive, p99),
        };
        let t_rb0 = self.epoch.elapsed();
        let keep = kind == Kind::Good && detect_at.is_none();
        match (switch, keep) {
            (Switch::Canary(_), true) => {
                self.client.canary_promote(None)?;
            }
            (Switch::Canary(_), false) => {
                self.client.canary_abort()?;
            }
            (Switch::Full, true) => {}
            (Switch::Full, false) => {
                self.client.rollback(None)?;
            }
        }
        let t_rb1 = self.epoch.elapsed();
        if keep {
            self.prod_sha = sha;
        }
        std::thread::sleep(DRAIN);
        let window = load.between(t_deploy, t_rb1 + DRAIN);
        let slow_ms = (2 * GOOD_DELAY_MS) as u128;
        let client_p99 = |f: &dyn Fn(&Sample) -> bool| {
            let mut l: Vec<u128> = window
                .iter()
                .filter(|s| f(s))
                .map(|s| s.latency.as_millis())
                .collect();
            l.sort_unstable();
            let i = (l.len() * 99 / 100).min(l.len().saturating_sub(1));
            l.get(i)
                .map_or("-".to_string(), |v| format!("{v} ms of {}", l.len()))
        };
        let client_p99 = format!(
            "new {}, others {}",
            client_p99(&|s| s.version == version),
            client_p99(&|s| s.version != version)
        );
        Ok(Trial {
            detect: detect_at.map(|d| d.saturating_sub(t_switch)),
            rollback: detect_at.map(|_| t_rb1.saturating_sub(t_rb0)),
            why,
            sent: window.len(),
            failed: window.iter().filter(|s| s.status != 200).count(),
            slow: window
                .iter()
                .filter(|s| s.latency.as_millis() > slow_ms)
                .count(),
            served_by_new: window.iter().filter(|s| s.version == version).count(),
            inconclusive_end,
            p99,
            client_p99,
        })
    }

    /// The engine's analysis watch: every analysis measured at once, then
    /// every `interval`; the first `Unhealthy` ends it.
    fn watch_analysis(&self, sha: &str, limit: Duration) -> Res<Found> {
        let cfgs = self.opts.analyses();
        let root = self.repo.clone();
        let sources: Vec<_> = cfgs.iter().map(|c| source_in(c, &root)).collect();
        let mut trackers: Vec<Tracker> = cfgs.iter().map(Tracker::new).collect();
        let mut next: Vec<Option<Instant>> = vec![None; cfgs.len()];
        let now = jiff::Timestamp::now();
        let mut cx = MeasureContext {
            deployed_at: now,
            now,
            window: limit,
            sha: sha.to_string(),
            previous_sha: Some(self.prod_sha.clone()),
            platform_dir: Some(self.state.clone()),
        };
        let start = Instant::now();
        loop {
            let at_s = u32::try_from(start.elapsed().as_secs()).unwrap_or(u32::MAX);
            for i in 0..cfgs.len() {
                if next[i].is_some_and(|n| Instant::now() < n) {
                    continue;
                }
                cx.now = jiff::Timestamp::now();
                let status = match sources[i].measure(&cx) {
                    Ok(m) => trackers[i].record(at_s, &m),
                    Err(e) => trackers[i].record_error(at_s, &e.to_string()),
                };
                next[i] = Some(Instant::now() + cfgs[i].interval);
                if let Status::Unhealthy(why) = status {
                    return Ok(Found::Unhealthy(
                        self.epoch.elapsed(),
                        why,
                        p99_seen(&trackers[1]),
                    ));
                }
            }
            if start.elapsed() >= limit {
                return Ok(Found::Healthy {
                    inconclusive: trackers.iter().any(|t| t.verdict() == "inconclusive"),
                    p99: p99_seen(&trackers[1]),
                });
            }
            let due = next
                .iter()
                .flatten()
                .min()
                .copied()
                .unwrap_or(start + limit);
            let wait = due
                .min(start + limit)
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(5));
            std::thread::sleep(wait);
        }
    }

    /// The health-URL-only watch: `GET /health` every interval, unhealthy
    /// after `failure_limit` consecutive non-2xx answers.
    fn watch_health(&self, limit: Duration) -> Found {
        let a = agent(self.opts.interval.max(Duration::from_secs(1)));
        let url = format!("http://127.0.0.1:{}/health", self.port);
        let start = Instant::now();
        let mut failures = 0;
        while start.elapsed() < limit {
            let (s, body) = get(&a, &url);
            if (200..300).contains(&s) {
                failures = 0;
            } else {
                failures += 1;
                if failures >= self.opts.failure_limit {
                    return Found::Unhealthy(
                        self.epoch.elapsed(),
                        format!("health: {url} answered {s}: {body}"),
                        String::new(),
                    );
                }
            }
            std::thread::sleep(self.opts.interval);
        }
        Found::Healthy {
            inconclusive: false,
            p99: String::new(),
        }
    }

    fn report(&self, r: &Results, answered: usize, behind: u64) {
        let o = &self.opts;
        let target = o.detection_target();
        let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
        let s = |d: Duration| format!("{:.2} s", d.as_secs_f64());
        println!("### Settings");
        println!();
        println!(
            "- load: {} req/s open loop ({} workers), requests spread pseudo-randomly, 199/200 over `/api/0`..`/api/9`, 1/200 to `/export/pdf`; good latency {GOOD_DELAY_MS} ms per route",
            o.rate, o.workers
        );
        println!(
            "- analyses (provider `platform`, interval {}, failure_limit {}): `5xx ratio` error_ratio max 0.01; `p99 latency` latency_p99 baseline previous max_increase 50%; `export 5xx ratio` error_ratio route `/export/pdf` max 0.01 (inconclusive pause)",
            s(o.interval),
            o.failure_limit
        );
        println!(
            "- baseline: health-URL-only watch, `GET /health` every {} with the same failure_limit, for {} per bad release",
            s(o.interval),
            s(o.health_watch)
        );
        println!(
            "- {} trial(s) per bad release (median shown, worst in brackets); {} good-release runs of {} each",
            o.repeats,
            o.good_runs,
            s(o.good_watch)
        );
        println!(
            "- {answered} answers recorded in total; dispatcher >50 ms late on {behind} requests; load average before/after: {} / {}",
            self.loadavg,
            loadavg()
        );
        println!();
        println!("### Bad releases (full switch)");
        println!();
        println!(
            "| release | analysis: switch → detection (target ≤ {}) | detection → rollback complete (target ≤ 100 ms) | failed requests, analysis | health-only: detected? | failed requests, health-only {} | failed: analysis / health-only | detected by |",
            s(target),
            s(o.health_watch)
        );
        println!("|---|---|---|---|---|---|---|---|");
        let mut full_a_failed = None;
        for (kind, trials, h) in &r.bad {
            let det: Vec<Duration> = trials.iter().filter_map(|t| t.detect).collect();
            let rb: Vec<Duration> = trials.iter().filter_map(|t| t.rollback).collect();
            let missed = trials.len() - det.len();
            let failed: Vec<usize> = trials.iter().map(|t| t.failed).collect();
            let slow: Vec<usize> = trials.iter().map(|t| t.slow).collect();
            let fail_med = median_usize(&failed);
            if *kind == Kind::Errors {
                full_a_failed = Some(fail_med);
            }
            let ok = |d: &[Duration], lim: Duration| {
                if d.iter().all(|x| *x <= lim) && missed == 0 {
                    "✓"
                } else {
                    "✗"
                }
            };
            let (lost, hlost) = if *kind == Kind::Slow {
                (
                    format!(
                        "{fail_med} (>{} ms: {})",
                        2 * GOOD_DELAY_MS,
                        median_usize(&slow)
                    ),
                    format!("{} (>{} ms: {})", h.failed, 2 * GOOD_DELAY_MS, h.slow),
                )
            } else {
                (fail_med.to_string(), h.failed.to_string())
            };
            let ratio = if *kind == Kind::Slow {
                ratio_str(median_usize(&slow), h.slow)
            } else {
                ratio_str(fail_med, h.failed)
            };
            println!(
                "| {} | {} [{}] {}{} | {} [{}] {} | {lost} | {} | {hlost} | {ratio} | {} |",
                kind.label(),
                med(&det).map(s).unwrap_or_else(|| "never".into()),
                det.iter().max().copied().map(s).unwrap_or_default(),
                ok(&det, target),
                if missed > 0 {
                    format!(" ({missed} missed)")
                } else {
                    String::new()
                },
                med(&rb).map(ms).unwrap_or_else(|| "-".into()),
                rb.iter().max().copied().map(ms).unwrap_or_default(),
                ok(&rb, Duration::from_millis(100)),
                if h.detect.is_some() {
                    format!("yes, after {}", h.detect.map(s).unwrap_or_default())
                } else {
                    format!("no (in {})", s(o.health_watch))
                },
                trials
                    .first()
                    .map(|t| t.why.split(':').next().unwrap_or("").to_string())
                    .unwrap_or_default(),
            );
        }
        println!();
        println!("### Canary 10% vs full switch, release (a)");
        println!();
        println!(
            "| | switch → detection | detection → abort/rollback complete | requests answered (deploy → rollback + 0.3 s) | of them by the new release | failed requests |"
        );
        println!("|---|---|---|---|---|---|");
        if let Some((_, trials, _)) = r.bad.iter().find(|(k, _, _)| *k == Kind::Errors) {
            println!(
                "| full switch | {} | {} | {} | {} | {} |",
                med(&trials.iter().filter_map(|t| t.detect).collect::<Vec<_>>())
                    .map(s)
                    .unwrap_or_else(|| "never".into()),
                med(&trials.iter().filter_map(|t| t.rollback).collect::<Vec<_>>())
                    .map(ms)
                    .unwrap_or_else(|| "-".into()),
                median_usize(&trials.iter().map(|t| t.sent).collect::<Vec<_>>()),
                median_usize(&trials.iter().map(|t| t.served_by_new).collect::<Vec<_>>()),
                median_usize(&trials.iter().map(|t| t.failed).collect::<Vec<_>>()),
            );
        }
        let c_failed = median_usize(&r.canary.iter().map(|t| t.failed).collect::<Vec<_>>());
        println!(
            "| canary 10% | {} | {} | {} | {} | {} |",
            med(&r.canary.iter().filter_map(|t| t.detect).collect::<Vec<_>>())
                .map(s)
                .unwrap_or_else(|| "never".into()),
            med(&r
                .canary
                .iter()
                .filter_map(|t| t.rollback)
                .collect::<Vec<_>>())
            .map(ms)
            .unwrap_or_else(|| "-".into()),
            median_usize(&r.canary.iter().map(|t| t.sent).collect::<Vec<_>>()),
            median_usize(&r.canary.iter().map(|t| t.served_by_new).collect::<Vec<_>>()),
            c_failed,
        );
        if let Some(full) = full_a_failed {
            let pct = if full == 0 {
                f64::NAN
            } else {
                100.0 * c_failed as f64 / full as f64
            };
            let mean = |v: &[&Trial], f: fn(&Trial) -> usize| {
                v.iter().map(|t| f(t) as f64).sum::<f64>() / (v.len().max(1) as f64)
            };
            let canary: Vec<&Trial> = r.canary.iter().collect();
            let full: Vec<&Trial> = r
                .bad
                .iter()
                .filter(|(k, _, _)| *k == Kind::Errors)
                .flat_map(|(_, t, _)| t.iter())
                .collect();
            let exposure = 100.0 * mean(&canary, |t| t.served_by_new)
                / mean(&full, |t| t.served_by_new).max(1.0);
            let mean_pct = 100.0 * mean(&canary, |t| t.failed) / mean(&full, |t| t.failed).max(1.0);
            println!();
            println!(
                "Requests that reached the bad release: canary = {exposure:.1}% of the full switch's (means over the trials)."
            );
            println!(
                "Failed requests, means over the trials: canary = {mean_pct:.1}% of the full switch's (target ≤ 10%): {}.",
                if mean_pct <= 10.0 { "✓" } else { "✗" }
            );
            println!(
                "Failed requests, medians: canary = {pct:.1}% of the full switch's (target ≤ 10%): {}; per trial: canary {:?}, full {:?}",
                if pct <= 10.0 { "✓" } else { "✗" },
                r.canary.iter().map(|t| t.failed).collect::<Vec<_>>(),
                r.bad
                    .iter()
                    .find(|(k, _, _)| *k == Kind::Errors)
                    .map(|(_, t, _)| t.iter().map(|t| t.failed).collect::<Vec<_>>())
                    .unwrap_or_default(),
            );
        }
        println!();
        println!("### Good release");
        println!();
        let false_rb = r.good.iter().filter(|t| t.detect.is_some()).count();
        let inconclusive = r.good.iter().filter(|t| t.inconclusive_end).count();
        let failed: usize = r.good.iter().map(|t| t.failed).sum();
        println!(
            "False rollbacks: **{false_rb} of {}** runs (target 0) {}; watches ending inconclusive (an analysis without data at the end, `pause`): {inconclusive}; failed requests during the good deploys: {failed}.",
            r.good.len(),
            if false_rb == 0 { "✓" } else { "✗" },
        );
        for t in r.good.iter().filter(|t| t.detect.is_some()) {
            println!("- false rollback: {}", t.why);
        }
        println!();
        println!(
            "### Per trial: what fired, what the p99 analysis saw, the load generator's own p99"
        );
        println!();
        let line = |label: &str, t: &Trial| {
            println!(
                "- {label}: {}; {}; load generator p99: {}",
                if t.why.is_empty() {
                    "not detected"
                } else {
                    &t.why
                },
                if t.p99.is_empty() { "-" } else { &t.p99 },
                t.client_p99
            );
        };
        for (kind, trials, h) in &r.bad {
            for t in trials {
                line(kind.label(), t);
            }
            line(&format!("{} (health-only)", kind.label()), h);
        }
        for t in &r.canary {
            line("(a) canary 10%", t);
        }
        for (i, t) in r.good.iter().enumerate() {
            line(&format!("good #{}", i + 1), t);
        }
    }
}

enum Found {
    /// When (since the epoch), why, and what the p99 analysis saw.
    Unhealthy(Duration, String, String),
    Healthy {
        inconclusive: bool,
        p99: String,
    },
}

/// The p99 analysis' samples and baseline, in words.
fn p99_seen(t: &Tracker) -> String {
    let v: Vec<String> = t
        .samples()
        .iter()
        .map(|(at, v)| format!("{at}s:{}", v.map_or("-".into(), |v| format!("{v:.1}"))))
        .collect();
    format!(
        "p99 samples [{}], baseline {}",
        v.join(" "),
        t.baseline().map_or("-".into(), |b| format!("{b:.1}"))
    )
}

#[derive(Default)]
struct Results {
    /// Per bad release: the analysis trials and the health-only one.
    bad: Vec<(Kind, Vec<Trial>, Trial)>,
    canary: Vec<Trial>,
    good: Vec<Trial>,
}

/// `/proc/loadavg`'s 1-minute figure: other work on the machine skews latency.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// SplitMix64: a fixed, well-spread sequence (the same in every run).
fn splitmix(k: u64) -> u64 {
    let mut z = k.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn med(v: &[Duration]) -> Option<Duration> {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len().saturating_sub(1) / 2).copied()
}

fn median_usize(v: &[usize]) -> usize {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0)
}

fn ratio_str(a: usize, b: usize) -> String {
    if b == 0 {
        "-".into()
    } else {
        format!(
            "{:.2} (health-only keeps losing after its window)",
            a as f64 / b as f64
        )
    }
}

fn git(repo: &Path, args: &[&str]) -> Res<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()?;
    if !out.status.success() {
        return Err(format!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn agent(timeout: Duration) -> ureq::Agent {
    let cfg = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(timeout))
        .build();
    ureq::Agent::new_with_config(cfg)
}

fn get(agent: &ureq::Agent, url: &str) -> (u16, String) {
    match agent.get(url).call() {
        Ok(mut r) => {
            let s = r.status().as_u16();
            (s, r.body_mut().read_to_string().unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}
