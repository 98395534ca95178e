//! "What do I do now?" for every phase: the line every command ends with.
//!
//! The line is a command the person reading it can run as it stands: the
//! real incident id, branch and hotfix name, never a placeholder. When the
//! step is someone else's (an approval, a triage decision, closing), it
//! says whom to ask by name (from `[team]`) and the command they run. In
//! remote mode the team server's token says who acts, so a command never
//! carries `--as` there; on a local log, a step for another person is run
//! here in their name (`--as`), the only way it reaches this log.

use crate::config::{Config, TeamConfig};
use crate::guards::{missing_approvals, wanted_approvals};
use crate::policy::Policy;
use crate::state::{IncidentState, Phase};

/// Who reads the next step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Viewer<'a> {
    /// The person (`--as`, `HOTFIX_USER`, git's `user.email`, or the
    /// token's user in remote mode); `None` when nobody is known.
    pub who: Option<&'a str>,
    /// The log lives on a team server: the token says who acts.
    pub remote: bool,
}

impl<'a> Viewer<'a> {
    pub fn new(who: Option<&'a str>, remote: bool) -> Viewer<'a> {
        Viewer {
            who: who.map(str::trim).filter(|w| !w.is_empty()),
            remote,
        }
    }

    fn is(&self, person: &str) -> bool {
        self.who.is_some_and(|w| w.eq_ignore_ascii_case(person))
    }
}

/// What the next step is phrased with: the policy, the team when known
/// (to name who must act) and the reader.
#[derive(Debug, Clone, Copy)]
pub struct NextContext<'a> {
    pub policy: &'a Policy,
    /// `None`: the team is not known here; steps for others name the role only.
    pub team: Option<&'a TeamConfig>,
    pub viewer: Viewer<'a>,
}

impl<'a> NextContext<'a> {
    pub fn new(cfg: &'a Config, viewer: Viewer<'a>) -> NextContext<'a> {
        NextContext {
            policy: &cfg.policy,
            team: Some(&cfg.team),
            viewer,
        }
    }
}

/// The next action, without knowing who reads it or the team: steps for
/// someone else name the role and the command, not a person.
pub fn next_action(s: &IncidentState, policy: &Policy) -> String {
    next_step(
        s,
        &NextContext {
            policy,
            team: None,
            viewer: Viewer::default(),
        },
    )
}

/// The next action for this reader, as a command they can run (or a request
/// to the person whose step it is, with the command that person runs).
pub fn next_for(s: &IncidentState, cfg: &Config, viewer: Viewer<'_>) -> String {
    next_step(s, &NextContext::new(cfg, viewer))
}

