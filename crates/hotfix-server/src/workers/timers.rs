//! Timers: reminders that must fire once, whichever replica is up.
//!
//! - **post-mortem reminder**: production has been healthy for
//!   [`REMINDER_AFTER_S`] and nobody scheduled the post-mortem ("schedule
//!   post-mortem for next day"): the tech leads are reminded of the due time;
//! - **post-mortem overdue**: the post-mortem window of the policy
//!   (`[policy.targets] postmortem_within`, 24 h by default) has passed
//!   without one being scheduled, or the scheduled one is past due and the
//!   incident is still open: the tech leads are paged;
//! - **triage overdue**: an incident reported (by an alert, Slack, the API)
//!   is still in triage (nobody confirmed, declined or merged it) past the
//!   policy's target (`[policy.targets] triage`, 5 min by default): a
//!   `triage_overdue` event, whose message pages the tech leads; once
//!   (admission refuses a second);
//! - **nobody took it**: a confirmed incident (phase `reported`) has had no
//!   branch for [`UNCLAIMED_AFTER_S`] since its confirmation: the on-call
//!   people are paged again. While it is in triage the decision is the
//!   tech leads' (the timer above), not the on-call developer's.
//!
//! One replica scans at a time (the `timers` lease, which its holder renews
//! each round and another replica takes over once it lapses), but the lease
//! is only there to save work: what makes a timer fire once is that it is
//! decided again on the incident's fresh state inside a compare-and-set
//! append ([`ops::append_with`]) and fires only if its event is not in the
//! log yet. Two scanners (a lease that lapsed mid-round, a replica whose
//! clock runs ahead) still append it once, and its notifications are written
//! in the same transaction as the event, so they go out once too.

use hotfix_core::admit::{Actor, Door};
use hotfix_core::event::EventKind;
use hotfix_core::id::IncidentId;
use hotfix_core::policy::Policy;
use hotfix_core::state::{IncidentState, Phase};
use jiff::Timestamp;

use crate::{ApiError, AppState, ops};

/// Production healthy this long without a post-mortem scheduled: remind.
pub const REMINDER_AFTER_S: i64 = 60 * 60;
/// Confirmed this long without a branch: page the on-call people again.
pub const UNCLAIMED_AFTER_S: i64 = 15 * 60;
/// The `source` of the events timers append (an `external_update`).
pub const SOURCE: &str = "hotfix";
/// The actor of those events.
pub const ACTOR: &str = "hotfix server (timers)";
/// The lease one replica holds while it scans.
pub const LEASE: &str = "timers";

/// The timers the server keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    PostmortemReminder,
    PostmortemOverdue,
    Unclaimed,
    /// Appended as `triage_overdue` (not an `external_update`).
    TriageOverdue,
}

impl Timer {
    /// The `what` of its `external_update` event: how the log says it fired.
    pub fn what(self) -> &'static str {
        match self {
            Timer::PostmortemReminder => "post-mortem reminder",
            Timer::PostmortemOverdue => "post-mortem overdue",
            Timer::Unclaimed => "on call paged again",
            Timer::TriageOverdue => "triage overdue",
        }
    }

    /// The `step` of its notification.
    pub fn step(self) -> &'static str {
        match self {
            Timer::PostmortemReminder => "postmortem_reminder",
            Timer::PostmortemOverdue => "postmortem_overdue",
            Timer::Unclaimed => "repaged",
            Timer::TriageOverdue => "triage_overdue",
        }
    }
}

/// Has `t` fired on this incident already (its event is in the log)?
pub fn fired(s: &IncidentState, t: Timer) -> bool {
    if t == Timer::TriageOverdue {
        return s.triage_overdue;
    }
    s.events.iter().any(|e| {
        matches!(&e.kind, EventKind::ExternalUpdate { source, what, .. }
            if source == SOURCE && what == t.what())
    })
}

fn window_s(policy: &Policy) -> i64 {
    i64::try_from(policy.targets.postmortem_within.0.as_secs()).unwrap_or(i64::MAX)
}

fn triage_s(policy: &Policy) -> i64 {
    i64::try_from(policy.targets.triage.0.as_secs()).unwrap_or(i64::MAX)
}

