//! The CLI's integration tests, one binary (as jj has it): one link
//! instead of one per file, and the shared worlds (`common`, `fakes`)
//! compiled once. Each module is what used to be its own test file.

mod common;
mod fakes;

mod alertmanager;
mod analysis_workflow;
mod build_once;
mod cli_surface;
mod crash;
mod demo;
mod env_registry;
mod exit_codes;
mod first_config;
mod first_hour;
mod hostile_text;
mod local_platform;
mod pr;
mod progress;
mod readable_output;
mod real_providers;
mod remote;
mod serve_limits;
mod ship_refusals;
mod store_hardening;
mod triage;
mod workflow;
