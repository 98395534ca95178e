//! The in-process embedded platform of the analysis tests lives in
//! `hotfix_testkit::platform` (the team server's tests use it too).
#![allow(dead_code, unused_imports)]

pub use hotfix_testkit::platform::*;
