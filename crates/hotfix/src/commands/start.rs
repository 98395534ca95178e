//! `hotfix start`: declare an incident and cut hotfix/NAME from the
//! remote's current main.

use hotfix_core::severity::{Severity, SeverityError};
use hotfix_engine::StartArgs;

use crate::app;
use crate::cli::ActAs;
use crate::commands::{Ctx, acting, parse_id, print_next};
use crate::exit::{CliError, OK};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The hotfix name; the branch becomes hotfix/NAME.
    pub name: String,
    /// critical or high (medium/low: use the normal release).
    #[arg(long)]
    pub severity: String,
    /// One line on what broke (default: from the name).
    #[arg(long)]
    pub title: Option<String>,
    /// Customers see it: the status page must be updated.
    #[arg(long)]
    pub customer_facing: bool,
    /// A security vulnerability: no details in PR, commits or messages.
    #[arg(long)]
    pub security: bool,
    /// Take this reported incident (once confirmed at triage), or start a
    /// new attempt for this rolled-back one.
    #[arg(long, value_name = "HF-N")]
    pub incident: Option<String>,
    /// Who reported it, when not you (a customer, the support desk): they
    /// are named when the fix is live, to verify it with them.
    #[arg(long, value_name = "WHO")]
    pub reported_by: Option<String>,
    #[command(flatten)]
    pub act: ActAs,
}

pub fn run(cx: &Ctx, a: Args) -> Result<u8, CliError> {
    // Severity first: a medium incident creates nothing at all.
    let severity: Severity = a.severity.parse().map_err(|e| match e {
        SeverityError::UseNormalRelease(_) => CliError::refused(e.to_string()),
        SeverityError::Unknown(_) => CliError::usage(e.to_string()),
    })?;
    let incident = parse_id(&a.incident)?;
    let e = app::engine(cx.dir, acting(cx.before, a.act.as_.as_deref())?, true)?;
    let s = e.start(&StartArgs {
        name: a.name,
        severity,
        title: a.title,
        customer_facing: a.customer_facing,
        security: a.security,
        incident,
        reported_by: a.reported_by,
    })?;
    println!("{} started: {} ({})", s.id, s.branch, s.severity);
    print_next(&e, &s);
    Ok(OK)
}
