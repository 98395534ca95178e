//! The production watch with analysis: the health URL and every configured
//! `[[analysis]]` measured at its own interval over the same window.
//!
//! One function for every watcher (`hotfix ship`, the team server), so the
//! CLI and the server cannot disagree on what "healthy" means. It is a plain
//! loop over time: health probes every `probe_interval`, each analysis every
//! `interval`, whichever is due next; the first unhealthy signal (health or
//! an analysis's `failure_limit` consecutive failures) ends it at once, so a
//! bad release is rolled back within `interval × failure_limit` plus one
//! measurement, not at the end of the window.

use std::time::{Duration, Instant};

use hotfix_core::analysis::{AnalysisConfig, Measurement, Status, Tracker};
use hotfix_core::event::EventKind;
use hotfix_providers::health::Watch;

/// What one analysis saw over the watch.
#[derive(Debug, Clone)]
pub struct AnalysisReport {
    pub name: String,
    pub samples: Vec<(u32, Option<f64>)>,
    pub baseline: Option<f64>,
    /// `pass`, `fail`, `inconclusive`.
    pub verdict: String,
    pub query: String,
    /// The values that failed it and the threshold, when it failed.
    pub failed: Option<(Vec<f64>, String)>,
}

impl AnalysisReport {
    /// The events that record it on `sha`: `analysis_measured`, and
    /// `analysis_failed` with the numbers when it failed.
    pub fn events(&self, sha: &str) -> Vec<EventKind> {
        let mut v = vec![EventKind::AnalysisMeasured {
            name: self.name.clone(),
            sha: sha.to_string(),
            samples: self.samples.clone(),
            baseline: self.baseline,
            verdict: self.verdict.clone(),
            query: self.query.clone(),
        }];
        if let Some((values, threshold)) = &self.failed {
            v.push(EventKind::AnalysisFailed {
                name: self.name.clone(),
                sha: sha.to_string(),
                values: values.clone(),
                threshold: threshold.clone(),
                query: self.query.clone(),
            });
        }
        v
    }
}

/// How the watch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The window ended on a healthy probe and every analysis passed.
    Healthy { probes: u32 },
    /// Health failed `unhealthy_after` times, or an analysis failed: why,
    /// with the numbers.
    Unhealthy(String),
    /// Health stayed green but an analysis had no data at the end of the
    /// window under `inconclusive = "pause"`: what is missing.
    Inconclusive(String),
}

/// Everything a watch found.
#[derive(Debug, Clone)]
pub struct WatchResult {
    pub outcome: Outcome,
    pub analyses: Vec<AnalysisReport>,
}

impl WatchResult {
    /// The analysis events to record on `sha`, in configuration order.
    pub fn events(&self, sha: &str) -> Vec<EventKind> {
        self.analyses.iter().flat_map(|a| a.events(sha)).collect()
    }
}

/// What the watcher is told as it goes (the CLI prints it, the server logs it).
pub enum Seen<'a> {
    Probe(u32, &'a Result<u16, String>),
    /// An analysis measured (value `None` = no data; the error, if any).
    Measured {
        name: &'a str,
        at_s: u32,
        value: Option<f64>,
        error: Option<&'a str>,
    },
}

/// The analyses of one watch, measured as they fall due: what both the
/// CLI's watch loop and the team server's round-based watch step through,
/// so they judge the same numbers the same way.
#[derive(Debug, Clone)]
pub struct Analyses {
    cfgs: Vec<AnalysisConfig>,
    trackers: Vec<Tracker>,
    next: Vec<Option<Instant>>,
}

