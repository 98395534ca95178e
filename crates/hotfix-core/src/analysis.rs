//! Metric analysis during the watch window: `[[analysis]]` in `hotfix.toml`.
//!
//! A hotfix can leave `/health` green while real requests fail or slow
//! down; an analysis measures what users see (a PromQL query, the embedded
//! platform's own counters, a team script, a JSON endpoint) and says
//! whether the new release is healthy. This module is the pure half: the
//! config, the judgement of one [`Measurement`] ([`judge`]) and the
//! consecutive-failure count over a watch ([`Tracker`]). The measuring
//! lives in `hotfix_providers::analysis`; the engine feeds the tracker.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;

/// One `[[analysis]]` table, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawAnalysis", into = "RawAnalysis")]
pub struct AnalysisConfig {
    pub name: String,
    pub source: Source,
    /// The value must be at most this.
    pub max: Option<f64>,
    /// The value must be at least this.
    pub min: Option<f64>,
    /// What the value is compared with, with [`AnalysisConfig::max_increase`].
    pub baseline: Option<Baseline>,
    /// How much above the baseline the value may be, as a fraction:
    /// `0.5` = +50% (written `"50%"` or `"1.5x"`).
    pub max_increase: Option<f64>,
    /// Time between two measurements.
    pub interval: Duration,
    /// Consecutive failed measurements that make the release unhealthy.
    pub failure_limit: u32,
    /// What a measurement without data means.
    pub inconclusive: Inconclusive,
}

/// Where the number comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// An instant PromQL query against a Prometheus HTTP API.
    Prometheus { address: String, query: String },
    /// The embedded platform's own request counters for the new release.
    Platform {
        metric: PlatformMetric,
        /// Only requests to this path (as the platform's route stats name it).
        route: Option<String>,
    },
    /// The team's own program (argv, no shell): the last stdout line is the number.
    Command { command: String },
    /// A number inside a JSON document: `GET url`, then an RFC 6901 pointer.
    HttpJson { url: String, pointer: String },
}

/// What the embedded platform measures per release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlatformMetric {
    /// 5xx answers / all answers over the interval.
    ErrorRatio,
    /// 99th percentile latency in milliseconds over the interval.
    LatencyP99,
    /// Median latency in milliseconds over the interval.
    LatencyP50,
    /// Requests per second over the interval.
    RequestRate,
}

impl PlatformMetric {
    pub const ALL: [PlatformMetric; 4] = [
        PlatformMetric::ErrorRatio,
        PlatformMetric::LatencyP99,
        PlatformMetric::LatencyP50,
        PlatformMetric::RequestRate,
    ];

    /// The name written in `hotfix.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            PlatformMetric::ErrorRatio => "error_ratio",
            PlatformMetric::LatencyP99 => "latency_p99",
            PlatformMetric::LatencyP50 => "latency_p50",
            PlatformMetric::RequestRate => "request_rate",
        }
    }

    pub fn parse(s: &str) -> Option<PlatformMetric> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// What a relative threshold compares with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Baseline {
    /// The same query evaluated at the deploy moment: the window before it.
    Before,
    /// The same metric on the previous release (platform: the warm
    /// previous release, or production while a canary runs).
    Previous,
}

impl Baseline {
    pub fn as_str(self) -> &'static str {
        match self {
            Baseline::Before => "before",
            Baseline::Previous => "previous",
        }
    }
}

/// What a measurement without data means. No default guess hides a blind
/// analysis: the default pauses and asks a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Inconclusive {
    /// Stop and ask the on-call (neither healthy nor unhealthy).
    #[default]
    Pause,
    /// No data counts as a failed measurement.
    Fail,
    /// No data counts as a passed measurement (the team said so explicitly).
    Pass,
}

impl Inconclusive {
    pub fn as_str(self) -> &'static str {
        match self {
            Inconclusive::Pause => "pause",
            Inconclusive::Fail => "fail",
            Inconclusive::Pass => "pass",
        }
    }
}

/// One measurement: the value now and, with a baseline, the value it is
/// compared with. `None` = no data (an empty query result, no requests in
/// the interval, an empty command output).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Measurement {
    pub value: Option<f64>,
    pub baseline: Option<f64>,
    /// The error counts of the measured release and of a control serving
    /// the same traffic in the same window (production beside a canary),
    /// where the source has them: see [`Controlled`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controlled: Option<Controlled>,
}

/// The same window's errors of a canary and of production, which served
/// the same mix of requests at the same time.
///
/// Why it exists: `failure_limit` consecutive failures guard a time series
/// without a control against noise and against blips that hit everything
/// (a database hiccup). Beside a canary, production is that control: a
/// canary significantly worse than production in the same window is the
/// release's fault, so waiting for more windows only sends more users to
/// it. [`Controlled::p_value`] says how sure that is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Controlled {
    pub errors: u64,
    pub requests: u64,
    pub control_errors: u64,
    pub control_requests: u64,
}

/// A canary's failed measurement aborts at once when its errors are
/// this unlikely under "the canary is no worse than production".
pub const CONTROLLED_ALPHA: f64 = 0.01;

/// A control with fewer requests in the window says too little.
pub const MIN_CONTROL_REQUESTS: u64 = 20;

