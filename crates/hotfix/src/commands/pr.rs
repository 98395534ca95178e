//! `hotfix pr [ID]`: the incident's pull request as the forge has it now.
//!
//! Why a verb: with the local forge (`[forge] provider = "local"`) the PR
//! and its impact assessment live in `.git/hotfix/forge.db`, where nobody
//! can read them; a reviewer asked to approve needs to see what they
//! approve. With GitHub it saves a trip to the browser, and shows what the
//! forge says (its state), not only what the incident log remembers.

use hotfix_core::display;
use hotfix_core::provider::{ForgeError, PrState, PullRequest};
use hotfix_core::state::IncidentState;
use hotfix_engine::Engine;

use crate::app;
use crate::cli::ReadArgs;
use crate::commands::resolve_for_reading;
use crate::exit::{CliError, OK};

pub fn show(dir: Option<&std::path::Path>, as_: Option<&str>, r: ReadArgs) -> Result<u8, CliError> {
    let e = app::engine(dir, as_, false)?;
    let Some(id) = resolve_for_reading(&e, &r)? else {
        return Ok(OK);
    };
    let s = e.load(id)?;
    let Some(number) = s.pr else {
        // Not an error: the answer to "what is its PR" is "none yet".
        if r.json {
            println!("null");
        } else {
            println!("{id} has no pull request yet");
            println!("next: `hotfix push {id}` opens it");
        }
        return Ok(OK);
    };
    // Read commands get the GitHub forge only with a token (app::engine);
    // without one the answer would come from the empty local forge.
    if e.cfg.forge.provider == "github"
        && app::secret(hotfix_core::env_vars::HOTFIX_GITHUB_TOKEN)
            .or_else(|| app::secret(hotfix_core::env_vars::GITHUB_TOKEN))
            .is_none()
    {
        let err = CliError::usage(format!(
            "reading PR #{number} of {id} from GitHub needs a token: set GITHUB_TOKEN or HOTFIX_GITHUB_TOKEN"
        ));
        return Err(match &s.pr_url {
            Some(url) => err.hint(format!("or open {}", display::line(url))),
            None => err,
        });
    }
    let pr = e.forge.get_pr(number).map_err(|err| match err {
        ForgeError::NotFound(_) => CliError::failed(format!(
            "PR #{number} of {id} is not on the forge any more ({})",
            e.cfg.forge.provider
        ))
        .hint(format!(
            "`hotfix push {id}` opens a new one if the incident is still open"
        )),
        other => CliError::failed(hotfix_providers::redact::redact(&other.to_string())),
    })?;
    let (assessment, given) = match Engine::given_impact(&pr.body) {
        Some(text) => (text.to_string(), true),
        None => (pr.body.clone(), false),
    };
    if r.json {
        let v = serde_json::json!({
            "incident": id.to_string(),
            "number": pr.number,
            "title": pr.title,
            "url": pr.url,
            "state": pr.state,
            "head": pr.head,
            "base": pr.base,
            "head_sha": s.head_sha,
            "merge_sha": pr.merge_sha,
            "impact_given": given,
            "body": assessment,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", text(&s, &pr, &assessment, given));
    }
    Ok(OK)
}

/// The PR as a person reads it: a header, then the assessment as written.
fn text(s: &IncidentState, pr: &PullRequest, assessment: &str, given: bool) -> String {
    let state = match pr.state {
        PrState::Open => "open",
        PrState::Merged => "merged",
        PrState::Closed => "closed, not merged",
    };
    let mut o = String::new();
    o.push_str(&format!(
        "{}\n",
        display::line(&format!("PR #{} {} ({state})", pr.number, pr.title))
    ));
    o.push_str(&format!("url:      {}\n", display::line(&pr.url)));
    let head = s
        .head_sha
        .as_deref()
        .map(|h| format!(" at {}", h.get(..10).unwrap_or(h)))
        .unwrap_or_default();
    o.push_str(&format!(
        "branch:   {} → {}{head}\n",
        display::line(&pr.head),
        display::line(&pr.base)
    ));
    if let Some(m) = &pr.merge_sha {
        o.push_str(&format!("merged:   {}\n", display::line(m)));
    }
    o.push_str(&format!(
        "impact:   {}\n\n",
        if given {
            "given with `hotfix push --impact`"
        } else {
            "written by hotfix"
        }
    ));
    o.push_str(&display::block(assessment.trim_end()));
    o.push('\n');
    o
}
