//! The incident as it stands, folded from its event log.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde::Serialize;

use crate::event::{
    AntiPattern, CheckResult, CommitInfo, DeclineReason, DiffStat, Event, EventKind, Role,
    RollbackHealth, RollbackStep,
};
use crate::id::IncidentId;
use crate::policy::Policy;
use crate::severity::Severity;

/// Where an incident is in the process. Derived, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Reported (an alert, Slack, the API) and not triaged yet: a tech lead
    /// confirms, declines or merges it.
    Triage,
    /// Confirmed (or declared by a person) but no branch cut yet.
    Reported,
    /// Branch cut, nothing pushed yet.
    Fixing,
    /// Pushed and PR open; the preview has not passed its checks on the head.
    InReview,
    /// Preview passed; waiting for approvals.
    AwaitingApproval,
    /// Everything required to ship is there.
    ReadyToShip,
    /// Merged to main, production not (yet) healthy.
    Merged,
    /// A rollback started and is not finished (a step failed or the command
    /// was cut short): re-running `hotfix rollback` finishes it.
    RollingBack,
    /// Production runs the fix and passed its health watch.
    Deployed,
    /// Also merged into develop.
    Backported,
    /// Production went back to the previous release and the merge was reverted.
    RolledBack,
    Closed,
    /// Declined or merged into another incident at triage: closed without
    /// the post-hotfix checklist (nothing shipped).
    Declined,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Triage => "triage",
            Phase::Reported => "reported",
            Phase::Fixing => "fixing",
            Phase::InReview => "in_review",
            Phase::AwaitingApproval => "awaiting_approval",
            Phase::ReadyToShip => "ready_to_ship",
            Phase::Merged => "merged",
            Phase::RollingBack => "rolling_back",
            Phase::Deployed => "deployed",
            Phase::Backported => "backported",
            Phase::RolledBack => "rolled_back",
            Phase::Closed => "closed",
            Phase::Declined => "declined",
        }
    }
}

/// One approval as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    pub by: String,
    pub role: Role,
    pub sha: String,
    pub at: Timestamp,
    /// Position in the log, to compare with the last push.
    pub seq: u64,
    pub source: String,
    /// Why it no longer counts, once withdrawn (`approval_withdrawn`).
    pub withdrawn: Option<String>,
}

/// How triage ended other than by a confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decline {
    pub reason: DeclineReason,
    pub duplicate_of: Option<IncidentId>,
    /// Set when it was merged into another incident (its alerts go there).
    pub merged_into: Option<IncidentId>,
    pub note: String,
    pub by: String,
    pub at: Timestamp,
}

/// A rollback under way: the steps recorded so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollbackProgress {
    pub reason: String,
    pub automatic: bool,
    pub forced: Option<String>,
    /// Production runs the previous release again.
    pub production: bool,
    pub main_revert: Option<String>,
    pub develop_revert: Option<String>,
    /// The step that failed last, until a later step succeeds.
    pub stalled: Option<String>,
}

/// A rollback as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rollback {
    pub at: Timestamp,
    pub reason: String,
    pub automatic: bool,
    pub main_revert: Option<String>,
    pub develop_revert: Option<String>,
    pub forced: Option<String>,
}

/// What production runs once a rollback put the previous release back:
/// not the fix any more (whose deploy and health describe the past), but
/// the code before it, and whether that serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolledBackTo {
    /// When production went back.
    pub at: Timestamp,
    /// The code it runs: as the rollback recorded it, else the main the
    /// merge was made on (what the rollback deploys).
    pub sha: Option<String>,
    /// The provider's deployment it went back to, if it has ids.
    pub deployment: Option<String>,
    /// The rollback's own health probe; `None` when none was made.
    pub health: Option<RollbackHealth>,
}

/// One analysis of the current attempt, as its last watch recorded it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnalysisResult {
    pub name: String,
    /// The release it measured.
    pub sha: String,
    pub at: Timestamp,
    /// Seconds since the deploy (or the canary step), `None` = no data.
    pub samples: Vec<(u32, Option<f64>)>,
    pub baseline: Option<f64>,
    /// `pass`, `fail` or `inconclusive`.
    pub verdict: String,
    pub query: String,
    /// The values that failed it and what they were held against.
    pub failed: Option<(Vec<f64>, String)>,
}