/// The next action in context.
pub fn next_step(s: &IncidentState, cx: &NextContext<'_>) -> String {
    let id = s.id;
    let policy = cx.policy;
    let phase = s.phase(policy);
    if s.pr_closed
        && matches!(
            phase,
            Phase::InReview | Phase::AwaitingApproval | Phase::ReadyToShip
        )
    {
        return format!(
            "PR #{} was closed without merging: reopen it, or run `hotfix push {id}` to open a new one",
            s.pr.unwrap_or_default()
        );
    }
    match phase {
        Phase::Triage => {
            let sev = s.severity.as_str();
            let cmds = [
                format!("triage {id} confirm --severity {sev}"),
                format!("triage {id} decline --reason false_alarm|not_urgent"),
                format!("triage {id} merge --into HF-N"),
            ];
            let say = |c: &[String]| format!("{} if it is real, else {} or {}", c[0], c[1], c[2]);
            match for_tech_lead(cx, "triage it", &cmds) {
                Delegated::Viewer(c) => format!("triage it: {}", say(&c)),
                Delegated::Other(ask, c) => format!("{ask} {}", say(&c)),
            }
        }
        Phase::Reported => format!(
            "take it and cut the branch: `hotfix start {} --incident {id} --severity {}`",
            s.name,
            s.severity.as_str()
        ),
        Phase::Fixing => format!("commit the fix on {} and run `hotfix push {id}`", s.branch),
        Phase::InReview => match &s.smoke {
            Some((sha, false, _)) if Some(sha) == s.head_sha.as_ref() => {
                format!("smoke checks failed: fix, commit and run `hotfix push {id}` again")
            }
            _ => format!("run `hotfix push {id}` to deploy the preview and run the smoke checks"),
        },
        Phase::AwaitingApproval => {
            let ask = ask_to_approve(s, cx, None, false);
            if ask.starts_with("approve it") {
                ask
            } else {
                format!(
                    "needs {}: {ask}",
                    missing_approvals(s, policy).join(" and ")
                )
            }
        }
        Phase::ReadyToShip => format!("ship it: `hotfix ship {id}`"),
        Phase::Merged => match &s.health_failure {
            Some(_) => format!("production is unhealthy: `hotfix rollback {id} --reason TEXT`"),
            // Issue 12: the watch stopped on an analysis without data.
            None if s
                .analyses
                .iter()
                .any(|a| a.verdict == "inconclusive" && s.merge_sha.as_ref() == Some(&a.sha)) =>
            {
                format!(
                    "an analysis had no data: check its metric source, then watch again with `hotfix ship {id}`, or `hotfix rollback {id} --reason TEXT`"
                )
            }
            None => format!("finish the production deploy: `hotfix ship {id}`"),
        },
        Phase::Deployed => {
            if s.backport_conflict.is_some() {
                format!(
                    "resolve the backport conflicts, then `hotfix backport {id} --continue` (or `--abort`)"
                )
            } else {
                format!("backport to develop (don't forget this step!): `hotfix backport {id}`")
            }
        }
        Phase::Backported => {
            if s.postmortem.is_none() {
                format!("schedule the post-mortem: `hotfix postmortem {id}`")
            } else {
                let open = crate::checklist::open_items(s);
                if open.is_empty() && !cx.viewer.remote && cx.viewer.who.is_some() {
                    // The rulebook lets whoever is on a local log close it
                    // (only the team server asks for a tech_lead token), so
                    // the line says what the rules allow, not more.
                    format!("close the incident: `hotfix close {id}`")
                } else if open.is_empty() {
                    match for_tech_lead(cx, "close it", &[format!("close {id}")]) {
                        Delegated::Viewer(c) => format!("close the incident: {}", c[0]),
                        Delegated::Other(ask, c) => format!("{ask} {}", c[0]),
                    }
                } else {
                    format!(
                        "finish the checklist: `hotfix checklist {id} --done {}`",
                        open.iter().map(|i| i.key).collect::<Vec<_>>().join(" ")
                    )
                }
            }
        }
        Phase::RollingBack => {
            let p = s.rollback_progress.as_ref();
            format!(
                "the rollback is not finished{}: run `hotfix rollback {id} --reason TEXT` again to finish it",
                p.and_then(|p| p.stalled.as_deref())
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default()
            )
        }
        Phase::RolledBack => format!("reassess and start a new attempt: {}", new_attempt(s)),
        Phase::Closed => "nothing: the incident is closed".to_string(),
        Phase::Declined => match s.declined.as_ref().and_then(|d| d.merged_into) {
            Some(into) => format!("nothing: merged into {into}"),
            None => "nothing: declined at triage".to_string(),
        },
    }
}

/// The command that starts the next attempt after a rollback. The rolled-back
/// branch stays (on the remote, often locally), so the new attempt needs a
/// branch name of its own: the hotfix name with the attempt's number.
pub fn new_attempt(s: &IncidentState) -> String {
    format!(
        "`hotfix start {} --severity {} --incident {}`",
        new_attempt_name(s),
        s.severity.as_str(),
        s.id
    )
}

