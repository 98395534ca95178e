//! The command-line interface, generated from these definitions.
//!
//! Every argument and flag has a description (a unit test below walks the
//! whole tree and fails on one without), because `--help`, the completions
//! and the man page are all generated from here: a flag without a line of
//! help is a flag nobody at 3 a.m. knows the meaning of.

use clap::{Args, Parser, Subcommand};

/// Runs your team's emergency hotfix workflow end to end, with every
/// guard-rail of the process enforced and a clear record afterwards.
#[derive(Debug, Parser)]
#[command(
    name = "hotfix",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = "Exit codes: 0 ok, 1 refused or failed, 2 bad usage or configuration, \
3 waiting on something outside. `hotfix man` prints the manual."
)]
pub struct Cli {
    /// Act as this person; kept before the verb for compatibility, hidden
    /// because it belongs after the verbs that act as someone.
    #[arg(long = "as", value_name = "PERSON", hide = true)]
    pub as_: Option<String>,
    /// Run as if started in this directory.
    #[arg(short = 'C', global = true, value_name = "DIR", help_heading = GLOBAL)]
    pub dir: Option<std::path::PathBuf>,
    /// Only if the incident store's file is empty or holds no incident log
    /// (an error says so): move it aside to NAME.broken-<time> (kept) and
    /// start a new, empty log. A healthy store is left as it is.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub reinit: bool,
    /// Only warnings and errors on stderr: no progress lines, no spinner
    /// (long steps show only when they fail).
    #[arg(long, short = 'q', global = true, help_heading = GLOBAL)]
    pub quiet: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Where every verb's `--help` lists the flags that every verb takes, apart
/// from the verb's own.
const GLOBAL: &str = "Global options";

/// `--as PERSON`, on the verbs that act as someone (the acting person is
/// recorded on every event they append and checked against the roles).
#[derive(Debug, Args, Clone, Default)]
pub struct ActAs {
    /// Act as this person (default: $HOTFIX_USER, else `git config user.email`).
    #[arg(long = "as", value_name = "PERSON")]
    pub as_: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Write hotfix.toml at the repository root (defaults = the process document).
    Init(crate::commands::init::Args),
    /// Declare an incident and cut hotfix/NAME from the remote's current main.
    #[command(after_help = START_EXAMPLES)]
    Start(crate::commands::start::Args),
    /// Triage a reported incident (tech leads): confirm it, decline it or merge it.
    ///
    /// Without arguments: the incidents waiting for triage.
    Triage(crate::commands::triage::Args),
    /// State, next action, timeline against targets, checklist.
    ///
    /// Without an id: the incident of the current hotfix/* branch; elsewhere,
    /// "no open incident" (exit 0) when there is none, else name one.
    Status(ReadArgs),
    /// Push the branch, open the [HOTFIX] PR, deploy the preview, run the smoke checks.
    #[command(after_help = PUSH_EXAMPLES)]
    Push(crate::commands::push::Args),
    /// The incident's pull request: number, title, state, URL, head and its
    /// impact assessment (the PR body).
    Pr(ReadArgs),
    /// Record an approval of the current head (role-checked; nobody approves their own hotfix).
    Approve(crate::commands::approve::Args),
    /// Check the guards, merge to main, deploy production, watch health, roll back if worse.
    #[command(after_help = SHIP_EXAMPLES)]
    Ship(crate::commands::ship::Args),
    /// Merge the hotfix into develop ("Don't forget this step!").
    Backport(crate::commands::backport::Args),
    /// Roll production back to the previous deployment and revert the merge.
    Rollback(crate::commands::rollback::Args),
    /// The post-hotfix checklist; tick items with --done KEY.
    Checklist(crate::commands::checklist::Args),
    /// Write the post-mortem draft and a calendar invite, due within 24 h.
    Postmortem(IdArg),
    /// Close the incident once the checklist is complete.
    Close(IdArg),
    /// The incident log: every incident with its state and events.
    Log(crate::commands::log::Args),
    /// Copy the incident log to a new file, consistently, while others keep writing.
    Backup(crate::commands::backup::Args),
    /// The embedded hosting platform (`[deploy] provider = "local"`): previews,
    /// production behind a stable port, instant rollback. Foreground by default.
    Platform {
        #[command(subcommand)]
        action: Option<PlatformCmd>,
    },
    /// Play a whole incident, start to close, on a sample service (no setup, no network).
    Demo(crate::commands::demo::Args),
    /// Run the team server (API, alerts, webhooks, dashboard, status page); `serve token` manages tokens.
    ///
    /// The JSON API with role tokens, alert and webhook intake, the Slack
    /// command, the live dashboard, the public status page and metrics. It
    /// needs no git repository. The CLI uses it when HOTFIX_SERVER (or
    /// `[server] url`) and HOTFIX_TOKEN are set.
    Serve(ServeArgs),
    /// Print a shell completion script on stdout.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions(crate::commands::completions::Args),
    /// Print the manual page (roff) on stdout: `hotfix man | man -l -`.
    #[command(after_help = MAN_EXAMPLES)]
    Man(crate::commands::man::Args),
    /// The demo's sample service: routes from service/routes.toml in the current directory.
    #[command(hide = true)]
    SampleService(crate::commands::sample_service::Args),
}

const START_EXAMPLES: &str = "Examples:
  hotfix start pdf-crash --severity critical --title \"PDF export crashes\"
  hotfix start login-loop --severity high --customer-facing
  hotfix start token-leak --severity critical --security
  hotfix start pdf-crash --incident HF-7 --severity high   # take a confirmed report";

const PUSH_EXAMPLES: &str = "Examples:
  hotfix push                                  # the incident of the current hotfix/* branch
  hotfix push HF-3
  hotfix push --impact-file impact.md          # your own impact assessment as the PR body
  hotfix push --impact \"Only EU tenants; no data loss; rollback is instant.\"";

const SHIP_EXAMPLES: &str = "Examples:
  hotfix ship                                  # guards, merge, deploy, health watch
  hotfix ship HF-3 --backport                  # and merge develop in the same push
  hotfix ship --allow-wide --reason \"generated lockfile\"
A refusal (exit 1) lists every reason, in the order to fix them; `hotfix status` shows the next step.";

const COMPLETIONS_EXAMPLES: &str = "Install:
  bash: hotfix completions bash > ~/.local/share/bash-completion/completions/hotfix
  zsh:  hotfix completions zsh > ~/.zfunc/_hotfix    # with fpath+=(~/.zfunc) before compinit
  fish: hotfix completions fish > ~/.config/fish/completions/hotfix.fish";

const MAN_EXAMPLES: &str = "Install:
  hotfix man --dir ~/.local/share/man/man1      # then `man hotfix`, `man hotfix-ship`
  hotfix man ship | man -l -                    # read one page without installing";

#[derive(Debug, Subcommand)]
pub enum PlatformCmd {
    /// Run in the foreground (the default).
    Run,
    /// Run in the background (pid file and log under .git/hotfix/platform/).
    Start,
    /// Stop the background platform and every process it started.
    Stop,
    /// Put a commit into production by hand (e.g. main, before the first hotfix).
    ///
    /// Built, started and health-checked exactly like a hotfix's deploy:
    /// production switches only once the new release answers, and stays
    /// where it was if it does not. Recorded in the platform's history (who,
    /// when, REF, sha, "manual"), shown by `hotfix platform status`. Starts
    /// the platform if it is not running. Refuses to take a shipped hotfix
    /// out of production (REF does not contain what production runs)
    /// unless --force.
    Deploy {
        /// What to deploy: a branch, tag or sha (default: the remote's main,
        /// `origin/main` per `[git]`, fetched first).
        #[arg(value_name = "REF")]
        reference: Option<String>,
        /// Deploy even if production runs a hotfix that REF does not contain.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        act: ActAs,
    },
    /// What runs where: production, the warm previous release, previews, crashes.
    ///
    /// Exits 3 when the platform is not running.
    Status {
        /// What runs where as JSON (`{"running": false}` when it is not running).
        #[arg(long)]
        json: bool,
    },
}

/// An incident to act on, as someone.
#[derive(Debug, Args)]
pub struct IdArg {
    /// The incident (HF-N); default: the one of the current hotfix/* branch.
    pub id: Option<String>,
    #[command(flatten)]
    pub act: ActAs,
}

/// An incident to read; nobody acts.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The incident (HF-N); default: the one of the current hotfix/* branch.
    pub id: Option<String>,
    /// Machine-readable output (a stable, documented shape).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen (default: `[server] listen`, else 127.0.0.1:8788; port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// The configuration (default: $HOTFIX_CONFIG, else ./hotfix.toml; missing: defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub store: ServerStoreArgs,
    #[command(subcommand)]
    pub action: Option<ServeCmd>,
}

