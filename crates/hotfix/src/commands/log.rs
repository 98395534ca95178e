//! `hotfix log`: every incident with its state and events.

use crate::app;
use crate::commands::Ctx;
use crate::exit::{CliError, OK};
use crate::render;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Every incident with its events as JSON (a stable, documented shape).
    #[arg(long)]
    pub json: bool,
}

pub fn run(cx: &Ctx, a: Args) -> Result<u8, CliError> {
    let e = app::engine(cx.dir, cx.before, false)?;
    let all = e.all()?;
    if a.json {
        println!("{}", render::log_json(&e, &all));
    } else {
        print!("{}", render::log_text(&e, &all));
    }
    Ok(OK)
}
