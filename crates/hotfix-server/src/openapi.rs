//! `GET /api/openapi.json`: the API described for people and client generators.
//!
//! The document is generated from the code (`utoipa`): each handler carries
//! its `#[utoipa::path]` (method, path, parameters, body, every status it
//! answers), and the bodies are described by the types that are serialised
//! (`ToSchema` on the request bodies, the answers, and the events and roles
//! of `hotfix-core` behind its `openapi` feature). Where a handler still
//! builds its answer with `json!`, the shape is a schema type here
//! ([`IncidentDetail`] and friends), which `tests/openapi.rs` and the
//! schema-driven fuzzer in CI (`.ci/schemathesis`) hold against real answers.
//!
//! Why a route refuses is said in prose on the handlers (doc comments and
//! response descriptions), which utoipa copies into the document.

use std::sync::OnceLock;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use hotfix_core::event::{AntiPattern, Event, Role};
use hotfix_core::provider::OutboxItem;
use hotfix_core::team::{ApiRole, InboxRecord};
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::AppState;

/// The whole document: every module's operations and the shared parts.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "hotfix team server API",
        version = "1",
        description = "The JSON API of `hotfix serve`: everything the hotfix CLI does that is not git work (the CLI's remote mode uses exactly these routes), plus alert and webhook intake. Authenticate with `Authorization: Bearer <token>` (create tokens with `hotfix serve token create`). Errors are always an `Error` body. A request body over the route's limit is answered 413 `payload_too_large` on every route.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    servers((url = "/", description = "this server")),
    security(("bearer" = [])),
    tags(
        (name = "incidents"),
        (name = "auth"),
        (name = "operations"),
        (name = "intake", description = "alerts and webhooks: authenticated, stored durably, answered 202, processed by the workers"),
        (name = "meta"),
    ),
    paths(
        crate::api::me,
        crate::api::list,
        crate::api::declare,
        crate::api::show,
        crate::api::events,
        crate::api::append,
        crate::api::approve,
        crate::api::withdraw,
        crate::api::triage,
        crate::api::tick,
        crate::api::note,
        crate::api::close,
        crate::api::outbox,
        crate::api::inbox,
        crate::api::tokens,
        crate::api::token_create,
        crate::api::token_revoke,
        crate::alerts::receive,
        crate::github::intake::webhook,
        crate::slack::request::command,
        crate::dashboard::stats::api,
        crate::status::json,
        crate::metrics::metrics,
        crate::metrics::healthz,
        document,
    ),
    components(
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            Unprocessable,
            Unavailable,
            PayloadTooLarge
        ),
        schemas(Error, ApiRole, AlertSource)
    ),
    modifiers(&SecuritySchemes),
)]
struct ApiDoc;

/// The document as served, built once per process (it depends on nothing
/// but the code).
pub fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        // A derived document always serialises; if it did not, an empty
        // object is still JSON and `tests/openapi.rs` fails on it.
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|_| "{}".to_string())
    })
}

/// The document as a value (tests, `hotfix serve openapi`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(document))
}

/// This document
///
/// Generated from the server's handlers and types; no sign-in.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "openapi",
    tag = "meta",
    security(()),
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object)),
)]
async fn document() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            // Public and the same for every caller: cacheable, briefly (a
            // deploy may change it).
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        json(),
    )
}

/// The security schemes the operations name (tokens, and the signatures of
/// senders that cannot send a token).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("hf_ + 64 hex digits")
            .description(Some(
                "an API token from `hotfix serve token create` (or POST /api/v1/tokens); the dashboard's `hotfix_session` cookie carries the same token. An `intake` token is accepted by POST /api/v1/alerts/{source} only (403 elsewhere)",
            ))
            .build();
        c.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        c.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "alert senders that only do basic auth (Alertmanager http_config): any user name, the API token (an `intake` token) as the password",
                    ))
                    .build(),
            ),
        );
        let header = |name: &str, description: &str| {
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                name,
                description,
            )))
        };
        c.add_security_scheme(
            "sentrySignature",
            header(
                "Sentry-Hook-Signature",
                "hex HMAC-SHA256 of the raw body with the Sentry integration's client secret (SENTRY_CLIENT_SECRET on the server)",
            ),
        );
        c.add_security_scheme(
            "githubSignature",
            header(
                "X-Hub-Signature-256",
                "`sha256=` + hex HMAC-SHA256 of the raw body with the webhook secret (HOTFIX_GITHUB_WEBHOOK_SECRET on the server)",
            ),
        );
        c.add_security_scheme(
            "slackSignature",
            header(
                "X-Slack-Signature",
                "`v0=` + hex HMAC-SHA256 of `v0:{X-Slack-Request-Timestamp}:{raw body}` with the Slack app's signing secret (SLACK_SIGNING_SECRET on the server); older than 5 minutes is refused",
            ),
        );
    }
}