impl AnalysisResult {
    pub fn passed(&self) -> bool {
        self.verdict == "pass" && self.failed.is_none()
    }

    /// The last measured value, if any sample had data.
    pub fn last_value(&self) -> Option<f64> {
        self.samples.iter().rev().find_map(|(_, v)| *v)
    }
}

/// A canary of the current attempt's merge on the embedded platform.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Canary {
    pub sha: String,
    /// The share of requests it got last (100 = promoted).
    pub weight: f64,
    /// Why it went back to 0%, once aborted.
    pub aborted: Option<String>,
    pub at: Timestamp,
}

/// Everything known about one incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentState {
    pub id: IncidentId,
    pub version: u64,
    pub title: String,
    pub severity: Severity,
    pub customer_facing: bool,
    pub security: bool,
    pub declared_at: Timestamp,
    pub declared_by: String,
    /// 1 for the first attempt, +1 for each `start --incident` after a rollback.
    pub attempt: u32,
    pub name: String,
    pub branch: String,
    pub base_sha: String,
    // --- the current attempt ---
    pub head_sha: Option<String>,
    pub last_push_seq: Option<u64>,
    pub commits: Vec<CommitInfo>,
    pub diff: DiffStat,
    pub pr: Option<u64>,
    pub pr_url: Option<String>,
    /// The PR was closed on the forge without merging (until one is opened again).
    pub pr_closed: bool,
    pub preview_url: Option<String>,
    pub preview_sha: Option<String>,
    /// The sha the last smoke run was for, and its result.
    pub smoke: Option<(String, bool, Vec<CheckResult>)>,
    pub approvals: Vec<Approval>,
    pub wide_diff_allowed: bool,
    pub merge_sha: Option<String>,
    /// Who merged: `cli` or the forge (`github`).
    pub merged_by: Option<String>,
    pub previous_main: Option<String>,
    pub deployed_sha: Option<String>,
    /// How production got the build of `deployed_sha` (issue 13), when the
    /// deploy recorded it: the preview's tested build promoted, or built and why.
    pub deployed_build: Option<crate::event::DeployBuild>,
    pub previous_deployment: Option<String>,
    pub healthy_sha: Option<String>,
    pub health_failure: Option<String>,
    pub backport_conflict: Option<(Vec<String>, String)>,
    pub backport_sha: Option<String>,
    pub rollback: Option<Rollback>,
    pub rollback_progress: Option<RollbackProgress>,
    /// What production runs after this attempt's rollback went back.
    pub rolled_back_to: Option<RolledBackTo>,
    /// The analyses of this attempt's watches, the last one per name and release.
    pub analyses: Vec<AnalysisResult>,
    /// This attempt's canary, if it had one.
    pub canary: Option<Canary>,
    // --- the whole incident ---
    pub rollbacks: u32,
    pub anti_patterns: Vec<(AntiPattern, String)>,
    pub checklist_done: BTreeSet<String>,
    pub postmortem: Option<(String, Timestamp)>,
    pub closed_at: Option<Timestamp>,
    /// When production first ran a healthy fix (the incident's "resolved" moment).
    pub resolved_at: Option<Timestamp>,
    /// The last status an alert reported for it (`firing`, `resolved`).
    pub alert_status: Option<String>,
    /// Status page components affected.
    pub components: Vec<String>,
    // --- triage ---
    /// Declared without a branch (an alert, Slack, the API): it goes
    /// through triage before anyone cuts a branch.
    pub reported: bool,
    /// Who confirmed it at triage, and when.
    pub confirmed: Option<(String, Timestamp)>,
    /// Declined or merged at triage.
    pub declined: Option<Decline>,
    /// Incidents merged into this one.
    pub absorbed: Vec<IncidentId>,
    /// What the public status page says about it (set on confirm).
    pub public_text: Option<String>,
    /// The tech leads were paged because triage ran over its target.
    pub triage_overdue: bool,
    /// Who reported it, when not the declarer (told on resolution).
    pub reported_by: Option<String>,
    pub events: Vec<Event>,
}

