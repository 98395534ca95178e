//! Who may read a security incident's details, and what everyone else sees.
//!
//! The process says of security incidents: "Do NOT discuss details
//! publicly". The log still has to hold the details (the people fixing it
//! need them, and the post-mortem does), so every place that *shows* an
//! incident asks this module first. The rule is:
//!
//! - **Incidents that are not security incidents** are read in full by
//!   everyone who may read incidents at all. Nothing here changes them.
//! - **A security incident's details** are read by
//!   - the people on the incident: who declared it, and everyone who did
//!     work on the fix (took the branch, pushed, approved or withdrew,
//!     shipped, backported, rolled back, wrote the post-mortem, closed it)
//!     or is the approver of an approval the forge recorded for them
//!     ([`people`]). A note or a checklist tick does not count: any
//!     developer may write one, and reading must not be one line away. Only identities the server stamped count (an event's
//!     actor is the token's user, never text a client sent), so nobody can
//!     put someone else on an incident by writing their name into it;
//!   - every tech lead and admin (the token's [`ApiRole`]), who may have to
//!     take an incident over at any moment.
//!
//!   The state does not record requested approvers yet; when it does, they
//!   belong to [`people`] too.
//! - **Everyone else** (other developers' tokens, the Slack channel, the
//!   public status page, metrics, anonymous callers) reads the *restricted
//!   view* ([`redact`]).
//!
//! Being on the incident is something a person does, on the record: the
//! rulebook (`admit`) still decides who may act, and a developer who does
//! work on a security incident they were not on (takes its branch, pushes)
//! is in its log under their name from then on, and reads it in full.
//! Reading never changes who may write, and the restricted view is
//! information only: a reader who wants to act sees enough to know *that*
//! something is to be done (the phase, the next step, the head to approve),
//! not what the fix is about.
//!
//! ## The restricted view
//!
//! The incident's log with every event's *words* replaced and its
//! *structure* kept, folded again. Keeping the structure means every figure
//! derived from it is exactly the full view's: the phase, the next step,
//! the timeline and its times, the checklist, which approvals are fresh and
//! which are still missing, the guards that refuse a ship, who may approve.
//!
//! It still shows: the id, severity, customer-facing and security flags,
//! the phase and next step (with `NAME` where the hotfix name would be),
//! every timestamp, the people (declared by, the actor of each event,
//! approvers and their roles), the commit SHAs (opaque, and what an approver
//! approves: the dashboard's approve button needs the head), PR number,
//! deployment ids, environments, checklist keys, smoke check names and
//! results, how many commits and files and lines the diff has (the process's
//! wide-diff rule is about size), and the status page components.
//!
//! It hides (replaced by [`SECURITY_TITLE`], [`NAME`] or [`RESTRICTED`]):
//! the title; the hotfix name and the branch (`hotfix/auth-bypass` names the
//! hole as well as any title does: the branch keeps its first path segment,
//! `hotfix/NAME`); commit subjects; file names (of the diff, its conflict
//! markers and backport conflicts) and the backport worktree path; the PR
//! URL (a private security fork's URL names the advisory), the preview URL
//! and smoke check URLs and details; the reasons of withdrawn approvals,
//! anti-patterns, failed health checks and rollbacks (forced or not) and
//! what stalled a rollback; the post-mortem's path; notes; an alert's
//! summary and deduplication key (they carry its labels and annotations);
//! and the detail of provider updates.
//!
//! Every event kind is matched (in `redact_kind`) without a catch-all, so a
//! new kind cannot be shown before someone decided what of it is a detail.

use std::collections::BTreeSet;

use crate::event::{CheckResult, CommitInfo, DiffStat, Event, EventKind, RollbackStep};
use crate::state::{FoldError, IncidentState};
use crate::team::ApiRole;

pub use crate::state::SECURITY_TITLE;

/// What the restricted view shows instead of a text it hides.
pub const RESTRICTED: &str = "(restricted)";

