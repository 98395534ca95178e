//! One rulebook: the admission rule of every event kind.
//!
//! Every door into an incident (the CLI engine, the team server's API and
//! dashboard, Slack, GitHub webhooks, alerts, timers, the production watch)
//! appends through [`admit`] before anything is stored, so nothing any door
//! sends can record what the process forbids: a merge without its approvals
//! and preview, a close with the checklist open, an approval by the author,
//! a health verdict for a commit production does not run, a rollback that
//! would silently undo a later fix.
//!
//! The rules only look at the incident's folded state, the configuration
//! and who is acting through which door. What needs the real world (is the
//! branch really at that sha? does production run this merge?) is checked
//! by the engine before it acts; what only the team server can know (a
//! GitHub delivery, an alert) may only come in through the server's doors.

use jiff::Timestamp;
use serde::Serialize;

use crate::checklist::{check_tick, open_items};
use crate::config::Config;
use crate::event::{AntiPattern, DeclineReason, DeployBuild, EventKind, Role, RollbackStep};
use crate::guards::{ApproveCheck, Refusal, check_approve, ship_refusals};
use crate::id::IncidentId;
use crate::name::valid_name;
use crate::state::{IncidentState, Phase};
use crate::team::ApiRole;
use crate::validate::{
    MAX_LIST, MAX_NOTE, MAX_SHORT, MAX_TEXT, MAX_TITLE, MAX_URL, is_object_id, is_relative_path,
    text_problem,
};

/// The way an event comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Door {
    /// The `hotfix` command (on a local store, or through the API in remote mode).
    Cli,
    /// `POST /api/v1/…` with a token.
    Api,
    /// The dashboard's buttons.
    Dashboard,
    /// Slack's `/hotfix` command.
    Slack,
    /// A verified GitHub webhook delivery.
    GitHub,
    /// An alert (Alertmanager, Sentry, PagerDuty, generic).
    Alert,
    /// The server's timers (post-mortem reminder, overdue, re-page).
    Timer,
    /// The server's production watch.
    Watch,
}

impl Door {
    pub fn as_str(self) -> &'static str {
        match self {
            Door::Cli => "cli",
            Door::Api => "api",
            Door::Dashboard => "dashboard",
            Door::Slack => "slack",
            Door::GitHub => "github",
            Door::Alert => "alert",
            Door::Timer => "timer",
            Door::Watch => "watch",
        }
    }

    /// Doors a person drives directly: they may not record what only the
    /// server observes (a GitHub delivery, an alert, a timer).
    pub fn is_client(self) -> bool {
        matches!(self, Door::Cli | Door::Api | Door::Dashboard | Door::Slack)
    }
}

/// Who acts, through which door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor<'a> {
    /// The team identity (or the system source for server doors).
    pub who: &'a str,
    pub door: Door,
    /// The role of the API token behind the request, where the door has one
    /// (`None` for the CLI on a local store: the person at the keyboard is
    /// who `--as`/git says; the team server checks tokens).
    pub token_role: Option<ApiRole>,
}

impl<'a> Actor<'a> {
    pub fn new(who: &'a str, door: Door) -> Actor<'a> {
        Actor {
            who,
            door,
            token_role: None,
        }
    }

    pub fn with_role(mut self, role: ApiRole) -> Actor<'a> {
        self.token_role = Some(role);
        self
    }
}

/// What admission needs beyond the incident itself.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub cfg: &'a Config,
    /// Every other incident, for the one rule that looks across incidents
    /// (a rollback must not undo what shipped after it). Loaded only when
    /// [`needs_others`] says a batch needs it; `None` there is refused.
    pub others: Option<&'a [IncidentState]>,
}

/// Whether admitting `kinds` on `s` needs the other incidents: the first
/// step of a rollback that is not forced (a rollback under way was
/// checked when it started).
pub fn needs_others(s: &IncidentState, kinds: &[EventKind]) -> bool {
    let rollback = s.rollback.is_none()
        && s.rollback_progress.is_none()
        && kinds.iter().any(|k| {
            matches!(
                k,
                EventKind::RollbackStep { forced: None, .. }
                    | EventKind::RolledBack { forced: None, .. }
            )
        });
    // A duplicate or a merge must point at an incident that exists.
    let target = kinds.iter().any(|k| {
        matches!(
            k,
            EventKind::MergedInto { .. }
                | EventKind::Declined {
                    duplicate_of: Some(_),
                    ..
                }
        )
    });
    rollback || target
}

/// Codes of refusals that are about who acts rather than what state the
/// incident is in (the server answers them 403, the others 422).
pub const FORBIDDEN_CODES: [&str; 6] = [
    "self_approval",
    "not_an_approver",
    "not_yours",
    "role",
    "server_only",
    "watch_only",
];

fn refusal(code: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
        hint: hint.into(),
    }
}

fn short(sha: &str) -> &str {
    sha.get(..10).unwrap_or(sha)
}

/// The admission rule of every event kind: `Ok` when `actor` may append
/// `kind` to the incident as it stands, else every reason why not.
pub fn admit(
    s: &IncidentState,
    rules: &Rules<'_>,
    actor: &Actor<'_>,
    kind: &EventKind,
) -> Result<(), Vec<Refusal>> {
    let mut out = vec![];
    actor_rule(actor, &mut out);
    door_rule(kind, actor, &mut out);
    if out.is_empty() {
        values_rule(kind, &mut out);
    }
    if out.is_empty() {
        state_rule(s, rules, actor, kind, &mut out);
    }
    if out.is_empty() { Ok(()) } else { Err(out) }
}

/// The longest name of who acts.
pub const MAX_ACTOR: usize = 200;

/// Who acts is stored with every event and printed in every view, so it
/// obeys the same value rule as a title: one plain line, bounded (a
/// `HOTFIX_USER` with an ESC in it must not recolour every terminal that
/// later shows the log).
fn actor_rule(actor: &Actor<'_>, out: &mut Vec<Refusal>) {
    if actor.who.trim().is_empty() {
        out.push(refusal(
            "bad_value",
            "nobody is acting (an empty name)",
            "pass --as PERSON or set HOTFIX_USER",
        ));
    } else if let Some(p) = text_problem("the actor's name", actor.who, MAX_ACTOR, true) {
        out.push(refusal(
            "bad_value",
            p,
            "pass --as PERSON or set HOTFIX_USER to a plain name",
        ));
    }
}

/// [`actor_rule`] on its own, for a declaration (which has no state yet).
pub fn admit_actor(actor: &Actor<'_>) -> Result<(), Vec<Refusal>> {
    let mut out = vec![];
    actor_rule(actor, &mut out);
    if out.is_empty() { Ok(()) } else { Err(out) }
}

