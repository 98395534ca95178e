//! The append-only incident event log.
//!
//! Every step of the workflow is one event; nothing else is stored about an
//! incident. State, timeline, checklist and guards are all derived by folding
//! these events, so a record can never disagree with itself and a re-run after
//! a crash only has to look at the last event to know where it stands.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::id::IncidentId;
use crate::severity::Severity;

/// One commit of the hotfix, with the identities that may not approve it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    pub sha: String,
    pub author_email: String,
    pub committer_email: String,
    pub subject: String,
}

/// Size of the hotfix diff against the main it was cut from.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffStat {
    pub files: Vec<String>,
    pub lines_added: u64,
    pub lines_removed: u64,
    /// Files whose added lines contain conflict markers (`<<<<<<<`, `>>>>>>>`, `=======`).
    #[serde(default)]
    pub conflict_markers: Vec<String>,
}

impl DiffStat {
    pub fn lines_changed(&self) -> u64 {
        self.lines_added + self.lines_removed
    }
}

/// The result of one smoke check against a preview.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub url: String,
    pub ok: bool,
    pub detail: String,
}

/// Approver roles named by the policy.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    TechLead,
    Reviewer,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::TechLead => "tech lead",
            Role::Reviewer => "reviewer",
        }
    }
}

/// The kinds of anti-pattern the process names, recorded when a guard is overridden.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AntiPattern {
    /// "Make multiple unrelated changes": a wide diff shipped with `--allow-wide`.
    WideDiff,
    /// "Skip PR preview testing".
    SkippedPreview,
    /// "Forget to backport to develop".
    ForgottenBackport,
    /// "Skip post-mortem".
    SkippedPostmortem,
    /// The PR was merged on the forge (outside hotfix) while a guard still
    /// refused the ship: an admin bypass, recorded so it is never silent.
    BypassedGuards,
}

impl AntiPattern {
    pub fn label(self) -> &'static str {
        match self {
            AntiPattern::WideDiff => "multiple unrelated changes (wide diff shipped)",
            AntiPattern::SkippedPreview => "skipped PR preview testing",
            AntiPattern::ForgottenBackport => "forgot to backport to develop",
            AntiPattern::SkippedPostmortem => "skipped post-mortem",
            AntiPattern::BypassedGuards => "merged outside hotfix past its guards",
        }
    }
}

