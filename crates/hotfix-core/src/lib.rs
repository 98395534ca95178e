//! The hotfix workflow as pure logic.
//!
//! Everything here is deterministic and free of I/O so that it can be tested
//! exhaustively: the [`event`] log is the single source of truth, [`state`]
//! folds it into what the incident looks like now, [`guards`] decide what may
//! happen next (and say exactly why not), [`timeline`] measures each step
//! against the process targets and [`checklist`] derives the post-hotfix
//! checklist. The [`provider`] traits are the seams to the outside world
//! (store, forge, deployer, notifier); their implementations live in other
//! crates.

pub mod access;
pub mod admit;
pub mod analysis;
pub mod checklist;
pub mod config;
pub mod display;
pub mod duration;
pub mod env_vars;
pub mod event;
pub mod guards;
pub mod id;
pub mod ledger;
pub mod name;
pub mod next;
pub mod notify;
pub mod plural;
pub mod policy;
pub mod provider;
pub mod severity;
pub mod state;
pub mod team;
pub mod timeline;
pub mod validate;

pub use event::{Event, EventKind, NewEvent};
pub use id::IncidentId;
pub use policy::Policy;
pub use severity::Severity;
pub use state::{IncidentState, Phase};
