//! The engine: one idempotent step at a time.
//!
//! A step (1) folds the incident from the store, (2) checks the guards of
//! `hotfix_core`, (3) looks at the real world (is it already pushed, merged,
//! deployed, backported?), (4) performs what is missing through a provider and
//! (5) appends the event with a compare-and-set on the incident's version,
//! together with its notifications (the outbox). A crash at any point leaves a
//! state that the same command, run again, completes.
//!
//! The engine never prints: it reports progress through [`Ui`].

mod approve;
pub mod backport;
mod build;

mod closeout;
pub mod deliver;
mod push;
mod rollback;
mod ship;
mod start;
pub mod text;
pub mod triage;
pub mod watch;

use std::path::{Path, PathBuf};

use hotfix_core::admit::{Actor, Door};
use hotfix_core::config::Config;
use hotfix_core::event::EventKind;
use hotfix_core::guards::Refusal;
use hotfix_core::id::IncidentId;
use hotfix_core::ledger::{AppendError, Ledger};
use hotfix_core::provider::{
    DeployError, Deployer, Forge, ForgeError, Notifier, Store, StoreError,
};
use hotfix_core::state::{FoldError, IncidentState};
use hotfix_git::{Git, GitError};
use jiff::Timestamp;

pub use start::StartArgs;

/// Why a command did not do what was asked. Each kind maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A guard said no (exit 1). Every reason is listed.
    #[error("{}", render_refusals(.0))]
    Refused(Vec<Refusal>),
    /// A step was attempted and failed (exit 1).
    #[error("{0}")]
    Failed(String),
    /// Bad usage or configuration (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Waiting on something outside (exit 3).
    #[error("{0}")]
    Waiting(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Fold(#[from] FoldError),
}

impl EngineError {
    /// The process exit code of DESIGN.md; the CLI's table is
    /// `crates/hotfix/src/exit.rs` (pinned by tests/exit_codes.rs).
    pub fn exit_code(&self) -> i32 {
        match self {
            e if e.is_usage() => 2,
            EngineError::Waiting(_) => 3,
            _ => 1,
        }
    }

    /// Is it about what was typed, so that the same command can never
    /// pass: bad usage, an id that names no incident, or a refusal of a
    /// value (an invalid name, a bad value, an unknown checklist key)?
    pub fn is_usage(&self) -> bool {
        const INPUT: &[&str] = &["invalid_name", "bad_value", "bad_checklist_key"];
        match self {
            EngineError::Usage(_) | EngineError::Store(StoreError::NotFound(_)) => true,
            EngineError::Refused(r) => r.iter().any(|r| INPUT.contains(&r.code)),
            _ => false,
        }
    }

    pub fn refused(
        code: &'static str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> EngineError {
        EngineError::Refused(vec![Refusal {
            code,
            message: message.into(),
            hint: hint.into(),
        }])
    }
}

fn render_refusals(r: &[Refusal]) -> String {
    if r.len() == 1 {
        return format!("{}\n  hint: {}", r[0].message, r[0].hint);
    }
    // Numbered: the guards list them in the order to fix them.
    let mut s = String::from("refused:");
    for (n, x) in r.iter().enumerate() {
        s.push_str(&format!(
            "\n  {}. {}\n     hint: {}",
            n + 1,
            x.message,
            x.hint
        ));
    }
    s
}

impl From<AppendError> for EngineError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Refused(r) => EngineError::Refused(r),
            AppendError::Store(e) => EngineError::Store(e),
            AppendError::Fold(e) => EngineError::Fold(e),
            e @ AppendError::KeptChanging(_) => EngineError::Failed(e.to_string()),
        }
    }
}

impl From<ForgeError> for EngineError {
    fn from(e: ForgeError) -> Self {
        EngineError::Failed(hotfix_providers::redact::redact(&e.to_string()))
    }
}

