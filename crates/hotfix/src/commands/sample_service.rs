//! `hotfix sample-service` (hidden): the demo's sample service, routes from
//! service/routes.toml in the current directory.

use crate::exit::{CliError, OK};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The port to listen on, on 127.0.0.1.
    #[arg(long, env = "PORT")]
    pub port: u16,
}

pub fn run(a: Args) -> Result<u8, CliError> {
    let cwd = std::env::current_dir().map_err(|e| CliError::failed(e.to_string()))?;
    hotfix_platform::sample_service::serve(a.port, &cwd)
        .map_err(|e| CliError::failed(e.to_string()))?;
    Ok(OK)
}
