//! What may happen next, and exactly why not.
//!
//! Each guard returns every reason at once, so a person in an incident fixes
//! everything in one go instead of discovering refusals one by one.

use std::fmt;

use serde::Serialize;

use crate::config::{Config, TeamConfig};
use crate::event::Role;
use crate::next::{NextContext, Viewer, ask_to_approve, new_attempt};
use crate::policy::Policy;
use crate::state::{Approval, IncidentState};

/// One reason a step may not happen, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
    pub hint: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.hint)
    }
}

fn refusal(code: &'static str, message: String, hint: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message,
        hint: hint.into(),
    }
}

fn short(sha: &str) -> &str {
    sha.get(..10).unwrap_or(sha)
}

/// Fresh approvals that count: current head, after the last push, not by a
/// person excluded from approving.
fn counting_approvals(s: &IncidentState) -> Vec<&Approval> {
    let excluded = s.non_approvers();
    let mut seen = std::collections::BTreeSet::new();
    s.fresh_approvals()
        .into_iter()
        .filter(|a| !excluded.contains(&a.by.to_ascii_lowercase()))
        .filter(|a| seen.insert(a.by.to_ascii_lowercase()))
        .collect()
}

/// How many tech lead and reviewer approvals the policy still misses.
fn shortfall(s: &IncidentState, policy: &Policy) -> (u32, u32) {
    let p = policy.for_severity(s.severity);
    let approvals = counting_approvals(s);
    let leads = approvals
        .iter()
        .filter(|a| a.role == Role::TechLead)
        .count() as u32;
    let reviewers = approvals
        .iter()
        .filter(|a| a.role == Role::Reviewer)
        .count() as u32;
    let lead_short = p.tech_leads.saturating_sub(leads);
    // Extra tech-lead approvals may fill reviewer slots.
    let extra_leads = leads.saturating_sub(p.tech_leads);
    let rev_short = p.reviewers.saturating_sub(reviewers + extra_leads);
    (lead_short, rev_short)
}

/// What approvals are still missing for the severity's policy (empty = enough).
pub fn missing_approvals(s: &IncidentState, policy: &Policy) -> Vec<String> {
    let (lead_short, rev_short) = shortfall(s, policy);
    let mut missing = vec![];
    if lead_short > 0 {
        missing.push(format!(
            "{lead_short} tech lead approval{}",
            if lead_short == 1 { "" } else { "s" }
        ));
    }
    if rev_short > 0 {
        missing.push(format!(
            "{rev_short} reviewer approval{}",
            if rev_short == 1 { "" } else { "s" }
        ));
    }
    missing
}

/// The approvals still to give and who in `[team]` may give them, so a
/// request names people rather than a role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    pub tech_leads: u32,
    pub reviewers: u32,
    /// Tech leads who may approve: not a person who worked on the fix, and
    /// not one whose approval already counts.
    pub lead_candidates: Vec<String>,
    /// Who may fill a reviewer slot: the reviewers, else (a tech lead may
    /// fill one) the tech leads not already asked for a tech lead slot.
    pub reviewer_candidates: Vec<String>,
}

