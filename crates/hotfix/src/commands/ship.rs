//! `hotfix ship`: check the guards, merge to main, deploy production,
//! watch health and analyses, roll back if worse.

use crate::app;
use crate::cli::ActAs;
use crate::commands::{Ctx, acting, parse_id, print_next, short};
use crate::exit::{CliError, OK};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The incident (HF-N); default: the one of the current hotfix/* branch.
    pub id: Option<String>,
    /// Ship a diff wider than the policy allows (recorded as an anti-pattern).
    #[arg(long, requires = "reason")]
    pub allow_wide: bool,
    /// Why (with --allow-wide).
    #[arg(long)]
    pub reason: Option<String>,
    /// Also merge into develop, in the same atomic push as main (as git-flow's
    /// finish does); falls back to a separate backport if develop conflicts.
    #[arg(long)]
    pub backport: bool,
    #[command(flatten)]
    pub act: ActAs,
}

pub fn run(cx: &Ctx, a: Args) -> Result<u8, CliError> {
    let e = app::engine(cx.dir, acting(cx.before, a.act.as_.as_deref())?, true)?;
    let id = e.resolve(parse_id(&a.id)?)?;
    let wide = if a.allow_wide {
        Some(a.reason.as_deref().unwrap_or(""))
    } else {
        None
    };
    let s = e.ship(id, wide, a.backport || e.cfg.git.backport_on_ship)?;
    println!(
        "{} shipped: {} is live and healthy",
        s.id,
        s.merge_sha.as_deref().map(short).unwrap_or("")
    );
    print_next(&e, &s);
    Ok(OK)
}
