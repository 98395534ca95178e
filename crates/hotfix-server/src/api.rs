//! The versioned JSON API, `/api/v1/…`: everything the CLI does that is not
//! git work (the CLI's remote mode uses exactly these routes), described in
//! `/api/openapi.json`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use hotfix_core::IncidentState;
use hotfix_core::admit::Door;
use hotfix_core::event::EventKind;
use hotfix_core::team::{AdminGuard, ApiRole, Revoke};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, create_token};
use crate::extract::{Body, IncidentPath, Params, PathParam};
use crate::{ApiError, AppState, ops};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/incidents", get(list).post(declare))
        .route("/api/v1/incidents/{id}", get(show))
        .route("/api/v1/incidents/{id}/events", get(events).post(append))
        .route("/api/v1/incidents/{id}/approve", post(approve))
        .route("/api/v1/incidents/{id}/withdraw", post(withdraw))
        .route("/api/v1/incidents/{id}/triage", post(triage))
        .route("/api/v1/incidents/{id}/checklist", post(tick))
        .route("/api/v1/incidents/{id}/notes", post(note))
        .route("/api/v1/incidents/{id}/close", post(close))
        .route("/api/v1/outbox", get(outbox))
        .route("/api/v1/inbox", get(inbox))
        .route("/api/v1/tokens", get(tokens).post(token_create))
        .route("/api/v1/tokens/{id}", axum::routing::delete(token_revoke))
}

async fn me(caller: Caller) -> Json<Value> {
    Json(json!({ "user": caller.user, "role": caller.role }))
}

/// Runs `step` off the async threads and answers with the incident it
/// leaves, in full (`GET /api/v1/incidents/{id}`'s shape) as `reader` may
/// see it.
async fn detail_after<F>(st: &AppState, reader: Caller, step: F) -> Result<Json<Value>, ApiError>
where
    F: FnOnce(&AppState) -> Result<IncidentState, ApiError> + Send + 'static,
{
    st.blocking(move |st| {
        let v = ops::seen(step(st)?, &ops::reader_of(&reader))?;
        Ok(Json(ops::detail(st, &v, st.clock.now())))
    })
    .await
}

/// Runs `step` off the async threads and answers with the version it leaves
/// the incident at.
async fn version_after<F>(st: &AppState, step: F) -> Result<Json<Value>, ApiError>
where
    F: FnOnce(&AppState) -> Result<IncidentState, ApiError> + Send + 'static,
{
    st.blocking(move |st| step(st).map(|s| Json(json!({ "version": s.version }))))
        .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// `open` (default), `closed`, `all`, or `triage` (open and waiting
    /// for a tech lead's triage).
    #[serde(default)]
    state: Option<String>,
    /// Case-insensitive text in the id, title, branch, severity or phase.
    #[serde(default)]
    q: Option<String>,
    /// Newest first, `limit` per page (default 100, at most 1000) from `offset`.
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    offset: Option<usize>,
    /// Only the ids (oldest first, every match): what the CLI's remote mode
    /// needs to find an incident, cheap even with years of incidents.
    #[serde(default)]
    ids_only: Option<bool>,
}

