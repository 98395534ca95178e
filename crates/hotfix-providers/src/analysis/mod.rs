//! Measuring `[[analysis]]` metrics during the watch window.
//!
//! Each provider turns one configured [`AnalysisConfig`] into a
//! [`MetricSource`]: something the watch asks, once per interval, for the
//! value now (and its baseline). Judging the value is pure and lives in
//! `hotfix_core::analysis`; this module only measures, and says precisely
//! why it could not (an unreachable Prometheus is not the same thing as a
//! query that selects nothing).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hotfix_core::analysis::{AnalysisConfig, Measurement, Source};

pub mod command;
pub mod http_json;
pub mod platform;
pub mod prometheus;

/// What a measurement needs to know about the deploy it judges.
#[derive(Debug, Clone)]
pub struct MeasureContext {
    /// When the new release started serving (the switch, or the canary's start).
    pub deployed_at: jiff::Timestamp,
    /// The moment measured (an instant query's `time`).
    pub now: jiff::Timestamp,
    /// The watch window (informational: each provider measures its own window,
    /// see its module).
    pub window: Duration,
    /// The sha of the release judged.
    pub sha: String,
    /// The sha it replaced, if known (the platform baseline prefers it).
    pub previous_sha: Option<String>,
    /// The embedded platform's state directory (`provider = "platform"`).
    pub platform_dir: Option<PathBuf>,
}

/// Why there is no measurement. The engine treats each as "no data" with
/// this reason, under the analysis' `inconclusive` policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalysisError {
    /// Nothing answered (connection refused, timeout, no platform running).
    #[error("{0}")]
    Unreachable(String),
    /// The source answered that the query is wrong (a PromQL error, a
    /// command that could not start, a release the platform does not run).
    #[error("{0}")]
    Query(String),
    /// An answer that is not a number (more than one series, not JSON, a
    /// command that failed, a missing JSON value).
    #[error("{0}")]
    BadAnswer(String),
}

/// Where an analysis' numbers come from.
pub trait MetricSource: Send + Sync {
    /// The value now and, when the analysis has a baseline, its baseline.
    fn measure(&self, cx: &MeasureContext) -> Result<Measurement, AnalysisError>;
}

/// The source for one analysis; commands run from the current directory
/// (see [`source_in`] to name the repository root).
pub fn source_for(cfg: &AnalysisConfig) -> Box<dyn MetricSource> {
    let root = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    source_in(cfg, &root)
}

/// The source for one analysis, with `command` analyses run from `root`
/// (the repository root, where `./scripts/measure.sh` is).
pub fn source_in(cfg: &AnalysisConfig, root: &Path) -> Box<dyn MetricSource> {
    let timeout = cfg.timeout();
    match &cfg.source {
        Source::Prometheus { address, query } => Box::new(prometheus::Prometheus {
            address: address.clone(),
            query: query.clone(),
            baseline_before: cfg.baseline.is_some(),
            timeout,
        }),
        Source::Platform { metric, route } => Box::new(platform::PlatformSource::new(
            *metric,
            route.clone(),
            cfg.baseline.is_some(),
        )),
        Source::Command { command } => Box::new(command::CommandSource {
            command: command.clone(),
            root: root.to_path_buf(),
            timeout,
        }),
        Source::HttpJson { url, pointer } => Box::new(http_json::HttpJson {
            url: url.clone(),
            pointer: pointer.clone(),
            timeout,
        }),
    }
}

/// The one HTTP client of the analysis providers: a global timeout, and
/// every status readable (an error answer carries the reason).
pub(crate) fn agent(timeout: Duration) -> ureq::Agent {
    crate::http::agent(timeout, crate::http::Redirects::Follow)
}

/// Bodies larger than this are not an answer to one query.
pub(crate) const BODY_LIMIT: u64 = 4 * 1024 * 1024;

/// A transport error in words: a timeout says how long was waited.
pub(crate) fn unreachable(who: &str, e: &ureq::Error, timeout: Duration) -> AnalysisError {
    let why = match e {
        ureq::Error::Timeout(_) => format!(
            "no answer within {}",
            hotfix_core::duration::span_of(timeout)
        ),
        other => other.to_string(),
    };
    AnalysisError::Unreachable(format!("{who} is not reachable: {why}"))
}

/// The start of a body for a message.
pub(crate) fn excerpt(s: &str, max: usize) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() <= max {
        return one;
    }
    let mut out: String = one.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A number as a source writes it: `0.5`, `"0.5"`, `NaN`, `+Inf`.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok()
}