/// What [`missing_approvals`] counts, with the people who may give them.
/// `anew`: for the head a pending push will make (every approval of the
/// policy is needed again; whoever approved the pushed head may approve
/// the new one). `team`: `None` when the team is not known (no names).
pub fn wanted_approvals(
    s: &IncidentState,
    policy: &Policy,
    team: Option<&TeamConfig>,
    anew: bool,
) -> Wanted {
    let (tech_leads, reviewers) = if anew {
        let p = policy.for_severity(s.severity);
        (p.tech_leads, p.reviewers)
    } else {
        shortfall(s, policy)
    };
    let Some(team) = team else {
        return Wanted {
            tech_leads,
            reviewers,
            ..Wanted::default()
        };
    };
    let excluded = s.non_approvers();
    let approved: Vec<String> = if anew {
        vec![]
    } else {
        counting_approvals(s)
            .iter()
            .map(|a| a.by.to_ascii_lowercase())
            .collect()
    };
    let may = |p: &&String| {
        let p = p.to_ascii_lowercase();
        !excluded.contains(&p) && !approved.contains(&p)
    };
    let lead_candidates: Vec<String> = team.tech_leads.iter().filter(may).cloned().collect();
    let mut reviewer_candidates: Vec<String> = team
        .reviewers
        .iter()
        .filter(may)
        .filter(|r| !lead_candidates.iter().any(|l| l.eq_ignore_ascii_case(r)))
        .cloned()
        .collect();
    if reviewer_candidates.is_empty() {
        reviewer_candidates = lead_candidates
            .iter()
            .skip(tech_leads as usize)
            .cloned()
            .collect();
    }
    Wanted {
        tech_leads,
        reviewers,
        lead_candidates,
        reviewer_candidates,
    }
}

/// Where the person's local branch stands against the pushed head. The
/// engine looks (git); the rules decide, with everything else, so a person
/// reads every reason in one list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LocalBranch {
    /// At the pushed head or behind it, or not in this clone: nothing to push.
    #[default]
    InStep,
    /// `commits` commits on top of the pushed head, not pushed yet.
    Ahead { local: String, commits: usize },
    /// Rewritten since the push (amended, rebased): neither contains the other.
    Rewritten { local: String },
}

/// What `ship` saw outside the log, judged together with it.
#[derive(Debug, Clone, Default)]
pub struct ShipFacts<'a> {
    /// Who ships, so a request to approve names the others and the command
    /// they run (`--as` only on a local log).
    pub viewer: Viewer<'a>,
    pub local: LocalBranch,
    /// The forge's required checks on the pushed head that failed
    /// (`name (detail)`), and those still running.
    pub checks_failed: Vec<String>,
    pub checks_pending: Vec<String>,
}

/// Where a refusal comes in the order a person fixes them: what goes into
/// the commit first, then the push, then what the push runs on the new
/// head (preview, smoke, the forge's checks), and last the approvals,
/// which count only for the head they were given on.
pub fn fix_order(code: &str) -> u8 {
    match code {
        "closed" | "rolled_back" => 0,
        "conflict_markers" | "wide_diff" => 1,
        "not_pushed" | "unpushed" | "pr_closed" => 2,
        "no_preview" | "no_smoke" => 3,
        "checks_failed" | "checks_pending" => 4,
        "approvals" | "self_approval" => 5,
        _ => 6,
    }
}

/// Everything that stops `ship`, from the log alone. Empty = may ship.
pub fn ship_refusals(s: &IncidentState, cfg: &Config) -> Vec<Refusal> {
    ship_refusals_with(s, cfg, &ShipFacts::default())
}

