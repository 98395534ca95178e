//! Timers: reminders that must fire once, whichever replica is up.

use crate::AppState;

/// One round (stub: filled in by the timers work).
pub fn run(_st: &AppState) {}
