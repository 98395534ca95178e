//! The pure workflow: guards table-tested, the fold property-tested.
#![allow(clippy::unwrap_used)]

use hotfix_core::checklist::{checklist, open_items};
use hotfix_core::config::Config;
use hotfix_core::event::{CommitInfo, DiffStat, Event, EventKind, Role};
use hotfix_core::guards::{ApproveCheck, check_approve, missing_approvals, ship_refusals};
use hotfix_core::id::IncidentId;
use hotfix_core::severity::Severity;
use hotfix_core::state::{IncidentState, Phase};
use hotfix_core::timeline::timeline;
use jiff::Timestamp;
use proptest::prelude::*;

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

struct Log(Vec<Event>);

impl Log {
    fn new(sev: Severity) -> Log {
        let mut l = Log(vec![]);
        l.push(
            0,
            "dev",
            EventKind::Declared {
                name: "x".into(),
                title: "X".into(),
                severity: sev,
                customer_facing: false,
                security: false,
                branch: "hotfix/x".into(),
                base_sha: "base".into(),
            },
        );
        l
    }
    fn push(&mut self, t: i64, actor: &str, kind: EventKind) -> &mut Log {
        let seq = self.0.len() as u64 + 1;
        self.0.push(Event {
            incident: IncidentId(1),
            seq,
            at: at(t),
            actor: actor.into(),
            kind,
        });
        self
    }
    fn pushed(&mut self, t: i64, sha: &str, author: &str) -> &mut Log {
        self.push(
            t,
            "dev",
            EventKind::Pushed {
                sha: sha.into(),
                commits: vec![CommitInfo {
                    sha: sha.into(),
                    author_email: author.into(),
                    committer_email: author.into(),
                    subject: "fix".into(),
                }],
                diff: DiffStat {
                    files: vec!["a".into()],
                    lines_added: 1,
                    lines_removed: 1,
                    conflict_markers: vec![],
                },
            },
        )
    }
    fn previewed(&mut self, t: i64, sha: &str) -> &mut Log {
        self.push(
            t,
            "dev",
            EventKind::PreviewDeployed {
                sha: sha.into(),
                url: "http://p".into(),
            },
        );
        self.push(
            t,
            "dev",
            EventKind::SmokePassed {
                sha: sha.into(),
                checks: vec![],
            },
        )
    }
    fn approved(&mut self, t: i64, by: &str, role: Role, sha: &str) -> &mut Log {
        self.push(
            t,
            by,
            EventKind::Approved {
                by: by.into(),
                role,
                sha: sha.into(),
                source: "cli".into(),
            },
        )
    }
    fn state(&self) -> IncidentState {
        IncidentState::fold(&self.0).unwrap()
    }
}

fn cfg() -> Config {
    Config::parse("[team]\ntech_leads = [\"lead\", \"lead2\"]\nreviewers = [\"rev\"]\n").unwrap()
}

#[test]
fn critical_needs_one_tech_lead() {
    let mut l = Log::new(Severity::Critical);
    l.pushed(60, "h1", "dev").previewed(120, "h1");
    let c = cfg();
    assert_eq!(
        missing_approvals(&l.state(), &c.policy),
        vec!["1 tech lead approval"]
    );
    assert_eq!(l.state().phase(&c.policy), Phase::AwaitingApproval);
    l.approved(180, "lead", Role::TechLead, "h1");
    assert!(ship_refusals(&l.state(), &c).is_empty());
    assert_eq!(l.state().phase(&c.policy), Phase::ReadyToShip);
}

#[test]
fn high_needs_a_tech_lead_and_a_reviewer() {
    let mut l = Log::new(Severity::High);
    l.pushed(60, "h1", "dev")
        .previewed(120, "h1")
        .approved(180, "rev", Role::Reviewer, "h1");
    let c = cfg();
    assert_eq!(
        missing_approvals(&l.state(), &c.policy),
        vec!["1 tech lead approval"]
    );
    l.approved(190, "lead", Role::TechLead, "h1");
    assert!(missing_approvals(&l.state(), &c.policy).is_empty());
}

#[test]
fn a_push_makes_earlier_approvals_stale_even_for_the_same_sha() {
    let mut l = Log::new(Severity::Critical);
    l.pushed(60, "h1", "dev")
        .previewed(61, "h1")
        .approved(62, "lead", Role::TechLead, "h1");
    l.pushed(70, "h2", "dev").previewed(71, "h2");
    let c = cfg();
    let r = ship_refusals(&l.state(), &c);
    assert!(
        r.iter()
            .any(|r| r.code == "approvals" && r.message.contains("stale")),
        "{r:?}"
    );
    // Force-pushing back to h1 does not revive the old approval either.
    l.pushed(80, "h1", "dev").previewed(81, "h1");
    assert!(!missing_approvals(&l.state(), &c.policy).is_empty());
}

