//! Probing production during the watch window after a deploy.

use crate::AppState;

/// One round (stub: filled in by the watch work).
pub fn run(_st: &AppState) {}
