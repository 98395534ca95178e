//! Probing production during the watch window after a deploy.
//!
//! A deploy the server hears about (a deployment webhook, a `deployed`
//! event appended through the API) is watched like the CLI's `ship` watches
//! it: `GET [deploy] health_url` every `probe_interval` for `watch`; 2xx is
//! healthy. `unhealthy_after` consecutive failures append `health_failed`
//! and page the on-call people and the tech leads; a window that ends on a
//! healthy probe appends `health_passed`. The server never rolls back (it
//! has no git): a person, or the CLI's automatic rollback, does.
//!
//! One replica probes a given incident (the `watch:HF-N` lease, renewed
//! each round); a replica that takes over from a dead one starts counting
//! afresh. Counts live in this replica's memory only (probes are not in the
//! log): what must be shared is the verdict, and that is appended once,
//! decided on the fresh log inside a compare-and-set append (a verdict
//! already there, from the CLI's own watch or another replica, wins).

use hotfix_core::admit::{Actor, Door};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use hotfix_core::event::EventKind;
use hotfix_core::id::IncidentId;
use hotfix_core::state::IncidentState;
use hotfix_engine::watch::{Analyses, Measurer};
use hotfix_providers::health::{Watch, watch};
use jiff::Timestamp;
use std::sync::Arc;

use crate::{ApiError, AppState, ops};

/// The actor of the verdicts.
pub const ACTOR: &str = "hotfix server (watch)";

/// The lease of one incident's watch.
pub fn lease_name(id: IncidentId) -> String {
    format!("watch:{id}")
}

/// What this replica saw of the watch of one deploy.
#[derive(Debug, Clone, Default)]
struct Probes {
    /// The deploy counted: a new deploy of the incident starts afresh.
    sha: String,
    probes: u32,
    failures: u32,
    last_at: Option<Instant>,
    last_error: String,
    /// The `[[analysis]]` of this watch, stepped as the CLI's watch steps
    /// them (the same code: `hotfix_engine::watch::Analyses`).
    analyses: Option<Analyses>,
    measurer: Option<Arc<Mutex<Measurer>>>,
}

/// This replica's probe counts, by incident (kept in [`crate::Inner`]):
/// the watches it was running at the end of its last round.
#[derive(Debug, Default)]
pub struct WatchMemory(Mutex<HashMap<IncidentId, Probes>>);

/// The deploy of `s` that is waiting for a health verdict: the sha and time
/// of its last `deployed` event, when no verdict on that sha, rollback, new
/// attempt or close came after it.
pub fn awaiting_verdict(s: &IncidentState) -> Option<(String, Timestamp)> {
    let (i, sha, at) = s.events.iter().enumerate().rev().find_map(|(i, e)| {
        if let EventKind::Deployed { sha, .. } = &e.kind {
            Some((i, sha.clone(), e.at))
        } else {
            None
        }
    })?;
    // The same rule `hotfix ship` follows after its own watch.
    let settled = s.events[i + 1..]
        .iter()
        .any(|e| e.kind.settles_deploy(&sha));
    (!settled).then_some((sha, at))
}

/// The verdict a watch reached.
enum Verdict {
    Passed(u32),
    Failed(String),
    /// Healthy, but an analysis had no data under `inconclusive = "pause"`:
    /// its measurements are recorded and a person decides (`hotfix ship`
    /// watches again, or `hotfix rollback`).
    Inconclusive(String),
}