/// What happened. Serialized with a `type` tag; the names are the stable
/// vocabulary of the incident log (`hotfix log --json`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The incident was opened and its first hotfix branch cut from the remote's main.
    Declared {
        name: String,
        title: String,
        severity: Severity,
        customer_facing: bool,
        security: bool,
        branch: String,
        /// The remote main the branch was cut from.
        base_sha: String,
    },
    /// A new attempt after a rollback (`hotfix start --incident HF-N`).
    AttemptStarted {
        attempt: u32,
        name: String,
        branch: String,
        base_sha: String,
        severity: Severity,
    },
    /// The branch was pushed at this head.
    Pushed {
        sha: String,
        commits: Vec<CommitInfo>,
        diff: DiffStat,
    },
    PrOpened {
        number: u64,
        url: String,
    },
    PreviewDeployed {
        sha: String,
        url: String,
    },
    SmokePassed {
        sha: String,
        checks: Vec<CheckResult>,
    },
    SmokeFailed {
        sha: String,
        checks: Vec<CheckResult>,
    },
    Approved {
        by: String,
        role: Role,
        /// The head the approver saw.
        sha: String,
        /// Where the approval came from (`cli`, `github`, `slack`, `api`).
        #[serde(default = "default_source")]
        source: String,
    },
    /// An approval no longer counts: the approver took it back, or the forge
    /// dismissed their review or recorded *changes requested* by them.
    ApprovalWithdrawn {
        by: String,
        /// The head the withdrawn approval was for.
        sha: String,
        reason: String,
        /// `cli`, `api`, `dashboard`, `slack`, `github`.
        source: String,
    },
    /// The PR was closed on the forge without being merged.
    PrClosed {
        number: u64,
    },
    /// A guard was overridden on purpose; kept forever on the incident.
    AntiPatternRecorded {
        pattern: AntiPattern,
        reason: String,
    },
    Merged {
        merge_sha: String,
        head_sha: String,
        /// The merge's first parent; empty when the forge merged on its own
        /// and did not say (the engine reads `merge_sha^1` from git then).
        previous_main: String,
        /// What production ran before the merge (the deploy provider's id).
        #[serde(default)]
        previous_deployment: Option<String>,
        /// Who merged: `cli` (hotfix ship) or the forge (`github`).
        #[serde(default = "default_source")]
        source: String,
    },
    Deployed {
        sha: String,
        environment: String,
        #[serde(default)]
        deployment: Option<String>,
        #[serde(default)]
        previous_deployment: Option<String>,
        /// How production got the build it runs: the preview's tested
        /// build promoted, or built and why (issue 13). Absent in older
        /// logs and when neither the engine nor the provider could say.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        build: Option<DeployBuild>,
    },
    HealthPassed {
        sha: String,
        probes: u32,
    },
    HealthFailed {
        sha: String,
        reason: String,
    },
    BackportConflict {
        files: Vec<String>,
        worktree: String,
    },
    BackportAborted,
    Backported {
        merge_sha: String,
    },
    /// One step of a rollback done, recorded as it happens so that `status`
    /// tells the truth about a rollback cut short and a re-run finishes it.
    RollbackStep {
        step: RollbackStep,
        reason: String,
        automatic: bool,
        /// Set when a guard of the rollback was overridden (`--force`): why.
        #[serde(default)]
        forced: Option<String>,
    },
    /// Production is back on the previous release and the merge is reverted.
    RolledBack {
        reason: String,
        automatic: bool,
        main_revert: Option<String>,
        develop_revert: Option<String>,
        /// Set when the rollback was forced past its guards: why.
        #[serde(default)]
        forced: Option<String>,
    },
    ChecklistDone {
        key: String,
    },
    PostmortemScheduled {
        path: String,
        due: Timestamp,
    },
    Closed,
    /// A free-form line in the incident log.
    Note {
        text: String,
    },
    /// An alert about this incident came in (the one that opened it, a
    /// repeat, or its `resolved`): recorded, never closing anything.
    AlertReceived {
        /// `alertmanager`, `sentry`, `pagerduty`, `generic`.
        source: String,
        /// `firing` or `resolved`.
        status: String,
        /// The sender's deduplication key (Alertmanager `groupKey`, PagerDuty `dedup_key`).
        key: String,
        summary: String,
    },
    /// The branch head moved outside hotfix (a push seen by the forge's
    /// webhook): approvals and the preview of the old head no longer count.
    HeadMoved {
        sha: String,
        source: String,
    },
    /// The status page components this incident affects.
    Affects {
        components: Vec<String>,
    },
    /// Something a provider reported that moves the timeline without being a
    /// step hotfix took itself (a merge on GitHub, a deployment status).
    ExternalUpdate {
        source: String,
        what: String,
        detail: String,
    },
    /// Triage: a tech lead says the reported incident is real, at this
    /// severity (the decision matrix then applies). `public_text` is what
    /// the public status page says about it (else a safe default).
    Confirmed {
        severity: Severity,
        #[serde(default)]
        public_text: Option<String>,
    },
    /// Triage: not a hotfix after all. Always followed by `closed` in the
    /// same append (no post-hotfix checklist: nothing shipped).
    Declined {
        reason: DeclineReason,
        /// The incident this one duplicates (`reason = duplicate`).
        #[serde(default)]
        duplicate_of: Option<IncidentId>,
        #[serde(default)]
        note: String,
    },
    /// Triage: this incident is the same as `into`, which takes its alerts
    /// from now on. Followed by `closed` in the same append.
    MergedInto {
        into: IncidentId,
    },
    /// On the incident another was merged into (`merged_into`).
    Absorbed {
        from: IncidentId,
    },
    /// A more severe alert joined the incident: its severity goes up (never
    /// down: lowering it is a person's call, at triage).
    Escalated {
        from: Severity,
        to: Severity,
        reason: String,
    },
    /// Triage took longer than its target: the tech leads were paged, once.
    TriageOverdue,
    /// Who reported it, when that is not who declared it (a customer, the
    /// support desk): told on resolution, as the process's "verify fix with
    /// original reporter" asks.
    ReportedBy {
        who: String,
    },
    /// One configured analysis over one production watch: its samples
    /// (seconds since the deploy, `None` where the source had no data) and
    /// the verdict, once per analysis per watch so the log stays compact.
    AnalysisMeasured {
        name: String,
        sha: String,
        samples: Vec<(u32, Option<f64>)>,
        #[serde(default)]
        baseline: Option<f64>,
        /// `pass`, `fail` or `inconclusive`.
        verdict: String,
        /// What was measured (the PromQL, the command, the URL and pointer).
        query: String,
    },
    /// An analysis failed its threshold `failure_limit` times in a row:
    /// the numbers that failed it, for the rollback reason and the post-mortem.
    AnalysisFailed {
        name: String,
        sha: String,
        values: Vec<f64>,
        /// What they were held against (`max 0.01`, `≤ baseline 0.2 +50%`).
        threshold: String,
        query: String,
    },
    /// A canary step: `weight`% of production's requests go to `sha`
    /// (100 = promoted: it is production).
    CanaryStep {
        sha: String,
        weight: f64,
    },
    /// The canary went back to 0% at once.
    CanaryAborted {
        sha: String,
        reason: String,
    },
}