/// Everything that stops `ship`, from the log and what the engine saw
/// (`facts`), in the order to fix them ([`fix_order`]). Empty = may ship.
///
/// A pending push (local commits, a rewritten branch) changes the head:
/// the preview, smoke checks and approvals of the pushed head will not
/// count for the new one, so they are asked for on the new head, after the
/// push, never on the head the push replaces.
pub fn ship_refusals_with(s: &IncidentState, cfg: &Config, facts: &ShipFacts<'_>) -> Vec<Refusal> {
    let policy = &cfg.policy;
    let p = policy.for_severity(s.severity);
    let cx = NextContext::new(cfg, facts.viewer);
    let mut out = vec![];
    if s.is_closed() {
        out.push(refusal(
            "closed",
            format!("{} is closed", s.id),
            "open a new incident with `hotfix start`",
        ));
        return out;
    }
    if s.rollback.is_some() {
        out.push(refusal(
            "rolled_back",
            format!(
                "{} was rolled back: {}",
                s.id,
                s.rollback.as_ref().map(|r| r.reason.as_str()).unwrap_or("")
            ),
            format!("start a new attempt with {}", new_attempt(s)),
        ));
        return out;
    }
    let Some(head) = s.head_sha.as_deref() else {
        out.push(refusal(
            "not_pushed",
            "nothing has been pushed yet".into(),
            "commit the fix on the hotfix branch and run `hotfix push`",
        ));
        return out;
    };
    let pending_push = facts.local != LocalBranch::InStep;
    match &facts.local {
        LocalBranch::InStep => {}
        LocalBranch::Ahead { local, commits } => out.push(refusal(
            "unpushed",
            format!(
                "your {} has {commits} commit{} not pushed (at {}; the pushed head is {})",
                s.branch,
                if *commits == 1 { "" } else { "s" },
                short(local),
                short(head)
            ),
            "push it through the preview first: `hotfix push`",
        )),
        LocalBranch::Rewritten { local } => out.push(refusal(
            "unpushed",
            format!(
                "your {} was rewritten since the push (at {}; the pushed head is {})",
                s.branch,
                short(local),
                short(head)
            ),
            "push it through the preview first: `hotfix push` (it replaces the pushed head, which was never merged)",
        )),
    }
    if s.pr_closed {
        out.push(refusal(
            "pr_closed",
            format!(
                "PR #{} was closed without merging",
                s.pr.unwrap_or_default()
            ),
            "reopen it on the forge, or run `hotfix push` to open a new one",
        ));
    }
    if pending_push {
        if p.preview || p.smoke || p.area_checks {
            let what = match (p.preview, p.smoke || p.area_checks) {
                (true, true) => "a preview deploy and passing smoke checks",
                (true, false) => "a preview deploy",
                _ => "passing smoke checks",
            };
            out.push(refusal(
                if p.preview { "no_preview" } else { "no_smoke" },
                format!("then the new head needs {what} of its own"),
                "`hotfix push` deploys its preview and runs the smoke checks; if they fail, fix, commit and push again",
            ));
        }
    } else {
        if p.preview && s.preview_sha.as_deref() != Some(head) {
            out.push(refusal(
                "no_preview",
                format!("no preview deploy of the current head {}", short(head)),
                "run `hotfix push` to deploy a preview (never skip PR preview testing)",
            ));
        }
        if (p.smoke || p.area_checks) && !s.smoke_passed_on_head() {
            let what = match &s.smoke {
                Some((sha, false, checks)) if sha == head => {
                    let failed: Vec<_> = checks
                        .iter()
                        .filter(|c| !c.ok)
                        .map(|c| c.name.clone())
                        .collect();
                    format!(
                        "smoke checks failed on {}: {}",
                        short(head),
                        failed.join(", ")
                    )
                }
                _ => format!(
                    "smoke checks have not passed on a preview of the current head {}",
                    short(head)
                ),
            };
            out.push(refusal("no_smoke", what, "fix and run `hotfix push` again"));
        }
        // The forge's checks ran on the pushed head: after a push they run again.
        if !facts.checks_failed.is_empty() {
            out.push(refusal(
                "checks_failed",
                format!(
                    "required checks failed on {}: {}",
                    short(head),
                    facts.checks_failed.join(", ")
                ),
                "fix them and push again",
            ));
        }
        if !facts.checks_pending.is_empty() {
            out.push(refusal(
                "checks_pending",
                format!(
                    "required checks still running on {}: {}",
                    short(head),
                    facts.checks_pending.join(", ")
                ),
                "run `hotfix ship` again when they finish",
            ));
        }
    }
    let excluded = s.non_approvers();
    for a in s.fresh_approvals() {
        if excluded.contains(&a.by.to_ascii_lowercase()) {
            out.push(refusal(
                "self_approval",
                format!("{} cannot approve: nobody approves their own hotfix (they started it or authored a commit)", a.by),
                "ask a tech lead who did not work on the fix",
            ));
        }
    }
    if pending_push {
        if p.tech_leads + p.reviewers > 0 {
            let mut msg = format!(
                "then the new head needs {} ({} severity)",
                required_text(p.tech_leads, p.reviewers),
                s.severity
            );
            let given: Vec<String> = counting_approvals(s)
                .iter()
                .map(|a| format!("{}'s approval of {}", a.by, short(&a.sha)))
                .collect();
            if !given.is_empty() {
                msg.push_str(&format!("; {} will not count for it", given.join(" and ")));
            }
            out.push(refusal(
                "approvals",
                msg,
                format!(
                    "after `hotfix push`, {}",
                    ask_to_approve(s, &cx, Some("the new head"), true)
                ),
            ));
        }
    } else {
        let missing = missing_approvals(s, policy);
        if !missing.is_empty() {
            let stale: Vec<&Approval> = s
                .approvals
                .iter()
                .filter(|a| {
                    Some(a.sha.as_str()) != s.head_sha.as_deref() || Some(a.seq) < s.last_push_seq
                })
                .collect();
            let mut msg = format!(
                "{} severity needs {}; missing {}",
                s.severity,
                required_text(p.tech_leads, p.reviewers),
                missing.join(" and ")
            );
            if !stale.is_empty() {
                let names: Vec<String> = stale
                    .iter()
                    .map(|a| format!("{} (on {})", a.by, short(&a.sha)))
                    .collect();
                msg.push_str(&format!(
                    "; stale after the last push: {}",
                    names.join(", ")
                ));
            }
            out.push(refusal(
                "approvals",
                msg,
                ask_to_approve(s, &cx, Some(&format!("head {}", short(head))), false),
            ));
        }
    }
    if !s.wide_diff_allowed {
        let d = &s.diff;
        // Measured on the pushed head: a pending push measures again.
        let on = if pending_push {
            format!(" (on the pushed head {})", short(head))
        } else {
            String::new()
        };
        if d.files.len() > policy.diff.max_files || d.lines_changed() > policy.diff.max_lines {
            out.push(refusal(
                "wide_diff",
                format!(
                    "the diff is not focused{on}: {} and {} (policy: at most {}, {})",
                    crate::plural::count(d.files.len(), "file"),
                    crate::plural::count(d.lines_changed(), "changed line"),
                    crate::plural::count(policy.diff.max_files, "file"),
                    crate::plural::count(policy.diff.max_lines, "line")
                ),
                "keep hotfixes focused; if this really is one fix, `hotfix ship --allow-wide --reason TEXT` records it as an anti-pattern",
            ));
        }
        if !d.conflict_markers.is_empty() {
            out.push(refusal(
                "conflict_markers",
                format!("conflict markers in {}{on}", d.conflict_markers.join(", ")),
                "resolve them, commit and `hotfix push` again",
            ));
        }
    }
    out.sort_by_key(|r| fix_order(r.code));
    out
}

