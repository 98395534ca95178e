//! `hotfix`: the command line. One function per verb in `commands`; this file
//! only parses, dispatches and maps errors to exit codes.

mod app;
mod cli;
mod commands;
mod demo;
mod platform_cmd;
mod render;
mod serve;
mod store;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", hotfix_core::display::block(&e.message));
            ExitCode::from(e.code)
        }
    }
}
