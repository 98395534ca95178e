//! `provider = "platform"`: the embedded platform's own counters of the
//! traffic through its production proxy (`GET /v1/stats`), so analysis
//! needs nothing installed.
//!
//! The counters are cumulative since each release started serving; the
//! window of a measurement is the time since the previous measurement,
//! computed by differencing two snapshots (the source keeps the last one).
//! The first measurement has no earlier snapshot and uses the counters
//! since the release started: for a release that just went live, that is
//! exactly the time since the deploy. A counter smaller than before means
//! the platform restarted; the new counts then stand alone.
//!
//! `baseline = "previous"`: the same metric on the release the new one is
//! compared with: production while the new one is a canary, otherwise the
//! warm previous release (the one of `previous_sha` when given). After a
//! full switch the previous release receives no traffic, so when it has
//! no requests in the window its baseline is everything it served since
//! it started (its time as production).

use std::sync::Mutex;

use hotfix_core::analysis::{Controlled, Measurement, PlatformMetric};
use hotfix_platform::{PlatformStats, ReleaseStats};

use super::{AnalysisError, MeasureContext, MetricSource};

pub struct PlatformSource {
    metric: PlatformMetric,
    route: Option<String>,
    baseline: bool,
    /// The control-API client, made once (it reads `control.json` and the
    /// token) and made again after a failure (the platform restarted on
    /// another port or with another token). Its own short timeouts apply.
    client: Mutex<Option<hotfix_platform::Client>>,
    last: Mutex<Option<PlatformStats>>,
}

impl PlatformSource {
    pub fn new(metric: PlatformMetric, route: Option<String>, baseline: bool) -> PlatformSource {
        PlatformSource {
            metric,
            route,
            baseline,
            client: Mutex::new(None),
            last: Mutex::new(None),
        }
    }

    /// The platform's stats through the kept client.
    fn stats(&self, dir: &std::path::Path) -> Result<PlatformStats, AnalysisError> {
        let mut client = self
            .client
            .lock()
            .map_err(|_| AnalysisError::BadAnswer("the platform client is lost".into()))?;
        // Not put back after a failure: the next measurement connects again.
        let c = match client.take() {
            Some(c) => c,
            None => hotfix_platform::Client::connect(dir)
                .map_err(|e| AnalysisError::Unreachable(e.to_string()))?,
        };
        let stats = c
            .stats()
            .map_err(|e| AnalysisError::Unreachable(e.to_string()))?;
        *client = Some(c);
        Ok(stats)
    }

    /// The measurement from a new snapshot, given the one before (pure).
    pub fn from_snapshots(
        &self,
        now: &PlatformStats,
        before: Option<&PlatformStats>,
        cx: &MeasureContext,
    ) -> Result<Measurement, AnalysisError> {
        let measured = pick_measured(now, &cx.sha).ok_or_else(|| {
            let serving: Vec<String> = now
                .releases
                .iter()
                .map(|r| format!("{} {}", r.role, short(&r.sha)))
                .collect();
            AnalysisError::Query(format!(
                "the platform serves no production or canary release of {} (it serves: {})",
                short(&cx.sha),
                if serving.is_empty() {
                    "nothing".to_string()
                } else {
                    serving.join(", ")
                }
            ))
        })?;
        let at_now = parse_at(&now.at);
        // The measured release.
        let prev = before.and_then(|b| find(b, &measured.id));
        let w = match prev {
            Some(p) if !is_reset(measured, p) => Window {
                counts: Counts::delta(measured, p, self.route.as_deref()),
                secs: secs_between(before.and_then(|b| parse_at(&b.at)), at_now),
            },
            _ => Window {
                counts: Counts::of(measured, self.route.as_deref()),
                secs: secs_between(Some(cx.deployed_at), at_now),
            },
        };
        let value = self.value_of(&w);
        let baseline = if self.baseline {
            pick_baseline(now, measured, cx.previous_sha.as_deref()).and_then(|b| {
                let windowed = before
                    .and_then(|bs| find(bs, &b.id))
                    .filter(|p| !is_reset(b, p))
                    .map(|p| Window {
                        counts: Counts::delta(b, p, self.route.as_deref()),
                        secs: secs_between(before.and_then(|bs| parse_at(&bs.at)), at_now),
                    });
                match windowed {
                    Some(w) if w.counts.requests >= MIN_BASELINE_REQUESTS => self.value_of(&w),
                    // Too little traffic in the window to stand for it (a
                    // full switch leaves a few in-flight stragglers; a p99 of
                    // twenty requests is noise): all it served.
                    _ => self.value_of(&Window {
                        counts: Counts::of(b, self.route.as_deref()),
                        secs: None,
                    }),
                }
            })
        } else {
            None
        };
        let controlled = self.controlled(now, before, measured, &w);
        Ok(Measurement {
            value,
            baseline,
            controlled,
        })
    }

