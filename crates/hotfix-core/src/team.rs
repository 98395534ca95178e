//! What the team server (`hotfix serve`) keeps beside the incident log:
//! API tokens, the durable inbox of things coming in (alerts, webhooks),
//! the link from an alert to the incident it opened, leases for work that
//! must happen once across replicas, and a change counter for live pages.
//!
//! These are the pure types; the trait the SQLite and PostgreSQL stores
//! implement for them ([`TeamStore`], with [`ServerStore`] = the incident
//! log plus these tables) is in `provider`, beside the incident log's
//! [`Store`](crate::provider::Store), and re-exported here.

use serde::{Deserialize, Serialize};

pub use crate::provider::{ServerStore, TeamStore};

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

/// The API error code of a 409 for `StoreError::NameInUse`: the team
/// server writes it, the CLI's remote store reads it back as the same
/// store error (one word on both ends of the wire).
pub const NAME_IN_USE_CODE: &str = "name_in_use";