/// What a security incident is called wherever its title would show.
pub const SECURITY_TITLE: &str = "security incident (details restricted)";

/// Why a log cannot be folded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FoldError {
    #[error("the incident log is empty")]
    Empty,
    #[error("the incident log of {0} does not start with `declared`")]
    NotDeclared(IncidentId),
    #[error("the incident log of {0} has a gap or disorder at event {1}")]
    OutOfOrder(IncidentId, u64),
}

impl IncidentState {
    /// The state after `kinds` were appended by `actor` at `at` (what an
    /// admission check of a batch looks at for its next event).
    pub fn with(&self, at: Timestamp, actor: &str, kind: &EventKind) -> IncidentState {
        let mut next = self.clone();
        next.push(at, actor, kind);
        next
    }

    /// Applies one more event in place, numbered after the last.
    pub fn push(&mut self, at: Timestamp, actor: &str, kind: &EventKind) {
        let e = Event {
            incident: self.id,
            seq: self.version + 1,
            at,
            actor: actor.to_string(),
            kind: kind.clone(),
        };
        self.apply(&e);
        self.version = e.seq;
        self.events.push(e);
    }

    /// Folds a whole log. Events must be in `seq` order starting at 1.
    pub fn fold(events: &[Event]) -> Result<IncidentState, FoldError> {
        let first = events.first().ok_or(FoldError::Empty)?;
        let EventKind::Declared {
            name,
            title,
            severity,
            customer_facing,
            security,
            branch,
            base_sha,
        } = &first.kind
        else {
            return Err(FoldError::NotDeclared(first.incident));
        };
        let mut s = IncidentState {
            id: first.incident,
            version: 0,
            title: title.clone(),
            severity: *severity,
            customer_facing: *customer_facing,
            security: *security,
            declared_at: first.at,
            declared_by: first.actor.clone(),
            attempt: 1,
            name: name.clone(),
            branch: branch.clone(),
            base_sha: base_sha.clone(),
            head_sha: None,
            last_push_seq: None,
            commits: vec![],
            diff: DiffStat::default(),
            pr: None,
            pr_url: None,
            pr_closed: false,
            preview_url: None,
            preview_sha: None,
            smoke: None,
            approvals: vec![],
            wide_diff_allowed: false,
            merge_sha: None,
            merged_by: None,
            previous_main: None,
            deployed_sha: None,
            deployed_build: None,
            previous_deployment: None,
            healthy_sha: None,
            health_failure: None,
            backport_conflict: None,
            backport_sha: None,
            rollback: None,
            rollback_progress: None,
            rolled_back_to: None,
            analyses: vec![],
            canary: None,
            rollbacks: 0,
            anti_patterns: vec![],
            checklist_done: BTreeSet::new(),
            postmortem: None,
            closed_at: None,
            resolved_at: None,
            alert_status: None,
            components: vec![],
            reported: base_sha.is_empty(),
            confirmed: None,
            declined: None,
            absorbed: vec![],
            public_text: None,
            triage_overdue: false,
            reported_by: None,
            events: Vec::with_capacity(events.len()),
        };
        for (i, e) in events.iter().enumerate() {
            if e.seq != i as u64 + 1 || e.incident != s.id {
                return Err(FoldError::OutOfOrder(s.id, e.seq));
            }
            if i > 0 {
                s.apply(e);
            }
            s.version = e.seq;
            s.events.push(e.clone());
        }
        Ok(s)
    }