/// What the restricted view shows instead of the hotfix name (the next
/// step reads `hotfix start NAME --incident HF-3`).
pub const NAME: &str = "NAME";

/// Who is looking at an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader<'a> {
    /// A person with a token of the team (the API, the dashboard): the
    /// token's user and role.
    Member { user: &'a str, role: ApiRole },
    /// Everyone without a token of their own on this read: the public
    /// status page, the Slack channel, metrics, anonymous callers.
    Outside,
}

impl Reader<'_> {
    /// Whether this reader sees `s` in full. Everything else they see is
    /// [`redact`]ed.
    pub fn may_read(&self, s: &IncidentState) -> bool {
        if !s.security {
            return true;
        }
        match *self {
            Reader::Outside => false,
            Reader::Member { role, .. } if role >= ApiRole::TechLead => true,
            Reader::Member { user, .. } => on_incident(s, user),
        }
    }
}

/// The people on an incident, lowercased: who declared it, whoever did
/// work on the fix (see [`is_work`]), and the approver of every approval
/// (the forge records a reviewer's approval under its own actor).
/// Identities the server stamped only: never a commit's author, which is
/// text the pusher sent.
pub fn people(s: &IncidentState) -> BTreeSet<String> {
    let mut p = BTreeSet::new();
    p.insert(s.declared_by.trim().to_ascii_lowercase());
    for e in &s.events {
        if is_work(&e.kind) {
            p.insert(e.actor.trim().to_ascii_lowercase());
        }
        if let EventKind::Approved { by, .. } = &e.kind {
            p.insert(by.trim().to_ascii_lowercase());
        }
    }
    p.remove("");
    p
}

/// Whether doing `kind` makes its actor one of the people on the
/// incident: taking the branch, pushing the fix, approving or withdrawing,
/// shipping, backporting, rolling back, writing the post-mortem, closing.
///
/// Why not every event: a note or a checklist tick is open to any
/// developer through the rulebook, so counting them would let anyone read
/// a security incident by writing one line into it. What remains needs the
/// branch or a role the policy names, and is on the record.
fn is_work(kind: &EventKind) -> bool {
    match kind {
        EventKind::Declared { .. }
        | EventKind::AttemptStarted { .. }
        | EventKind::Pushed { .. }
        | EventKind::Approved { .. }
        | EventKind::ApprovalWithdrawn { .. }
        | EventKind::Merged { .. }
        | EventKind::Backported { .. }
        | EventKind::BackportConflict { .. }
        | EventKind::BackportAborted
        | EventKind::RollbackStep { .. }
        | EventKind::RolledBack { .. }
        | EventKind::PostmortemScheduled { .. }
        | EventKind::Confirmed { .. }
        | EventKind::Declined { .. }
        | EventKind::MergedInto { .. }
        | EventKind::Closed => true,
        EventKind::PrOpened { .. }
        | EventKind::PreviewDeployed { .. }
        | EventKind::SmokePassed { .. }
        | EventKind::SmokeFailed { .. }
        | EventKind::PrClosed { .. }
        | EventKind::AntiPatternRecorded { .. }
        | EventKind::Deployed { .. }
        | EventKind::HealthPassed { .. }
        | EventKind::HealthFailed { .. }
        | EventKind::ChecklistDone { .. }
        | EventKind::Note { .. }
        | EventKind::AlertReceived { .. }
        | EventKind::HeadMoved { .. }
        | EventKind::Affects { .. }
        | EventKind::ExternalUpdate { .. }
        | EventKind::Absorbed { .. }
        | EventKind::Escalated { .. }
        | EventKind::TriageOverdue
        | EventKind::ReportedBy { .. }
        | EventKind::AnalysisMeasured { .. }
        | EventKind::AnalysisFailed { .. }
        | EventKind::CanaryStep { .. }
        | EventKind::CanaryAborted { .. } => false,
    }
}

