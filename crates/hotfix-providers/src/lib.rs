//! Provider implementations behind the traits of `hotfix_core::provider`.
//!
//! Each provider lives in its own module so that adding GitHub, Railway or
//! Slack never touches the workflow.

pub mod analysis;
pub mod deploy;
pub mod forge;
pub mod health;
pub mod http;
pub mod notify;
pub mod redact;
pub mod signature;
