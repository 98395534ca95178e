//! Test helpers shared by the integration tests.
//!
//! Everything is real: `git` repositories with a bare `origin` in a temp dir,
//! an HTTP server on 127.0.0.1 whose answers come from files the test (or a
//! deploy script) writes, and the real `hotfix` binary run as a process with
//! a hermetic environment (its own git config, fixed identity, optional fixed
//! clock).
#![allow(clippy::unwrap_used)] // test helpers: a panic is the right failure

pub mod fake;
pub mod platform;
pub mod railway;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A temp dir with `origin.git` (bare) and `work` (a clone), hermetic git config.
pub struct TestRepo {
    pub tmp: tempfile::TempDir,
    pub work: PathBuf,
    pub origin: PathBuf,
    pub gitconfig: PathBuf,
}

impl TestRepo {
    /// main with an app, develop one commit ahead, both pushed; `hotfix_toml`
    /// committed on main (and so on develop).
    pub fn new(hotfix_toml: &str) -> TestRepo {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        let gitconfig = base.join("gitconfig");
        std::fs::write(
            &gitconfig,
            "[user]\n\tname = Dev\n\temail = dev@example.com\n[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n",
        )
        .unwrap();
        let origin = base.join("origin.git");
        let work = base.join("work");
        let repo = TestRepo {
            tmp,
            work: work.clone(),
            origin: origin.clone(),
            gitconfig,
        };
        repo.git_in(&base, &["init", "--quiet", "--bare", "origin.git"]);
        repo.git_in(&base, &["init", "--quiet", "work"]);
        repo.write("app/health", "ok\n");
        repo.write("app/pdf", "crash\n");
        repo.write("app/main.txt", "line 1\nline 2\nline 3\n");
        repo.write("hotfix.toml", hotfix_toml);
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "--quiet", "-m", "initial"]);
        repo.git(&["remote", "add", "origin", origin.to_str().unwrap()]);
        repo.git(&["push", "--quiet", "origin", "main"]);
        repo.git(&["checkout", "--quiet", "-b", "develop"]);
        repo.write("app/feature.txt", "next release\n");
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "--quiet", "-m", "feature on develop"]);
        repo.git(&["push", "--quiet", "origin", "develop"]);
        repo.git(&["checkout", "--quiet", "main"]);
        repo
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "GIT_CONFIG_GLOBAL".into(),
                self.gitconfig.display().to_string(),
            ),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
            ("HOME".into(), self.tmp.path().display().to_string()),
            ("GIT_AUTHOR_DATE".into(), String::new()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect()
    }

    /// Runs git in another directory of the repo (a worktree) with the
    /// hermetic config; panics on failure.
    pub fn git_in(&self, dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .envs(self.env())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs git in the work tree; panics on failure.
    pub fn git(&self, args: &[&str]) -> String {
        self.git_in(&self.work, args)
    }

    /// Runs git in the work tree and returns whether it succeeded.
    pub fn git_ok(&self, args: &[&str]) -> bool {
        Command::new("git")
            .args(args)
            .current_dir(&self.work)
            .envs(self.env())
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .status
            .success()
    }

    /// Runs git against the bare origin.
    pub fn origin_git(&self, args: &[&str]) -> String {
        self.git_in(&self.origin, args)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.work.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.work.join(rel)).unwrap()
    }

    /// Commits everything as `email`.
    pub fn commit_as(&self, email: &str, msg: &str) -> String {
        self.git(&["add", "-A"]);
        let out = Command::new("git")
            .args(["commit", "--quiet", "-m", msg])
            .current_dir(&self.work)
            .envs(self.env())
            .env("GIT_AUTHOR_EMAIL", email)
            .env("GIT_COMMITTER_EMAIL", email)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.git(&["rev-parse", "HEAD"])
    }

    /// Pushes a commit to origin's branch from a second clone (someone else's work).
    pub fn push_from_elsewhere(&self, branch: &str, file: &str, text: &str, msg: &str) -> String {
        let other = self.dir().join(format!("other-{}", std::process::id()));
        if !other.exists() {
            self.git_in(
                self.dir(),
                &[
                    "clone",
                    "--quiet",
                    self.origin.to_str().unwrap(),
                    other.to_str().unwrap(),
                ],
            );
        }
        self.git_in(&other, &["fetch", "--quiet", "origin"]);
        self.git_in(
            &other,
            &[
                "checkout",
                "--quiet",
                "-B",
                branch,
                &format!("origin/{branch}"),
            ],
        );
        let p = other.join(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self.git_in(&other, &["add", "-A"]);
        self.git_in(&other, &["commit", "--quiet", "-m", msg]);
        self.git_in(&other, &["push", "--quiet", "origin", branch]);
        self.git_in(&other, &["rev-parse", "HEAD"])
    }
}