/// How a production deploy got its build (the `build` of `deployed`).
///
/// Why it is recorded: "production runs what the preview smoke-tested" is
/// evidence for the post-mortem only when the log says so, and a deploy
/// that built again (main moved) must say why its build is not the tested one.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployBuild {
    /// Production runs the very build the preview smoke-tested: the merge's
    /// tree equals the previewed tree and the provider promoted that build
    /// (no second build). The rulebook admits it only with a passed smoke
    /// of `from_sha`.
    #[serde(default)]
    pub tested: bool,
    /// A build ran for this deploy (as the provider reports it).
    #[serde(default)]
    pub built: bool,
    /// The previewed sha this deploy was held against: the one whose build
    /// was promoted when `tested`, else the preview whose tree it compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_sha: Option<String>,
    /// How long the build (or the promotion) took, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_ms: Option<u64>,
    /// Why it built rather than promoted ("main moved since the preview: …"),
    /// or what the provider could say about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl DeployBuild {
    /// In words, for the timeline, `status`, the log and the post-mortem:
    /// `the tested build of 3fa4dbfedf promoted (no build, 40ms)`,
    /// `built in 1m05s: main moved since the preview: …`.
    pub fn summary(&self) -> String {
        let took = self.build_ms.map(build_time);
        let note = self
            .note
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty());
        let mut s = if self.tested {
            format!(
                "the tested build{} promoted (no build{})",
                self.from_sha
                    .as_deref()
                    .map(|f| format!(" of {}", f.get(..10).unwrap_or(f)))
                    .unwrap_or_default(),
                took.map(|t| format!(", {t}")).unwrap_or_default()
            )
        } else if self.built {
            match took {
                Some(t) => format!("built in {t}"),
                None => "built".to_string(),
            }
        } else {
            match took {
                Some(t) => format!("deployed in {t}"),
                None => String::new(),
            }
        };
        // A promotion says all in its first words; the provider's own
        // account of it stays in the record (`note`).
        if let Some(n) = note.filter(|_| !self.tested) {
            if s.is_empty() {
                s = n.to_string();
            } else {
                s = format!("{s}: {n}");
            }
        }
        s
    }
}

impl DeployBuild {
    /// The post-mortem's and the checklist's evidence line, for a deploy
    /// that ran the tested build: `production ran the build the preview
    /// smoke-tested (promoted from 3fa4dbfedf)`. `None` otherwise (what a
    /// rebuilt deploy ran is not what the preview tested).
    pub fn evidence(&self) -> Option<String> {
        let from = self.from_sha.as_deref().filter(|_| self.tested)?;
        Some(format!(
            "production ran the build the preview smoke-tested (promoted from {})",
            from.get(..10).unwrap_or(from)
        ))
    }
}

/// A build's duration: `40ms`, `12.3s`, `1m05s` (a promotion takes
/// milliseconds; whole seconds would say `0s` of it).
fn build_time(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => crate::duration::span(i64::try_from(ms / 1000).unwrap_or(i64::MAX)),
    }
}

/// Why a reported incident was declined at triage.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclineReason {
    /// Nothing is wrong (a flapping check, a bad threshold).
    FalseAlarm,
    /// Real but not urgent: "use the normal release".
    NotUrgent,
    /// Another incident is about the same thing.
    Duplicate,
}

impl DeclineReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeclineReason::FalseAlarm => "false_alarm",
            DeclineReason::NotUrgent => "not_urgent",
            DeclineReason::Duplicate => "duplicate",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            DeclineReason::FalseAlarm => "false alarm",
            DeclineReason::NotUrgent => "not urgent: use the normal release",
            DeclineReason::Duplicate => "duplicate",
        }
    }
}

impl std::str::FromStr for DeclineReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "false_alarm" => Ok(DeclineReason::FalseAlarm),
            "not_urgent" => Ok(DeclineReason::NotUrgent),
            "duplicate" | "duplicate_of" => Ok(DeclineReason::Duplicate),
            other => Err(format!(
                "unknown decline reason `{other}`: expected false_alarm, not_urgent or duplicate"
            )),
        }
    }
}

