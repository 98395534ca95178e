//! The figures a team reviews after incidents, computed from the logs:
//! time to restore, each step against its target, how often the 30-minute
//! target is met, rollbacks per hotfix. Pure functions of folded incidents
//! (tested with hand-built logs); the log page and `GET /api/v1/stats`
//! show the same numbers.
//!
//! Incidents declined or merged at triage (phase `declined`) were never
//! hotfixes: they are counted apart ([`Declined`], by reason) and left out
//! of time to restore, the resolved target and every step but triage
//! itself (how long the tech leads took to decide is a triage figure).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Query, State};
use hotfix_core::event::EventKind;
use hotfix_core::policy::Policy;
use hotfix_core::severity::Severity;
use hotfix_core::state::IncidentState;
use hotfix_core::timeline::timeline;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::ops::{self, Seen};
use crate::{ApiError, AppState};

/// Time to restore: declared → production first healthy on the fix.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Restore {
    /// Incidents that were restored.
    pub count: usize,
    pub median_s: Option<i64>,
    pub p90_s: Option<i64>,
}

/// "Issue resolved in under 30 minutes".
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Target {
    pub target_s: i64,
    /// Restored within the target.
    pub met: usize,
    /// Restored later, or still not restored and already past it.
    pub missed: usize,
    /// `met / (met + missed)`; none while nothing is decided.
    pub share: Option<f64>,
}

/// One step of the process across incidents.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StepStat {
    pub step: &'static str,
    pub label: &'static str,
    /// Total elapsed since declared by which it should be done.
    pub target_s: Option<i64>,
    /// Incidents where the step is done.
    pub done: usize,
    /// Median elapsed since declared when it was done.
    pub median_s: Option<i64>,
    /// Done after its target.
    pub late: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Rollbacks {
    pub total: u64,
    /// Incidents whose fix reached main at least once (shipped hotfixes).
    pub hotfixes: usize,
    pub per_hotfix: Option<f64>,
}

/// Declined or merged at triage.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Declined {
    pub count: usize,
    /// `false_alarm`, `not_urgent`, `duplicate` (merges included).
    pub by_reason: BTreeMap<&'static str, usize>,
    /// Of them, merged into another incident.
    pub merged: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub incidents: usize,
    pub open: usize,
    /// Open incidents still in triage (counted in `open` too).
    pub triage: usize,
    /// Closed ones, declined ones included.
    pub closed: usize,
    /// Closed at triage without a hotfix; not in any figure below but the
    /// triage step.
    pub declined: Declined,
    pub by_severity: BTreeMap<&'static str, usize>,
    pub time_to_restore: Restore,
    pub resolved_target: Target,
    pub steps: Vec<StepStat>,
    pub rollbacks: Rollbacks,
}

/// The `p`-th percentile (0–100) by linear interpolation between the
/// closest ranks (the median of 10 and 20 is 15), rounded to a second.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (p / 100.0).clamp(0.0, 1.0) * (n - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let (a, b) = (sorted[lo] as f64, sorted[hi.min(n - 1)] as f64);
    Some((a + (b - a) * (rank - lo as f64)).round() as i64)
}

/// The figures over these incidents as of `now`.
pub fn compute<'a>(
    incidents: impl IntoIterator<Item = &'a IncidentState>,
    policy: &Policy,
    now: Timestamp,
) -> Stats {
    let target_s = i64::try_from(policy.targets.resolved.0.as_secs()).unwrap_or(i64::MAX);
    let mut count = 0;
    let mut open = 0;
    let mut triage = 0;
    let mut declined = Declined {
        count: 0,
        by_reason: BTreeMap::new(),
        merged: 0,
    };
    let mut by_severity: BTreeMap<&'static str, usize> = BTreeMap::new();
    // Not restored, still open and already past the "resolved" target.
    let mut overdue = 0;
    struct Acc {
        step: &'static str,
        label: &'static str,
        target_s: Option<i64>,
        done: Vec<i64>,
        late: usize,
    }
    let mut steps: Vec<Acc> = vec![];
    let mut rollbacks = 0u64;
    let mut hotfixes = 0;
    for s in incidents {
        count += 1;
        if !s.is_closed() {
            open += 1;
            if s.in_triage() {
                triage += 1;
            }
        }
        *by_severity.entry(s.severity.as_str()).or_insert(0) += 1;
        if let Some(d) = &s.declined {
            declined.count += 1;
            *declined.by_reason.entry(d.reason.as_str()).or_insert(0) += 1;
            if d.merged_into.is_some() {
                declined.merged += 1;
            }
        }
        for row in timeline(s, policy, now) {
            if row.step == "rolled_back" || (s.declined.is_some() && row.step != "triage") {
                continue;
            }
            // Still open and past the target: missed whatever happens
            // next. Closed without a fix in production (a false alarm,
            // given up): not a restore, so neither met nor missed.
            if row.step == "resolved" && !row.done && row.over && !s.is_closed() {
                overdue += 1;
            }
            let i = match steps.iter().position(|x| x.step == row.step) {
                Some(i) => i,
                None => {
                    steps.push(Acc {
                        step: row.step,
                        label: row.label,
                        target_s: row.target_s,
                        done: vec![],
                        late: 0,
                    });
                    steps.len() - 1
                }
            };
            if row.done {
                steps[i].done.push(row.elapsed_s);
                if row.over {
                    steps[i].late += 1;
                }
            }
        }
        if s.declined.is_some() {
            continue;
        }
        rollbacks += u64::from(s.rollbacks);
        if s.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Merged { .. }))
        {
            hotfixes += 1;
        }
    }
    for a in &mut steps {
        a.done.sort_unstable();
    }
    // Time to restore is the timeline's "Issue resolved" step: its done
    // rows are the restores, its late ones the restores that missed.
    let resolved = steps.iter().find(|a| a.step == "resolved");
    let restore: &[i64] = resolved.map_or(&[], |a| &a.done);
    let late = resolved.map_or(0, |a| a.late);
    let (met, missed) = (restore.len() - late, late + overdue);
    Stats {
        incidents: count,
        open,
        triage,
        closed: count - open,
        declined,
        by_severity,
        time_to_restore: Restore {
            count: restore.len(),
            median_s: percentile(restore, 50.0),
            p90_s: percentile(restore, 90.0),
        },
        resolved_target: Target {
            target_s,
            met,
            missed,
            share: (met + missed > 0).then(|| met as f64 / (met + missed) as f64),
        },
        steps: steps
            .iter()
            .map(|a| StepStat {
                step: a.step,
                label: a.label,
                target_s: a.target_s,
                done: a.done.len(),
                median_s: percentile(&a.done, 50.0),
                late: a.late,
            })
            .collect(),
        rollbacks: Rollbacks {
            total: rollbacks,
            hotfixes,
            per_hotfix: (hotfixes > 0).then(|| rollbacks as f64 / hotfixes as f64),
        },
    }
}

