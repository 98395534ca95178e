//! The seams to the outside world. Each trait has a local implementation that
//! is real software (SQLite, git, processes) and real ones for hosted services.
//! Errors are typed so the engine can tell "try again" from "refused".

use crate::team::{AdminGuard, ApiRole, InboxItem, InboxPut, InboxRecord, Revoke, TokenRecord};
use serde::{Deserialize, Serialize};

use crate::event::{Event, NewEvent};
use crate::id::IncidentId;
use crate::notify::Message;

// ---------------------------------------------------------------- store

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else appended first; re-read and decide again.
    #[error(
        "{incident} changed while this command ran (expected version {expected}, found {actual})"
    )]
    Conflict {
        incident: IncidentId,
        expected: u64,
        actual: u64,
    },
    #[error("no incident {0}")]
    NotFound(IncidentId),
    /// At most one open incident holds a hotfix name (its `declared` or
    /// latest `attempt_started` name, until it is `closed`): `declare` and
    /// `append` refuse to give it to another, writing nothing. `incident`
    /// is the holder.
    #[error("an open incident already uses the name `{name}`: {incident}")]
    NameInUse { name: String, incident: IncidentId },
    #[error("incident store: {0}")]
    Backend(String),
    #[error("incident store is corrupt: {0}")]
    Corrupt(String),
    /// The store's file exists but holds no incident log: it was emptied,
    /// overwritten, or is another program's database. It is never set up
    /// again silently, because that would replace a lost log with an empty
    /// one and nobody would notice until the record was needed.
    #[error(
        "incident store {} {problem}: restore it from a backup (README: \"Backing up and restoring the incident log\"), or run the command again with --reinit to move it aside and start a new, empty log",
        path.display()
    )]
    Unusable {
        path: std::path::PathBuf,
        problem: BrokenStore,
    },
    /// The store can be read but not written (its file or directory is not
    /// writable): reads work, writes are refused with this. Kept apart from
    /// [`StoreError::Corrupt`] so nobody deletes a healthy file over it.
    #[error("incident store {} is read-only: {reason}", path.display())]
    ReadOnly {
        path: std::path::PathBuf,
        reason: String,
    },
}

/// What is wrong with a store file that [`StoreError::Unusable`] refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokenStore {
    /// The file is there but has no bytes (`: > hotfix.db`).
    Empty,
    /// The file does not start like an SQLite database.
    NotADatabase,
    /// A valid SQLite database with none of hotfix's tables (its own
    /// tables, if any, are named).
    ForeignDatabase { tables: Vec<String> },
    /// The database file is gone but its write-ahead log is still there.
    OnlyWriteAheadLog,
}

impl std::fmt::Display for BrokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BrokenStore::Empty => f.write_str("is empty (0 bytes)"),
            BrokenStore::NotADatabase => f.write_str("is not an SQLite database"),
            BrokenStore::ForeignDatabase { tables } if tables.is_empty() => {
                f.write_str("is an SQLite database without hotfix's tables (an empty one)")
            }
            BrokenStore::ForeignDatabase { tables } => {
                let shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
                let more = if tables.len() > shown.len() { ", …" } else { "" };
                write!(
                    f,
                    "is an SQLite database without hotfix's tables (it has {}{more})",
                    shown.join(", ")
                )
            }
            BrokenStore::OnlyWriteAheadLog => f.write_str(
                "is missing but its write-ahead log (-wal) is still there, so it was moved or deleted",
            ),
        }
    }
}

/// A notification waiting in the outbox for one notifier.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    pub id: i64,
    pub notifier: String,
    pub message: Message,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// The append-only incident log plus the notification outbox, written in the