impl From<DeployError> for EngineError {
    fn from(e: DeployError) -> Self {
        match e {
            DeployError::NotConfigured(_) => EngineError::Usage(e.to_string()),
            other => EngineError::Failed(hotfix_providers::redact::redact(&other.to_string())),
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Progress reporting; the binary prints, tests collect.
pub trait Ui {
    /// A step done or under way.
    fn info(&self, line: &str);
    /// Something the person should know but that does not stop the step.
    fn warn(&self, line: &str);
    /// A step that may take minutes (a build, a deploy wait, a health
    /// watch) begins: `what` says what it does, `log` where its output goes.
    ///
    /// Why a handle: a person watching a silent terminal for two minutes
    /// cannot tell a slow build from a hung one; the handle lets a terminal
    /// Ui show the step as alive (a spinner, "still …" lines) until the
    /// engine ends it. The default shows the start and the end as plain
    /// [`info`](Ui::info) / [`warn`](Ui::warn) lines, so a Ui that only
    /// collects lines (tests, the team server) needs nothing more.
    fn step(&self, what: &str, log: Option<&Path>) -> Box<dyn Step + '_> {
        self.info(&match log {
            Some(l) => format!("{what} (log: {})", l.display()),
            None => what.to_string(),
        });
        Box::new(LineStep {
            ui: self,
            log: log.map(Path::to_path_buf),
        })
    }
}

/// A long step under way, shown by its [`Ui`] until ended. Dropping it
/// without [`done`](Step::done) or [`fail`](Step::fail) (an early return,
/// a panic) ends its display too, as failed.
pub trait Step {
    /// The step succeeded; `line` says what it achieved.
    fn done(self: Box<Self>, line: &str);
    /// The step failed; `line` says what failed (the error itself follows
    /// as the command's error or a warning).
    fn fail(self: Box<Self>, line: &str);
}

/// The default [`Step`]: its end as one more line.
struct LineStep<'a, U: Ui + ?Sized> {
    ui: &'a U,
    log: Option<PathBuf>,
}

impl<U: Ui + ?Sized> Step for LineStep<'_, U> {
    fn done(self: Box<Self>, line: &str) {
        self.ui.info(line);
    }
    fn fail(self: Box<Self>, line: &str) {
        self.ui.warn(&match &self.log {
            Some(l) => format!("{line} (log: {})", l.display()),
            None => line.to_string(),
        });
    }
}

/// The time source: fixed in tests (`HOTFIX_NOW`), the system clock otherwise.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    Fixed(Timestamp),
}

impl Clock {
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Fixed(t) => *t,
        }
    }
}

/// Everything a step needs.
pub struct Engine {
    pub git: Git,
    pub cfg: Config,
    pub store: Box<dyn Store>,
    pub forge: Box<dyn Forge>,
    pub deployer: Box<dyn Deployer>,
    pub notifiers: Vec<Box<dyn Notifier>>,
    pub clock: Clock,
    /// Who is acting (`--as`, `HOTFIX_USER`, `git config user.email`).
    pub actor: String,
    /// `<git-common-dir>/hotfix`: database, logs, worktrees.
    pub state_dir: PathBuf,
    /// Names of failpoints at which to die (crash-safety tests).
    pub failpoints: Vec<String>,
    pub ui: Box<dyn Ui>,
    /// How production's health is probed (HTTP; scripted in engine tests).
    pub probe: Box<dyn hotfix_providers::health::Probe>,
}

impl Engine {
    /// Dies here if the failpoint is armed: simulates a kill -9 between two
    /// side effects. Nothing is flushed or cleaned up, on purpose.
    pub fn failpoint(&self, name: &str) {
        if self.failpoints.iter().any(|f| f == name) {
            eprintln!("failpoint {name}: exiting abruptly");
            std::process::exit(137);
        }
    }

    /// The incident as it stands.
    pub fn load(&self, id: IncidentId) -> Result<IncidentState> {
        Ok(IncidentState::fold(&self.store.events(id)?)?)
    }

    /// Every incident.
    pub fn all(&self) -> Result<Vec<IncidentState>> {
        let mut v = vec![];
        for id in self.store.incidents()? {
            v.push(self.load(id)?);
        }
        Ok(v)
    }

    /// Every open incident.
    pub fn open(&self) -> Result<Vec<IncidentState>> {
        let mut v = vec![];
        for id in self.store.open_incidents()? {
            let s = self.load(id)?;
            if !s.is_closed() {
                v.push(s);
            }
        }
        Ok(v)
    }

    /// The newest incident of `branch`, open or (`open_only` false) not.
    /// Logs are read newest first and only until one matches: with a remote
    /// store each is a request, and the match is nearly always the newest.
    pub(crate) fn newest_on_branch(
        &self,
        branch: &str,
        open_only: bool,
    ) -> Result<Option<IncidentState>> {
        let ids = if open_only {
            self.store.open_incidents()?
        } else {
            self.store.incidents()?
        };
        for id in ids.into_iter().rev() {
            let s = self.load(id)?;
            if s.branch == branch && !(open_only && s.is_closed()) {
                return Ok(Some(s));
            }
        }
        Ok(None)
    }