/// Which incidents a log page or a stats request is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Lowercased words that must all appear.
    pub words: Vec<String>,
    pub severity: Option<Severity>,
    /// `all` (default), `open` or `closed`.
    pub state: String,
}

/// The query string of `/log` and `/api/v1/stats`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FilterQuery {
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub page: Option<String>,
}

impl Filter {
    pub fn parse(q: &FilterQuery) -> Result<Filter, ApiError> {
        let text = q.q.as_deref().unwrap_or("").trim();
        if text.len() > 500 {
            return Err(ApiError::bad_request(
                "the search is at most 500 characters",
            ));
        }
        let severity = match q.severity.as_deref().map(str::trim) {
            None | Some("") | Some("all") => None,
            Some(s) => Some(match s {
                "critical" => Severity::Critical,
                "high" => Severity::High,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "severity `{other}` is not critical, high or all"
                    )));
                }
            }),
        };
        let state = match q.state.as_deref().map(str::trim) {
            None | Some("") => "all".to_string(),
            Some(s @ ("all" | "open" | "closed")) => s.to_string(),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "state `{other}` is not all, open or closed"
                )));
            }
        };
        Ok(Filter {
            words: text.split_whitespace().map(str::to_lowercase).collect(),
            severity,
            state,
        })
    }

    /// Whether `v` matches, on what its reader sees: the restricted view
    /// of a security incident is not found by a word it hides.
    pub fn matches(&self, v: &Seen) -> bool {
        let s = v.state();
        (match self.state.as_str() {
            "open" => !s.is_closed(),
            "closed" => s.is_closed(),
            _ => true,
        }) && self.severity.is_none_or(|v| v == s.severity)
            && self.words.iter().all(|w| v.search().contains(w.as_str()))
    }

    pub fn as_json(&self) -> Value {
        json!({
            "q": self.words.join(" "),
            "severity": self.severity.map(|s| s.as_str()),
            "state": self.state,
        })
    }
}

/// `GET /api/v1/stats[?q=&severity=&state=]`: the log page's figures as JSON.
#[utoipa::path(
    get,
    path = "/api/v1/stats",
    operation_id = "stats",
    tag = "operations",
    summary = "Team figures",
    description = "Time to restore, targets met, per-step medians, rollbacks: the dashboard's log page as JSON, over the incidents the filter selects.",
    params(
        ("q" = Option<String>, Query, description = "text in the id, title, branch or name (at most 500 characters)"),
        ("severity" = Option<String>, Query, description = "`critical`, `high` or `all`"),
        ("state" = Option<String>, Query, description = "`open`, `closed`, `triage` or `all`"),
    ),
    responses(
        (status = 200, description = "the figures", body = crate::openapi::StatsAnswer),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 503, response = crate::openapi::Unavailable),
    ),
)]
pub async fn api(
    State(st): State<AppState>,
    caller: Caller,
    q: Result<Query<FilterQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let filter = Filter::parse(&q)?;
    st.blocking(move |st| {
        let all = ops::all(st)?;
        let now = st.clock.now();
        let reader = ops::reader_of(&caller);
        let hits: Vec<Seen> = all.seen(&reader).filter(|v| filter.matches(v)).collect();
        let stats = compute(hits.iter().map(|v| v.state()), &st.cfg.policy, now);
        Ok(Json(json!({
            "filter": filter.as_json(),
            "generated_at": now,
            "stats": stats,
        })))
    })
    .await
}