fn required_text(leads: u32, reviewers: u32) -> String {
    match (leads, reviewers) {
        (l, 0) => format!("{l} tech lead approval{}", if l == 1 { "" } else { "s" }),
        (l, r) => format!(
            "{l} tech lead + {r} reviewer approval{}",
            if l + r == 1 { "" } else { "s" }
        ),
    }
}

/// The outcome of checking an approval request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApproveCheck {
    /// Record an approval in this role.
    Record(Role),
    /// The same person already approved this head: nothing to do.
    AlreadyApproved,
}

/// May `who` approve this incident now?
pub fn check_approve(s: &IncidentState, cfg: &Config, who: &str) -> Result<ApproveCheck, Refusal> {
    if s.is_closed() {
        return Err(refusal(
            "closed",
            format!("{} is closed", s.id),
            "nothing to approve",
        ));
    }
    if s.merge_sha.is_some() {
        return Err(refusal(
            "merged",
            format!("{} is already merged", s.id),
            "nothing to approve",
        ));
    }
    if s.rollback.is_some() {
        return Err(refusal(
            "rolled_back",
            format!("{} was rolled back", s.id),
            "approve the new attempt once it is pushed",
        ));
    }
    if s.head_sha.is_none() {
        return Err(refusal(
            "not_pushed",
            "nothing to approve yet: the fix has not been pushed".into(),
            "approve after `hotfix push` opened the PR",
        ));
    }
    let role = if cfg.is_tech_lead(who) {
        Role::TechLead
    } else if cfg.is_reviewer(who) {
        Role::Reviewer
    } else {
        return Err(refusal(
            "not_an_approver",
            format!(
                "{who} may not approve: only the tech leads and reviewers in hotfix.toml [team] may"
            ),
            "ask a tech lead, or add the person to [team] in hotfix.toml",
        ));
    };
    if s.non_approvers().contains(&who.to_ascii_lowercase()) {
        return Err(refusal(
            "self_approval",
            format!(
                "{who} may not approve {}: nobody approves their own hotfix (started it or authored a commit)",
                s.id
            ),
            "ask a tech lead who did not work on the fix",
        ));
    }
    if s.fresh_approvals()
        .iter()
        .any(|a| a.by.eq_ignore_ascii_case(who))
    {
        return Ok(ApproveCheck::AlreadyApproved);
    }
    Ok(ApproveCheck::Record(role))
}

