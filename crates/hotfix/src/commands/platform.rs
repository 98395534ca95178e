//! `hotfix platform …`: the embedded hosting platform's verbs.

use hotfix_engine::Ui;
use hotfix_git::Git;
use hotfix_platform::{DeployVia, HistoryAction, HistoryEntry, PlatformConfig, PlatformStatus};
use hotfix_providers::deploy::local::LocalDeployer;

use crate::app;
use crate::cli::PlatformCmd;
use crate::commands::CliError;
use crate::exit::{Kind, OK};
use crate::render;

/// How many history lines the text of `platform status` shows (`--json` has all).
const HISTORY_SHOWN: usize = 10;

/// `before`: a `--as` given before the verb (kept for compatibility).
pub fn run(
    dir: Option<&std::path::Path>,
    before: Option<&str>,
    action: PlatformCmd,
) -> Result<u8, CliError> {
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
            Ok(OK)
        }
        PlatformCmd::Start => {
            let exe = std::env::current_exe().map_err(|e| CliError::failed(e.to_string()))?;
            let info =
                hotfix_platform::start_background(&cfg, &exe, &app::platform_args(git.root()))
                    .map_err(pe)?;
            // Return once recorded releases are back, so production answers.
            wait_recovered(&cfg);
            println!(
                "platform running (pid {}), production on http://{}:{}",
                info.pid, cfg.host, info.proxy_port
            );
            if cfg.port != 0 && cfg.port != info.proxy_port {
                crate::progress::Console.warn(&format!(
                    "it was running already, on port {}; hotfix.toml says {}: the port changes with a restart: `hotfix platform stop && hotfix platform start`",
                    info.proxy_port, cfg.port
                ));
            }
            println!("log: {}", cfg.state_dir.join("platform.log").display());
            Ok(OK)
        }
        PlatformCmd::Stop => {
            if hotfix_platform::stop(&cfg.state_dir).map_err(pe)? {
                println!("platform stopped, with every release it started");
            } else {
                println!("no platform was running");
            }
            Ok(OK)
        }
        PlatformCmd::Deploy {
            reference,
            force,
            act,
        } => {
            let as_ = crate::commands::acting(before, act.as_.as_deref())?;
            deploy(&git, cfg, as_, reference.as_deref(), force)
        }
        PlatformCmd::Status { json } => {
            if !hotfix_platform::is_running(&cfg.state_dir) {
                if json {
                    println!("{{\"running\": false}}");
                } else {
                    println!("the platform is not running (`hotfix platform start`)");
                }
                return Ok(Kind::Waiting.code());
            }
            let st = hotfix_platform::Client::connect(&cfg.state_dir)
                .and_then(|c| c.status())
                .map_err(pe)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&st).unwrap_or_default());
            } else {
                print!("{}", render::platform_text(&st));
                print!("{}", history_text(&st));
            }
            Ok(OK)
        }
    }
}

/// Waits (a bounded time) while the platform brings recorded releases back.
fn wait_recovered(cfg: &PlatformConfig) {
    let deadline =
        std::time::Instant::now() + cfg.ready_timeout + std::time::Duration::from_secs(5);
    let Ok(client) = hotfix_platform::Client::connect(&cfg.state_dir) else {
        return;
    };
    while client.status().map(|s| s.recovering).unwrap_or(false)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(10)]
}

/// The commit to deploy and how to name it to a person.
struct Target {
    sha: String,
    shown: String,
}

/// `REF` as typed, or the remote's main (fetched first: "what the team
/// has on main" is what is on the remote, not a local branch that may be
/// behind).
fn resolve(
    git: &Git,
    cfg: &hotfix_core::config::Config,
    reference: Option<&str>,
) -> Result<Target, CliError> {
    let remote = &cfg.git.remote;
    let Some(r) = reference.map(str::trim) else {
        let shown = format!("{remote}/{}", cfg.git.main);
        git.fetch(remote).map_err(|e| {
            CliError::failed(format!("could not fetch {remote}: {e}")).hint(format!(
                "deploy {shown} as fetched last: `hotfix platform deploy {shown}`"
            ))
        })?;
        let sha = git
            .rev_parse(&format!("refs/remotes/{shown}"))
            .map_err(|e| CliError::failed(e.to_string()))?
            .ok_or_else(|| {
                CliError::usage(format!("{remote} has no branch {}", cfg.git.main))
                    .hint("name the commit to deploy: `hotfix platform deploy REF`")
            })?;
        return Ok(Target { sha, shown });
    };
    if r.is_empty() || r.starts_with('-') {
        return Err(CliError::usage(format!(
            "`{r}` is not a branch, tag or commit"
        )));
    }
    // A remote branch is deployed as the remote has it now.
    if r.starts_with(&format!("{remote}/")) && git.fetch(remote).is_err() {
        crate::progress::Console.warn(&format!(
            "could not fetch {remote}: deploying {r} as fetched last"
        ));
    }
    let sha = git
        .rev_parse(r)
        .map_err(|e| CliError::failed(e.to_string()))?
        .ok_or_else(|| {
            CliError::usage(format!("`{r}` names no commit in this repository"))
                .hint("give a branch, tag or sha; `git fetch` first for one only the remote has")
        })?;
    Ok(Target {
        sha,
        shown: r.to_string(),
    })
}

