//! The dashboard's buttons: `POST /incidents/{id}/actions/{action}`.
//!
//! Each calls the same `ops` function as the JSON API, with the signed-in
//! caller, so the server-side rules (who may approve or triage, checklist
//! before close) are exactly the API's. The answer is always a redirect back to
//! the incident (post/redirect/get: reloading the page does not repeat the
//! action) with the outcome, or the API's error message, shown once.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use hotfix_core::admit::Door;
use hotfix_core::event::EventKind;
use hotfix_core::guards::{ApproveCheck, check_approve};
use hotfix_core::id::IncidentId;
use serde::Deserialize;

use super::render::{self, Flash, short};
use super::session;
use crate::auth::{Caller, MaybeCaller};
use crate::extract::parse_id;
use crate::{ApiError, AppState, ops};

#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    /// approve: the head the person saw on the page.
    #[serde(default)]
    head: Option<String>,
    /// tick: the checklist item.
    #[serde(default)]
    key: Option<String>,
    /// note: the text.
    #[serde(default)]
    text: Option<String>,
    /// confirm: the severity (empty: the incident's) and the public text.
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    public_text: Option<String>,
    /// decline: why, what it duplicates, a line for the log.
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    duplicate_of: Option<String>,
    #[serde(default)]
    note: Option<String>,
    /// merge: the incident it goes into.
    #[serde(default)]
    into: Option<String>,
}

/// A triage decision from the incident page's forms: the API's
/// [`ops::TriageFields`] and [`ops::triage`], so the rules are the API's.
fn triage(
    st: &AppState,
    caller: &Caller,
    id: IncidentId,
    action: &str,
    f: ActionForm,
) -> Result<String, ApiError> {
    let fields = ops::TriageFields {
        action: action.to_string(),
        severity: f.severity,
        public_text: f.public_text,
        reason: f.reason,
        duplicate_of: f.duplicate_of,
        note: f.note,
        into: f.into,
    };
    let d = fields.decision(id)?;
    let (s, recorded) = ops::triage(st, caller, Door::Dashboard, id, &d)?;
    let t = hotfix_engine::triage::Triaged {
        incident: s,
        target: None,
        recorded,
    };
    Ok(format!("{}.", hotfix_engine::triage::outcome(&t, &d)))
}

/// Approves the head the person saw, not whatever the head is when the
/// click arrives: a push in between must be looked at first.
fn approve(
    st: &AppState,
    caller: &Caller,
    id: IncidentId,
    head: Option<String>,
) -> Result<String, ApiError> {
    let head = head
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("the approve form did not say which head it approves")
        })?;
    let s = ops::load(st, id)?;
    if s.head_sha.as_deref() != Some(head.as_str()) {
        return Err(ApiError::conflict(format!(
            "{id} moved: the page showed {} but the head is now {}",
            short(&head),
            s.head_sha
                .as_deref()
                .map(short)
                .unwrap_or_else(|| "not pushed".into())
        ))
        .with_hint("look at the new head before approving"));
    }
    if let Ok(ApproveCheck::AlreadyApproved) = check_approve(&s, &st.cfg, &caller.user) {
        return Ok(format!("You approved {} already.", short(&head)));
    }
    let role = ops::approval_role(st, caller, &s)?;
    // `append_checked` re-reads the incident and re-checks the approver,
    // the role and that `head` is still the head before it writes.
    ops::append_checked(
        st,
        caller,
        Door::Dashboard,
        id,
        None,
        vec![EventKind::Approved {
            by: caller.user.clone(),
            role,
            sha: head.clone(),
            source: "dashboard".into(),
        }],
    )?;
    Ok(format!(
        "Approved {} of {id} as {}.",
        short(&head),
        role.label()
    ))
}

fn run(
    st: &AppState,
    caller: &Caller,
    id: IncidentId,
    action: &str,
    f: ActionForm,
) -> Result<String, ApiError> {
    match action {
        "approve" => approve(st, caller, id, f.head),
        "tick" => {
            let key = f
                .key
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .ok_or_else(|| ApiError::bad_request("which checklist item? (`key`)"))?;
            ops::tick(st, caller, Door::Dashboard, id, std::slice::from_ref(&key))?;
            Ok(format!("Ticked {key}."))
        }
        "note" => {
            let text = f.text.unwrap_or_default().trim().to_string();
            ops::append_checked(
                st,
                caller,
                Door::Dashboard,
                id,
                None,
                vec![EventKind::Note { text }],
            )?;
            Ok("Note added.".into())
        }
        "close" => {
            ops::close(st, caller, Door::Dashboard, id)?;
            Ok(format!("{id} is closed."))
        }
        "withdraw" => {
            let reason = f
                .text
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "withdrawn on the dashboard".into());
            let (_, recorded) = ops::withdraw(st, caller, Door::Dashboard, id, &reason)?;
            Ok(if recorded {
                "Your approval is withdrawn.".into()
            } else {
                "You have no approval of the current head to withdraw.".into()
            })
        }
        "confirm" | "decline" | "merge" => triage(st, caller, id, action, f),
        other => Err(ApiError::not_found(format!(
            "no action `{other}`: approve, withdraw, tick, note, close, confirm, decline or merge"
        ))),
    }
}

/// `POST /incidents/{id}/actions/{action}`.
pub async fn act(
    State(st): State<AppState>,
    c: MaybeCaller,
    uri: Uri,
    headers: HeaderMap,
    Path((raw, action)): Path<(String, String)>,
    form: Result<Form<ActionForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    // Before anything else: a forged cross-site POST learns nothing.
    if let Err(e) = session::check_origin(&headers) {
        return render::error_page(&e, None);
    }
    let caller = match session::require(c, &uri) {
        Ok(c) => c,
        Err(_) => return session::see_other("/login"),
    };
    let id = match parse_id(&raw) {
        Ok(id) => id,
        Err(e) => return render::error_page(&e, Some(&caller)),
    };
    let outcome = match form {
        Err(e) => Err(ApiError::bad_request(e.body_text())),
        Ok(Form(f)) => {
            let who = caller.clone();
            st.blocking(move |st| run(st, &who, id, &action, f)).await
        }
    };
    let flash = match outcome {
        Ok(text) => Flash { kind: "ok", text },
        Err(e) => Flash {
            kind: "error",
            text: match e.hint {
                Some(h) => format!("{} ({h})", e.message),
                None => e.message,
            },
        },
    };
    let mut r = session::see_other(&format!("/incidents/{id}"));
    session::set_flash(&mut r, &flash);
    r
}
