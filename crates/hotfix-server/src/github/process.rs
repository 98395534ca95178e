//! Applies a stored GitHub delivery to the incident log.
//!
//! An incident is found by its branch (the PR's head ref, the pushed ref) or,
//! for deployments, by the commit deployed. Every write goes through
//! [`ops::append_system`] / [`ops::append_with`], which re-read the incident
//! and retry on a concurrent append, so the decisions below always look at
//! the fresh state; each is idempotent, so a redelivery under a new delivery
//! id records nothing twice.
//!
//! Outcomes are strings kept on the inbox item: `approved …`, `recorded …`,
//! `ignored: …` (nothing to do), `refused: …` (a workflow rule said no).
//! An `Err` means "try again later" (the store was unavailable, or a push is
//! left to settle).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use hotfix_core::event::EventKind;
use hotfix_core::guards::{ApproveCheck, check_approve};
use hotfix_core::id::IncidentId;
use hotfix_core::state::IncidentState;
use hotfix_core::team::{ApiRole, InboxItem};
use hotfix_providers::forge::github::GithubConfig;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::intake::SOURCE;
use super::payload::{DeploymentStatusEvent, PullRequestEvent, PushEvent, Repository, ReviewEvent};
use crate::auth::Caller;
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
            parsed(env.payload, "pull_request").and_then(|e| pull_request(st, &forge, e))
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

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

fn is_sha(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// The id of the newest open incident that `matches`; none is a 404, which
/// [`process`] keeps as `ignored: {what}`.
fn newest_open(
    st: &AppState,
    matches: impl Fn(&IncidentState) -> bool,
    what: impl FnOnce() -> String,
) -> Result<IncidentId, ApiError> {
    ops::all(st)?
        .iter()
        .filter(|s| !s.is_closed() && matches(s))
        .map(|s| s.id)
        .max()
        .ok_or_else(|| ApiError::not_found(what()))
}

/// The incident whose branch is `branch`.
fn by_branch(st: &AppState, branch: &str) -> Result<IncidentId, ApiError> {
    newest_open(
        st,
        |s| s.branch == branch,
        || format!("no incident for {branch}"),
    )
}

/// An identical external update is already in the log (a second delivery of
/// the same fact under another delivery id).
fn already_recorded(s: &IncidentState, what: &str, detail: &str) -> bool {
    s.events.iter().any(|e| {
        matches!(&e.kind, EventKind::ExternalUpdate { source, what: w, detail: d }
            if source == SOURCE && w == what && d == detail)
    })
}

/// `pull_request_review`: an approval on GitHub is an approval of the
/// incident, under the same rules as `POST /api/v1/incidents/{id}/approve`.
fn review(st: &AppState, forge: &Forge, e: ReviewEvent) -> Result<String, ApiError> {
    if let Some(why) = forge.foreign(e.repository.as_ref()) {
        return Ok(why);
    }
    let id = by_branch(st, &e.pull_request.head.name)?;
    let login = e.review.user.login.clone();
    let identity = forge.identity_of(&login);
    match e.action.as_str() {
        "submitted" if e.review.state.eq_ignore_ascii_case("approved") => {}
        "submitted" => {
            return Ok(format!(
                "ignored: review by {login} is `{}`, not an approval",
                e.review.state
            ));
        }
        "dismissed" => return dismissed(st, id, &login, identity),
        other => return Ok(format!("ignored: review action `{other}`")),
    }
    let Some(identity) = identity else {
        return Ok(format!(
            "ignored: login {login} is not mapped in [forge.logins]"
        ));
    };
    let sha = e.review.commit_id.unwrap_or_default();
    // GitHub authenticated the reviewer and the mapping in hotfix.toml names
    // the person: their [team] role decides the slot, as a token would.
    let caller = Caller {
        user: identity.clone(),
        role: if st.cfg.is_tech_lead(&identity) {
            ApiRole::TechLead
        } else {
            ApiRole::Developer
        },
    };
    let mut outcome = String::new();
    ops::append_system(st, &identity, id, &mut |s| {
        let role = ops::approval_role(st, &caller, s)?;
        let head = s.head_sha.as_deref().unwrap_or("");
        if head != sha {
            outcome = format!(
                "ignored: stale review: {login} approved {} but the head of {id} is {}; nothing recorded",
                short(&sha),
                short(head)
            );
            return Ok(vec![]);
        }
        if matches!(
            check_approve(s, &st.cfg, &identity),
            Ok(ApproveCheck::AlreadyApproved)
        ) {
            outcome = format!(
                "ignored: {identity} already approved {id} at {}",
                short(head)
            );
            return Ok(vec![]);
        }
        outcome = format!(
            "approved {id} at {} by {identity} ({login}) as {}",
            short(head),
            role.label()
        );
        Ok(vec![EventKind::Approved {
            by: identity.clone(),
            role,
            sha: sha.clone(),
            source: SOURCE.to_string(),
        }])
    })?;
    Ok(outcome)
}

/// A dismissed review is recorded in the log. The hotfix approval it may
/// have given stays (the log has no revocation, and dismissals mostly follow
/// a push, which already made the approval stale); if it still counts, the
/// channel is told so a tech lead can decide.
fn dismissed(
    st: &AppState,
    id: IncidentId,
    login: &str,
    identity: Option<String>,
) -> Result<String, ApiError> {
    let detail = match &identity {
        Some(i) => format!("{login} ({i})"),
        None => login.to_string(),
    };
    ops::append_with(st, SOURCE, id, &mut |s| {
        let counts = identity.as_deref().is_some_and(|i| {
            s.fresh_approvals()
                .iter()
                .any(|a| a.by.eq_ignore_ascii_case(i))
        });
        let extra = if counts {
            ops::custom_message(
                st,
                s,
                "review_dismissed",
                format!(
                    ":warning: {id}: the GitHub review by {detail} was dismissed; hotfix still counts their approval of {}.",
                    short(s.head_sha.as_deref().unwrap_or(""))
                ),
                st.cfg.team.tech_leads.clone(),
                st.clock.now(),
            )
        } else {
            vec![]
        };
        Ok((
            vec![EventKind::ExternalUpdate {
                source: SOURCE.into(),
                what: "review dismissed".into(),
                detail: detail.clone(),
            }],
            extra,
        ))
    })?;
    Ok(format!("recorded on {id}: review by {detail} dismissed"))
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
    if e.deleted || e.after.chars().all(|c| c == '0') {
        return Ok(format!("ignored: {branch} was deleted"));
    }
    if !is_sha(&e.after) {
        return Ok(format!("ignored: `{}` is not a commit sha", e.after));
    }
    let id = by_branch(st, branch)?;
    let after = e.after.to_ascii_lowercase();
    let mut outcome = String::new();
    ops::append_with(st, SOURCE, id, &mut |s| {
        if s.head_sha.as_deref() == Some(after.as_str()) {
            outcome = format!("ignored: the head of {id} is already {}", short(&after));
            return Ok((vec![], vec![]));
        }
        if st.now_s().saturating_sub(item.received_at) < PUSH_SETTLE_S {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                DEFERRED,
                format!(
                    "deferred: letting the push of {} to {branch} settle before recording it",
                    short(&after)
                ),
            ));
        }
        if s.merge_sha.is_some() {
            outcome = format!(
                "ignored: {id} is already merged; a later push to {branch} does not change what shipped"
            );
            return Ok((vec![], vec![]));
        }
        if s.rollback.is_some() {
            outcome =
                format!("ignored: {id} was rolled back; a new attempt records its own pushes");
            return Ok((vec![], vec![]));
        }
        let stale = !s.fresh_approvals().is_empty();
        outcome = format!(
            "recorded on {id}: head moved to {}{}",
            short(&after),
            if stale { "; approvals are stale" } else { "" }
        );
        let text = format!(
            ":arrows_counterclockwise: {id}: {branch} was pushed on GitHub at {}{}",
            short(&after),
            if stale {
                "; the approvals and the preview of the old head no longer count."
            } else {
                "; the preview of the old head no longer counts."
            }
        );
        let extra = ops::custom_message(st, s, "head_moved", text, vec![], st.clock.now());
        Ok((
            vec![EventKind::HeadMoved {
                sha: after.clone(),
                source: SOURCE.into(),
            }],
            extra,
        ))
    })?;
    Ok(outcome)
}

