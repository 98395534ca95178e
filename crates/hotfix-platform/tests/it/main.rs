//! The embedded platform's integration tests, one binary: one link instead
//! of one per file, and the shared fixtures (`common`) compiled once. Each
//! module is what used to be its own test file.

mod common;

mod build_once;
mod fuzz_regressions;
mod platform;
mod settings_and_history;
mod stats_and_canary;
