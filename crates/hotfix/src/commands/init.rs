//! `hotfix init`: write hotfix.toml at the repository root.

use hotfix_core::config::INIT_TEMPLATE;

use crate::app;
use crate::commands::Ctx;
use crate::exit::{CliError, OK};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Overwrite an existing hotfix.toml.
    #[arg(long)]
    pub force: bool,
}

pub fn run(cx: &Ctx, a: Args) -> Result<u8, CliError> {
    let git = app::open_git(cx.dir)?;
    let path = app::config_path(&git);
    if path.exists() && !a.force {
        return Err(CliError::failed(format!(
            "{} exists already; `hotfix init --force` overwrites it",
            path.display()
        )));
    }
    if !a.force {
        app::refuse_init_over_team_config(&git)?;
    }
    std::fs::write(&path, INIT_TEMPLATE)
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", path.display())))?;
    println!("wrote {}", path.display());
    println!(
        "next: add your tech leads and reviewers under [team], configure [deploy], list the affected areas under [[area_checks]] (high severity tests them), then commit it and push it to main (git push origin main)"
    );
    Ok(OK)
}
