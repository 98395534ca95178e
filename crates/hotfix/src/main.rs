//! `hotfix`: the command line. One module per verb in `commands`; this file
//! only parses, dispatches and prints the error (`exit` maps its kind to the
//! exit code).

mod app;
mod cli;
mod commands;
mod exit;
mod progress;
mod render;
mod serve;
mod store;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // Commands that print and exit end quietly when their reader goes away
    // (`hotfix log | head`); the platform, the server and the demo keep
    // Rust's ignored SIGPIPE (they write to sockets and children).
    if matches!(
        cli.cmd,
        cli::Cmd::Status(_)
            | cli::Cmd::Pr(_)
            | cli::Cmd::Log(_)
            | cli::Cmd::Checklist(_)
            | cli::Cmd::Completions(_)
            | cli::Cmd::Man(_)
            | cli::Cmd::Platform {
                action: Some(cli::PlatformCmd::Status { .. })
            }
    ) {
        hotfix_platform::default_sigpipe();
    }
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{}", e.render());
            ExitCode::from(e.code())
        }
    }
}