async fn list(
    State(st): State<AppState>,
    caller: Caller,
    Params(q): Params<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let which = q.state.unwrap_or_else(|| "open".into());
    if !["open", "closed", "all", "triage"].contains(&which.as_str()) {
        return Err(ApiError::bad_request(format!(
            "state `{which}` is not open, closed, all or triage"
        )));
    }
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit is 1 to 1000"));
    }
    let offset = q.offset.unwrap_or(0);
    let needle = q.q.map(|s| s.to_lowercase());
    let ids_only = q.ids_only.unwrap_or(false);
    st.blocking(move |st| {
        let now = st.clock.now();
        let all = ops::all(st)?;
        let reader = ops::reader_of(&caller);
        // Filtered on what this reader sees: a search must not find a
        // security incident by the title it hides from them.
        let matching: Vec<ops::Seen> = all
            .seen(&reader)
            .filter(|v| {
                let s = v.state();
                (match which.as_str() {
                    "open" => !s.is_closed(),
                    "closed" => s.is_closed(),
                    "triage" => s.in_triage(),
                    _ => true,
                }) && match &needle {
                    None => true,
                    Some(n) => [
                        s.id.to_string(),
                        s.title.clone(),
                        s.branch.clone(),
                        s.severity.as_str().to_string(),
                        s.phase(&st.cfg.policy).as_str().to_string(),
                    ]
                    .iter()
                    .any(|f| f.to_lowercase().contains(n.as_str())),
                }
            })
            .collect();
        if ids_only {
            let ids: Vec<String> = matching.iter().map(|v| v.state().id.to_string()).collect();
            return Ok(Json(json!({ "total": ids.len(), "ids": ids })));
        }
        let total = matching.len();
        // Only the page is summarised (next action, elapsed): a list of
        // 10,000 incidents costs what a page of 100 does.
        let page: Vec<ops::Summary> = matching
            .iter()
            .rev()
            .skip(offset)
            .take(limit)
            .map(|v| ops::summary(st, v, now))
            .collect();
        Ok(Json(
            json!({ "total": total, "offset": offset, "limit": limit, "incidents": page }),
        ))
    })
    .await
}

/// The body of a declaration: the `declared` event's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeclareBody {
    name: String,
    #[serde(default)]
    title: Option<String>,
    severity: String,
    #[serde(default)]
    customer_facing: bool,
    #[serde(default)]
    security: bool,
    /// Default `hotfix/NAME` (from the server's `[git] prefix`).
    #[serde(default)]
    branch: Option<String>,
    /// The main the branch was cut from; empty or absent: not cut yet (reported).
    #[serde(default)]
    base_sha: Option<String>,
    #[serde(default)]
    components: Vec<String>,
}

async fn declare(
    State(st): State<AppState>,
    caller: Caller,
    Body(b): Body<DeclareBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let severity = b
        .severity
        .parse::<hotfix_core::Severity>()
        .map_err(|e| ApiError::unprocessable("severity", e.to_string()))?;
    let name = b.name.trim().to_string();
    if !hotfix_core::name::valid_name(&name) {
        return Err(ApiError::unprocessable(
            "invalid_name",
            format!(
                "`{name}` is not a valid hotfix name: letters, digits, `-`, `_`, `.` (not first), e.g. `pdf-crash`"
            ),
        ));
    }
    let branch = b
        .branch
        .unwrap_or_else(|| format!("{}{name}", st.cfg.git.prefix));
    let title = b
        .title
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| name.replace(['-', '_'], " "));
    let kind = EventKind::Declared {
        name,
        title,
        severity,
        customer_facing: b.customer_facing,
        security: b.security,
        branch,
        base_sha: b.base_sha.unwrap_or_default(),
    };
    let then = if b.components.is_empty() {
        vec![]
    } else {
        vec![EventKind::Affects {
            components: b.components,
        }]
    };
    let created = detail_after(&st, caller.clone(), move |st| {
        ops::declare(st, &caller.actor(Door::Api), kind, then, &|_, _| vec![])
    })
    .await?;
    Ok((StatusCode::CREATED, created))
}

async fn show(
    State(st): State<AppState>,
    caller: Caller,
    IncidentPath(id): IncidentPath,
) -> Result<Json<Value>, ApiError> {
    st.blocking(move |st| {
        let v = ops::read(st, &ops::reader_of(&caller), id)?;
        Ok(Json(ops::detail(st, &v, st.clock.now())))
    })
    .await
}

/// The log as the caller may see it; `restricted: true` says it is the
/// restricted view of a security incident (`hotfix_core::access`).
async fn events(
    State(st): State<AppState>,
    caller: Caller,
    IncidentPath(id): IncidentPath,
) -> Result<Json<Value>, ApiError> {
    st.blocking(move |st| {
        let v = ops::read(st, &ops::reader_of(&caller), id)?;
        let s = v.state();
        Ok(Json(
            json!({ "version": s.version, "events": s.events, "restricted": v.restricted() }),
        ))
    })
    .await
}