#[test]
fn nobody_approves_their_own_hotfix() {
    let mut l = Log::new(Severity::Critical);
    l.pushed(60, "h1", "lead").previewed(61, "h1");
    let c = cfg();
    assert_eq!(
        check_approve(&l.state(), &c, "lead").unwrap_err().code,
        "self_approval"
    );
    assert_eq!(
        check_approve(&l.state(), &c, "dev").unwrap_err().code,
        "not_an_approver"
    );
    assert_eq!(
        check_approve(&l.state(), &c, "LEAD2"),
        Ok(ApproveCheck::Record(Role::TechLead))
    );
    // An approval recorded by a self-approver (e.g. through an older tool) does not count.
    l.approved(62, "lead", Role::TechLead, "h1");
    assert!(
        ship_refusals(&l.state(), &c)
            .iter()
            .any(|r| r.code == "self_approval")
    );
}

#[test]
fn ship_lists_every_missing_thing_at_once() {
    let mut l = Log::new(Severity::High);
    l.pushed(60, "h1", "dev");
    let r = ship_refusals(&l.state(), &cfg());
    let codes: Vec<&str> = r.iter().map(|r| r.code).collect();
    assert_eq!(codes, vec!["no_preview", "no_smoke", "approvals"]);
}

#[test]
fn checklist_and_close_order() {
    let l = Log::new(Severity::Critical);
    let open = open_items(&l.state());
    assert_eq!(open[0].key, "backported");
    let items = checklist(&l.state());
    assert_eq!(items.len(), 8);
    // Not customer-facing: no status page to update.
    assert!(items.iter().find(|i| i.key == "status_page").unwrap().done);
}

#[test]
fn timeline_marks_late_steps() {
    let mut l = Log::new(Severity::Critical);
    l.pushed(25 * 60, "h1", "dev");
    let t = timeline(&l.state(), &cfg().policy, at(26 * 60));
    let fix = t.iter().find(|s| s.step == "fix").unwrap();
    assert!(fix.done && fix.over && fix.elapsed_s == 1500 && fix.target_s == Some(1200));
    let preview = t.iter().find(|s| s.step == "preview").unwrap();
    assert!(!preview.done && preview.over && preview.elapsed_s == 1560);
}

#[test]
fn a_rollback_resets_the_attempt_on_a_new_start() {
    let mut l = Log::new(Severity::Critical);
    l.pushed(1, "h1", "dev")
        .previewed(2, "h1")
        .approved(3, "lead", Role::TechLead, "h1");
    l.push(
        4,
        "dev",
        EventKind::Merged {
            merge_sha: "m".into(),
            head_sha: "h1".into(),
            previous_main: "base".into(),
            previous_deployment: None,
            source: "cli".into(),
        },
    );
    l.push(
        5,
        "dev",
        EventKind::RolledBack {
            reason: "worse".into(),
            automatic: true,
            main_revert: Some("r".into()),
            develop_revert: None,
            forced: None,
        },
    );
    let c = cfg();
    assert_eq!(l.state().phase(&c.policy), Phase::RolledBack);
    l.push(
        6,
        "dev",
        EventKind::AttemptStarted {
            attempt: 2,
            name: "x2".into(),
            branch: "hotfix/x2".into(),
            base_sha: "r".into(),
            severity: Severity::Critical,
        },
    );
    let s = l.state();
    assert_eq!(s.phase(&c.policy), Phase::Fixing);
    assert!(s.approvals.is_empty() && s.merge_sha.is_none() && s.rollback.is_none());
    assert_eq!(s.rollbacks, 1);
    assert_eq!(s.branch, "hotfix/x2");
}