/// A step of the rollback plan (previous deployment back, merge reverted on
/// main, and on develop when it was backported).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum RollbackStep {
    /// Production runs the previous release again.
    Production {
        #[serde(default)]
        previous_deployment: Option<String>,
        /// The code production runs again (the merge's first parent), so
        /// that `status` can say what serves now. Absent in older logs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha: Option<String>,
        /// Production's health probed right after it went back: a rollback
        /// says the previous release serves only when a probe saw it.
        /// Absent in older logs and when there is no health URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        health: Option<RollbackHealth>,
    },
    /// The merge is reverted on main by this commit.
    MainReverted { sha: String },
    /// The backport is reverted on develop by this commit.
    DevelopReverted { sha: String },
    /// A step failed; the rollback is incomplete until a re-run finishes it.
    Stalled { what: String },
}

/// Production's health right after a rollback put the previous release back.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackHealth {
    /// A probe answered 2xx.
    pub healthy: bool,
    /// How many probes it took to decide.
    pub probes: u32,
    /// What the last probe saw: its status, or why it failed.
    #[serde(default)]
    pub detail: String,
}

impl RollbackStep {
    pub fn as_str(&self) -> &'static str {
        match self {
            RollbackStep::Production { .. } => "production",
            RollbackStep::MainReverted { .. } => "main_reverted",
            RollbackStep::DevelopReverted { .. } => "develop_reverted",
            RollbackStep::Stalled { .. } => "stalled",
        }
    }
}

fn default_source() -> String {
    "cli".to_string()
}

impl EventKind {
    /// Whether this event, after a deploy of `sha`, settles its health
    /// verdict: a verdict on that sha, or the incident moving on (rolled
    /// back, a new attempt, closed).
    pub fn settles_deploy(&self, sha: &str) -> bool {
        match self {
            EventKind::HealthPassed { sha: h, .. } | EventKind::HealthFailed { sha: h, .. } => {
                h == sha
            }
            EventKind::RolledBack { .. } | EventKind::AttemptStarted { .. } | EventKind::Closed => {
                true
            }
            _ => false,
        }
    }

    /// The stable snake_case name of the event (the serde tag).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Declared { .. } => "declared",
            EventKind::AttemptStarted { .. } => "attempt_started",
            EventKind::Pushed { .. } => "pushed",
            EventKind::PrOpened { .. } => "pr_opened",
            EventKind::PreviewDeployed { .. } => "preview_deployed",
            EventKind::SmokePassed { .. } => "smoke_passed",
            EventKind::SmokeFailed { .. } => "smoke_failed",
            EventKind::Approved { .. } => "approved",
            EventKind::ApprovalWithdrawn { .. } => "approval_withdrawn",
            EventKind::PrClosed { .. } => "pr_closed",
            EventKind::AntiPatternRecorded { .. } => "anti_pattern_recorded",
            EventKind::Merged { .. } => "merged",
            EventKind::Deployed { .. } => "deployed",
            EventKind::HealthPassed { .. } => "health_passed",
            EventKind::HealthFailed { .. } => "health_failed",
            EventKind::BackportConflict { .. } => "backport_conflict",
            EventKind::BackportAborted => "backport_aborted",
            EventKind::Backported { .. } => "backported",
            EventKind::RollbackStep { .. } => "rollback_step",
            EventKind::RolledBack { .. } => "rolled_back",
            EventKind::ChecklistDone { .. } => "checklist_done",
            EventKind::PostmortemScheduled { .. } => "postmortem_scheduled",
            EventKind::Closed => "closed",
            EventKind::Note { .. } => "note",
            EventKind::AlertReceived { .. } => "alert_received",
            EventKind::HeadMoved { .. } => "head_moved",
            EventKind::ExternalUpdate { .. } => "external_update",
            EventKind::Affects { .. } => "affects",
            EventKind::Confirmed { .. } => "confirmed",
            EventKind::Declined { .. } => "declined",
            EventKind::MergedInto { .. } => "merged_into",
            EventKind::Absorbed { .. } => "absorbed",
            EventKind::Escalated { .. } => "escalated",
            EventKind::TriageOverdue => "triage_overdue",
            EventKind::ReportedBy { .. } => "reported_by",
            EventKind::AnalysisMeasured { .. } => "analysis_measured",
            EventKind::AnalysisFailed { .. } => "analysis_failed",
            EventKind::CanaryStep { .. } => "canary_step",
            EventKind::CanaryAborted { .. } => "canary_aborted",
        }
    }
}

