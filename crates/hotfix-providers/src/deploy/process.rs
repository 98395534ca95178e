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
    let program = if args[0].contains('/') && !Path::new(&args[0]).is_absolute() {
        dir.join(&args[0])
    } else {
        PathBuf::from(&args[0])
    };
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
    let mut cmd = Command::new(&program);
    cmd.args(&args[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Its own process group, so a timeout stops the script and its children.
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().map_err(|e| DeployError::CommandFailed {
        command: command.to_string(),
        status: format!("could not start {}: {e}", program.display()),
        tail: String::new(),
    })?;
    let captured = Arc::new(Mutex::new(Vec::<u8>::new()));
    let tail = Arc::new(Mutex::new(Vec::<u8>::new()));
    let mut readers = vec![];
    if let Some(out) = child.stdout.take() {
        readers.push(pump(
            out,
            Some(captured.clone()),
            tail.clone(),
            log_file.clone(),
        ));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(pump(err, None, tail.clone(), log_file.clone()));
    }
    let started = Instant::now();
    // Poll fast first (most deploy commands of a hotfix are quick), then back off.
    let mut nap = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if started.elapsed() >= timeout => break None,
            Ok(None) => {
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(DeployError::Failed(format!("waiting for `{command}`: {e}"))),
        }
    };
    let tail_text = |t: &Arc<Mutex<Vec<u8>>>| {
        let b = t.lock().map(|b| b.clone()).unwrap_or_default();
        let s = String::from_utf8_lossy(&b).to_string();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    };
    let Some(status) = status else {
        kill_group(&mut child);
        let _ = child.wait();
        for r in readers {
            let _ = r.join();
        }
        return Err(DeployError::Timeout {
            command: command.to_string(),
            seconds: timeout.as_secs(),
            tail: crate::redact::redact(&tail_text(&tail)),
        });
    };
    // The script is done. Its output ends when every process holding the
    // pipes is gone; anything it left behind in its group is stopped so it
    // cannot hold them open (and hang us) forever.
    let drained = Instant::now() + Duration::from_millis(200);
    while readers.iter().any(|r| !r.is_finished()) && Instant::now() < drained {
        std::thread::sleep(Duration::from_millis(1));
    }
    if readers.iter().any(|r| !r.is_finished()) {
        kill_group(&mut child);
    }
    for r in readers {
        let _ = r.join();
    }
    if !status.success() {
        return Err(DeployError::CommandFailed {
            command: command.to_string(),
            status: status.to_string(),
            tail: crate::redact::redact(&tail_text(&tail)),
        });
    }
    let out = captured.lock().map(|b| b.clone()).unwrap_or_default();
    Ok(Ran {
        stdout: String::from_utf8_lossy(&out).to_string(),
    })
}

fn pump<R: Read + Send + 'static>(
    mut r: R,
    capture: Option<Arc<Mutex<Vec<u8>>>>,
    tail: Arc<Mutex<Vec<u8>>>,
    log: Arc<Mutex<std::fs::File>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk = &buf[..n];
                    if let Some(c) = &capture
                        && let Ok(mut c) = c.lock()
                    {
                        c.extend_from_slice(chunk);
                    }
                    if let Ok(mut t) = tail.lock() {
                        t.extend_from_slice(chunk);
                        let len = t.len();
                        if len > 16 * 1024 {
                            t.drain(..len - 16 * 1024);
                        }
                    }
                    if let Ok(mut f) = log.lock() {
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