    /// A canary's errors beside production's over the same window (both
    /// differenced from the same two snapshots), for the error ratio: the
    /// tracker aborts at once when the canary is significantly worse. No
    /// control on the first measurement (no common window yet) or after a
    /// restart.
    fn controlled(
        &self,
        now: &PlatformStats,
        before: Option<&PlatformStats>,
        measured: &ReleaseStats,
        w: &Window,
    ) -> Option<Controlled> {
        if self.metric != PlatformMetric::ErrorRatio || measured.role != "canary" {
            return None;
        }
        let before = before?;
        // The canary's own window must be a difference too.
        find(before, &measured.id).filter(|p| !is_reset(measured, p))?;
        let control = now
            .releases
            .iter()
            .find(|r| r.role == "production" && r.id != measured.id)?;
        let control_before = find(before, &control.id).filter(|p| !is_reset(control, p))?;
        let c = Counts::delta(control, control_before, self.route.as_deref());
        Some(Controlled {
            errors: w.counts.errors,
            requests: w.counts.requests,
            control_errors: c.errors,
            control_requests: c.requests,
        })
    }

    fn value_of(&self, w: &Window) -> Option<f64> {
        let c = &w.counts;
        match self.metric {
            PlatformMetric::ErrorRatio => {
                (c.requests > 0).then(|| c.errors as f64 / c.requests as f64)
            }
            PlatformMetric::RequestRate => {
                w.secs.filter(|s| *s > 0.0).map(|s| c.requests as f64 / s)
            }
            PlatformMetric::LatencyP99 => quantile(0.99, &c.buckets),
            PlatformMetric::LatencyP50 => quantile(0.5, &c.buckets),
        }
    }
}

impl MetricSource for PlatformSource {
    fn measure(&self, cx: &MeasureContext) -> Result<Measurement, AnalysisError> {
        let dir = cx.platform_dir.as_deref().ok_or_else(|| {
            AnalysisError::Unreachable(
                "provider platform needs the embedded platform's state directory ([deploy] provider = \"local\"; for the team server: HOTFIX_PLATFORM_DIR on the platform's host)"
                    .into(),
            )
        })?;
        let stats = self.stats(dir)?;
        let mut last = self
            .last
            .lock()
            .map_err(|_| AnalysisError::BadAnswer("the last platform snapshot is lost".into()))?;
        let m = self.from_snapshots(&stats, last.as_ref(), cx);
        *last = Some(stats);
        m
    }
}

/// The counts of one window.
#[derive(Debug, Clone, PartialEq)]
struct Counts {
    requests: u64,
    errors: u64,
    /// Cumulative `(le, count)`, empty with a route (no latency per route).
    buckets: Vec<(f64, u64)>,
}

struct Window {
    counts: Counts,
    /// Its length, when known.
    secs: Option<f64>,
}

impl Counts {
    fn of(r: &ReleaseStats, route: Option<&str>) -> Counts {
        match route {
            None => Counts {
                requests: r.requests,
                errors: r.errors_5xx,
                buckets: r.latency_buckets_ms.clone(),
            },
            Some(path) => {
                let (requests, errors) = route_counts(r, path);
                Counts {
                    requests,
                    errors,
                    buckets: vec![],
                }
            }
        }
    }

    fn delta(now: &ReleaseStats, before: &ReleaseStats, route: Option<&str>) -> Counts {
        let a = Counts::of(now, route);
        let b = Counts::of(before, route);
        let same_bounds = a.buckets.len() == b.buckets.len()
            && a.buckets.iter().zip(&b.buckets).all(|(x, y)| x.0 == y.0);
        Counts {
            requests: a.requests.saturating_sub(b.requests),
            errors: a.errors.saturating_sub(b.errors),
            buckets: if same_bounds {
                a.buckets
                    .iter()
                    .zip(&b.buckets)
                    .map(|(x, y)| (x.0, x.1.saturating_sub(y.1)))
                    .collect()
            } else {
                a.buckets
            },
        }
    }
}

