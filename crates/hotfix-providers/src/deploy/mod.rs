//! Deployers: where the code runs.

pub mod command;
pub mod local;
pub mod process;

pub use command::CommandDeployer;