/// One round: probes every deploy in its watch window that this replica
/// holds (or can take) the lease of, and appends the verdicts reached.
/// Returns how many verdicts this call appended.
pub fn run(st: &AppState) -> usize {
    let Some(url) = st.cfg.deploy.health_url.clone() else {
        return 0;
    };
    let incidents = match ops::all(st) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "watch: cannot read the incidents");
            return 0;
        }
    };
    let d = &st.cfg.deploy;
    // One probe, judged as the CLI's watch judges its probes (2xx is
    // healthy; otherwise why not, with the URL): a watch of no window that
    // gives up on its first failure. The counting across rounds is ours.
    let one_probe = Watch {
        url,
        window: Duration::ZERO,
        interval: Duration::ZERO,
        unhealthy_after: 1,
        timeout: d.probe_timeout.0,
    };
    let window = i64::try_from(d.watch.0.as_millis()).unwrap_or(i64::MAX);
    let now = st.clock.now();
    // Held for the round (one round at a time per replica). What is not
    // carried over into `kept` is forgotten: watches that reached their
    // verdict here or ended elsewhere (a verdict from the CLI, a rollback),
    // and those another replica holds (our counts would be stale).
    let mut memory = st.watch.0.lock().unwrap_or_else(PoisonError::into_inner);
    let mut last = std::mem::take(&mut *memory);
    let mut kept = HashMap::new();
    let mut verdicts = 0;
    for s in incidents.iter() {
        let Some((sha, deployed_at)) = awaiting_verdict(s) else {
            continue;
        };
        let mut mine = last
            .remove(&s.id)
            .filter(|p| p.sha == sha)
            .unwrap_or_else(|| Probes {
                sha: sha.clone(),
                ..Probes::default()
            });
        let in_window = now.as_millisecond() - deployed_at.as_millisecond() < window;
        // After the window, only a watch this replica was running goes on
        // (to its verdict); a deploy nobody watched in time is left to people.
        if !in_window && mine.probes == 0 {
            continue;
        }
        let name = lease_name(s.id);
        match super::take_lease(st, &name, &st.replica) {
            Ok(true) => {}
            Ok(false) => continue, // another replica watches it
            Err(e) => {
                tracing::error!(lease = %name, error = %e, "watch: cannot take the lease");
                continue;
            }
        }
        let due = mine
            .last_at
            .is_none_or(|t| t.elapsed() >= d.probe_interval.0);
        if due {
            mine.probes += 1;
            mine.last_at = Some(Instant::now());
            match watch(&one_probe, |_, _| {}) {
                Ok(_) => mine.failures = 0,
                Err(e) => {
                    mine.failures += 1;
                    mine.last_error = e;
                }
            }
        }
        // The analyses, due on their own intervals.
        let mut analysis_failed = None;
        if !st.cfg.analysis.is_empty() {
            let a = mine
                .analyses
                .get_or_insert_with(|| Analyses::new(&st.cfg.analysis));
            let m = mine.measurer.get_or_insert_with(|| {
                Arc::new(Mutex::new(
                    Measurer::new(
                        &st.cfg.analysis,
                        &std::env::current_dir().unwrap_or_default(),
                        st.workers.platform_dir.clone(),
                        d.watch.0,
                        &sha,
                        s.previous_main.clone().filter(|p| !p.is_empty()),
                    )
                    .deployed_at(deployed_at),
                ))
            });
            let at_s = u32::try_from((now.as_second() - deployed_at.as_second()).max(0))
                .unwrap_or(u32::MAX);
            let mut m = m.lock().unwrap_or_else(PoisonError::into_inner);
            analysis_failed = a.measure_due(at_s, &mut |i| m.measure(i), &mut |_| {});
        }
        let waiting = mine
            .analyses
            .as_ref()
            .map(|a| a.waiting())
            .unwrap_or_default();
        let verdict = if let Some(why) = analysis_failed {
            Some(Verdict::Failed(format!("server watch: {why}")))
        } else if mine.failures >= d.unhealthy_after {
            Some(Verdict::Failed(format!(
                "server watch: {} consecutive probes failed; last: {}",
                mine.failures, mine.last_error
            )))
        } else if !in_window && mine.failures == 0 && !waiting.is_empty() {
            Some(Verdict::Inconclusive(waiting.join("; ")))
        } else if !in_window && mine.failures == 0 {
            Some(Verdict::Passed(mine.probes))
        } else {
            None
        };
        match verdict {
            None => {
                kept.insert(s.id, mine);
            }
            Some(v) => {
                let analysis_events: Vec<EventKind> = mine
                    .analyses
                    .as_ref()
                    .map(|a| a.reports().iter().flat_map(|r| r.events(&sha)).collect())
                    .unwrap_or_default();
                if let Verdict::Inconclusive(why) = &v {
                    tracing::warn!(
                        incident = %s.id,
                        reason = %why,
                        "watch: healthy but not verified, an analysis had no data"
                    );
                }
                match append_verdict(st, s.id, &sha, v, analysis_events) {
                    Ok(true) => verdicts += 1,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(incident = %s.id, error = %e, "watch: cannot record the verdict")
                    }
                }
                let _ = st.store.lease_release(&name, &st.replica);
            }
        }
    }
    *memory = kept;
    verdicts
}

