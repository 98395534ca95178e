//! The subcommands of `/hotfix`: parsed from the text, run against the
//! store (synchronously, on a blocking thread), answered as a [`Reply`].

use hotfix_core::Severity;
use hotfix_core::access::Reader;
use hotfix_core::admit::{Actor, Door};
use hotfix_core::duration::span;
use hotfix_core::event::EventKind;
use hotfix_core::guards::missing_approvals;
use hotfix_core::id::IncidentId;
use hotfix_core::severity::SeverityError;
use hotfix_core::team::ApiRole;

use hotfix_engine::triage::{Decision, outcome, parse_severity};

use super::Reply;
use crate::auth::Caller;
use crate::{ApiError, AppState, ops};

pub const USAGE: &str = "*/hotfix*: the emergency hotfix workflow\n\
• `/hotfix declare <critical|high> <name> [title…] [--customer-facing] [--security]`: open an incident; the developer then cuts the branch with `hotfix start`\n\
• `/hotfix status`: the open incidents; `/hotfix status HF-N`: one incident\n\
• `/hotfix approve HF-N`: approve its current head (tech leads and reviewers in [team]; never your own hotfix)\n\
• `/hotfix confirm HF-N [critical|high]`: triage (tech leads): it is real, at this severity; the on-call developer takes it\n\
• `/hotfix decline HF-N <false_alarm|not_urgent|duplicate> [HF-M] [note…]`: triage (tech leads): not a hotfix, closed without the checklist\n\
• `/hotfix merge HF-N HF-M`: triage (tech leads): HF-N is the same as the open HF-M, which takes its alerts\n\
Medium and low severity bugs use the normal release.";

/// What the person asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Declare {
        severity: Severity,
        name: String,
        title: Option<String>,
        customer_facing: bool,
        security: bool,
    },
    Status(Option<IncidentId>),
    Approve(IncidentId),
    /// A tech lead's triage decision about an incident.
    Triage(IncidentId, Decision),
}

