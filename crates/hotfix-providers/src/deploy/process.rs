//! Running the team's commands: argument vectors, a timeout that kills the
//! whole process group, output kept in a per-incident log.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hotfix_core::provider::DeployError;

/// Splits a configured command line into an argument vector (no shell).
pub fn argv(command: &str) -> Result<Vec<String>, DeployError> {
    let v = shell_words::split(command)
        .map_err(|e| DeployError::Failed(format!("cannot parse command `{command}`: {e}")))?;
    if v.is_empty() {
        return Err(DeployError::Failed("empty command".into()));
    }
    Ok(v)
}

/// The result of a finished command.
pub struct Ran {
    pub stdout: String,
}

/// Runs `command` in `dir` with `env`, appending its output to `log`.
pub fn run(
    command: &str,
    dir: &Path,
    env: &[(String, String)],
    timeout: Duration,
    log: &Path,
) -> Result<Ran, DeployError> {
    let args = argv(command)?;
    let program = program_path(&args[0], dir);
    if let Some(parent) = log.parent() {
        let _ = hotfix_fs::create_private_dir(parent);
    }
    let log_file = hotfix_fs::append_private(log)
        .map_err(|e| DeployError::Failed(format!("cannot open log {}: {e}", log.display())))?;
    let log_file = Arc::new(Mutex::new(log_file));
    if let Ok(mut f) = log_file.lock() {
        let envs: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(f, "\n$ {command}    [{}]", envs.join(" "));
    }
    let done = run_program(&Program {
        program: &program,
        args: &args[1..],
        dir,
        env,
        timeout,
        log: Some(log_file),
    })
    .map_err(|e| match e {
        RunError::Start(e) => DeployError::CommandFailed {
            command: command.to_string(),
            status: format!("could not start {}: {e}", program.display()),
            tail: String::new(),
        },
        RunError::Wait(e) => DeployError::Failed(format!("waiting for `{command}`: {e}")),
    })?;
    let tail = || crate::redact::redact(&last_lines(&done.both, 15));
    match done.status {
        None => Err(DeployError::Timeout {
            command: command.to_string(),
            seconds: timeout.as_secs(),
            tail: tail(),
        }),
        Some(s) if !s.success() => Err(DeployError::CommandFailed {
            command: command.to_string(),
            status: s.to_string(),
            tail: tail(),
        }),
        Some(_) => Ok(Ran {
            stdout: done.stdout,
        }),
    }
}

/// What a relative program (`./scripts/x`) means: relative to `dir`, the
/// repository root, not to wherever hotfix was started.
pub fn program_path(first: &str, dir: &Path) -> PathBuf {
    if first.contains('/') && !Path::new(first).is_absolute() {
        dir.join(first)
    } else {
        PathBuf::from(first)
    }
}

/// One program to run: the team's deploy scripts and `command` analyses
/// both go through [`run_program`], so a timeout, a left-behind child or a
/// chatty script is handled one way.
pub struct Program<'a> {
    pub program: &'a Path,
    pub args: &'a [String],
    pub dir: &'a Path,
    pub env: &'a [(String, String)],
    pub timeout: Duration,
    /// Where both streams are appended as they come, if anywhere.
    pub log: Option<Arc<Mutex<std::fs::File>>>,
}

/// How a program ended. Each text is the last [`KEEP`] bytes of its stream.
pub struct Finished {
    /// `None`: it ran past the timeout and its process group was killed.
    pub status: Option<std::process::ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    /// Both streams interleaved as they came (for a failure's tail).
    pub both: String,
}

/// Why a program could not be run to its end.
#[derive(Debug)]
pub enum RunError {
    Start(std::io::Error),
    Wait(std::io::Error),
}

/// Output kept per stream: a result is on the last line, the reason of a
/// failure at the end.
pub const KEEP: usize = 64 * 1024;

/// Runs a program in its own process group with a timeout that stops the
/// group; after it exits, whatever it left behind holding the pipes is
/// stopped too (so its output ends and nothing hangs).
pub fn run_program(p: &Program<'_>) -> Result<Finished, RunError> {
    let mut cmd = Command::new(p.program);
    cmd.args(p.args)
        .current_dir(p.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in p.env {
        cmd.env(k, v);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Its own process group, so a timeout stops the script and its children.
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().map_err(RunError::Start)?;
    let out = Arc::new(Mutex::new(Vec::<u8>::new()));
    let err = Arc::new(Mutex::new(Vec::<u8>::new()));
    let both = Arc::new(Mutex::new(Vec::<u8>::new()));
    let mut readers = vec![];
    if let Some(s) = child.stdout.take() {
        readers.push(pump(s, out.clone(), both.clone(), p.log.clone()));
    }
    if let Some(s) = child.stderr.take() {
        readers.push(pump(s, err.clone(), both.clone(), p.log.clone()));
    }
    let started = Instant::now();
    // Poll fast first (most deploy commands of a hotfix are quick), then back off.
    let mut nap = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if started.elapsed() >= p.timeout => break None,
            Ok(None) => {
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(20));
            }
            Err(e) => {
                kill_group(&mut child);
                return Err(RunError::Wait(e));
            }
        }
    };
    if status.is_none() {
        kill_group(&mut child);
        let _ = child.wait();
    } else {
        let drained = Instant::now() + Duration::from_millis(200);
        while readers.iter().any(|r| !r.is_finished()) && Instant::now() < drained {
            std::thread::sleep(Duration::from_millis(1));
        }
        if readers.iter().any(|r| !r.is_finished()) {
            kill_group(&mut child);
        }
    }
    for r in readers {
        let _ = r.join();
    }
    let text = |b: &Arc<Mutex<Vec<u8>>>| {
        String::from_utf8_lossy(&b.lock().map(|b| b.clone()).unwrap_or_default()).to_string()
    };
    Ok(Finished {
        status,
        stdout: text(&out),
        stderr: text(&err),
        both: text(&both),
    })
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn pump<R: Read + Send + 'static>(
    mut r: R,
    keep: Arc<Mutex<Vec<u8>>>,
    both: Arc<Mutex<Vec<u8>>>,
    log: Option<Arc<Mutex<std::fs::File>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk = &buf[..n];
                    for sink in [&keep, &both] {
                        if let Ok(mut k) = sink.lock() {
                            k.extend_from_slice(chunk);
                            let len = k.len();
                            if len > KEEP {
                                k.drain(..len - KEEP);
                            }
                        }
                    }
                    if let Some(log) = &log
                        && let Ok(mut f) = log.lock()
                    {
                        let _ = f.write_all(chunk);
                    }
                }
            }
        }
    })
}

fn kill_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        // `kill -KILL -- -PGID`: the group, not just the script.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
}