/// same transaction so a step and its notification can never part.
pub trait Store: Send + Sync {
    /// Allocates the next incident id and writes its `declared` event.
    /// `outbox` builds the notifications once the id is known.
    fn declare(
        &self,
        event: &NewEvent,
        outbox: &dyn Fn(IncidentId) -> Vec<(String, Message)>,
    ) -> Result<IncidentId, StoreError>;
    /// Appends events if the incident is still at `expected_version`; returns the new version.
    fn append(
        &self,
        incident: IncidentId,
        expected_version: u64,
        events: &[NewEvent],
        outbox: &[(String, Message)],
    ) -> Result<u64, StoreError>;
    /// The whole log of one incident, in order.
    fn events(&self, incident: IncidentId) -> Result<Vec<Event>, StoreError>;
    /// Every incident id, oldest first.
    fn incidents(&self) -> Result<Vec<IncidentId>, StoreError>;
    /// At least every open incident's id, oldest first (a backend may
    /// return closed ones too). Finding "the incident of this branch" only
    /// needs these: a team server with years of closed incidents answers
    /// with the few open ones instead of every id.
    fn open_incidents(&self) -> Result<Vec<IncidentId>, StoreError> {
        self.incidents()
    }
    /// Claims up to `limit` undelivered items of these notifiers that are due
    /// at `now_s` (unix seconds) and not leased by someone else, leasing them
    /// until `now_s + lease_s`: two processes (or server replicas) delivering
    /// at once never send the same item, and a crashed one's items come back
    /// when its lease runs out.
    fn claim_outbox(
        &self,
        now_s: i64,
        lease_s: i64,
        notifiers: &[String],
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError>;
    /// Gives a claimed item back without an attempt (its notifier was skipped).
    fn release_outbox(&self, id: i64) -> Result<(), StoreError>;
    /// Every undelivered item, due or not (for `status`).
    fn undelivered(&self) -> Result<Vec<OutboxItem>, StoreError>;
    fn mark_delivered(&self, id: i64, at_s: i64) -> Result<(), StoreError>;
    fn mark_failed(&self, id: i64, error: &str, retry_at_s: i64) -> Result<(), StoreError>;
    /// Per-incident memory of the providers (the Slack message to update,
    /// the Statuspage incident id): `(incident, key) -> value`.
    fn memory_get(&self, incident: IncidentId, key: &str) -> Result<Option<String>, StoreError>;
    fn memory_set(&self, incident: IncidentId, key: &str, value: &str) -> Result<(), StoreError>;
    /// The log lives on a team server (remote mode): the server's token says
    /// who acts, so a command printed for a person never carries `--as`.
    fn is_remote(&self) -> bool {
        false
    }
}

// ---------------------------------------------------------------- forge

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrState {
    Open,
    Merged,
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    pub url: String,
    pub title: String,
    pub body: String,
    pub head: String,
    pub base: String,
    pub state: PrState,
    pub merge_sha: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPr {
    pub title: String,
    pub body: String,
    pub head: String,
    pub base: String,
}

/// An approval given on the forge itself (a GitHub review), already mapped
/// to the team identity used in `hotfix.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgeApproval {
    /// The team identity (as in `[team]`).
    pub by: String,
    /// The forge's own name for the person (a GitHub login).
    pub login: String,
    /// The commit the review was given on.
    pub sha: String,
}

/// The state of one required check (commit status or check run) on a head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    Success,
    Pending,
    Failure,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgeCheck {
    pub name: String,
    pub state: CheckState,
    /// What the forge says about it (a conclusion, a description, a URL).
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error("forge refused the credentials: {0}")]
    Unauthorized(String),
    /// The branch moved since it was tested (GitHub's `sha` guard, 409).
    #[error(
        "the head of {branch} moved: expected {expected}, found {actual}; the preview tested something else"
    )]
    HeadMoved {
        branch: String,
        expected: String,
        actual: String,
    },
    #[error("merge conflict in {}", .0.join(", "))]
    Conflict(Vec<String>),
    #[error("not mergeable: {0}")]
    NotMergeable(String),
    #[error("pull request #{0} not found")]
    NotFound(u64),
    #[error("forge unreachable: {0}")]
    Unreachable(String),
    #[error("forge: {0}")]
    Other(String),
}