/// The body of every error answer (`crate::ApiError::body`).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Error {
    #[schema(inline)]
    pub error: ErrorDetail,
}

/// What went wrong and what to do next.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// Stable, for programs: `bad_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `conflict`, `name_in_use`, `last_admin`,
    /// `payload_too_large`, `unavailable`, or a rulebook refusal's code
    /// (`self_approval`, `missing_approvals`, ...).
    #[schema(examples("not_found"))]
    pub code: String,
    pub message: String,
    /// What to do next, when there is something to say.
    pub hint: Option<String>,
}

/// The shared error answers, each an [`Error`] body, named in
/// `components/responses` so that operations refer to them.
macro_rules! error_responses {
    ($($name:ident: $description:literal;)*) => {$(
        #[doc = $description]
        pub struct $name;

        impl<'s> utoipa::ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<Response>) {
                (
                    stringify!($name),
                    ResponseBuilder::new()
                        .description($description)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("Error")))
                                .build(),
                        )
                        .build()
                        .into(),
                )
            }
        }
    )*};
}

error_responses! {
    BadRequest: "the request is malformed (not JSON, unknown fields, a bad id)";
    Unauthorized: "no token, an unknown or revoked token, or a bad signature";
    Forbidden: "the token's role or identity may not do this";
    NotFound: "no such incident (or token)";
    Conflict: "the incident changed since the client read it: re-read and decide again";
    Unprocessable: "a workflow guard refused, with a hint";
    Unavailable: "the store, or this feature, is not available";
    PayloadTooLarge: "the body is larger than this route accepts (`payload_too_large`; 2 MB, alerts 4 MB, GitHub webhooks 25 MB), sent with or without Content-Length: nothing was done";
}

// The answers built with `json!` (`crate::ops::detail`, the intake
// routes): their shapes, field for field.

/// Everything about one incident (`GET /api/v1/incidents/{id}`).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct IncidentDetail {
    pub incident: crate::ops::Summary,
    /// The restricted view of a security incident: the caller is not on it
    /// and is neither a tech lead nor an admin, so its title, name, branch
    /// and every detail (commit subjects, file names, URLs, notes, reasons)
    /// are placeholders; ids, people, SHAs, times, phase and next step are
    /// as in full (README: Security incidents: who reads what).
    pub restricted: bool,
    pub state: DetailState,
    pub approvals: Vec<Approval>,
    /// e.g. `1 tech lead approval`.
    pub missing_approvals: Vec<String>,
    pub timeline: Vec<hotfix_core::timeline::Step>,
    pub checklist: Vec<hotfix_core::checklist::Item>,
    pub undelivered: Vec<Undelivered>,
    pub events: Vec<Event>,
}

/// The incident's state folded from its log.
#[derive(Serialize, ToSchema)]
#[schema(as = IncidentFolded)]
#[allow(dead_code)]
pub struct DetailState {
    pub head_sha: Option<String>,
    pub pr: Option<u64>,
    pub pr_url: Option<String>,
    pub preview_url: Option<String>,
    pub merge_sha: Option<String>,
    pub deployed_sha: Option<String>,
    pub healthy_sha: Option<String>,
    pub health_failure: Option<String>,
    pub backport_sha: Option<String>,
    pub resolved_at: Option<jiff::Timestamp>,
    pub closed_at: Option<jiff::Timestamp>,
    pub alert_status: Option<String>,
    pub components: Vec<String>,
    pub postmortem: Option<Postmortem>,
    pub anti_patterns: Vec<AntiPatternNote>,
}

/// The scheduled post-mortem.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Postmortem {
    pub path: String,
    pub due: jiff::Timestamp,
}

/// A guard overridden on purpose, and why.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct AntiPatternNote {
    pub pattern: AntiPattern,
    pub reason: String,
}