#[test]
fn a_head_moved_outside_hotfix_makes_approvals_and_the_preview_stale() {
    let mut l = Log::new(Severity::Critical);
    l.pushed(60, "h1", "dev")
        .previewed(61, "h1")
        .approved(62, "lead", Role::TechLead, "h1");
    let c = cfg();
    assert_eq!(l.state().phase(&c.policy), Phase::ReadyToShip);
    // The same head echoed back by the forge changes nothing.
    l.push(
        63,
        "github",
        EventKind::HeadMoved {
            sha: "h1".into(),
            source: "github".into(),
        },
    );
    assert_eq!(l.state().phase(&c.policy), Phase::ReadyToShip);
    l.push(
        64,
        "github",
        EventKind::HeadMoved {
            sha: "h2".into(),
            source: "github".into(),
        },
    );
    let s = l.state();
    assert_eq!(s.head_sha.as_deref(), Some("h2"));
    assert!(s.fresh_approvals().is_empty());
    assert_eq!(s.phase(&c.policy), Phase::InReview);
}

#[test]
fn an_incident_reported_by_an_alert_has_no_branch_until_someone_takes_it() {
    let mut l = Log(vec![]);
    l.push(
        0,
        "alertmanager (alert)",
        EventKind::Declared {
            name: "high-error-rate".into(),
            title: "High error rate".into(),
            severity: Severity::Critical,
            customer_facing: true,
            security: false,
            branch: "hotfix/high-error-rate".into(),
            base_sha: String::new(),
        },
    );
    l.push(
        0,
        "alertmanager (alert)",
        EventKind::AlertReceived {
            source: "alertmanager".into(),
            status: "firing".into(),
            key: "{}:{alertname=\"HighErrorRate\"}".into(),
            summary: "5xx above 5%".into(),
        },
    );
    l.push(
        0,
        "alertmanager (alert)",
        EventKind::Affects {
            components: vec!["API".into(), "API".into()],
        },
    );
    let c = cfg();
    let s = l.state();
    assert_eq!(s.phase(&c.policy), Phase::Triage);
    assert_eq!(s.components, vec!["API".to_string()]);
    assert_eq!(s.alert_status.as_deref(), Some("firing"));
    assert!(hotfix_core::next::next_action(&s, &c.policy).contains("hotfix triage HF-1 confirm"));
    // A tech lead confirms it at triage; then it waits for someone to take it.
    l.push(
        30,
        "lead",
        EventKind::Confirmed {
            severity: Severity::Critical,
            public_text: Some("Errors on the API".into()),
        },
    );
    let s = l.state();
    assert_eq!(s.phase(&c.policy), Phase::Reported);
    assert_eq!(s.triaged_at(), Some(s.events[3].at));
    assert_eq!(s.status_text(false).as_deref(), Some("Errors on the API"));
    assert!(
        hotfix_core::next::next_action(&s, &c.policy)
            .contains("hotfix start high-error-rate --incident HF-1 --severity critical")
    );
    // Whoever takes it cuts the branch (attempt 1) and may not approve it.
    l.push(
        60,
        "dev",
        EventKind::AttemptStarted {
            attempt: 1,
            name: "high-error-rate".into(),
            branch: "hotfix/high-error-rate".into(),
            base_sha: "base".into(),
            severity: Severity::Critical,
        },
    );
    let s = l.state();
    assert_eq!(s.phase(&c.policy), Phase::Fixing);
    assert_eq!(s.attempt, 1);
    assert!(s.non_approvers().contains("dev"));
    // A resolved alert is recorded; it closes nothing.
    l.push(
        90,
        "alertmanager (alert)",
        EventKind::AlertReceived {
            source: "alertmanager".into(),
            status: "resolved".into(),
            key: "k".into(),
            summary: "ok".into(),
        },
    );
    let s = l.state();
    assert_eq!(s.alert_status.as_deref(), Some("resolved"));
    assert!(!s.is_closed());
    assert_eq!(s.phase(&c.policy), Phase::Fixing);
}

#[test]
fn a_deploy_is_settled_by_a_verdict_on_its_sha_or_by_moving_on() {
    let passed = |sha: &str| EventKind::HealthPassed {
        sha: sha.into(),
        probes: 2,
    };
    let failed = |sha: &str| EventKind::HealthFailed {
        sha: sha.into(),
        reason: "502".into(),
    };
    assert!(passed("a").settles_deploy("a"));
    assert!(failed("a").settles_deploy("a"));
    // A verdict on an older sha says nothing about the new deploy.
    assert!(!passed("a").settles_deploy("c"));
    assert!(!failed("a").settles_deploy("c"));
    let rolled = EventKind::RolledBack {
        reason: "x".into(),
        automatic: false,
        main_revert: None,
        develop_revert: None,
        forced: None,
    };
    assert!(rolled.settles_deploy("a"), "a rollback settles it");
    assert!(EventKind::Closed.settles_deploy("a"));
    let noise = EventKind::ExternalUpdate {
        source: "github".into(),
        what: "merged".into(),
        detail: String::new(),
    };
    assert!(!noise.settles_deploy("a"));
}

