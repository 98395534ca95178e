//! Forges: where pull requests live and how they merge.

pub mod github;
pub mod local;
pub mod merge;

pub use local::LocalForge;