/// A route that fell out of the top 50 counts as no requests.
fn route_counts(r: &ReleaseStats, path: &str) -> (u64, u64) {
    r.routes
        .iter()
        .find(|x| x.path == path)
        .map_or((0, 0), |x| (x.requests, x.errors_5xx))
}

/// The platform restarted (or the release did): its counters began again.
fn is_reset(now: &ReleaseStats, before: &ReleaseStats) -> bool {
    now.requests < before.requests || now.errors_5xx < before.errors_5xx
}

fn find<'a>(s: &'a PlatformStats, id: &str) -> Option<&'a ReleaseStats> {
    s.releases.iter().find(|r| r.id == id)
}

/// Full and abbreviated shas name the same commit.
fn same_sha(a: &str, b: &str) -> bool {
    let n = a.len().min(b.len());
    n >= 7 && a[..n].eq_ignore_ascii_case(&b[..n])
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The release judged: the canary of this sha, else production of it.
fn pick_measured<'a>(s: &'a PlatformStats, sha: &str) -> Option<&'a ReleaseStats> {
    let of = |role: &str| {
        s.releases
            .iter()
            .find(|r| r.role == role && same_sha(&r.sha, sha))
    };
    of("canary").or_else(|| of("production"))
}

/// What it is compared with: production beside a canary, else the
/// previous release (the one of `previous_sha` first).
fn pick_baseline<'a>(
    s: &'a PlatformStats,
    measured: &ReleaseStats,
    previous_sha: Option<&str>,
) -> Option<&'a ReleaseStats> {
    let role = if measured.role == "canary" {
        "production"
    } else {
        "previous"
    };
    let candidates = || {
        s.releases
            .iter()
            .filter(move |r| r.id != measured.id && r.role == role)
    };
    previous_sha
        .and_then(|p| candidates().find(|r| same_sha(&r.sha, p)))
        .or_else(|| candidates().next())
}

fn parse_at(at: &str) -> Option<jiff::Timestamp> {
    at.parse().ok()
}

fn secs_between(from: Option<jiff::Timestamp>, to: Option<jiff::Timestamp>) -> Option<f64> {
    let (from, to) = (from?, to?);
    let ms = to.as_millisecond() - from.as_millisecond();
    (ms > 0).then(|| ms as f64 / 1000.0)
}