/// The body of `POST /api/v1/incidents/{id}/events`. Public only for the
/// fuzz target of this route (`fuzz/`), which parses bodies with it.
#[doc(hidden)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppendBody {
    /// Compare-and-set: the version the client decided on (409 if it moved).
    #[serde(default)]
    pub expected_version: Option<u64>,
    pub events: Vec<EventKind>,
}

async fn append(
    State(st): State<AppState>,
    caller: Caller,
    IncidentPath(id): IncidentPath,
    Body(b): Body<AppendBody>,
) -> Result<Json<Value>, ApiError> {
    if b.events.len() > 100 {
        return Err(ApiError::bad_request("at most 100 events per append"));
    }
    version_after(&st, move |st| {
        ops::append_checked(st, &caller, Door::Api, id, b.expected_version, b.events)
    })
    .await
}

async fn approve(
    State(st): State<AppState>,
    caller: Caller,
    IncidentPath(id): IncidentPath,
) -> Result<Json<Value>, ApiError> {
    recorded_after(&st, caller.clone(), move |st| {
        ops::approve(st, &caller, Door::Api, id)
    })
    .await
}

/// Runs `step` off the async threads and answers with the incident in full
/// (as `reader` may see it) and whether the step recorded anything
/// (`recorded: false`: nothing to do).
async fn recorded_after<F>(st: &AppState, reader: Caller, step: F) -> Result<Json<Value>, ApiError>
where
    F: FnOnce(&AppState) -> Result<(IncidentState, bool), ApiError> + Send + 'static,
{
    st.blocking(move |st| {
        let (s, recorded) = step(st)?;
        let seen = ops::seen(s, &ops::reader_of(&reader))?;
        let mut v = ops::detail(st, &seen, st.clock.now());
        v["recorded"] = json!(recorded);
        Ok(Json(v))
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WithdrawBody {
    reason: String,
}

/// The caller takes back their approval of the current head.
async fn withdraw(
    State(st): State<AppState>,
    caller: Caller,
    IncidentPath(id): IncidentPath,
    Body(b): Body<WithdrawBody>,
) -> Result<Json<Value>, ApiError> {
    let reason = b.reason.trim().to_string();
    if reason.is_empty() {
        return Err(ApiError::unprocessable(
            "bad_value",
            "a withdrawal needs a reason",
        ));
    }
    recorded_after(&st, caller.clone(), move |st| {
        ops::withdraw(st, &caller, Door::Api, id, &reason)
    })
    .await
}

/// A tech lead's triage of a reported incident: `confirm` (optionally at
/// another severity, with the public text), `decline` (a reason) or
/// `merge` (into another open incident). Answers the incident in full and
/// `recorded` (false: already decided so, nothing appended).
async fn triage(
    State(st): State<AppState>,
    caller: Caller,
    IncidentPath(id): IncidentPath,
    Body(b): Body<ops::TriageFields>,
) -> Result<Json<Value>, ApiError> {
    let d = b.decision(id)?;
    recorded_after(&st, caller.clone(), move |st| {
        ops::triage(st, &caller, Door::Api, id, &d)
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TickBody {
    done: Vec<String>,
}

async fn tick(
    State(st): State<AppState>,
    caller: Caller,
    IncidentPath(id): IncidentPath,
    Body(b): Body<TickBody>,
) -> Result<Json<Value>, ApiError> {
    detail_after(&st, caller.clone(), move |st| {
        ops::tick(st, &caller, Door::Api, id, &b.done)
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    text: String,
}

async fn note(
    State(st): State<AppState>,
    caller: Caller,
    IncidentPath(id): IncidentPath,
    Body(b): Body<NoteBody>,
) -> Result<Json<Value>, ApiError> {
    let text = b.text.trim().to_string();
    version_after(&st, move |st| {
        ops::append_checked(
            st,
            &caller,
            Door::Api,
            id,
            None,
            vec![EventKind::Note { text }],
        )
    })
    .await
}

async fn close(
    State(st): State<AppState>,
    caller: Caller,
    IncidentPath(id): IncidentPath,
) -> Result<Json<Value>, ApiError> {
    detail_after(&st, caller.clone(), move |st| {
        ops::close(st, &caller, Door::Api, id)
    })
    .await
}

/// The notifications waiting for delivery. A message about a security
/// incident the caller may not read says what the channel would see, and
/// nothing it quotes of the incident (`hotfix_core::access`).
async fn outbox(State(st): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    st.blocking(move |st| {
        let all = ops::all(st)?;
        let reader = ops::reader_of(&caller);
        let mut items = st.store.undelivered()?;
        for o in &mut items {
            if let Some(v) = all.get(o.message.incident, &reader)
                && v.restricted()
            {
                let m = &mut o.message;
                m.text = v.scrub(&m.text);
                m.title = String::new();
                m.pr_url = None;
                o.last_error = o.last_error.as_deref().map(|e| v.scrub(e));
            }
        }
        Ok(Json(json!({ "undelivered": items })))
    })
    .await
}

/// What came in and what became of it. Outcomes quote branches and
/// names: those of security incidents the caller may not read are
/// scrubbed (`hotfix_core::access`).
async fn inbox(State(st): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    st.blocking(move |st| {
        let all = ops::all(st)?;
        let reader = ops::reader_of(&caller);
        let hidden = all.secrets_hidden_from(&reader);
        let restricted = |id| all.get(id, &reader).is_some_and(|v| v.restricted());
        let items = st.store.inbox_recent(100)?;
        let mut out = Vec::with_capacity(items.len());
        for mut i in items {
            // What it was (source, key, alert name), from its body.
            let about = crate::alerts::describe(st, &i, &restricted)?;
            if !hidden.is_empty() {
                i.outcome = i
                    .outcome
                    .as_deref()
                    .map(|o| hotfix_core::access::scrub(o, &hidden));
            }
            let mut v = serde_json::to_value(&i).map_err(|e| ApiError::internal(e.to_string()))?;
            if let Value::Object(o) = &mut v {
                o.extend(about);
            }
            out.push(v);
        }
        Ok(Json(json!({ "items": out })))
    })
    .await
}

async fn tokens(State(st): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(ApiRole::Admin, "listing tokens")?;
    st.blocking(|st| Ok(Json(json!({ "tokens": st.store.token_list()? }))))
        .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    user: String,
    role: String,
}

async fn token_create(
    State(st): State<AppState>,
    caller: Caller,
    Body(b): Body<TokenBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(ApiRole::Admin, "creating tokens")?;
    let role = ApiRole::parse(&b.role).ok_or_else(|| {
        ApiError::unprocessable(
            "role",
            format!(
                "role `{}` is not intake, developer, tech_lead or admin",
                b.role
            ),
        )
    })?;
    st.blocking(move |st| {
        let (token, id) = create_token(st.store.as_ref(), &b.user, role, st.now_s())?;
        Ok((
            StatusCode::CREATED,
            Json(json!({ "id": id, "user": b.user.trim(), "role": role, "token": token })),
        ))
    })
    .await
}

async fn token_revoke(
    State(st): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<i64>,
) -> Result<Json<Value>, ApiError> {
    caller.require(ApiRole::Admin, "revoking tokens")?;
    st.blocking(move |st| match st.store.token_revoke(id, AdminGuard::KeepOne)? {
        Revoke::Revoked => Ok(Json(json!({ "revoked": id }))),
        Revoke::NotFound => Err(ApiError::not_found(format!("no live token {id}"))),
        // Over the API this would lock everyone out of token management;
        // the CLI on the server's machine can always make a new one.
        Revoke::LastAdmin => Err(ApiError::new(
            StatusCode::CONFLICT,
            LAST_ADMIN,
            format!(
                "token {id} is the last live admin token: revoking it would leave nobody able to manage tokens"
            ),
        )
        .with_hint(
            "create another admin token first (`POST /api/v1/tokens` with role admin, or `hotfix serve token create --user YOU --role admin` on the server's machine), sign in with it, then revoke this one",
        )),
    })
    .await
}

/// The code of the 409 that refuses revoking the last live admin token.
pub const LAST_ADMIN: &str = "last_admin";
