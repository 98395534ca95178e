//! `hotfix status`: state, next action, timeline against the targets,
//! checklist; with the embedded platform, what runs where.

use crate::app;
use crate::cli::ReadArgs;
use crate::commands::{Ctx, resolve_for_reading};
use crate::exit::{CliError, OK};
use crate::render;

pub fn run(cx: &Ctx, r: ReadArgs) -> Result<u8, CliError> {
    let e = app::engine(cx.dir, cx.before, false)?;
    let Some(id) = resolve_for_reading(&e, &r)? else {
        return Ok(OK);
    };
    let s = e.load(id)?;
    let undelivered = e
        .store
        .undelivered()
        .map(|v| {
            v.into_iter()
                .filter(|i| i.message.incident == id)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    // The embedded platform's view: what runs, and crashed releases.
    let platform = if e.cfg.deploy.provider == "local" {
        let dir = e.state_dir.join("platform");
        hotfix_platform::is_running(&dir)
            .then(|| {
                hotfix_platform::Client::connect(&dir)
                    .and_then(|c| c.status())
                    .ok()
            })
            .flatten()
    } else {
        None
    };
    if r.json {
        let mut v = render::status_value(&e, &s, &undelivered);
        if let Some(p) = &platform {
            v["platform"] = serde_json::to_value(p).unwrap_or_default();
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", render::status_text(&e, &s, &undelivered));
        if let Some(p) = &platform {
            print!("\n{}", render::platform_text(p));
        }
    }
    Ok(OK)
}