/// The `q` quantile of a cumulative histogram, interpolated linearly
/// inside the bucket it falls in (as Prometheus' `histogram_quantile`
/// does); in the `+inf` bucket, the highest finite bound. `None` without
/// observations.
pub fn quantile(q: f64, buckets: &[(f64, u64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let (mut lower, mut below) = (0.0_f64, 0_u64);
    for &(le, count) in buckets {
        if count as f64 >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let inside = count.saturating_sub(below);
            if inside == 0 {
                return Some(le);
            }
            return Some(lower + (le - lower) * (rank - below as f64) / inside as f64);
        }
        if le.is_finite() {
            lower = le;
        }
        below = count;
    }
    Some(lower)
}

/// Requests a baseline window must hold to be used as the baseline; with
/// fewer, the baseline is everything the release served (measured in the
/// analysis benchmark: right after a switch the previous release answers
/// ~20 in-flight requests, whose p99 read 137–185 ms for a 99 ms service).
const MIN_BASELINE_REQUESTS: u64 = 50;

#[cfg(test)]
mod tests {
    use super::*;
    use hotfix_platform::RouteStats;
    use std::time::Duration;

    #[test]
    fn a_baseline_window_of_a_few_stragglers_is_not_the_baseline() {
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let p99 = PlatformSource::new(PlatformMetric::LatencyP99, None, true);
        let fast = [(10.0, 10_000), (100.0, 10_000), (INF, 10_000)];
        // 20 more requests since the last snapshot, all slow.
        let later = [(10.0, 10_000), (100.0, 10_020), (INF, 10_020)];
        let before = snap(
            "2026-01-01T00:00:04Z",
            vec![
                release("r1", &b, "previous", 10_000, 0, &fast),
                release("r2", &a, "production", 0, 0, &[(INF, 0)]),
            ],
        );
        let now = snap(
            "2026-01-01T00:00:05Z",
            vec![
                release("r1", &b, "previous", 10_020, 0, &later),
                release("r2", &a, "production", 100, 0, &fast),
            ],
        );
        let m = p99.from_snapshots(&now, Some(&before), &cx()).expect("m");
        // All it served (p99 under 10 ms), not the stragglers' ~99 ms.
        let base = m.baseline.expect("baseline");
        assert!(base < 10.0, "{base}");
    }

    fn release(
        id: &str,
        sha: &str,
        role: &str,
        requests: u64,
        errors: u64,
        buckets: &[(f64, u64)],
    ) -> ReleaseStats {
        ReleaseStats {
            id: id.into(),
            sha: sha.into(),
            role: role.into(),
            requests,
            errors_5xx: errors,
            latency_sum_ms: 0.0,
            latency_buckets_ms: buckets.to_vec(),
            routes: vec![RouteStats {
                path: "/pay".into(),
                requests: requests / 2,
                errors_5xx: errors,
            }],
        }
    }

    fn snap(at: &str, releases: Vec<ReleaseStats>) -> PlatformStats {
        PlatformStats {
            at: at.into(),
            releases,
        }
    }

    fn cx() -> MeasureContext {
        MeasureContext {
            deployed_at: "2026-01-01T00:00:00Z".parse().expect("ts"),
            now: "2026-01-01T00:00:10Z".parse().expect("ts"),
            window: Duration::from_secs(30),
            sha: "a".repeat(40),
            previous_sha: None,
            platform_dir: None,
        }
    }

    const INF: f64 = f64::INFINITY;

    #[test]
    fn the_quantile_interpolates_inside_its_bucket() {
        let b = [(10.0, 50), (100.0, 100), (INF, 100)];
        assert_eq!(quantile(0.5, &b), Some(10.0));
        assert_eq!(quantile(0.75, &b), Some(55.0));
        assert_eq!(quantile(0.99, &b), Some(98.2));
        assert_eq!(
            quantile(0.99, &[(10.0, 0), (INF, 10)]),
            Some(10.0),
            "+inf: the highest bound"
        );
        assert_eq!(quantile(0.5, &[(10.0, 0), (INF, 0)]), None);
    }

    #[test]
    fn the_window_is_the_difference_of_two_snapshots() {
        let a = "a".repeat(40);
        let src = PlatformSource::new(PlatformMetric::ErrorRatio, None, false);
        let s1 = snap(
            "2026-01-01T00:00:05Z",
            vec![release("r2", &a, "production", 100, 50, &[])],
        );
        let s2 = snap(
            "2026-01-01T00:00:10Z",
            vec![release("r2", &a, "production", 200, 60, &[])],
        );
        // The first measurement: everything since the release started.
        assert_eq!(
            src.from_snapshots(&s1, None, &cx()).expect("m").value,
            Some(0.5)
        );
        // Then only the window: 10 errors in 100 requests.
        assert_eq!(
            src.from_snapshots(&s2, Some(&s1), &cx()).expect("m").value,
            Some(0.1)
        );
        // No requests in the window: no data, not a ratio of 0.
        assert_eq!(
            src.from_snapshots(&s2, Some(&s2), &cx()).expect("m").value,
            None
        );
        // A restarted platform counts again from zero.
        let s3 = snap(
            "2026-01-01T00:00:15Z",
            vec![release("r2", &a, "production", 10, 1, &[])],
        );
        assert_eq!(
            src.from_snapshots(&s3, Some(&s2), &cx()).expect("m").value,
            Some(0.1)
        );

        let rate = PlatformSource::new(PlatformMetric::RequestRate, None, false);
        assert_eq!(
            rate.from_snapshots(&s2, Some(&s1), &cx()).expect("m").value,
            Some(20.0)
        );
        assert_eq!(
            rate.from_snapshots(&s1, None, &cx()).expect("m").value,
            Some(20.0),
            "since the deploy"
        );

        let route = PlatformSource::new(PlatformMetric::ErrorRatio, Some("/pay".into()), false);
        assert_eq!(
            route
                .from_snapshots(&s2, Some(&s1), &cx())
                .expect("m")
                .value,
            Some(0.2)
        );
        let other = PlatformSource::new(PlatformMetric::ErrorRatio, Some("/other".into()), false);
        assert_eq!(
            other
                .from_snapshots(&s2, Some(&s1), &cx())
                .expect("m")
                .value,
            None
        );
    }

    #[test]
    fn the_baseline_is_production_beside_a_canary_and_the_previous_release_after_a_switch() {
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let p99 = PlatformSource::new(PlatformMetric::LatencyP99, None, true);
        let fast = [(10.0, 100), (100.0, 100), (INF, 100)];
        let slow = [(10.0, 0), (100.0, 100), (INF, 100)];
        let canary = snap(
            "2026-01-01T00:00:10Z",
            vec![
                release("r1", &b, "production", 100, 0, &fast),
                release("r2", &a, "canary", 100, 0, &slow),
            ],
        );
        let m = p99.from_snapshots(&canary, None, &cx()).expect("m");
        assert_eq!((m.value, m.baseline), (Some(99.1), Some(9.9)));
        // After the switch the previous release serves nothing in the
        // window: its baseline is what it served as production.
        let s1 = snap(
            "2026-01-01T00:00:05Z",
            vec![
                release("r1", &b, "previous", 100, 0, &fast),
                release("r2", &a, "production", 100, 0, &slow),
            ],
        );
        let m = p99.from_snapshots(&s1, Some(&s1), &cx()).expect("m");
        assert_eq!((m.value, m.baseline), (None, Some(9.9)));
        let gone = snap(
            "2026-01-01T00:00:05Z",
            vec![release("r1", &b, "production", 1, 0, &fast)],
        );
        let e = p99
            .from_snapshots(&gone, None, &cx())
            .expect_err("not served");
        assert!(e.to_string().contains("serves no production or canary release of aaaaaaaaaaaa (it serves: production bbbbbbbbbbbb)"), "{e}");
    }

    #[test]
    fn a_canarys_error_window_comes_with_productions_over_the_same_window() {
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let ratio = PlatformSource::new(PlatformMetric::ErrorRatio, None, false);
        let s1 = snap(
            "2026-01-01T00:00:01Z",
            vec![
                release("r1", &b, "production", 1_000, 3, &[]),
                release("r2", &a, "canary", 10, 0, &[]),
            ],
        );
        let s2 = snap(
            "2026-01-01T00:00:02Z",
            vec![
                release("r1", &b, "production", 1_180, 3, &[]),
                release("r2", &a, "canary", 30, 3, &[]),
            ],
        );
        // The first measurement has no common window: no control.
        assert_eq!(
            ratio
                .from_snapshots(&s1, None, &cx())
                .expect("m")
                .controlled,
            None
        );
        let m = ratio.from_snapshots(&s2, Some(&s1), &cx()).expect("m");
        assert_eq!(m.value, Some(0.15));
        assert_eq!(
            m.controlled,
            Some(Controlled {
                errors: 3,
                requests: 20,
                control_errors: 0,
                control_requests: 180,
            })
        );
        // A full switch has no control, nor does a latency analysis.
        let full = snap(
            "2026-01-01T00:00:02Z",
            vec![
                release("r1", &b, "previous", 1_000, 3, &[]),
                release("r2", &a, "production", 30, 3, &[]),
            ],
        );
        let before = snap(
            "2026-01-01T00:00:01Z",
            vec![
                release("r1", &b, "previous", 1_000, 3, &[]),
                release("r2", &a, "production", 10, 0, &[]),
            ],
        );
        assert_eq!(
            ratio
                .from_snapshots(&full, Some(&before), &cx())
                .expect("m")
                .controlled,
            None
        );
        let p99 = PlatformSource::new(PlatformMetric::LatencyP99, None, false);
        assert_eq!(
            p99.from_snapshots(&s2, Some(&s1), &cx())
                .expect("m")
                .controlled,
            None
        );
    }

    #[test]
    fn without_the_platforms_directory_the_error_says_where_to_set_it() {
        let src = PlatformSource::new(PlatformMetric::ErrorRatio, None, false);
        let e = src.measure(&cx()).expect_err("no platform");
        assert!(
            matches!(&e, AnalysisError::Unreachable(m) if m.contains("HOTFIX_PLATFORM_DIR")),
            "{e}"
        );
    }
}
