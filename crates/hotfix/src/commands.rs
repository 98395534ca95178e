//! One function per verb: parse the arguments into engine calls, print what
//! was done and the next step.

use hotfix_core::checklist::checklist;
use hotfix_core::config::INIT_TEMPLATE;
use hotfix_core::display;
use hotfix_core::id::IncidentId;
use hotfix_core::severity::{Severity, SeverityError};
use hotfix_core::state::IncidentState;
use hotfix_engine::backport::BackportMode;
use hotfix_engine::{Engine, StartArgs};

use crate::app;
use crate::cli::{Cli, Cmd, PlatformCmd, PushArgs, ReadArgs, TriageArgs, TriageCmd};
use crate::render;

/// The error every command returns; its kind decides the exit code
/// (`crate::exit` has the one table).
pub use crate::exit::CliError;
use crate::exit::{Kind, OK};

fn parse_id(s: &Option<String>) -> Result<Option<IncidentId>, CliError> {
    s.as_deref()
        .map(|v| {
            v.parse::<IncidentId>()
                .map_err(|e| CliError::usage(e.to_string()))
        })
        .transpose()
}

/// The incident a read command (`status`, `pr`) is about, or `None` once
/// it has printed the empty answer.
///
/// Why an empty answer and not an error: "is anything on fire?" answered
/// by `hotfix status` on main with "no open incident" is the good news, and
/// exits 0 so a script or a shell prompt can ask it. Off a hotfix branch
/// with incidents open, which one is meant is unclear: that stays a usage
/// error (2) that lists them.
pub(crate) fn resolve_for_reading(
    e: &Engine,
    r: &ReadArgs,
) -> Result<Option<IncidentId>, CliError> {
    if r.id.is_none() {
        let on_hotfix_branch = e
            .git
            .current_branch()
            .map_err(hotfix_engine::EngineError::from)?
            .is_some_and(|b| b.starts_with(e.cfg.git.prefix.as_str()));
        if !on_hotfix_branch && e.open()?.is_empty() {
            if r.json {
                println!("null");
            } else {
                println!("no open incident");
                println!(
                    "next: `hotfix start NAME --severity critical|high` declares one; `hotfix log` lists the past ones"
                );
            }
            return Ok(None);
        }
    }
    Ok(Some(e.resolve(parse_id(&r.id)?)?))
}

/// The impact assessment given with `push --impact TEXT` or
/// `--impact-file FILE` (`-`: standard input), if any. Its content is
/// checked by the engine; here only that it can be read.
fn impact_text(a: &PushArgs) -> Result<Option<String>, CliError> {
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

fn print_next(e: &Engine, s: &IncidentState) {
    println!("next: {}", hotfix_core::display::line(&e.next_step(s)));
}

/// Who acts: `--as` after the verb, else the (hidden, kept for
/// compatibility) `--as` before it. Both, naming two people, is a mistake
/// worth stopping at rather than guessing which one was meant.
pub(crate) fn acting<'a>(
    before: Option<&'a str>,
    after: Option<&'a str>,
) -> Result<Option<&'a str>, CliError> {
    match (before, after) {
        (Some(b), Some(a)) if !b.trim().eq_ignore_ascii_case(a.trim()) => Err(CliError::usage(
            format!("--as is given twice, as {b} and as {a}"),
        )
        .hint("give it once, after the verb: `hotfix VERB ... --as PERSON`")),
        (b, a) => Ok(a.or(b)),
    }
}