/// Since when a confirmed incident has waited for someone to take it: its
/// confirmation (the triage time is the tech leads', not the on-call's).
fn waiting_since(s: &IncidentState) -> Timestamp {
    s.triaged_at().unwrap_or(s.declared_at)
}

/// When the post-mortem is due: the scheduled due time, else the end of the
/// policy's window after resolution.
pub fn postmortem_due(s: &IncidentState, policy: &Policy) -> Option<Timestamp> {
    if let Some((_, due)) = &s.postmortem {
        return Some(*due);
    }
    let window = jiff::SignedDuration::try_from(policy.targets.postmortem_within.0).ok()?;
    s.resolved_at?.checked_add(window).ok()
}

/// A time as messages show it: to the second.
fn show(t: Timestamp) -> String {
    hotfix_core::timeline::utc(t)
}

/// The timers due on `s` at `now` that have not fired yet. Pure: the same
/// answer on every replica for the same log and time.
pub fn due(s: &IncidentState, policy: &Policy, now: Timestamp) -> Vec<Timer> {
    if s.is_closed() {
        return vec![];
    }
    let now_s = now.as_second();
    let mut v = vec![];
    let overdue = match (&s.postmortem, postmortem_due(s, policy)) {
        (Some((_, due)), _) => due.as_second() < now_s,
        (None, Some(due)) => due.as_second() <= now_s,
        (None, None) => false,
    };
    if overdue {
        if !fired(s, Timer::PostmortemOverdue) {
            v.push(Timer::PostmortemOverdue);
        }
    } else if s.postmortem.is_none()
        && let Some(resolved) = s.resolved_at
        && now_s - resolved.as_second() >= REMINDER_AFTER_S.min(window_s(policy))
        && !fired(s, Timer::PostmortemReminder)
    {
        v.push(Timer::PostmortemReminder);
    }
    if s.in_triage()
        && now_s - s.declared_at.as_second() >= triage_s(policy)
        && !fired(s, Timer::TriageOverdue)
    {
        v.push(Timer::TriageOverdue);
    }
    if s.phase(policy) == Phase::Reported
        && now_s - waiting_since(s).as_second() >= UNCLAIMED_AFTER_S
        && !fired(s, Timer::Unclaimed)
    {
        v.push(Timer::Unclaimed);
    }
    v
}

/// What a timer recorded as an `external_update` says: the event's detail,
/// the message and who it mentions. `None` for [`Timer::TriageOverdue`],
/// which has an event kind of its own and the core's message for it.
fn describe(
    st: &AppState,
    s: &IncidentState,
    t: Timer,
    now: Timestamp,
) -> Option<(String, String, Vec<String>)> {
    let id = s.id;
    let due = postmortem_due(s, &st.cfg.policy)
        .map(show)
        .unwrap_or_else(|| "now".into());
    let leads = st.cfg.team.tech_leads.clone();
    Some(match t {
        Timer::PostmortemReminder => (
            format!("due by {due}"),
            format!(
                ":memo: {id} is resolved; schedule its post-mortem (due by {due}): `hotfix postmortem {id}`."
            ),
            leads,
        ),
        Timer::PostmortemOverdue => {
            let text = match &s.postmortem {
                Some(_) => format!(
                    ":alarm_clock: {id}: the post-mortem was due by {due} and the incident is still open. Hold it, tick the checklist and close: `hotfix close {id}`."
                ),
                None => format!(
                    ":alarm_clock: {id}: the post-mortem is overdue (due by {due}) and not scheduled: `hotfix postmortem {id}`."
                ),
            };
            (format!("was due by {due}"), text, leads)
        }
        Timer::TriageOverdue => return None,
        Timer::Unclaimed => {
            let ago = hotfix_core::duration::span(now.as_second() - waiting_since(s).as_second());
            // A log from before triage existed has no confirmation.
            let since = if s.confirmed.is_some() {
                "confirmed"
            } else {
                "reported"
            };
            let on_call = if st.cfg.team.on_call.is_empty() {
                leads
            } else {
                st.cfg.team.on_call.clone()
            };
            (
                format!("nobody took {id} yet ({since} {ago} ago)"),
                format!(
                    ":pager: nobody took {id} [{}] yet ({since} {ago} ago). Take it: `{}`.",
                    s.severity.as_str().to_uppercase(),
                    hotfix_core::notify::take_command(s)
                ),
                on_call,
            )
        }
    })
}

