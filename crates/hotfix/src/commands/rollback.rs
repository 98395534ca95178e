//! `hotfix rollback`: production back to the previous deployment, the
//! merge reverted.

use crate::app;
use crate::cli::ActAs;
use crate::commands::{Ctx, acting, parse_id, print_next};
use crate::exit::{CliError, OK};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The incident (HF-N); default: the one of the current hotfix/* branch.
    pub id: Option<String>,
    /// Why (kept in the incident log and the post-mortem).
    #[arg(long)]
    pub reason: String,
    /// Roll back even though the incident is closed or later incidents
    /// shipped on top of it (their fixes are undone too); recorded.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub act: ActAs,
}

pub fn run(cx: &Ctx, a: Args) -> Result<u8, CliError> {
    let e = app::engine(cx.dir, acting(cx.before, a.act.as_.as_deref())?, true)?;
    let id = e.resolve(parse_id(&a.id)?)?;
    let s = e.rollback(id, &a.reason, a.force)?;
    println!("{} rolled back", s.id);
    print_next(&e, &s);
    Ok(OK)
}