/// The doors each kind may come through.
fn door_rule(kind: &EventKind, actor: &Actor<'_>, out: &mut Vec<Refusal>) {
    let d = actor.door;
    let only = |doors: &[Door], what: &str| -> Option<Refusal> {
        (!doors.contains(&d)).then(|| {
            refusal(
                "server_only",
                format!(
                    "`{}` is recorded by the team server from {what}; it cannot be sent through the {} door",
                    kind.name(),
                    d.as_str()
                ),
                "let the server's webhook, alert intake or timers record it",
            )
        })
    };
    let r = match kind {
        EventKind::Declared { .. } => Some(refusal(
            "bad_event",
            "an incident is declared (`hotfix start`, POST /api/v1/incidents), not appended",
            "declare it instead",
        )),
        EventKind::HeadMoved { .. } | EventKind::PrClosed { .. } => {
            only(&[Door::GitHub], "a verified GitHub delivery")
        }
        EventKind::AlertReceived { .. } => only(&[Door::Alert], "a monitoring alert"),
        EventKind::ExternalUpdate { .. } => only(
            &[Door::GitHub, Door::Alert, Door::Timer, Door::Watch],
            "a provider's report or its timers",
        ),
        EventKind::AntiPatternRecorded {
            pattern: AntiPattern::BypassedGuards,
            ..
        } => only(&[Door::GitHub], "a merge seen on the forge"),
        EventKind::Merged { source, .. } if source != "cli" => {
            only(&[Door::GitHub], "a merge seen on the forge")
        }
        EventKind::Merged { .. } => (!d.is_client()).then(|| {
            refusal(
                "server_only",
                "a merge by hotfix is recorded by `hotfix ship`",
                "run `hotfix ship`",
            )
        }),
        EventKind::Escalated { .. } => only(&[Door::Alert], "a more severe alert"),
        EventKind::TriageOverdue => only(&[Door::Timer], "its triage timer"),
        // What hotfix measured itself during a watch, and the canary it
        // drove: only the engine (`hotfix ship`, on a local store or through
        // the API in remote mode) and the server's own watch record them;
        // a person's dashboard or Slack, a webhook or an alert never does.
        EventKind::AnalysisMeasured { .. }
        | EventKind::AnalysisFailed { .. }
        | EventKind::CanaryStep { .. }
        | EventKind::CanaryAborted { .. } => {
            (!matches!(d, Door::Cli | Door::Api | Door::Watch)).then(|| {
                refusal(
                    "watch_only",
                    format!(
                        "`{}` is recorded by hotfix's own production watch; it cannot come through the {} door",
                        kind.name(),
                        d.as_str()
                    ),
                    "`hotfix ship` and the team server's watch record it",
                )
            })
        }
        // Triage is a person's call: no webhook, alert or timer makes it.
        EventKind::Confirmed { .. }
        | EventKind::Declined { .. }
        | EventKind::MergedInto { .. }
        | EventKind::Absorbed { .. }
        | EventKind::ReportedBy { .. } => (!d.is_client()).then(|| {
            refusal(
                "people_only",
                format!(
                    "`{}` is a person's decision; it cannot come through the {} door",
                    kind.name(),
                    d.as_str()
                ),
                "triage from the CLI, the API, the dashboard or Slack",
            )
        }),
        _ => None,
    };
    out.extend(r);
}

fn text(out: &mut Vec<Refusal>, field: &str, value: &str, max: usize, single_line: bool) {
    if let Some(p) = text_problem(field, value, max, single_line) {
        out.push(refusal("bad_value", p, "send a shorter, plain value"));
    }
}

fn oid(out: &mut Vec<Refusal>, field: &str, value: &str) {
    if !is_object_id(value) {
        out.push(refusal(
            "bad_value",
            format!(
                "{field} `{}` is not a git object id (40 or 64 lowercase hex digits)",
                value.chars().take(80).collect::<String>()
            ),
            "send the full commit sha as git prints it",
        ));
    }
}

fn list<T>(out: &mut Vec<Refusal>, field: &str, v: &[T]) {
    if v.len() > MAX_LIST {
        out.push(refusal(
            "bad_value",
            format!("{field} has {} entries; at most {MAX_LIST}", v.len()),
            "send fewer",
        ));
    }
}