/// The result of running the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }
    }
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success:\n{}", self.all());
        self
    }
    #[track_caller]
    pub fn fails(self, code: i32, needle: &str) -> Run {
        assert_eq!(self.code, code, "expected exit {code}:\n{}", self.all());
        assert!(
            self.all().contains(needle),
            "expected {needle:?} in:\n{}",
            self.all()
        );
        self
    }
}

/// The variables of the test process a program run by a test still sees:
/// the search path, locale, temp dir and backtraces. Everything else (a
/// developer's exported `GITHUB_TOKEN`, `HOTFIX_SERVER`, `HOTFIX_USER`, …)
/// is cleared, so it is never sent to a fake or changes a result.
pub const ALLOWED_ENV: &[&str] = &[
    "PATH",
    "TMPDIR",
    "LANG",
    "LC_ALL",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
    "LLVM_PROFILE_FILE",
];

/// Clears `cmd`'s environment down to [`ALLOWED_ENV`]; the caller adds
/// what the program needs.
pub fn hermetic(cmd: &mut Command) -> &mut Command {
    cmd.env_clear();
    for k in ALLOWED_ENV {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    cmd
}

/// Runs `bin args` in `dir` with the repo's hermetic env plus `extra`
/// (nothing else of the test process's environment: [`hermetic`]).
pub fn run_bin(
    bin: &Path,
    repo: &TestRepo,
    dir: &Path,
    args: &[&str],
    extra: &[(&str, &str)],
) -> Run {
    let mut cmd = Command::new(bin);
    hermetic(&mut cmd)
        .args(args)
        .current_dir(dir)
        .envs(repo.env())
        .stdin(Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    Run::from(cmd.output().unwrap())
}

/// What a [`FileServer`] answers for a path: `(status, body)`.
pub type Route = (u16, String);

/// An HTTP/1.1 server on 127.0.0.1 whose routes are read, per request, from
/// files in `dir`: `GET /health` answers the content of `dir/health`, status
/// 200 if it is `ok`, 500 otherwise; any other path `/x/y` answers 200 with
/// `dir/x_y` if that file exists, else 404. Deploy scripts change behaviour
/// by writing those files. Counts requests.
pub struct FileServer {
    pub port: u16,
    pub dir: PathBuf,
    pub hits: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl FileServer {
    pub fn start(dir: &Path) -> FileServer {
        std::fs::create_dir_all(dir).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicU64::new(0));
        let (d, s, h) = (dir.to_path_buf(), stop.clone(), hits.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        h.fetch_add(1, Ordering::Relaxed);
                        let _ = stream.set_nonblocking(false);
                        let d = d.clone();
                        std::thread::spawn(move || serve(stream, &d));
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        FileServer {
            port,
            dir: dir.to_path_buf(),
            hits,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn route(dir: &Path, path: &str) -> Route {
    let path = path.split('?').next().unwrap_or(path);
    if path == "/health" {
        let h = std::fs::read_to_string(dir.join("health")).unwrap_or_default();
        return if h.trim() == "ok" {
            (200, "ok".into())
        } else {
            (500, format!("unhealthy: {}", h.trim()))
        };
    }
    let name = path.trim_start_matches('/').replace('/', "_");
    match std::fs::read_to_string(dir.join(&name)) {
        Ok(body) if body.trim() == "crash" => (500, "internal error".into()),
        Ok(body) => (200, body),
        Err(_) => (404, "not found".into()),
    }
}

fn serve(stream: std::net::TcpStream, dir: &Path) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (status, body) = route(dir, &path);
    let mut s = stream;
    let _ = write!(
        s,
        "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Writes an executable script.
pub fn script(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// A test that cannot run here (no PostgreSQL, no chromedriver) says so and
/// skips on a developer machine, but fails under `CI=true`: CI provides
/// every service, so a skip there would hide a test that never ran.
pub fn skip(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("CI=true but {why}: this test must run in CI");
    }
    eprintln!("\n*** SKIPPED: {why} ***\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo test` runs this with `CARGO_*` variables set: none reaches
    /// a program started through [`hermetic`], PATH does.
    #[test]
    fn a_hermetic_program_sees_only_the_allowed_variables() {
        assert!(std::env::var_os("CARGO_PKG_NAME").is_some(), "run by cargo");
        let out = hermetic(&mut Command::new("env"))
            .env("HOTFIX_USER", "chosen@example.com")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let names: Vec<&str> = text.lines().filter_map(|l| l.split('=').next()).collect();
        assert!(names.contains(&"PATH"), "{names:?}");
        assert!(
            names.contains(&"HOTFIX_USER"),
            "what the test adds: {names:?}"
        );
        for n in &names {
            assert!(
                ALLOWED_ENV.contains(n) || *n == "HOTFIX_USER",
                "{n} leaked into the program"
            );
        }
    }
}