/// Where the server keeps its state; given to `serve` or to `serve token ...`.
#[derive(Debug, Args, Clone, Default)]
pub struct ServerStoreArgs {
    /// `sqlite:PATH` or `postgres://...` (default: $HOTFIX_DATABASE_URL, else
    /// sqlite:<data-dir>/hotfix-server.db).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Where the server writes its files (default: $HOTFIX_DATA_DIR, else ./hotfix-data).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<std::path::PathBuf>,
    /// PostgreSQL: at most N connections at once, 1 for a single connection
    /// (default: $HOTFIX_DATABASE_POOL_SIZE, else 8).
    #[arg(long, global = true, value_name = "N")]
    pub db_pool: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum ServeCmd {
    /// The server's API tokens, written straight to its store (no server needed).
    Token {
        #[command(subcommand)]
        action: TokenCmd,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a token and print it once on stdout (only the token, for scripts).
    Create {
        /// The team identity it acts as, as in `[team]` (e.g. lead@example.com).
        #[arg(long, value_name = "ID")]
        user: String,
        /// developer, tech_lead or admin; or intake, for a monitoring tool
        /// (Alertmanager): it may only post alerts.
        #[arg(long)]
        role: String,
    },
    /// Every token: id, user, role, created, revoked (never the tokens themselves).
    List {
        /// The tokens as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (as `list` shows it).
    Revoke {
        /// The token's id (a number, as `list` shows it).
        id: i64,
    },
}

impl Cli {
    /// The verb's own `--json`, where it has one: machine-readable output
    /// wants no progress decoration mixed into the terminal either.
    pub fn json(&self) -> bool {
        match &self.cmd {
            Cmd::Status(r) | Cmd::Pr(r) => r.json,
            Cmd::Triage(t) => t.json,
            Cmd::Checklist(c) => c.json,
            Cmd::Log(l) => l.json,
            Cmd::Platform {
                action: Some(PlatformCmd::Status { json }),
            } => *json,
            Cmd::Serve(ServeArgs {
                action:
                    Some(ServeCmd::Token {
                        action: TokenCmd::List { json },
                    }),
                ..
            }) => *json,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every argument, flag and verb of every (sub)command, hidden ones
    /// included, as `path: --flag` for the ones without a description.
    fn undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        if cmd.get_about().is_none() && path != "hotfix" {
            out.push(format!("{path}: the verb itself"));
        }
        for a in cmd.get_arguments() {
            if a.get_help().is_none() && a.get_long_help().is_none() {
                out.push(format!("{path}: {}", a.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            undocumented(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_argument_and_flag_has_a_description() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = vec![];
        undocumented(&cmd, "hotfix", &mut missing);
        assert!(
            missing.is_empty(),
            "without help text:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn as_is_where_someone_acts_and_nowhere_else() {
        let mut cmd = Cli::command();
        cmd.build();
        let visible_as = |c: &clap::Command| {
            c.get_arguments()
                .any(|a| a.get_long() == Some("as") && !a.is_hide_set())
        };
        for verb in [
            "start",
            "triage",
            "push",
            "approve",
            "ship",
            "backport",
            "rollback",
            "checklist",
            "postmortem",
            "close",
        ] {
            let c = cmd.find_subcommand(verb).expect(verb);
            assert!(visible_as(c), "`hotfix {verb}` should take --as");
        }
        for verb in [
            "init",
            "status",
            "pr",
            "log",
            "backup",
            "demo",
            "serve",
            "completions",
            "man",
        ] {
            let c = cmd.find_subcommand(verb).expect(verb);
            assert!(!visible_as(c), "`hotfix {verb}` should not offer --as");
        }
        assert!(!visible_as(&cmd), "a global --as would show on every verb");
    }

    #[test]
    fn as_parses_before_and_after_the_verb() {
        let after =
            Cli::try_parse_from(["hotfix", "approve", "HF-1", "--as", "a@x"]).expect("after");
        let Cmd::Approve(a) = after.cmd else {
            panic!("approve")
        };
        assert_eq!(a.act.as_.as_deref(), Some("a@x"));
        let before =
            Cli::try_parse_from(["hotfix", "--as", "b@x", "approve", "HF-1"]).expect("before");
        assert_eq!(before.as_.as_deref(), Some("b@x"));
        let t = Cli::try_parse_from([
            "hotfix",
            "triage",
            "HF-7",
            "confirm",
            "--severity",
            "high",
            "--as",
            "c@x",
        ])
        .expect("triage");
        let Cmd::Triage(t) = t.cmd else {
            panic!("triage")
        };
        assert_eq!(t.as_.as_deref(), Some("c@x"));
        assert!(Cli::try_parse_from(["hotfix", "status", "--as", "d@x"]).is_err());
    }
}
