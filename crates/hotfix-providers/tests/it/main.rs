//! The providers' integration tests, one binary: one link instead of one
//! per file, and the shared world (`common`) compiled once. Each module is
//! what used to be its own test file.

mod common;

mod analysis_prometheus;
mod analysis_sources;
mod command_build;
mod github;
mod local_build;
mod local_canary;
mod railway;
mod slack;
mod statuspage;
mod webhook;

/// Not a test of its own: the embedded platform of the analysis and
/// `local` deployer tests runs this binary as a release
/// (`hotfix_testkit::platform::release_argv`, `--exact` on this name), and
/// it serves the sample service. At the crate root, once, so its full name
/// is the bare `RELEASE_TEST`.
#[test]
fn serve_as_a_release_when_the_platform_runs_this_binary() {
    common::serve_if_release();
}
