//! `GET /events`: server-sent events that tell open pages to refresh.
//!
//! Each event is `event: change` with the store's watermark as data: the
//! first one right away (a page compares it with the watermark it was
//! built at, so a change between rendering and connecting is not lost),
//! then one whenever the watermark moves, whichever replica wrote. The
//! stream carries no incident data (the page fetches itself again, through
//! the same sign-in checks) and ends when the server shuts down, so
//! graceful shutdown does not wait on open browsers.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use tokio::sync::watch;

use crate::auth::MaybeCaller;
use crate::{ApiError, AppState};

async fn until_true(rx: &mut Option<watch::Receiver<bool>>) {
    match rx {
        Some(rx) => {
            while !*rx.borrow_and_update() {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        }
        None => std::future::pending().await,
    }
}

pub async fn events(State(st): State<AppState>, c: MaybeCaller) -> Response {
    if c.0.is_none() {
        return ApiError::unauthorized("sign in at /login first").into_response();
    }
    let changes = st.live.subscribe();
    let shutdown = st.dashboard.shutdown();
    let s = stream::unfold(
        (changes, shutdown, true),
        |(mut changes, mut shutdown, first)| async move {
            if !first {
                let ended = tokio::select! {
                    r = changes.changed() => r.is_err(),
                    _ = until_true(&mut shutdown) => true,
                };
                if ended {
                    return None;
                }
            }
            let w = *changes.borrow_and_update();
            let ev = Event::default().event("change").data(w.to_string());
            Some((Ok::<Event, Infallible>(ev), (changes, shutdown, false)))
        },
    );
    let mut r = Sse::new(s)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    // Proxies (nginx) buffer responses unless told not to.
    r.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    r
}