/// The values inside the event, whatever the state.
fn values_rule(kind: &EventKind, out: &mut Vec<Refusal>) {
    match kind {
        EventKind::Declared { .. } => {}
        EventKind::AttemptStarted { name, base_sha, .. } => {
            name_rule(out, name);
            oid(out, "base_sha", base_sha);
        }
        EventKind::Pushed { sha, commits, diff } => {
            oid(out, "sha", sha);
            list(out, "commits", commits);
            list(out, "files", &diff.files);
            list(out, "conflict_markers", &diff.conflict_markers);
            for c in commits {
                oid(out, "commit", &c.sha);
                text(out, "commit author", &c.author_email, MAX_SHORT, true);
                text(out, "commit committer", &c.committer_email, MAX_SHORT, true);
                text(out, "commit subject", &c.subject, MAX_SHORT, true);
            }
            for f in diff.files.iter().chain(&diff.conflict_markers) {
                text(out, "file name", f, MAX_SHORT, true);
            }
        }
        EventKind::PrOpened { number, url } => {
            if *number == 0 {
                out.push(refusal("bad_value", "PR number 0", "send the PR's number"));
            }
            text(out, "url", url, MAX_URL, true);
        }
        EventKind::PreviewDeployed { sha, url } => {
            oid(out, "sha", sha);
            text(out, "url", url, MAX_URL, true);
        }
        EventKind::SmokePassed { sha, checks } | EventKind::SmokeFailed { sha, checks } => {
            oid(out, "sha", sha);
            list(out, "checks", checks);
            for c in checks {
                text(out, "check name", &c.name, MAX_SHORT, true);
                text(out, "check url", &c.url, MAX_URL, true);
                text(out, "check detail", &c.detail, MAX_SHORT, false);
            }
        }
        EventKind::Approved {
            by, sha, source, ..
        } => {
            text(out, "by", by, MAX_SHORT, true);
            oid(out, "sha", sha);
            text(out, "source", source, 40, true);
        }
        EventKind::ApprovalWithdrawn {
            by,
            sha,
            reason,
            source,
        } => {
            text(out, "by", by, MAX_SHORT, true);
            oid(out, "sha", sha);
            text(out, "reason", reason, MAX_SHORT, true);
            text(out, "source", source, 40, true);
        }
        EventKind::PrClosed { .. }
        | EventKind::BackportAborted
        | EventKind::Closed
        | EventKind::MergedInto { .. }
        | EventKind::Absorbed { .. }
        | EventKind::TriageOverdue => {}
        EventKind::Confirmed { public_text, .. } => {
            if let Some(t) = public_text {
                text(out, "public_text", t, MAX_TITLE, true);
            }
        }
        EventKind::Declined {
            reason,
            duplicate_of,
            note,
        } => {
            text(out, "note", note, MAX_SHORT, true);
            match (reason, duplicate_of) {
                (DeclineReason::Duplicate, None) => out.push(refusal(
                    "bad_value",
                    "a duplicate names the incident it duplicates",
                    "decline with `--reason duplicate --of HF-N`",
                )),
                (DeclineReason::FalseAlarm | DeclineReason::NotUrgent, Some(_)) => {
                    out.push(refusal(
                        "bad_value",
                        "only a duplicate names another incident",
                        "decline with `--reason duplicate --of HF-N`",
                    ))
                }
                _ => {}
            }
        }
        EventKind::Escalated { reason, .. } => text(out, "reason", reason, MAX_SHORT, true),
        EventKind::ReportedBy { who } => {
            if who.trim().is_empty() {
                out.push(refusal(
                    "bad_value",
                    "an empty reporter",
                    "say who reported it",
                ));
            }
            text(out, "reported_by", who, MAX_SHORT, true);
        }
        EventKind::AntiPatternRecorded { reason, .. } => {
            if reason.trim().is_empty() {
                out.push(refusal(
                    "bad_value",
                    "an override needs a reason",
                    "say why (`--reason TEXT`)",
                ));
            }
            text(out, "reason", reason, MAX_SHORT, false);
        }
        EventKind::Merged {
            merge_sha,
            head_sha,
            previous_main,
            previous_deployment,
            source,
        } => {
            oid(out, "merge_sha", merge_sha);
            oid(out, "head_sha", head_sha);
            if !(previous_main.is_empty() && source != "cli") {
                oid(out, "previous_main", previous_main);
            }
            if let Some(p) = previous_deployment {
                text(out, "previous_deployment", p, MAX_SHORT, true);
            }
            text(out, "source", source, 40, true);
        }
        EventKind::Deployed {
            sha,
            environment,
            deployment,
            previous_deployment,
            build,
        } => {
            oid(out, "sha", sha);
            if let Some(b) = build {
                build_values(out, b);
            }
            if environment != "production" {
                out.push(refusal(
                    "bad_value",
                    format!("environment `{environment}`: only production deploys are recorded"),
                    "previews are `preview_deployed`",
                ));
            }
            for d in [deployment, previous_deployment].into_iter().flatten() {
                text(out, "deployment", d, MAX_SHORT, true);
            }
        }
        EventKind::HealthPassed { sha, .. } => oid(out, "sha", sha),
        EventKind::HealthFailed { sha, reason } => {
            oid(out, "sha", sha);
            text(out, "reason", reason, MAX_TEXT, false);
        }
        EventKind::BackportConflict { files, worktree } => {
            list(out, "files", files);
            for f in files {
                text(out, "file name", f, MAX_SHORT, true);
            }
            text(out, "worktree", worktree, MAX_SHORT, true);
        }
        EventKind::Backported { merge_sha } => oid(out, "merge_sha", merge_sha),
        EventKind::RollbackStep {
            step,
            reason,
            forced,
            ..
        } => {
            reason_rule(out, reason);
            if let Some(f) = forced {
                reason_rule(out, f);
            }
            match step {
                RollbackStep::Production {
                    previous_deployment,
                    sha,
                    health,
                } => {
                    if let Some(p) = previous_deployment {
                        text(out, "previous_deployment", p, MAX_SHORT, true);
                    }
                    if let Some(sha) = sha {
                        oid(out, "sha", sha);
                    }
                    if let Some(h) = health {
                        text(out, "detail", &h.detail, MAX_TEXT, true);
                    }
                }
                RollbackStep::MainReverted { sha } | RollbackStep::DevelopReverted { sha } => {
                    oid(out, "sha", sha)
                }
                RollbackStep::Stalled { what } => text(out, "what", what, MAX_TEXT, false),
            }
        }
        EventKind::RolledBack {
            reason,
            main_revert,
            develop_revert,
            forced,
            ..
        } => {
            reason_rule(out, reason);
            if let Some(f) = forced {
                reason_rule(out, f);
            }
            for r in [main_revert, develop_revert].into_iter().flatten() {
                oid(out, "revert", r);
            }
        }
        EventKind::ChecklistDone { key } => text(out, "key", key, 64, true),
        EventKind::PostmortemScheduled { path, .. } => {
            text(out, "path", path, MAX_SHORT, true);
            if !is_relative_path(path) {
                out.push(refusal(
                    "bad_value",
                    format!("post-mortem path `{path}` is not a path inside the repository"),
                    "use postmortems/HF-N.md",
                ));
            }
        }
        EventKind::Note { text: t } => {
            if t.trim().is_empty() {
                out.push(refusal("bad_value", "an empty note", "write something"));
            }
            text(out, "note", t, MAX_NOTE, false);
        }
        EventKind::AlertReceived {
            source,
            status,
            key,
            summary,
        } => {
            text(out, "source", source, 40, true);
            text(out, "status", status, 40, true);
            text(out, "key", key, MAX_SHORT, false);
            text(out, "summary", summary, MAX_TEXT, false);
        }
        EventKind::HeadMoved { sha, source } => {
            oid(out, "sha", sha);
            text(out, "source", source, 40, true);
        }
        EventKind::Affects { components } => {
            list(out, "components", components);
            for c in components {
                text(out, "component", c, 200, true);
            }
        }
        EventKind::ExternalUpdate {
            source,
            what,
            detail,
        } => {
            text(out, "source", source, 40, true);
            text(out, "what", what, MAX_SHORT, true);
            text(out, "detail", detail, MAX_TEXT, false);
        }
        EventKind::AnalysisMeasured {
            name,
            sha,
            samples,
            baseline,
            verdict,
            query,
        } => {
            analysis_rule(out, name, sha, query);
            list(out, "samples", samples);
            finite(
                out,
                samples
                    .iter()
                    .filter_map(|(_, v)| *v)
                    .chain(baseline.iter().copied()),
            );
            if !matches!(verdict.as_str(), "pass" | "fail" | "inconclusive") {
                out.push(refusal(
                    "bad_value",
                    format!(
                        "verdict `{}`: expected pass, fail or inconclusive",
                        verdict.chars().take(40).collect::<String>()
                    ),
                    "send the analysis's verdict",
                ));
            }
        }
        EventKind::AnalysisFailed {
            name,
            sha,
            values,
            threshold,
            query,
        } => {
            analysis_rule(out, name, sha, query);
            list(out, "values", values);
            finite(out, values.iter().copied());
            text(out, "threshold", threshold, MAX_SHORT, true);
        }
        EventKind::CanaryStep { sha, weight } => {
            oid(out, "sha", sha);
            if !(weight.is_finite() && *weight > 0.0 && *weight <= 100.0) {
                out.push(refusal(
                    "bad_value",
                    format!("canary weight {weight}%: a step sends more than 0% and at most 100%"),
                    "an abort is `canary_aborted`",
                ));
            }
        }
        EventKind::CanaryAborted { sha, reason } => {
            oid(out, "sha", sha);
            text(out, "reason", reason, MAX_SHORT, false);
        }
    }
}

fn analysis_rule(out: &mut Vec<Refusal>, name: &str, sha: &str, query: &str) {
    if name.trim().is_empty() {
        out.push(refusal(
            "bad_value",
            "an analysis without a name",
            "name it in [[analysis]]",
        ));
    }
    text(out, "name", name, 200, true);
    oid(out, "sha", sha);
    text(out, "query", query, MAX_TEXT, false);
}

/// Measurements are numbers JSON can carry back: NaN or infinity would not
/// read back from the log.
fn finite(out: &mut Vec<Refusal>, mut values: impl Iterator<Item = f64>) {
    if values.any(|v| !v.is_finite()) {
        out.push(refusal(
            "bad_value",
            "a measurement is not a finite number",
            "record no data (null) instead",
        ));
    }
}

/// The values of a deploy's build record: a tested build names the
/// preview it came from and did not build again.
fn build_values(out: &mut Vec<Refusal>, b: &DeployBuild) {
    if let Some(f) = &b.from_sha {
        oid(out, "build from_sha", f);
    }
    if let Some(n) = &b.note {
        text(out, "build note", n, MAX_SHORT, false);
    }
    if b.tested && b.from_sha.is_none() {
        out.push(refusal(
            "bad_value",
            "a tested build names the preview it was tested as (from_sha)",
            "send the previewed sha whose build was promoted",
        ));
    }
    if b.tested && b.built {
        out.push(refusal(
            "bad_value",
            "a build that ran for production is not the one the preview tested",
            "send tested = false with the reason it built",
        ));
    }
}

/// Whether the last smoke verdict on `sha` in the current attempt passed:
/// a production build may be called *the tested build* only then.
fn smoke_passed_in_attempt(s: &IncidentState, sha: &str) -> bool {
    s.events
        .iter()
        .rev()
        .take_while(|e| !matches!(e.kind, EventKind::AttemptStarted { .. }))
        .find_map(|e| match &e.kind {
            EventKind::SmokePassed { sha: x, .. } if x == sha => Some(true),
            EventKind::SmokeFailed { sha: x, .. } if x == sha => Some(false),
            _ => None,
        })
        .unwrap_or(false)
}

fn reason_rule(out: &mut Vec<Refusal>, reason: &str) {
    if reason.trim().is_empty() {
        out.push(refusal(
            "bad_value",
            "a rollback needs a reason",
            "`--reason TEXT`",
        ));
    }
    text(out, "reason", reason, MAX_SHORT, false);
}