impl Controlled {
    /// One-sided Fisher exact test: the probability that, if the canary
    /// were no worse than production, at least `errors` of the window's
    /// errors would have landed on the canary's `requests` (hypergeometric
    /// tail). `1.0` when there is nothing to test (no errors, no control).
    pub fn p_value(&self) -> f64 {
        let c = self;
        if c.requests == 0 || c.control_requests < MIN_CONTROL_REQUESTS {
            return 1.0;
        }
        let (k, n) = (c.errors.min(c.requests), c.requests);
        let total_errors = k + c.control_errors.min(c.control_requests);
        let total = n + c.control_requests;
        if k == 0 {
            return 1.0;
        }
        // At or below the expected count the tail is about one half or
        // more: never significant, and no long sum is needed.
        if (k as f64) <= (total_errors as f64) * (n as f64) / (total as f64) {
            return 1.0;
        }
        let hi = total_errors.min(n);
        let ln_pmf = |x: u64| {
            ln_choose(total_errors, x) + ln_choose(total - total_errors, n - x)
                - ln_choose(total, n)
        };
        // Above the mode the terms only fall: stop once they vanish.
        let mut p = 0.0_f64;
        for x in k..=hi {
            let term = ln_pmf(x).exp();
            p += term;
            if term < p * 1e-12 {
                break;
            }
        }
        p.clamp(0.0, 1.0)
    }

    /// The canary's error ratio over the window.
    fn ratio(errors: u64, requests: u64) -> String {
        if requests == 0 {
            "-".into()
        } else {
            num(errors as f64 / requests as f64)
        }
    }
}

/// `ln(n choose k)` through `ln Γ`.
fn ln_choose(n: u64, k: u64) -> f64 {
    if k > n {
        return f64::NEG_INFINITY;
    }
    ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
}

/// `ln(n!)`: exact sums below 256, Stirling's series above (error below
/// 1e-12 there).
fn ln_factorial(n: u64) -> f64 {
    if n < 256 {
        return (2..=n).map(|i| (i as f64).ln()).sum();
    }
    let x = n as f64;
    x * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI * x).ln() + 1.0 / (12.0 * x)
        - 1.0 / (360.0 * x * x * x)
}

impl Measurement {
    pub fn of(value: f64) -> Measurement {
        Measurement {
            value: Some(value),
            baseline: None,
            controlled: None,
        }
    }
    pub fn no_data() -> Measurement {
        Measurement::default()
    }
    pub fn with_baseline(self, baseline: Option<f64>) -> Measurement {
        Measurement { baseline, ..self }
    }
    pub fn with_control(self, controlled: Option<Controlled>) -> Measurement {
        Measurement { controlled, ..self }
    }
}

/// The judgement of one measurement, with the numbers that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// The numbers: `0.12 > max 0.01`.
    Fail(String),
    /// No data under `inconclusive = "pause"`: why.
    Inconclusive(String),
}

/// Is this measurement within the thresholds? Every configured bound
/// must hold; the first broken one is the reason. NaN (Prometheus's 0/0)
/// is no data, not a number that passes every comparison.
pub fn judge(cfg: &AnalysisConfig, m: &Measurement) -> Verdict {
    let value = m.value.filter(|v| !v.is_nan());
    let Some(v) = value else {
        return no_data(cfg, "no data".to_string());
    };
    if let Some(max) = cfg.max
        && v > max
    {
        return Verdict::Fail(format!("{} > max {}", num(v), num(max)));
    }
    if let Some(min) = cfg.min
        && v < min
    {
        return Verdict::Fail(format!("{} < min {}", num(v), num(min)));
    }
    if let (Some(b), Some(inc)) = (cfg.baseline, cfg.max_increase) {
        let Some(base) = m.baseline.filter(|b| !b.is_nan()) else {
            return no_data(cfg, format!("{} but no baseline ({})", num(v), b.as_str()));
        };
        // `abs` so that a negative baseline still allows an increase.
        let limit = base + base.abs() * inc;
        if v > limit {
            return Verdict::Fail(format!(
                "{} > {} (baseline {} {} + {})",
                num(v),
                num(limit),
                b.as_str(),
                num(base),
                increase(inc)
            ));
        }
    }
    Verdict::Pass
}

fn no_data(cfg: &AnalysisConfig, what: String) -> Verdict {
    match cfg.inconclusive {
        Inconclusive::Pause => Verdict::Inconclusive(what),
        Inconclusive::Fail => Verdict::Fail(format!("{what} (inconclusive = \"fail\")")),
        Inconclusive::Pass => Verdict::Pass,
    }
}

/// A value for people: up to 4 significant digits, no float noise
/// (`0.1235`, `1500`, `0.00012`).
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "NaN".into()
        } else if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v == 0.0 {
        return "0".into();
    }
    if v.abs() >= 1000.0 {
        return format!("{}", v.round());
    }
    let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" { "0".into() } else { s }
}

/// `0.5` as `+50%`.
fn increase(inc: f64) -> String {
    format!("{}%", num(inc * 100.0))
}

/// How an analysis stands during a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Healthy so far (failures below the limit).
    Ok,
    /// `failure_limit` consecutive failures: the numbers.
    Unhealthy(String),
    /// No data under `inconclusive = "pause"`: ask a person.
    Inconclusive(String),
}

/// The most consecutive failures an analysis may wait for: its failed
/// values travel in one event.
pub const MAX_FAILURE_LIMIT: u32 = 1000;

/// At most this many samples per analysis per watch (the event stays small).
pub const MAX_SAMPLES: usize = 600;

