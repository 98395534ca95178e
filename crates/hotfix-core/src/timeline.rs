//! Each step's elapsed time since the incident was declared, against the
//! process targets.

use jiff::Timestamp;
use serde::Serialize;

use crate::event::EventKind;
use crate::guards::missing_approvals;
use crate::policy::Policy;
use crate::state::IncidentState;

/// How a step stands: what `status` marks it with, the dashboard colours
/// it by and the post-mortem says of it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Done within its target (or it has none).
    Done,
    /// Done after its target.
    Late,
    /// Not done, still within its target.
    Pending,
    /// Not done and already past its target.
    Overdue,
    /// Undone by a rollback: production no longer runs what this step
    /// delivered (the deploy, the backport), or the row is the rollback
    /// itself. Neither done nor pending: a new attempt does it again.
    RolledBack,
}

impl StepState {
    /// The words for it.
    pub fn label(self) -> &'static str {
        match self {
            StepState::Done => "done",
            StepState::Late => "done late",
            StepState::Pending => "pending",
            StepState::Overdue => "overdue",
            StepState::RolledBack => "rolled back",
        }
    }
}

/// One row of the timeline (`status --json` `timeline[]`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TimelineStep))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub step: &'static str,
    pub label: &'static str,
    /// When it was done; `None` while it is not.
    pub at: Option<Timestamp>,
    /// Seconds since declared when done, or so far when not.
    pub elapsed_s: i64,
    pub target_s: Option<i64>,
    pub done: bool,
    /// Done late, or not done and already past its target.
    pub over: bool,
    /// `done`, `over` and a rollback in one word.
    pub state: StepState,
    /// What else the row says: for the production deploy, how it got its
    /// build (the tested build promoted, or built in how long and why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The timeline as of `now`. Steps of the current attempt only; rollbacks appear
/// as rows of their own.
pub fn timeline(s: &IncidentState, policy: &Policy, now: Timestamp) -> Vec<Step> {
    let t = &policy.targets;
    let start = s.declared_at;
    let attempt_from = s
        .events
        .iter()
        .rposition(|e| matches!(e.kind, EventKind::AttemptStarted { .. }))
        .unwrap_or(0);
    let current = &s.events[attempt_from..];
    let last = |pred: &dyn Fn(&EventKind) -> bool| {
        current.iter().rev().find(|e| pred(&e.kind)).map(|e| e.at)
    };
    let head = s.head_sha.clone().unwrap_or_default();

    // A reported incident is triaged when a person decides (or cuts its
    // branch); one declared with its branch was triaged by declaring it.
    let triage = s.triaged_at();
    let fix = last(&|k| matches!(k, EventKind::Pushed { .. }));
    let preview = last(&|k| matches!(k, EventKind::SmokePassed { sha, .. } if *sha == head));
    let approval = if s.head_sha.is_some() && missing_approvals(s, policy).is_empty() {
        s.fresh_approvals().iter().map(|a| a.at).max()
    } else if s.merge_sha.is_some() {
        // Merged: approvals were enough when it merged.
        s.approvals.iter().map(|a| a.at).max()
    } else {
        None
    };
    let deploy = last(&|k| matches!(k, EventKind::HealthPassed { .. }));
    let backport = last(&|k| matches!(k, EventKind::Backported { .. }));
    // When production went back to the previous release in this attempt:
    // from then on its deploy (and a backport, reverted with it) no longer
    // counts as done, and is not pending either.
    let rolled_back = last(&|k| {
        matches!(
            k,
            EventKind::RolledBack { .. }
                | EventKind::RollbackStep {
                    step: crate::event::RollbackStep::Production { .. },
                    ..
                }
        )
    })
    .filter(|_| s.rollback.is_some() || s.rollback_progress.as_ref().is_some_and(|p| p.production));
    // Undone: done before the rollback (or never), not done again after it.
    let undone = |at: Option<Timestamp>| {
        rolled_back
            .filter(|r| at.is_none_or(|a| a <= *r))
            .map(|r| at.unwrap_or(r))
    };

    let mut rows = vec![];
    let mut push = |step: &'static str,
                    label: &'static str,
                    at: Option<Timestamp>,
                    target: Option<std::time::Duration>,
                    undone: Option<Timestamp>| {
        let done = at.is_some() && undone.is_none();
        let until = undone.or(at).unwrap_or(now);
        let elapsed_s = until.as_second() - start.as_second();
        let target_s = target.map(secs);
        let over = undone.is_none() && target_s.is_some_and(|t| elapsed_s > t);
        let state = match (undone, done, over) {
            (Some(_), _, _) => StepState::RolledBack,
            (None, true, false) => StepState::Done,
            (None, true, true) => StepState::Late,
            (None, false, false) => StepState::Pending,
            (None, false, true) => StepState::Overdue,
        };
        rows.push(Step {
            step,
            label,
            at,
            elapsed_s,
            target_s,
            done,
            over,
            state,
            detail: None,
        });
    };
    push("triage", "Alert & triage", triage, Some(t.triage.0), None);
    push("fix", "Create branch & fix", fix, Some(t.fix.0), None);
    push(
        "preview",
        "Test in preview",
        preview,
        Some(t.preview.0),
        None,
    );
    push(
        "approval",
        "Emergency approval",
        approval,
        Some(t.approval.0),
        None,
    );
    push(
        "deploy",
        "Production deploy",
        deploy,
        Some(t.deploy.0),
        undone(deploy),
    );
    // How production got its build, once it runs the merge.
    let build = current.iter().rev().find_map(|e| match &e.kind {
        EventKind::Deployed {
            build: Some(b),
            sha,
            ..
        } if s.merge_sha.as_deref() == Some(sha.as_str()) => Some(b.summary()),
        _ => None,
    });

    // A backport the rollback reverted is undone; one never made stays to do.
    let backport_undone = backport.and_then(|b| undone(Some(b)));
    push(
        "backport",
        "Backport to develop",
        backport,
        Some(t.backport.0),
        backport_undone,
    );
    push(
        "resolved",
        "Issue resolved",
        s.resolved_at,
        Some(t.resolved.0),
        None,
    );
    if let Some(row) = rows.iter_mut().find(|r| r.step == "deploy") {
        row.detail = build.filter(|b| !b.is_empty());
    }
    for e in &s.events {
        if let EventKind::RolledBack { .. } = e.kind {
            rows.push(Step {
                step: "rolled_back",
                label: "Rolled back",
                at: Some(e.at),
                elapsed_s: e.at.as_second() - start.as_second(),
                target_s: None,
                done: true,
                over: false,
                state: StepState::RolledBack,
                detail: None,
            });
        }
    }
    rows
}

