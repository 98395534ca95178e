//! The exit codes of `hotfix`: one table, and the error every command
//! returns to reach it.
//!
//! Why one place: runbooks and scripts branch on the code (`hotfix ship ||
//! page-someone`, "3: try again in a minute"). When each command picked its
//! own number, an unknown id was 1 for one verb and 2 for the next, and an
//! invalid name 1 where an unknown severity was 2. Now a command says what
//! *kind* of failure it has and this file alone turns kinds into numbers.
//!
//! | code | kind                 | meaning                                                     |
//! |------|----------------------|-------------------------------------------------------------|
//! | 0    | —                    | done; also an empty answer (`status` with no incident)      |
//! | 1    | [`Kind::Refused`]    | a guard of the process said no (approvals, role, state)     |
//! | 1    | [`Kind::Failed`]     | a step was tried and failed (push, deploy, health, store)   |
//! | 2    | [`Kind::Usage`]      | the command as typed cannot work: bad flags, unknown id,    |
//! |      |                      | invalid name or value, configuration error                  |
//! | 3    | [`Kind::Waiting`]    | waiting on something outside: checks still running, the     |
//! |      |                      | embedded platform not running (`platform status`)           |
//!
//! A failpoint (crash tests only) exits 137, as a `kill -9` would.
//!
//! Hints are carried as hints (as jj's `CommandError` does), not glued into
//! the message, so every error prints the same way: `error: MESSAGE`, then
//! one `hint: …` line per hint.

use hotfix_core::provider::StoreError;
use hotfix_engine::EngineError;

/// A command finished and has nothing to complain about.
pub const OK: u8 = 0;

/// What kind of failure a command has; each kind has exactly one code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A guard of the process said no: approvals missing, not your role,
    /// not in that state yet or any more. Read the reason; do what it says.
    Refused,
    /// A step was attempted and failed: a push was rejected, a deploy or
    /// the health watch failed, the store or git could not be read.
    Failed,
    /// The command as typed cannot work, whoever runs it and whenever:
    /// bad flags, an unknown incident id, an invalid name, an unknown
    /// severity, reason or checklist key, a configuration error. Fix the
    /// command line or `hotfix.toml`.
    Usage,
    /// Nothing is wrong yet, but something outside must happen first:
    /// required checks still running, the embedded platform not running.
    /// The same command later may succeed.
    Waiting,
}

impl Kind {
    /// The process exit code of this kind: the table of the module docs.
    pub const fn code(self) -> u8 {
        match self {
            Kind::Refused | Kind::Failed => 1,
            Kind::Usage => 2,
            Kind::Waiting => 3,
        }
    }
}

/// An error at the edge of the CLI: its kind, what happened, what to do.
#[derive(Debug)]
pub struct CliError {
    pub kind: Kind,
    pub message: String,
    /// What to do about it, one line each (printed as `hint: …`).
    pub hints: Vec<String>,
}

impl CliError {
    pub fn new(kind: Kind, message: impl Into<String>) -> CliError {
        CliError {
            kind,
            message: message.into(),
            hints: vec![],
        }
    }

    /// The command as typed cannot work (exit 2).
    pub fn usage(m: impl Into<String>) -> CliError {
        CliError::new(Kind::Usage, m)
    }

    /// A step was tried and failed (exit 1).
    pub fn failed(m: impl Into<String>) -> CliError {
        CliError::new(Kind::Failed, m)
    }

    /// A guard said no (exit 1).
    pub fn refused(m: impl Into<String>) -> CliError {
        CliError::new(Kind::Refused, m)
    }

    /// Adds a line on what to do about it.
    pub fn hint(mut self, h: impl Into<String>) -> CliError {
        let h = h.into();
        if !h.trim().is_empty() {
            self.hints.push(h);
        }
        self
    }

    pub fn code(&self) -> u8 {
        self.kind.code()
    }