/// Where PRs live and how they merge.
pub trait Forge: Send + Sync {
    fn find_open_pr(&self, head: &str) -> Result<Option<PullRequest>, ForgeError>;
    fn open_pr(&self, pr: &NewPr) -> Result<PullRequest, ForgeError>;
    fn update_pr(&self, number: u64, title: &str, body: &str) -> Result<(), ForgeError>;
    fn get_pr(&self, number: u64) -> Result<PullRequest, ForgeError>;
    /// Merges with a merge commit, only if the head is still `expected_head`.
    /// Idempotent: an already merged PR returns its merge commit.
    fn merge_pr(
        &self,
        number: u64,
        expected_head: &str,
        message: &str,
    ) -> Result<String, ForgeError>;
    /// Reverts a merge on `base` and returns the revert commit. Idempotent.
    fn revert_merge(
        &self,
        base: &str,
        merge_sha: &str,
        message: &str,
    ) -> Result<String, ForgeError>;
    fn close_pr(&self, number: u64) -> Result<(), ForgeError>;
    /// Asks these people (team identities) to review.
    fn request_reviews(&self, _number: u64, _people: &[String]) -> Result<(), ForgeError> {
        Ok(())
    }
    /// Approvals given on the forge (not dismissed), newest per person.
    fn approvals(&self, _number: u64) -> Result<Vec<ForgeApproval>, ForgeError> {
        Ok(vec![])
    }
    /// The PR was merged by a push that hotfix made itself (`ship --backport`
    /// pushes main and develop atomically): record it without another merge.
    fn record_merge(&self, _number: u64, _merge_sha: &str) -> Result<(), ForgeError> {
        Ok(())
    }
    /// The required checks on `sha` (empty: none required).
    fn required_checks(&self, _sha: &str) -> Result<Vec<ForgeCheck>, ForgeError> {
        Ok(vec![])
    }
}

// ---------------------------------------------------------------- deploy

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployCtx {
    pub incident: IncidentId,
    pub sha: String,
    pub branch: String,
    pub pr: Option<u64>,
    /// The git tree id of `sha`, when the engine knows it (issue 13: a
    /// deployer compares trees, not shas, to reuse a tested build).
    pub tree: Option<String>,
    /// The build the preview made and smoke-tested, for a production
    /// deploy: a deployer may promote it when its tree equals `tree`.
    pub previewed: Option<PreviewedBuild>,
}

/// What the preview of an incident built and smoke-tested.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PreviewedBuild {
    /// The sha the preview ran (the hotfix branch head).
    pub sha: String,
    /// Its tree id: equal to the merge's tree when `main` did not move.
    pub tree: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Deployment {
    /// The provider's id for it, if it has one.
    pub id: Option<String>,
    /// Where it serves.
    pub url: Option<String>,
    /// How the deploy got its build, when the provider says (issue 13).
    pub build: Option<BuildReport>,
}

/// How a deploy got the build it runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildReport {
    /// The sha whose tested build was promoted (no build ran).
    pub promoted_from: Option<String>,
    /// Whether a build ran for this deploy.
    pub built: bool,
    /// How long the build (or the promotion) took.
    pub build_ms: Option<u64>,
    /// Why it built rather than promoted, or what the provider could say
    /// (Railway: "the tree equals the PR environment's; Railway builds main itself").
    pub note: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{0} is not configured: set it in hotfix.toml [deploy]")]
    NotConfigured(&'static str),
    #[error("`{command}` failed ({status}); last output:\n{tail}")]
    CommandFailed {
        command: String,
        status: String,
        tail: String,
    },
    #[error("`{command}` did not finish within {seconds}s and was stopped; last output:\n{tail}")]
    Timeout {
        command: String,
        seconds: u64,
        tail: String,
    },
    #[error("deploy provider unreachable: {0}")]
    Unreachable(String),
    /// The provider's own account of what failed, shown as it is: the
    /// caller says which deploy it was ("production deploy failed: …"), so
    /// no layer repeats "deploy failed".
    #[error("{0}")]
    Failed(String),
}

