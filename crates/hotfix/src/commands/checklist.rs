//! `hotfix checklist`: the post-hotfix checklist; `--done KEY` ticks items.

use hotfix_core::checklist::checklist;

use crate::app;
use crate::commands::{Ctx, acting, parse_id, print_next};
use crate::exit::{CliError, OK};
use crate::render;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The incident (HF-N); default: the one of the current hotfix/* branch.
    pub id: Option<String>,
    /// Items to tick (keys as listed by `hotfix checklist`).
    #[arg(long, num_args = 1..)]
    pub done: Vec<String>,
    /// The checklist as JSON: one object per item (key, label, done, by hotfix).
    #[arg(long)]
    pub json: bool,
    /// With --done: tick as this person (default: $HOTFIX_USER, else `git config user.email`).
    #[arg(long = "as", value_name = "PERSON")]
    pub as_: Option<String>,
}

pub fn run(cx: &Ctx, a: Args) -> Result<u8, CliError> {
    let e = app::engine(
        cx.dir,
        acting(cx.before, a.as_.as_deref())?,
        !a.done.is_empty(),
    )?;
    let id = e.resolve(parse_id(&a.id)?)?;
    let s = if a.done.is_empty() {
        e.load(id)?
    } else {
        e.tick(id, &a.done)?
    };
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&checklist(&s)).unwrap_or_default()
        );
    } else {
        print!("{}", render::checklist_text(&s));
        print_next(&e, &s);
    }
    Ok(OK)
}
