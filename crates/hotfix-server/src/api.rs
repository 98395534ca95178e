//! The versioned JSON API, `/api/v1/…`: everything the CLI does that is not
//! git work (the CLI's remote mode uses exactly these routes), described in
//! `/api/openapi.json`: each handler's `#[utoipa::path]` and the types of its
//! bodies are that document ([`crate::openapi`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use hotfix_core::IncidentState;
use hotfix_core::admit::Door;
use hotfix_core::event::Event;
use hotfix_core::event::EventKind;
use hotfix_core::provider::OutboxItem;
use hotfix_core::team::TokenRecord;
use hotfix_core::team::{AdminGuard, ApiRole, Revoke};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Caller, create_token};
use crate::extract::{Body, IncidentPath, Params, PathParam};
use crate::openapi::{
    ApproveResult, BadRequest, Conflict, Forbidden, Inbox, IncidentDetail, NotFound, Outbox,
    PayloadTooLarge, Unauthorized, Unavailable, Unprocessable,
};
use crate::{ApiError, AppState, ops};

/// Who a token acts as.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user: String,
    pub role: ApiRole,
}

/// The version an incident's log is at after a write.
#[derive(Debug, Serialize, ToSchema)]
pub struct Version {
    /// The number of events in the log (the next `expected_version`).
    pub version: u64,
}

/// A page of incidents, or with `ids_only=true` every matching id.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum IncidentList {
    Page {
        /// Every match, not only this page.
        total: usize,
        offset: usize,
        limit: usize,
        incidents: Vec<ops::Summary>,
    },
    Ids {
        total: usize,
        /// Oldest first.
        #[schema(examples(json!(["HF-1"])))]
        ids: Vec<String>,
    },
}

/// An incident's log as the caller may see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventLog {
    pub version: u64,
    pub events: Vec<Event>,
    /// The restricted view of a security incident (`hotfix_core::access`):
    /// details are placeholders.
    pub restricted: bool,
}

/// The live and revoked tokens (never the tokens themselves).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenRecord>,
}

/// A new token: the secret is in this answer only.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCreated {
    pub id: i64,
    pub user: String,
    pub role: ApiRole,
    /// `hf_` + 64 hex digits.
    pub token: String,
}

/// The id of the token revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    pub revoked: i64,
}

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

/// Who the token acts as
///
/// The CLI's remote mode calls this first: the token's user is the actor of
/// every event it sends.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    operation_id = "me",
    tag = "auth",
    responses(
        (status = 200, description = "the token's user and role", body = Me),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
async fn me(caller: Caller) -> Json<Me> {
    Json(Me {
        user: caller.user,
        role: caller.role,
    })
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
async fn version_after<F>(st: &AppState, step: F) -> Result<Json<Version>, ApiError>
where
    F: FnOnce(&AppState) -> Result<IncidentState, ApiError> + Send + 'static,
{
    st.blocking(move |st| step(st).map(|s| Json(Version { version: s.version })))
        .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// `open` (default), `closed`, `all`, or `triage`: the open incidents
    /// waiting for a tech lead's triage (reported, not yet confirmed,
    /// declined or merged).
    #[serde(default)]
    #[param(pattern = "^(open|closed|all|triage)$")]
    state: Option<String>,
    /// Case-insensitive text in the id, title, branch, severity or phase.
    #[serde(default)]
    q: Option<String>,
    /// Newest first, `limit` per page (default 100, at most 1000) from `offset`.
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    #[serde(default)]
    offset: Option<usize>,
    /// Only the ids (oldest first, every match): what the CLI's remote mode
    /// needs to find an incident, cheap even with years of incidents.
    #[serde(default)]
    ids_only: Option<bool>,
}

/// List incidents
///
/// Newest first, one page (`limit`, `offset`); `total` counts every match.
/// With `ids_only=true`: every matching id, oldest first, and no summaries
/// (what the CLI's remote mode uses).
#[utoipa::path(
    get,
    path = "/api/v1/incidents",
    operation_id = "listIncidents",
    tag = "incidents",
    params(ListQuery),
    responses(
        (status = 200, description = "the incidents", body = IncidentList),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]

async fn list(
    State(st): State<AppState>,
    caller: Caller,
    Params(q): Params<ListQuery>,
) -> Result<Json<IncidentList>, ApiError> {
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
            return Ok(Json(IncidentList::Ids {
                total: ids.len(),
                ids,
            }));
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
        Ok(Json(IncidentList::Page {
            total,
            offset,
            limit,
            incidents: page,
        }))
    })
    .await
}

/// The body of a declaration: the `declared` event's fields.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = DeclareRequest)]
#[serde(deny_unknown_fields)]
struct DeclareBody {
    /// Letters, digits, `-`, `_`, `.` (not first), e.g. `pdf-crash`.
    #[schema(examples("pdf-crash"))]
    name: String,
    /// Default: the name with spaces.
    #[serde(default)]
    title: Option<String>,
    /// `critical` or `high` (the hotfix path; others are refused, 422).
    #[schema(examples("critical"))]
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

/// Declare an incident
///
/// Writes the `declared` event (and `affects` when components are given) as
/// the token's user; the server notifies with its own notifiers.
#[utoipa::path(
    post,
    path = "/api/v1/incidents",
    operation_id = "declareIncident",
    tag = "incidents",
    request_body = DeclareBody,
    responses(
        (status = 201, description = "declared", body = IncidentDetail),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    ),
)]
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

