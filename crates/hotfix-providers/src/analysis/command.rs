//! `provider = "command"`: the team's own measurement program.
//!
//! The command line is split into an argument vector (`shell-words`, no
//! shell: nothing in it is interpreted) and run from the repository root
//! with `HOTFIX_SHA`, `HOTFIX_DEPLOYED_AT` (RFC 3339), `HOTFIX_PREVIOUS_SHA`
//! (when known) and `HOTFIX_WINDOW_S` in its environment. Its last
//! non-empty stdout line is the number; no output is no data. A non-zero
//! exit is a bad answer carrying the end of its stderr; one that runs past
//! the timeout is stopped with its whole process group.

use std::path::PathBuf;
use std::time::Duration;

use hotfix_core::analysis::Measurement;

use crate::deploy::process::{Program, RunError, run_program};

use super::{AnalysisError, MeasureContext, MetricSource, excerpt, parse_number};

#[derive(Debug, Clone)]
pub struct CommandSource {
    pub command: String,
    /// Where it runs, and what a relative program (`./scripts/x`) is relative to.
    pub root: PathBuf,
    pub timeout: Duration,
}

impl MetricSource for CommandSource {
    fn measure(&self, cx: &MeasureContext) -> Result<Measurement, AnalysisError> {
        let args = shell_words::split(&self.command).map_err(|e| {
            AnalysisError::Query(format!("cannot parse command `{}`: {e}", self.command))
        })?;
        let Some(first) = args.first() else {
            return Err(AnalysisError::Query("the command is empty".into()));
        };
        let program = crate::deploy::process::program_path(first, &self.root);
        let mut env = vec![
            (
                hotfix_core::env_vars::HOTFIX_SHA.to_string(),
                cx.sha.clone(),
            ),
            (
                hotfix_core::env_vars::HOTFIX_DEPLOYED_AT.to_string(),
                cx.deployed_at.to_string(),
            ),
            (
                hotfix_core::env_vars::HOTFIX_WINDOW_S.to_string(),
                cx.window.as_secs().to_string(),
            ),
        ];
        if let Some(p) = &cx.previous_sha {
            env.push((
                hotfix_core::env_vars::HOTFIX_PREVIOUS_SHA.to_string(),
                p.clone(),
            ));
        }
        let done = run_program(&Program {
            program: &program,
            args: &args[1..],
            dir: &self.root,
            env: &env,
            timeout: self.timeout,
            log: None,
        })
        .map_err(|e| match e {
            RunError::Start(e) => AnalysisError::Query(format!(
                "could not start `{}` ({}): {e}",
                self.command,
                program.display()
            )),
            RunError::Wait(e) => {
                AnalysisError::BadAnswer(format!("waiting for `{}`: {e}", self.command))
            }
        })?;
        let Some(status) = done.status else {
            return Err(AnalysisError::BadAnswer(format!(
                "`{}` did not finish within {}; it was stopped",
                self.command,
                hotfix_core::duration::span_of(self.timeout)
            )));
        };
        if !status.success() {
            let stderr = &done.stderr;
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
        let stdout = &done.stdout;
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
            controlled: None,
        })
    }
}
