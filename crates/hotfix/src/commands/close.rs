//! `hotfix close`: close the incident once the checklist is complete.

use crate::app;
use crate::cli::IdArg;
use crate::commands::{Ctx, acting, parse_id};
use crate::exit::{CliError, OK};

pub fn run(cx: &Ctx, a: IdArg) -> Result<u8, CliError> {
    let e = app::engine(cx.dir, acting(cx.before, a.act.as_.as_deref())?, true)?;
    let id = e.resolve(parse_id(&a.id)?)?;
    let s = e.close(id)?;
    println!("{} closed", s.id);
    Ok(OK)
}