/// The events that withdraw `who`'s approvals of the current head (none
/// when they have none that counts): `hotfix approve --withdraw`, the API,
/// the dashboard, a dismissed review or *changes requested* on the forge.
pub fn withdrawals(
    s: &IncidentState,
    who: &str,
    reason: &str,
    source: &str,
) -> Vec<crate::event::EventKind> {
    // One person has at most one approval that counts (a second is
    // `AlreadyApproved`): withdrawing it is one event.
    s.fresh_approvals()
        .into_iter()
        .find(|a| a.by.eq_ignore_ascii_case(who))
        .map(|a| crate::event::EventKind::ApprovalWithdrawn {
            by: who.to_string(),
            sha: a.sha.clone(),
            reason: reason.to_string(),
            source: source.to_string(),
        })
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::next::tests::{DEV, HEAD, LEAD, LEAD2, Log, REV, cfg};
    use crate::severity::Severity;

    const LOCAL: &str = "9999999999eeeeeeeeeeeeeeeeeeeeeeeeeeeeee";

    fn codes(r: &[Refusal]) -> Vec<&'static str> {
        r.iter().map(|r| r.code).collect()
    }

    fn ahead(who: &str) -> ShipFacts<'_> {
        ShipFacts {
            viewer: Viewer::new(Some(who), false),
            local: LocalBranch::Ahead {
                local: LOCAL.into(),
                commits: 1,
            },
            ..ShipFacts::default()
        }
    }

    #[test]
    fn an_unpushed_commit_and_missing_approvals_come_in_one_list_push_first() {
        let s = Log::awaiting(Severity::High).state();
        let r = ship_refusals_with(&s, &cfg(), &ahead(DEV));
        assert_eq!(codes(&r), ["unpushed", "no_preview", "approvals"], "{r:?}");
        assert!(r[0].message.contains("1 commit not pushed"), "{r:?}");
        assert!(r[0].message.contains(&LOCAL[..10]), "{r:?}");
        assert!(r[0].hint.contains("`hotfix push`"), "{r:?}");
        assert!(r[1].message.contains("the new head"), "{r:?}");
        // Approvals of the head the push makes, never of the pushed one.
        let a = &r[2];
        assert!(a.hint.starts_with("after `hotfix push`, "), "{a:?}");
        assert!(!a.hint.contains(&HEAD[..10]), "{a:?}");
        assert!(a.hint.contains("approve the new head"), "{a:?}");
        assert!(
            a.hint
                .contains(&format!("`hotfix approve HF-2 --as {LEAD}`")),
            "{a:?}"
        );
        assert!(
            a.hint
                .contains(&format!("`hotfix approve HF-2 --as {REV}`")),
            "{a:?}"
        );
    }

    #[test]
    fn approvals_that_a_push_makes_stale_are_asked_for_again() {
        let mut l = Log::awaiting(Severity::Critical);
        l.approved(LEAD, Role::TechLead, HEAD);
        let s = l.state();
        assert!(ship_refusals(&s, &cfg()).is_empty());
        let r = ship_refusals_with(&s, &cfg(), &ahead(DEV));
        assert_eq!(codes(&r), ["unpushed", "no_preview", "approvals"], "{r:?}");
        assert!(
            r[2].message.contains(&format!(
                "{LEAD}'s approval of {} will not count",
                &HEAD[..10]
            )),
            "{r:?}"
        );
        // The lead who approved the old head may approve the new one.
        assert!(r[2].hint.contains(&format!("({LEAD} or {LEAD2})")), "{r:?}");
    }

    #[test]
    fn a_rewritten_branch_is_a_pending_push_too() {
        let s = Log::awaiting(Severity::Critical).state();
        let f = ShipFacts {
            local: LocalBranch::Rewritten {
                local: LOCAL.into(),
            },
            ..ShipFacts::default()
        };
        let r = ship_refusals_with(&s, &cfg(), &f);
        assert_eq!(codes(&r), ["unpushed", "no_preview", "approvals"], "{r:?}");
        assert!(r[0].message.contains("rewritten since the push"), "{r:?}");
    }

    #[test]
    fn without_a_pending_push_the_approval_names_the_head_and_who_gives_it() {
        let s = Log::awaiting(Severity::Critical).state();
        let r = ship_refusals_with(
            &s,
            &cfg(),
            &ShipFacts {
                viewer: Viewer::new(Some(DEV), true),
                ..ShipFacts::default()
            },
        );
        assert_eq!(codes(&r), ["approvals"]);
        assert_eq!(
            r[0].hint,
            format!(
                "ask a tech lead ({LEAD} or {LEAD2}) to approve head {}: they run `hotfix approve HF-2`",
                &HEAD[..10]
            )
        );
    }

    #[test]
    fn the_forges_checks_are_in_the_list_in_their_place() {
        let mut l = Log::new(Severity::High);
        l.pushed(HEAD, DEV);
        let s = l.state();
        let f = ShipFacts {
            checks_failed: vec!["lint (1 error)".into()],
            checks_pending: vec!["e2e".into()],
            ..ShipFacts::default()
        };
        let r = ship_refusals_with(&s, &cfg(), &f);
        assert_eq!(
            codes(&r),
            [
                "no_preview",
                "no_smoke",
                "checks_failed",
                "checks_pending",
                "approvals"
            ],
            "{r:?}"
        );
        // Checks of the pushed head do not matter once a push is pending.
        let f = ShipFacts {
            checks_failed: vec!["lint (1 error)".into()],
            ..ahead(DEV)
        };
        assert!(!codes(&ship_refusals_with(&s, &cfg(), &f)).contains(&"checks_failed"));
    }

    #[test]
    fn what_goes_into_the_commit_comes_before_the_push() {
        let mut l = Log::new(Severity::Critical);
        l.add(
            DEV,
            crate::event::EventKind::Pushed {
                sha: HEAD.into(),
                commits: vec![],
                diff: crate::event::DiffStat {
                    files: vec!["app/main.txt".into()],
                    lines_added: 5,
                    lines_removed: 0,
                    conflict_markers: vec!["app/main.txt".into()],
                },
            },
        );
        let r = ship_refusals_with(&l.state(), &cfg(), &ahead(DEV));
        assert_eq!(
            codes(&r),
            ["conflict_markers", "unpushed", "no_preview", "approvals"],
            "{r:?}"
        );
        assert!(r[0].message.contains("on the pushed head"), "{r:?}");
    }

    #[test]
    fn fix_order_sorts_every_code_ship_can_refuse_with() {
        let order = [
            "conflict_markers",
            "unpushed",
            "no_smoke",
            "checks_pending",
            "approvals",
        ];
        assert!(order.windows(2).all(|w| fix_order(w[0]) < fix_order(w[1])));
    }
}
