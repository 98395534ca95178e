//! `hotfix approve`: record an approval of the current head (role-checked;
//! nobody approves their own hotfix), or take it back.

use hotfix_core::id::IncidentId;

use crate::app;
use crate::cli::ActAs;
use crate::commands::{Ctx, acting, print_next};
use crate::exit::{CliError, OK};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The incident (HF-N).
    pub id: String,
    /// Take your approval of the current head back instead (it stops counting; recorded).
    #[arg(long, requires = "reason")]
    pub withdraw: bool,
    /// Why (with --withdraw).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub act: ActAs,
}

pub fn run(cx: &Ctx, a: Args) -> Result<u8, CliError> {
    let id: IncidentId =
        a.id.parse()
            .map_err(|e: hotfix_core::id::BadIncidentId| CliError::usage(e.to_string()))?;
    let e = app::engine(cx.dir, acting(cx.before, a.act.as_.as_deref())?, true)?;
    // An id that names no incident is the same mistake everywhere.
    let id = e.resolve(Some(id))?;
    let who = e.actor.clone();
    let (s, _) = if a.withdraw {
        e.withdraw(id, &who, a.reason.as_deref().unwrap_or(""), "cli")?
    } else {
        e.approve(id, &who, "cli")?
    };
    print_next(&e, &s);
    Ok(OK)
}
