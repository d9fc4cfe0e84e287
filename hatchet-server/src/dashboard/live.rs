//! `/live`: server-sent events telling an open page that its tenant's data changed, so the page script re-fetches
//! the page and swaps its live parts.
//!
//! Each open page holds one receiver of the in-memory change signal ([`Dispatch::changed`]), fed by the server's one
//! `LISTEN` connection and by the events workers report here. While nothing changes, an open page costs no query at
//! all (a comment every 15 s keeps proxies from closing the connection). When something changes, the page hears
//! about it at most once per [`DEBOUNCE`], however many changes there were.
//!
//! [`Dispatch::changed`]: crate::dispatch::Dispatch::changed

use super::session::Session;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

/// At most one "changed" per page per this long.
pub(crate) const DEBOUNCE: Duration = Duration::from_secs(1);

/// `?since=N`: the change generation the page was rendered at (`data-generation` of its body).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Since {
    since: Option<u64>,
}

/// `GET /live`. Subscribes first, then compares generations, so a change between the page's rendering and this
/// request is never lost: it either moved the generation (the page hears "changed" at once) or arrives on the feed.
pub(crate) async fn live(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<Since>,
) -> impl IntoResponse {
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(1);
    let mut changes = state.dispatch.subscribe_changes();
    let missed = q.since.is_some_and(|n| n != state.dispatch.generation());
    let shutdown = state.shutdown.clone();
    let tenant = session.tenant.0;
    tokio::spawn(async move {
        let concerns = |t: Option<Uuid>| t.is_none_or(|t| t == tenant);
        let mut missed = missed;
        loop {
            // Changed since the page was rendered: tell it at once; otherwise wait for a change of this tenant.
            if !std::mem::take(&mut missed) {
                tokio::select! {
                    () = tx.closed() => return,
                    () = shutdown.cancelled() => return,
                    next = changes.recv() => match next {
                        Ok(t) if !concerns(t) => continue,
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    },
                }
            }
            // Tell the page (with data: browsers drop an event whose data is empty), then let changes pile up for
            // a moment and tell it once more if any came.
            loop {
                if tx
                    .send(Ok(Event::default().event("changed").data("changed")))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(DEBOUNCE) => {}
                    () = shutdown.cancelled() => return,
                }
                let mut pending = false;
                loop {
                    match changes.try_recv() {
                        Ok(t) => pending |= concerns(t),
                        Err(TryRecvError::Lagged(_)) => pending = true,
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Closed) => return,
                    }
                }
                if !pending {
                    break;
                }
            }
        }
    });
    Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default())
}
