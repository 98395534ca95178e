//! `hotfix backport`: merge the hotfix into develop ("Don't forget this
//! step!"), continue after resolving conflicts, or abort.

use hotfix_engine::backport::BackportMode;

use crate::app;
use crate::cli::ActAs;
use crate::commands::{Ctx, acting, parse_id, print_next};
use crate::exit::{CliError, OK};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The incident (HF-N); default: the one of the current hotfix/* branch.
    pub id: Option<String>,
    /// Finish after resolving conflicts in the worktree.
    #[arg(long, conflicts_with = "abort")]
    pub r#continue: bool,
    /// Give up the backport in progress and leave everything as before.
    #[arg(long)]
    pub abort: bool,
    #[command(flatten)]
    pub act: ActAs,
}

pub fn run(cx: &Ctx, a: Args) -> Result<u8, CliError> {
    let e = app::engine(cx.dir, acting(cx.before, a.act.as_.as_deref())?, true)?;
    let id = e.resolve(parse_id(&a.id)?)?;
    let mode = if a.r#continue {
        BackportMode::Continue
    } else if a.abort {
        BackportMode::Abort
    } else {
        BackportMode::Start
    };
    let s = e.backport(id, mode)?;
    if s.backport_sha.is_some() {
        println!("{} backported to {}", s.id, e.cfg.git.develop);
    }
    print_next(&e, &s);
    Ok(OK)
}
