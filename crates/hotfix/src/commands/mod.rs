//! One module per verb (as railway's CLI has it): each defines its `Args`
//! (clap) and `run`, which turns them into engine calls and prints what was
//! done and the next step. This file holds what several verbs share and the
//! dispatch.

pub mod approve;
pub mod backport;
pub mod backup;
pub mod checklist;
pub mod close;
pub mod completions;
pub mod demo;
pub mod init;
pub mod log;
pub mod man;
pub mod platform;
pub mod postmortem;
pub mod pr;
pub mod push;
pub mod rollback;
pub mod sample_service;
pub mod ship;
pub mod start;
pub mod status;
pub mod triage;

use std::path::Path;

use hotfix_core::id::IncidentId;
use hotfix_core::state::IncidentState;
use hotfix_engine::Engine;

use crate::app;
use crate::cli::{Cli, Cmd, PlatformCmd, ReadArgs};

/// The error every command returns; its kind decides the exit code
/// (`crate::exit` has the one table).
pub use crate::exit::CliError;

/// What every verb gets besides its own arguments: `-C DIR` and the
/// (hidden, before-the-verb) `--as`.
pub struct Ctx<'a> {
    pub dir: Option<&'a Path>,
    pub before: Option<&'a str>,
}

pub(crate) fn parse_id(s: &Option<String>) -> Result<Option<IncidentId>, CliError> {
    s.as_deref()
        .map(|v| {
            v.parse::<IncidentId>()
                .map_err(|e| CliError::usage(e.to_string()))
        })
        .transpose()
}

/// The incident a read command (`status`, `pr`) is about, or `None` once
/// it has printed the empty answer.
///
/// Why an empty answer and not an error: "is anything on fire?" answered
/// by `hotfix status` on main with "no open incident" is the good news, and
/// exits 0 so a script or a shell prompt can ask it. Off a hotfix branch
/// with incidents open, which one is meant is unclear: that stays a usage
/// error (2) that lists them.
pub(crate) fn resolve_for_reading(
    e: &Engine,
    r: &ReadArgs,
) -> Result<Option<IncidentId>, CliError> {
    if r.id.is_none() {
        let on_hotfix_branch = e
            .git
            .current_branch()
            .map_err(hotfix_engine::EngineError::from)?
            .is_some_and(|b| b.starts_with(e.cfg.git.prefix.as_str()));
        if !on_hotfix_branch && e.open()?.is_empty() {
            if r.json {
                println!("null");
            } else {
                println!("no open incident");
                println!(
                    "next: `hotfix start NAME --severity critical|high` declares one; `hotfix log` lists the past ones"
                );
            }
            return Ok(None);
        }
    }
    Ok(Some(e.resolve(parse_id(&r.id)?)?))
}

pub(crate) fn print_next(e: &Engine, s: &IncidentState) {
    println!("next: {}", hotfix_core::display::line(&e.next_step(s)));
}

/// Who acts: `--as` after the verb, else the (hidden, kept for
/// compatibility) `--as` before it. Both, naming two people, is a mistake
/// worth stopping at rather than guessing which one was meant.
pub(crate) fn acting<'a>(
    before: Option<&'a str>,
    after: Option<&'a str>,
) -> Result<Option<&'a str>, CliError> {
    match (before, after) {
        (Some(b), Some(a)) if !b.trim().eq_ignore_ascii_case(a.trim()) => Err(CliError::usage(
            format!("--as is given twice, as {b} and as {a}"),
        )
        .hint("give it once, after the verb: `hotfix VERB ... --as PERSON`")),
        (b, a) => Ok(a.or(b)),
    }
}

pub fn run(cli: Cli) -> Result<u8, CliError> {
    crate::progress::configure(cli.quiet, cli.json());
    crate::store::set_reinit(cli.reinit);
    // `init` writes the file `$HOTFIX_CONFIG` names; the demo and the sample
    // service run on their own sample setup and read no config; `serve`
    // resolves the name against `-C` itself and refuses a missing one there.
    if !matches!(
        cli.cmd,
        Cmd::Init(_)
            | Cmd::Demo(_)
            | Cmd::SampleService(_)
            | Cmd::Serve(_)
            | Cmd::Completions(_)
            | Cmd::Man(_)
    ) {
        app::refuse_missing_named_config()?;
    }
    let cx = Ctx {
        dir: cli.dir.as_deref(),
        before: cli.as_.as_deref(),
    };
    match cli.cmd {
        Cmd::Init(a) => init::run(&cx, a),
        Cmd::Start(a) => start::run(&cx, a),
        Cmd::Triage(a) => triage::run(&cx, a),
        Cmd::Status(r) => status::run(&cx, r),
        Cmd::Push(a) => push::run(&cx, a),
        Cmd::Pr(r) => pr::show(cx.dir, cx.before, r),
        Cmd::Approve(a) => approve::run(&cx, a),
        Cmd::Ship(a) => ship::run(&cx, a),
        Cmd::Backport(a) => backport::run(&cx, a),
        Cmd::Rollback(a) => rollback::run(&cx, a),
        Cmd::Checklist(a) => checklist::run(&cx, a),
        Cmd::Postmortem(a) => postmortem::run(&cx, a),
        Cmd::Close(a) => close::run(&cx, a),
        Cmd::Log(a) => log::run(&cx, a),
        Cmd::Backup(a) => backup::run(&cx, a),
        Cmd::Platform { action } => {
            platform::run(cx.dir, cx.before, action.unwrap_or(PlatformCmd::Run))
        }
        Cmd::Serve(a) => crate::serve::run(cx.dir, a),
        Cmd::Demo(a) => demo::run(a),
        Cmd::Completions(a) => completions::run(a),
        Cmd::Man(a) => man::run(a),
        Cmd::SampleService(a) => sample_service::run(a),
    }
}

pub(crate) fn short(s: &str) -> &str {
    s.get(..10).unwrap_or(s)
}
