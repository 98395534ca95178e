//! Background work every replica runs, each piece claimed in the shared
//! store so that two replicas never do it twice and a dead replica's share
//! is picked up by another when its lease runs out:
//!
//! - the **outbox**: notifications written with their events, delivered
//!   with leases and backoff (`claim_outbox`);
//! - the **inbox**: alerts and webhooks acknowledged at the door and
//!   processed here (`inbox_claim`);
//! - **timers**: the post-mortem reminder (due within 24 h of the fix) and
//!   the overdue page, under one named lease per round;
//! - **watch**: probing production during the watch window after a deploy,
//!   under a lease per incident.

use std::time::Duration;

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
        run_outbox(st);
    });
    spawn_loop(st.clone(), shutdown.clone(), every, |st| {
        run_inbox(st);
    });
    spawn_loop(st.clone(), shutdown, every, |st| {
        crate::workers::timers::run(st);
        crate::workers::watching::run(st);
    });
}

fn spawn_loop(
    st: AppState,
    mut shutdown: watch::Receiver<bool>,
    every: Duration,
    f: fn(&AppState),
) {
    tokio::spawn(async move {
        loop {
            let s2 = st.clone();
            let _ = tokio::task::spawn_blocking(move || f(&s2)).await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
        }
    });
}

/// One round of outbox delivery.
pub fn run_outbox(st: &AppState) {
    let now = st.now_s().max(jiff::Timestamp::now().as_second());
    let d = hotfix_engine::deliver::deliver_outbox(st.store.as_ref(), &st.notifiers, now, &|w| {
        eprintln!("hotfix serve: notification not delivered yet (will retry): {w}");
    });
    st.metrics.outbox_sent.add(d.sent as u64);
    st.metrics.outbox_failed.add(d.failed as u64);
}

/// One round of inbox processing; returns how many items were handled.
pub fn run_inbox(st: &AppState) -> usize {
    let now = st.now_s().max(jiff::Timestamp::now().as_second());
    let Ok(items) = st.store.inbox_claim(now, st.workers.lease_s, 50) else {
        return 0;
    };
    let n = items.len();
    for item in items {
        match process(st, &item) {
            Ok(outcome) => {
                let _ = st.store.inbox_done(item.id, &outcome, now);
                st.metrics.inbox_processed.inc();
            }
            Err(e) if item.attempts >= INBOX_MAX_ATTEMPTS => {
                let _ = st.store.inbox_done(
                    item.id,
                    &format!("gave up after {} attempts: {e}", item.attempts),
                    now,
                );
                st.metrics.inbox_failed.inc();
            }
            Err(e) => {
                let backoff = 2i64.pow(item.attempts.min(10));
                let _ = st.store.inbox_failed(item.id, &e, now + backoff);
                st.metrics.inbox_failed.inc();
            }
        }
    }
    n
}

/// Hands an inbox item to the module for its source.
pub fn process(st: &AppState, item: &InboxItem) -> Result<String, String> {
    match item.source.as_str() {
        "github" => crate::github::process(st, item),
        "alertmanager" | "sentry" | "pagerduty" | "generic" => crate::alerts::process(st, item),
        other => Ok(format!("ignored: no processor for source `{other}`")),
    }
}

pub mod timers;
pub mod watching;