    fn apply(&mut self, e: &Event) {
        match &e.kind {
            EventKind::Declared { .. } => {}
            EventKind::AttemptStarted {
                attempt,
                name,
                branch,
                base_sha,
                severity,
            } => {
                self.attempt = *attempt;
                self.name = name.clone();
                self.branch = branch.clone();
                self.base_sha = base_sha.clone();
                self.severity = *severity;
                self.reset_attempt();
            }
            EventKind::Pushed { sha, commits, diff } => {
                self.head_sha = Some(sha.clone());
                self.last_push_seq = Some(e.seq);
                self.commits = commits.clone();
                self.diff = diff.clone();
            }
            EventKind::PrOpened { number, url } => {
                self.pr = Some(*number);
                self.pr_url = Some(url.clone());
                self.pr_closed = false;
            }
            EventKind::PrClosed { number } => {
                if self.pr == Some(*number) {
                    self.pr_closed = true;
                }
            }
            EventKind::PreviewDeployed { sha, url } => {
                self.preview_sha = Some(sha.clone());
                self.preview_url = Some(url.clone());
            }
            EventKind::SmokePassed { sha, checks } => {
                self.smoke = Some((sha.clone(), true, checks.clone()));
            }
            EventKind::SmokeFailed { sha, checks } => {
                self.smoke = Some((sha.clone(), false, checks.clone()));
            }
            EventKind::Approved {
                by,
                role,
                sha,
                source,
            } => self.approvals.push(Approval {
                by: by.clone(),
                role: *role,
                sha: sha.clone(),
                at: e.at,
                seq: e.seq,
                source: source.clone(),
                withdrawn: None,
            }),
            EventKind::ApprovalWithdrawn {
                by, sha, reason, ..
            } => {
                for a in &mut self.approvals {
                    if a.by.eq_ignore_ascii_case(by) && &a.sha == sha && a.withdrawn.is_none() {
                        a.withdrawn = Some(reason.clone());
                    }
                }
            }
            EventKind::AntiPatternRecorded { pattern, reason } => {
                if *pattern == AntiPattern::WideDiff {
                    self.wide_diff_allowed = true;
                }
                self.anti_patterns.push((*pattern, reason.clone()));
            }
            EventKind::Merged {
                merge_sha,
                previous_main,
                previous_deployment,
                source,
                ..
            } => {
                self.merge_sha = Some(merge_sha.clone());
                self.merged_by = Some(source.clone());
                self.previous_main = Some(previous_main.clone());
                self.previous_deployment = previous_deployment.clone();
                // A merged hotfix has no preview any more.
                self.preview_url = None;
            }
            EventKind::Deployed {
                sha,
                previous_deployment,
                build,
                ..
            } => {
                self.deployed_sha = Some(sha.clone());
                self.deployed_build = build.clone();
                if previous_deployment.is_some() {
                    self.previous_deployment = previous_deployment.clone();
                }
                self.healthy_sha = None;
                self.health_failure = None;
            }
            EventKind::HealthPassed { sha, .. } => {
                self.healthy_sha = Some(sha.clone());
                self.health_failure = None;
                if self.resolved_at.is_none() {
                    self.resolved_at = Some(e.at);
                }
            }
            EventKind::HealthFailed { reason, .. } => {
                self.health_failure = Some(reason.clone());
                self.healthy_sha = None;
            }
            EventKind::BackportConflict { files, worktree } => {
                self.backport_conflict = Some((files.clone(), worktree.clone()));
            }
            EventKind::BackportAborted => self.backport_conflict = None,
            EventKind::Backported { merge_sha } => {
                self.backport_conflict = None;
                self.backport_sha = Some(merge_sha.clone());
            }
            EventKind::RollbackStep {
                step,
                reason,
                automatic,
                forced,
            } => {
                // Production no longer runs this fix: the incident is live
                // again, whatever it said before (a forced rollback of a
                // closed incident reopens it).
                self.closed_at = None;
                self.healthy_sha = None;
                self.resolved_at = None;
                let p = self
                    .rollback_progress
                    .get_or_insert_with(|| RollbackProgress {
                        reason: reason.clone(),
                        automatic: *automatic,
                        forced: forced.clone(),
                        production: false,
                        main_revert: None,
                        develop_revert: None,
                        stalled: None,
                    });
                if forced.is_some() {
                    p.forced = forced.clone();
                }
                match step {
                    RollbackStep::Production {
                        previous_deployment,
                        sha,
                        health,
                    } => {
                        p.production = true;
                        p.stalled = None;
                        self.rolled_back_to = Some(RolledBackTo {
                            at: e.at,
                            sha: sha
                                .clone()
                                .or_else(|| self.previous_main.clone())
                                .filter(|s| !s.is_empty()),
                            deployment: previous_deployment.clone(),
                            health: health.clone(),
                        });
                    }
                    RollbackStep::MainReverted { sha } => {
                        p.main_revert = Some(sha.clone());
                        p.stalled = None;
                    }
                    RollbackStep::DevelopReverted { sha } => {
                        p.develop_revert = Some(sha.clone());
                        p.stalled = None;
                    }
                    RollbackStep::Stalled { what } => p.stalled = Some(what.clone()),
                }
            }
            EventKind::RolledBack {
                reason,
                automatic,
                main_revert,
                develop_revert,
                forced,
            } => {
                self.rollbacks += 1;
                self.healthy_sha = None;
                self.closed_at = None;
                // Fix verified in production no longer holds.
                self.resolved_at = None;
                self.rollback_progress = None;
                self.rollback = Some(Rollback {
                    at: e.at,
                    reason: reason.clone(),
                    automatic: *automatic,
                    main_revert: main_revert.clone(),
                    develop_revert: develop_revert.clone(),
                    forced: forced.clone(),
                });
            }
            EventKind::ChecklistDone { key } => {
                self.checklist_done.insert(key.clone());
            }
            EventKind::PostmortemScheduled { path, due } => {
                self.postmortem = Some((path.clone(), *due));
            }
            EventKind::Closed => self.closed_at = Some(e.at),
            EventKind::Note { .. } => {}
            EventKind::AlertReceived { status, .. } => {
                self.alert_status = Some(status.clone());
            }
            EventKind::HeadMoved { sha, .. } => {
                if self.head_sha.as_deref() != Some(sha.as_str()) {
                    self.head_sha = Some(sha.clone());
                    self.last_push_seq = Some(e.seq);
                }
            }
            EventKind::ExternalUpdate { .. } => {}
            EventKind::Confirmed {
                severity,
                public_text,
            } => {
                self.severity = *severity;
                self.confirmed = Some((e.actor.clone(), e.at));
                if let Some(t) = public_text.as_ref().filter(|t| !t.trim().is_empty()) {
                    self.public_text = Some(t.trim().to_string());
                }
            }
            EventKind::Declined {
                reason,
                duplicate_of,
                note,
            } => {
                self.declined = Some(Decline {
                    reason: *reason,
                    duplicate_of: *duplicate_of,
                    merged_into: None,
                    note: note.clone(),
                    by: e.actor.clone(),
                    at: e.at,
                });
            }
            EventKind::MergedInto { into } => {
                self.declined = Some(Decline {
                    reason: DeclineReason::Duplicate,
                    duplicate_of: Some(*into),
                    merged_into: Some(*into),
                    note: String::new(),
                    by: e.actor.clone(),
                    at: e.at,
                });
            }
            EventKind::Absorbed { from } => {
                if !self.absorbed.contains(from) {
                    self.absorbed.push(*from);
                }
            }
            EventKind::Escalated { to, .. } => {
                if to.rank() > self.severity.rank() {
                    self.severity = *to;
                }
            }
            EventKind::TriageOverdue => self.triage_overdue = true,
            EventKind::ReportedBy { who } => self.reported_by = Some(who.clone()),
            EventKind::AnalysisMeasured {
                name,
                sha,
                samples,
                baseline,
                verdict,
                query,
            } => {
                // A new watch of the same release measures afresh.
                self.analyses
                    .retain(|a| !(a.name == *name && a.sha == *sha));
                self.analyses.push(AnalysisResult {
                    name: name.clone(),
                    sha: sha.clone(),
                    at: e.at,
                    samples: samples.clone(),
                    baseline: *baseline,
                    verdict: verdict.clone(),
                    query: query.clone(),
                    failed: None,
                });
            }
            EventKind::AnalysisFailed {
                name,
                sha,
                values,
                threshold,
                query,
            } => {
                let failed = Some((values.clone(), threshold.clone()));
                match self
                    .analyses
                    .iter_mut()
                    .find(|a| a.name == *name && a.sha == *sha)
                {
                    Some(a) => {
                        a.failed = failed;
                        a.verdict = "fail".into();
                    }
                    None => self.analyses.push(AnalysisResult {
                        name: name.clone(),
                        sha: sha.clone(),
                        at: e.at,
                        samples: values.iter().map(|v| (0, Some(*v))).collect(),
                        baseline: None,
                        verdict: "fail".into(),
                        query: query.clone(),
                        failed,
                    }),
                }
            }
            EventKind::CanaryStep { sha, weight } => {
                self.canary = Some(Canary {
                    sha: sha.clone(),
                    weight: *weight,
                    aborted: None,
                    at: e.at,
                });
            }
            EventKind::CanaryAborted { sha, reason } => {
                if let Some(c) = self.canary.as_mut().filter(|c| c.sha == *sha) {
                    c.aborted = Some(reason.clone());
                    c.weight = 0.0;
                    c.at = e.at;
                }
            }
            EventKind::Affects { components } => {
                for c in components {
                    if !self.components.contains(c) {
                        self.components.push(c.clone());
                    }
                }
            }
        }
    }

