//! `hotfix triage`: the incidents waiting for triage, or a tech lead's
//! decision about one (confirm, decline, merge).

use hotfix_core::display;
use hotfix_core::id::IncidentId;
use hotfix_core::state::IncidentState;
use hotfix_engine::Engine;

use crate::app;
use crate::commands::{Ctx, acting, print_next};
use crate::exit::{CliError, Kind, OK};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The incident (HF-N); without it, the incidents waiting for triage.
    pub id: Option<String>,
    #[command(subcommand)]
    pub action: Option<Action>,
    /// The list as JSON.
    #[arg(long)]
    pub json: bool,
    /// Decide as this person, a tech lead (default: $HOTFIX_USER, else `git config user.email`).
    #[arg(long = "as", value_name = "PERSON", global = true)]
    pub as_: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// It is real: post it and tell the on-call developer to take it.
    Confirm {
        /// critical or high (default: the incident's; medium/low: decline it as not_urgent).
        #[arg(long)]
        severity: Option<String>,
        /// What the public status page says about it (default: a safe text from the title).
        #[arg(long, value_name = "TEXT")]
        public_text: Option<String>,
    },
    /// Not a hotfix: closed without the post-hotfix checklist, the reason in the log.
    Decline {
        /// false_alarm, not_urgent (use the normal release) or duplicate (with --of).
        #[arg(long)]
        reason: String,
        /// The incident this one duplicates (with --reason duplicate).
        #[arg(long, value_name = "HF-M")]
        of: Option<String>,
        /// A line for the log.
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
    /// The same thing as another open incident, which takes its alerts from now on.
    Merge {
        /// The incident to merge it into.
        #[arg(long, value_name = "HF-M")]
        into: String,
    },
}

/// `hotfix triage`: the list, or one decision about one incident.
pub fn run(cx: &Ctx, a: Args) -> Result<u8, CliError> {
    let as_ = acting(cx.before, a.as_.as_deref())?.map(str::to_string);
    let (dir, as_) = (cx.dir, as_.as_deref());
    use hotfix_engine::triage::Decision;
    let Some(raw) = a.id else {
        if a.action.is_some() {
            return Err(CliError::usage(
                "name the incident first: `hotfix triage HF-N confirm|decline|merge`",
            ));
        }
        let e = app::engine(dir, as_, false)?;
        let list = e.in_triage()?;
        if a.json {
            println!("{}", render_triage_json(&e, &list));
        } else {
            print!("{}", render_triage_text(&e, &list));
        }
        return Ok(OK);
    };
    let id: IncidentId = raw
        .parse()
        .map_err(|e: hotfix_core::id::BadIncidentId| CliError::usage(e.to_string()))?;
    let parse_other = |v: &str| {
        v.parse::<IncidentId>()
            .map_err(|e| CliError::usage(e.to_string()))
    };
    let d = match a.action {
        None => {
            return Err(CliError::usage(format!(
                "say what you decide about {id}: `hotfix triage {id} confirm`, `decline --reason false_alarm|not_urgent|duplicate` or `merge --into HF-M`"
            )));
        }
        Some(Action::Confirm {
            severity,
            public_text,
        }) => Decision::Confirm {
            severity: severity
                .as_deref()
                .map(|s| {
                    hotfix_engine::triage::parse_severity(s, id).map_err(|r| {
                        // medium/low is understood and refused by the
                        // process; anything else is not a severity at all.
                        let kind = if r.code == "use_normal_release" {
                            Kind::Refused
                        } else {
                            Kind::Usage
                        };
                        CliError::new(kind, r.message).hint(r.hint)
                    })
                })
                .transpose()?,
            public_text,
        },
        Some(Action::Decline { reason, of, note }) => Decision::Decline {
            reason: reason.parse().map_err(CliError::usage)?,
            duplicate_of: of.as_deref().map(parse_other).transpose()?,
            note: note.unwrap_or_default(),
        },
        Some(Action::Merge { into }) => Decision::Merge {
            into: parse_other(&into)?,
        },
    };
    let e = app::engine(dir, as_, true)?;
    let t = e.triage(id, &d)?;
    println!("{}", display::line(&hotfix_engine::triage::outcome(&t, &d)));
    match &t.target {
        Some(target) => print_next(&e, target),
        None => print_next(&e, &t.incident),
    }
    Ok(OK)
}

/// One row per incident waiting for triage: id, severity, age, alert, title.
fn render_triage_text(e: &Engine, list: &[IncidentState]) -> String {
    if list.is_empty() {
        return "nothing waits for triage\n".to_string();
    }
    let now = e.clock.now();
    let mut o = format!(
        "{:<8} {:<9} {:>8}  {:<9} {}\n",
        "ID", "SEVERITY", "AGE", "ALERT", "TITLE"
    );
    for s in list {
        let age = hotfix_core::duration::span(now.as_second() - s.declared_at.as_second());
        let line = format!(
            "{:<8} {:<9} {:>8}  {:<9} {}",
            s.id.to_string(),
            s.severity.as_str(),
            age,
            s.alert_status.as_deref().unwrap_or("-"),
            s.public_title()
        );
        o.push_str(&display::line(&line));
        o.push('\n');
    }
    o.push_str(&format!(
        "next: a tech lead decides: `hotfix triage {} confirm` if it is real, else `decline --reason false_alarm|not_urgent|duplicate --of HF-M` or `merge --into HF-M`\n",
        list[0].id
    ));
    o
}

fn render_triage_json(e: &Engine, list: &[IncidentState]) -> String {
    let now = e.clock.now();
    let v: Vec<serde_json::Value> = list
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id.to_string(),
                "severity": s.severity,
                "title": s.public_title(),
                "declared_at": s.declared_at,
                "declared_by": s.declared_by,
                "age_s": now.as_second() - s.declared_at.as_second(),
                "alert_status": s.alert_status,
                "customer_facing": s.customer_facing,
            })
        })
        .collect();
    serde_json::to_string_pretty(&v).unwrap_or_default()
}
