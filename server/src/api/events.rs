//! `GET /events`: the store's events as Server-Sent Events, optionally for one
//! search. Each event's name is its kind (`trial_finished`, ...) and its data
//! the event's JSON; a slow client that falls behind gets a `lagged` event
//! (refetch what you show). Streams end when the server shuts down.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;

use super::extract::ApiQuery;
use super::{ApiError, ApiResult, AppState};

/// Query of `GET /events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only this search's events.
    pub search: Option<i64>,
}

/// `GET /events`: a live stream of queue events.
#[utoipa::path(get, path = "/api/v1/events", tag = "operations", params(EventsQuery),
    responses(
        (status = 200, description = "text/event-stream; events: trials_queued, trial_claimed, trial_progressed, trial_finished, search_finished, lagged",
            content_type = "text/event-stream", body = String),
        (status = 400, description = "Bad query", body = super::dto::ErrorBody),
        (status = 401, body = super::dto::ErrorBody),
        (status = 503, description = "Too many event streams are open", body = super::dto::ErrorBody),
    ))]
pub async fn events(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    // Held by the stream: released (with the stream's buffer) when the
    // client goes away.
    let permit = state.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            "too many event streams are open; try again later".into(),
        )
    })?;
    let receiver = state.store.subscribe();
    let shutdown = state.shutdown.subscribe();
    let stream = stream::unfold(
        (receiver, shutdown, permit),
        move |(mut receiver, mut shutdown, permit)| async move {
            loop {
                let received = tokio::select! {
                    received = receiver.recv() => received,
                    _ = shutdown.wait_for(|stop| *stop) => return None,
                };
                let event = match received {
                    Ok(event) if q.search.is_none_or(|s| s == event.search_id()) => {
                        match SseEvent::default().event(event.name()).json_data(&event) {
                            Ok(sse) => sse,
                            Err(_) => continue,
                        }
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(missed)) => SseEvent::default()
                        .event("lagged")
                        .data(format!("{{\"missed\": {missed}}}")),
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok(event), (receiver, shutdown, permit)));
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
