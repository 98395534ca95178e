//! `hotfix postmortem`: the post-mortem draft and a calendar invite, due
//! within 24 h.

use crate::app;
use crate::cli::IdArg;
use crate::commands::{Ctx, acting, parse_id, print_next};
use crate::exit::{CliError, OK};

pub fn run(cx: &Ctx, a: IdArg) -> Result<u8, CliError> {
    let e = app::engine(cx.dir, acting(cx.before, a.act.as_.as_deref())?, true)?;
    let id = e.resolve(parse_id(&a.id)?)?;
    let (s, written) = e.postmortem(id)?;
    for w in written {
        println!("wrote {w}");
    }
    println!("{}", hotfix_engine::text::postmortem_hint(&s, &e.cfg));
    if let Some((_, due)) = &s.postmortem {
        println!("post-mortem due by {}", due.strftime("%Y-%m-%d %H:%M UTC"));
    }
    print_next(&e, &s);
    Ok(OK)
}
