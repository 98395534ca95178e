//! The server's log: one line on stderr per thing worth saying.
//!
//! Every line goes through [`hotfix_core::display::line`], since what it
//! reports (an incident's name, a remote API's error text, a store error
//! quoting a value) may carry control characters: a CR/LF in it would forge
//! a second log line, an ESC would recolour the operator's terminal.

use std::fmt::Display;

/// Logs `what` as one line, prefixed `hotfix serve: `.
pub fn line(what: impl Display) {
    eprintln!(
        "hotfix serve: {}",
        hotfix_core::display::line(&what.to_string())
    );
}