/// Whether `user` is one of the [`people`] on `s` (case-insensitive, as
/// identities are compared everywhere else).
pub fn on_incident(s: &IncidentState, user: &str) -> bool {
    let user = user.trim();
    !user.is_empty() && people(s).contains(&user.to_ascii_lowercase())
}

/// The restricted view of an incident, and what it hid.
#[derive(Debug, Clone, PartialEq)]
pub struct Redacted {
    /// The incident folded from its redacted log.
    pub state: IncidentState,
    /// Every string the view hides (of at least three characters),
    /// longest first: texts the server composed around an incident (an
    /// inbox item's outcome, a message waiting in the outbox, a delivery
    /// error) may quote them, and [`scrub`] takes them out.
    pub secrets: Vec<String>,
}

/// The restricted view of `s`: its log with every detail replaced and its
/// structure kept (see the module documentation), folded again. Pure; it
/// only fails if `s`'s own log would not fold.
pub fn redact(s: &IncidentState) -> Result<Redacted, FoldError> {
    let mut secrets = Secrets::default();
    let events: Vec<Event> = s
        .events
        .iter()
        .map(|e| Event {
            incident: e.incident,
            seq: e.seq,
            at: e.at,
            actor: e.actor.clone(),
            kind: redact_kind(&e.kind, &mut secrets),
        })
        .collect();
    let state = IncidentState::fold(&events)?;
    Ok(Redacted {
        state,
        secrets: secrets.into_sorted(),
    })
}

/// `text` with every one of `secrets` (as [`Redacted::secrets`] lists
/// them, longest first) replaced by [`RESTRICTED`].
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), RESTRICTED);
        }
    }
    out
}

/// The hidden strings worth scrubbing from other texts.
#[derive(Default)]
struct Secrets(BTreeSet<String>);

impl Secrets {
    /// Strings shorter than this are not scrubbed from other texts: a
    /// two-letter name would garble every sentence it occurs in.
    const MIN: usize = 3;

    fn add(&mut self, s: &str) {
        let s = s.trim();
        if s.chars().count() >= Self::MIN && s != RESTRICTED && s != NAME {
            self.0.insert(s.to_string());
        }
    }

    fn into_sorted(self) -> Vec<String> {
        let mut v: Vec<String> = self.0.into_iter().collect();
        v.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        v
    }
}

/// [`RESTRICTED`] in place of `text`, which joins the secrets.
fn hide(text: &str, secrets: &mut Secrets) -> String {
    secrets.add(text);
    RESTRICTED.to_string()
}

/// `hotfix/auth-bypass` → `hotfix/NAME`: the prefix (the first path
/// segment) says nothing about the issue, the rest may.
fn branch_placeholder(branch: &str, secrets: &mut Secrets) -> String {
    secrets.add(branch);
    match branch.split_once('/') {
        Some((prefix, rest)) if !prefix.is_empty() && !rest.is_empty() => {
            secrets.add(rest);
            format!("{prefix}/{NAME}")
        }
        _ => NAME.to_string(),
    }
}

fn name_placeholder(name: &str, secrets: &mut Secrets) -> String {
    secrets.add(name);
    NAME.to_string()
}

/// File names replaced one for one: how many there are stays (the
/// wide-diff rule and the conflict-marker guard count them).
fn files(v: &[String], secrets: &mut Secrets) -> Vec<String> {
    v.iter().map(|f| hide(f, secrets)).collect()
}

fn checks(v: &[CheckResult], secrets: &mut Secrets) -> Vec<CheckResult> {
    v.iter()
        .map(|c| CheckResult {
            name: c.name.clone(),
            url: hide(&c.url, secrets),
            ok: c.ok,
            detail: hide(&c.detail, secrets),
        })
        .collect()
}

