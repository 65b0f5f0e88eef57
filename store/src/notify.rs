//! Events across processes on PostgreSQL: each store `NOTIFY`s its events on
//! one channel and `LISTEN`s for the others' (skipping its own), feeding them
//! into its in-process broadcast. SQLite stays in-process.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::{Event, Store};

/// The PostgreSQL channel.
const CHANNEL: &str = "nas_events";

/// One notification: who sent it and what happened.
#[derive(Serialize, Deserialize)]
struct Payload {
    origin: u64,
    events: Vec<Event>,
}

impl Store {
    /// Sends `events` to other processes (fire and forget: a lost
    /// notification costs a poll interval, never data).
    pub(crate) fn notify(&self, events: Vec<Event>) {
        let Ok(payload) = serde_json::to_string(&Payload {
            origin: self.origin,
            events,
        }) else {
            return;
        };
        let pool = self.pool.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(payload)
                    .execute(&pool)
                    .await
                {
                    tracing::debug!(error = %e, "notify failed");
                }
            });
        }
    }
}

/// Starts the listener task: forwards other processes' events into `events`,
/// reconnecting with a pause if the connection drops, until `pool` closes.
pub(crate) fn listen(
    url: String,
    origin: u64,
    events: broadcast::Sender<Event>,
    changes: std::sync::Arc<crate::ranking::cache::Changes>,
    pool: sqlx::AnyPool,
) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    handle.spawn(async move {
        loop {
            match sqlx::postgres::PgListener::connect(&url).await {
                Ok(mut listener) => {
                    if let Err(e) = listener.listen(CHANNEL).await {
                        tracing::warn!(error = %e, "LISTEN failed");
                    } else {
                        loop {
                            let received = tokio::select! {
                                r = listener.recv() => r,
                                () = tokio::time::sleep(Duration::from_secs(1)) => {
                                    if pool.is_closed() {
                                        return;
                                    }
                                    continue;
                                }
                            };
                            match received {
                                Ok(n) => match serde_json::from_str::<Payload>(n.payload()) {
                                    Ok(p) if p.origin != origin => {
                                        for e in p.events {
                                            if let Err(error) = changes.note(&e) {
                                                tracing::error!(%error, "leaderboard pages may be served stale");
                                            }
                                            // No subscriber is fine.
                                            let _ = events.send(e);
                                        }
                                    }
                                    Ok(_) => {}
                                    Err(error) => {
                                        tracing::warn!(%error, "ignoring a notification that is not ours");
                                    }
                                },
                                Err(e) => {
                                    tracing::warn!(error = %e, "event listener lost its connection");
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "event listener cannot connect"),
            }
            if pool.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
}
