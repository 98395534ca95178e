//! Request extractors that turn every malformed input into the API's JSON
//! error (400 with what was wrong) instead of axum's plain-text rejections,
//! so each handler states what it needs and nothing more; and the limit on
//! request bodies, which every route answers with the same JSON 413.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hotfix_core::id::IncidentId;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use crate::ApiError;

/// A JSON body; a missing content type, bad JSON or a wrong shape is a 400,
/// a body over the route's limit a 413.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(MAX_BODY, |l| l.0);
        let Json(v) = Json::<T>::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large(limit)
            } else {
                ApiError::bad_request(e.body_text())
            }
        })?;
        Ok(Body(v))
    }
}

/// The largest request body of a route that does not say otherwise: the
/// API's JSON, the dashboard's forms, Slack's commands. (axum's default,
/// stated here so that the 413 can say it and a new axum cannot move it.)
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// The largest request body the route at `path` takes. Matched on the raw
/// path, as the router matches it. A route that sets its own
/// `DefaultBodyLimit` must be listed here too: [`limit_bodies`] cuts every
/// body at this limit before the route sees it.
pub fn body_limit(path: &str) -> usize {
    if path == GITHUB_WEBHOOK {
        crate::github::MAX_PAYLOAD
    } else if is_alert_route(path) {
        crate::alerts::MAX_BODY
    } else {
        MAX_BODY
    }
}

/// The GitHub webhook route (written out in its `.route`, which the
/// OpenAPI test reads).
const GITHUB_WEBHOOK: &str = "/api/v1/webhooks/github";

/// The alert route authenticates the sender and counts its refusals before
/// it looks at the size, and answers its own JSON 413.
fn is_alert_route(path: &str) -> bool {
    path.starts_with("/api/v1/alerts/")
}

/// The limit of the request's route, for the extractors' 413.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Middleware on every route: a body over the route's limit is answered
/// 413 with the API's JSON error, however the route reads its body (JSON,
/// a form, raw bytes, not at all) and however it is sent:
///
/// - a `Content-Length` over the limit is answered before the body is read
///   (with `Expect: 100-continue`, the client never sends it);
/// - a body without one (chunked) is cut at the limit, and whatever the
///   route made of the cut (axum's plain-text 413, a 400, the dashboard's
///   redirect with a message) becomes the 413. Refusals of who is asking
///   (401, 403) stand: they come first, as on the alert route.
pub async fn limit_bodies(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let limit = body_limit(path);
    if !is_alert_route(path) && declared_length(req.headers()).is_some_and(|n| n > limit as u64) {
        return ApiError::payload_too_large(limit).into_response();
    }
    let over = Arc::new(AtomicBool::new(false));
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(BodyLimit(limit));
    let seen = over.clone();
    let body = Limited::new(body, limit).map_err(move |e| {
        if e.is::<LengthLimitError>() {
            seen.store(true, Ordering::Relaxed);
        }
        e
    });
    let res = next
        .run(Request::from_parts(parts, axum::body::Body::new(body)))
        .await;
    let status = res.status();
    let json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status == StatusCode::PAYLOAD_TOO_LARGE && json {
        // The route said it itself (the alert route, [`Body`]).
        return res;
    }
    let refused_caller = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
    if status == StatusCode::PAYLOAD_TOO_LARGE || (over.load(Ordering::Relaxed) && !refused_caller)
    {
        return ApiError::payload_too_large(limit).into_response();
    }
    res
}

/// The query string; an unknown parameter or a bad value is a 400.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(v) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        Ok(Params(v))
    }
}

/// The path parameters (`{id}` of a token, …); a value of the wrong type is a 400.
pub struct PathParam<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(v) = Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        Ok(PathParam(v))
    }
}

/// The `{id}` of an incident route (`HF-12` or `12`); anything else is a 400.
pub struct IncidentPath(pub IncidentId);

impl<S: Send + Sync> FromRequestParts<S> for IncidentPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let PathParam(raw) = PathParam::<String>::from_request_parts(parts, state).await?;
        parse_id(&raw).map(IncidentPath)
    }
}

/// `HF-12` or `12`.
pub fn parse_id(raw: &str) -> Result<IncidentId, ApiError> {
    raw.parse::<IncidentId>()
        .map_err(|_| ApiError::bad_request(format!("`{raw}` is not an incident id (HF-N)")))
}