/// Appends the verdict on `sha` unless the fresh log already has one (or
/// moved on); true when this call appended it.
fn append_verdict(
    st: &AppState,
    id: IncidentId,
    sha: &str,
    v: Verdict,
    analysis_events: Vec<EventKind>,
) -> Result<bool, ApiError> {
    let mut appended = false;
    ops::append_with(st, &Actor::new(ACTOR, Door::Watch), id, &mut |s| {
        appended = false;
        if awaiting_verdict(s).is_none_or(|(w, _)| w != sha) {
            return Ok((vec![], vec![]));
        }
        appended = true;
        let (mut events, messages) = match &v {
            Verdict::Passed(probes) => (
                vec![EventKind::HealthPassed {
                    sha: sha.to_string(),
                    probes: *probes,
                }],
                vec![],
            ),
            Verdict::Inconclusive(_) => (vec![], vec![]),
            Verdict::Failed(reason) => {
                let short: String = sha.chars().take(10).collect();
                let detail = if s.security {
                    String::new()
                } else {
                    format!(": {reason}")
                };
                let text = format!(
                    ":rotating_light: {id} production is unhealthy after deploying {short}{detail}. Roll back: `hotfix rollback {id} --reason \"unhealthy after deploy\"`."
                );
                let mut mentions = st.cfg.team.on_call.clone();
                for l in &st.cfg.team.tech_leads {
                    if !mentions.contains(l) {
                        mentions.push(l.clone());
                    }
                }
                (
                    vec![EventKind::HealthFailed {
                        sha: sha.to_string(),
                        reason: reason.clone(),
                    }],
                    ops::custom_message(st, s, "health_page", text, mentions, st.clock.now()),
                )
            }
        };
        // The analyses' numbers first, then the verdict they led to.
        let mut all = analysis_events.clone();
        all.append(&mut events);
        Ok((all, messages))
    })?;
    Ok(appended)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use hotfix_core::event::Event;
    use hotfix_core::severity::Severity;

    use super::*;

    fn state(kinds: Vec<EventKind>) -> IncidentState {
        let at = Timestamp::from_second(1_700_000_000).unwrap();
        let mut all = vec![EventKind::Declared {
            name: "pdf".into(),
            title: "PDF".into(),
            severity: Severity::High,
            customer_facing: false,
            security: false,
            branch: "hotfix/pdf".into(),
            base_sha: "b".into(),
        }];
        all.extend(kinds);
        let events: Vec<Event> = all
            .into_iter()
            .enumerate()
            .map(|(i, kind)| Event {
                incident: IncidentId(1),
                seq: i as u64 + 1,
                at,
                actor: "x".into(),
                kind,
            })
            .collect();
        IncidentState::fold(&events).unwrap()
    }

    fn deployed(sha: &str) -> EventKind {
        EventKind::Deployed {
            sha: sha.into(),
            environment: "production".into(),
            deployment: None,
            previous_deployment: None,
            build: None,
        }
    }

    #[test]
    fn only_the_last_deploy_without_a_verdict_is_watched() {
        assert!(awaiting_verdict(&state(vec![])).is_none());
        assert_eq!(
            awaiting_verdict(&state(vec![deployed("a")])).unwrap().0,
            "a"
        );
        let passed = EventKind::HealthPassed {
            sha: "a".into(),
            probes: 2,
        };
        assert!(awaiting_verdict(&state(vec![deployed("a"), passed.clone()])).is_none());
        // A verdict on an older sha says nothing about the new deploy.
        assert_eq!(
            awaiting_verdict(&state(vec![deployed("a"), passed, deployed("c")]))
                .unwrap()
                .0,
            "c"
        );
        let rolled = EventKind::RolledBack {
            reason: "x".into(),
            automatic: false,
            main_revert: None,
            develop_revert: None,
            forced: None,
        };
        assert!(awaiting_verdict(&state(vec![deployed("a"), rolled])).is_none());
    }
}
