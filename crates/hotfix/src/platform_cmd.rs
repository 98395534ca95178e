//! `hotfix platform …`: the embedded hosting platform's verbs.

use crate::app;
use crate::cli::PlatformCmd;
use crate::commands::CliError;
use crate::render;

pub fn run(dir: Option<&std::path::Path>, action: PlatformCmd) -> Result<u8, CliError> {
    let git = app::open_git(dir)?;
    let cfg = app::platform_config(&git)?;
    let pe = |e: hotfix_platform::PlatformError| CliError::failed(e.to_string());
    match action {
        PlatformCmd::Run => {
            eprintln!(
                "  platform for {} (production on port {}); Ctrl-C stops it and everything it started",
                git.root().display(),
                cfg.port
            );
            hotfix_platform::run_foreground(cfg).map_err(pe)?;
            Ok(0)
        }
        PlatformCmd::Start => {
            let exe = std::env::current_exe().map_err(|e| CliError::failed(e.to_string()))?;
            let info =
                hotfix_platform::start_background(&cfg, &exe, &app::platform_args(git.root()))
                    .map_err(pe)?;
            // Return once recorded releases are back, so production answers.
            let deadline =
                std::time::Instant::now() + cfg.ready_timeout + std::time::Duration::from_secs(5);
            let client = hotfix_platform::Client::connect(&cfg.state_dir).map_err(pe)?;
            while client.status().map(|s| s.recovering).unwrap_or(false)
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            println!(
                "platform running (pid {}), production on http://{}:{}",
                info.pid, cfg.host, cfg.port
            );
            println!("log: {}", cfg.state_dir.join("platform.log").display());
            Ok(0)
        }
        PlatformCmd::Stop => {
            if hotfix_platform::stop(&cfg.state_dir).map_err(pe)? {
                println!("platform stopped, with every release it started");
            } else {
                println!("no platform was running");
            }
            Ok(0)
        }
        PlatformCmd::Status { json } => {
            if !hotfix_platform::is_running(&cfg.state_dir) {
                if json {
                    println!("{{\"running\": false}}");
                } else {
                    println!("the platform is not running (`hotfix platform start`)");
                }
                return Ok(3);
            }
            let st = hotfix_platform::Client::connect(&cfg.state_dir)
                .and_then(|c| c.status())
                .map_err(pe)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&st).unwrap_or_default());
            } else {
                print!("{}", render::platform_text(&st));
            }
            Ok(0)
        }
    }
}