    /// A new attempt starts from a clean slate; the incident-wide record stays.
    fn reset_attempt(&mut self) {
        self.head_sha = None;
        self.last_push_seq = None;
        self.commits.clear();
        self.diff = DiffStat::default();
        self.pr = None;
        self.pr_url = None;
        self.pr_closed = false;
        self.preview_url = None;
        self.preview_sha = None;
        self.smoke = None;
        self.approvals.clear();
        self.wide_diff_allowed = false;
        self.merge_sha = None;
        self.merged_by = None;
        self.previous_main = None;
        self.deployed_sha = None;
        self.deployed_build = None;
        self.previous_deployment = None;
        self.healthy_sha = None;
        self.health_failure = None;
        self.backport_conflict = None;
        self.backport_sha = None;
        self.rollback = None;
        self.rollback_progress = None;
        self.rolled_back_to = None;
        self.analyses.clear();
        self.canary = None;
    }

    /// Approvals that still count: given on the current head, after the
    /// last push, and not withdrawn.
    pub fn fresh_approvals(&self) -> Vec<&Approval> {
        let (Some(head), Some(push_seq)) = (&self.head_sha, self.last_push_seq) else {
            return vec![];
        };
        self.approvals
            .iter()
            .filter(|a| &a.sha == head && a.seq > push_seq && a.withdrawn.is_none())
            .collect()
    }

