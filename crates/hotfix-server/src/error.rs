//! Errors as the API returns them: a status code and a JSON body
//! `{"error": {"code": "...", "message": "...", "hint": "..."}}` that says
//! what to do next, like the CLI does.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hotfix_core::guards::Refusal;
use hotfix_core::provider::StoreError;
use serde_json::json;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub hint: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> ApiError {
        self.hint = Some(hint.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn conflict(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn unprocessable(code: &str, message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    /// A body over the route's `limit` (bytes): 413 on every route, so a
    /// client can tell "too big" from "malformed" and does not retry it.
    pub fn payload_too_large(limit: usize) -> ApiError {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than {} KB, the most this route accepts",
                limit / 1024
            ),
        )
        .with_hint("nothing was done: send a smaller body")
    }

    /// The rulebook said no: 403 when it is about who acts (an approval by
    /// the author, a role, a server-only event), 422 about the incident's
    /// state; the code of the first reason, every message, as the CLI
    /// prints them.
    pub fn from_refusals(r: Vec<Refusal>) -> ApiError {
        let Some(first) = r.first() else {
            return ApiError::unprocessable("refused", "refused");
        };
        let status = if hotfix_core::admit::FORBIDDEN_CODES.contains(&first.code) {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let message = r
            .iter()
            .map(|x| x.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let hint = r
            .iter()
            .map(|x| x.hint.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        ApiError::new(status, first.code, message).with_hint(hint)
    }

    pub fn body(&self) -> serde_json::Value {
        json!({ "error": { "code": self.code, "message": self.message, "hint": self.hint } })
    }
}

/// The code of a 413, whichever route answers it.
pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";

/// The code of a 409 for [`StoreError::NameInUse`].
pub const NAME_IN_USE: &str = hotfix_core::team::NAME_IN_USE_CODE;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::Conflict { actual, .. } => ApiError::conflict(e.to_string()).with_hint(
                format!("the incident is at version {actual}: re-read it and decide again"),
            ),
            StoreError::NotFound(_) => ApiError::not_found(e.to_string()),
            // The message is the store error's own text: the CLI's remote
            // store reads the name and the holder back from it.
            StoreError::NameInUse { incident, .. } => {
                ApiError::new(StatusCode::CONFLICT, NAME_IN_USE, e.to_string()).with_hint(format!(
                    "continue {incident} (`hotfix status {incident}`), close it first, or choose another name"
                ))
            }
            // Backend messages are ours (no secrets: URLs are redacted by the store).
            _ => ApiError::unavailable(e.to_string()),
        }
    }
}

impl From<hotfix_core::ledger::AppendError> for ApiError {
    fn from(e: hotfix_core::ledger::AppendError) -> Self {
        use hotfix_core::ledger::AppendError;
        match e {
            AppendError::Refused(r) => ApiError::from_refusals(r),
            AppendError::Store(e) => e.into(),
            AppendError::Fold(e) => ApiError::internal(e.to_string()),
            e @ AppendError::KeptChanging(_) => ApiError::conflict(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(self.body())).into_response();
        // For the log of refusals ([`crate::log::refusals`]).
        r.extensions_mut().insert(crate::log::Reason::of(&self));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotfix_core::id::IncidentId;

    /// The CLI's remote store (`hotfix-client`) turns this body back into
    /// the same store error: the code and the message are the contract.
    #[test]
    fn a_name_in_use_answer_carries_the_code_and_the_store_errors_text() {
        let e = StoreError::NameInUse {
            name: "pdf-crash".into(),
            incident: IncidentId(3),
        };
        let answer = ApiError::from(StoreError::NameInUse {
            name: "pdf-crash".into(),
            incident: IncidentId(3),
        });
        assert_eq!(answer.status.as_u16(), 409);
        let body = answer.body();
        assert_eq!(body["error"]["code"], hotfix_core::team::NAME_IN_USE_CODE);
        assert_eq!(body["error"]["message"], e.to_string());
        assert!(
            body["error"]["hint"]
                .as_str()
                .is_some_and(|h| h.contains("HF-3"))
        );
    }
}
