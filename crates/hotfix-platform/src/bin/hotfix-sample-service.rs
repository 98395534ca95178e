//! `hotfix-sample-service [--port N] [--dir D]`: the sample service of
//! `hotfix_platform::sample_service`, for tests and demos. The port defaults to
//! `$PORT`, the directory to the current one.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut port = std::env::var(hotfix_core::env_vars::PORT).ok();
    let mut dir: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => port = args.next(),
            "--dir" => dir = args.next().map(PathBuf::from),
            other => {
                eprintln!(
                    "hotfix-sample-service: unknown argument `{other}`; usage: [--port N] [--dir D]"
                );
                return ExitCode::from(2);
            }
        }
    }
    let Some(port) = port.and_then(|p| p.parse::<u16>().ok()) else {
        eprintln!("hotfix-sample-service: give a port with --port N or PORT=N");
        return ExitCode::from(2);
    };
    let dir = match dir.map(Ok).unwrap_or_else(std::env::current_dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("hotfix-sample-service: no working directory: {e}");
            return ExitCode::from(2);
        }
    };
    match hotfix_platform::sample_service::serve(port, &dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hotfix-sample-service: {e}");
            ExitCode::from(1)
        }
    }
}
