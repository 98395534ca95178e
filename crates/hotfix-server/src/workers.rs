//! Background work every replica runs, each piece claimed in the shared
//! store so that two replicas never do it twice and a dead replica's share
//! is picked up by another when its lease (`WorkerSettings::lease_s`) runs out:
//!
//! - the **outbox**: notifications written with their events, delivered
//!   with leases and backoff (`claim_outbox`);
//! - the **inbox**: alerts and webhooks acknowledged at the door and
//!   processed here (`inbox_claim`);
//! - **timers** ([`timers`]): the post-mortem reminder and overdue page, and
//!   the second page for an incident nobody took, under one named lease;
//! - **watch** ([`watching`]): probing production during the watch window
//!   after a deploy, under a lease per incident.
//!
//! Leases stop a second replica from *starting* the same work; what makes
//! the effects happen once is that every incident change is a
//! compare-and-set append decided on the fresh log. The one gap no lease
//! can close is a replica dying after a notifier accepted a message and
//! before the outbox recorded it: another replica sends it again, with the
//! same outbox id (`X-Hotfix-Delivery` for webhooks) for the receiver to
//! drop the repeat.

use std::time::Duration;

use hotfix_core::provider::StoreError;
use hotfix_core::team::InboxItem;
use tokio::sync::watch;

use crate::AppState;

/// Attempts after which an inbox item that keeps failing is set aside
/// (recorded with its error, visible in `/api/v1/inbox`).
pub const INBOX_MAX_ATTEMPTS: u32 = 8;

/// Starts the loops; they stop when `shutdown` turns true.
pub fn spawn(st: AppState, shutdown: watch::Receiver<bool>) {
    let every = st.workers.tick;
    spawn_loop(st.clone(), shutdown.clone(), every, |st| {
        run_outbox(st) >= OUTBOX_BATCH
    });
    spawn_loop(st.clone(), shutdown.clone(), every, |st| {
        run_inbox(st) >= INBOX_BATCH
    });
    // Apart, so that a slow probe (up to `probe_timeout`) never delays a
    // timer, nor a long scan a probe.
    spawn_loop(st.clone(), shutdown.clone(), every, |st| {
        timers::run(st);
        false
    });
    spawn_loop(st.clone(), shutdown, every, |st| {
        watching::run(st);
        false
    });
}

/// Runs `f` every `every`, or again at once while it says a full batch was
/// handled (a burst of alerts drains at the store's pace, not one batch per tick).
fn spawn_loop(
    st: AppState,
    mut shutdown: watch::Receiver<bool>,
    every: Duration,
    f: fn(&AppState) -> bool,
) {
    tokio::spawn(async move {
        loop {
            let s2 = st.clone();
            let more = tokio::task::spawn_blocking(move || f(&s2))
                .await
                .unwrap_or(false);
            if *shutdown.borrow() {
                return;
            }
            if more {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
        }
    });
}

/// Items claimed per inbox round.
const INBOX_BATCH: usize = 50;
/// Items `deliver_outbox` claims per round.
const OUTBOX_BATCH: usize = 200;

/// The time leases are stamped with: the server's clock, but never behind
/// the wall clock, so that a replica running on a fixed clock (tests, a
/// replayed log) still respects the leases of the others.
pub fn lease_now(st: &AppState) -> i64 {
    st.now_s().max(jiff::Timestamp::now().as_second())
}

/// Takes the lease `name` for `holder`, or renews it if `holder` has it,
/// for the workers' `lease_s` from [`lease_now`]; false while another holds it.
pub fn take_lease(st: &AppState, name: &str, holder: &str) -> Result<bool, StoreError> {
    st.store
        .lease_acquire(name, holder, lease_now(st), st.workers.lease_s.max(1))
}

/// One round of outbox delivery, claimed for `lease_s` so that the items of
/// a replica that dies mid-round come back to the others that soon.
pub fn run_outbox(st: &AppState) -> usize {
    let now = lease_now(st);
    let d = hotfix_engine::deliver::deliver_outbox_leased(
        st.store.as_ref(),
        &st.notifiers,
        now,
        st.workers.lease_s,
        &|w| {
            tracing::warn!(reason = %w, "notification not delivered yet (will retry)");
        },
    );
    st.metrics.outbox_sent.inc_by(d.sent as u64);
    st.metrics.outbox_failed.inc_by(d.failed as u64);
    d.sent + d.failed
}

/// One round of inbox processing; returns how many items were handled.
///
/// Items still waiting when half of the lease is used up are given back
/// (due at once) rather than processed on a lease that may already have
/// passed to another replica.
pub fn run_inbox(st: &AppState) -> usize {
    let now = lease_now(st);
    let started = std::time::Instant::now();
    let budget = hotfix_engine::deliver::send_budget(st.workers.lease_s);
    let Ok(items) = st
        .store
        .inbox_claim(now, st.workers.lease_s.max(1), INBOX_BATCH)
    else {
        return 0;
    };
    let mut n = 0;
    for item in items {
        if started.elapsed() >= budget {
            let _ = st.store.inbox_defer(
                item.id,
                "deferred: the round ran out of lease time; the next round takes it",
                now,
            );
            continue;
        }
        n += 1;
        match process(st, &item) {
            Ok(outcome) => {
                let _ = st.store.inbox_done(item.id, &outcome, now);
                st.metrics.inbox_processed.inc();
            }
            // Not tried: back without spending an attempt or counting a failure.
            Err(NotYet::Deferred { why, until_s }) => {
                let _ = st.store.inbox_defer(item.id, &why, until_s);
            }
            Err(NotYet::Failed(e)) if item.attempts >= INBOX_MAX_ATTEMPTS => {
                let _ = st.store.inbox_done(
                    item.id,
                    &format!("gave up after {} attempts: {e}", item.attempts),
                    now,
                );
                st.metrics.inbox_failed.inc();
            }
            Err(NotYet::Failed(e)) => {
                let backoff = 2i64.pow(item.attempts.min(10));
                let _ = st.store.inbox_failed(item.id, &e, now + backoff);
                st.metrics.inbox_failed.inc();
            }
        }
    }
    n
}

/// Why an inbox item was not processed this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotYet {
    /// Tried and failed (the store was down, the incident kept changing):
    /// retried with backoff, and given up after [`INBOX_MAX_ATTEMPTS`].
    Failed(String),
    /// Not tried yet, on purpose: back at `until_s` without spending an attempt.
    Deferred { why: String, until_s: i64 },
}

impl From<String> for NotYet {
    fn from(e: String) -> NotYet {
        NotYet::Failed(e)
    }
}

impl std::fmt::Display for NotYet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotYet::Failed(e) => f.write_str(e),
            NotYet::Deferred { why, .. } => f.write_str(why),
        }
    }
}

/// Hands an inbox item to the module for its source.
pub fn process(st: &AppState, item: &InboxItem) -> Result<String, NotYet> {
    match item.source.as_str() {
        "github" => crate::github::process(st, item),
        "alertmanager" | "sentry" | "pagerduty" | "generic" => crate::alerts::process(st, item),
        other => Ok(format!("ignored: no processor for source `{other}`")),
    }
}

pub mod timers;
pub mod watching;