/// `pull_request` `closed`: a merge (or a close) on GitHub is on the timeline.
fn pull_request(st: &AppState, forge: &Forge, e: PullRequestEvent) -> Result<String, ApiError> {
    if let Some(why) = forge.foreign(e.repository.as_ref()) {
        return Ok(why);
    }
    if e.action != "closed" {
        return Ok(format!("ignored: pull request action `{}`", e.action));
    }
    let id = by_branch(st, &e.pull_request.head.name)?;
    let number = e.pull_request.number;
    let (what, detail) = if e.pull_request.merged == Some(true) {
        (
            "merged on GitHub",
            e.pull_request.merge_commit_sha.clone().unwrap_or_default(),
        )
    } else {
        ("PR closed without merging", format!("#{number}"))
    };
    let mut outcome = String::new();
    ops::append_with(st, SOURCE, id, &mut |s| {
        if what == "merged on GitHub" && s.merge_sha.as_deref() == Some(detail.as_str()) {
            outcome = format!("ignored: hotfix recorded the merge of {id} itself");
            return Ok((vec![], vec![]));
        }
        if already_recorded(s, what, &detail) {
            outcome = format!("ignored: {id} already records `{what}` {detail}");
            return Ok((vec![], vec![]));
        }
        outcome = format!("recorded on {id}: {what} {detail}");
        let text = if what == "merged on GitHub" {
            format!(
                ":twisted_rightwards_arrows: {id}: PR #{number} was merged on GitHub ({}).",
                short(&detail)
            )
        } else {
            format!(":no_entry_sign: {id}: PR #{number} was closed on GitHub without merging.")
        };
        let extra = ops::custom_message(st, s, "github_pr_closed", text, vec![], st.clock.now());
        Ok((
            vec![EventKind::ExternalUpdate {
                source: SOURCE.into(),
                what: what.into(),
                detail: detail.clone(),
            }],
            extra,
        ))
    })?;
    Ok(outcome)
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
    let id = newest_open(st, ours, || {
        format!("no incident for commit {}", short(&sha))
    })?;
    let state = e.deployment_status.state.to_ascii_lowercase();
    let what = format!("deployment {state}");
    let detail = e.where_();
    let mut outcome = String::new();
    ops::append_with(st, SOURCE, id, &mut |s| {
        if already_recorded(s, &what, &detail) {
            outcome = format!("ignored: {id} already records `{what}` {detail}");
            return Ok((vec![], vec![]));
        }
        outcome = format!("recorded on {id}: {what} ({detail})");
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
            vec![EventKind::ExternalUpdate {
                source: SOURCE.into(),
                what: what.clone(),
                detail: detail.clone(),
            }],
            extra,
        ))
    })?;
    Ok(outcome)
}
