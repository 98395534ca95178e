//! Applies a stored GitHub delivery to the incident log.
//!
//! An event about a pull request is matched to the incident whose own PR it
//! is: the PR's number is the one the incident recorded (`pr_opened`), the
//! PR is in the `[forge]` repository, its base is the configured main and its
//! head is the incident's branch in that same repository (a fork's
//! `hotfix/<name>` is somebody else's branch). Before the incident has a PR
//! number the branch decides, still with base main and the same repository,
//! and only for a PR number no incident recorded. A PR from the incident's
//! branch into develop is its backport. A push is matched by its branch; a
//! deployment by the commit deployed (the head, the merge, what production
//! runs).
//!
//! Every write goes through [`record`], that is [`ops::append_with`] from
//! the GitHub door of the rulebook (`hotfix_core::admit`), which re-reads
//! the incident and retries on a concurrent append, so the decisions below
//! always look at the fresh state. Each decision is
//! idempotent, so a redelivery under a new delivery id records nothing
//! twice: reviews are known by GitHub's review id, merges by their sha,
//! pushes by where they move the branch from and to.
//!
//! Outcomes are strings kept on the inbox item: `approved …`, `withdrawn …`,
//! `recorded …`, `ignored: …` (nothing to do), `refused: …` (a workflow rule
//! said no). An `Err` means "try again later" (the store was unavailable,
//! or a push is left to settle).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use hotfix_core::admit::{Actor, Door};
use hotfix_core::event::{AntiPattern, EventKind};
use hotfix_core::guards::{ApproveCheck, check_approve, ship_refusals, withdrawals};
use hotfix_core::id::IncidentId;
use hotfix_core::state::IncidentState;
use hotfix_core::team::{ApiRole, InboxItem};
use hotfix_core::validate::{MAX_SHORT, is_object_id};
use hotfix_providers::forge::github::GithubConfig;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::intake::SOURCE;
use super::payload::{
    DeploymentStatusEvent, PullRequest, PullRequestEvent, PushEvent, Repository, ReviewEvent,
};
use crate::auth::Caller;
use crate::ops::Outbox;
use crate::workers::NotYet;
use crate::{ApiError, AppState, ops};

/// How long a push that moves the head is left to settle before it is
/// applied. `hotfix push` pushes the branch and then records `pushed`;
/// GitHub's echo of that push can arrive in between. Correctness does not
/// depend on the wait: the CLI re-decides on the fresh log and records
/// `pushed`, with the commits and the diff the guards need, even after a
/// `head_moved` (hotfix-engine `push_recorded`). The wait keeps the echo of
/// hotfix's own push from putting a `head_moved` in the log and telling the
/// channel the branch "was pushed on GitHub": two seconds (one inbox retry)
/// let the CLI's record land first, and the echo then matches the head and
/// is dropped.
pub const PUSH_SETTLE_S: i64 = 2;

/// The error code a settling push is given back with.
const DEFERRED: &str = "deferred";

/// What the worker stored, as written by the intake.
#[derive(Debug, Deserialize)]
struct Envelope {
    event: String,
    payload: Value,
}

/// The `[forge]` settings the webhook needs.
struct Forge {
    /// `owner/name` when the forge is GitHub: deliveries about other
    /// repositories are ignored (an organisation webhook shares one secret
    /// across every repository, and a `hotfix/x` branch elsewhere is not ours).
    repo: Option<String>,
    /// Team identity → GitHub login (`[forge] logins`).
    logins: BTreeMap<String, String>,
}

impl Forge {
    fn of(st: &AppState) -> Result<Forge, String> {
        if st.cfg.forge.provider != "github" {
            return Ok(Forge {
                repo: None,
                logins: BTreeMap::new(),
            });
        }
        let g = GithubConfig::from_table(&st.cfg.forge.settings)?;
        Ok(Forge {
            repo: Some(g.repo),
            logins: g.logins,
        })
    }

    /// GitHub logins are case-insensitive.
    fn identity_of(&self, login: &str) -> Option<String> {
        self.logins
            .iter()
            .find(|(_, l)| l.eq_ignore_ascii_case(login))
            .map(|(id, _)| id.clone())
    }

    /// Why a delivery about `repo` is not ours, if it is not.
    fn foreign(&self, repo: Option<&Repository>) -> Option<String> {
        let want = self.repo.as_deref()?;
        let got = repo.and_then(|r| r.full_name.as_deref())?;
        if got.eq_ignore_ascii_case(want) {
            None
        } else {
            Some(format!(
                "ignored: delivery about {got}, not the [forge] repo {want}"
            ))
        }
    }
}

