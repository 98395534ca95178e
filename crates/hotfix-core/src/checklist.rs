//! The post-hotfix checklist of the process. The tool ticks what it can verify
//! itself; people tick the rest with `hotfix checklist --done KEY`.

use serde::Serialize;

use crate::state::IncidentState;

/// One checklist item (`checklist --json`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ChecklistItem))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub key: &'static str,
    pub label: &'static str,
    pub done: bool,
    /// Ticked by the tool from what it verified, not by a person.
    pub auto: bool,
    /// What the tool saw that backs the item, when there is more than the
    /// tick (the alert that reported it resolving after the deploy: the
    /// process's "verify fix with original reporter").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

/// Keys in the process's order.
pub const KEYS: [(&str, &str, bool); 8] = [
    ("fix_verified", "Fix verified working in production", true),
    ("backported", "Hotfix backported to develop branch", true),
    (
        "incident_log",
        "Incident log updated with resolution",
        false,
    ),
    ("status_page", "Status page updated (if applicable)", false),
    (
        "postmortem_scheduled",
        "Post-mortem scheduled (within 24 hours)",
        true,
    ),
    (
        "monitoring_reviewed",
        "Monitoring thresholds reviewed",
        false,
    ),
    ("docs_updated", "Documentation updated if needed", false),
    ("team_notified", "Team notified of resolution", false),
];

/// Whether the fix is verified in production, and on what evidence: the
/// health watch passed on the deployed release, every analysis of that
/// watch passed, and, for an incident an alert opened, that alert resolved
/// after the deploy (or a person ticked it, having verified with whoever
/// reported it, when the alert stays silent).
pub fn fix_verified(s: &IncidentState) -> (bool, Option<String>) {
    let watched = s.healthy_sha.is_some() && s.healthy_sha == s.deployed_sha;
    let analyses = s.deployed_analyses();
    let analyses_ok = analyses.iter().all(|a| a.passed());
    let alert = s.reporter_verified();
    let vouched = s.checklist_done.contains("fix_verified");
    let alert_ok = !s.from_alert() || alert.is_some() || vouched;
    let done = watched && analyses_ok && alert_ok;
    if !watched && analyses.is_empty() && alert.is_none() {
        return (false, None);
    }
    let mut parts = vec![];
    parts.push(if watched {
        "health watch passed ✓".to_string()
    } else {
        "health watch not passed ✗".to_string()
    });
    // What was verified is what the preview tested, when it was promoted.
    if let Some(e) = s.deployed_build.as_ref().and_then(|b| b.evidence()) {
        parts.push(format!("{e} ✓"));
    }
    if !analyses.is_empty() {
        let bad: Vec<String> = analyses
            .iter()
            .filter(|a| !a.passed())
            .map(|a| format!("{} {}", a.name, a.verdict))
            .collect();
        parts.push(if bad.is_empty() {
            format!(
                "{} passed ✓",
                crate::plural::count_as(analyses.len(), "analysis", "analyses")
            )
        } else {
            format!("{} ✗", bad.join(", "))
        });
    }
    match alert {
        Some((source, at)) => parts.push(format!(
            "the {source} alert that reported it resolved at {} UTC, after the deploy ✓",
            at.strftime("%Y-%m-%d %H:%M:%S")
        )),
        None if s.from_alert() && vouched => {
            parts.push("the alert has not resolved; verified by hand ✓".into())
        }
        None if s.from_alert() => parts.push(
            "waiting for the alert that opened it to resolve (or tick it once verified with the reporter) ✗"
                .into(),
        ),
        None => {}
    }
    (done, Some(parts.join("; ")))
}

/// The checklist of an incident as it stands.
pub fn checklist(s: &IncidentState) -> Vec<Item> {
    KEYS.iter()
        .map(|&(key, label, auto)| {
            let (done, auto) = match key {
                "fix_verified" => (fix_verified(s).0, true),
                "backported" => (s.backport_sha.is_some(), true),
                "postmortem_scheduled" => (s.postmortem.is_some(), true),
                // Not customer-facing: there is nothing to update.
                "status_page" if !s.customer_facing => (true, true),
                _ => (s.checklist_done.contains(key), auto),
            };
            let evidence = match key {
                "fix_verified" => fix_verified(s).1,
                _ => None,
            };
            Item {
                key,
                label,
                done,
                auto,
                evidence,
            }
        })
        .collect()
}

/// Why a key cannot be ticked by hand.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TickError {
    #[error("unknown checklist item `{0}`; the items are: {1}")]
    Unknown(String, String),
    #[error("`{0}` is ticked by hotfix itself once it has verified it ({1})")]
    Automatic(String, &'static str),
}

/// Checks that a key may be ticked by hand.
pub fn check_tick(key: &str) -> Result<(), TickError> {
    match KEYS.iter().find(|(k, _, _)| *k == key) {
        None => Err(TickError::Unknown(
            key.to_string(),
            KEYS.iter()
                .map(|(k, _, _)| *k)
                .collect::<Vec<_>>()
                .join(", "),
        )),
        Some((k, _, true)) => Err(TickError::Automatic(
            k.to_string(),
            match *k {
                "fix_verified" => {
                    "production passed its health watch and every analysis after the last deploy (an incident an alert opened may be ticked once that is so, when the alert does not resolve)"
                }
                "backported" => {
                    "the hotfix is reachable from the remote's develop: run `hotfix backport`"
                }
                _ => "run `hotfix postmortem`",
            },
        )),
        Some(_) => Ok(()),
    }
}

