//! An embedded platform in the test process (the analysis tests of the
//! providers, the team server's watch): a scratch repository whose commits
//! are releases, the platform running this very test binary as each
//! release (it serves the sample service), and traffic through the
//! production proxy. Real processes, real HTTP on 127.0.0.1.
//!
//! A test binary using it declares `#[test] fn
//! serve_as_a_release_when_the_platform_runs_this_binary() {
//! serve_if_release() }` once, at the root of its `tests/it/main.rs` (so
//! its full name is the bare one [`release_argv`] runs with `--exact`):
//! the platform starts that test as the release.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Set by the platform on the release processes it starts from this binary.
pub const SERVE_ENV: &str = "HOTFIX_ANALYSIS_TEST_SERVE";

/// The name of the `#[test]` every file using this module declares with
/// [`serve_if_release`] as its body: the platform runs it as the release.
pub const RELEASE_TEST: &str = "serve_as_a_release_when_the_platform_runs_this_binary";

/// The body of the release test: serves the sample service when the
/// platform started this binary as a release, and returns at once otherwise.
pub fn serve_if_release() {
    if std::env::var(SERVE_ENV).is_err() {
        return;
    }
    let port: u16 = std::env::var("PORT")
        .expect("PORT")
        .parse()
        .expect("a port");
    let dir = std::env::current_dir().expect("cwd");
    hotfix_platform::sample_service::serve(port, &dir).expect("serve");
}

/// git in `repo` with a hermetic identity; panics on failure.
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
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Commits `routes` as the sample service's route file; returns the sha.
pub fn commit_routes(repo: &Path, routes: &str) -> String {
    std::fs::create_dir_all(repo.join("service")).expect("mkdir");
    std::fs::write(repo.join("service/routes.toml"), routes).expect("routes");
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "routes"]);
    git(repo, &["rev-parse", "HEAD"])
}

/// A platform running in a thread of this process; stopped on drop.
pub struct Platform {
    pub client: hotfix_platform::Client,
    /// The production proxy's port.
    pub port: u16,
    thread: Option<std::thread::JoinHandle<Result<(), hotfix_platform::PlatformError>>>,
}

impl Drop for Platform {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.client.shutdown();
            let _ = t.join();
        }
    }
}

/// The `run` command of a release served by this test binary: the
/// [`RELEASE_TEST`] alone, with [`SERVE_ENV`] set.
pub fn release_argv() -> Vec<String> {
    let exe = std::env::current_exe().expect("exe");
    vec![
        "env".into(),
        format!("{SERVE_ENV}=1"),
        exe.display().to_string(),
        RELEASE_TEST.into(),
        "--exact".into(),
        "--nocapture".into(),
    ]
}

/// Starts the platform of `repo` (state in `state`) and waits until it answers.
pub fn start_platform(repo: &Path, state: &Path) -> Platform {
    let mut c = hotfix_platform::PlatformConfig::new(repo, state, release_argv());
    c.port = hotfix_platform::free_port().expect("port");
    c.warm = Duration::from_secs(60);
    c.ready_timeout = Duration::from_secs(10);
    c.drain = Duration::from_secs(1);
    c.stop_timeout = Duration::from_secs(1);
    let port = c.port;
    let thread = std::thread::spawn(move || hotfix_platform::run_foreground(c));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(client) = hotfix_platform::Client::connect(state)
            && client.status().is_ok_and(|s| !s.recovering)
        {
            return Platform {
                client,
                port,
                thread: Some(thread),
            };
        }
        assert!(!thread.is_finished(), "the platform ended early");
        assert!(Instant::now() < deadline, "the platform did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `n` GETs of `path` through the production proxy on `port`.
pub fn traffic(port: u16, path: &str, n: usize) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    for _ in 0..n {
        agent
            .get(&format!("http://127.0.0.1:{port}{path}"))
            .call()
            .expect("the proxy answers");
    }
}