fn name_rule(out: &mut Vec<Refusal>, name: &str) {
    if !valid_name(name) {
        out.push(refusal(
            "invalid_name",
            format!(
                "`{}` is not a valid hotfix name: letters, digits, `-`, `_`, `.` (not first), at most 64, e.g. `pdf-crash`",
                name.chars().take(80).collect::<String>()
            ),
            "choose a short name like `pdf-crash`",
        ));
    }
}

fn closed(s: &IncidentState) -> Refusal {
    refusal(
        "closed",
        format!("{} is closed", s.id),
        "open a new incident with `hotfix start`",
    )
}

fn merged_already(s: &IncidentState) -> Refusal {
    refusal(
        "merged",
        format!("{} is already merged", s.id),
        "a merged hotfix changes only by deploy, rollback or backport",
    )
}

fn rolled_back(s: &IncidentState) -> Refusal {
    refusal(
        "rolled_back",
        format!("{} was rolled back", s.id),
        format!("start a new attempt with {}", crate::next::new_attempt(s)),
    )
}

fn not_head(s: &IncidentState, field: &str, sha: &str) -> Refusal {
    refusal(
        "not_head",
        format!(
            "{field} is {} but the head of {} is {}",
            short(sha),
            s.id,
            s.head_sha.as_deref().map(short).unwrap_or("not pushed")
        ),
        "re-read the incident and act on what is there now",
    )
}

