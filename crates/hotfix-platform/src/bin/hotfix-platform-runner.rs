//! `hotfix-platform-runner --repo <dir> [--state-dir <dir>]`: runs the platform
//! in the foreground from `<repo>/hotfix.toml` `[deploy]`. The `hotfix`
//! binary's `hotfix platform` does the same; this one exists so the crate's
//! own tests and benchmark can start a real platform process (and kill it).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut repo: Option<PathBuf> = None;
    let mut state_dir: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--repo" => repo = args.next().map(PathBuf::from),
            "--state-dir" => state_dir = args.next().map(PathBuf::from),
            other => {
                eprintln!(
                    "hotfix-platform-runner: unknown argument `{other}`; usage: --repo <dir> [--state-dir <dir>]"
                );
                return ExitCode::from(2);
            }
        }
    }
    let Some(repo) = repo else {
        eprintln!("hotfix-platform-runner: --repo <dir> is required");
        return ExitCode::from(2);
    };
    let cfg = match hotfix_platform::PlatformConfig::load(&repo) {
        Ok(mut c) => {
            if let Some(s) = state_dir {
                c.state_dir = s;
            }
            c
        }
        Err(e) => {
            eprintln!("hotfix-platform-runner: {e}");
            return ExitCode::from(2);
        }
    };
    match hotfix_platform::run_foreground(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hotfix-platform-runner: {e}");
            ExitCode::from(1)
        }
    }
}
