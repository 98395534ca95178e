//! A small chart per analysis on the incident page: the samples of its
//! last watch, the threshold it was held against and the deploy moment.
//!
//! Only numbers leave this module (coordinates in a 240×64 box, labels
//! formatted by the analysis's own `num`); the template draws the SVG, so
//! nothing a metric source said is ever markup.

use hotfix_core::analysis::{AnalysisConfig, num};
use hotfix_core::state::AnalysisResult;
use serde::Serialize;

pub const W: f64 = 240.0;
pub const H: f64 = 64.0;
const PAD: f64 = 4.0;

/// One chart, ready for the template.
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    pub name: String,
    pub release: String,
    pub verdict: String,
    /// `x,y x,y …` of the samples with data.
    pub points: String,
    pub dots: Vec<(String, String)>,
    /// x of each sample without data (a tick on the axis).
    pub gaps: Vec<String>,
    /// y of the threshold line and its label, when there is one.
    pub threshold_y: Option<String>,
    pub threshold: Option<String>,
    /// x of the deploy moment (time 0 of the samples).
    pub deploy_x: String,
    pub last: Option<String>,
    /// What a screen reader says.
    pub label: String,
}

/// The limit a value is held against, as a number: `max`, else the
/// baseline with its allowed increase, else `min`.
fn limit(cfg: Option<&AnalysisConfig>, a: &AnalysisResult) -> Option<f64> {
    let cfg = cfg?;
    cfg.max
        .or_else(|| {
            let (b, inc) = (a.baseline?, cfg.max_increase?);
            Some(b + b.abs() * inc)
        })
        .or(cfg.min)
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

/// The chart of one analysis; `cfg` is its configuration, if it still has one.
pub fn chart(a: &AnalysisResult, cfg: Option<&AnalysisConfig>) -> Chart {
    let limit = limit(cfg, a);
    let t_max = a.samples.iter().map(|(t, _)| *t).max().unwrap_or(0).max(1) as f64;
    let v_max = a
        .samples
        .iter()
        .filter_map(|(_, v)| *v)
        .chain(limit)
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let v_max = if v_max <= 0.0 { 1.0 } else { v_max * 1.15 };
    let x = |t: u32| PAD + (t as f64 / t_max) * (W - 2.0 * PAD);
    let y = |v: f64| H - PAD - (v.clamp(0.0, v_max) / v_max) * (H - 2.0 * PAD);
    let with_data: Vec<(u32, f64)> = a
        .samples
        .iter()
        .filter_map(|(t, v)| v.filter(|v| v.is_finite()).map(|v| (*t, v)))
        .collect();
    let dots: Vec<(String, String)> = with_data
        .iter()
        .map(|(t, v)| (fmt(x(*t)), fmt(y(*v))))
        .collect();
    let points = dots
        .iter()
        .map(|(x, y)| format!("{x},{y}"))
        .collect::<Vec<_>>()
        .join(" ");
    let gaps = a
        .samples
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(t, _)| fmt(x(*t)))
        .collect();
    let threshold = cfg.map(|c| c.threshold()).filter(|t| !t.is_empty());
    let last = a.last_value().map(num);
    Chart {
        name: a.name.clone(),
        release: a.sha.get(..10).unwrap_or(&a.sha).to_string(),
        verdict: a.verdict.clone(),
        points,
        dots,
        gaps,
        threshold_y: limit.map(|l| fmt(y(l))),
        label: format!(
            "{}: {} samples, last {}{}; {}",
            a.name,
            a.samples.len(),
            last.as_deref().unwrap_or("no data"),
            threshold
                .as_deref()
                .map(|t| format!(", threshold {t}"))
                .unwrap_or_default(),
            a.verdict
        ),
        threshold,
        deploy_x: fmt(x(0)),
        last,
    }
}

/// Charts of every analysis of the current attempt, last watch first.
pub fn charts(analyses: &[AnalysisResult], cfg: &[AnalysisConfig]) -> Vec<Chart> {
    analyses
        .iter()
        .rev()
        .map(|a| chart(a, cfg.iter().find(|c| c.name == a.name)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(samples: Vec<(u32, Option<f64>)>) -> AnalysisResult {
        AnalysisResult {
            name: "5xx ratio".into(),
            sha: "a".repeat(40),
            at: jiff::Timestamp::from_second(0).unwrap_or_default(),
            samples,
            baseline: None,
            verdict: "fail".into(),
            query: "q".into(),
            failed: None,
        }
    }

    #[test]
    fn samples_threshold_and_deploy_moment_land_inside_the_box() {
        let c = chart(
            &result(vec![(0, Some(0.001)), (5, None), (10, Some(0.2))]),
            None,
        );
        assert_eq!(c.dots.len(), 2);
        assert_eq!(c.gaps.len(), 1);
        assert_eq!(c.deploy_x, "4.0");
        // The highest value is near the top, the lowest near the bottom.
        let ys: Vec<f64> = c
            .dots
            .iter()
            .map(|(_, y)| y.parse().unwrap_or(-1.0))
            .collect();
        assert!(
            ys[1] < ys[0] && ys.iter().all(|y| (0.0..=H).contains(y)),
            "{ys:?}"
        );
        assert!(c.threshold_y.is_none());
        assert!(c.label.contains("last 0.2"), "{}", c.label);
    }

    #[test]
    fn the_threshold_line_is_the_configured_max() {
        let cfg = hotfix_core::config::Config::parse(
            "[[analysis]]\nname = \"5xx ratio\"\nprovider = \"command\"\ncommand = \"./m.sh\"\nmax = 0.01\n",
        )
        .expect("config");
        let c = charts(
            &[result(vec![(0, Some(0.005)), (5, Some(0.02))])],
            &cfg.analysis,
        );
        let c = &c[0];
        assert_eq!(c.threshold.as_deref(), Some("max 0.01"));
        let t: f64 = c
            .threshold_y
            .as_deref()
            .unwrap_or("x")
            .parse()
            .unwrap_or(-1.0);
        let ys: Vec<f64> = c
            .dots
            .iter()
            .map(|(_, y)| y.parse().unwrap_or(-1.0))
            .collect();
        // 0.005 is under the line (larger y), 0.02 above it.
        assert!(ys[0] > t && ys[1] < t, "{ys:?} {t}");
    }
}