/// `hotfix platform deploy [REF]`.
///
/// Decision on incidents in flight: the platform itself serialises
/// production changes, so a manual deploy can never interleave with a
/// ship's; what it must not do is quietly take a shipped hotfix out of
/// production. So it refuses when production runs a release the hotfix
/// workflow put there whose commit REF does not contain (a local main
/// that was not pulled, an old tag); `--force` overrides, and `hotfix
/// rollback` is the way to take a hotfix out on purpose.
fn deploy(
    git: &Git,
    platform: PlatformConfig,
    as_: Option<&str>,
    reference: Option<&str>,
    force: bool,
) -> Result<u8, CliError> {
    let cfg = app::load_config(git, true)?;
    let by = app::actor(git, as_)?;
    let target = resolve(git, &cfg, reference)?;
    let mut d = LocalDeployer {
        platform,
        autostart: None,
    };
    if let Ok(exe) = std::env::current_exe() {
        d.autostart = Some((exe, app::platform_args(git.root())));
    }
    let fail = |e: hotfix_core::provider::DeployError| CliError::failed(e.to_string());
    d.status().map_err(fail)?;
    wait_recovered(&d.platform);
    let st = d.status().map_err(fail)?;
    if let Some(p) = &st.production {
        if p.sha == target.sha && p.state == hotfix_platform::ReleaseState::Live {
            println!(
                "production already runs {} ({}) as release {}; nothing to deploy",
                target.shown,
                short(&target.sha),
                p.id
            );
            return Ok(OK);
        }
        let hotfix = p
            .origin
            .as_ref()
            .filter(|o| o.via == DeployVia::Incident)
            .map(|o| o.incident.clone().unwrap_or_else(|| "an incident".into()));
        if let Some(incident) = hotfix
            && !force
            && !git.is_ancestor(&p.sha, &target.sha).unwrap_or(false)
        {
            return Err(CliError::refused(format!(
                "production runs {} (deployed for {incident}), which {} ({}) does not contain: deploying it would take that hotfix out of production",
                short(&p.sha),
                target.shown,
                short(&target.sha)
            ))
            .hint("deploy a commit that contains it: the remote's main has it once shipped (`hotfix platform deploy`)")
            .hint(format!("to take the hotfix out on purpose, roll it back: `hotfix rollback {incident}`"))
            .hint(format!("to deploy anyway: `hotfix platform deploy {} --force`", target.shown)));
        }
    }
    let log = d.production_log(&target.sha);
    let ui = crate::progress::Console;
    let step = ui.step(
        &format!(
            "deploying {} ({}) to production: build, start, health check",
            target.shown,
            short(&target.sha)
        ),
        Some(&log),
    );
    let o = match d.deploy_manual(&target.sha, Some(&target.shown), &by) {
        Ok(o) => o,
        Err(e) => {
            step.fail(&format!(
                "production deploy of {} failed",
                short(&target.sha)
            ));
            let still = match &st.production {
                Some(p) => format!("production still runs {} ({})", p.id, short(&p.sha)),
                None => "production still has no release".to_string(),
            };
            return Err(CliError::failed(format!("production deploy failed: {e}")).hint(still));
        }
    };
    step.done(&format!("production runs {}", short(&target.sha)));
    println!(
        "production runs {} ({}) as release {} at {}",
        target.shown,
        short(&target.sha),
        o.release.id,
        o.url
    );
    println!("recorded: manual deploy by {by} (`hotfix platform status` shows the history)");
    if let Some(p) = &o.previous {
        println!(
            "previous: {} ({}), {}; to go back: `hotfix platform deploy {}`",
            p.id,
            short(&p.sha),
            format!("{:?}", p.state).to_ascii_lowercase(),
            short(&p.sha)
        );
    }
    Ok(OK)
}

/// The history part of `platform status` (the rest is `render::platform_text`).
fn history_text(st: &PlatformStatus) -> String {
    if st.history.is_empty() {
        return String::new();
    }
    let mut o = String::from("  history (most recent first):\n");
    for h in st.history.iter().take(HISTORY_SHOWN) {
        o.push_str(&format!("    {}\n", history_line(h)));
    }
    if st.history.len() > HISTORY_SHOWN {
        o.push_str(&format!(
            "    … {} older (`hotfix platform status --json`)\n",
            st.history.len() - HISTORY_SHOWN
        ));
    }
    o
}

fn history_line(h: &HistoryEntry) -> String {
    let what = match h.action {
        HistoryAction::Deploy => "deploy",
        HistoryAction::Rollback => "rollback",
    };
    let why = match (h.meta.via, &h.meta.incident) {
        (DeployVia::Manual, _) => "manual".to_string(),
        (DeployVia::Incident, Some(i)) => i.clone(),
        (DeployVia::Incident, None) => "hotfix".to_string(),
        (DeployVia::Api, _) => "api".to_string(),
    };
    // Whole seconds, as every time shown to a person.
    let at =
        h.at.parse::<jiff::Timestamp>()
            .map(hotfix_core::timeline::utc)
            .unwrap_or_else(|_| h.at.clone());
    let mut line = format!("{at}  {what:<8} {} {}  {why}", h.release, short(&h.sha));
    if let Some(r) = &h.meta.reference {
        line.push_str(&format!(" of {r}"));
    }
    if let Some(b) = &h.meta.by {
        line.push_str(&format!(" by {b}"));
    }
    if let Some(r) = &h.replaced {
        line.push_str(&format!(" (replaced {})", short(r)));
    }
    hotfix_core::display::line(&line).into_owned()
}