/// Consecutive-failure tracking over a watch window (pure; the engine
/// feeds it one measurement per interval).
///
/// A measurement without data under `inconclusive = "pause"` neither
/// counts as a failure nor resets the count: a gap in the data does not
/// forgive the failures before it. Once unhealthy, the tracker stays so.
#[derive(Debug, Clone)]
pub struct Tracker {
    cfg: AnalysisConfig,
    samples: Vec<(u32, Option<f64>)>,
    baseline: Option<f64>,
    /// The values (and reasons) of the current run of failures.
    streak: Vec<(Option<f64>, String)>,
    unhealthy: Option<String>,
    last: Option<Verdict>,
}

impl Tracker {
    pub fn new(cfg: &AnalysisConfig) -> Tracker {
        Tracker {
            cfg: cfg.clone(),
            samples: vec![],
            baseline: None,
            streak: vec![],
            unhealthy: None,
            last: None,
        }
    }

    /// Records the measurement taken `at_s` seconds after the deploy.
    pub fn record(&mut self, at_s: u32, m: &Measurement) -> Status {
        self.push(at_s, m.value);
        if let Some(b) = m.baseline.filter(|b| b.is_finite()) {
            self.baseline = Some(b);
        }
        let verdict = judge(&self.cfg, m);
        // A failure significantly worse than a concurrent control needs no
        // confirmation by later windows (see `Controlled`).
        let at_once = match (&verdict, m.controlled) {
            (Verdict::Fail(_), Some(c)) if c.p_value() < CONTROLLED_ALPHA => Some(c),
            _ => None,
        };
        if at_once.is_some() {
            return self.apply_with(at_s, m.value, verdict, at_once);
        }
        self.apply(at_s, m.value, verdict)
    }

    /// Records a measurement that could not be taken (Prometheus down, a
    /// failed command): no data, with `why` as the reason, under the
    /// analysis' `inconclusive` policy.
    pub fn record_error(&mut self, at_s: u32, why: &str) -> Status {
        self.push(at_s, None);
        let verdict = no_data(&self.cfg, why.to_string());
        self.apply(at_s, None, verdict)
    }

    fn apply(&mut self, at_s: u32, value: Option<f64>, verdict: Verdict) -> Status {
        self.apply_with(at_s, value, verdict, None)
    }

    /// `at_once`: the controlled comparison that makes a failure final
    /// without `failure_limit` consecutive ones.
    fn apply_with(
        &mut self,
        at_s: u32,
        value: Option<f64>,
        verdict: Verdict,
        at_once: Option<Controlled>,
    ) -> Status {
        self.last = Some(verdict.clone());
        if let Some(why) = &self.unhealthy {
            return Status::Unhealthy(why.clone());
        }
        match verdict {
            Verdict::Pass => {
                self.streak.clear();
                Status::Ok
            }
            Verdict::Inconclusive(why) => Status::Inconclusive(format!(
                "{}: {why} at {at_s}s (inconclusive = \"pause\")",
                self.cfg.name
            )),
            Verdict::Fail(why) => {
                if let Some(c) = at_once {
                    let why = self.describe_controlled(&why, &c);
                    self.streak.push((value, why.clone()));
                    self.unhealthy = Some(why.clone());
                    return Status::Unhealthy(why);
                }
                self.streak.push((value, why));
                if self.streak.len() >= self.cfg.failure_limit as usize {
                    let why = self.describe_streak();
                    self.unhealthy = Some(why.clone());
                    Status::Unhealthy(why)
                } else {
                    Status::Ok
                }
            }
        }
    }

    fn describe_controlled(&self, why: &str, c: &Controlled) -> String {
        let p = c.p_value();
        format!(
            "{}: {why}, and the canary is worse than production in the same window: {} of {} requests failed ({}) against production's {} of {} ({}); one-sided Fisher exact test p = {} < {}, so it did not wait for {} consecutive failures",
            self.cfg.name,
            c.errors,
            c.requests,
            Controlled::ratio(c.errors, c.requests),
            c.control_errors,
            c.control_requests,
            Controlled::ratio(c.control_errors, c.control_requests),
            num(p),
            num(CONTROLLED_ALPHA),
            self.cfg.failure_limit,
        )
    }

    fn describe_streak(&self) -> String {
        let n = self.streak.len();
        let last = self.streak.last().map(|(_, w)| w.as_str()).unwrap_or("");
        let values: Vec<String> = self
            .streak
            .iter()
            .map(|(v, _)| v.map_or("no data".to_string(), num))
            .collect();
        format!(
            "{}: {n} consecutive failed measurement{} ({}): {last}",
            self.cfg.name,
            if n == 1 { "" } else { "s" },
            values.join(", ")
        )
    }

    /// `(seconds since deploy, value)` of every measurement, `None` = no data.
    pub fn samples(&self) -> &[(u32, Option<f64>)] {
        &self.samples
    }

    /// The last baseline measured, if any.
    pub fn baseline(&self) -> Option<f64> {
        self.baseline
    }

    /// The values of the failures that made it unhealthy (or of the
    /// current run of failures): `analysis_failed.values`.
    pub fn failed_values(&self) -> Vec<f64> {
        self.streak
            .iter()
            .filter_map(|(v, _)| *v)
            .filter(|v| v.is_finite())
            .collect()
    }