    /// Did the smoke checks pass on a preview of the current head?
    pub fn smoke_passed_on_head(&self) -> bool {
        match (&self.smoke, &self.head_sha) {
            (Some((sha, ok, _)), Some(head)) => *ok && sha == head,
            _ => false,
        }
    }

    /// The people who may not approve: whoever started it and the commit authors.
    pub fn non_approvers(&self) -> BTreeSet<String> {
        let mut s = BTreeSet::new();
        s.insert(self.declared_by.to_ascii_lowercase());
        for e in &self.events {
            if let EventKind::AttemptStarted { .. } = e.kind {
                s.insert(e.actor.to_ascii_lowercase());
            }
        }
        for c in &self.commits {
            s.insert(c.author_email.to_ascii_lowercase());
        }
        s
    }

    /// The title as it may be shown to anyone on the team's channels and
    /// terminals: security incidents say nothing beyond that they are one
    /// ("Do NOT discuss details publicly"). The one place this rule lives.
    /// Control and bidi characters come out escaped ([`crate::display`]):
    /// a title an older version stored raw must not forge lines in a list.
    pub fn public_title(&self) -> String {
        if self.security {
            SECURITY_TITLE.to_string()
        } else {
            crate::display::line(&self.title).into_owned()
        }
    }

    /// The title for a field that may be left empty (notifier payloads):
    /// empty for security incidents; escaped as [`Self::public_title`].
    pub fn shared_title(&self) -> String {
        if self.security {
            String::new()
        } else {
            crate::display::line(&self.title).into_owned()
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed_at.is_some()
    }

    /// Reported and waiting for a person's triage: not confirmed, declined
    /// or merged, no branch cut (a log from before triage existed that took
    /// its incident with `start --incident` counts as triaged).
    pub fn in_triage(&self) -> bool {
        self.reported
            && self.confirmed.is_none()
            && self.declined.is_none()
            && self.closed_at.is_none()
            && self.attempt == 1
            && self.base_sha.is_empty()
    }

    /// The alert that reported the incident resolving after the fix was
    /// deployed: its source and when. The reporter's own verification.
    pub fn reporter_verified(&self) -> Option<(String, Timestamp)> {
        let deployed = self
            .events
            .iter()
            .rposition(|e| matches!(e.kind, EventKind::Deployed { .. }))?;
        self.events[deployed..].iter().find_map(|e| match &e.kind {
            EventKind::AlertReceived { source, status, .. } if status == "resolved" => {
                Some((source.clone(), e.at))
            }
            _ => None,
        })
    }

    /// The analyses recorded on the release production runs now.
    pub fn deployed_analyses(&self) -> Vec<&AnalysisResult> {
        let Some(sha) = self.deployed_sha.as_deref() else {
            return vec![];
        };
        self.analyses.iter().filter(|a| a.sha == sha).collect()
    }

    /// The incident was opened by a monitoring alert (its declarer is the alert source).
    pub fn from_alert(&self) -> bool {
        self.declared_by.ends_with("(alert)")
    }

    /// Production runs the fix, its health watch passed and every analysis
    /// of that watch passed: what hotfix itself saw of the fix.
    pub fn watch_verified(&self) -> bool {
        self.healthy_sha.is_some()
            && self.healthy_sha == self.deployed_sha
            && self.deployed_analyses().iter().all(|a| a.passed())
    }

    /// When triage ended: the confirmation, decline or merge, or the branch
    /// being cut; the declaration itself for an incident a person declared
    /// with its branch (they triaged it by declaring).
    pub fn triaged_at(&self) -> Option<Timestamp> {
        if !self.reported {
            return Some(self.declared_at);
        }
        self.events.iter().find_map(|e| match e.kind {
            EventKind::Confirmed { .. }
            | EventKind::Declined { .. }
            | EventKind::MergedInto { .. }
            | EventKind::AttemptStarted { .. } => Some(e.at),
            _ => None,
        })
    }

    /// What the public status page may say about this incident: the text
    /// set at triage, else the title of an incident a person declared; an
    /// alert's own words (its summary is the title) only when
    /// `alert_text` allows. Security incidents say nothing.
    pub fn status_text(&self, alert_text: bool) -> Option<String> {
        if self.security {
            return None;
        }
        if let Some(t) = &self.public_text {
            return Some(crate::display::line(t).into_owned());
        }
        let from_alert = self.declared_by.ends_with("(alert)");
        (!from_alert || alert_text).then(|| self.public_title())
    }

    /// The derived phase. Needs the policy to know whether the approvals suffice.
    pub fn phase(&self, policy: &Policy) -> Phase {
        if self.closed_at.is_some() && self.declined.is_some() {
            Phase::Declined
        } else if self.closed_at.is_some() {
            Phase::Closed
        } else if self.rollback.is_some() {
            Phase::RolledBack
        } else if self.rollback_progress.is_some() {
            Phase::RollingBack
        } else if self.backport_sha.is_some() && self.healthy_sha.is_some() {
            Phase::Backported
        } else if self.healthy_sha.is_some() {
            Phase::Deployed
        } else if self.merge_sha.is_some() {
            Phase::Merged
        } else if self.in_triage() {
            Phase::Triage
        } else if self.head_sha.is_none() && self.base_sha.is_empty() {
            Phase::Reported
        } else if self.head_sha.is_none() {
            Phase::Fixing
        } else if !self.smoke_passed_on_head() {
            Phase::InReview
        } else if crate::guards::missing_approvals(self, policy).is_empty() {
            Phase::ReadyToShip
        } else {
            Phase::AwaitingApproval
        }
    }
}
