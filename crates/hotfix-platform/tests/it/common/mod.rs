//! Test fixtures: a hermetic git repository whose commits carry the sample
//! service's routes, and a platform (in this process, or as its own process).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hotfix_platform::{Client, PlatformConfig};

pub const SAMPLE: &str = env!("CARGO_BIN_EXE_hotfix-sample-service");
pub const RUNNER: &str = env!("CARGO_BIN_EXE_hotfix-platform-runner");

pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub repo: PathBuf,
    pub state: PathBuf,
    pub port: u16,
}

pub fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Routes of a healthy service answering `/version` with `version`.
pub fn routes(version: &str) -> String {
    format!(
        "log_requests = false\n\
         [[route]]\npath = \"/health\"\nbody = \"ok\"\n\
         [[route]]\npath = \"/version\"\nbody = \"{version}\"\n\
         [[route]]\npath = \"/slow\"\nbody = \"{version}-slow\"\ndelay_ms = 300\n"
    )
}

impl Fixture {
    pub fn new() -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = tmp.path().join("repo");
        std::fs::create_dir_all(&repo).expect("mkdir");
        git(&repo, &["init", "-q", "-b", "main"]);
        let state = tmp.path().join("state");
        let port = hotfix_platform::free_port().expect("port");
        Fixture {
            tmp,
            repo,
            state,
            port,
        }
    }

    /// Commits `service/routes.toml` with `text`; returns the sha.
    pub fn commit(&self, text: &str) -> String {
        let dir = self.repo.join("service");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("routes.toml"), text).expect("write");
        git(&self.repo, &["add", "-A", "service"]);
        git(
            &self.repo,
            &["commit", "-q", "--allow-empty", "-m", "routes"],
        );
        git(&self.repo, &["rev-parse", "HEAD"])
    }

    pub fn builds_file(&self) -> PathBuf {
        self.tmp.path().join("builds.txt")
    }

    /// Number of times the build command ran.
    pub fn builds(&self) -> usize {
        std::fs::read_to_string(self.builds_file())
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    pub fn config(&self) -> PlatformConfig {
        let mut c = PlatformConfig::new(&self.repo, &self.state, vec![SAMPLE.to_string()]);
        c.port = self.port;
        // The build appends a line to builds.txt, so tests can count builds.
        c.build = Some(vec![
            "sh".into(),
            "-c".into(),
            format!("echo built >> '{}'", self.builds_file().display()),
        ]);
        c.warm = Duration::from_secs(60);
        c.ready_timeout = Duration::from_secs(5);
        c.drain = Duration::from_secs(2);
        c.stop_timeout = Duration::from_secs(1);
        c
    }

    /// Writes `hotfix.toml` for the runner binary (not committed).
    pub fn write_hotfix_toml(&self, extra: &str) {
        let text = format!(
            "[deploy]\nprovider = \"local\"\nrun = \"'{SAMPLE}'\"\nbuild = \"sh -c 'echo built >> {}'\"\nport = {}\nready_timeout = \"5s\"\nstop_timeout = \"1s\"\n{extra}",
            self.builds_file().display(),
            self.port
        );
        std::fs::write(self.repo.join("hotfix.toml"), text).expect("write hotfix.toml");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn runner_args(&self) -> Vec<String> {
        vec![
            "--repo".into(),
            self.repo.display().to_string(),
            "--state-dir".into(),
            self.state.display().to_string(),
        ]
    }
}

/// A platform running in a thread of this test process.
pub struct InProcess {
    pub client: Client,
    thread: Option<JoinHandle<Result<(), hotfix_platform::PlatformError>>>,
}

impl InProcess {
    pub fn start(cfg: PlatformConfig) -> InProcess {
        let state = cfg.state_dir.clone();
        let thread = std::thread::spawn(move || hotfix_platform::run_foreground(cfg));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(c) = Client::connect(&state)
                && c.status().is_ok_and(|st| !st.recovering)
            {
                return InProcess {
                    client: c,
                    thread: Some(thread),
                };
            }
            assert!(!thread.is_finished(), "platform thread ended early");
            assert!(Instant::now() < deadline, "platform did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(mut self) {
        self.client.shutdown().expect("shutdown");
        if let Some(t) = self.thread.take() {
            t.join().expect("join").expect("platform result");
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.client.shutdown();
            let _ = t.join();
        }
    }
}

pub fn agent() -> ureq::Agent {
    let cfg = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(10)))
        .build();
    ureq::Agent::new_with_config(cfg)
}

/// `(status, body)` of `GET url`, or `(0, error)`.
pub fn get(url: &str) -> (u16, String) {
    get_with(&agent(), url)
}

pub fn get_with(agent: &ureq::Agent, url: &str) -> (u16, String) {
    match agent.get(url).call() {
        Ok(mut r) => {
            let s = r.status().as_u16();
            (s, r.body_mut().read_to_string().unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// Waits until `f` holds (or panics after `limit`).
pub fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(
            s.rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next()),
            Some('Z' | 'X')
        ),
        Err(_) => false,
    }
}

/// Pid of the sample service answering on `base` (`http://127.0.0.1:port`).
pub fn service_pid(base: &str) -> u32 {
    let (s, body) = get(&format!("{base}/__sample/info"));
    assert_eq!(s, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["pid"].as_u64().expect("pid") as u32
}

/// Hammers `url` from `threads` threads until stopped; counts what failed.
pub struct Hammer {
    stop: Arc<AtomicBool>,
    pub sent: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
    pub failures: Arc<std::sync::Mutex<Vec<String>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Hammer {
    pub fn start(url: String, threads: usize, ok: fn(&str) -> bool) -> Hammer {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let threads = (0..threads)
            .map(|_| {
                let (stop, sent, failed, failures, url) = (
                    stop.clone(),
                    sent.clone(),
                    failed.clone(),
                    failures.clone(),
                    url.clone(),
                );
                std::thread::spawn(move || {
                    let a = agent();
                    while !stop.load(Ordering::Relaxed) {
                        let (s, body) = get_with(&a, &url);
                        sent.fetch_add(1, Ordering::Relaxed);
                        if s != 200 || !ok(&body) {
                            failed.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut f) = failures.lock() {
                                f.push(format!("{s}: {body}"));
                            }
                        }
                    }
                })
            })
            .collect();
        Hammer {
            stop,
            sent,
            failed,
            failures,
            threads,
        }
    }

    /// Stops and returns (sent, failed, first failures).
    pub fn finish(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let f = self
            .failures
            .lock()
            .map(|v| v.iter().take(5).cloned().collect())
            .unwrap_or_default();
        (
            self.sent.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            f,
        )
    }
}
