//! `hotfix man [VERB]`: generated from the clap definitions in `cli` (as
//! `hotfix completions` is), so it can never list a flag the binary does
//! not have (or miss one it has).

use std::path::Path;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::exit::{CliError, OK};

/// The whole command tree, built: global flags propagated to every verb,
/// as completions and man pages must show them.
pub(crate) fn command() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A verb's own page (e.g. `start`, `platform`) instead of hotfix(1).
    #[arg(conflicts_with = "dir")]
    pub verb: Option<String>,
    /// Write every page instead (hotfix.1, hotfix-start.1 and so on, for
    /// packagers) into DIR, and list them.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
}

pub fn run(a: Args) -> Result<u8, CliError> {
    match a.dir {
        None => man(a.verb.as_deref()),
        Some(d) => man_pages(&d),
    }
}

/// Prints hotfix(1), or the page of one verb (`hotfix-start(1)`), as roff.
fn man(verb: Option<&str>) -> Result<u8, CliError> {
    let root = command();
    let page = match verb {
        None => root,
        Some(v) => {
            let sub = root
                .get_subcommands()
                .find(|c| c.get_name() == v && !c.is_hide_set() && v != "help")
                .ok_or_else(|| {
                    CliError::usage(format!("`{v}` is not a hotfix verb")).hint(format!(
                        "the verbs: {}",
                        root.get_subcommands()
                            .filter(|c| !c.is_hide_set() && c.get_name() != "help")
                            .map(|c| c.get_name().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            // Built, a verb is displayed as hotfix-VERB (the page's name,
            // as git's and gh's are) and used as `hotfix VERB`.
            sub.clone()
        }
    };
    use std::io::Write;
    std::io::stdout()
        .write_all(&render(page)?)
        .map_err(|e| CliError::failed(format!("cannot write the man page: {e}")))?;
    Ok(OK)
}

/// Writes hotfix.1 and a page per verb (and per sub-verb: hotfix-platform-
/// start.1) into `dir`, as the pages hotfix(1) refers to.
fn man_pages(dir: &Path) -> Result<u8, CliError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::failed(format!("cannot create {}: {e}", dir.display())))?;
    let mut pages = vec![];
    collect(command(), &mut pages);
    for page in pages {
        let name = page
            .get_display_name()
            .unwrap_or_else(|| page.get_name())
            .to_string();
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, render(page)?)
            .map_err(|e| CliError::failed(format!("cannot write {}: {e}", path.display())))?;
        println!("wrote {}", path.display());
    }
    Ok(OK)
}

/// `cmd` and every visible (sub)verb under it.
fn collect(cmd: clap::Command, out: &mut Vec<clap::Command>) {
    for sub in cmd.get_subcommands() {
        // `help` is clap's own; hidden verbs are not for people.
        if !sub.is_hide_set() && sub.get_name() != "help" {
            collect(sub.clone(), out);
        }
    }
    out.push(cmd);
}

fn render(page: clap::Command) -> Result<Vec<u8>, CliError> {
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .map_err(|e| CliError::failed(format!("cannot render the man page: {e}")))?;
    Ok(out)
}