/// One incident
///
/// State, approvals, timeline against the targets, checklist, undelivered
/// notifications and the whole event log.
#[utoipa::path(
    get,
    path = "/api/v1/incidents/{id}",
    operation_id = "getIncident",
    tag = "incidents",
    params(("id" = String, Path, description = "an incident id, `HF-<n>`", example = "HF-1")),
    responses(
        (status = 200, description = "the incident", body = IncidentDetail),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
)]
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

/// The event log
///
/// The log and its version (for compare-and-set appends), as the caller may
/// see it: `restricted: true` is the restricted view of a security incident.
#[utoipa::path(
    get,
    path = "/api/v1/incidents/{id}/events",
    operation_id = "getEvents",
    tag = "incidents",
    params(("id" = String, Path, description = "an incident id, `HF-<n>`", example = "HF-1")),
    responses(
        (status = 200, description = "the log", body = EventLog),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ),
)]
async fn events(
    State(st): State<AppState>,
    caller: Caller,
    IncidentPath(id): IncidentPath,
) -> Result<Json<EventLog>, ApiError> {
    st.blocking(move |st| {
        let v = ops::read(st, &ops::reader_of(&caller), id)?;
        let s = v.state();
        Ok(Json(EventLog {
            version: s.version,
            events: s.events.clone(),
            restricted: v.restricted(),
        }))
    })
    .await
}

/// The body of `POST /api/v1/incidents/{id}/events`. Public only for the
/// fuzz target of this route (`fuzz/`), which parses bodies with it.
#[doc(hidden)]
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = AppendRequest)]
#[serde(deny_unknown_fields)]
pub struct AppendBody {
    /// Compare-and-set: the version the client decided on (409 if it moved).
    #[serde(default)]
    pub expected_version: Option<u64>,
    /// At most 100.
    #[schema(max_items = 100)]
    pub events: Vec<EventKind>,
}

/// Append events
///
/// Compare-and-set on `expected_version`. The server re-checks what the
/// caller may append: approvals only in one's own name and role and on the
/// current head, `closed` only with a tech_lead token, and the log must
/// still fold.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/events",
    operation_id = "appendEvents",
    tag = "incidents",
    params(("id" = String, Path, description = "an incident id, `HF-<n>`", example = "HF-1")),
    request_body = AppendBody,
    responses(
        (status = 200, description = "appended; the new version", body = Version),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    ),
)]
async fn append(
    State(st): State<AppState>,
    caller: Caller,
    IncidentPath(id): IncidentPath,
    Body(b): Body<AppendBody>,
) -> Result<Json<Version>, ApiError> {
    if b.events.len() > 100 {
        return Err(ApiError::bad_request("at most 100 events per append"));
    }
    version_after(&st, move |st| {
        ops::append_checked(st, &caller, Door::Api, id, b.expected_version, b.events)
    })
    .await
}

/// Approve the current head
///
/// As the token's user, in the role the team config gives them (tech leads
/// need a tech_lead token); never one's own hotfix. Idempotent.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/approve",
    operation_id = "approve",
    tag = "incidents",
    params(("id" = String, Path, description = "an incident id, `HF-<n>`", example = "HF-1")),
    responses(
        (status = 200, description = "approved (or already approved)", body = ApproveResult),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    ),
)]
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

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = WithdrawRequest)]
#[serde(deny_unknown_fields)]
struct WithdrawBody {
    /// Why (not empty).
    reason: String,
}

/// Withdraw your approval of the current head
///
/// As the token's user: their approval of the current head stops counting
/// (an `approval_withdrawn` event with the reason). Idempotent: nothing to
/// withdraw answers `recorded: false`.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/withdraw",
    operation_id = "withdraw",
    tag = "incidents",
    params(("id" = String, Path, description = "an incident id, `HF-<n>`", example = "HF-1")),
    request_body = WithdrawBody,
    responses(
        (status = 200, description = "withdrawn (or nothing to withdraw)", body = ApproveResult),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    ),
)]
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

/// Triage a reported incident: confirm, decline or merge
///
/// A tech lead's decision about an incident in triage (tech leads in [team]
/// with a tech_lead token; others get 403). `confirm` (only in triage): it
/// is real, at `severity` (default: the incident's; medium/low are refused
/// with `use_normal_release`: decline it as `not_urgent`), with the
/// `public_text` the status page shows; appends `confirmed`. `decline`
/// (until a branch is cut): `reason` false_alarm, not_urgent or duplicate
/// (with `duplicate_of`, an open incident); appends `declined` and `closed`
/// (no checklist). `merge` (until a branch is cut): into `into`, an open
/// incident; appends `merged_into` and `closed` here, then `absorbed` on
/// `into`. Idempotent: a decision already recorded answers `recorded:
/// false`, and a merge whose second append is missing gets it.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/triage",
    operation_id = "triage",
    tag = "incidents",
    params(("id" = String, Path, description = "an incident id, `HF-<n>`", example = "HF-1")),
    request_body = ops::TriageFields,
    responses(
        (status = 200, description = "decided (or already decided so: `recorded: false`); the incident in full", body = ApproveResult),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    ),
)]
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

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = TickRequest)]
#[serde(deny_unknown_fields)]
struct TickBody {
    /// Checklist keys (`fix_verified`, `postmortem_scheduled`, ...).
    done: Vec<String>,
}