    /// Keeps a sample for the chart and the event. Values the event log
    /// cannot carry (NaN, ±Inf) are kept as gaps: the verdict and its
    /// reason already say `+Inf > max 0.01`. Past [`MAX_SAMPLES`], pairs
    /// of neighbours become the worse of the two, so a long watch at a
    /// short interval stays a compact event and keeps its spikes.
    fn push(&mut self, at_s: u32, value: Option<f64>) {
        self.samples.push((at_s, value.filter(|v| v.is_finite())));
        if self.samples.len() > MAX_SAMPLES {
            let worse_is_lower = self.cfg.max.is_none() && self.cfg.min.is_some();
            let pick = |pair: &[(u32, Option<f64>)]| match pair {
                [a, b] => match (a.1, b.1) {
                    (Some(x), Some(y)) if (y < x) == worse_is_lower && y != x => *b,
                    (None, Some(_)) => *b,
                    _ => *a,
                },
                [a] => *a,
                _ => (0, None),
            };
            self.samples = self.samples.chunks(2).map(pick).collect();
        }
    }

    pub fn is_unhealthy(&self) -> bool {
        self.unhealthy.is_some()
    }

    /// The outcome of the watch for `analysis_measured.verdict`: `fail`
    /// once unhealthy; `inconclusive` when nothing was measured or the last
    /// measurement had no data under `pause`; `pass` otherwise.
    pub fn verdict(&self) -> &'static str {
        match (&self.unhealthy, &self.last) {
            (Some(_), _) => "fail",
            (None, None) | (None, Some(Verdict::Inconclusive(_))) => "inconclusive",
            (None, Some(_)) => "pass",
        }
    }
}

impl AnalysisConfig {
    /// How long one measurement may take: the interval (a slower one would
    /// delay the next), at least 1 s and at most 30 s.
    pub fn timeout(&self) -> Duration {
        self.interval
            .clamp(Duration::from_secs(1), Duration::from_secs(30))
    }

    /// What is measured, for events and messages (`analysis_*.query`).
    pub fn query(&self) -> String {
        match &self.source {
            Source::Prometheus { query, .. } => query.clone(),
            Source::Platform { metric, route } => match route {
                Some(r) => format!("platform {} {r}", metric.as_str()),
                None => format!("platform {}", metric.as_str()),
            },
            Source::Command { command } => command.clone(),
            Source::HttpJson { url, pointer } => format!("{url} {pointer}"),
        }
    }

    /// The thresholds in words (`analysis_failed.threshold`):
    /// `max 0.01`, `min 5, <= previous + 50%`.
    pub fn threshold(&self) -> String {
        let mut parts = vec![];
        if let Some(m) = self.max {
            parts.push(format!("max {}", num(m)));
        }
        if let Some(m) = self.min {
            parts.push(format!("min {}", num(m)));
        }
        if let (Some(b), Some(inc)) = (self.baseline, self.max_increase) {
            parts.push(format!("<= {} + {}", b.as_str(), increase(inc)));
        }
        parts.join(", ")
    }

    /// The provider's name as written in `hotfix.toml`.
    pub fn provider(&self) -> &'static str {
        match self.source {
            Source::Prometheus { .. } => "prometheus",
            Source::Platform { .. } => "platform",
            Source::Command { .. } => "command",
            Source::HttpJson { .. } => "http-json",
        }
    }
}

/// `max_increase`: `"50%"` → 0.5, `"1.5x"` → 0.5.
pub fn parse_increase(s: &str) -> Option<f64> {
    let t = s.trim();
    let v = if let Some(p) = t.strip_suffix('%') {
        p.trim().parse::<f64>().ok()? / 100.0
    } else if let Some(x) = t.strip_suffix(['x', 'X']) {
        x.trim().parse::<f64>().ok()? - 1.0
    } else {
        return None;
    };
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// `0.5` → `"50%"`: the form written back.
fn format_increase(inc: f64) -> String {
    format!("{}%", num(inc * 100.0))
}

/// `[[analysis]]` as written: one flat table whose keys depend on the
/// provider, checked into an [`AnalysisConfig`] with errors naming the key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnalysis {
    pub name: String,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_increase: Option<String>,
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    #[serde(default = "default_failure_limit")]
    pub failure_limit: u32,
    #[serde(default = "default_inconclusive")]
    pub inconclusive: String,
}

fn default_interval() -> HumanDuration {
    HumanDuration::secs(5)
}
fn default_failure_limit() -> u32 {
    2
}
fn default_inconclusive() -> String {
    "pause".into()
}

/// The keys each provider reads; any other provider key is a mistake.
const PROVIDER_KEYS: [&str; 7] = [
    "address", "query", "metric", "route", "command", "url", "pointer",
];

fn keys_of(provider: &str) -> &'static [&'static str] {
    match provider {
        "prometheus" => &["address", "query"],
        "platform" => &["metric", "route"],
        "command" => &["command"],
        "http-json" => &["url", "pointer"],
        _ => &[],
    }
}

impl RawAnalysis {
    fn get(&self, key: &str) -> Option<&String> {
        match key {
            "address" => self.address.as_ref(),
            "query" => self.query.as_ref(),
            "metric" => self.metric.as_ref(),
            "route" => self.route.as_ref(),
            "command" => self.command.as_ref(),
            "url" => self.url.as_ref(),
            "pointer" => self.pointer.as_ref(),
            _ => None,
        }
    }
}

impl TryFrom<RawAnalysis> for AnalysisConfig {
    type Error = String;

