//! `GET /api/openapi.json`: the API described for people and client generators.
//!
//! The document is written by hand (`openapi.json` next to this file) rather
//! than derived from the handlers: it says *why* a request is refused and
//! what each field means, which no derive can. That it stays true is the job
//! of `tests/openapi.rs`: every documented operation is called on a running
//! server (none may be unknown to the router, and each answer's status must
//! be documented), and every `/api/` route in the source must be documented.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::AppState;

/// The OpenAPI 3.1 document, embedded at build time.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(document))
}

async fn document() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            // Public and the same for every caller: cacheable, briefly (a
            // deploy may change it).
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        DOCUMENT,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_document_is_json() {
        let v: serde_json::Value =
            serde_json::from_str(super::DOCUMENT).expect("openapi.json parses");
        assert_eq!(v["openapi"], "3.1.0");
    }
}