/// Slack sends `&`, `<` and `>` as entities in the text.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Text people typed, echoed into Slack without becoming a mention or a
/// link (`<!channel>` would page the whole channel).
/// A value from the log inside a reply: on one line (controls and bidi
/// made visible, so a title cannot forge a second list entry), with
/// Slack's three mrkdwn escapes.
fn esc(s: &str) -> String {
    hotfix_core::display::line(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn usage_error(msg: impl std::fmt::Display) -> Reply {
    Reply::ephemeral(format!("{msg}\n{USAGE}"))
}

fn incident_id(raw: Option<&str>, sub: &str) -> Result<IncidentId, Reply> {
    let Some(raw) = raw else {
        return Err(usage_error(format!(
            "`{sub}` needs an incident id, e.g. `/hotfix {sub} HF-3`"
        )));
    };
    raw.parse::<IncidentId>().map_err(usage_error)
}

/// Parses the text after `/hotfix`; a bad one gets the usage back.
pub fn parse(text: &str) -> Result<Command, Reply> {
    let text = unescape(text);
    let mut words = text.split_whitespace();
    let sub = words.next().map(str::to_ascii_lowercase);
    match sub.as_deref() {
        None | Some("help") => Ok(Command::Help),
        Some("status") => {
            let id = match words.next() {
                Some(raw) => Some(incident_id(Some(raw), "status")?),
                None => None,
            };
            if words.next().is_some() {
                return Err(usage_error("`status` takes at most one incident id"));
            }
            Ok(Command::Status(id))
        }
        Some("approve") => {
            let id = incident_id(words.next(), "approve")?;
            if words.next().is_some() {
                return Err(usage_error("`approve` takes one incident id"));
            }
            Ok(Command::Approve(id))
        }
        Some("confirm") => {
            let id = incident_id(words.next(), "confirm")?;
            let severity = match words.next() {
                None => None,
                Some(raw) => Some(parse_severity(raw, id).map_err(|r| {
                    if r.code == "use_normal_release" {
                        // Not a usage mistake: the process says so.
                        Reply::ephemeral(format!(
                            "{}\n{}",
                            r.message,
                            r.hint.replace(
                                &format!("`hotfix triage {id} decline --reason not_urgent`"),
                                &format!("`/hotfix decline {id} not_urgent`")
                            )
                        ))
                    } else {
                        usage_error(r.message)
                    }
                })?),
            };
            if words.next().is_some() {
                return Err(usage_error(
                    "`confirm` takes an incident id and at most a severity, e.g. `/hotfix confirm HF-3 high`",
                ));
            }
            Ok(Command::Triage(
                id,
                Decision::Confirm {
                    severity,
                    public_text: None,
                },
            ))
        }
        Some("decline") => {
            let id = incident_id(words.next(), "decline")?;
            let Some(reason) = words.next() else {
                return Err(usage_error(
                    "`decline` needs a reason: `/hotfix decline HF-3 false_alarm`, `not_urgent` or `duplicate HF-2`",
                ));
            };
            let reason = reason.parse().map_err(|e: String| usage_error(esc(&e)))?;
            let mut rest: Vec<&str> = words.collect();
            let duplicate_of = match rest.first().map(|w| w.parse::<IncidentId>()) {
                Some(Ok(d)) => {
                    rest.remove(0);
                    Some(d)
                }
                _ => None,
            };
            let note = rest.join(" ");
            if note.chars().count() > 2000 {
                return Err(usage_error("the note is at most 2000 characters"));
            }
            Ok(Command::Triage(
                id,
                Decision::Decline {
                    reason,
                    duplicate_of,
                    note,
                },
            ))
        }
        Some("merge") => {
            let id = incident_id(words.next(), "merge")?;
            // `merge HF-3 HF-2` or `merge HF-3 into HF-2`.
            let mut next = words.next();
            if next.is_some_and(|w| w.eq_ignore_ascii_case("into")) {
                next = words.next();
            }
            let Some(into) = next else {
                return Err(usage_error(
                    "`merge` needs the incident it goes into, e.g. `/hotfix merge HF-3 HF-2`",
                ));
            };
            let into = into.parse::<IncidentId>().map_err(usage_error)?;
            if words.next().is_some() {
                return Err(usage_error("`merge` takes two incident ids"));
            }
            Ok(Command::Triage(id, Decision::Merge { into }))
        }
        Some("declare") => {
            let (Some(mut sev), Some(mut name)) = (words.next(), words.next()) else {
                return Err(usage_error(
                    "`declare` needs a severity and a name, e.g. `declare critical pdf-crash`",
                ));
            };
            // `declare pdf-crash critical` is forgiven: the order is easy to mix up.
            if matches!(sev.parse::<Severity>(), Err(SeverityError::Unknown(_)))
                && !matches!(name.parse::<Severity>(), Err(SeverityError::Unknown(_)))
            {
                std::mem::swap(&mut sev, &mut name);
            }
            let severity = sev.parse::<Severity>().map_err(|e| match e {
                // "Use hotfix for non-urgent issues" is an anti-pattern: say so, without the usage noise.
                SeverityError::UseNormalRelease(_) => Reply::ephemeral(e.to_string()),
                SeverityError::Unknown(_) => usage_error(e),
            })?;
            if !hotfix_core::name::valid_name(name) {
                return Err(usage_error(format!(
                    "`{}` is not a valid hotfix name: letters, digits, `-`, `_`, `.` (at most 64)",
                    esc(name)
                )));
            }
            let (mut customer_facing, mut security) = (false, false);
            let mut title = vec![];
            for w in words {
                match w {
                    "--customer-facing" => customer_facing = true,
                    "--security" => security = true,
                    w if w.starts_with("--") => {
                        return Err(usage_error(format!("unknown option `{}`", esc(w))));
                    }
                    w => title.push(w),
                }
            }
            let title = title.join(" ");
            if title.chars().count() > 200 || title.chars().any(char::is_control) {
                return Err(usage_error(
                    "the title is at most 200 characters on one line",
                ));
            }
            Ok(Command::Declare {
                severity,
                name: name.to_string(),
                title: (!title.is_empty()).then_some(title),
                customer_facing,
                security,
            })
        }
        Some(other) => Err(usage_error(format!(
            "`{}` is not a /hotfix subcommand",
            esc(other)
        ))),
    }
}

/// Runs `cmd` as team identity `who`. Refusals become replies; only the
/// caller sees them.
pub fn run(st: &AppState, who: &str, cmd: Command) -> Reply {
    let r = match cmd {
        Command::Help => Ok(Reply::ephemeral(USAGE)),
        Command::Declare {
            severity,
            name,
            title,
            customer_facing,
            security,
        } => declare(st, who, severity, name, title, customer_facing, security),
        Command::Status(None) => list(st),
        Command::Status(Some(id)) => show(st, id),
        Command::Approve(id) => approve(st, who, id),
        Command::Triage(id, d) => triage(st, who, id, &d),
    };
    r.unwrap_or_else(|e| {
        let hint = e.hint.map(|h| format!("\n{h}")).unwrap_or_default();
        Reply::ephemeral(format!(":no_entry: {}{hint}", e.message))
    })
}

/// A Slack declaration is a *reported* incident: no branch is cut from
/// Slack (that needs a checkout); the developer does it with `hotfix start`.
fn declare(
    st: &AppState,
    who: &str,
    severity: Severity,
    name: String,
    title: Option<String>,
    customer_facing: bool,
    security: bool,
) -> Result<Reply, ApiError> {
    let branch = format!("{}{name}", st.cfg.git.prefix);
    if let Some(open) = ops::all(st)?
        .iter()
        .find(|s| !s.is_closed() && s.branch == branch)
    {
        return Ok(Reply::ephemeral(format!(
            "{} is already open on {branch}: `/hotfix status {}`",
            open.id, open.id
        )));
    }
    let title = title.unwrap_or_else(|| name.replace(['-', '_'], " "));
    let kind = EventKind::Declared {
        name,
        title,
        severity,
        customer_facing,
        security,
        branch,
        base_sha: String::new(),
    };
    let s = ops::declare(
        st,
        &Actor::new(who, Door::Slack),
        kind,
        vec![],
        &|_, _| vec![],
    )?;
    // The channel reads what an outsider does (`hotfix_core::access`).
    let sum = ops::summary(st, &ops::seen(s.clone(), &Reader::Outside)?, st.clock.now());
    Ok(Reply::in_channel(format!(
        ":rotating_light: *{}* declared by {who}: {} ({}{})\nNext: {}",
        s.id,
        esc(&sum.title),
        sum.severity,
        if customer_facing {
            ", customer-facing"
        } else {
            ""
        },
        sum.next
    )))
}

fn list(st: &AppState) -> Result<Reply, ApiError> {
    let now = st.clock.now();
    let all = ops::all(st)?;
    // Slack is a channel: security incidents in their restricted view.
    let open: Vec<ops::Seen> = all
        .seen(&Reader::Outside)
        .filter(|v| !v.state().is_closed())
        .collect();
    if open.is_empty() {
        return Ok(Reply::ephemeral("No open incidents."));
    }
    let mut lines = vec![format!("*Open incidents* ({})", open.len())];
    for v in &open {
        let s = v.state();
        let sum = ops::summary(st, v, now);
        let mut line = format!(
            "• *{}* {} · {} · {} · {}",
            sum.id,
            sum.severity,
            sum.phase,
            span(sum.elapsed_s),
            esc(&sum.title)
        );
        if !s.security {
            line.push_str(&format!(" · next: {}", sum.next));
        }
        lines.push(line);
    }
    Ok(Reply::ephemeral(lines.join("\n")))
}

fn show(st: &AppState, id: IncidentId) -> Result<Reply, ApiError> {
    let v = ops::read(st, &Reader::Outside, id)?;
    let s = v.state();
    let sum = ops::summary(st, &v, st.clock.now());
    let head = format!(
        "*{}* {} · {} · {} elapsed · {}",
        sum.id,
        sum.severity,
        sum.phase,
        span(sum.elapsed_s),
        esc(&sum.title)
    );
    if s.security {
        return Ok(Reply::ephemeral(format!(
            "{head}\nDetails of security incidents are not shown in Slack."
        )));
    }
    let short = |x: &Option<String>| {
        x.as_deref()
            .map(|v| v.get(..7).unwrap_or(v).to_string())
            .unwrap_or_else(|| "not pushed".into())
    };
    let mut lines = vec![head];
    let mut where_ = format!("Branch: {} at {}", s.branch, short(&s.head_sha));
    if let Some(u) = &s.pr_url {
        where_.push_str(&format!(" · PR: {u}"));
    }
    if let Some(u) = &s.preview_url {
        where_.push_str(&format!(" · preview: {u}"));
    }
    lines.push(where_);
    let fresh: Vec<String> = s
        .fresh_approvals()
        .iter()
        .map(|a| format!("{} ({})", a.by, a.role.label()))
        .collect();
    let missing = missing_approvals(s, &st.cfg.policy);
    lines.push(format!(
        "Approvals: {}{}",
        if fresh.is_empty() {
            "none".to_string()
        } else {
            fresh.join(", ")
        },
        if missing.is_empty() || s.merge_sha.is_some() {
            String::new()
        } else {
            format!(" · missing: {}", missing.join(" and "))
        }
    ));
    lines.push(format!("Next: {}", sum.next));
    Ok(Reply::ephemeral(lines.join("\n")))
}

/// The Slack-verified identity is the authentication, `[team]` the role:
/// a tech lead in `[team]` acts as a tech_lead token would, everyone else
/// as a developer's; the rest is checked by `ops` as for the API.
fn caller_of(st: &AppState, who: &str) -> Caller {
    Caller {
        user: who.to_string(),
        role: if st.cfg.is_tech_lead(who) {
            ApiRole::TechLead
        } else {
            ApiRole::Developer
        },
    }
}

/// A triage decision from the channel, by the tech lead who typed it
/// ([`ops::triage`], the rulebook deciding who may). The channel is told
/// what was decided and the next step.
fn triage(st: &AppState, who: &str, id: IncidentId, d: &Decision) -> Result<Reply, ApiError> {
    let caller = caller_of(st, who);
    let (s, recorded) = ops::triage(st, &caller, Door::Slack, id, d)?;
    let t = hotfix_engine::triage::Triaged {
        incident: s.clone(),
        target: None,
        recorded,
    };
    let line = esc(&outcome(&t, d));
    if !recorded {
        return Ok(Reply::ephemeral(format!("{line}. Nothing to do.")));
    }
    // The channel reads what an outsider does (`hotfix_core::access`).
    let next = match d {
        Decision::Merge { into } => {
            ops::summary(st, &ops::read(st, &Reader::Outside, *into)?, st.clock.now()).next
        }
        _ => ops::summary(st, &ops::seen(s, &Reader::Outside)?, st.clock.now()).next,
    };
    let icon = match d {
        Decision::Confirm { .. } => ":white_check_mark:",
        Decision::Decline { .. } => ":no_bell:",
        Decision::Merge { .. } => ":link:",
    };
    Ok(Reply::in_channel(format!("{icon} {line}.\nNext: {next}")))
}

fn approve(st: &AppState, who: &str, id: IncidentId) -> Result<Reply, ApiError> {
    let caller = caller_of(st, who);
    let (s, recorded) = ops::approve(st, &caller, Door::Slack, id)?;
    let sha = s.head_sha.as_deref().unwrap_or("");
    let sha = sha.get(..7).unwrap_or(sha);
    let sum = ops::summary(st, &ops::seen(s.clone(), &Reader::Outside)?, st.clock.now());
    if !recorded {
        return Ok(Reply::ephemeral(format!(
            "You already approved {id} at {sha}. Phase: {}.",
            sum.phase
        )));
    }
    let role = s
        .approvals
        .last()
        .map(|a| a.role.label())
        .unwrap_or("approver");
    Ok(Reply::in_channel(format!(
        ":white_check_mark: *{id}* approved by {who} as {role} at {sha}. Phase: {}.\nNext: {}",
        sum.phase, sum.next
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subcommands_parse() {
        assert_eq!(parse(""), Ok(Command::Help));
        assert_eq!(parse(" help "), Ok(Command::Help));
        assert_eq!(parse("status"), Ok(Command::Status(None)));
        assert_eq!(
            parse("STATUS hf-3"),
            Ok(Command::Status(Some(IncidentId(3))))
        );
        assert_eq!(parse("approve HF-12"), Ok(Command::Approve(IncidentId(12))));
        assert_eq!(
            parse("confirm HF-2 high"),
            Ok(Command::Triage(
                IncidentId(2),
                Decision::Confirm {
                    severity: Some(Severity::High),
                    public_text: None
                }
            ))
        );
        assert_eq!(
            parse("decline HF-3 duplicate HF-2 same alert"),
            Ok(Command::Triage(
                IncidentId(3),
                Decision::Decline {
                    reason: hotfix_core::event::DeclineReason::Duplicate,
                    duplicate_of: Some(IncidentId(2)),
                    note: "same alert".into()
                }
            ))
        );
        assert_eq!(parse("merge HF-3 into HF-2"), parse("merge hf-3 HF-2"));
        assert_eq!(
            parse("merge HF-3 HF-2"),
            Ok(Command::Triage(
                IncidentId(3),
                Decision::Merge {
                    into: IncidentId(2)
                }
            ))
        );
        assert_eq!(
            parse("declare pdf-crash high"),
            parse("declare high pdf-crash")
        );
        assert_eq!(
            parse("declare critical pdf-crash PDF export &lt;crashes&gt; --customer-facing"),
            Ok(Command::Declare {
                severity: Severity::Critical,
                name: "pdf-crash".into(),
                title: Some("PDF export <crashes>".into()),
                customer_facing: true,
                security: false,
            })
        );
    }

    #[test]
    fn bad_commands_get_a_reason_and_the_usage() {
        let medium = parse("declare medium typo").unwrap_err();
        assert!(medium.text.contains("normal release"), "{}", medium.text);
        let medium = parse("confirm HF-4 medium").unwrap_err();
        assert!(
            medium.text.contains("normal release")
                && medium.text.contains("`/hotfix decline HF-4 not_urgent`"),
            "{}",
            medium.text
        );
        let medium = parse("declare typo medium").unwrap_err();
        assert!(medium.text.contains("normal release"), "{}", medium.text);
        assert_eq!(medium.response_type, "ephemeral");
        for bad in [
            "approve",
            "approve HF-x",
            "approve HF-1 HF-2",
            "declare",
            "declare urgent x",
            "declare high",
            "declare high bad/name",
            "declare high x --force",
            "deploy HF-1",
            "confirm",
            "confirm HF-1 urgent",
            "confirm HF-1 high now",
            "decline HF-1",
            "decline HF-1 flaky",
            "merge HF-1",
            "merge HF-1 HF-x",
            "merge HF-1 HF-2 HF-3",
        ] {
            let r = parse(bad).unwrap_err();
            assert!(r.text.contains("/hotfix status"), "{bad}: {}", r.text);
        }
    }

    #[test]
    fn echoed_text_cannot_ping_the_channel() {
        assert_eq!(esc("<!channel> & co"), "&lt;!channel&gt; &amp; co");
    }
}
