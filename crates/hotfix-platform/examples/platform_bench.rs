//! Benchmark of the embedded platform (run it with `bench/platform/run.sh`).
//!
//! Starts a real platform process on a throw-away git repository whose commits
//! configure the sample service, then:
//! 1. measures the sample service's own start-up (spawn → `/health` 2xx) when
//!    started directly, as the baseline;
//! 2. deploys production several times and reports the deploy wall time and
//!    the platform's overhead beyond that baseline (worktree, spawn, probing,
//!    switch, bookkeeping);
//! 3. hammers the stable production URL with concurrent keep-alive clients
//!    during a deploy and during a rollback, counting failed requests;
//! 4. measures how long after the rollback request the previous release
//!    serves again (a separate poller sees the old version's answer).
//!
//! Only 127.0.0.1 is used; everything is bounded in time and count.
//!
//! Options: `--deploys N` (default 5), `--clients N` (default 8),
//! `--startup-delay-ms N` (sample service start-up cost, default 0),
//! `--bin-dir DIR` (where `hotfix-platform-runner` and
//! `hotfix-sample-service` are; default: next to this example's directory).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hotfix_platform::{Client, PlatformConfig};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let mut deploys = 5usize;
    let mut clients = 8usize;
    let mut startup_delay = 0u64;
    let mut bin_dir: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--deploys" => deploys = val()?.parse()?,
            "--clients" => clients = val()?.parse()?,
            "--startup-delay-ms" => startup_delay = val()?.parse()?,
            "--bin-dir" => bin_dir = Some(PathBuf::from(val()?)),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let bin_dir = match bin_dir {
        Some(d) => d,
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
                "{} is missing: build with `cargo build --release -p hotfix-platform --bins`",
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
    let commit = |version: &str| -> Res<String> {
        let text = format!(
            "log_requests = false\nstartup_delay_ms = {startup_delay}\n\
             [[route]]\npath = \"/health\"\nbody = \"ok\"\n\
             [[route]]\npath = \"/version\"\nbody = \"{version}\"\n"
        );
        std::fs::write(repo.join("service/routes.toml"), text)?;
        git(&repo, &["add", "-A"])?;
        git(&repo, &["commit", "-q", "-m", version])?;
        git(&repo, &["rev-parse", "HEAD"])
    };
    let shas: Vec<String> = (0..deploys.max(2))
        .map(|i| commit(&format!("v{i}")))
        .collect::<Res<_>>()?;

    // 1. Baseline: the service started directly, spawn → healthy.
    let mut baseline = Vec::new();
    for _ in 0..deploys.max(3) {
        let port = hotfix_platform::free_port()?;
        let t0 = Instant::now();
        let mut child = Command::new(&sample)
            .env("PORT", port.to_string())
            .current_dir(&repo)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let agent = agent(Duration::from_secs(2));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if get(&agent, &format!("http://127.0.0.1:{port}/health")).0 == 200 {
                break;
            }
            if Instant::now() > deadline {
                return Err("sample service did not become healthy".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        baseline.push(t0.elapsed());
        let _ = child.kill();
        let _ = child.wait();
    }

    // The platform, as its own process.
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
    let client = Client::connect(&state)?;
    let url = format!("http://127.0.0.1:{port}/version");
    let result = run(&client, &url, &shas, deploys, clients, &baseline);
    let stopped = hotfix_platform::stop(&state);
    result?;
    stopped?;
    Ok(())
}

fn run(
    client: &Client,
    url: &str,
    shas: &[String],
    deploys: usize,
    clients: usize,
    baseline: &[Duration],
) -> Res<()> {
    // 2. Deploy wall times (all but the last sha; the last one is deployed under load).
    let mut walls = Vec::new();
    for sha in &shas[..deploys.max(2) - 1] {
        let t0 = Instant::now();
        client.deploy_production(sha)?;
        walls.push(t0.elapsed());
    }

    // 3a. A deploy under load.
    let last = shas.last().ok_or("no sha")?;
    let h = Hammer::start(url, clients);
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    client.deploy_production(last)?;
    walls.push(t0.elapsed());
    std::thread::sleep(Duration::from_millis(300));
    let deploy_load = h.finish();

    // 3b + 4. A rollback under load; a poller notes when the old version answers.
    let prev_version = format!("v{}", shas.len() - 2);
    let h = Hammer::start(url, clients);
    std::thread::sleep(Duration::from_millis(300));
    let seen = Arc::new(AtomicBool::new(false));
    let poller = {
        let (url, seen, want) = (url.to_string(), seen.clone(), prev_version.clone());
        std::thread::spawn(move || {
            let a = agent(Duration::from_secs(5));
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                if get(&a, &url).1 == want {
                    seen.store(true, Ordering::SeqCst);
                    return Some(Instant::now());
                }
            }
            None
        })
    };
    let t0 = Instant::now();
    let out = client.rollback(None)?;
    let api_ms = t0.elapsed();
    let first_seen = poller.join().map_err(|_| "poller panicked")?;
    std::thread::sleep(Duration::from_millis(300));
    let rollback_load = h.finish();
    let serving_after = first_seen.map(|t| t.saturating_duration_since(t0));
    if out.built {
        return Err("rollback rebuilt: the previous release was not warm".into());
    }

    let base = median(baseline);
    let wall = median(&walls);
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!();
    println!(
        "hotfix platform benchmark ({} clients, {} deploys, 127.0.0.1 only)",
        clients,
        walls.len()
    );
    println!("{:-<72}", "");
    println!("{:<44} {:>12} {:>12}", "", "sent", "failed");
    println!(
        "{:<44} {:>12} {:>12}",
        "requests during deploy", deploy_load.0, deploy_load.1
    );
    println!(
        "{:<44} {:>12} {:>12}",
        "requests during rollback", rollback_load.0, rollback_load.1
    );
    println!("{:-<72}", "");
    println!(
        "{:<44} {:>26}",
        "rollback API call (request → answered)",
        ms(api_ms)
    );
    println!(
        "{:<44} {:>26}",
        "rollback → previous release serving",
        serving_after.map(ms).unwrap_or_else(|| "never seen".into())
    );
    println!("{:<44} {:>26}", "service start-up alone (median)", ms(base));
    println!(
        "{:<44} {:>26}",
        "platform deploy wall time (median)",
        ms(wall)
    );
    println!(
        "{:<44} {:>26}",
        "platform overhead per deploy",
        ms(wall.saturating_sub(base))
    );
    println!(
        "{:<44} {:>26}",
        "deploy / start-up alone",
        format!("{:.2}x", wall.as_secs_f64() / base.as_secs_f64().max(1e-9))
    );
    println!(
        "{:<44} {:>26}",
        "max request latency during deploy",
        ms(deploy_load.2)
    );
    println!(
        "{:<44} {:>26}",
        "max request latency during rollback",
        ms(rollback_load.2)
    );
    println!("{:-<72}", "");
    if deploy_load.1 + rollback_load.1 > 0 {
        return Err("some requests failed".into());
    }
    Ok(())
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
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

/// Concurrent keep-alive clients, each sending requests back to back.
struct Hammer {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<(u64, u64, Duration)>>,
}

impl Hammer {
    fn start(url: &str, clients: usize) -> Hammer {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicU64::new(0));
        let threads = (0..clients)
            .map(|_| {
                let (stop, url, _started) = (stop.clone(), url.to_string(), started.clone());
                std::thread::spawn(move || {
                    let a = agent(Duration::from_secs(10));
                    let (mut sent, mut failed, mut worst) = (0u64, 0u64, Duration::ZERO);
                    // Bounded: at most 20 s or 200k requests per client.
                    let t_end = Instant::now() + Duration::from_secs(20);
                    while !stop.load(Ordering::Relaxed) && sent < 200_000 && Instant::now() < t_end
                    {
                        let t = Instant::now();
                        let (s, _) = get(&a, &url);
                        worst = worst.max(t.elapsed());
                        sent += 1;
                        if s != 200 {
                            failed += 1;
                        }
                    }
                    (sent, failed, worst)
                })
            })
            .collect();
        Hammer { stop, threads }
    }

    fn finish(self) -> (u64, u64, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .filter_map(|t| t.join().ok())
            .fold((0, 0, Duration::ZERO), |a, b| {
                (a.0 + b.0, a.1 + b.1, a.2.max(b.2))
            })
    }
}
