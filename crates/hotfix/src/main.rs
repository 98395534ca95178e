//! `hotfix`: the command line. One function per verb in `commands`; this file
//! only parses, dispatches and prints the error (`exit` maps its kind to the
//! exit code).

mod app;
mod cli;
mod commands;
mod demo;
mod exit;
mod manual;
mod platform_cmd;
mod pr;
mod progress;
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
            eprintln!("{}", e.render());
            ExitCode::from(e.code())
        }
    }
}