/// `pdf-crash` → `pdf-crash-2`, `pdf-crash-2` (attempt 2) → `pdf-crash-3`.
pub fn new_attempt_name(s: &IncidentState) -> String {
    let suffix = format!("-{}", s.attempt);
    let base = match s.name.strip_suffix(&suffix) {
        Some(b) if s.attempt > 1 && !b.is_empty() => b,
        _ => s.name.as_str(),
    };
    format!("{base}-{}", s.attempt + 1)
}

/// A step that is the viewer's own, or a request to someone else.
enum Delegated {
    /// The viewer runs these (backticked) commands.
    Viewer(Vec<String>),
    /// "ask a tech lead (…) to …: [they run]", and the commands that person runs.
    Other(String, Vec<String>),
}

/// A tech lead's step (triage, closing): the viewer's own when they are a
/// tech lead (or the team names none, as for a person working alone), else
/// a request to the tech leads by name. `cmds` are without `hotfix `.
fn for_tech_lead(cx: &NextContext<'_>, what: &str, cmds: &[String]) -> Delegated {
    let leads: &[String] = cx.team.map(|t| t.tech_leads.as_slice()).unwrap_or_default();
    let mine = cx.team.is_some() && (leads.is_empty() || leads.iter().any(|l| cx.viewer.is(l)));
    if mine {
        return Delegated::Viewer(cmds.iter().map(|c| format!("`hotfix {c}`")).collect());
    }
    let (ask, cmds) = ask_person("a tech lead", leads, what, cmds, cx.viewer.remote);
    Delegated::Other(ask, cmds)
}