/// An event as stored: numbered within its incident (the version used for
/// compare-and-set appends), stamped and attributed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub incident: IncidentId,
    /// 1-based position in the incident's log.
    pub seq: u64,
    pub at: Timestamp,
    pub actor: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub at: Timestamp,
    pub actor: String,
    pub kind: EventKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_a_stable_type_tag() {
        let e = Event {
            incident: IncidentId(4),
            seq: 2,
            at: Timestamp::from_second(0).expect("epoch"),
            actor: "dev@example.com".into(),
            kind: EventKind::PrOpened {
                number: 7,
                url: "local://pr/7".into(),
            },
        };
        let v = serde_json::to_value(&e).expect("serialize");
        assert_eq!(v["type"], "pr_opened");
        assert_eq!(v["incident"], "HF-4");
        assert_eq!(v["number"], 7);
        let back: Event = serde_json::from_value(v).expect("deserialize");
        assert_eq!(back, e);
        assert_eq!(e.kind.name(), "pr_opened");
    }

    #[test]
    fn a_deployed_event_of_an_older_log_parses_without_its_build() {
        let old = serde_json::json!({
            "incident": "HF-3",
            "seq": 9,
            "at": "2026-01-01T00:00:00Z",
            "actor": "dev@example.com",
            "type": "deployed",
            "sha": "c".repeat(40),
            "environment": "production",
            "deployment": "d1"
        });
        let e: Event = serde_json::from_value(old).expect("an old deployed event parses");
        let EventKind::Deployed { build, .. } = &e.kind else {
            panic!("not deployed: {e:?}")
        };
        assert_eq!(build, &None);
        // And none is written back: the old shape round-trips.
        let v = serde_json::to_value(&e).expect("serialize");
        assert!(v.get("build").is_none(), "{v}");
        // A new one keeps what it says.
        let k = EventKind::Deployed {
            sha: "c".repeat(40),
            environment: "production".into(),
            deployment: None,
            previous_deployment: None,
            build: Some(DeployBuild {
                tested: true,
                built: false,
                from_sha: Some("b".repeat(40)),
                build_ms: Some(40),
                note: None,
            }),
        };
        let v = serde_json::to_value(&k).expect("serialize");
        assert_eq!(v["build"]["tested"], true);
        assert_eq!(v["build"]["from_sha"], "b".repeat(40));
        assert!(v["build"].get("note").is_none());
        let back: EventKind = serde_json::from_value(v).expect("deserialize");
        assert_eq!(back, k);
    }

    #[test]
    fn a_build_says_whether_it_is_the_tested_one_and_how_long_it_took() {
        let tested = DeployBuild {
            tested: true,
            built: false,
            from_sha: Some("3fa4dbfedf".repeat(4)),
            build_ms: Some(40),
            note: Some("promoted from r3".into()),
        };
        assert_eq!(
            tested.summary(),
            "the tested build of 3fa4dbfedf promoted (no build, 40ms)"
        );
        let built = DeployBuild {
            tested: false,
            built: true,
            from_sha: None,
            build_ms: Some(65_000),
            note: Some("main moved since the preview".into()),
        };
        assert_eq!(
            built.summary(),
            "built in 1m05s: main moved since the preview"
        );
        let quick = DeployBuild {
            built: true,
            build_ms: Some(12_340),
            ..DeployBuild::default()
        };
        assert_eq!(quick.summary(), "built in 12.3s");
        assert_eq!(DeployBuild::default().summary(), "");
        assert_eq!(
            tested.evidence().as_deref(),
            Some("production ran the build the preview smoke-tested (promoted from 3fa4dbfedf)")
        );
        assert_eq!(built.evidence(), None);
    }

    #[test]
    fn an_analysis_keeps_its_gaps_as_null() {
        let k = EventKind::AnalysisMeasured {
            name: "5xx ratio".into(),
            sha: "a".repeat(40),
            samples: vec![(0, Some(0.5)), (5, None)],
            baseline: None,
            verdict: "inconclusive".into(),
            query: "q".into(),
        };
        let v = serde_json::to_value(&k).expect("serialize");
        assert_eq!(v["type"], "analysis_measured");
        assert_eq!(v["samples"][1], serde_json::json!([5, null]));
        let back: EventKind = serde_json::from_value(v).expect("deserialize");
        assert_eq!(back, k);
    }
}