    /// `ID`, or the incident of the current `hotfix/*` branch.
    pub fn resolve(&self, id: Option<IncidentId>) -> Result<IncidentId> {
        if let Some(id) = id {
            self.store.events(id).map_err(|e| match e {
                StoreError::NotFound(_) => {
                    EngineError::Usage(format!("no incident {id}\nhint: `hotfix log` lists them"))
                }
                e => e.into(),
            })?;
            return Ok(id);
        }
        let branch = self.git.current_branch()?;
        let prefix = &self.cfg.git.prefix;
        match branch {
            Some(b) if b.starts_with(prefix.as_str()) => {
                // The open incident of this branch; a closed one only when
                // none is open (reading an old incident's log).
                let found = match self.newest_on_branch(&b, true)? {
                    Some(s) => Some(s),
                    None => self.newest_on_branch(&b, false)?,
                };
                found.map(|s| s.id).ok_or_else(|| {
                    EngineError::Usage(format!(
                        "branch {b} belongs to no incident; name one (HF-N) or start one with `hotfix start`"
                    ))
                })
            }
            other => {
                let open: Vec<String> = self
                    .open()?
                    .into_iter()
                    .map(|s| format!("{} ({})", s.id, s.branch))
                    .collect();
                let on = other
                    .map(|b| format!("on {b}"))
                    .unwrap_or_else(|| "on a detached HEAD".into());
                Err(EngineError::Usage(format!(
                    "no incident given and you are {on}, not a {prefix}* branch; name one: {}",
                    if open.is_empty() {
                        "there are no open incidents".to_string()
                    } else {
                        open.join(", ")
                    }
                )))
            }
        }
    }

    /// Who acts: the person running the command, through the CLI's door.
    pub fn actor(&self) -> Actor<'_> {
        Actor::new(&self.actor, Door::Cli)
    }

    /// The next step of `s` as a command for the person running this one:
    /// their own command, or whom to ask and what that person runs (no
    /// `--as` in remote mode, where the token says who acts).
    pub fn next_step(&self, s: &IncidentState) -> String {
        let viewer = hotfix_core::next::Viewer::new(Some(&self.actor), self.store.is_remote());
        hotfix_core::next::next_for(s, &self.cfg, viewer)
    }

    /// Runs `f` with the one log service (the rulebook in front of the store).
    pub(crate) fn with_ledger<T>(&self, f: impl FnOnce(&Ledger<'_>) -> T) -> T {
        let names: Vec<String> = self
            .notifiers
            .iter()
            .map(|n| n.name().to_string())
            .collect();
        f(&Ledger {
            store: &*self.store,
            cfg: &self.cfg,
            notifiers: &names,
        })
    }

    /// Appends events to an incident (compare-and-set on its version) after
    /// the rulebook admitted them, with their notifications, then delivers
    /// the outbox.
    pub fn append(&self, s: &IncidentState, kinds: Vec<EventKind>) -> Result<u64> {
        let now = self.clock.now();
        let v = self.with_ledger(|l| l.append(s, &self.actor(), now, &kinds, vec![]))?;
        self.deliver();
        Ok(v)
    }

    /// Appends after re-reading the incident, re-deciding when someone else
    /// appended in between. `decide` sees the fresh state and returns the
    /// events to append (none = nothing to do).
    pub fn append_fresh(
        &self,
        id: IncidentId,
        mut decide: impl FnMut(&IncidentState) -> Result<Vec<EventKind>>,
    ) -> Result<IncidentState> {
        let clock = self.clock;
        let s = self.with_ledger(|l| {
            l.append_fresh::<EngineError>(id, &self.actor(), &|| clock.now(), &mut |s| {
                Ok((decide(s)?, vec![]))
            })
        })?;
        self.deliver();
        Ok(s)
    }

    pub(crate) fn remote(&self) -> &str {
        &self.cfg.git.remote
    }

    pub(crate) fn tracking(&self, branch: &str) -> String {
        format!("refs/remotes/{}/{}", self.cfg.git.remote, branch)
    }

    pub(crate) fn fetch(&self) -> Result<()> {
        self.git
            .fetch(self.remote())
            .map_err(|e| self.fetch_failed(&e))
    }

    /// A failed fetch, with any credentials in git's message hidden.
    pub(crate) fn fetch_failed(&self, e: &GitError) -> EngineError {
        EngineError::Failed(format!(
            "cannot fetch from `{}`: {}",
            self.remote(),
            hotfix_providers::redact::redact(&e.to_string())
        ))
    }

    /// The context of a deploy of `sha`, with its tree (a preview keyed by
    /// tree can be found again by the production deploy of the same files).
    /// A production deploy adds the previewed build: [`Engine::production_ctx`].
    pub(crate) fn deploy_ctx(
        &self,
        s: &IncidentState,
        sha: &str,
    ) -> hotfix_core::provider::DeployCtx {
        hotfix_core::provider::DeployCtx {
            incident: s.id,
            sha: sha.to_string(),
            branch: s.branch.clone(),
            pr: s.pr,
            tree: self.tree_of(sha),
            previewed: None,
        }
    }
}

pub(crate) fn short(sha: &str) -> &str {
    sha.get(..10).unwrap_or(sha)
}