    fn try_from(raw: RawAnalysis) -> Result<Self, Self::Error> {
        let name = raw.name.trim().to_string();
        if name.is_empty() {
            return Err("[[analysis]] name is empty: name each analysis (it is shown on the timeline and in the rollback reason)".into());
        }
        let at = |m: String| format!("[[analysis]] `{name}`: {m}");
        let provider = raw.provider.as_str();
        if !["prometheus", "platform", "command", "http-json"].contains(&provider) {
            return Err(at(format!(
                "provider `{provider}` is not known: use prometheus, platform, command or http-json"
            )));
        }
        for key in PROVIDER_KEYS {
            if raw.get(key).is_some() && !keys_of(provider).contains(&key) {
                return Err(at(format!(
                    "`{key}` is not a setting of the {provider} provider (it reads {})",
                    keys_of(provider).join(" and ")
                )));
            }
        }
        let required = |key: &str| -> Result<String, String> {
            match raw.get(key).map(|v| v.trim()) {
                Some(v) if !v.is_empty() => Ok(v.to_string()),
                _ => Err(at(format!("provider {provider} needs `{key}`"))),
            }
        };
        let http = |key: &str, v: &str| -> Result<(), String> {
            if v.starts_with("http://") || v.starts_with("https://") {
                Ok(())
            } else {
                Err(at(format!(
                    "{key} `{v}` must be an http:// or https:// URL"
                )))
            }
        };
        let source = match provider {
            "prometheus" => {
                let address = required("address")?;
                http("address", &address)?;
                Source::Prometheus {
                    address: address.trim_end_matches('/').to_string(),
                    query: required("query")?,
                }
            }
            "platform" => {
                let m = required("metric")?;
                let metric = PlatformMetric::parse(&m).ok_or_else(|| {
                    at(format!(
                        "metric `{m}` is not known: use error_ratio, latency_p99, latency_p50 or request_rate"
                    ))
                })?;
                let route = raw.route.as_ref().map(|r| r.trim().to_string());
                if let Some(r) = &route
                    && !r.starts_with('/')
                {
                    return Err(at(format!("route `{r}` must be a path starting with `/`")));
                }
                if route.is_some()
                    && matches!(
                        metric,
                        PlatformMetric::LatencyP99 | PlatformMetric::LatencyP50
                    )
                {
                    return Err(at(format!(
                        "route works with error_ratio and request_rate: the platform keeps no latency per route (metric `{m}`)"
                    )));
                }
                Source::Platform { metric, route }
            }
            "command" => {
                let command = required("command")?;
                match shell_split_ok(&command) {
                    Ok(()) => {}
                    Err(e) => return Err(at(format!("command: {e}"))),
                }
                Source::Command { command }
            }
            _ => {
                let url = required("url")?;
                http("url", &url)?;
                let pointer = raw.pointer.clone().unwrap_or_default();
                if raw.pointer.is_none() {
                    return Err(at("provider http-json needs `pointer` (RFC 6901, e.g. \"/data/value\"; \"\" for the whole document)".into()));
                }
                if !pointer.is_empty() && !pointer.starts_with('/') {
                    return Err(at(format!(
                        "pointer `{pointer}` must start with `/` (RFC 6901, e.g. \"/data/value\")"
                    )));
                }
                Source::HttpJson { url, pointer }
            }
        };
        for (key, v) in [("max", raw.max), ("min", raw.min)] {
            if let Some(v) = v
                && !v.is_finite()
            {
                return Err(at(format!("{key} must be a finite number")));
            }
        }
        if let (Some(max), Some(min)) = (raw.max, raw.min)
            && min > max
        {
            return Err(at(format!(
                "min {} is above max {}: no value could pass",
                num(min),
                num(max)
            )));
        }
        let baseline = match raw.baseline.as_deref() {
            None => None,
            Some("before") => Some(Baseline::Before),
            Some("previous") => Some(Baseline::Previous),
            Some(b) => {
                return Err(at(format!(
                    "baseline `{b}` is not known: use \"before\" or \"previous\""
                )));
            }
        };
        let max_increase = match &raw.max_increase {
            None => None,
            Some(s) => Some(parse_increase(s).ok_or_else(|| {
                at(format!(
                    "max_increase `{s}` is not an increase: write e.g. \"50%\" or \"1.5x\""
                ))
            })?),
        };
        match (baseline, max_increase) {
            (Some(_), None) => {
                return Err(at(
                    "baseline needs max_increase (how far above it the value may go, e.g. \"50%\")"
                        .into(),
                ));
            }
            (None, Some(_)) => {
                return Err(at(
                    "max_increase needs baseline = \"before\" or \"previous\" (what it is relative to)"
                        .into(),
                ));
            }
            _ => {}
        }
        match (baseline, provider) {
            (Some(Baseline::Previous), p) if p != "platform" => {
                return Err(at(format!(
                    "baseline = \"previous\" needs provider platform (only the embedded platform measures the previous release); with {p}, use baseline = \"before\"{}",
                    if p == "prometheus" {
                        ""
                    } else {
                        " with prometheus, or max/min"
                    }
                )));
            }
            (Some(Baseline::Before), p) if p != "prometheus" => {
                return Err(at(format!(
                    "baseline = \"before\" needs provider prometheus (it evaluates the query at the deploy moment); {}",
                    if p == "platform" {
                        "with platform, use baseline = \"previous\""
                    } else {
                        "use max/min"
                    }
                )));
            }
            _ => {}
        }
        if raw.max.is_none() && raw.min.is_none() && baseline.is_none() {
            return Err(at(
                "no threshold: set max and/or min, or baseline with max_increase".into(),
            ));
        }
        if raw.failure_limit == 0 {
            return Err(at(
                "failure_limit must be at least 1 (consecutive failed measurements before unhealthy)"
                    .into(),
            ));
        }
        if raw.failure_limit > MAX_FAILURE_LIMIT {
            return Err(at(format!(
                "failure_limit = {} is out of range: use 1 to {MAX_FAILURE_LIMIT}",
                raw.failure_limit
            )));
        }
        if raw.interval.0 < Duration::from_millis(100) {
            return Err(at(format!(
                "interval {} is too short: use at least 100ms",
                raw.interval
            )));
        }
        let inconclusive = match raw.inconclusive.as_str() {
            "pause" => Inconclusive::Pause,
            "fail" => Inconclusive::Fail,
            "pass" => Inconclusive::Pass,
            other => {
                return Err(at(format!(
                    "inconclusive `{other}` is not known: use \"pause\", \"fail\" or \"pass\""
                )));
            }
        };
        Ok(AnalysisConfig {
            name,
            source,
            max: raw.max,
            min: raw.min,
            baseline,
            max_increase,
            interval: raw.interval.0,
            failure_limit: raw.failure_limit,
            inconclusive,
        })
    }
}