/// Where the incident must be for the event to make sense.
fn state_rule(
    s: &IncidentState,
    rules: &Rules<'_>,
    actor: &Actor<'_>,
    kind: &EventKind,
    out: &mut Vec<Refusal>,
) {
    let cfg = rules.cfg;
    // Declined or merged at triage: the one thing left is to close it (the
    // same append does), never to work on it.
    if let Some(d) = &s.declined
        && !s.is_closed()
        && !matches!(kind, EventKind::Closed)
    {
        out.push(refusal(
            "declined",
            format!(
                "{} was {} at triage; it only closes",
                s.id,
                match d.merged_into {
                    Some(into) => format!("merged into {into}"),
                    None => format!("declined ({})", d.reason.label()),
                }
            ),
            "open a new incident if it is real after all",
        ));
        return;
    }
    let open_attempt = |out: &mut Vec<Refusal>| {
        if s.is_closed() {
            out.push(closed(s));
        } else if s.rollback.is_some() || s.rollback_progress.is_some() {
            out.push(rolled_back(s));
        }
    };
    let unmerged = |out: &mut Vec<Refusal>| {
        open_attempt(out);
        if out.is_empty() && s.merge_sha.is_some() {
            out.push(merged_already(s));
        }
    };
    let at_head = |out: &mut Vec<Refusal>, sha: &str| {
        if s.head_sha.as_deref() != Some(sha) {
            out.push(not_head(s, "sha", sha));
        }
    };
    let merged = |out: &mut Vec<Refusal>| {
        open_attempt(out);
        if out.is_empty() && s.merge_sha.is_none() {
            out.push(refusal(
                "not_merged",
                format!("{} is not merged", s.id),
                format!("ship it first: `hotfix ship {}`", s.id),
            ));
        }
    };
    match kind {
        EventKind::Declared { .. } => {}
        EventKind::AttemptStarted {
            attempt,
            name,
            branch,
            ..
        } => {
            if s.is_closed() {
                out.push(closed(s));
                return;
            }
            let want = if s.in_triage() {
                out.push(in_triage(s));
                return;
            } else if s.phase(&cfg.policy) == Phase::Reported {
                s.attempt
            } else if s.rollback.is_some() {
                s.attempt + 1
            } else {
                out.push(refusal(
                    "not_rolled_back",
                    format!(
                        "{} is {}, not rolled back: a new attempt (and a new severity) comes only after a rollback",
                        s.id,
                        s.phase(&cfg.policy).as_str()
                    ),
                    "`--incident` cuts the branch of a reported incident or starts a new attempt after a rollback",
                ));
                return;
            };
            if *attempt != want {
                out.push(refusal(
                    "bad_value",
                    format!("attempt {attempt}: the next attempt of {} is {want}", s.id),
                    "re-read the incident",
                ));
            }
            branch_rule(out, cfg, name, branch);
        }
        EventKind::Pushed { .. } => {
            unmerged(out);
            if out.is_empty() && s.base_sha.is_empty() {
                out.push(refusal(
                    "not_started",
                    format!("{} has no branch yet", s.id),
                    format!(
                        "take it with `hotfix start {} --incident {} --severity {}`",
                        s.name, s.id, s.severity
                    ),
                ));
            }
        }
        EventKind::PrOpened { .. } => {
            unmerged(out);
            if out.is_empty() && s.head_sha.is_none() {
                out.push(not_pushed());
            }
        }
        EventKind::PreviewDeployed { sha, .. } => {
            unmerged(out);
            if out.is_empty() {
                at_head(out, sha);
            }
        }
        EventKind::SmokePassed { sha, .. } | EventKind::SmokeFailed { sha, .. } => {
            unmerged(out);
            if out.is_empty() {
                at_head(out, sha);
            }
            if out.is_empty() && s.preview_sha.as_deref() != Some(sha.as_str()) {
                out.push(refusal(
                    "no_preview",
                    format!("no preview of {} was deployed to check", short(sha)),
                    "smoke checks run against the preview of the head",
                ));
            }
        }
        EventKind::Approved {
            by,
            role,
            sha,
            source,
        } => approve_rule(s, cfg, actor, (by, *role, sha, source), out),
        EventKind::ApprovalWithdrawn {
            by, sha, source, ..
        } => {
            if s.is_closed() {
                out.push(closed(s));
                return;
            }
            if s.merge_sha.is_some() {
                out.push(merged_already(s));
                return;
            }
            // The forge authenticated the reviewer: its word (a webhook, or
            // the reviews `ship` reads) withdraws their approval.
            let forge_seen =
                actor.door == Door::GitHub || (actor.door == Door::Cli && source == "github");
            if !(by.eq_ignore_ascii_case(actor.who) || forge_seen) {
                out.push(refusal(
                    "not_yours",
                    format!(
                        "{} may not withdraw the approval of {by}: people withdraw their own",
                        actor.who
                    ),
                    format!("ask {by}"),
                ));
                return;
            }
            let live = s
                .approvals
                .iter()
                .any(|a| a.by.eq_ignore_ascii_case(by) && &a.sha == sha && a.withdrawn.is_none());
            if !live {
                out.push(refusal(
                    "no_approval",
                    format!("{by} has no approval of {} to withdraw", short(sha)),
                    "nothing to do",
                ));
            }
        }
        EventKind::PrClosed { number } => {
            if s.pr != Some(*number) {
                out.push(refusal(
                    "not_this_pr",
                    format!("PR #{number} is not the PR of {}", s.id),
                    "only the incident's own PR is recorded",
                ));
            }
        }
        EventKind::AntiPatternRecorded { pattern, .. } => {
            unmerged(out);
            if !out.is_empty() {
                return;
            }
            match pattern {
                AntiPattern::WideDiff => {
                    let wide = ship_refusals(s, cfg)
                        .iter()
                        .any(|r| r.code == "wide_diff" || r.code == "conflict_markers");
                    if !wide || s.wide_diff_allowed {
                        out.push(refusal(
                            "nothing_to_override",
                            format!("the diff of {} is not refused as wide", s.id),
                            "an override is recorded only when it overrides something",
                        ));
                    }
                }
                AntiPattern::BypassedGuards => {}
                AntiPattern::SkippedPreview
                | AntiPattern::ForgottenBackport
                | AntiPattern::SkippedPostmortem => out.push(refusal(
                    "nothing_to_override",
                    format!(
                        "`{}` cannot be overridden: hotfix prevents it",
                        pattern.label()
                    ),
                    "follow the step",
                )),
            }
        }
        EventKind::Merged {
            head_sha, source, ..
        } => {
            unmerged(out);
            if !out.is_empty() {
                return;
            }
            if s.head_sha.as_deref() != Some(head_sha.as_str()) {
                out.push(not_head(s, "the merged head", head_sha));
                return;
            }
            let bypassed = source != "cli" && bypass_recorded(s);
            if !bypassed {
                out.extend(ship_refusals(s, cfg));
            }
        }
        EventKind::Deployed { sha, build, .. } => {
            merged(out);
            if out.is_empty() && s.merge_sha.as_deref() != Some(sha.as_str()) {
                out.push(refusal(
                    "not_merge",
                    format!(
                        "{} is not the merge of {} ({})",
                        short(sha),
                        s.id,
                        s.merge_sha.as_deref().map(short).unwrap_or("")
                    ),
                    "production deploys the merge commit",
                ));
            }
            // "Production runs the tested build" is post-mortem evidence:
            // only a build whose preview passed its smoke checks is one.
            if let Some(DeployBuild {
                tested: true,
                from_sha: Some(from),
                ..
            }) = build
                && out.is_empty()
                && !smoke_passed_in_attempt(s, from)
            {
                out.push(refusal(
                    "untested_build",
                    format!(
                        "{} passed no smoke checks on a preview of {}: its build is not a tested one",
                        short(from),
                        s.id
                    ),
                    "record the deploy with tested = false (it built, or says why)",
                ));
            }
        }
        EventKind::HealthPassed { sha, .. } => {
            merged(out);
            if out.is_empty() && s.deployed_sha.as_deref() != Some(sha.as_str()) {
                out.push(not_deployed(s, sha));
            }
        }
        EventKind::HealthFailed { sha, .. } => {
            merged(out);
            // A failed deploy is a verdict on the merge before it is deployed.
            if out.is_empty()
                && s.deployed_sha.as_deref() != Some(sha.as_str())
                && s.merge_sha.as_deref() != Some(sha.as_str())
            {
                out.push(not_deployed(s, sha));
            }
        }
        EventKind::BackportConflict { .. } | EventKind::Backported { .. } => {
            merged(out);
            if out.is_empty() && s.backport_sha.is_some() {
                out.push(refusal(
                    "backported",
                    format!("{} is already backported", s.id),
                    "nothing to do",
                ));
            }
        }
        EventKind::BackportAborted => {
            if s.backport_conflict.is_none() {
                out.push(refusal(
                    "no_backport_conflict",
                    format!("{} has no backport in conflict", s.id),
                    "nothing to abort",
                ));
            }
        }
        EventKind::RollbackStep { forced, .. } | EventKind::RolledBack { forced, .. } => {
            rollback_rule(s, rules, kind, forced.as_deref(), out)
        }
        EventKind::ChecklistDone { key } => {
            if s.is_closed() {
                out.push(closed(s));
            } else if key == "fix_verified"
                && s.watch_verified()
                && s.from_alert()
                && s.reporter_verified().is_none()
                && !s.checklist_done.contains(key.as_str())
            {
                // Hotfix saw the fix work; the alert that opened it stays
                // silent (silenced, or its source never sends `resolved`):
                // a person who verified with the reporter vouches for it.
            } else if let Err(e) = check_tick(key) {
                out.push(refusal(
                    "bad_checklist_key",
                    e.to_string(),
                    "see `hotfix checklist`",
                ));
            }
        }
        EventKind::PostmortemScheduled { .. } => {
            if s.is_closed() {
                out.push(closed(s));
            }
        }
        EventKind::Closed => {
            if s.is_closed() {
                out.push(closed(s));
                return;
            }
            if let Some(r) = actor.token_role
                && r < ApiRole::TechLead
            {
                out.push(refusal(
                    "role",
                    format!(
                        "closing an incident needs a tech_lead token; {} has a {} token",
                        actor.who,
                        r.as_str()
                    ),
                    "ask a tech lead",
                ));
                return;
            }
            // Declined or merged at triage: nothing shipped, so there is no
            // post-hotfix checklist to finish.
            let open = if s.declined.is_some() {
                vec![]
            } else {
                open_items(s)
            };
            if !open.is_empty() {
                out.push(refusal(
                    "checklist_open",
                    format!(
                        "{} cannot be closed; open checklist items: {}",
                        s.id,
                        open.iter().map(|i| i.key).collect::<Vec<_>>().join(", ")
                    ),
                    format!(
                        "tick what you did with `hotfix checklist {} --done KEY`",
                        s.id
                    ),
                ));
            }
        }
        EventKind::HeadMoved { .. } => unmerged(out),
        EventKind::Note { .. }
        | EventKind::AlertReceived { .. }
        | EventKind::Affects { .. }
        | EventKind::ExternalUpdate { .. } => {}
        EventKind::Confirmed { .. } => {
            tech_lead_rule(cfg, actor, "confirming an incident", out);
            if out.is_empty() && !s.in_triage() {
                out.push(not_in_triage(s, cfg));
            }
        }
        EventKind::Declined { duplicate_of, .. } => {
            tech_lead_rule(cfg, actor, "declining an incident", out);
            if out.is_empty() && !before_branch(s) {
                out.push(not_in_triage(s, cfg));
            }
            if let Some(d) = duplicate_of {
                target_rule(s, rules, *d, out);
            }
        }
        EventKind::MergedInto { into } => {
            tech_lead_rule(cfg, actor, "merging incidents", out);
            if out.is_empty() && !before_branch(s) {
                out.push(not_in_triage(s, cfg));
            }
            target_rule(s, rules, *into, out);
        }
        EventKind::Absorbed { from } => {
            tech_lead_rule(cfg, actor, "merging incidents", out);
            if s.is_closed() {
                out.push(closed(s));
            } else if *from == s.id {
                out.push(refusal(
                    "bad_value",
                    format!("{} cannot be merged into itself", s.id),
                    "name another incident",
                ));
            }
        }
        EventKind::Escalated { from, to, .. } => {
            if s.is_closed() {
                out.push(closed(s));
            } else if *from != s.severity || to.rank() <= from.rank() {
                out.push(refusal(
                    "bad_value",
                    format!(
                        "{} is {}: an escalation goes from its severity to a higher one, not {from} to {to}",
                        s.id, s.severity
                    ),
                    "re-read the incident",
                ));
            }
        }
        EventKind::TriageOverdue => {
            if !s.in_triage() {
                out.push(not_in_triage(s, cfg));
            } else if s.triage_overdue {
                out.push(refusal(
                    "duplicate",
                    format!("the tech leads were already paged about {}", s.id),
                    "nothing to do",
                ));
            }
        }
        EventKind::ReportedBy { .. } => {
            if s.is_closed() {
                out.push(closed(s));
            }
        }
        EventKind::AnalysisMeasured { sha, name, .. }
        | EventKind::AnalysisFailed { sha, name, .. } => {
            merged(out);
            let canary = s
                .canary
                .as_ref()
                .is_some_and(|c| c.sha == *sha && s.merge_sha.as_deref() == Some(sha.as_str()));
            if out.is_empty() && s.deployed_sha.as_deref() != Some(sha.as_str()) && !canary {
                out.push(not_deployed(s, sha));
            } else if out.is_empty() && s.healthy_sha.as_deref() == Some(sha.as_str()) {
                out.push(refusal(
                    "verified",
                    format!(
                        "{} passed its watch on {}: its analysis `{name}` is over",
                        s.id,
                        short(sha)
                    ),
                    "a new deploy is watched afresh",
                ));
            } else if out.is_empty()
                && let EventKind::AnalysisFailed { .. } = kind
                && s.analyses
                    .iter()
                    .any(|a| a.sha == *sha && a.name == *name && a.failed.is_some())
            {
                out.push(refusal(
                    "duplicate",
                    format!("the failure of `{name}` on {} is recorded", short(sha)),
                    "nothing to do",
                ));
            }
        }
        EventKind::CanaryStep { sha, weight } => {
            merged(out);
            if !out.is_empty() {
                return;
            }
            if s.merge_sha.as_deref() != Some(sha.as_str()) {
                out.push(refusal(
                    "not_merge",
                    format!("{} is not the merge of {}", short(sha), s.id),
                    "a canary runs the merge commit",
                ));
            } else if s.deployed_sha.as_deref() == Some(sha.as_str()) {
                out.push(refusal(
                    "deployed",
                    format!("production already runs {} in full", short(sha)),
                    "nothing to do",
                ));
            } else if let Some(c) = s.canary.as_ref().filter(|c| c.sha == *sha) {
                if c.aborted.is_some() {
                    out.push(refusal(
                        "canary_aborted",
                        format!("the canary of {} was aborted", short(sha)),
                        "roll back, then start a new attempt",
                    ));
                } else if *weight <= c.weight {
                    out.push(refusal(
                        "duplicate",
                        format!(
                            "the canary of {} is at {}% already: a step goes up",
                            short(sha),
                            c.weight
                        ),
                        "nothing to do",
                    ));
                }
            }
        }
        EventKind::CanaryAborted { sha, .. } => {
            // An abort is always allowed while a canary runs, even mid-rollback.
            match s.canary.as_ref().filter(|c| c.sha == *sha) {
                None => out.push(refusal(
                    "no_canary",
                    format!("{} has no canary of {}", s.id, short(sha)),
                    "nothing to abort",
                )),
                Some(c) if c.aborted.is_some() => out.push(refusal(
                    "duplicate",
                    format!("the canary of {} is aborted already", short(sha)),
                    "nothing to do",
                )),
                Some(c) if c.weight >= 100.0 => out.push(refusal(
                    "promoted",
                    format!(
                        "the canary of {} was promoted: it is production",
                        short(sha)
                    ),
                    format!("roll back instead: `hotfix rollback {}`", s.id),
                )),
                Some(_) => {}
            }
        }
    }
}