/// The restricted form of one event: see the module documentation for
/// what is kept and why.
fn redact_kind(kind: &EventKind, secrets: &mut Secrets) -> EventKind {
    use EventKind as K;
    match kind {
        K::Declared {
            name,
            title,
            severity,
            customer_facing,
            security,
            branch,
            base_sha,
        } => {
            secrets.add(title);
            K::Declared {
                name: name_placeholder(name, secrets),
                title: SECURITY_TITLE.to_string(),
                severity: *severity,
                customer_facing: *customer_facing,
                security: *security,
                branch: branch_placeholder(branch, secrets),
                base_sha: base_sha.clone(),
            }
        }
        K::AttemptStarted {
            attempt,
            name,
            branch,
            base_sha,
            severity,
        } => K::AttemptStarted {
            attempt: *attempt,
            name: name_placeholder(name, secrets),
            branch: branch_placeholder(branch, secrets),
            base_sha: base_sha.clone(),
            severity: *severity,
        },
        K::Pushed { sha, commits, diff } => K::Pushed {
            sha: sha.clone(),
            commits: commits
                .iter()
                .map(|c| CommitInfo {
                    subject: hide(&c.subject, secrets),
                    ..c.clone()
                })
                .collect(),
            diff: DiffStat {
                files: files(&diff.files, secrets),
                lines_added: diff.lines_added,
                lines_removed: diff.lines_removed,
                conflict_markers: files(&diff.conflict_markers, secrets),
            },
        },
        K::PrOpened { number, url } => K::PrOpened {
            number: *number,
            url: hide(url, secrets),
        },
        K::PreviewDeployed { sha, url } => K::PreviewDeployed {
            sha: sha.clone(),
            url: hide(url, secrets),
        },
        K::SmokePassed { sha, checks: c } => K::SmokePassed {
            sha: sha.clone(),
            checks: checks(c, secrets),
        },
        K::SmokeFailed { sha, checks: c } => K::SmokeFailed {
            sha: sha.clone(),
            checks: checks(c, secrets),
        },
        K::ApprovalWithdrawn {
            by,
            sha,
            reason,
            source,
        } => K::ApprovalWithdrawn {
            by: by.clone(),
            sha: sha.clone(),
            reason: hide(reason, secrets),
            source: source.clone(),
        },
        K::AntiPatternRecorded { pattern, reason } => K::AntiPatternRecorded {
            pattern: *pattern,
            reason: hide(reason, secrets),
        },
        K::HealthFailed { sha, reason } => K::HealthFailed {
            sha: sha.clone(),
            reason: hide(reason, secrets),
        },
        K::BackportConflict { files: f, worktree } => K::BackportConflict {
            files: files(f, secrets),
            worktree: hide(worktree, secrets),
        },
        K::RollbackStep {
            step,
            reason,
            automatic,
            forced,
        } => K::RollbackStep {
            step: match step {
                RollbackStep::Stalled { what } => RollbackStep::Stalled {
                    what: hide(what, secrets),
                },
                RollbackStep::Production {
                    previous_deployment,
                    sha,
                    health,
                } => RollbackStep::Production {
                    previous_deployment: previous_deployment.clone(),
                    sha: sha.clone(),
                    health: health.as_ref().map(|h| crate::event::RollbackHealth {
                        detail: hide(&h.detail, secrets),
                        ..h.clone()
                    }),
                },
                other => other.clone(),
            },
            reason: hide(reason, secrets),
            automatic: *automatic,
            forced: forced.as_deref().map(|f| hide(f, secrets)),
        },
        K::RolledBack {
            reason,
            automatic,
            main_revert,
            develop_revert,
            forced,
        } => K::RolledBack {
            reason: hide(reason, secrets),
            automatic: *automatic,
            main_revert: main_revert.clone(),
            develop_revert: develop_revert.clone(),
            forced: forced.as_deref().map(|f| hide(f, secrets)),
        },
        K::PostmortemScheduled { path, due } => K::PostmortemScheduled {
            path: hide(path, secrets),
            due: *due,
        },
        K::Note { text } => K::Note {
            text: hide(text, secrets),
        },
        K::AlertReceived {
            source,
            status,
            key,
            summary,
        } => K::AlertReceived {
            source: source.clone(),
            status: status.clone(),
            key: hide(key, secrets),
            summary: hide(summary, secrets),
        },
        K::ExternalUpdate {
            source,
            what,
            detail,
        } => K::ExternalUpdate {
            source: source.clone(),
            what: what.clone(),
            detail: hide(detail, secrets),
        },
        // Nothing in these but ids, SHAs, people, numbers, server
        // vocabulary and status page components.
        K::Approved { .. }
        | K::PrClosed { .. }
        | K::Merged { .. }
        | K::Deployed { .. }
        | K::HealthPassed { .. }
        | K::BackportAborted
        | K::Backported { .. }
        | K::ChecklistDone { .. }
        | K::Closed
        | K::HeadMoved { .. }
        | K::Affects { .. }
        | K::MergedInto { .. }
        | K::Absorbed { .. }
        | K::TriageOverdue => kind.clone(),
        K::Confirmed {
            severity,
            public_text,
        } => K::Confirmed {
            severity: *severity,
            public_text: public_text.as_deref().map(|t| hide(t, secrets)),
        },
        K::Declined {
            reason,
            duplicate_of,
            note,
        } => K::Declined {
            reason: *reason,
            duplicate_of: *duplicate_of,
            note: hide(note, secrets),
        },
        K::Escalated { from, to, reason } => K::Escalated {
            from: *from,
            to: *to,
            reason: hide(reason, secrets),
        },
        // A reporter from outside (a customer) is a detail, not one of us.
        K::ReportedBy { who } => K::ReportedBy {
            who: hide(who, secrets),
        },
        // The numbers and the analysis's name (team configuration) stay;
        // what was queried may name the broken route.
        K::AnalysisMeasured {
            name,
            sha,
            samples,
            baseline,
            verdict,
            query,
        } => K::AnalysisMeasured {
            name: name.clone(),
            sha: sha.clone(),
            samples: samples.clone(),
            baseline: *baseline,
            verdict: verdict.clone(),
            query: hide(query, secrets),
        },
        K::AnalysisFailed {
            name,
            sha,
            values,
            threshold,
            query,
        } => K::AnalysisFailed {
            name: name.clone(),
            sha: sha.clone(),
            values: values.clone(),
            threshold: threshold.clone(),
            query: hide(query, secrets),
        },
        K::CanaryStep { .. } => kind.clone(),
        K::CanaryAborted { sha, reason } => K::CanaryAborted {
            sha: sha.clone(),
            reason: hide(reason, secrets),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checklist::checklist;
    use crate::config::Config;
    use crate::event::{AntiPattern, Role};
    use crate::guards::{check_approve, missing_approvals, ship_refusals};
    use crate::id::IncidentId;
    use crate::next::next_action;
    use crate::severity::Severity;
    use crate::timeline::timeline;
    use jiff::Timestamp;

    const DEV: &str = "dev@example.com";
    const LEAD: &str = "lead@example.com";

    /// Every secret of the log below: none may show in the restricted view.
    const SECRETS: [&str; 14] = [
        "Session tokens survive logout",
        "auth-bypass",
        "auth-bypass-2",
        "Invalidate sessions on logout",
        "src/session/store.rs",
        "pr/ghsa-xxxx-yyyy",
        "preview-auth-bypass.example",
        "attacker at 203.0.113.9",
        "CVE-2099-1234 exploited",
        "login page 500 for forged token",
        "postmortems/auth-bypass.md",
        "worktrees/backport-auth",
        "alertname=AuthAnomaly",
        "forged tokens seen",
    ];

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).expect("valid time")
    }

    fn event(seq: u64, actor: &str, kind: EventKind) -> Event {
        Event {
            incident: IncidentId(3),
            seq,
            at: at(seq as i64 * 60),
            actor: actor.into(),
            kind,
        }
    }

    fn declared(security: bool) -> EventKind {
        EventKind::Declared {
            name: "auth-bypass".into(),
            title: "Session tokens survive logout".into(),
            severity: Severity::Critical,
            customer_facing: true,
            security,
            branch: "hotfix/auth-bypass".into(),
            base_sha: "a".repeat(40),
        }
    }

    fn pushed(sha: &str) -> EventKind {
        EventKind::Pushed {
            sha: sha.into(),
            commits: vec![CommitInfo {
                sha: sha.into(),
                author_email: DEV.into(),
                committer_email: DEV.into(),
                subject: "Invalidate sessions on logout".into(),
            }],
            diff: DiffStat {
                files: vec!["src/session/store.rs".into(), "src/auth.rs".into()],
                lines_added: 12,
                lines_removed: 3,
                conflict_markers: vec![],
            },
        }
    }

    /// A security incident that went through much of the process: two
    /// attempts, a rollback, notes, alerts, approvals and a withdrawal.
    fn log(security: bool) -> Vec<Event> {
        let b = "b".repeat(40);
        let c = "c".repeat(40);
        let kinds: Vec<(&str, EventKind)> = vec![
            (DEV, declared(security)),
            (
                "alertmanager (alert)",
                EventKind::AlertReceived {
                    source: "alertmanager".into(),
                    status: "firing".into(),
                    key: "{}:{alertname=AuthAnomaly}".into(),
                    summary: "forged tokens seen".into(),
                },
            ),
            (
                DEV,
                EventKind::Note {
                    text: "attacker at 203.0.113.9".into(),
                },
            ),
            (DEV, pushed(&b)),
            (
                DEV,
                EventKind::PrOpened {
                    number: 7,
                    url: "https://github.com/acme/app/pr/ghsa-xxxx-yyyy".into(),
                },
            ),
            (
                DEV,
                EventKind::PreviewDeployed {
                    sha: b.clone(),
                    url: "https://preview-auth-bypass.example/".into(),
                },
            ),
            (
                DEV,
                EventKind::SmokePassed {
                    sha: b.clone(),
                    checks: vec![CheckResult {
                        name: "home".into(),
                        url: "https://preview-auth-bypass.example/".into(),
                        ok: true,
                        detail: "200".into(),
                    }],
                },
            ),
            (
                LEAD,
                EventKind::Approved {
                    by: LEAD.into(),
                    role: Role::TechLead,
                    sha: b.clone(),
                    source: "api".into(),
                },
            ),
            (
                LEAD,
                EventKind::ApprovalWithdrawn {
                    by: LEAD.into(),
                    sha: b.clone(),
                    reason: "CVE-2099-1234 exploited".into(),
                    source: "api".into(),
                },
            ),
            (
                LEAD,
                EventKind::Approved {
                    by: LEAD.into(),
                    role: Role::TechLead,
                    sha: b.clone(),
                    source: "api".into(),
                },
            ),
            (
                "github",
                EventKind::Approved {
                    by: "rev@example.com".into(),
                    role: Role::Reviewer,
                    sha: b.clone(),
                    source: "github".into(),
                },
            ),
            (
                DEV,
                EventKind::Merged {
                    merge_sha: c.clone(),
                    head_sha: b.clone(),
                    previous_main: "a".repeat(40),
                    previous_deployment: Some("dep-1".into()),
                    source: "cli".into(),
                },
            ),
            (
                DEV,
                EventKind::Deployed {
                    sha: c.clone(),
                    environment: "production".into(),
                    deployment: Some("dep-2".into()),
                    previous_deployment: Some("dep-1".into()),
                    build: None,
                },
            ),
            (
                "hotfix server (watch)",
                EventKind::HealthFailed {
                    sha: c.clone(),
                    reason: "login page 500 for forged token".into(),
                },
            ),
            (
                DEV,
                EventKind::RollbackStep {
                    step: RollbackStep::Stalled {
                        what: "revert of src/session/store.rs failed".into(),
                    },
                    reason: "login page 500 for forged token".into(),
                    automatic: false,
                    forced: None,
                },
            ),
            (
                DEV,
                EventKind::RolledBack {
                    reason: "login page 500 for forged token".into(),
                    automatic: false,
                    main_revert: Some("d".repeat(40)),
                    develop_revert: None,
                    forced: Some("CVE-2099-1234 exploited".into()),
                },
            ),
            (
                DEV,
                EventKind::AttemptStarted {
                    attempt: 2,
                    name: "auth-bypass-2".into(),
                    branch: "hotfix/auth-bypass-2".into(),
                    base_sha: "d".repeat(40),
                    severity: Severity::Critical,
                },
            ),
            (DEV, pushed(&"e".repeat(40))),
            (
                DEV,
                EventKind::AntiPatternRecorded {
                    pattern: AntiPattern::SkippedPreview,
                    reason: "CVE-2099-1234 exploited".into(),
                },
            ),
            (
                DEV,
                EventKind::BackportConflict {
                    files: vec!["src/session/store.rs".into()],
                    worktree: "/repo/.git/hotfix/worktrees/backport-auth".into(),
                },
            ),
            (
                DEV,
                EventKind::PostmortemScheduled {
                    path: "postmortems/auth-bypass.md".into(),
                    due: at(86_400),
                },
            ),
        ];
        kinds
            .into_iter()
            .enumerate()
            .map(|(i, (actor, kind))| event(i as u64 + 1, actor, kind))
            .collect()
    }

    fn state(security: bool) -> IncidentState {
        IncidentState::fold(&log(security)).expect("the log folds")
    }

    fn config() -> Config {
        Config::parse(&format!(
            "[team]\ntech_leads = [\"{LEAD}\"]\nreviewers = [\"rev@example.com\", \"other@example.com\"]\n"
        ))
        .expect("config")
    }

    #[test]
    fn the_people_on_it_tech_leads_and_admins_read_a_security_incident() {
        let s = state(true);
        let member = |user, role| Reader::Member { user, role };
        // Declared it, acted on it, approved through the forge: in any case.
        for user in [DEV, "DEV@Example.com", LEAD, "rev@example.com"] {
            assert!(member(user, ApiRole::Developer).may_read(&s), "{user}");
        }
        for role in [ApiRole::TechLead, ApiRole::Admin] {
            assert!(member("someone@example.com", role).may_read(&s));
        }
        assert!(!member("other@example.com", ApiRole::Developer).may_read(&s));
        assert!(!member("", ApiRole::Developer).may_read(&s));
        assert!(!Reader::Outside.may_read(&s));
        // A commit author is text the pusher sent, not someone on it.
        let mut authored = s.clone();
        authored.commits[0].author_email = "other@example.com".into();
        assert!(!member("other@example.com", ApiRole::Developer).may_read(&authored));
        // A note or a checklist tick, which any developer may write, does
        // not put anyone on it.
        let noted = s
            .with(
                at(90_000),
                "other@example.com",
                &EventKind::Note {
                    text: "joining".into(),
                },
            )
            .with(
                at(90_001),
                "other@example.com",
                &EventKind::ChecklistDone {
                    key: "docs_updated".into(),
                },
            );
        assert!(!member("other@example.com", ApiRole::Developer).may_read(&noted));
        // Work on the fix does, on the record.
        let joined = noted.with(at(90_002), "other@example.com", &EventKind::Closed);
        assert!(member("other@example.com", ApiRole::Developer).may_read(&joined));
    }

    #[test]
    fn incidents_that_are_not_security_incidents_are_read_by_everyone() {
        let s = state(false);
        assert!(Reader::Outside.may_read(&s));
        assert!(
            Reader::Member {
                user: "other@example.com",
                role: ApiRole::Developer
            }
            .may_read(&s)
        );
    }

    #[test]
    fn the_restricted_view_shows_no_detail() {
        let s = state(true);
        let full = serde_json::to_string(&s).expect("serialize");
        for secret in SECRETS {
            assert!(full.contains(secret), "the fixture holds {secret}");
        }
        let r = redact(&s).expect("redacts");
        let shown = serde_json::to_string(&r.state).expect("serialize");
        for secret in SECRETS {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert_eq!(r.state.title, SECURITY_TITLE);
        assert_eq!(r.state.name, NAME);
        assert_eq!(r.state.branch, "hotfix/NAME");
        assert_eq!(r.state.events[0].actor, DEV);
        // What it hid, for scrubbing other texts, longest first.
        assert!(r.secrets.contains(&"hotfix/auth-bypass-2".to_string()));
        assert!(r.secrets.contains(&"auth-bypass".to_string()));
        assert!(r.secrets.windows(2).all(|w| w[0].len() >= w[1].len()));
        let outcome = "ignored: HF-3 is already merged; a later push to hotfix/auth-bypass does not change what shipped";
        let scrubbed = scrub(outcome, &r.secrets);
        assert!(!scrubbed.contains("auth-bypass"), "{scrubbed}");
        assert!(scrubbed.contains("HF-3 is already merged"), "{scrubbed}");
    }

    #[test]
    fn the_restricted_view_keeps_every_figure_of_the_full_view() {
        let cfg = config();
        let policy = &cfg.policy;
        let now = at(100_000);
        // The rolled-back log, its first attempt only, and a log stopped
        // after each of its events: every phase along the way.
        let events = log(true);
        for n in 1..=events.len() {
            let s = IncidentState::fold(&events[..n]).expect("folds");
            let r = redact(&s).expect("redacts").state;
            assert_eq!(r.version, s.version);
            assert_eq!(r.phase(policy), s.phase(policy), "after {n} events");
            assert_eq!(timeline(&r, policy, now), timeline(&s, policy, now));
            assert_eq!(checklist(&r), checklist(&s));
            assert_eq!(missing_approvals(&r, policy), missing_approvals(&s, policy));
            assert_eq!(r.fresh_approvals().len(), s.fresh_approvals().len());
            assert_eq!(ship_refusals(&r, &cfg).len(), ship_refusals(&s, &cfg).len());
            for who in [DEV, LEAD, "rev@example.com", "other@example.com"] {
                assert_eq!(
                    check_approve(&r, &cfg, who).map_err(|e| e.code),
                    check_approve(&s, &cfg, who).map_err(|e| e.code),
                    "{who} after {n} events"
                );
            }
            assert_eq!(r.head_sha, s.head_sha);
            assert_eq!(r.diff.files.len(), s.diff.files.len());
            assert_eq!(r.health_failure.is_some(), s.health_failure.is_some());
            assert_eq!(people(&r), people(&s));
            // The next step, with the hotfix name as a placeholder.
            let next = next_action(&s, policy)
                .replace(&s.branch, &r.branch)
                .replace(&s.name, NAME);
            let shown = next_action(&r, policy);
            if s.rollback_progress
                .as_ref()
                .and_then(|p| p.stalled.as_ref())
                .is_none()
            {
                assert_eq!(shown, next, "after {n} events");
            }
            for secret in SECRETS {
                assert!(!shown.contains(secret), "{shown}");
            }
        }
    }

    #[test]
    fn a_branch_keeps_only_its_prefix() {
        let mut s = Secrets::default();
        assert_eq!(
            branch_placeholder("hotfix/auth-bypass", &mut s),
            "hotfix/NAME"
        );
        assert_eq!(branch_placeholder("fix-auth", &mut s), NAME);
        assert_eq!(branch_placeholder("/x", &mut s), NAME);
        assert_eq!(
            branch_placeholder("security/cve-2099/part", &mut s),
            "security/NAME"
        );
    }
}
