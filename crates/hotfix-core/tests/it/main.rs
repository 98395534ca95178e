//! The pure core's integration tests, one binary: each module is what
//! used to be its own test file.

mod deploy_canary_config;
mod domain;
mod fuzz_regressions;
mod rulebook;
