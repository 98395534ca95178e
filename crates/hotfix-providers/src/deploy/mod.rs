//! Deployers: where the code runs.

pub mod command;
pub mod process;

pub use command::CommandDeployer;