impl Analyses {
    pub fn new(cfgs: &[AnalysisConfig]) -> Analyses {
        Analyses {
            cfgs: cfgs.to_vec(),
            trackers: cfgs.iter().map(Tracker::new).collect(),
            next: vec![None; cfgs.len()],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.cfgs.is_empty()
    }

    /// Measures every analysis whose interval has come (`at_s` seconds
    /// after the deploy); the reason, with the numbers, once one is unhealthy.
    pub fn measure_due(
        &mut self,
        at_s: u32,
        measure: &mut dyn FnMut(usize) -> Result<Measurement, String>,
        seen: &mut dyn FnMut(Seen<'_>),
    ) -> Option<String> {
        for i in 0..self.cfgs.len() {
            if self.next[i].is_some_and(|n| Instant::now() < n) {
                continue;
            }
            let (m, error) = match measure(i) {
                Ok(m) => (m, None),
                Err(e) => (Measurement::no_data(), Some(e)),
            };
            seen(Seen::Measured {
                name: &self.cfgs[i].name,
                at_s,
                value: m.value,
                error: error.as_deref(),
            });
            let status = self.trackers[i].record(at_s, &m);
            self.next[i] = Some(Instant::now() + self.cfgs[i].interval);
            if let Status::Unhealthy(why) = status {
                let why = match error {
                    Some(e) => format!("{why} ({e})"),
                    None => why,
                };
                return Some(format!("analysis {why}"));
            }
        }
        None
    }

    /// When the next measurement falls due.
    pub fn next_due(&self) -> Option<Instant> {
        self.next.iter().flatten().min().copied()
    }

    /// The analyses without data at the end of the window (under
    /// `inconclusive = "pause"`), in words; empty when every one has its verdict.
    pub fn waiting(&self) -> Vec<String> {
        self.cfgs
            .iter()
            .zip(&self.trackers)
            .filter(|(_, t)| t.verdict() == "inconclusive")
            .map(|(cfg, t)| {
                let gaps = t.samples().iter().filter(|(_, v)| v.is_none()).count();
                format!(
                    "{}: no data in {gaps} of {} measurements ({})",
                    cfg.name,
                    t.samples().len(),
                    cfg.query()
                )
            })
            .collect()
    }

    /// What each analysis saw, for the events.
    pub fn reports(&self) -> Vec<AnalysisReport> {
        self.cfgs
            .iter()
            .zip(&self.trackers)
            .map(|(cfg, t)| AnalysisReport {
                name: cfg.name.clone(),
                samples: t.samples().to_vec(),
                baseline: t.baseline(),
                verdict: t.verdict().to_string(),
                query: cfg.query(),
                failed: t
                    .is_unhealthy()
                    .then(|| (t.failed_values(), cfg.threshold())),
            })
            .collect()
    }
}

/// Watches production: `w` for health, each of `analyses` measured by
/// `measure(index)` (an error is no data, judged by the analysis's
/// `inconclusive` policy). Time 0 of the samples is the start of the watch
/// (the deploy moment).
pub fn watch_with_analysis(
    w: &Watch,
    prober: &dyn hotfix_providers::health::Probe,
    analyses: &[AnalysisConfig],
    mut measure: impl FnMut(usize) -> Result<Measurement, String>,
    mut seen: impl FnMut(Seen<'_>),
) -> WatchResult {
    let start = Instant::now();
    let mut a = Analyses::new(analyses);
    let mut next_probe = start;
    let mut probes = 0u32;
    let mut failures = 0u32;
    let finish = |a: &Analyses, outcome: Outcome| WatchResult {
        outcome,
        analyses: a.reports(),
    };
    loop {
        if Instant::now() >= next_probe {
            probes += 1;
            let r = prober.probe(w);
            seen(Seen::Probe(probes, &r));
            match r {
                Ok(_) => failures = 0,
                Err(reason) => {
                    failures += 1;
                    if failures >= w.unhealthy_after {
                        return finish(&a, Outcome::Unhealthy(reason));
                    }
                }
            }
            next_probe = Instant::now() + w.interval;
        }
        let at_s = u32::try_from(start.elapsed().as_secs()).unwrap_or(u32::MAX);
        if let Some(why) = a.measure_due(at_s, &mut measure, &mut seen) {
            return finish(&a, Outcome::Unhealthy(why));
        }
        if start.elapsed() >= w.window && failures == 0 {
            // The window is over on a healthy probe: every analysis has its
            // verdict (each measured at least once, at the start).
            let waiting = a.waiting();
            let outcome = if waiting.is_empty() {
                Outcome::Healthy { probes }
            } else {
                Outcome::Inconclusive(waiting.join("; "))
            };
            return finish(&a, outcome);
        }
        let next = a.next_due().map_or(next_probe, |n| n.min(next_probe));
        let wait = next
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(5));
        std::thread::sleep(wait);
    }
}

/// Where the measurements of one watch come from: each analysis's source,
/// asked about the release `sha` deployed when the watch starts.
pub struct Measurer {
    sources: Vec<Box<dyn hotfix_providers::analysis::MetricSource>>,
    cx: hotfix_providers::analysis::MeasureContext,
}

impl Measurer {
    /// `root` is where `command` analyses run (the repository root);
    /// `platform_dir` the embedded platform's state, for `platform` ones.
    pub fn new(
        analyses: &[AnalysisConfig],
        root: &std::path::Path,
        platform_dir: Option<std::path::PathBuf>,
        window: Duration,
        sha: &str,
        previous_sha: Option<String>,
    ) -> Measurer {
        let now = jiff::Timestamp::now();
        Measurer {
            sources: analyses
                .iter()
                .map(|a| hotfix_providers::analysis::source_in(a, root))
                .collect(),
            cx: hotfix_providers::analysis::MeasureContext {
                deployed_at: now,
                now,
                window,
                sha: sha.to_string(),
                previous_sha,
                platform_dir,
            },
        }
    }

    /// The deploy moment the sources measure from (the server knows it from the log).
    pub fn deployed_at(mut self, at: jiff::Timestamp) -> Measurer {
        self.cx.deployed_at = at;
        self
    }

    /// Measures analysis `i` now.
    pub fn measure(&mut self, i: usize) -> Result<Measurement, String> {
        self.cx.now = jiff::Timestamp::now();
        let Some(src) = self.sources.get(i) else {
            return Err(format!("no source for analysis {i}"));
        };
        src.measure(&self.cx).map_err(|e| e.to_string())
    }
}

impl std::fmt::Debug for Measurer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Measurer")
            .field("sources", &self.sources.len())
            .field("sha", &self.cx.sha)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotfix_core::analysis::{Inconclusive, Source};
    use std::sync::Mutex;

    /// Production as a script: one answer per probe, the last one repeated.
    struct Scripted(Mutex<Vec<Result<u16, String>>>);

    impl Scripted {
        fn new(answers: &[Result<u16, &str>]) -> Scripted {
            let v = answers
                .iter()
                .rev()
                .map(|r| r.map_err(str::to_string))
                .collect();
            Scripted(Mutex::new(v))
        }
    }

    impl hotfix_providers::health::Probe for Scripted {
        fn probe(&self, _w: &Watch) -> Result<u16, String> {
            let mut v = self.0.lock().expect("lock");
            if v.len() > 1 {
                v.pop().expect("answer")
            } else {
                v.last().cloned().expect("answer")
            }
        }
    }

    fn watch(window_ms: u64, unhealthy_after: u32) -> Watch {
        Watch {
            url: "http://production.invalid/health".into(),
            window: Duration::from_millis(window_ms),
            interval: Duration::from_millis(5),
            unhealthy_after,
            timeout: Duration::from_secs(1),
        }
    }

    fn ratio(max: f64) -> AnalysisConfig {
        AnalysisConfig {
            name: "5xx ratio".into(),
            source: Source::Command {
                command: "unused".into(),
            },
            max: Some(max),
            min: None,
            baseline: None,
            max_increase: None,
            interval: Duration::from_millis(10),
            failure_limit: 2,
            inconclusive: Inconclusive::Pause,
        }
    }

    #[test]
    fn consecutive_failed_probes_make_production_unhealthy_with_the_last_reason() {
        let p = Scripted::new(&[Ok(200), Err("answered 502: bad gateway")]);
        let r = watch_with_analysis(&watch(10_000, 3), &p, &[], |_| unreachable!(), |_| {});
        assert_eq!(
            r.outcome,
            Outcome::Unhealthy("answered 502: bad gateway".into())
        );
    }

    #[test]
    fn a_failure_that_recovers_passes_and_the_window_waits_for_a_healthy_probe() {
        let p = Scripted::new(&[Err("503"), Err("503"), Ok(200)]);
        let mut seen = 0;
        let r = watch_with_analysis(
            &watch(30, 3),
            &p,
            &[],
            |_| unreachable!(),
            |s| {
                if let Seen::Probe(..) = s {
                    seen += 1
                }
            },
        );
        match r.outcome {
            Outcome::Healthy { probes } => assert!(probes >= 3 && probes == seen, "{probes}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_analysis_fails_the_watch_while_health_stays_green() {
        let p = Scripted::new(&[Ok(200)]);
        let r = watch_with_analysis(
            &watch(10_000, 3),
            &p,
            &[ratio(0.01)],
            |_| Ok(Measurement::of(0.2)),
            |_| {},
        );
        match &r.outcome {
            Outcome::Unhealthy(why) => {
                assert!(why.contains("2 consecutive failed measurements"), "{why}");
                assert!(why.contains("0.2 > max 0.01"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.analyses.len(), 1);
    }

    #[test]
    fn no_data_at_the_end_of_the_window_is_inconclusive_not_healthy() {
        let p = Scripted::new(&[Ok(200)]);
        let r = watch_with_analysis(
            &watch(40, 3),
            &p,
            &[ratio(0.01)],
            |_| Ok(Measurement::no_data()),
            |_| {},
        );
        assert!(
            matches!(&r.outcome, Outcome::Inconclusive(w) if w.contains("5xx ratio")),
            "{:?}",
            r.outcome
        );
    }
}