/// Tick checklist items
///
/// Items already ticked are left as they are.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/checklist",
    operation_id = "tickChecklist",
    tag = "incidents",
    params(("id" = String, Path, description = "an incident id, `HF-<n>`", example = "HF-1")),
    request_body = TickBody,
    responses(
        (status = 200, description = "the incident", body = IncidentDetail),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    ),
)]
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

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = NoteRequest)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    text: String,
}

/// Add a note
///
/// A free-form line in the incident log.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/notes",
    operation_id = "addNote",
    tag = "incidents",
    params(("id" = String, Path, description = "an incident id, `HF-<n>`", example = "HF-1")),
    request_body = NoteBody,
    responses(
        (status = 200, description = "the new version", body = Version),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    ),
)]
async fn note(
    State(st): State<AppState>,
    caller: Caller,
    IncidentPath(id): IncidentPath,
    Body(b): Body<NoteBody>,
) -> Result<Json<Version>, ApiError> {
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

/// Close
///
/// Needs a tech_lead token and a complete checklist. Idempotent.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/close",
    operation_id = "closeIncident",
    tag = "incidents",
    params(("id" = String, Path, description = "an incident id, `HF-<n>`", example = "HF-1")),
    responses(
        (status = 200, description = "closed", body = IncidentDetail),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    ),
)]
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

/// Undelivered notifications
///
/// Everything the server's notifiers have not delivered yet, with the last
/// error. A message about a security incident the caller may not read says
/// what the channel would see, and nothing it quotes of the incident.
#[utoipa::path(
    get,
    path = "/api/v1/outbox",
    operation_id = "outbox",
    tag = "operations",
    responses(
        (status = 200, description = "the outbox", body = Outbox),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
async fn outbox(State(st): State<AppState>, caller: Caller) -> Result<Json<Outbox>, ApiError> {
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
        let undelivered: Vec<OutboxItem> = items;
        Ok(Json(Outbox { undelivered }))
    })
    .await
}

/// Recent inbox items
///
/// Alerts and webhooks as received, newest first, with what processing did
/// and what each was (its source, alert key and alert name). Outcomes that
/// quote a security incident the caller may not read are scrubbed.
#[utoipa::path(
    get,
    path = "/api/v1/inbox",
    operation_id = "inbox",
    tag = "operations",
    responses(
        (status = 200, description = "the inbox", body = Inbox),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
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

/// List tokens
///
/// Admin only. Never shows the tokens themselves.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    operation_id = "listTokens",
    tag = "auth",
    responses(
        (status = 200, description = "the tokens", body = TokenList),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
async fn tokens(State(st): State<AppState>, caller: Caller) -> Result<Json<TokenList>, ApiError> {
    caller.require(ApiRole::Admin, "listing tokens")?;
    st.blocking(|st| {
        Ok(Json(TokenList {
            tokens: st.store.token_list()?,
        }))
    })
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = TokenCreateRequest)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    /// The team identity acting with the token (as in `[team]`).
    #[schema(examples("dev@example.com"))]
    user: String,
    /// `intake`, `developer`, `tech_lead` or `admin`.
    #[schema(examples("developer"))]
    role: String,
}

/// Create a token
///
/// Admin only. The token is in this answer only.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    operation_id = "createToken",
    tag = "auth",
    request_body = TokenBody,
    responses(
        (status = 201, description = "created", body = TokenCreated),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    ),
)]
async fn token_create(
    State(st): State<AppState>,
    caller: Caller,
    Body(b): Body<TokenBody>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
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
            Json(TokenCreated {
                id,
                user: b.user.trim().to_string(),
                role,
                token,
            }),
        ))
    })
    .await
}

/// Revoke a token
///
/// Admin only. The last live admin token is never revoked (409
/// `last_admin`): create another admin token first (`POST /api/v1/tokens`,
/// or `hotfix serve token create --user YOU --role admin` on the server's
/// machine), then revoke the old one.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    operation_id = "revokeToken",
    tag = "auth",
    params(("id" = i64, Path, description = "the token's id")),
    responses(
        (status = 200, description = "revoked", body = Revoked),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, description = "`last_admin`: it is the last live admin token; nobody could manage tokens after it", body = crate::openapi::Error),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
    ),
)]
async fn token_revoke(
    State(st): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<i64>,
) -> Result<Json<Revoked>, ApiError> {
    caller.require(ApiRole::Admin, "revoking tokens")?;
    st.blocking(move |st| match st.store.token_revoke(id, AdminGuard::KeepOne)? {
        Revoke::Revoked => Ok(Json(Revoked { revoked: id })),
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
