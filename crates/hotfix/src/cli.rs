//! The command-line interface, generated from these definitions.

use clap::{Args, Parser, Subcommand};

/// Runs your team's emergency hotfix workflow end to end, with every
/// guard-rail of the process enforced and a clear record afterwards.
#[derive(Debug, Parser)]
#[command(
    name = "hotfix",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Act as this person (default: $HOTFIX_USER, else `git config user.email`).
    #[arg(long = "as", global = true, value_name = "PERSON")]
    pub as_: Option<String>,
    /// Run as if started in this directory.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
    /// Only if the incident store's file is empty or holds no incident log
    /// (an error says so): move it aside to NAME.broken-<time> (kept) and
    /// start a new, empty log. A healthy store is left as it is.
    #[arg(long, global = true)]
    pub reinit: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Write hotfix.toml at the repository root (defaults = the process document).
    Init {
        /// Overwrite an existing hotfix.toml.
        #[arg(long)]
        force: bool,
    },
    /// Declare an incident and cut hotfix/NAME from the remote's current main.
    Start(StartArgs),
    /// Triage a reported incident (tech leads): confirm it, decline it or merge it.
    ///
    /// Without arguments: the incidents waiting for triage.
    Triage(TriageArgs),
    /// State, next action, timeline against targets, checklist.
    Status(ReadArgs),
    /// Push the branch, open the [HOTFIX] PR, deploy the preview, run the smoke checks.
    Push(IdArg),
    /// Record an approval of the current head (role-checked; nobody approves their own hotfix).
    Approve {
        /// The incident (HF-N).
        id: String,
        /// Take your approval of the current head back instead (it stops counting; recorded).
        #[arg(long, requires = "reason")]
        withdraw: bool,
        /// Why (with --withdraw).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Check the guards, merge to main, deploy production, watch health, roll back if worse.
    Ship {
        id: Option<String>,
        /// Ship a diff wider than the policy allows (recorded as an anti-pattern).
        #[arg(long, requires = "reason")]
        allow_wide: bool,
        /// Why (with --allow-wide).
        #[arg(long)]
        reason: Option<String>,
        /// Also merge into develop, in the same atomic push as main (as git-flow's
        /// finish does); falls back to a separate backport if develop conflicts.
        #[arg(long)]
        backport: bool,
    },
    /// Merge the hotfix into develop ("Don't forget this step!").
    Backport {
        id: Option<String>,
        /// Finish after resolving conflicts in the worktree.
        #[arg(long, conflicts_with = "abort")]
        r#continue: bool,
        /// Give up the backport in progress and leave everything as before.
        #[arg(long)]
        abort: bool,
    },
    /// Roll production back to the previous deployment and revert the merge.
    Rollback {
        id: Option<String>,
        /// Why (kept in the incident log and the post-mortem).
        #[arg(long)]
        reason: String,
        /// Roll back even though the incident is closed or later incidents
        /// shipped on top of it (their fixes are undone too); recorded.
        #[arg(long)]
        force: bool,
    },
    /// The post-hotfix checklist; tick items with --done KEY.
    Checklist {
        id: Option<String>,
        /// Items to tick (keys as listed by `hotfix checklist`).
        #[arg(long, num_args = 1..)]
        done: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Write the post-mortem draft and a calendar invite, due within 24 h.
    Postmortem(IdArg),
    /// Close the incident once the checklist is complete.
    Close(IdArg),
    /// The incident log: every incident with its state and events.
    Log {
        #[arg(long)]
        json: bool,
    },
    /// Copy the incident log to a new file, consistently, while others keep writing.
    Backup(BackupArgs),
    /// The embedded hosting platform (`[deploy] provider = "local"`): previews,
    /// production behind a stable port, instant rollback. Foreground by default.
    Platform {
        #[command(subcommand)]
        action: Option<PlatformCmd>,
    },
    /// Play a whole incident, start to close, on a sample service (no setup, no network).
    Demo {
        /// Keep the repo, its origin and the incident log in DIR (default: a temp dir).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Also play a bad fix that production health catches, with the automatic rollback.
        #[arg(long)]
        with_rollback: bool,
    },
    /// Run the team server (API, alerts, webhooks, dashboard, status page); `serve token` manages tokens.
    ///
    /// The JSON API with role tokens, alert and webhook intake, the Slack
    /// command, the live dashboard, the public status page and metrics. It
    /// needs no git repository. The CLI uses it when HOTFIX_SERVER (or
    /// `[server] url`) and HOTFIX_TOKEN are set.
    Serve(ServeArgs),
    /// The demo's sample service: routes from service/routes.toml in the current directory.
    #[command(hide = true)]
    SampleService {
        #[arg(long, env = "PORT")]
        port: u16,
    },
}

#[derive(Debug, Subcommand)]
pub enum PlatformCmd {
    /// Run in the foreground (the default).
    Run,
    /// Run in the background (pid file and log under .git/hotfix/platform/).
    Start,
    /// Stop the background platform and every process it started.
    Stop,
    /// What runs where: production, the warm previous release, previews, crashes.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The hotfix name; the branch becomes hotfix/NAME.
    pub name: String,
    /// critical or high (medium/low: use the normal release).
    #[arg(long)]
    pub severity: String,
    /// One line on what broke (default: from the name).
    #[arg(long)]
    pub title: Option<String>,
    /// Customers see it: the status page must be updated.
    #[arg(long)]
    pub customer_facing: bool,
    /// A security vulnerability: no details in PR, commits or messages.
    #[arg(long)]
    pub security: bool,
    /// Take this reported incident (once confirmed at triage), or start a
    /// new attempt for this rolled-back one.
    #[arg(long, value_name = "HF-N")]
    pub incident: Option<String>,
    /// Who reported it, when not you (a customer, the support desk): they
    /// are named when the fix is live, to verify it with them.
    #[arg(long, value_name = "WHO")]
    pub reported_by: Option<String>,
}

#[derive(Debug, Args)]
pub struct TriageArgs {
    /// The incident (HF-N); without it, the incidents waiting for triage.
    pub id: Option<String>,
    #[command(subcommand)]
    pub action: Option<TriageCmd>,
    /// The list as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TriageCmd {
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

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The copy to write: a new file (never overwritten), created 0600.
    pub path: std::path::PathBuf,
    /// The store to copy, `sqlite:PATH` (default: $HOTFIX_DATABASE_URL, else
    /// this repository's .git/hotfix/hotfix.db; a team server's is
    /// sqlite:<data-dir>/hotfix-server.db). PostgreSQL: use pg_dump.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// The incident (HF-N); default: the one of the current hotfix/* branch.
    pub id: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    pub id: Option<String>,
    /// Machine-readable output (a stable, documented shape).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen (default: `[server] listen`, else 127.0.0.1:8080; port 0 picks a free one).
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
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (as `list` shows it).
    Revoke { id: i64 },
}