#[test]
fn alert_rules_are_validated() {
    assert!(Config::parse("[[alerts.rules]]\nseverity = \"urgent\"\n").is_err());
    assert!(Config::parse("[[alerts.rules]]\nsource = \"nagios\"\nseverity = \"high\"\n").is_err());
    assert!(
        Config::parse("[[alerts.rules]]\nseverity = \"high\"\nmatch = { service = \"api\" }\n")
            .is_ok()
    );
    // A medium rule is allowed: it records the alert without declaring.
    assert!(Config::parse("[[alerts.rules]]\nseverity = \"medium\"\n").is_ok());
}

fn any_kind() -> impl Strategy<Value = EventKind> {
    let sha = prop::sample::select(vec!["h1", "h2", "h3"]);
    let who = prop::sample::select(vec!["lead", "lead2", "rev", "dev"]);
    prop_oneof![
        (sha.clone(), who.clone()).prop_map(|(s, a)| EventKind::Pushed {
            sha: s.into(),
            commits: vec![CommitInfo {
                sha: s.into(),
                author_email: a.into(),
                committer_email: a.into(),
                subject: String::new()
            }],
            diff: DiffStat::default()
        }),
        sha.clone().prop_map(|s| EventKind::SmokePassed {
            sha: s.into(),
            checks: vec![]
        }),
        sha.clone().prop_map(|s| EventKind::PreviewDeployed {
            sha: s.into(),
            url: "u".into()
        }),
        (sha.clone(), who).prop_map(|(s, w)| EventKind::Approved {
            by: w.into(),
            role: Role::TechLead,
            sha: s.into(),
            source: "cli".into()
        }),
        sha.clone().prop_map(|s| EventKind::Merged {
            merge_sha: format!("m{s}"),
            head_sha: s.into(),
            previous_main: "base".into(),
            previous_deployment: None,
            source: "cli".into()
        }),
        sha.clone().prop_map(|s| EventKind::HealthPassed {
            sha: s.into(),
            probes: 1
        }),
        Just(EventKind::RolledBack {
            reason: "r".into(),
            automatic: false,
            main_revert: None,
            develop_revert: None,
            forced: None
        }),
        Just(EventKind::AttemptStarted {
            attempt: 2,
            name: "y".into(),
            branch: "hotfix/y".into(),
            base_sha: "b".into(),
            severity: Severity::High
        }),
        Just(EventKind::Closed),
    ]
}

proptest! {
    #[test]
    fn folding_any_log_is_total_and_consistent(kinds in prop::collection::vec(any_kind(), 0..40)) {
        let mut l = Log::new(Severity::Critical);
        for (i, k) in kinds.iter().enumerate() {
            l.push(i as i64 + 1, "dev", k.clone());
        }
        let s = l.state();
        let c = cfg();
        prop_assert_eq!(s.version, kinds.len() as u64 + 1);
        // Fresh approvals are on the head and after the last push.
        for a in s.fresh_approvals() {
            prop_assert_eq!(Some(&a.sha), s.head_sha.as_ref());
            prop_assert!(Some(a.seq) > s.last_push_seq);
        }
        // Closed unless a rollback reopened it since (a forced rollback of a
        // closed incident makes it live again).
        let closed = kinds
            .iter()
            .rev()
            .find(|k| matches!(k, EventKind::Closed | EventKind::RolledBack { .. }))
            .is_some_and(|k| matches!(k, EventKind::Closed));
        prop_assert_eq!(s.phase(&c.policy) == Phase::Closed, closed);
        // Ready to ship implies the guards agree.
        if s.phase(&c.policy) == Phase::ReadyToShip {
            prop_assert!(missing_approvals(&s, &c.policy).is_empty());
            prop_assert!(s.smoke_passed_on_head());
        }
        // The timeline never goes backwards in time for done steps.
        for step in timeline(&s, &c.policy, at(10_000)) {
            prop_assert!(step.elapsed_s >= 0);
        }
        // Folding a prefix and then applying the rest one event at a time
        // (what admission of a batch does) gives what folding the whole does.
        let cut = (kinds.len() / 2) + 1;
        let mut step = IncidentState::fold(&l.0[..cut]).unwrap();
        for e in &l.0[cut..] {
            step = step.with(e.at, &e.actor, &e.kind);
        }
        prop_assert_eq!(step, s);
    }
}