/// An approval on the incident.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Approval {
    pub by: String,
    pub role: Role,
    /// A full git commit id.
    pub sha: String,
    pub at: jiff::Timestamp,
    pub source: String,
    /// Given on the current head (counts).
    pub fresh: bool,
    /// Taken back (or dismissed on the forge).
    pub withdrawn: bool,
}

/// A notification about the incident not delivered yet.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Undelivered {
    pub id: i64,
    pub notifier: String,
    pub step: String,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// The incident in full and whether the step recorded anything.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ApproveResult {
    #[serde(flatten)]
    pub detail: IncidentDetail,
    /// False: nothing was appended (this user had approved this head
    /// already; the triage decision was recorded already).
    pub recorded: bool,
}

/// An inbox item, with what it was (from its body).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct InboxEntry {
    #[serde(flatten)]
    pub record: InboxRecord,
    /// The alert's key: an Alertmanager groupKey, a PagerDuty dedup_key, a
    /// Sentry `issue:ID` / `metric_alert:ID`, a generic `key` (null for a
    /// non-alert item, or one about a security incident the caller may not
    /// read).
    pub key: Option<String>,
    /// The alert it is about (for an Alertmanager group, the alert its rule
    /// matched, which names the incident); null as for `key`.
    pub alertname: Option<String>,
    /// `firing`, `resolved` or `acknowledged`; null for a non-alert item.
    pub status: Option<String>,
    /// How many alerts it stands for (an Alertmanager group's alerts[] plus
    /// truncatedAlerts).
    pub alerts: Option<u64>,
}

/// The recent inbox.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Inbox {
    pub items: Vec<InboxEntry>,
}

/// The undelivered notifications.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Outbox {
    pub undelivered: Vec<OutboxItem>,
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// This replica's name (when healthy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// Why the store does not answer (when unavailable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An alert stored in the inbox.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct AlertAccepted {
    /// Always `accepted`.
    pub status: String,
    pub inbox_id: i64,
    /// The same body (or Sentry Request-ID) was stored before.
    pub duplicate: bool,
}

/// What became of a GitHub delivery.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct WebhookAccepted {
    /// `accepted`, `duplicate`, `ignored` or `pong`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbox_id: Option<i64>,
    /// Why an event was ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /api/v1/stats`: the figures and what they are over.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct StatsAnswer {
    /// The filter as understood (`q`, `severity`, `state`).
    #[schema(value_type = Object)]
    pub filter: serde_json::Value,
    pub generated_at: jiff::Timestamp,
    pub stats: crate::dashboard::stats::Stats,
}

/// The alert senders `POST /api/v1/alerts/{source}` knows
/// (`crate::alerts::Source`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum AlertSource {
    Alertmanager,
    Sentry,
    Pagerduty,
    Generic,
}

/// An alert body: its shape depends on `{source}` and is checked by the
/// parser of that source (`crate::alerts::parse`), whose 400 names the
/// expected shape.
pub struct AlertBody;

impl utoipa::PartialSchema for AlertBody {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .description(Some(
                "`alertmanager`: Alertmanager's webhook (version 4: `status`, `groupKey`, `alerts[]` with `status`, `labels`, `annotations`, `fingerprint`, and `truncatedAlerts`); `sentry`: a Sentry issue or metric-alert webhook (`action`, `data`); `pagerduty`: a PagerDuty Events v2 event (`routing_key`, `event_action` trigger, acknowledge or resolve, `dedup_key`, `payload` with `summary`, `severity`, `source`); `generic`: `{\"name\", \"title\", \"severity\", \"status\": \"firing\"|\"resolved\", \"key\"}`",
            ))
            .into()
    }
}

impl ToSchema for AlertBody {}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_json_and_built_once() {
        let v: serde_json::Value =
            serde_json::from_str(super::json()).expect("the document parses");
        assert_eq!(v["openapi"], "3.1.0");
        assert!(std::ptr::eq(super::json(), super::json()));
    }

    /// The `Error` schema names what `ApiError::body` writes.
    #[test]
    fn the_error_schema_has_the_fields_of_an_error_body() {
        let body = crate::ApiError::not_found("x").with_hint("y").body();
        let v: serde_json::Value = serde_json::from_str(super::json()).expect("parses");
        let props = &v["components"]["schemas"]["Error"]["properties"]["error"]["properties"];
        let written: Vec<&String> = body["error"].as_object().expect("object").keys().collect();
        let documented: Vec<&String> = props.as_object().expect("object").keys().collect();
        assert_eq!(written, documented);
    }
}