pub fn run(cli: Cli) -> Result<u8, CliError> {
    crate::progress::configure(cli.quiet, cli.json());
    let dir = cli.dir.as_deref();
    let before = cli.as_.as_deref();
    crate::store::set_reinit(cli.reinit);
    // `init` writes the file `$HOTFIX_CONFIG` names; the demo and the sample
    // service run on their own sample setup and read no config; `serve`
    // resolves the name against `-C` itself and refuses a missing one there.
    if !matches!(
        cli.cmd,
        Cmd::Init { .. }
            | Cmd::Demo { .. }
            | Cmd::SampleService { .. }
            | Cmd::Serve(_)
            | Cmd::Completions { .. }
            | Cmd::Man { .. }
    ) {
        app::refuse_missing_named_config()?;
    }
    match cli.cmd {
        Cmd::Init { force } => {
            let git = app::open_git(dir)?;
            let path = app::config_path(&git);
            if path.exists() && !force {
                return Err(CliError::failed(format!(
                    "{} exists already; `hotfix init --force` overwrites it",
                    path.display()
                )));
            }
            if !force {
                app::refuse_init_over_team_config(&git)?;
            }
            std::fs::write(&path, INIT_TEMPLATE)
                .map_err(|e| CliError::failed(format!("cannot write {}: {e}", path.display())))?;
            println!("wrote {}", path.display());
            println!(
                "next: add your tech leads and reviewers under [team], configure [deploy], list the affected areas under [[area_checks]] (high severity tests them), then commit it and push it to main (git push origin main)"
            );
            Ok(OK)
        }
        Cmd::Start(a) => {
            // Severity first: a medium incident creates nothing at all.
            let severity: Severity = a.severity.parse().map_err(|e| match e {
                SeverityError::UseNormalRelease(_) => CliError::refused(e.to_string()),
                SeverityError::Unknown(_) => CliError::usage(e.to_string()),
            })?;
            let incident = parse_id(&a.incident)?;
            let e = app::engine(dir, acting(before, a.act.as_.as_deref())?, true)?;
            let s = e.start(&StartArgs {
                name: a.name,
                severity,
                title: a.title,
                customer_facing: a.customer_facing,
                security: a.security,
                incident,
                reported_by: a.reported_by,
            })?;
            println!("{} started: {} ({})", s.id, s.branch, s.severity);
            print_next(&e, &s);
            Ok(OK)
        }
        Cmd::Triage(a) => {
            let as_ = acting(before, a.as_.as_deref())?.map(str::to_string);
            triage(dir, as_.as_deref(), a)
        }
        Cmd::Pr(r) => crate::pr::show(dir, before, r),
        Cmd::Status(r) => {
            let e = app::engine(dir, before, false)?;
            let Some(id) = resolve_for_reading(&e, &r)? else {
                return Ok(OK);
            };
            let s = e.load(id)?;
            let undelivered = e
                .store
                .undelivered()
                .map(|v| {
                    v.into_iter()
                        .filter(|i| i.message.incident == id)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            // The embedded platform's view: what runs, and crashed releases.
            let platform = if e.cfg.deploy.provider == "local" {
                let dir = e.state_dir.join("platform");
                hotfix_platform::is_running(&dir)
                    .then(|| {
                        hotfix_platform::Client::connect(&dir)
                            .and_then(|c| c.status())
                            .ok()
                    })
                    .flatten()
            } else {
                None
            };
            if r.json {
                let mut v = render::status_value(&e, &s, &undelivered);
                if let Some(p) = &platform {
                    v["platform"] = serde_json::to_value(p).unwrap_or_default();
                }
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print!("{}", render::status_text(&e, &s, &undelivered));
                if let Some(p) = &platform {
                    print!("\n{}", render::platform_text(p));
                }
            }
            Ok(OK)
        }
        Cmd::Push(a) => {
            let impact = impact_text(&a)?;
            let e = app::engine(dir, acting(before, a.act.as_.as_deref())?, true)?;
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
        Cmd::Approve {
            id,
            withdraw,
            reason,
            act,
        } => {
            let id: IncidentId = id
                .parse()
                .map_err(|e: hotfix_core::id::BadIncidentId| CliError::usage(e.to_string()))?;
            let e = app::engine(dir, acting(before, act.as_.as_deref())?, true)?;
            // An id that names no incident is the same mistake everywhere.
            let id = e.resolve(Some(id))?;
            let who = e.actor.clone();
            let (s, _) = if withdraw {
                e.withdraw(id, &who, reason.as_deref().unwrap_or(""), "cli")?
            } else {
                e.approve(id, &who, "cli")?
            };
            print_next(&e, &s);
            Ok(OK)
        }
        Cmd::Ship {
            id,
            allow_wide,
            reason,
            backport,
            act,
        } => {
            let e = app::engine(dir, acting(before, act.as_.as_deref())?, true)?;
            let id = e.resolve(parse_id(&id)?)?;
            let wide = if allow_wide {
                Some(reason.as_deref().unwrap_or(""))
            } else {
                None
            };
            let s = e.ship(id, wide, backport || e.cfg.git.backport_on_ship)?;
            println!(
                "{} shipped: {} is live and healthy",
                s.id,
                s.merge_sha.as_deref().map(short).unwrap_or("")
            );
            print_next(&e, &s);
            Ok(OK)
        }
        Cmd::Backport {
            id,
            r#continue,
            abort,
            act,
        } => {
            let e = app::engine(dir, acting(before, act.as_.as_deref())?, true)?;
            let id = e.resolve(parse_id(&id)?)?;
            let mode = if r#continue {
                BackportMode::Continue
            } else if abort {
                BackportMode::Abort
            } else {
                BackportMode::Start
            };
            let s = e.backport(id, mode)?;
            if s.backport_sha.is_some() {
                println!("{} backported to {}", s.id, e.cfg.git.develop);
            }
            print_next(&e, &s);
            Ok(OK)
        }
        Cmd::Rollback {
            id,
            reason,
            force,
            act,
        } => {
            let e = app::engine(dir, acting(before, act.as_.as_deref())?, true)?;
            let id = e.resolve(parse_id(&id)?)?;
            let s = e.rollback(id, &reason, force)?;
            println!("{} rolled back", s.id);
            print_next(&e, &s);
            Ok(OK)
        }
        Cmd::Checklist {
            id,
            done,
            json,
            as_,
        } => {
            let e = app::engine(dir, acting(before, as_.as_deref())?, !done.is_empty())?;
            let id = e.resolve(parse_id(&id)?)?;
            let s = if done.is_empty() {
                e.load(id)?
            } else {
                e.tick(id, &done)?
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&checklist(&s)).unwrap_or_default()
                );
            } else {
                print!("{}", render::checklist_text(&s));
                print_next(&e, &s);
            }
            Ok(OK)
        }
        Cmd::Postmortem(a) => {
            let e = app::engine(dir, acting(before, a.act.as_.as_deref())?, true)?;
            let id = e.resolve(parse_id(&a.id)?)?;
            let (s, written) = e.postmortem(id)?;
            for w in written {
                println!("wrote {w}");
            }
            println!("{}", hotfix_engine::text::postmortem_hint(&s, &e.cfg));
            if let Some((_, due)) = &s.postmortem {
                println!("post-mortem due by {}", due.strftime("%Y-%m-%d %H:%M UTC"));
            }
            print_next(&e, &s);
            Ok(OK)
        }
        Cmd::Close(a) => {
            let e = app::engine(dir, acting(before, a.act.as_.as_deref())?, true)?;
            let id = e.resolve(parse_id(&a.id)?)?;
            let s = e.close(id)?;
            println!("{} closed", s.id);
            Ok(OK)
        }
        Cmd::Platform { action } => {
            crate::platform_cmd::run(dir, before, action.unwrap_or(PlatformCmd::Run))
        }
        Cmd::Serve(a) => crate::serve::run(dir, a),
        Cmd::Backup(a) => crate::store::backup(dir, a),
        Cmd::SampleService { port } => {
            let cwd = std::env::current_dir().map_err(|e| CliError::failed(e.to_string()))?;
            hotfix_platform::sample_service::serve(port, &cwd)
                .map_err(|e| CliError::failed(e.to_string()))?;
            Ok(OK)
        }
        Cmd::Demo {
            dir: keep,
            with_rollback,
        } => crate::demo::run(keep, with_rollback),
        Cmd::Completions { shell } => {
            crate::manual::completions(shell);
            Ok(OK)
        }
        Cmd::Man { verb, dir: None } => crate::manual::man(verb.as_deref()),
        Cmd::Man { dir: Some(d), .. } => crate::manual::man_pages(&d),
        Cmd::Log { json } => {
            let e = app::engine(dir, before, false)?;
            let all = e.all()?;
            if json {
                println!("{}", render::log_json(&e, &all));
            } else {
                print!("{}", render::log_text(&e, &all));
            }
            Ok(OK)
        }
    }
}

/// `hotfix triage`: the list, or one decision about one incident.
fn triage(dir: Option<&std::path::Path>, as_: Option<&str>, a: TriageArgs) -> Result<u8, CliError> {
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
        Some(TriageCmd::Confirm {
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
        Some(TriageCmd::Decline { reason, of, note }) => Decision::Decline {
            reason: reason.parse().map_err(CliError::usage)?,
            duplicate_of: of.as_deref().map(parse_other).transpose()?,
            note: note.unwrap_or_default(),
        },
        Some(TriageCmd::Merge { into }) => Decision::Merge {
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

fn short(s: &str) -> &str {
    s.get(..10).unwrap_or(s)
}