/// Fires `t` on `id` if it is still due on the fresh log; true when this
/// call appended it (false: not due, or someone else fired it first).
pub fn fire(st: &AppState, id: IncidentId, t: Timer) -> Result<bool, ApiError> {
    let mut appended = false;
    ops::append_with(st, &Actor::new(ACTOR, Door::Timer), id, &mut |s| {
        appended = false;
        let now = st.clock.now();
        if !due(s, &st.cfg.policy, now).contains(&t) {
            return Ok((vec![], vec![]));
        }
        appended = true;
        let Some((detail, text, mentions)) = describe(st, s, t, now) else {
            // `triage_overdue`: the core's message for it pages the tech leads.
            return Ok((vec![EventKind::TriageOverdue], vec![]));
        };
        let event = EventKind::ExternalUpdate {
            source: SOURCE.into(),
            what: t.what().into(),
            detail,
        };
        Ok((
            vec![event],
            ops::custom_message(st, s, t.step(), text, mentions, now),
        ))
    })?;
    Ok(appended)
}

/// One round: if this replica holds the `timers` lease, fires what is due on
/// every open incident. Returns how many timers this call fired.
pub fn run(st: &AppState) -> usize {
    match super::take_lease(st, LEASE, &st.replica) {
        Ok(true) => {}
        Ok(false) => return 0,
        Err(e) => {
            tracing::error!(error = %e, "timers: cannot take the lease");
            return 0;
        }
    }
    let incidents = match ops::all(st) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "timers: cannot read the incidents");
            return 0;
        }
    };
    let now = st.clock.now();
    let mut n = 0;
    // `due` is empty for a closed incident.
    for s in incidents.iter() {
        for t in due(s, &st.cfg.policy, now) {
            match fire(st, s.id, t) {
                Ok(true) => n += 1,
                Ok(false) => {}
                Err(e) => tracing::error!(
                    timer = %t.what(),
                    incident = %s.id,
                    error = %e,
                    "timers: cannot fire"
                ),
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use hotfix_core::event::Event;
    use hotfix_core::severity::Severity;

    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    /// Declared with its branch cut (on `a…a`), then `kinds`.
    fn state(kinds: Vec<(i64, EventKind)>) -> IncidentState {
        declared("a".repeat(40), kinds)
    }

    /// Reported without a branch (in triage until confirmed), then `kinds`.
    fn reported(kinds: Vec<(i64, EventKind)>) -> IncidentState {
        declared(String::new(), kinds)
    }

    fn confirmed(t: i64) -> (i64, EventKind) {
        (
            t,
            EventKind::Confirmed {
                severity: Severity::Critical,
                public_text: None,
            },
        )
    }

    fn declared(base_sha: String, kinds: Vec<(i64, EventKind)>) -> IncidentState {
        let mut events = vec![Event {
            incident: IncidentId(1),
            seq: 1,
            at: at(0),
            actor: "dev@example.com".into(),
            kind: EventKind::Declared {
                name: "pdf".into(),
                title: "PDF".into(),
                severity: Severity::Critical,
                customer_facing: true,
                security: false,
                branch: "hotfix/pdf".into(),
                base_sha,
            },
        }];
        for (i, (t, k)) in kinds.into_iter().enumerate() {
            events.push(Event {
                incident: IncidentId(1),
                seq: i as u64 + 2,
                at: at(t),
                actor: "x".into(),
                kind: k,
            });
        }
        IncidentState::fold(&events).unwrap()
    }

    fn healthy(t: i64) -> (i64, EventKind) {
        (
            t,
            EventKind::HealthPassed {
                sha: "a".into(),
                probes: 3,
            },
        )
    }

    fn timer_event(t: Timer) -> (i64, EventKind) {
        (
            0,
            EventKind::ExternalUpdate {
                source: SOURCE.into(),
                what: t.what().into(),
                detail: String::new(),
            },
        )
    }

    #[test]
    fn a_reported_incident_nobody_takes_is_paged_again_once() {
        let p = Policy::default();
        // Confirmed after 10 minutes of triage: the on-call's 15 minutes
        // count from the confirmation.
        let c = 600;
        let s = reported(vec![confirmed(c)]);
        assert_eq!(s.phase(&p), Phase::Reported);
        assert!(due(&s, &p, at(c + UNCLAIMED_AFTER_S - 1)).is_empty());
        assert_eq!(
            due(&s, &p, at(c + UNCLAIMED_AFTER_S)),
            vec![Timer::Unclaimed]
        );
        let s = reported(vec![confirmed(c), timer_event(Timer::Unclaimed)]);
        assert!(due(&s, &p, at(c + UNCLAIMED_AFTER_S * 3)).is_empty());
        // In triage it is the tech leads' call, not the on-call's.
        let s = reported(vec![]);
        assert!(!due(&s, &p, at(UNCLAIMED_AFTER_S * 3)).contains(&Timer::Unclaimed));
        // A branch cut: taken.
        assert!(due(&state(vec![]), &p, at(UNCLAIMED_AFTER_S * 3)).is_empty());
    }

    #[test]
    fn an_incident_left_in_triage_past_its_target_pages_the_tech_leads_once() {
        let mut p = Policy::default();
        let target = 5 * 60;
        let s = reported(vec![]);
        assert_eq!(s.phase(&p), Phase::Triage);
        assert!(due(&s, &p, at(target - 1)).is_empty());
        assert_eq!(due(&s, &p, at(target)), vec![Timer::TriageOverdue]);
        // Fired: never again, however long it stays in triage.
        let s = reported(vec![(target, EventKind::TriageOverdue)]);
        assert!(fired(&s, Timer::TriageOverdue));
        assert!(due(&s, &p, at(target * 10)).is_empty());
        // Triaged in time (confirmed, or declined and closed): nothing.
        let s = reported(vec![confirmed(target - 1)]);
        assert!(due(&s, &p, at(target * 2)).is_empty());
        let declined = reported(vec![
            (
                60,
                EventKind::Declined {
                    reason: hotfix_core::event::DeclineReason::FalseAlarm,
                    duplicate_of: None,
                    note: String::new(),
                },
            ),
            (60, EventKind::Closed),
        ]);
        assert!(due(&declined, &p, at(target * 10)).is_empty());
        // The target is the policy's.
        p.targets.triage = hotfix_core::duration::HumanDuration::mins(2);
        assert_eq!(
            due(&reported(vec![]), &p, at(120)),
            vec![Timer::TriageOverdue]
        );
    }

    #[test]
    fn the_reminder_comes_an_hour_after_resolution_then_the_overdue_page() {
        let p = Policy::default();
        let s = state(vec![healthy(100)]);
        assert!(due(&s, &p, at(100 + REMINDER_AFTER_S - 1)).is_empty());
        assert_eq!(
            due(&s, &p, at(100 + REMINDER_AFTER_S)),
            vec![Timer::PostmortemReminder]
        );
        let day = 24 * 3600;
        // Overdue replaces the reminder when both are due at once.
        assert_eq!(due(&s, &p, at(100 + day)), vec![Timer::PostmortemOverdue]);
        let s = state(vec![healthy(100), timer_event(Timer::PostmortemReminder)]);
        assert!(due(&s, &p, at(100 + day - 1)).is_empty());
    }

    #[test]
    fn a_scheduled_post_mortem_is_overdue_only_past_its_due_time() {
        let p = Policy::default();
        let s = state(vec![
            healthy(100),
            (
                200,
                EventKind::PostmortemScheduled {
                    path: "pm.md".into(),
                    due: at(5000),
                },
            ),
        ]);
        assert!(
            due(&s, &p, at(5000)).is_empty(),
            "no reminder once scheduled"
        );
        assert_eq!(due(&s, &p, at(5001)), vec![Timer::PostmortemOverdue]);
        let closed = state(vec![healthy(100), (300, EventKind::Closed)]);
        assert!(due(&closed, &p, at(10 * 24 * 3600)).is_empty());
    }
}