/// When something happened, for people: `2026-12-03 11:42:07 UTC`. Whole
/// seconds (a timestamp's nanoseconds are noise in a message) and one time
/// zone for everyone on the incident.
pub fn utc(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{DiffStat, Event, RollbackHealth, RollbackStep};
    use crate::id::IncidentId;
    use crate::severity::Severity;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// Declared, fixed, merged, deployed and healthy at 10 minutes; then,
    /// if `rolled_back`, production back on main at 20 minutes.
    fn shipped(rolled_back: bool) -> IncidentState {
        let (head, merge, main) = ("b".repeat(40), "c".repeat(40), "a".repeat(40));
        let mut kinds = vec![
            (
                0,
                EventKind::Declared {
                    name: "pdf".into(),
                    title: "PDF export crashes".into(),
                    severity: Severity::Critical,
                    customer_facing: true,
                    security: false,
                    branch: "hotfix/pdf".into(),
                    base_sha: main.clone(),
                },
            ),
            (
                120,
                EventKind::Pushed {
                    sha: head.clone(),
                    commits: vec![],
                    diff: DiffStat::default(),
                },
            ),
            (
                300,
                EventKind::Merged {
                    merge_sha: merge.clone(),
                    head_sha: head,
                    previous_main: main.clone(),
                    previous_deployment: None,
                    source: "cli".into(),
                },
            ),
            (
                540,
                EventKind::Deployed {
                    sha: merge.clone(),
                    environment: "production".into(),
                    deployment: None,
                    previous_deployment: None,
                    build: None,
                },
            ),
            (
                600,
                EventKind::HealthPassed {
                    sha: merge,
                    probes: 3,
                },
            ),
        ];
        if rolled_back {
            let step = |step| EventKind::RollbackStep {
                step,
                reason: "exports time out".into(),
                automatic: false,
                forced: None,
            };
            kinds.push((
                1200,
                step(RollbackStep::Production {
                    previous_deployment: None,
                    sha: Some(main.clone()),
                    health: Some(RollbackHealth {
                        healthy: true,
                        probes: 1,
                        detail: "status 200".into(),
                    }),
                }),
            ));
            kinds.push((
                1201,
                EventKind::RolledBack {
                    reason: "exports time out".into(),
                    automatic: false,
                    main_revert: Some("d".repeat(40)),
                    develop_revert: None,
                    forced: None,
                },
            ));
        }
        let events: Vec<Event> = kinds
            .into_iter()
            .enumerate()
            .map(|(i, (t, kind))| Event {
                incident: IncidentId(1),
                seq: i as u64 + 1,
                at: at(t),
                actor: "dev@example.com".into(),
                kind,
            })
            .collect();
        IncidentState::fold(&events).unwrap_or_else(|e| panic!("{e}"))
    }

    fn row<'a>(rows: &'a [Step], step: &str) -> &'a Step {
        rows.iter()
            .find(|r| r.step == step)
            .unwrap_or_else(|| panic!("no {step} row"))
    }

    #[test]
    fn a_healthy_deploy_is_done() {
        let rows = timeline(&shipped(false), &Policy::default(), at(1500));
        let d = row(&rows, "deploy");
        assert_eq!((d.done, d.state, d.elapsed_s), (true, StepState::Done, 600));
        assert_eq!(row(&rows, "backport").state, StepState::Pending);
        assert!(rows.iter().all(|r| r.step != "rolled_back"));
    }

    #[test]
    fn a_rolled_back_deploy_is_neither_done_nor_pending() {
        let s = shipped(true);
        // 35 minutes in: past the targets for resolving (30m) and for the
        // deploy (32m, which a rolled-back deploy is not held to), not yet
        // the backport's (37m).
        let rows = timeline(&s, &Policy::default(), at(2100));
        let d = row(&rows, "deploy");
        assert_eq!(d.state, StepState::RolledBack);
        assert!(!d.done && !d.over, "{d:?}");
        // When it was deployed still shows; the clock stopped there.
        assert_eq!(d.elapsed_s, 600);
        let r = row(&rows, "rolled_back");
        assert_eq!((r.state, r.elapsed_s), (StepState::RolledBack, 1201));
        // The incident is live again: resolving it is still to do.
        assert_eq!(row(&rows, "resolved").state, StepState::Overdue);
        // A backport never made stays to do.
        assert_eq!(row(&rows, "backport").state, StepState::Pending);
        // Past the deploy's 32-minute target, yet not over it: undone.
        assert!(2100 > row(&rows, "deploy").target_s.unwrap_or(0));
        // And what runs now is the previous release, healthy.
        let now = s.rolled_back_to.as_ref().unwrap_or_else(|| panic!("none"));
        assert_eq!(now.sha.as_deref(), Some("a".repeat(40).as_str()));
        assert_eq!(now.health.as_ref().map(|h| h.healthy), Some(true));
    }

    #[test]
    fn the_deploy_row_says_how_production_got_its_build() {
        let with_build = |b: Option<crate::event::DeployBuild>| {
            let mut events = shipped(false).events;
            for e in &mut events {
                if let EventKind::Deployed { build, .. } = &mut e.kind {
                    *build = b.clone();
                }
            }
            IncidentState::fold(&events).unwrap_or_else(|e| panic!("{e}"))
        };
        let old = timeline(&with_build(None), &Policy::default(), at(1500));
        assert_eq!(row(&old, "deploy").detail, None);
        let tested = with_build(Some(crate::event::DeployBuild {
            tested: true,
            built: false,
            from_sha: Some("b".repeat(40)),
            build_ms: Some(35),
            note: None,
        }));
        let rows = timeline(&tested, &Policy::default(), at(1500));
        assert_eq!(
            row(&rows, "deploy").detail.as_deref(),
            Some("the tested build of bbbbbbbbbb promoted (no build, 35ms)")
        );
        assert_eq!(row(&rows, "preview").detail, None);
        let v = serde_json::to_value(row(&rows, "deploy")).unwrap_or_default();
        assert!(v["detail"].as_str().is_some_and(|d| d.contains("no build")));
        let v = serde_json::to_value(row(&old, "deploy")).unwrap_or_default();
        assert!(v.get("detail").is_none(), "{v}");
    }

    #[test]
    fn times_read_to_the_second_in_utc() {
        let t: Timestamp = "2026-12-03T11:42:07.123456789Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(utc(t), "2026-12-03 11:42:07 UTC");
    }
}
