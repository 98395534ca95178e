//! `hotfix push`: push the branch, open the [HOTFIX] PR, deploy the
//! preview, run the smoke checks.

use hotfix_core::display;

use crate::app;
use crate::cli::ActAs;
use crate::commands::{Ctx, acting, parse_id, print_next};
use crate::exit::{CliError, OK};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The incident (HF-N); default: the one of the current hotfix/* branch.
    pub id: Option<String>,
    /// The PR's impact assessment (Markdown) instead of the one hotfix
    /// writes; kept on later pushes until you give another.
    #[arg(long, value_name = "TEXT", conflicts_with = "impact_file")]
    pub impact: Option<String>,
    /// Read the impact assessment from FILE (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    pub impact_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub act: ActAs,
}

pub fn run(cx: &Ctx, a: Args) -> Result<u8, CliError> {
    let impact = impact_text(&a)?;
    let e = app::engine(cx.dir, acting(cx.before, a.act.as_.as_deref())?, true)?;
    let id = e.resolve(parse_id(&a.id)?)?;
    let s = e.push(id, impact.as_deref())?;
    println!(
        "{} pushed: PR #{} — preview {}",
        s.id,
        s.pr.unwrap_or(0),
        display::line(s.preview_url.as_deref().unwrap_or("(none)"))
    );
    print_next(&e, &s);
    Ok(OK)
}

/// The impact assessment given with `push --impact TEXT` or
/// `--impact-file FILE` (`-`: standard input), if any. Its content is
/// checked by the engine; here only that it can be read.
fn impact_text(a: &Args) -> Result<Option<String>, CliError> {
    if let Some(t) = &a.impact {
        return Ok(Some(t.clone()));
    }
    let Some(path) = &a.impact_file else {
        return Ok(None);
    };
    let bytes = if path.as_os_str() == "-" {
        let mut b = vec![];
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).map_err(|e| {
            CliError::usage(format!(
                "cannot read the impact assessment from standard input: {e}"
            ))
        })?;
        b
    } else {
        std::fs::read(path).map_err(|e| {
            CliError::usage(format!("cannot read --impact-file {}: {e}", path.display()))
        })?
    };
    String::from_utf8(bytes).map(Some).map_err(|_| {
        CliError::usage(format!(
            "--impact-file {} is not UTF-8 text",
            path.display()
        ))
    })
}
