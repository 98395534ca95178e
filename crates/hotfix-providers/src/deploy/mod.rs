//! Deployers: where the code runs.

pub mod command;
pub mod local;
pub mod process;
pub mod railway;

pub use command::CommandDeployer;