/// Processes one inbox item of source `github`.
pub fn process(st: &AppState, item: &InboxItem) -> Result<String, NotYet> {
    let env: Envelope = match serde_json::from_str(&item.body) {
        Ok(e) => e,
        Err(e) => return Ok(format!("ignored: unreadable inbox item ({e})")),
    };
    let forge = match Forge::of(st) {
        Ok(f) => f,
        Err(e) => return Ok(format!("ignored: {e}")),
    };
    let result = match env.event.as_str() {
        "pull_request_review" => {
            parsed(env.payload, "pull_request_review").and_then(|e| review(st, &forge, e))
        }
        "push" => parsed(env.payload, "push").and_then(|e| push(st, &forge, e, item)),
        "pull_request" => {
            parsed(env.payload, "pull_request").and_then(|e| pull_request(st, &forge, e, item))
        }
        "deployment_status" => {
            parsed(env.payload, "deployment_status").and_then(|e| deployment(st, &forge, e))
        }
        other => Ok(format!("ignored: event `{other}` is not used by hotfix")),
    };
    match result {
        Ok(outcome) => Ok(outcome),
        // A rule of the workflow said no: final, kept as the outcome.
        Err(e)
            if matches!(
                e.status,
                StatusCode::FORBIDDEN | StatusCode::UNPROCESSABLE_ENTITY
            ) =>
        {
            Ok(format!("refused: {}", e.message))
        }
        Err(e) if matches!(e.status, StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST) => {
            Ok(format!("ignored: {}", e.message))
        }
        // A push is settling: back when it has, without spending an attempt.
        Err(e) if e.code == DEFERRED => Err(NotYet::Deferred {
            why: e.message,
            until_s: item.received_at + PUSH_SETTLE_S,
        }),
        // The store was unavailable, the incident kept changing: the worker
        // retries with backoff.
        Err(e) => Err(NotYet::Failed(e.message)),
    }
}

fn parsed<T: DeserializeOwned>(payload: Value, event: &str) -> Result<T, ApiError> {
    serde_json::from_value(payload)
        .map_err(|e| ApiError::bad_request(format!("unreadable `{event}` payload: {e}")))
}

/// A delivery that does not concern any incident: [`process`] keeps it as
/// `ignored: {why}`.
fn ignored(why: String) -> ApiError {
    ApiError::not_found(why)
}

/// What a decision on the fresh state comes to: the outcome kept on the
/// inbox item, the events to append (none: nothing to do) and notifications
/// of its own.
type Decision = (String, Vec<EventKind>, Outbox);

/// Nothing to append, for `why`.
fn skip(why: String) -> Result<Decision, ApiError> {
    Ok((why, vec![], vec![]))
}

/// Decides on the fresh state of `id` and appends what was decided as
/// `actor` through the GitHub door of the rulebook (every write of the
/// webhook comes here); the outcome of the decision that was appended.
fn record(
    st: &AppState,
    actor: &str,
    id: IncidentId,
    decide: &mut dyn FnMut(&IncidentState) -> Result<Decision, ApiError>,
) -> Result<String, ApiError> {
    let mut outcome = String::new();
    ops::append_with(st, &Actor::new(actor, Door::GitHub), id, &mut |s| {
        let (o, kinds, extra) = decide(s)?;
        outcome = o;
        Ok((kinds, extra))
    })?;
    Ok(outcome)
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// A commit sha from the payload, as git prints it, if it is one.
fn commit(s: Option<&str>) -> Option<String> {
    s.map(str::to_ascii_lowercase).filter(|s| is_object_id(s))
}

/// The all-zero sha GitHub sends for "no commit" (a branch created or deleted).
fn is_zero(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c == '0')
}

