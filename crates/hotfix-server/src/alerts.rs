//! (stub)

use axum::Router;
use hotfix_core::team::InboxItem;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}

/// Processes one inbox item of this module's sources.
pub fn process(_st: &AppState, _item: &InboxItem) -> Result<String, String> {
    Ok("ignored: not implemented yet".into())
}