/// Two analyses with one name could not be told apart on the timeline,
/// in `status` or in a rollback reason.
pub fn validate_names(all: &[AnalysisConfig]) -> Result<(), String> {
    for (i, a) in all.iter().enumerate() {
        if all[..i]
            .iter()
            .any(|b| b.name.eq_ignore_ascii_case(&a.name))
        {
            return Err(format!(
                "[[analysis]] name `{}` is used twice: give each analysis its own name",
                a.name
            ));
        }
    }
    Ok(())
}

/// A command line `shell-words` could split: balanced quotes, not empty.
/// (Checked here without the crate: the core has no such dependency; the
/// provider splits it for real.)
fn shell_split_ok(command: &str) -> Result<(), String> {
    let (mut single, mut double, mut escaped) = (false, false, false);
    for c in command.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if !single => escaped = true,
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            _ => {}
        }
    }
    if single || double {
        return Err(format!("`{command}` has an unclosed quote"));
    }
    Ok(())
}

impl From<AnalysisConfig> for RawAnalysis {
    fn from(c: AnalysisConfig) -> RawAnalysis {
        let provider = c.provider().to_string();
        let mut raw = RawAnalysis {
            name: c.name,
            provider,
            address: None,
            query: None,
            metric: None,
            route: None,
            command: None,
            url: None,
            pointer: None,
            max: c.max,
            min: c.min,
            baseline: c.baseline.map(|b| b.as_str().to_string()),
            max_increase: c.max_increase.map(format_increase),
            interval: HumanDuration(c.interval),
            failure_limit: c.failure_limit,
            inconclusive: c.inconclusive.as_str().to_string(),
        };
        match c.source {
            Source::Prometheus { address, query } => {
                raw.address = Some(address);
                raw.query = Some(query);
            }
            Source::Platform { metric, route } => {
                raw.metric = Some(metric.as_str().to_string());
                raw.route = route;
            }
            Source::Command { command } => raw.command = Some(command),
            Source::HttpJson { url, pointer } => {
                raw.url = Some(url);
                raw.pointer = Some(pointer);
            }
        }
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AnalysisConfig {
        AnalysisConfig {
            name: "5xx ratio".into(),
            source: Source::Prometheus {
                address: "http://127.0.0.1:9090".into(),
                query: "up".into(),
            },
            max: Some(0.01),
            min: None,
            baseline: None,
            max_increase: None,
            interval: Duration::from_secs(5),
            failure_limit: 2,
            inconclusive: Inconclusive::Pause,
        }
    }

    fn controlled(errors: u64, requests: u64, ce: u64, cr: u64) -> Controlled {
        Controlled {
            errors,
            requests,
            control_errors: ce,
            control_requests: cr,
        }
    }

    #[test]
    fn the_fisher_test_gives_the_hypergeometric_tail() {
        // 2 errors, both on the canary's 20 of 200 requests:
        // C(20,2) / C(200,2) = 190 / 19900.
        let p = controlled(2, 20, 0, 180).p_value();
        assert!((p - 190.0 / 19900.0).abs() < 1e-12, "{p}");
        // One error on the canary: its share of the requests, 0.1.
        let p = controlled(1, 20, 0, 180).p_value();
        assert!((p - 0.1).abs() < 1e-12, "{p}");
        // 3 of 20 against 0 of 180: C(20,3)/C(200,3).
        let p = controlled(3, 20, 0, 180).p_value();
        assert!((p - 1140.0 / 1_313_400.0).abs() < 1e-12, "{p}");
        // No worse than production (or no control): nothing to test.
        assert_eq!(controlled(2, 20, 18, 180).p_value(), 1.0);
        assert_eq!(controlled(0, 20, 0, 180).p_value(), 1.0);
        assert_eq!(controlled(5, 20, 0, 5).p_value(), 1.0, "a control of 5");
        // Large counts stay finite and tiny.
        let p = controlled(10_000, 100_000, 1_000, 900_000).p_value();
        assert!(p.is_finite() && p < 1e-100, "{p}");
        let p = controlled(1_010, 100_000, 9_000, 900_000).p_value();
        assert!(p > 0.3 && p < 0.7, "about the mean: {p}");
    }

    #[test]
    fn a_canary_significantly_worse_than_production_is_unhealthy_at_once() {
        let mut t = Tracker::new(&cfg());
        let m = Measurement::of(0.15).with_control(Some(controlled(3, 20, 0, 180)));
        match t.record(1, &m) {
            Status::Unhealthy(why) => {
                assert!(why.contains("0.15 > max 0.01"), "{why}");
                assert!(
                    why.contains(
                        "3 of 20 requests failed (0.15) against production's 0 of 180 (0)"
                    ),
                    "{why}"
                );
                assert!(why.contains("Fisher exact test p = 0.000868"), "{why}");
                assert!(
                    why.contains("did not wait for 2 consecutive failures"),
                    "{why}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(t.verdict(), "fail");
        assert_eq!(t.failed_values(), vec![0.15]);
    }

    #[test]
    fn a_canary_failure_that_production_shares_or_that_is_not_significant_waits_for_the_limit() {
        // One error in 20: over the max, but production's share of luck.
        let mut t = Tracker::new(&cfg());
        let one = Measurement::of(0.05).with_control(Some(controlled(1, 20, 0, 180)));
        assert_eq!(t.record(1, &one), Status::Ok);
        // A blip that hits production as hard: no early verdict either.
        let mut blip = Tracker::new(&cfg());
        let both = Measurement::of(0.2).with_control(Some(controlled(4, 20, 40, 180)));
        assert_eq!(blip.record(1, &both), Status::Ok);
        assert!(matches!(blip.record(2, &both), Status::Unhealthy(_)));
        // Significant but within the thresholds: healthy.
        let mut ok = Tracker::new(&AnalysisConfig {
            max: Some(0.5),
            ..cfg()
        });
        let m = Measurement::of(0.15).with_control(Some(controlled(3, 20, 0, 180)));
        assert_eq!(ok.record(1, &m), Status::Ok);
    }

    #[test]
    fn a_measurement_without_a_control_reads_and_writes_as_before() {
        let m: Measurement = serde_json::from_str(r#"{"value":0.5,"baseline":null}"#).expect("old");
        assert_eq!(m, Measurement::of(0.5));
        let s = serde_json::to_string(&Measurement::of(0.5)).expect("json");
        assert!(!s.contains("controlled"), "{s}");
    }

    #[test]
    fn a_value_within_the_thresholds_passes() {
        assert_eq!(judge(&cfg(), &Measurement::of(0.005)), Verdict::Pass);
        assert_eq!(
            judge(&cfg(), &Measurement::of(0.01)),
            Verdict::Pass,
            "max is inclusive"
        );
        let both = AnalysisConfig {
            min: Some(0.001),
            ..cfg()
        };
        assert_eq!(judge(&both, &Measurement::of(0.001)), Verdict::Pass);
    }

    #[test]
    fn a_value_above_max_or_below_min_fails_with_the_numbers() {
        assert_eq!(
            judge(&cfg(), &Measurement::of(0.12)),
            Verdict::Fail("0.12 > max 0.01".into())
        );
        let min = AnalysisConfig {
            max: None,
            min: Some(5.0),
            ..cfg()
        };
        assert_eq!(
            judge(&min, &Measurement::of(4.25)),
            Verdict::Fail("4.25 < min 5".into())
        );
        assert_eq!(
            judge(&cfg(), &Measurement::of(f64::INFINITY)),
            Verdict::Fail("+Inf > max 0.01".into())
        );
    }

    #[test]
    fn a_baseline_comparison_allows_max_increase_and_no_more() {
        let rel = AnalysisConfig {
            max: None,
            baseline: Some(Baseline::Previous),
            max_increase: Some(0.5),
            ..cfg()
        };
        let m = |v: f64, b: f64| Measurement::of(v).with_baseline(Some(b));
        assert_eq!(judge(&rel, &m(150.0, 100.0)), Verdict::Pass);
        assert_eq!(judge(&rel, &m(90.0, 100.0)), Verdict::Pass);
        assert_eq!(
            judge(&rel, &m(300.0, 100.0)),
            Verdict::Fail("300 > 150 (baseline previous 100 + 50%)".into())
        );
        // Both bounds hold at once: the absolute max still applies.
        let both = AnalysisConfig {
            max: Some(120.0),
            ..rel.clone()
        };
        assert_eq!(
            judge(&both, &m(130.0, 100.0)),
            Verdict::Fail("130 > max 120".into())
        );
        // Without a baseline value the comparison has no data.
        assert_eq!(
            judge(&rel, &Measurement::of(120.0)),
            Verdict::Inconclusive("120 but no baseline (previous)".into())
        );
    }

    #[test]
    fn no_data_follows_the_inconclusive_policy() {
        let with = |p| AnalysisConfig {
            inconclusive: p,
            ..cfg()
        };
        let none = Measurement::no_data();
        assert_eq!(
            judge(&with(Inconclusive::Pause), &none),
            Verdict::Inconclusive("no data".into())
        );
        assert_eq!(
            judge(&with(Inconclusive::Fail), &none),
            Verdict::Fail("no data (inconclusive = \"fail\")".into())
        );
        assert_eq!(judge(&with(Inconclusive::Pass), &none), Verdict::Pass);
        // Prometheus answers NaN for 0/0 (no requests): no data, not a pass.
        assert_eq!(
            judge(&with(Inconclusive::Pause), &Measurement::of(f64::NAN)),
            Verdict::Inconclusive("no data".into())
        );
    }

    #[test]
    fn failure_limit_counts_consecutive_failures_and_a_pass_resets_it() {
        let mut t = Tracker::new(&cfg());
        assert_eq!(t.record(0, &Measurement::of(0.5)), Status::Ok, "1 of 2");
        assert_eq!(
            t.record(5, &Measurement::of(0.0)),
            Status::Ok,
            "a pass resets"
        );
        assert_eq!(
            t.record(10, &Measurement::of(0.2)),
            Status::Ok,
            "1 of 2 again"
        );
        assert_eq!(t.verdict(), "pass");
        let s = t.record(15, &Measurement::of(0.3));
        assert_eq!(
            s,
            Status::Unhealthy(
                "5xx ratio: 2 consecutive failed measurements (0.2, 0.3): 0.3 > max 0.01".into()
            )
        );
        assert_eq!(t.failed_values(), vec![0.2, 0.3]);
        assert_eq!(t.verdict(), "fail");
        assert!(t.is_unhealthy());
        // Sticky: a later pass does not make a rolled-back release healthy.
        assert!(matches!(
            t.record(20, &Measurement::of(0.0)),
            Status::Unhealthy(_)
        ));
        assert_eq!(
            t.samples(),
            &[
                (0, Some(0.5)),
                (5, Some(0.0)),
                (10, Some(0.2)),
                (15, Some(0.3)),
                (20, Some(0.0))
            ]
        );
    }

    #[test]
    fn a_gap_in_the_data_neither_counts_nor_forgives() {
        let mut t = Tracker::new(&cfg());
        assert_eq!(t.record(0, &Measurement::of(0.5)), Status::Ok);
        assert_eq!(
            t.record(5, &Measurement::no_data()),
            Status::Inconclusive("5xx ratio: no data at 5s (inconclusive = \"pause\")".into())
        );
        assert_eq!(t.verdict(), "inconclusive");
        assert!(matches!(
            t.record(10, &Measurement::of(0.5)),
            Status::Unhealthy(_)
        ));
        assert_eq!(t.samples()[1], (5, None));

        // Under "fail", no data is a failure like any other.
        let mut f = Tracker::new(&AnalysisConfig {
            inconclusive: Inconclusive::Fail,
            failure_limit: 1,
            ..cfg()
        });
        assert_eq!(
            f.record(0, &Measurement::no_data()),
            Status::Unhealthy(
                "5xx ratio: 1 consecutive failed measurement (no data): no data (inconclusive = \"fail\")"
                    .into()
            )
        );
        assert!(f.failed_values().is_empty());
        assert_eq!(
            Tracker::new(&cfg()).verdict(),
            "inconclusive",
            "nothing measured"
        );
    }

    #[test]
    fn a_source_that_cannot_measure_is_no_data_with_its_reason() {
        let down = "Prometheus at http://127.0.0.1:9 is not reachable: connection refused";
        let mut t = Tracker::new(&cfg());
        assert_eq!(
            t.record_error(3, down),
            Status::Inconclusive(format!(
                "5xx ratio: {down} at 3s (inconclusive = \"pause\")"
            ))
        );
        assert_eq!(t.samples(), &[(3, None)]);
        let mut f = Tracker::new(&AnalysisConfig {
            inconclusive: Inconclusive::Fail,
            failure_limit: 1,
            ..cfg()
        });
        assert_eq!(
            f.record_error(0, down),
            Status::Unhealthy(format!(
                "5xx ratio: 1 consecutive failed measurement (no data): {down} (inconclusive = \"fail\")"
            ))
        );
        let mut p = Tracker::new(&AnalysisConfig {
            inconclusive: Inconclusive::Pass,
            ..cfg()
        });
        assert_eq!(p.record_error(0, down), Status::Ok);
        assert_eq!(p.verdict(), "pass");
    }

    #[test]
    fn a_long_watch_keeps_its_samples_compact_with_their_spikes() {
        let mut t = Tracker::new(&AnalysisConfig {
            failure_limit: 10_000,
            ..cfg()
        });
        for i in 0..2000u32 {
            let v = if i == 777 { 0.9 } else { 0.001 };
            t.record(i, &Measurement::of(v));
        }
        assert!(t.samples().len() <= MAX_SAMPLES, "{}", t.samples().len());
        assert!(t.samples().len() >= MAX_SAMPLES / 2);
        assert!(
            t.samples().iter().any(|s| s.1 == Some(0.9)),
            "the spike stays"
        );
        assert_eq!(t.samples().last(), Some(&(1999, Some(0.001))));
        // The log cannot carry infinity: a gap, the reason keeps the number.
        let mut inf = Tracker::new(&AnalysisConfig {
            failure_limit: 1,
            ..cfg()
        });
        let s = inf.record(
            0,
            &Measurement::of(f64::INFINITY).with_baseline(Some(f64::NAN)),
        );
        assert!(
            matches!(&s, Status::Unhealthy(w) if w.contains("+Inf > max 0.01")),
            "{s:?}"
        );
        assert_eq!(inf.samples(), &[(0, None)]);
        assert!(inf.failed_values().is_empty());
        assert_eq!(inf.baseline(), None);
    }

    #[test]
    fn numbers_read_without_float_noise() {
        assert_eq!(num(0.1 + 0.2), "0.3");
        assert_eq!(num(0.000_123_46), "0.0001235");
        assert_eq!(num(1234.6), "1235");
        assert_eq!(num(1.5), "1.5");
        assert_eq!(num(-0.25), "-0.25");
        assert_eq!(num(0.0), "0");
        assert_eq!(parse_increase("50%"), Some(0.5));
        assert_eq!(parse_increase("1.5x"), Some(0.5));
        assert_eq!(parse_increase("0%"), Some(0.0));
        assert_eq!(
            parse_increase("0.5x"),
            None,
            "a decrease is not an increase"
        );
        assert_eq!(parse_increase("50"), None, "a unit is required");
    }
}