/// Triage decisions are the tech leads' (the process: "the Tech Lead
/// confirms severity"): someone in `[team] tech_leads`, and on the server
/// with a `tech_lead` token.
fn tech_lead_rule(cfg: &Config, actor: &Actor<'_>, what: &str, out: &mut Vec<Refusal>) {
    if !cfg.is_tech_lead(actor.who) {
        out.push(refusal(
            "not_an_approver",
            format!(
                "{what} is for the tech leads in hotfix.toml [team]; {} is not one",
                actor.who
            ),
            "ask a tech lead",
        ));
    } else if let Some(r) = actor.token_role
        && r < ApiRole::TechLead
    {
        out.push(refusal(
            "role",
            format!(
                "{what} needs a tech_lead token; {} has a {} token",
                actor.who,
                r.as_str()
            ),
            "ask a tech lead",
        ));
    }
}

/// Triage ends when a branch is cut: before that, a confirmed incident can
/// still be declined or merged (it turned out to be a duplicate).
fn before_branch(s: &IncidentState) -> bool {
    s.reported
        && !s.is_closed()
        && s.declined.is_none()
        && s.attempt == 1
        && s.base_sha.is_empty()
        && s.head_sha.is_none()
}

fn in_triage(s: &IncidentState) -> Refusal {
    refusal(
        "in_triage",
        format!(
            "{} is in triage: a tech lead confirms it before anyone cuts its branch",
            s.id
        ),
        format!(
            "`hotfix triage {} confirm --severity {}` (as a tech lead), then take it",
            s.id, s.severity
        ),
    )
}

fn not_in_triage(s: &IncidentState, cfg: &Config) -> Refusal {
    refusal(
        "not_in_triage",
        format!(
            "{} is {}: triage is over (it ends with a decision or when a branch is cut)",
            s.id,
            s.phase(&cfg.policy).as_str()
        ),
        "nothing to triage",
    )
}

/// The incident a duplicate or a merge points at: another one, open.
fn target_rule(s: &IncidentState, rules: &Rules<'_>, target: IncidentId, out: &mut Vec<Refusal>) {
    if target == s.id {
        out.push(refusal(
            "bad_value",
            format!("{} cannot duplicate itself", s.id),
            "name another incident",
        ));
        return;
    }
    let Some(others) = rules.others else {
        out.push(refusal(
            "internal",
            "the other incidents were not loaded",
            "retry",
        ));
        return;
    };
    match others.iter().find(|o| o.id == target) {
        None => out.push(refusal(
            "bad_value",
            format!("there is no incident {target}"),
            "name an incident that exists",
        )),
        Some(o) if o.is_closed() => out.push(refusal(
            "closed",
            format!("{target} is closed: merge into or point at an open incident"),
            "name an open incident",
        )),
        Some(_) => {}
    }
}

fn not_pushed() -> Refusal {
    refusal(
        "not_pushed",
        "nothing has been pushed yet",
        "commit the fix on the hotfix branch and run `hotfix push`",
    )
}

fn not_deployed(s: &IncidentState, sha: &str) -> Refusal {
    refusal(
        "not_deployed",
        format!(
            "production does not run {} for {} (deployed: {})",
            short(sha),
            s.id,
            s.deployed_sha.as_deref().map(short).unwrap_or("nothing")
        ),
        "a health verdict is about the deployed merge",
    )
}

/// An admin bypass of the guards was recorded on the current head.
fn bypass_recorded(s: &IncidentState) -> bool {
    let since = s.last_push_seq.unwrap_or(0);
    s.events.iter().any(|e| {
        e.seq > since
            && matches!(
                e.kind,
                EventKind::AntiPatternRecorded {
                    pattern: AntiPattern::BypassedGuards,
                    ..
                }
            )
    })
}

fn branch_rule(out: &mut Vec<Refusal>, cfg: &Config, name: &str, branch: &str) {
    name_rule(out, name);
    let want = format!("{}{name}", cfg.git.prefix);
    if branch != want {
        out.push(refusal(
            "bad_branch",
            format!(
                "branch `{}` is not `{want}`: a hotfix branch is the prefix and the name",
                branch.chars().take(80).collect::<String>()
            ),
            "leave the branch out; it follows from the name",
        ));
    }
}

fn approve_rule(
    s: &IncidentState,
    cfg: &Config,
    actor: &Actor<'_>,
    (by, role, sha, source): (&str, Role, &str, &str),
    out: &mut Vec<Refusal>,
) {
    // Approvals are given in one's own name; only the forge, which
    // authenticated the reviewer, records someone else's.
    let forge_seen = actor.door == Door::GitHub || (actor.door == Door::Cli && source == "github");
    if !forge_seen && !by.eq_ignore_ascii_case(actor.who) {
        out.push(refusal(
            "not_yours",
            format!(
                "{} may not record an approval by {by}: approvals are given in one's own name",
                actor.who
            ),
            format!("ask {by} to approve"),
        ));
        return;
    }
    match check_approve(s, cfg, by) {
        Err(r) => {
            out.push(r);
            return;
        }
        Ok(ApproveCheck::AlreadyApproved) => {
            out.push(refusal(
                "already_approved",
                format!("{by} already approved {} on this head", s.id),
                "nothing to do",
            ));
            return;
        }
        Ok(ApproveCheck::Record(want)) if want != role => {
            out.push(refusal(
                "role",
                format!("{by} approves as {}, not as {}", want.label(), role.label()),
                "the role comes from [team] in hotfix.toml",
            ));
            return;
        }
        Ok(ApproveCheck::Record(_)) => {}
    }
    if s.head_sha.as_deref() != Some(sha) {
        out.push(not_head(s, "the approval", sha));
        return;
    }
    if role == Role::TechLead
        && let Some(r) = actor.token_role
        && r < ApiRole::TechLead
    {
        out.push(refusal(
            "role",
            format!(
                "a tech lead's approval needs a tech_lead token; {} has a {} token",
                actor.who,
                r.as_str()
            ),
            "sign in with the tech lead's own token",
        ));
    }
}

