//! The team server's integration tests, one binary: one link instead of
//! one per file, and the shared worlds (`common`, `webdriver`) compiled
//! once. Each module is what used to be its own test file.

mod common;
mod webdriver;

mod alerts;
mod api;
mod browser;
mod dashboard;
mod github_webhooks;
mod last_admin;
mod observability;
mod openapi;
mod replicas;
mod rulebook_api;
mod security_view;
mod slack_command;
mod triage;
mod triage_status;
mod wire_limits;
mod workers;

/// Not a test of its own: the in-process platform of the watch tests
/// (`hotfix_testkit::platform`) runs this binary as a release (`--exact`
/// on this name), and it serves the sample service. At the crate root, so
/// its full name is the bare `RELEASE_TEST`.
#[test]
fn serve_as_a_release_when_the_platform_runs_this_binary() {
    hotfix_testkit::platform::serve_if_release();
}
