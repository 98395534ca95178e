//! `hotfix completions SHELL`: generated from the clap definitions in
//! `cli`, as the manual is.

use crate::exit::{CliError, OK};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for.
    pub shell: clap_complete::Shell,
}

pub fn run(a: Args) -> Result<u8, CliError> {
    completions(a.shell);
    Ok(OK)
}

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) {
    let mut cmd = crate::commands::man::command();
    clap_complete::generate(shell, &mut cmd, "hotfix", &mut std::io::stdout());
}