/// At most `max` characters.
fn bounded(s: String, max: usize) -> String {
    if s.chars().count() <= max {
        s
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The newest open incident that `matches`.
fn newest_open(
    all: &ops::Snapshot,
    matches: impl Fn(&IncidentState) -> bool,
) -> Option<&IncidentState> {
    all.iter()
        .filter(|s| !s.is_closed() && matches(s))
        .max_by_key(|s| s.id)
}

/// The incident whose branch is `branch`.
fn by_branch(st: &AppState, branch: &str) -> Result<IncidentId, ApiError> {
    newest_open(&ops::all(st)?, |s| s.branch == branch)
        .map(|s| s.id)
        .ok_or_else(|| ignored(format!("no incident for {branch}")))
}

/// What a pull request is to hotfix.
#[derive(Debug, Clone, Copy)]
enum PrOf {
    /// The incident's own PR (into main).
    Hotfix(IncidentId),
    /// The incident's backport PR (its branch into develop).
    Backport(IncidentId),
}

/// Matches a pull request to an incident (see the module docs); anything
/// else is `ignored` with the reason.
fn pr_of(
    st: &AppState,
    forge: &Forge,
    pr: &PullRequest,
    repository: Option<&Repository>,
) -> Result<PrOf, ApiError> {
    let n = pr.number;
    let head = pr.head.name.as_str();
    let git = &st.cfg.git;
    let Some(base) = &pr.base else {
        return Err(ignored(format!(
            "PR #{n} names no base branch; only PRs into {} are hotfixes",
            git.main
        )));
    };
    let event_repo = repository.and_then(|r| r.full_name.as_deref());
    let Some(base_repo) = base.repo_name().or(event_repo) else {
        return Err(ignored(format!("PR #{n} names no repository")));
    };
    if let Some(want) = forge.repo.as_deref()
        && !base_repo.eq_ignore_ascii_case(want)
    {
        return Err(ignored(format!(
            "PR #{n} is in {base_repo}, not the [forge] repo {want}"
        )));
    }
    match pr.head.repo_name() {
        Some(h) if h.eq_ignore_ascii_case(base_repo) => {}
        other => {
            return Err(ignored(format!(
                "PR #{n} comes from the fork {}: its `{head}` is not a branch of {base_repo}",
                other.unwrap_or("(deleted)")
            )));
        }
    }
    let all = ops::all(st)?;
    let on_branch =
        |f: &dyn Fn(&IncidentState) -> bool| newest_open(&all, |s| s.branch == head && f(s));
    if base.name == git.develop {
        return on_branch(&|_| true)
            .map(|s| PrOf::Backport(s.id))
            .ok_or_else(|| {
                ignored(format!(
                    "no incident for {head} (PR #{n} into {})",
                    git.develop
                ))
            });
    }
    if base.name != git.main {
        return Err(ignored(format!(
            "PR #{n} is into {}, not {} (a hotfix) or {} (its backport)",
            base.name, git.main, git.develop
        )));
    }
    if let Some(s) = on_branch(&|s| s.pr == Some(n)) {
        return Ok(PrOf::Hotfix(s.id));
    }
    // Before `pr_opened` the branch decides, for a number no incident
    // recorded in any attempt (the state keeps only the PR of the current
    // attempt, so only this case reads the logs).
    if let Some(s) = on_branch(&|s| s.pr.is_none())
        && !all.iter().any(|s| {
            s.events
                .iter()
                .any(|e| matches!(e.kind, EventKind::PrOpened { number, .. } if number == n))
        })
    {
        return Ok(PrOf::Hotfix(s.id));
    }
    match on_branch(&|_| true) {
        Some(s) => Err(ignored(match s.pr {
            Some(p) => format!("PR #{n} is not the PR of {} (#{p})", s.id),
            None => format!(
                "PR #{n} is the PR of an earlier attempt or of another incident; {} has no PR yet",
                s.id
            ),
        })),
        None => Err(ignored(format!("no incident for {head}"))),
    }
}

/// Still the incident's PR on the fresh state (its number is not known to
/// have changed since [`pr_of`] looked).
fn still_pr(s: &IncidentState, n: u64) -> bool {
    s.pr.is_none_or(|p| p == n)
}

/// An identical external update is already in the log (a second delivery of
/// the same fact under another delivery id).
fn already_recorded(s: &IncidentState, what: &str, detail: &str) -> bool {
    s.events.iter().any(|e| {
        matches!(&e.kind, EventKind::ExternalUpdate { source, what: w, detail: d }
            if source == SOURCE && w == what && d == detail)
    })
}

/// `text` names GitHub review `rid` (`review 12` is not `review 123`).
fn names_review(text: &str, rid: u64) -> bool {
    let key = format!("review {rid}");
    text.match_indices(&key).any(|(i, _)| {
        !text[i + key.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// The GitHub review a withdrawal names (`GitHub review <id> …`).
fn withdrawing_review(reason: &str) -> Option<u64> {
    let rest = reason.strip_prefix("GitHub review ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A later GitHub review by `identity` already withdrew their approval of
/// `sha`: GitHub numbers reviews in the order they are given, so review
/// `rid` (an approval) is older than that withdrawal and a delivery of it
/// now is a replay.
fn withdrawn_since(s: &IncidentState, identity: &str, sha: &str, rid: u64) -> Option<u64> {
    s.events.iter().find_map(|e| match &e.kind {
        EventKind::ApprovalWithdrawn {
            by,
            sha: w,
            reason,
            source,
        } if source == SOURCE && by.eq_ignore_ascii_case(identity) && w == sha => {
            withdrawing_review(reason).filter(|later| *later > rid)
        }
        _ => None,
    })
}

/// What the log already records of GitHub review `rid`: a withdrawal it
/// caused, or its dismissal.
fn review_recorded(s: &IncidentState, rid: u64) -> Option<&'static str> {
    s.events.iter().find_map(|e| match &e.kind {
        EventKind::ApprovalWithdrawn { reason, source, .. }
            if source == SOURCE && names_review(reason, rid) =>
        {
            Some("already withdrawn")
        }
        EventKind::ExternalUpdate { source, detail, .. }
            if source == SOURCE && names_review(detail, rid) =>
        {
            Some("already recorded")
        }
        _ => None,
    })
}

/// How a review is named in reasons and outcomes.
fn review_name(rid: Option<u64>) -> String {
    match rid {
        Some(r) => format!("GitHub review {r}"),
        None => "a GitHub review".to_string(),
    }
}

/// `pull_request_review`: an approval on GitHub is an approval of the
/// incident, under the same rules as `POST /api/v1/incidents/{id}/approve`;
/// a dismissed review, or *changes requested*, withdraws the approval.
fn review(st: &AppState, forge: &Forge, e: ReviewEvent) -> Result<String, ApiError> {
    if let Some(why) = forge.foreign(e.repository.as_ref()) {
        return Ok(why);
    }
    let n = e.pull_request.number;
    let id = match pr_of(st, forge, &e.pull_request, e.repository.as_ref())? {
        PrOf::Hotfix(id) => id,
        PrOf::Backport(id) => {
            return Ok(format!(
                "ignored: a review of PR #{n}, the backport of {id}; approvals count on the hotfix PR"
            ));
        }
    };
    let login = e.review.user.login.as_str();
    let identity = forge.identity_of(login);
    let state = e.review.state.to_ascii_lowercase();
    let r = Review {
        id,
        pr: n,
        rid: e.review.id,
        login,
        identity: identity.as_deref(),
    };
    match (e.action.as_str(), state.as_str()) {
        ("dismissed", _) => dismissed(st, &r),
        ("submitted", "approved") => {
            approved(st, &r, e.review.commit_id.as_deref().unwrap_or_default())
        }
        ("submitted", "changes_requested") => changes_requested(st, &r),
        ("submitted", other) => Ok(format!(
            "ignored: review by {login} is `{other}`, not an approval"
        )),
        (other, _) => Ok(format!("ignored: review action `{other}`")),
    }
}

/// One review, matched to its incident.
struct Review<'a> {
    id: IncidentId,
    pr: u64,
    rid: Option<u64>,
    login: &'a str,
    /// The team identity of the reviewer (`[forge.logins]`).
    identity: Option<&'a str>,
}

impl Review<'_> {
    /// Who, for outcomes and details: `login (identity)`.
    fn who(&self) -> String {
        match self.identity {
            Some(i) => format!("{} ({i})", self.login),
            None => self.login.to_string(),
        }
    }

    /// The outcome of withdrawing the reviewer's approval of the head of `s`.
    fn withdrawn(&self, s: &IncidentState, reason: &str) -> String {
        format!(
            "withdrawn on {}: the approval by {} of {}; {reason}",
            self.id,
            self.who(),
            short(s.head_sha.as_deref().unwrap_or(""))
        )
    }

    /// Why nothing is done: this review is already on the log.
    fn seen(&self, s: &IncidentState) -> Option<String> {
        let rid = self.rid?;
        review_recorded(s, rid).map(|what| {
            format!(
                "ignored: {what}: {} is already on the log of {}",
                review_name(self.rid),
                self.id
            )
        })
    }
}

/// `submitted` `approved`.
fn approved(st: &AppState, r: &Review<'_>, sha: &str) -> Result<String, ApiError> {
    let (id, login) = (r.id, r.login);
    let Some(identity) = r.identity else {
        return Ok(format!(
            "ignored: login {login} is not mapped in [forge.logins]"
        ));
    };
    let sha = sha.to_ascii_lowercase();
    // GitHub authenticated the reviewer and the mapping in hotfix.toml names
    // the person: their [team] role decides the slot, as a token would.
    let caller = Caller {
        user: identity.to_string(),
        role: if st.cfg.is_tech_lead(identity) {
            ApiRole::TechLead
        } else {
            ApiRole::Developer
        },
    };
    record(st, identity, id, &mut |s| {
        if !still_pr(s, r.pr) {
            return skip(format!("ignored: PR #{} is no longer the PR of {id}", r.pr));
        }
        // A review that was dismissed (or withdrew) does not approve again
        // when its delivery is sent once more, nor does one older than the
        // review that withdrew the reviewer's approval.
        if let Some(why) = r.seen(s) {
            return skip(why);
        }
        if let Some(rid) = r.rid
            && let Some(later) = withdrawn_since(s, identity, &sha, rid)
        {
            return skip(format!(
                "ignored: replay: GitHub review {rid} is older than review {later}, which withdrew the approval of {identity}"
            ));
        }
        let role = ops::approval_role(st, &caller, s)?;
        let head = s.head_sha.as_deref().unwrap_or("");
        if head != sha {
            return skip(format!(
                "ignored: stale review: {login} approved {} but the head of {id} is {}; nothing recorded",
                short(&sha),
                short(head)
            ));
        }
        if matches!(
            check_approve(s, &st.cfg, identity),
            Ok(ApproveCheck::AlreadyApproved)
        ) {
            return skip(format!(
                "ignored: {identity} already approved {id} at {}",
                short(head)
            ));
        }
        Ok((
            format!(
                "approved {id} at {} by {identity} ({login}) as {}",
                short(head),
                role.label()
            ),
            vec![EventKind::Approved {
                by: identity.to_string(),
                role,
                sha: sha.clone(),
                source: SOURCE.to_string(),
            }],
            vec![],
        ))
    })
}

/// `submitted` `changes_requested`: the reviewer no longer approves the head.
fn changes_requested(st: &AppState, r: &Review<'_>) -> Result<String, ApiError> {
    let (id, login) = (r.id, r.login);
    let Some(identity) = r.identity else {
        return Ok(format!(
            "ignored: review by {login} is `changes_requested`; login {login} is not mapped in [forge.logins]"
        ));
    };
    let reason = format!("{}: changes requested by {login}", review_name(r.rid));
    record(st, identity, id, &mut |s| {
        if let Some(why) = r.seen(s) {
            return skip(why);
        }
        let kinds = withdrawals(s, identity, &reason, SOURCE);
        if kinds.is_empty() {
            return skip(format!(
                "ignored: review by {login} is `changes_requested`; {identity} has no approval of the head of {id} to withdraw"
            ));
        }
        Ok((r.withdrawn(s, &reason), kinds, vec![]))
    })
}

/// `dismissed`: the approval the review gave no longer counts. A dismissal
/// that withdraws nothing (an unmapped login, an approval already stale) is
/// kept on the log with the review id, so its redelivery is recognised.
fn dismissed(st: &AppState, r: &Review<'_>) -> Result<String, ApiError> {
    let id = r.id;
    let reason = match r.rid {
        Some(rid) => format!("GitHub review {rid} dismissed"),
        None => "a GitHub review was dismissed".to_string(),
    };
    let detail = match r.rid {
        Some(rid) => format!("{}, review {rid}", r.who()),
        None => r.who(),
    };
    record(st, SOURCE, id, &mut |s| {
        if let Some(why) = r.seen(s) {
            return skip(why);
        }
        let kinds = r
            .identity
            .map(|i| withdrawals(s, i, &reason, SOURCE))
            .unwrap_or_default();
        if !kinds.is_empty() {
            return Ok((r.withdrawn(s, &reason), kinds, vec![]));
        }
        if already_recorded(s, "review dismissed", &detail) {
            return skip(format!(
                "ignored: {id} already records the dismissal of {detail}"
            ));
        }
        Ok((
            format!(
                "recorded on {id}: review by {detail} dismissed; no approval of theirs counted"
            ),
            vec![EventKind::ExternalUpdate {
                source: SOURCE.into(),
                what: "review dismissed".into(),
                detail: detail.clone(),
            }],
            vec![],
        ))
    })
}

/// The heads the incident had before (every `pushed` and `head_moved`).
fn earlier_head(s: &IncidentState, sha: &str) -> bool {
    s.events.iter().any(|e| match &e.kind {
        EventKind::Pushed { sha: h, .. } | EventKind::HeadMoved { sha: h, .. } => h == sha,
        _ => false,
    })
}

/// A move of the incident's branch seen on GitHub (a `push`, a PR
/// `synchronize` or `edited`).
struct HeadMove<'a> {
    id: IncidentId,
    branch: &'a str,
    /// Where the branch was before, when the event says.
    before: Option<String>,
    /// A `push` always says where the branch was: without it, it is not taken.
    before_required: bool,
    after: String,
    /// For the channel: what happened, completed with ` at <sha>`.
    how: String,
    /// The PR the event was about, when it was one.
    pr: Option<u64>,
    received_at: i64,
}

impl HeadMove<'_> {
    /// Why the move is a replay of an old delivery, if it is one: it does
    /// not start at the head the incident knows, or it goes back to a head
    /// the incident already had.
    fn replay(&self, s: &IncidentState) -> Option<String> {
        let id = self.id;
        let after = self.after.as_str();
        if self.before_required || self.before.is_some() {
            let known = match s.head_sha.as_deref() {
                Some(h) => self.before.as_deref() == Some(h),
                // Nothing recorded yet: the branch was cut from base_sha
                // (or is being created).
                None => self
                    .before
                    .as_deref()
                    .is_some_and(|b| b == s.base_sha || is_zero(b)),
            };
            if !known {
                return Some(format!(
                    "it moves {} from {} to {}, but the head of {id} is {}",
                    self.branch,
                    self.before
                        .as_deref()
                        .map(short)
                        .unwrap_or("an unknown commit"),
                    short(after),
                    s.head_sha.as_deref().map(short).unwrap_or("not pushed")
                ));
            }
        }
        if earlier_head(s, after) {
            return Some(format!(
                "{} was already a head of {id}; a webhook does not move it back (`hotfix push` records the branch as it is)",
                short(after)
            ));
        }
        None
    }
}

/// Records that the head moved, as a `push` and a PR update both do: the
/// approvals and the preview of the old head no longer count.
fn move_head(st: &AppState, m: &HeadMove<'_>) -> Result<String, ApiError> {
    let id = m.id;
    let after = m.after.as_str();
    let branch = m.branch;
    record(st, SOURCE, id, &mut |s| {
        if s.head_sha.as_deref() == Some(after) {
            return skip(format!(
                "ignored: the head of {id} is already {}",
                short(after)
            ));
        }
        if let Some(n) = m.pr
            && !still_pr(s, n)
        {
            return skip(format!("ignored: PR #{n} is no longer the PR of {id}"));
        }
        if let Some(why) = m.replay(s) {
            return skip(format!("ignored: replay: {why}; nothing recorded"));
        }
        if st.now_s().saturating_sub(m.received_at) < PUSH_SETTLE_S {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                DEFERRED,
                format!(
                    "deferred: letting the push of {} to {branch} settle before recording it",
                    short(after)
                ),
            ));
        }
        if s.merge_sha.is_some() {
            return skip(format!(
                "ignored: {id} is already merged; a later push to {branch} does not change what shipped"
            ));
        }
        if s.rollback.is_some() {
            return skip(format!(
                "ignored: {id} was rolled back; a new attempt records its own pushes"
            ));
        }
        let stale = !s.fresh_approvals().is_empty();
        let outcome = format!(
            "recorded on {id}: head moved to {}{}",
            short(after),
            if stale { "; approvals are stale" } else { "" }
        );
        let text = format!(
            ":arrows_counterclockwise: {id}: {} at {}{}",
            m.how,
            short(after),
            if stale {
                "; the approvals and the preview of the old head no longer count."
            } else {
                "; the preview of the old head no longer counts."
            }
        );
        let extra = ops::custom_message(st, s, "head_moved", text, vec![], st.clock.now());
        Ok((
            outcome,
            vec![EventKind::HeadMoved {
                sha: after.to_string(),
                source: SOURCE.into(),
            }],
            extra,
        ))
    })
}

/// `push`: a new head on the incident's branch makes the approvals and the
/// preview of the old head stale.
fn push(st: &AppState, forge: &Forge, e: PushEvent, item: &InboxItem) -> Result<String, ApiError> {
    if let Some(why) = forge.foreign(e.repository.as_ref()) {
        return Ok(why);
    }
    let Some(branch) = e.git_ref.strip_prefix("refs/heads/") else {
        return Ok(format!("ignored: {} is not a branch", e.git_ref));
    };
    if e.deleted || is_zero(&e.after) {
        return Ok(format!("ignored: {branch} was deleted"));
    }
    let Some(after) = commit(Some(&e.after)) else {
        return Ok(format!("ignored: `{}` is not a commit sha", e.after));
    };
    let id = by_branch(st, branch)?;
    move_head(
        st,
        &HeadMove {
            id,
            branch,
            before: e.before.as_deref().map(str::to_ascii_lowercase),
            before_required: true,
            after,
            how: format!("{branch} was pushed on GitHub"),
            pr: None,
            received_at: item.received_at,
        },
    )
}

/// `pull_request`: a merge, a close, a reopen or a new head of the
/// incident's PR; the merge of its backport.
fn pull_request(
    st: &AppState,
    forge: &Forge,
    e: PullRequestEvent,
    item: &InboxItem,
) -> Result<String, ApiError> {
    if let Some(why) = forge.foreign(e.repository.as_ref()) {
        return Ok(why);
    }
    let action = e.action.as_str();
    if !matches!(action, "closed" | "synchronize" | "edited" | "reopened") {
        return Ok(format!("ignored: pull request action `{action}`"));
    }
    let pr = &e.pull_request;
    let n = pr.number;
    let id = match pr_of(st, forge, pr, e.repository.as_ref())? {
        PrOf::Backport(id) if action == "closed" => return backported(st, id, pr),
        PrOf::Backport(id) => {
            return Ok(format!(
                "ignored: PR #{n} is the backport of {id}; only its merge is recorded"
            ));
        }
        PrOf::Hotfix(id) => id,
    };
    match action {
        "closed" if pr.merged == Some(true) => merged(st, id, pr),
        "closed" => closed(st, id, n),
        "reopened" => reopened(st, id, pr),
        _ => {
            let Some(after) = commit(pr.head.sha.as_deref()) else {
                return Ok(format!("ignored: PR #{n} names no head commit"));
            };
            move_head(
                st,
                &HeadMove {
                    id,
                    branch: &pr.head.name,
                    before: commit(e.before.as_deref()).filter(|_| action == "synchronize"),
                    before_required: false,
                    after,
                    how: format!("PR #{n} ({}) was updated on GitHub", pr.head.name),
                    pr: Some(n),
                    received_at: item.received_at,
                },
            )
        }
    }
}

/// The incident's PR merged on GitHub: hotfix records the merge, with the
/// bypass of its guards when they still refused the ship.
fn merged(st: &AppState, id: IncidentId, pr: &PullRequest) -> Result<String, ApiError> {
    let n = pr.number;
    let Some(merge_sha) = commit(pr.merge_commit_sha.as_deref()) else {
        return Ok(format!(
            "ignored: PR #{n} was merged but names no merge commit"
        ));
    };
    let Some(head) = commit(pr.head.sha.as_deref()) else {
        return Ok(format!(
            "ignored: PR #{n} was merged but names no head commit"
        ));
    };
    let by = pr
        .merged_by
        .as_ref()
        .map(|u| u.login.as_str())
        .unwrap_or("someone");
    record(st, SOURCE, id, &mut |s| {
        if s.merge_sha.as_deref() == Some(merge_sha.as_str()) {
            return skip(if s.merged_by.as_deref() == Some("cli") {
                format!("ignored: hotfix recorded the merge of {id} itself")
            } else {
                format!(
                    "ignored: {id} already records the merge {}",
                    short(&merge_sha)
                )
            });
        }
        if let Some(m) = &s.merge_sha {
            return skip(format!(
                "ignored: {id} is already merged at {}; PR #{n}'s merge {} is not recorded",
                short(m),
                short(&merge_sha)
            ));
        }
        if !still_pr(s, n) {
            return skip(format!("ignored: PR #{n} is no longer the PR of {id}"));
        }
        if s.events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::Merged { merge_sha: m, .. } if *m == merge_sha))
        {
            return skip(format!(
                "ignored: replay: {} is the merge of an earlier attempt of {id}",
                short(&merge_sha)
            ));
        }
        let mut kinds = vec![];
        // The PR's own number: GitHub merged the head it shows, even when
        // its push is still settling (or was never delivered).
        let moved;
        let cur = if s.pr == Some(n) && s.head_sha.as_deref() != Some(head.as_str()) {
            let k = EventKind::HeadMoved {
                sha: head.clone(),
                source: SOURCE.into(),
            };
            moved = s.with(st.clock.now(), SOURCE, &k);
            kinds.push(k);
            &moved
        } else {
            s
        };
        let refusals = ship_refusals(cur, &st.cfg);
        if !refusals.is_empty() {
            let past: Vec<&str> = refusals.iter().map(|r| r.message.as_str()).collect();
            kinds.push(EventKind::AntiPatternRecorded {
                pattern: AntiPattern::BypassedGuards,
                reason: bounded(
                    format!("merged on GitHub by {by} past: {}", past.join("; ")),
                    MAX_SHORT,
                ),
            });
        }
        let outcome = format!(
            "recorded on {id}: merged on GitHub by {by} at {}{}",
            short(&merge_sha),
            if refusals.is_empty() {
                String::new()
            } else {
                format!(
                    "; past {} refusal{} of its guards (recorded as bypassed_guards)",
                    refusals.len(),
                    if refusals.len() == 1 { "" } else { "s" }
                )
            }
        );
        kinds.push(EventKind::Merged {
            merge_sha: merge_sha.clone(),
            head_sha: head.clone(),
            previous_main: String::new(),
            previous_deployment: None,
            source: SOURCE.into(),
        });
        Ok((outcome, kinds, vec![]))
    })
}