fn rollback_rule(
    s: &IncidentState,
    rules: &Rules<'_>,
    kind: &EventKind,
    forced: Option<&str>,
    out: &mut Vec<Refusal>,
) {
    if s.rollback.is_some() {
        out.push(refusal(
            "rolled_back",
            format!("{} is already rolled back", s.id),
            "nothing to do",
        ));
        return;
    }
    if s.merge_sha.is_none() {
        out.push(refusal(
            "not_merged",
            format!(
                "{} is not merged: production never ran it, nothing to roll back",
                s.id
            ),
            "keep fixing and `hotfix push`, or abandon the branch",
        ));
        return;
    }
    // Continuing a rollback that already started was decided then.
    let forced = forced.is_some()
        || s.rollback_progress
            .as_ref()
            .is_some_and(|p| p.forced.is_some());
    if s.rollback_progress.is_none() && !forced {
        match rules.others {
            Some(others) => out.extend(rollback_refusals(s, others)),
            None => out.push(refusal(
                "internal",
                "the rollback's live check needs the other incidents, and they were not loaded",
                "this is a bug in hotfix: please report it",
            )),
        }
    }
    if let EventKind::RolledBack {
        main_revert,
        develop_revert,
        ..
    } = kind
    {
        if main_revert.is_none() {
            out.push(refusal(
                "rollback_incomplete",
                format!("{}: the merge is not reverted on main", s.id),
                "a rollback is complete once main is reverted",
            ));
        }
        if s.backport_sha.is_some() && develop_revert.is_none() {
            out.push(refusal(
                "rollback_incomplete",
                format!("{}: the backport is not reverted on develop", s.id),
                "revert it on develop too",
            ));
        }
    }
}

/// Why rolling `s` back now would undo more than `s`: it is closed, later
/// incidents shipped on top of it, or a forced rollback of an earlier one
/// already took production back past it. `--force` (recorded) overrides.
pub fn rollback_refusals(s: &IncidentState, others: &[IncidentState]) -> Vec<Refusal> {
    let shipped_after = shipped_after(s, others);
    let past = rolled_past(s, others);
    let mut out = vec![];
    if s.is_closed() {
        out.push(refusal(
            "rollback_closed",
            format!(
                "{} is closed: its fix has been verified and later work builds on it",
                s.id
            ),
            "roll back what production runs now, or `hotfix rollback ID --force --reason TEXT` (recorded)",
        ));
    }
    if !shipped_after.is_empty() {
        let ids: Vec<String> = shipped_after.iter().map(|i| i.to_string()).collect();
        out.push(refusal(
            "not_live",
            format!(
                "{} is not what production runs: {} shipped after it; rolling {} back would also undo {}",
                s.id,
                ids.join(", "),
                s.id,
                ids.join(", ")
            ),
            format!(
                "roll back {} instead, or `hotfix rollback {} --force --reason TEXT` (recorded)",
                ids.last().map(String::as_str).unwrap_or(""),
                s.id
            ),
        ));
    }
    if !past.is_empty() {
        let ids = past
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        out.push(refusal(
            "not_live",
            format!(
                "production no longer runs {}: the forced rollback of {ids} took it back to before {ids}; rolling {} back would put {ids}'s reverted fix into production",
                s.id, s.id
            ),
            format!(
                "ship a new fix instead, or `hotfix rollback {} --force --reason TEXT` (recorded)",
                s.id
            ),
        ));
    }
    out
}

/// The incidents merged after `s` whose merge is still live (not rolled
/// back): what a rollback of `s` would undo with it.
fn shipped_after<'a>(
    s: &IncidentState,
    all: impl IntoIterator<Item = &'a IncidentState>,
) -> Vec<IncidentId> {
    let Some(mine) = merged_at(s) else {
        return vec![];
    };
    let mut v: Vec<(Timestamp, IncidentId)> = all
        .into_iter()
        .filter(|o| o.id != s.id && o.rollback.is_none() && o.rollback_progress.is_none())
        .filter_map(|o| merged_at(o).map(|t| (t, o.id)))
        .filter(|(t, id)| *t > mine || (*t == mine && *id > s.id))
        .collect();
    v.sort();
    v.into_iter().map(|(_, id)| id).collect()
}

/// Incidents merged before `s` whose *forced* rollback came after `s` was
/// merged: that rollback took production back to before them, so
/// production no longer runs `s` either, and rolling `s` back would put
/// their reverted fix back into production.
fn rolled_past<'a>(
    s: &IncidentState,
    all: impl IntoIterator<Item = &'a IncidentState>,
) -> Vec<IncidentId> {
    let Some(mine) = merged_at(s) else {
        return vec![];
    };
    all.into_iter()
        .filter(|o| o.id != s.id)
        .filter(|o| {
            let forced_after = o
                .rollback
                .as_ref()
                .is_some_and(|r| r.forced.is_some() && r.at >= mine);
            let merged_before = o
                .events
                .iter()
                .any(|e| matches!(e.kind, EventKind::Merged { .. }) && e.at <= mine);
            forced_after && merged_before
        })
        .map(|o| o.id)
        .collect()
}

/// When the current attempt of `s` was merged.
fn merged_at(s: &IncidentState) -> Option<Timestamp> {
    s.merge_sha.as_ref()?;
    s.events
        .iter()
        .rev()
        .find(|e| matches!(e.kind, EventKind::Merged { .. }))
        .map(|e| e.at)
}

/// Checks a declaration from any door: the name rule, the branch that
/// follows from it, the base it was cut from (or none yet), a plain title.
pub fn admit_declared(cfg: &Config, kind: &EventKind) -> Result<(), Vec<Refusal>> {
    let mut out = vec![];
    let EventKind::Declared {
        name,
        title,
        branch,
        base_sha,
        ..
    } = kind
    else {
        return Err(vec![refusal(
            "bad_event",
            "a declaration must be a `declared` event",
            "send the declaration's fields",
        )]);
    };
    branch_rule(&mut out, cfg, name, branch);
    if !base_sha.is_empty() {
        oid(&mut out, "base_sha", base_sha);
    }
    if title.trim().is_empty() {
        out.push(refusal("bad_value", "an empty title", "say what is broken"));
    }
    text(&mut out, "title", title, MAX_TITLE, true);
    if out.is_empty() { Ok(()) } else { Err(out) }
}

