//! Request extractors that turn every malformed input into the API's JSON
//! error (400 with what was wrong) instead of axum's plain-text rejections,
//! so each handler states what it needs and nothing more.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use hotfix_core::id::IncidentId;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// A JSON body; a missing content type, bad JSON or a wrong shape is a 400.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(v) = Json::<T>::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        Ok(Body(v))
    }
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
