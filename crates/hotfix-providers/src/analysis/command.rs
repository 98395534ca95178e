//! `provider = "command"`: the team's own measurement program.
//!
//! The command line is split into an argument vector (`shell-words`, no
//! shell: nothing in it is interpreted) and run from the repository root
//! with `HOTFIX_SHA`, `HOTFIX_DEPLOYED_AT` (RFC 3339), `HOTFIX_PREVIOUS_SHA`
//! (when known) and `HOTFIX_WINDOW_S` in its environment. Its last
//! non-empty stdout line is the number; no output is no data. A non-zero
//! exit is a bad answer carrying the end of its stderr; one that runs past
//! the timeout is stopped with its whole process group.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hotfix_core::analysis::Measurement;

use super::{AnalysisError, MeasureContext, MetricSource, excerpt, parse_number};

#[derive(Debug, Clone)]
pub struct CommandSource {
    pub command: String,
    /// Where it runs, and what a relative program (`./scripts/x`) is relative to.
    pub root: PathBuf,
    pub timeout: Duration,
}

/// Output kept per stream: the number is on the last line, the reason of a
/// failure at the end of stderr.
const KEEP: usize = 64 * 1024;

impl MetricSource for CommandSource {
    fn measure(&self, cx: &MeasureContext) -> Result<Measurement, AnalysisError> {
        let args = shell_words::split(&self.command).map_err(|e| {
            AnalysisError::Query(format!("cannot parse command `{}`: {e}", self.command))
        })?;
        let Some(first) = args.first() else {
            return Err(AnalysisError::Query("the command is empty".into()));
        };
        let program = if first.contains('/') && !Path::new(first).is_absolute() {
            self.root.join(first)
        } else {
            PathBuf::from(first)
        };
        let mut cmd = Command::new(&program);
        cmd.args(&args[1..])
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("HOTFIX_SHA", &cx.sha)
            .env("HOTFIX_DEPLOYED_AT", cx.deployed_at.to_string())
            .env("HOTFIX_WINDOW_S", cx.window.as_secs().to_string());
        if let Some(p) = &cx.previous_sha {
            cmd.env("HOTFIX_PREVIOUS_SHA", p);
        }
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // Its own process group, so a timeout stops it and its children.
            cmd.process_group(0);
        }
        let mut child = cmd.spawn().map_err(|e| {
            AnalysisError::Query(format!(
                "could not start `{}` ({}): {e}",
                self.command,
                program.display()
            ))
        })?;
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let mut readers = vec![];
        if let Some(s) = child.stdout.take() {
            readers.push(pump(s, out.clone()));
        }
        if let Some(s) = child.stderr.take() {
            readers.push(pump(s, err.clone()));
        }
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if started.elapsed() >= self.timeout => break None,
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => {
                    kill_group(&mut child);
                    return Err(AnalysisError::BadAnswer(format!(
                        "waiting for `{}`: {e}",
                        self.command
                    )));
                }
            }
        };
        let Some(status) = status else {
            kill_group(&mut child);
            let _ = child.wait();
            return Err(AnalysisError::BadAnswer(format!(
                "`{}` did not finish within {}; it was stopped",
                self.command,
                hotfix_core::duration::span_of(self.timeout)
            )));
        };
        // What it left behind in its group must not hold the pipes open.
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
        let text = |b: &Arc<Mutex<Vec<u8>>>| {
            String::from_utf8_lossy(&b.lock().map(|b| b.clone()).unwrap_or_default()).to_string()
        };
        if !status.success() {
            let stderr = text(&err);
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = lines[lines.len().saturating_sub(5)..].join("\n");
            return Err(AnalysisError::BadAnswer(format!(
                "`{}` failed ({status}){}",
                self.command,
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", crate::redact::redact(&tail))
                }
            )));
        }
        let stdout = text(&out);
        let Some(last) = stdout.lines().rev().map(str::trim).find(|l| !l.is_empty()) else {
            return Ok(Measurement::no_data());
        };
        let v = parse_number(last).ok_or_else(|| {
            AnalysisError::BadAnswer(format!(
                "the last line of `{}` is `{}`, not a number",
                self.command,
                excerpt(last, 80)
            ))
        })?;
        Ok(Measurement {
            value: (!v.is_nan()).then_some(v),
            baseline: None,
        })
    }
}

fn pump<R: Read + Send + 'static>(
    mut r: R,
    keep: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Ok(mut k) = keep.lock() {
                        k.extend_from_slice(&buf[..n]);
                        let len = k.len();
                        if len > KEEP {
                            k.drain(..len - KEEP);
                        }
                    }
                }
            }
        }
    })
}

fn kill_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        // `kill -KILL -- -PGID`: the group, not just the program.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
}