    /// What the person reads on stderr: `error: …` and one `hint: …` line
    /// per hint, with every character that could drive a terminal escaped.
    pub fn render(&self) -> String {
        let mut out = format!("error: {}", hotfix_core::display::block(&self.message));
        for h in &self.hints {
            out.push_str(&format!("\nhint: {}", hotfix_core::display::block(h)));
        }
        out
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

/// The kind of an engine error; which errors are about the input the
/// engine says itself (`EngineError::is_usage`).
pub fn kind_of(e: &EngineError) -> Kind {
    match e {
        EngineError::Waiting(_) => Kind::Waiting,
        e if e.is_usage() => Kind::Usage,
        EngineError::Refused(_) => Kind::Refused,
        // A step that failed, the store or git that could not be read.
        _ => Kind::Failed,
    }
}

impl From<EngineError> for CliError {
    fn from(e: EngineError) -> Self {
        let kind = kind_of(&e);
        let redact = |s: &str| hotfix_providers::redact::redact(s).to_string();
        match &e {
            // One refusal: its reason as the message, its hint as a hint.
            // Several keep the engine's list (each reason with its own hint,
            // in the order to fix them).
            EngineError::Refused(r) if r.len() == 1 => CliError {
                kind,
                message: redact(&r[0].message),
                hints: vec![],
            }
            .hint(redact(&r[0].hint)),
            EngineError::Store(StoreError::NotFound(id)) => {
                CliError::new(kind, format!("no incident {id}")).hint("`hotfix log` lists them")
            }
            // Several refusals: each hint stays under its reason.
            EngineError::Refused(_) => CliError::new(kind, redact(&e.to_string())),
            _ => {
                let (message, hints) = split_hints(&redact(&e.to_string()));
                hints
                    .into_iter()
                    .fold(CliError::new(kind, message), CliError::hint)
            }
        }
    }
}

/// A message whose own lines `hint: …` are its hints (the engine's way of
/// carrying one in a plain-text error), apart from the rest.
fn split_hints(text: &str) -> (String, Vec<String>) {
    let mut message = vec![];
    let mut hints = vec![];
    for line in text.lines() {
        match line.trim_start().strip_prefix("hint: ") {
            Some(h) => hints.push(h.to_string()),
            None => message.push(line),
        }
    }
    (message.join("\n"), hints)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotfix_core::guards::Refusal;

    fn refusal(code: &'static str) -> Refusal {
        Refusal {
            code,
            message: format!("{code} happened"),
            hint: format!("fix {code}"),
        }
    }

    #[test]
    fn the_table() {
        assert_eq!(OK, 0);
        assert_eq!(Kind::Refused.code(), 1);
        assert_eq!(Kind::Failed.code(), 1);
        assert_eq!(Kind::Usage.code(), 2);
        assert_eq!(Kind::Waiting.code(), 3);
    }

    #[test]
    fn a_refusal_about_the_input_is_a_usage_error() {
        let e = EngineError::Refused(vec![refusal("invalid_name")]);
        assert_eq!(kind_of(&e), Kind::Usage);
        let e = EngineError::Refused(vec![refusal("role")]);
        assert_eq!(kind_of(&e), Kind::Refused);
        let e = EngineError::Refused(vec![refusal("role"), refusal("bad_value")]);
        assert_eq!(kind_of(&e), Kind::Usage);
    }

    #[test]
    fn hints_are_printed_as_hints() {
        let c = CliError::from(EngineError::Refused(vec![refusal("role")]));
        assert_eq!(c.render(), "error: role happened\nhint: fix role");
        let c = CliError::from(EngineError::Usage(
            "no incident HF-9\nhint: see the log".into(),
        ));
        assert_eq!(c.render(), "error: no incident HF-9\nhint: see the log");
        assert_eq!(c.code(), 2);
        let c = CliError::usage("bad\u{1b}[31m").hint("do x");
        assert_eq!(c.render(), "error: bad\\u{1b}[31m\nhint: do x");
    }
}