/// "ask a tech lead (a or b) to `what`:" and the commands that person runs:
/// in their name on a local log (`--as`), as they are in remote mode
/// ("they run"), where their own token says who acts.
fn ask_person(
    who: &str,
    people: &[String],
    what: &str,
    cmds: &[String],
    remote: bool,
) -> (String, Vec<String>) {
    let mut ask = if people.is_empty() {
        format!("ask {who} to {what}:")
    } else {
        format!("ask {who} ({}) to {what}:", or_list(people))
    };
    let cmds = match people.first() {
        Some(p) if !remote => cmds
            .iter()
            .map(|c| format!("`hotfix {c} --as {p}`"))
            .collect(),
        _ => {
            ask.push_str(" they run");
            cmds.iter().map(|c| format!("`hotfix {c}`")).collect()
        }
    };
    (ask, cmds)
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(people: &[String]) -> String {
    match people {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Who to ask for the approvals still missing, by name, with the command
/// each runs; the viewer's own command first when they may approve.
/// `head`: how to name what is approved ("head 1a2b3c4d5e", "the new head"),
/// or `None` for "it". `anew`: the head to approve is the one the next push
/// makes, so every approval of the policy is needed again and whoever
/// approved the pushed head may approve the new one.
pub fn ask_to_approve(
    s: &IncidentState,
    cx: &NextContext<'_>,
    head: Option<&str>,
    anew: bool,
) -> String {
    let id = s.id;
    let target = head
        .map(|h| format!("approve {h}"))
        .unwrap_or_else(|| "approve it".into());
    let w = wanted_approvals(s, cx.policy, cx.team, anew);
    let mut parts = vec![];
    let (mut leads, mut reviewers) = (w.tech_leads, w.reviewers);
    let viewer_leads = leads > 0 && w.lead_candidates.iter().any(|p| cx.viewer.is(p));
    let viewer_reviews = reviewers > 0 && w.reviewer_candidates.iter().any(|p| cx.viewer.is(p));
    if viewer_leads || viewer_reviews {
        parts.push(format!("{target}: `hotfix approve {id}`"));
        if viewer_leads {
            leads -= 1;
        } else {
            reviewers -= 1;
        }
    }
    let others =
        |c: &[String]| -> Vec<String> { c.iter().filter(|p| !cx.viewer.is(p)).cloned().collect() };
    let lead_people = others(&w.lead_candidates);
    let reviewer_people = others(&w.reviewer_candidates);
    for (n, role, key, people) in [
        (leads, "tech lead", "tech_leads", &lead_people),
        (reviewers, "reviewer", "reviewers", &reviewer_people),
    ] {
        if n == 0 {
            continue;
        }
        if cx.team.is_some() && people.is_empty() {
            parts.push(format!(
                "nobody in hotfix.toml [team] {key} may give the {role} approval (whoever started the hotfix or wrote one of its commits may not): add one there"
            ));
            continue;
        }
        let who = if n == 1 {
            format!("a {role}")
        } else {
            format!("{n} {role}s")
        };
        let (ask, cmds) = if cx.viewer.remote || people.is_empty() {
            ask_person(&who, people, &target, &[format!("approve {id}")], true)
        } else {
            // Each of the people asked, in their own name.
            let cmds = people
                .iter()
                .take(n as usize)
                .map(|p| format!("`hotfix approve {id} --as {p}`"))
                .collect();
            (
                format!("ask {who} ({}) to {target}:", or_list(people)),
                cmds,
            )
        };
        parts.push(format!("{ask} {}", cmds.join(" and ")));
    }
    parts.join("; ")
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use jiff::Timestamp;

    use super::*;
    use crate::event::{CommitInfo, DiffStat, Event, EventKind, Role};
    use crate::id::IncidentId;
    use crate::severity::Severity;

    pub const DEV: &str = "dev@example.com";
    pub const LEAD: &str = "lead@example.com";
    pub const LEAD2: &str = "lead2@example.com";
    pub const REV: &str = "rev@example.com";
    pub const HEAD: &str = "1111111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    /// An incident's log, built event by event.
    pub struct Log(pub Vec<Event>);

    impl Log {
        pub fn new(sev: Severity) -> Log {
            Log::declared(sev, "0000000000bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
        }

        /// Declared from an alert: no branch yet, waiting for triage.
        pub fn reported(sev: Severity) -> Log {
            Log::declared(sev, "")
        }

        fn declared(sev: Severity, base: &str) -> Log {
            let mut l = Log(vec![]);
            l.add(
                DEV,
                EventKind::Declared {
                    name: "pdf-crash".into(),
                    title: "PDF export crashes".into(),
                    severity: sev,
                    customer_facing: false,
                    security: false,
                    branch: "hotfix/pdf-crash".into(),
                    base_sha: base.into(),
                },
            );
            l
        }

        pub fn add(&mut self, actor: &str, kind: EventKind) -> &mut Log {
            let seq = self.0.len() as u64 + 1;
            self.0.push(Event {
                incident: IncidentId(2),
                seq,
                at: Timestamp::from_second(1_800_000_000 + seq as i64).unwrap(),
                actor: actor.into(),
                kind,
            });
            self
        }

        pub fn pushed(&mut self, sha: &str, author: &str) -> &mut Log {
            self.add(
                DEV,
                EventKind::Pushed {
                    sha: sha.into(),
                    commits: vec![CommitInfo {
                        sha: sha.into(),
                        author_email: author.into(),
                        committer_email: author.into(),
                        subject: "Fix PDF export".into(),
                    }],
                    diff: DiffStat {
                        files: vec!["app/pdf".into()],
                        lines_added: 1,
                        lines_removed: 1,
                        conflict_markers: vec![],
                    },
                },
            )
        }

        pub fn previewed(&mut self, sha: &str) -> &mut Log {
            self.add(
                DEV,
                EventKind::PreviewDeployed {
                    sha: sha.into(),
                    url: "http://127.0.0.1:1/preview".into(),
                },
            )
            .add(
                DEV,
                EventKind::SmokePassed {
                    sha: sha.into(),
                    checks: vec![],
                },
            )
        }

        pub fn approved(&mut self, by: &str, role: Role, sha: &str) -> &mut Log {
            self.add(
                by,
                EventKind::Approved {
                    by: by.into(),
                    role,
                    sha: sha.into(),
                    source: "cli".into(),
                },
            )
        }

        /// Pushed, previewed, smoke-tested: waiting for approvals.
        pub fn awaiting(sev: Severity) -> Log {
            let mut l = Log::new(sev);
            l.pushed(HEAD, DEV).previewed(HEAD);
            l
        }

        pub fn shipped(&mut self) -> &mut Log {
            let m = "2222222222cccccccccccccccccccccccccccccc";
            self.add(
                DEV,
                EventKind::Merged {
                    merge_sha: m.into(),
                    head_sha: HEAD.into(),
                    previous_main: "0000000000bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb".into(),
                    previous_deployment: None,
                    source: "cli".into(),
                },
            )
            .add(
                DEV,
                EventKind::Deployed {
                    sha: m.into(),
                    environment: "production".into(),
                    deployment: None,
                    previous_deployment: None,
                    build: None,
                },
            )
            .add(
                DEV,
                EventKind::HealthPassed {
                    sha: m.into(),
                    probes: 3,
                },
            )
        }

        pub fn state(&self) -> IncidentState {
            IncidentState::fold(&self.0).unwrap()
        }
    }

    pub fn cfg() -> Config {
        Config::parse(&format!(
            "[team]\ntech_leads = [\"{LEAD}\", \"{LEAD2}\"]\nreviewers = [\"{REV}\"]\n"
        ))
        .unwrap()
    }

    fn local(who: &str) -> Viewer<'_> {
        Viewer::new(Some(who), false)
    }

    fn remote(who: &str) -> Viewer<'_> {
        Viewer::new(Some(who), true)
    }

    /// Backported, post-mortem scheduled, every checklist item ticked.
    fn ready_to_close() -> IncidentState {
        let mut l = Log::awaiting(Severity::Critical);
        l.approved(LEAD, Role::TechLead, HEAD).shipped().add(
            DEV,
            EventKind::Backported {
                merge_sha: "3333333333dddddddddddddddddddddddddddddd".into(),
            },
        );
        l.add(
            DEV,
            EventKind::PostmortemScheduled {
                path: "postmortems/HF-2.md".into(),
                due: Timestamp::from_second(1_900_000_000).unwrap(),
            },
        );
        for key in crate::checklist::open_items(&l.state()) {
            l.add(
                DEV,
                EventKind::ChecklistDone {
                    key: key.key.into(),
                },
            );
        }
        l.state()
    }

    #[test]
    fn triage_is_the_viewers_when_they_are_a_tech_lead() {
        let s = Log::reported(Severity::High).state();
        assert_eq!(
            next_for(&s, &cfg(), local(LEAD)),
            "triage it: `hotfix triage HF-2 confirm --severity high` if it is real, else `hotfix triage HF-2 decline --reason false_alarm|not_urgent` or `hotfix triage HF-2 merge --into HF-N`"
        );
    }

    #[test]
    fn a_developer_is_told_which_tech_lead_triages_and_how() {
        let s = Log::reported(Severity::High).state();
        let n = next_for(&s, &cfg(), local(DEV));
        assert!(
            n.starts_with(&format!(
                "ask a tech lead ({LEAD} or {LEAD2}) to triage it: `hotfix triage HF-2 confirm --severity high --as {LEAD}` if it is real"
            )),
            "{n}"
        );
        // Remote mode: their token decides; no --as.
        let n = next_for(&s, &cfg(), remote(DEV));
        assert!(
            n.starts_with(&format!(
                "ask a tech lead ({LEAD} or {LEAD2}) to triage it: they run `hotfix triage HF-2 confirm --severity high` if it is real"
            )),
            "{n}"
        );
        assert!(!n.contains("--as"), "{n}");
    }

    #[test]
    fn the_early_phases_name_the_real_hotfix_branch_and_id() {
        let mut l = Log::reported(Severity::High);
        l.add(
            LEAD,
            EventKind::Confirmed {
                severity: Severity::High,
                public_text: None,
            },
        );
        assert_eq!(
            next_for(&l.state(), &cfg(), local(DEV)),
            "take it and cut the branch: `hotfix start pdf-crash --incident HF-2 --severity high`"
        );
        let l = Log::new(Severity::Critical);
        assert_eq!(
            next_for(&l.state(), &cfg(), remote(DEV)),
            "commit the fix on hotfix/pdf-crash and run `hotfix push HF-2`"
        );
        let mut l = Log::new(Severity::Critical);
        l.pushed(HEAD, DEV);
        assert_eq!(
            next_for(&l.state(), &cfg(), local(DEV)),
            "run `hotfix push HF-2` to deploy the preview and run the smoke checks"
        );
    }

    #[test]
    fn a_developer_is_told_which_tech_lead_approves_with_the_command_they_run() {
        let s = Log::awaiting(Severity::Critical).state();
        assert_eq!(
            next_for(&s, &cfg(), local(DEV)),
            format!(
                "needs 1 tech lead approval: ask a tech lead ({LEAD} or {LEAD2}) to approve it: `hotfix approve HF-2 --as {LEAD}`"
            )
        );
        assert_eq!(
            next_for(&s, &cfg(), remote(DEV)),
            format!(
                "needs 1 tech lead approval: ask a tech lead ({LEAD} or {LEAD2}) to approve it: they run `hotfix approve HF-2`"
            )
        );
    }

    #[test]
    fn a_tech_lead_is_told_to_approve_it_themselves() {
        let s = Log::awaiting(Severity::Critical).state();
        assert_eq!(
            next_for(&s, &cfg(), local(LEAD2)),
            "approve it: `hotfix approve HF-2`"
        );
        assert_eq!(
            next_for(&s, &cfg(), remote(LEAD2)),
            "approve it: `hotfix approve HF-2`"
        );
    }

    #[test]
    fn whoever_wrote_the_fix_is_never_asked_to_approve_it() {
        let mut l = Log::new(Severity::Critical);
        l.pushed(HEAD, LEAD).previewed(HEAD);
        let s = l.state();
        // The lead who wrote it reads: the other lead approves.
        assert_eq!(
            next_for(&s, &cfg(), local(LEAD)),
            format!(
                "needs 1 tech lead approval: ask a tech lead ({LEAD2}) to approve it: `hotfix approve HF-2 --as {LEAD2}`"
            )
        );
        // No other tech lead: a configuration problem, said as one.
        let solo = Config::parse(&format!("[team]\ntech_leads = [\"{LEAD}\"]\n")).unwrap();
        let n = next_for(&s, &solo, local(DEV));
        assert!(
            n.contains("nobody in hotfix.toml [team] tech_leads may give the tech lead approval"),
            "{n}"
        );
    }

    #[test]
    fn high_severity_asks_the_reviewer_once_the_tech_lead_approved() {
        let mut l = Log::awaiting(Severity::High);
        let s = l.state();
        assert_eq!(
            next_for(&s, &cfg(), local(DEV)),
            format!(
                "needs 1 tech lead approval and 1 reviewer approval: ask a tech lead ({LEAD} or {LEAD2}) to approve it: `hotfix approve HF-2 --as {LEAD}`; ask a reviewer ({REV}) to approve it: `hotfix approve HF-2 --as {REV}`"
            )
        );
        // The reviewer reads it: theirs first, then the tech lead.
        assert_eq!(
            next_for(&s, &cfg(), local(REV)),
            format!(
                "approve it: `hotfix approve HF-2`; ask a tech lead ({LEAD} or {LEAD2}) to approve it: `hotfix approve HF-2 --as {LEAD}`"
            )
        );
        l.approved(LEAD, Role::TechLead, HEAD);
        assert_eq!(
            next_for(&l.state(), &cfg(), local(DEV)),
            format!(
                "needs 1 reviewer approval: ask a reviewer ({REV}) to approve it: `hotfix approve HF-2 --as {REV}`"
            )
        );
    }

    #[test]
    fn without_the_team_the_role_and_the_command_are_named() {
        let s = Log::awaiting(Severity::Critical).state();
        let n = next_action(&s, &cfg().policy);
        assert_eq!(
            n,
            "needs 1 tech lead approval: ask a tech lead to approve it: they run `hotfix approve HF-2`"
        );
        let n = next_action(&ready_to_close(), &cfg().policy);
        assert_eq!(
            n,
            "ask a tech lead to close it: they run `hotfix close HF-2`"
        );
    }

    #[test]
    fn after_approval_the_path_to_production_is_the_viewers() {
        let mut l = Log::awaiting(Severity::Critical);
        l.approved(LEAD, Role::TechLead, HEAD);
        assert_eq!(
            next_for(&l.state(), &cfg(), local(DEV)),
            "ship it: `hotfix ship HF-2`"
        );
        l.shipped();
        assert_eq!(
            next_for(&l.state(), &cfg(), remote(DEV)),
            "backport to develop (don't forget this step!): `hotfix backport HF-2`"
        );
    }

    #[test]
    fn on_the_team_server_only_a_tech_lead_is_told_to_close() {
        let s = ready_to_close();
        // A local log: the rulebook lets the person at the keyboard close it.
        assert_eq!(
            next_for(&s, &cfg(), local(DEV)),
            "close the incident: `hotfix close HF-2`"
        );
        assert_eq!(
            next_for(&s, &cfg(), remote(DEV)),
            format!(
                "ask a tech lead ({LEAD} or {LEAD2}) to close it: they run `hotfix close HF-2`"
            )
        );
        assert_eq!(
            next_for(&s, &cfg(), remote(LEAD)),
            "close the incident: `hotfix close HF-2`"
        );
        // Nobody named a tech lead (one person, alone): it is theirs.
        let alone = Config::parse("").unwrap();
        assert_eq!(
            next_for(&s, &alone, local(DEV)),
            "close the incident: `hotfix close HF-2`"
        );
        // Nobody known reads it: ask.
        assert!(next_for(&s, &cfg(), Viewer::new(None, false)).starts_with("ask a tech lead"));
    }

    #[test]
    fn a_new_attempt_gets_a_branch_name_of_its_own() {
        let mut l = Log::awaiting(Severity::High);
        l.approved(LEAD, Role::TechLead, HEAD)
            .approved(REV, Role::Reviewer, HEAD)
            .shipped()
            .add(
                DEV,
                EventKind::RolledBack {
                    reason: "5xx".into(),
                    automatic: true,
                    main_revert: None,
                    develop_revert: None,
                    forced: None,
                },
            );
        let s = l.state();
        assert_eq!(
            next_for(&s, &cfg(), local(DEV)),
            "reassess and start a new attempt: `hotfix start pdf-crash-2 --severity high --incident HF-2`"
        );
        l.add(
            DEV,
            EventKind::AttemptStarted {
                attempt: 2,
                name: "pdf-crash-2".into(),
                branch: "hotfix/pdf-crash-2".into(),
                base_sha: "0000000000bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb".into(),
                severity: Severity::High,
            },
        );
        let s = l.state();
        assert_eq!(s.attempt, 2);
        assert_eq!(new_attempt_name(&s), "pdf-crash-3");
    }

    #[test]
    fn no_phase_prints_a_placeholder_for_a_person_or_a_name() {
        let mut states = vec![
            Log::reported(Severity::High).state(),
            Log::new(Severity::High).state(),
            Log::awaiting(Severity::High).state(),
            Log::awaiting(Severity::Critical).state(),
            ready_to_close(),
        ];
        let mut l = Log::awaiting(Severity::Critical);
        l.approved(LEAD, Role::TechLead, HEAD);
        states.push(l.state());
        for s in &states {
            for v in [
                local(DEV),
                local(LEAD),
                remote(DEV),
                remote(REV),
                Viewer::default(),
            ] {
                let n = next_for(s, &cfg(), v);
                assert!(!n.contains("PERSON") && !n.contains("NAME"), "{n}");
                if v.remote {
                    assert!(!n.contains("--as"), "{n}");
                }
            }
        }
    }
}