/// Where the code runs.
pub trait Deployer: Send + Sync {
    fn deploy_preview(&self, ctx: &DeployCtx) -> Result<Deployment, DeployError>;
    fn remove_preview(&self, ctx: &DeployCtx) -> Result<(), DeployError>;
    /// Deploys `ctx.sha` to production; returns when production runs it.
    fn deploy_production(&self, ctx: &DeployCtx) -> Result<Deployment, DeployError>;
    /// Puts the previous release back (`ctx.sha` is the code that should serve again).
    fn rollback(&self, ctx: &DeployCtx, previous: Option<&str>) -> Result<(), DeployError>;
    /// The URL production health is probed at, if any.
    fn health_url(&self) -> Option<String>;
    /// The provider's id of what production runs now, recorded before a
    /// merge so that a rollback can go back to exactly it.
    fn current_production(&self) -> Result<Option<String>, DeployError> {
        Ok(None)
    }
    /// The file the output of `action` for `ctx` goes to, if the provider
    /// keeps one on this machine: named while the step runs, so that a
    /// person watching a slow build knows where to look (and can tail it).
    fn log_path(&self, _ctx: &DeployCtx, _action: DeployAction) -> Option<std::path::PathBuf> {
        None
    }
    /// Starts `ctx.sha` beside production and sends it `weight` percent
    /// (0-100) of the requests; returns once it serves. Splitting traffic
    /// needs a proxy of our own: only the embedded platform has one.
    fn canary_start(&self, _ctx: &DeployCtx, _weight: f64) -> Result<Deployment, DeployError> {
        Err(DeployError::NotConfigured(NO_CANARY))
    }
    /// Sends `weight` percent of the requests to the canary from now on.
    fn canary_weight(&self, _weight: f64) -> Result<(), DeployError> {
        Err(DeployError::NotConfigured(NO_CANARY))
    }
    /// The canary takes every request and becomes production.
    fn canary_promote(&self) -> Result<Deployment, DeployError> {
        Err(DeployError::NotConfigured(NO_CANARY))
    }
    /// 0% to the canary at once (requests in flight finish); a no-op without one.
    fn canary_abort(&self) -> Result<(), DeployError> {
        Err(DeployError::NotConfigured(NO_CANARY))
    }
}

/// What a deployer without a traffic-splitting proxy says to a canary request.
const NO_CANARY: &str = "canary needs the embedded platform";

/// Which deploy a [`Deployer::log_path`] is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployAction {
    Preview,
    Production,
    Rollback,
}

// ---------------------------------------------------------------- notify

#[derive(Debug, thiserror::Error)]
#[error("{notifier}: {message}")]
pub struct NotifyError {
    pub notifier: String,
    pub message: String,
}

/// What a notifier may remember per incident between deliveries (kept in
/// the store, so it survives crashes and is shared by every process).
pub trait Memory {
    fn get(&self, incident: IncidentId, key: &str) -> Option<String>;
    fn set(&self, incident: IncidentId, key: &str, value: &str) -> Result<(), String>;
}

/// A [`Memory`] kept in this process only: for tests, and for notifiers
/// used outside an incident store.
#[derive(Debug, Default)]
pub struct InMemory(std::sync::Mutex<std::collections::HashMap<(IncidentId, String), String>>);

impl Memory for InMemory {
    fn get(&self, incident: IncidentId, key: &str) -> Option<String> {
        let m = self.0.lock().ok()?;
        m.get(&(incident, key.to_string())).cloned()
    }
    fn set(&self, incident: IncidentId, key: &str, value: &str) -> Result<(), String> {
        let mut m = self
            .0
            .lock()
            .map_err(|_| "memory lock poisoned".to_string())?;
        m.insert((incident, key.to_string()), value.to_string());
        Ok(())
    }
}

/// A place messages go. Delivery is from the outbox, retried with backoff.
pub trait Notifier: Send + Sync {
    fn name(&self) -> &str;
    fn send(&self, outbox_id: i64, msg: &Message, memory: &dyn Memory) -> Result<(), NotifyError>;
}

// ---------------------------------------------------------------- team tables