#[cfg(test)]
mod analysis_rules {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::event::Event;
    use crate::severity::Severity;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn merged(deployed: bool) -> IncidentState {
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
                merge_sha: "c".repeat(40),
                head_sha: "b".repeat(40),
                previous_main: "a".repeat(40),
                previous_deployment: None,
                source: "cli".into(),
            },
        ];
        if deployed {
            kinds.push(EventKind::Deployed {
                sha: "c".repeat(40),
                environment: "production".into(),
                deployment: None,
                previous_deployment: None,
                build: None,
            });
        }
        let events: Vec<Event> = kinds
            .into_iter()
            .enumerate()
            .map(|(i, kind)| Event {
                incident: IncidentId(1),
                seq: i as u64 + 1,
                at: at(i as i64),
                actor: "dev".into(),
                kind,
            })
            .collect();
        IncidentState::fold(&events).unwrap()
    }

    fn codes(s: &IncidentState, door: Door, kind: &EventKind) -> Vec<&'static str> {
        let cfg = Config::parse("").unwrap();
        let rules = Rules {
            cfg: &cfg,
            others: Some(&[]),
        };
        match admit(s, &rules, &Actor::new("dev", door), kind) {
            Ok(()) => vec![],
            Err(r) => r.iter().map(|r| r.code).collect(),
        }
    }

    fn failed(v: f64) -> EventKind {
        EventKind::AnalysisFailed {
            name: "5xx".into(),
            sha: "c".repeat(40),
            values: vec![v],
            threshold: "max 0.01".into(),
            query: "q".into(),
        }
    }

    #[test]
    fn only_the_engine_and_the_watch_record_measurements_and_canaries() {
        let s = merged(true);
        for door in [Door::Cli, Door::Api, Door::Watch] {
            assert_eq!(
                codes(&s, door, &failed(0.2)),
                Vec::<&str>::new(),
                "{door:?}"
            );
        }
        for door in [
            Door::Dashboard,
            Door::Slack,
            Door::GitHub,
            Door::Alert,
            Door::Timer,
        ] {
            assert_eq!(
                codes(&s, door, &failed(0.2)),
                vec!["watch_only"],
                "{door:?}"
            );
            let step = EventKind::CanaryStep {
                sha: "c".repeat(40),
                weight: 10.0,
            };
            assert_eq!(codes(&merged(false), door, &step), vec!["watch_only"]);
        }
        assert!(FORBIDDEN_CODES.contains(&"watch_only"));
    }

    #[test]
    fn measurements_are_finite_numbers_of_the_deployed_release_recorded_once() {
        let s = merged(true);
        assert_eq!(codes(&s, Door::Cli, &failed(f64::NAN)), vec!["bad_value"]);
        assert_eq!(
            codes(&merged(false), Door::Cli, &failed(0.2)),
            vec!["not_deployed"]
        );
        let s = s.with(at(9), "dev", &failed(0.2));
        assert_eq!(codes(&s, Door::Cli, &failed(0.2)), vec!["duplicate"]);
        let healthy = merged(true).with(
            at(9),
            "dev",
            &EventKind::HealthPassed {
                sha: "c".repeat(40),
                probes: 3,
            },
        );
        assert_eq!(codes(&healthy, Door::Watch, &failed(0.2)), vec!["verified"]);
    }

    fn deployed_with(build: DeployBuild) -> EventKind {
        EventKind::Deployed {
            sha: "c".repeat(40),
            environment: "production".into(),
            deployment: None,
            previous_deployment: None,
            build: Some(build),
        }
    }

    fn tested_from(sha: &str) -> DeployBuild {
        DeployBuild {
            tested: true,
            built: false,
            from_sha: Some(sha.to_string()),
            build_ms: Some(35),
            note: None,
        }
    }

    fn smoke(passed: bool, sha: &str) -> EventKind {
        let checks = vec![];
        if passed {
            EventKind::SmokePassed {
                sha: sha.to_string(),
                checks,
            }
        } else {
            EventKind::SmokeFailed {
                sha: sha.to_string(),
                checks,
            }
        }
    }

    #[test]
    fn a_tested_build_needs_a_passed_smoke_of_the_preview_it_came_from() {
        let b = "b".repeat(40);
        // Forged: no smoke passed on b in this incident.
        assert_eq!(
            codes(&merged(false), Door::Cli, &deployed_with(tested_from(&b))),
            vec!["untested_build"]
        );
        let smoked = merged(false).with(at(5), "dev", &smoke(true, &b));
        assert_eq!(
            codes(&smoked, Door::Cli, &deployed_with(tested_from(&b))),
            Vec::<&str>::new()
        );
        // Another sha's smoke does not vouch for b.
        let other = merged(false).with(at(5), "dev", &smoke(true, &"d".repeat(40)));
        assert_eq!(
            codes(&other, Door::Cli, &deployed_with(tested_from(&b))),
            vec!["untested_build"]
        );
        // The last verdict on b counts: a failed re-run takes it back.
        let failed_since = smoked.with(at(6), "dev", &smoke(false, &b));
        assert_eq!(
            codes(&failed_since, Door::Cli, &deployed_with(tested_from(&b))),
            vec!["untested_build"]
        );
        // A smoke of an earlier attempt does not count for this one.
        let again = smoked
            .with(
                at(7),
                "dev",
                &EventKind::AttemptStarted {
                    attempt: 2,
                    name: "pdf-2".into(),
                    branch: "hotfix/pdf-2".into(),
                    base_sha: "a".repeat(40),
                    severity: Severity::High,
                },
            )
            .with(
                at(8),
                "dev",
                &EventKind::Merged {
                    merge_sha: "c".repeat(40),
                    head_sha: "e".repeat(40),
                    previous_main: "a".repeat(40),
                    previous_deployment: None,
                    source: "cli".into(),
                },
            );
        assert_eq!(
            codes(&again, Door::Cli, &deployed_with(tested_from(&b))),
            vec!["untested_build"]
        );
        // A build that says it built is never the tested one, needs no smoke.
        let built = DeployBuild {
            tested: false,
            built: true,
            from_sha: Some(b.clone()),
            build_ms: Some(65_000),
            note: Some("main moved since the preview".into()),
        };
        assert_eq!(
            codes(&merged(false), Door::Cli, &deployed_with(built.clone())),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn a_build_record_holds_together() {
        let b = "b".repeat(40);
        let smoked = merged(false).with(at(5), "dev", &smoke(true, &b));
        let mut no_from = tested_from(&b);
        no_from.from_sha = None;
        assert_eq!(
            codes(&smoked, Door::Cli, &deployed_with(no_from)),
            vec!["bad_value"]
        );
        let mut both = tested_from(&b);
        both.built = true;
        assert_eq!(
            codes(&smoked, Door::Cli, &deployed_with(both)),
            vec!["bad_value"]
        );
        let bad_sha = tested_from("main");
        assert_eq!(
            codes(&smoked, Door::Cli, &deployed_with(bad_sha)),
            vec!["bad_value"]
        );
        let long = DeployBuild {
            note: Some("x".repeat(MAX_SHORT + 1)),
            ..DeployBuild::default()
        };
        assert_eq!(
            codes(&smoked, Door::Cli, &deployed_with(long)),
            vec!["bad_value"]
        );
    }

    #[test]
    fn a_canary_goes_up_until_promoted_and_aborts_once() {
        let c = "c".repeat(40);
        let step = |w: f64| EventKind::CanaryStep {
            sha: c.clone(),
            weight: w,
        };
        let abort = EventKind::CanaryAborted {
            sha: c.clone(),
            reason: "5xx".into(),
        };
        let s = merged(false);
        assert_eq!(codes(&s, Door::Cli, &abort), vec!["no_canary"]);
        assert_eq!(codes(&s, Door::Cli, &step(0.0)), vec!["bad_value"]);
        let s = s.with(at(9), "dev", &step(10.0));
        // During the canary its analyses are recorded on the merge.
        assert_eq!(codes(&s, Door::Cli, &failed(0.2)), Vec::<&str>::new());
        assert_eq!(codes(&s, Door::Cli, &step(10.0)), vec!["duplicate"]);
        assert_eq!(codes(&s, Door::Cli, &step(50.0)), Vec::<&str>::new());
        let aborted = s.with(at(10), "dev", &abort);
        assert_eq!(codes(&aborted, Door::Cli, &abort), vec!["duplicate"]);
        assert_eq!(
            codes(&aborted, Door::Cli, &step(50.0)),
            vec!["canary_aborted"]
        );
        let promoted = s.with(at(10), "dev", &step(100.0));
        assert_eq!(codes(&promoted, Door::Cli, &abort), vec!["promoted"]);
        // Once production runs it in full, there is no canary step left.
        assert_eq!(
            codes(&merged(true), Door::Cli, &step(10.0)),
            vec!["deployed"]
        );
    }
}