/// Open items in the order `close` names them: a forgotten backport first.
pub fn open_items(s: &IncidentState) -> Vec<Item> {
    let mut open: Vec<Item> = checklist(s).into_iter().filter(|i| !i.done).collect();
    open.sort_by_key(|i| if i.key == "backported" { 0 } else { 1 });
    open
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use jiff::Timestamp;

    use super::*;
    use crate::event::{Event, EventKind};
    use crate::id::IncidentId;
    use crate::severity::Severity;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    /// Declared by `declarer`, merged and deployed as `m`, with `more` after.
    fn deployed(declarer: &str, more: Vec<EventKind>) -> IncidentState {
        let m = "c".repeat(40);
        let mut kinds = vec![
            EventKind::Declared {
                name: "pdf".into(),
                title: "PDF".into(),
                severity: Severity::High,
                customer_facing: false,
                security: false,
                branch: "hotfix/pdf".into(),
                base_sha: "a".repeat(40),
            },
            EventKind::Merged {
                merge_sha: m.clone(),
                head_sha: "b".repeat(40),
                previous_main: "a".repeat(40),
                previous_deployment: None,
                source: "cli".into(),
            },
            EventKind::Deployed {
                sha: m,
                environment: "production".into(),
                deployment: None,
                previous_deployment: None,
                build: None,
            },
        ];
        kinds.extend(more);
        let events: Vec<Event> = kinds
            .into_iter()
            .enumerate()
            .map(|(i, kind)| Event {
                incident: IncidentId(1),
                seq: i as u64 + 1,
                at: at(i as i64 * 10),
                actor: declarer.into(),
                kind,
            })
            .collect();
        IncidentState::fold(&events).unwrap()
    }

    fn measured(name: &str, verdict: &str) -> EventKind {
        EventKind::AnalysisMeasured {
            name: name.into(),
            sha: "c".repeat(40),
            samples: vec![(0, Some(0.001)), (5, Some(0.002))],
            baseline: None,
            verdict: verdict.into(),
            query: "q".into(),
        }
    }

    fn passed() -> EventKind {
        EventKind::HealthPassed {
            sha: "c".repeat(40),
            probes: 6,
        }
    }

    #[test]
    fn verified_needs_the_watch_and_every_analysis_and_says_so() {
        let s = deployed(
            "dev",
            vec![measured("5xx", "pass"), measured("p99", "pass"), passed()],
        );
        let (done, evidence) = fix_verified(&s);
        assert!(done);
        assert_eq!(
            evidence.as_deref(),
            Some("health watch passed ✓; 2 analyses passed ✓")
        );
        // One analysis inconclusive: not verified, and which one says so.
        let s = deployed(
            "dev",
            vec![
                measured("5xx", "pass"),
                measured("p99", "inconclusive"),
                passed(),
            ],
        );
        let (done, evidence) = fix_verified(&s);
        assert!(!done);
        assert!(evidence.unwrap().contains("p99 inconclusive ✗"));
        // A later watch of the same release replaces the earlier measurement.
        let s = deployed(
            "dev",
            vec![
                measured("5xx", "inconclusive"),
                measured("5xx", "pass"),
                passed(),
            ],
        );
        assert!(fix_verified(&s).0);
        assert_eq!(s.deployed_analyses().len(), 1);
    }

    #[test]
    fn a_promoted_tested_build_is_part_of_the_evidence() {
        let mut s = deployed("dev", vec![passed()]);
        assert_eq!(fix_verified(&s).1.as_deref(), Some("health watch passed ✓"));
        s.deployed_build = Some(crate::event::DeployBuild {
            tested: true,
            from_sha: Some("b".repeat(40)),
            ..Default::default()
        });
        assert_eq!(
            fix_verified(&s).1.as_deref(),
            Some(
                "health watch passed ✓; production ran the build the preview smoke-tested (promoted from bbbbbbbbbb) ✓"
            )
        );
    }

    #[test]
    fn an_incident_an_alert_opened_waits_for_that_alert_to_resolve() {
        let alert = "alertmanager (alert)";
        let s = deployed(alert, vec![measured("5xx", "pass"), passed()]);
        let (done, evidence) = fix_verified(&s);
        assert!(!done);
        assert!(evidence.unwrap().contains("waiting for the alert"));
        let resolved = EventKind::AlertReceived {
            source: "alertmanager".into(),
            status: "resolved".into(),
            key: "k".into(),
            summary: "s".into(),
        };
        let s = deployed(alert, vec![measured("5xx", "pass"), passed(), resolved]);
        let (done, evidence) = fix_verified(&s);
        assert!(done);
        let evidence = evidence.unwrap();
        assert!(
            evidence
                .starts_with("health watch passed ✓; 1 analysis passed ✓; the alertmanager alert"),
            "{evidence}"
        );
        // The alert stays silent: a person who verified vouches for it.
        let s = deployed(
            alert,
            vec![
                measured("5xx", "pass"),
                passed(),
                EventKind::ChecklistDone {
                    key: "fix_verified".into(),
                },
            ],
        );
        assert!(fix_verified(&s).0);
        // A person declared it: the watch and the analyses are enough.
        assert!(fix_verified(&deployed("dev", vec![passed()])).0);
    }
}