/// The team server's tables (`crate::team` has their types): one contract
/// for the SQLite and PostgreSQL stores and one conformance suite.
pub trait TeamStore: Send + Sync {
    fn token_create(
        &self,
        user: &str,
        role: ApiRole,
        hash: &str,
        now_s: i64,
    ) -> Result<i64, StoreError>;
    /// The live (not revoked) token with this hash.
    fn token_lookup(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;
    fn token_list(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// Revokes a live token. With [`AdminGuard::KeepOne`] the last live
    /// admin token is refused, atomically: two admins revoking each other
    /// at the same time (two replicas, two connections) leave one of them.
    fn token_revoke(&self, id: i64, guard: AdminGuard) -> Result<Revoke, StoreError>;

    /// Stores something that came in, durably, before it is acknowledged.
    /// `delivery` is the sender's unique id of this delivery (GitHub's
    /// `X-GitHub-Delivery`, a hash of the body...): a redelivery is not stored twice.
    fn inbox_put(
        &self,
        source: &str,
        delivery: &str,
        body: &str,
        now_s: i64,
    ) -> Result<InboxPut, StoreError>;
    /// Claims up to `limit` unprocessed items due at `now_s` that nobody
    /// else holds, leasing them until `now_s + lease_s` (oldest first).
    fn inbox_claim(
        &self,
        now_s: i64,
        lease_s: i64,
        limit: usize,
    ) -> Result<Vec<InboxItem>, StoreError>;
    /// Marks an item processed with what was done.
    fn inbox_done(&self, id: i64, outcome: &str, now_s: i64) -> Result<(), StoreError>;
    /// Gives an item back for another try at `retry_at_s`.
    fn inbox_failed(&self, id: i64, error: &str, retry_at_s: i64) -> Result<(), StoreError>;
    /// Gives a claimed item back for `due_at_s` without counting the claim
    /// as an attempt: it was not tried (the round ran out of lease time, a
    /// push is settling, another worker holds its alert key).
    fn inbox_defer(&self, id: i64, why: &str, due_at_s: i64) -> Result<(), StoreError>;
    /// The newest items first, for the dashboard and the API.
    fn inbox_recent(&self, limit: usize) -> Result<Vec<InboxRecord>, StoreError>;
    /// The body of one item as received (`None`: no such item), so that a
    /// listing can say what each item was (its source's alert key and
    /// name) without [`InboxRecord`] carrying every body.
    fn inbox_body(&self, id: i64) -> Result<Option<String>, StoreError>;

    /// The incident an alert (by source and dedup key) is linked to.
    fn alert_link_get(&self, source: &str, key: &str) -> Result<Option<IncidentId>, StoreError>;
    /// Links an alert to an incident unless it is linked already; returns the
    /// incident it is linked to after the call (the first link wins).
    fn alert_link_set(
        &self,
        source: &str,
        key: &str,
        incident: IncidentId,
    ) -> Result<IncidentId, StoreError>;

    /// Takes or renews the named lease for `holder` until `now_s + ttl_s`.
    /// True when `holder` holds it after the call (it was free, expired, or
    /// already its own).
    fn lease_acquire(
        &self,
        name: &str,
        holder: &str,
        now_s: i64,
        ttl_s: i64,
    ) -> Result<bool, StoreError>;
    fn lease_release(&self, name: &str, holder: &str) -> Result<(), StoreError>;

    /// Records that the once-only job `key` was done; true only for the
    /// first caller ever (the post-mortem reminder of HF-3 is sent once).
    fn once(&self, key: &str, now_s: i64) -> Result<bool, StoreError>;

    /// A number that grows whenever any incident gets an event: live pages
    /// compare it instead of re-reading every log.
    fn watermark(&self) -> Result<i64, StoreError>;

    /// Every incident with its version (the `seq` of its last event), oldest
    /// first, in one read. When the watermark moved, a live page re-folds
    /// only the incidents whose version moved instead of every log (with
    /// 10,000 incidents a full re-fold takes seconds on PostgreSQL).
    fn incident_versions(&self) -> Result<Vec<(IncidentId, u64)>, StoreError>;
}

/// A store fit for the team server: the incident log plus the team tables.
pub trait ServerStore: Store + TeamStore {}

impl<T: Store + TeamStore> ServerStore for T {}