/// The incident's PR closed without merging.
fn closed(st: &AppState, id: IncidentId, n: u64) -> Result<String, ApiError> {
    record(st, SOURCE, id, &mut |s| {
        if s.pr != Some(n) {
            return skip(format!(
                "ignored: PR #{n} was closed, but {id} records no PR #{n}"
            ));
        }
        if s.merge_sha.is_some() {
            return skip(format!(
                "ignored: {id} is already merged; closing PR #{n} changes nothing"
            ));
        }
        if s.pr_closed {
            return skip(format!("ignored: {id} already records PR #{n} closed"));
        }
        Ok((
            format!("recorded on {id}: PR #{n} closed without merging"),
            vec![EventKind::PrClosed { number: n }],
            vec![],
        ))
    })
}

/// The incident's PR reopened after it was closed without merging.
fn reopened(st: &AppState, id: IncidentId, pr: &PullRequest) -> Result<String, ApiError> {
    let n = pr.number;
    record(st, SOURCE, id, &mut |s| {
        if s.pr != Some(n) || !s.pr_closed {
            return skip(format!("ignored: {id} does not record PR #{n} as closed"));
        }
        let url = s
            .pr_url
            .clone()
            .or_else(|| pr.html_url.clone())
            .unwrap_or_default();
        Ok((
            format!("recorded on {id}: PR #{n} reopened"),
            vec![EventKind::PrOpened { number: n, url }],
            vec![],
        ))
    })
}

