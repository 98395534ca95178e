//! What the team server (`hotfix serve`) keeps beside the incident log:
//! API tokens, the durable inbox of things coming in (alerts, webhooks),
//! the link from an alert to the incident it opened, leases for work that
//! must happen once across replicas, and a change counter for live pages.
//!
//! The trait lives here (pure types, no I/O) so that the SQLite and
//! PostgreSQL stores implement one contract and one conformance suite.

use serde::{Deserialize, Serialize};

use crate::id::IncidentId;
use crate::provider::{Store, StoreError};

/// The roles an API token carries. Ordered: each role from `Developer` on
/// may do what the ones before it may; `Intake` is the lowest and may
/// only post alerts.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiRole {
    /// Only posts alerts (`POST /api/v1/alerts/{source}`): the credential
    /// a monitoring tool keeps (Alertmanager's config file, a Sentry
    /// integration) cannot read incidents, append steps or approve if it
    /// leaks. Every other route refuses it (403).
    Intake,
    /// Declares, pushes, ships, rolls back, ticks the checklist.
    Developer,
    /// Also approves (never their own hotfix) and closes.
    TechLead,
    /// Also manages tokens.
    Admin,
}

impl ApiRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiRole::Intake => "intake",
            ApiRole::Developer => "developer",
            ApiRole::TechLead => "tech_lead",
            ApiRole::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<ApiRole> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "intake" => Some(ApiRole::Intake),
            "developer" | "dev" => Some(ApiRole::Developer),
            "tech_lead" | "techlead" | "lead" => Some(ApiRole::TechLead),
            "admin" => Some(ApiRole::Admin),
            _ => None,
        }
    }
}

/// A stored API token. The secret itself is never stored, only its hash.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: i64,
    /// The team identity acting with this token (as in `[team]`).
    pub user: String,
    pub role: ApiRole,
    /// Unix seconds.
    pub created_at: i64,
    pub revoked: bool,
}

/// Whether [`TeamStore::token_revoke`] may revoke the last live admin token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminGuard {
    /// Refuse it: over the API, nobody could manage tokens afterwards.
    KeepOne,
    /// Allow it: `hotfix serve token` on the server's machine, which writes
    /// to the store directly and can always create a new admin token.
    AllowNone,
}

/// What [`TeamStore::token_revoke`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoke {
    Revoked,
    /// There was no such live token (never created, or revoked already).
    NotFound,
    /// It is the last live admin token and [`AdminGuard::KeepOne`] kept it.
    LastAdmin,
}

/// One thing that came in, kept until it is processed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxItem {
    pub id: i64,
    /// `alertmanager`, `sentry`, `pagerduty`, `generic`, `github`, ...
    pub source: String,
    /// The raw body as received (already authenticated).
    pub body: String,
    pub received_at: i64,
    pub attempts: u32,
}

/// What [`TeamStore::inbox_put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxPut {
    Stored(i64),
    /// The same delivery (same `delivery` key) was stored before.
    Duplicate(i64),
}

/// An inbox item's fate, shown on the dashboard and returned by the API.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxRecord {
    pub id: i64,
    pub source: String,
    pub received_at: i64,
    pub processed_at: Option<i64>,
    pub attempts: u32,
    /// What processing did (`declared HF-3`, `duplicate of HF-3`, `ignored: ...`) or the last error.
    pub outcome: Option<String>,
}

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

/// The API error code of a 409 for `StoreError::NameInUse`: the team
/// server writes it, the CLI's remote store reads it back as the same
/// store error (one word on both ends of the wire).
pub const NAME_IN_USE_CODE: &str = "name_in_use";