/// The incident's backport PR (its branch into develop) closed: merged, it
/// is the backport.
fn backported(st: &AppState, id: IncidentId, pr: &PullRequest) -> Result<String, ApiError> {
    let n = pr.number;
    if pr.merged != Some(true) {
        return Ok(format!(
            "ignored: PR #{n}, the backport of {id}, was closed without merging"
        ));
    }
    let Some(merge_sha) = commit(pr.merge_commit_sha.as_deref()) else {
        return Ok(format!(
            "ignored: PR #{n}, the backport of {id}, names no merge commit"
        ));
    };
    record(st, SOURCE, id, &mut |s| {
        if s.backport_sha.as_deref() == Some(merge_sha.as_str()) {
            return skip(format!(
                "ignored: {id} already records the backport {}",
                short(&merge_sha)
            ));
        }
        Ok((
            format!(
                "recorded on {id}: backported to {} by PR #{n} at {}",
                st.cfg.git.develop,
                short(&merge_sha)
            ),
            vec![EventKind::Backported {
                merge_sha: merge_sha.clone(),
            }],
            vec![],
        ))
    })
}

/// `deployment_status`: the deployment of a commit of the incident (its
/// head, its merge, what production runs) is on the timeline.
fn deployment(st: &AppState, forge: &Forge, e: DeploymentStatusEvent) -> Result<String, ApiError> {
    if let Some(why) = forge.foreign(e.repository.as_ref()) {
        return Ok(why);
    }
    let sha = e.deployment.sha.to_ascii_lowercase();
    let ours = |s: &IncidentState| {
        [&s.head_sha, &s.merge_sha, &s.deployed_sha]
            .iter()
            .any(|x| x.as_deref() == Some(sha.as_str()))
    };
    let id = newest_open(&ops::all(st)?, ours)
        .map(|s| s.id)
        .ok_or_else(|| ignored(format!("no incident for commit {}", short(&sha))))?;
    let state = e.deployment_status.state.to_ascii_lowercase();
    let what = format!("deployment {state}");
    let detail = e.where_();
    record(st, SOURCE, id, &mut |s| {
        if already_recorded(s, &what, &detail) {
            return skip(format!("ignored: {id} already records `{what}` {detail}"));
        }
        let extra = if matches!(state.as_str(), "failure" | "error") {
            ops::custom_message(
                st,
                s,
                "github_deployment",
                format!(
                    ":x: {id}: GitHub reports the deployment of {} {state}: {detail}",
                    short(&sha)
                ),
                st.cfg.team.tech_leads.clone(),
                st.clock.now(),
            )
        } else {
            vec![]
        };
        Ok((
            format!("recorded on {id}: {what} ({detail})"),
            vec![EventKind::ExternalUpdate {
                source: SOURCE.into(),
                what: what.clone(),
                detail: detail.clone(),
            }],
            extra,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_id_is_named_whole() {
        assert!(names_review("GitHub review 123 dismissed", 123));
        assert!(names_review("lead-gh (lead@example.com), review 123", 123));
        assert!(!names_review("GitHub review 1234 dismissed", 123));
        assert!(!names_review("GitHub review 12 dismissed", 123));
        assert!(names_review("GitHub review 1234, review 123", 123));
    }

    #[test]
    fn a_withdrawal_names_its_review() {
        assert_eq!(withdrawing_review("GitHub review 42 dismissed"), Some(42));
        assert_eq!(
            withdrawing_review("GitHub review 43: changes requested by x"),
            Some(43)
        );
        assert_eq!(withdrawing_review("a GitHub review was dismissed"), None);
        assert_eq!(withdrawing_review("withdrawn in the dashboard"), None);
    }

    #[test]
    fn long_reasons_are_cut_to_the_limit() {
        assert_eq!(bounded("abc".into(), 3), "abc");
        let b = bounded("x".repeat(5000), MAX_SHORT);
        assert_eq!(b.chars().count(), MAX_SHORT);
        assert!(b.ends_with('…'));
    }
}
