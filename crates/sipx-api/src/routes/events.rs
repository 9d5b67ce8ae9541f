//! `GET /v1/events`: an application's events as server-sent events.
//!
//! Signed like any request; browsers' `EventSource` cannot set headers, so the signature goes
//! in the query string. Events are live only: a stream sees what is published while it is
//! open (the delivery log keeps what went to webhooks).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;

use crate::auth::Tenant;
use crate::events::{Envelope, Subscription};
use crate::extract::ApiQuery;
use crate::problem::ApiError;
use crate::state::ApiState;

/// A comment this often keeps proxies and the browser from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
const MAX_TYPES: usize = 32;
const MAX_TYPE_LEN: usize = 64;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Comma-separated event types to receive (`call.state,call.dtmf`); absent: all.
    pub types: Option<String>,
}

fn parse_types(types: Option<&str>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(types) = types else {
        return Ok(None);
    };
    let list: Vec<String> = types.split(',').map(|t| t.trim().to_owned()).collect();
    let bad = |t: &String| {
        t.is_empty()
            || t.len() > MAX_TYPE_LEN
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    if list.len() > MAX_TYPES || list.iter().any(bad) {
        return Err(ApiError::BadRequest(format!(
            "types must be a comma-separated list of at most {MAX_TYPES} event types (letters, digits, `._-`)"
        )));
    }
    Ok(Some(list))
}

/// Stream events
///
/// Server-sent events (`text/event-stream`) of the calling application, live. Each frame has
/// `id:` (the event id), `event:` (its type) and `data:` (the envelope, as webhooks POST it).
/// A comment every 15 s keeps the connection open; a client too slow to keep up gets a
/// comment saying how many events it missed, then the stream goes on. Pass the signature in
/// the query string so a browser's `EventSource` can open it.
#[utoipa::path(get, path = "/v1/events", tag = "events", operation_id = "stream_events",
    params(StreamParams),
    responses((status = 200, content_type = "text/event-stream", body = String,
        description = "Frames: `id: evt_…`, `event: <type>`, `data: <EventEnvelope JSON>`",
        example = json!(": stream open\n\nid: evt_01jdx4b7c2m9q3r5t8v0w2y4za\nevent: call.state\ndata: {\"id\":\"evt_01jdx4b7c2m9q3r5t8v0w2y4za\",\"type\":\"call.state\",\"created_at\":\"2026-11-28T10:00:01.250Z\",\"app_id\":\"app_01jdx3n5k8q2r7t9v4w6y8z0ab\",\"call_id\":\"call_01jdx4a0f1g2h3j4k5m6n7p8qr\",\"data\":{\"state\":\"EARLY\",\"code\":180}}\n\n: keep-alive\n\n")),
        (status = 503, description = "The service is draining", body = crate::problem::Problem,
            content_type = "application/problem+json")))]
pub async fn stream(
    Tenant(app): Tenant,
    State(state): State<ApiState>,
    ApiQuery(params): ApiQuery<StreamParams>,
) -> Result<Response, ApiError> {
    let types = parse_types(params.types.as_deref())?;
    if state.events.is_closed() {
        return Err(ApiError::Unavailable(
            "the service is shutting down".to_owned(),
        ));
    }
    let subscription = state.events.subscribe(&app.id);
    let keep_alive = KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive");
    Ok(Sse::new(frames(subscription, types))
        .keep_alive(keep_alive)
        .into_response())
}

struct Feed {
    sub: Subscription,
    types: Option<Vec<String>>,
    opened: bool,
}

/// The frames of one stream: a first comment (so the client sees the stream open at once),
/// then the application's events, until the service drains.
fn frames(
    sub: Subscription,
    types: Option<Vec<String>>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let feed = Feed {
        sub,
        types,
        opened: false,
    };
    futures_util::stream::unfold(feed, |mut feed| async move {
        if !feed.opened {
            feed.opened = true;
            return Some((Ok(Event::default().comment("stream open")), feed));
        }
        loop {
            let got = tokio::select! {
                got = feed.sub.events.recv() => got,
                _ = feed.sub.closed.wait_for(|closed| *closed) => return None,
            };
            match got {
                Ok(envelope) => {
                    if feed
                        .types
                        .as_ref()
                        .is_none_or(|t| t.contains(&envelope.kind))
                    {
                        return Some((Ok(frame(&envelope)), feed));
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    let missed = Event::default().comment(format!("missed {n} events"));
                    return Some((Ok(missed), feed));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

fn frame(envelope: &Arc<Envelope>) -> Event {
    // axum refuses (panics on) line breaks in `event:`; a type never has them, but the type
    // comes from elsewhere, so it is checked rather than trusted.
    let kind = if envelope.kind.contains(['\r', '\n']) {
        "message"
    } else {
        envelope.kind.as_str()
    };
    Event::default()
        .id(envelope.id.as_str())
        .event(kind)
        .data(envelope.json.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_filters() {
        assert_eq!(parse_types(None).unwrap(), None);
        assert_eq!(
            parse_types(Some("call.state, call.dtmf")).unwrap(),
            Some(vec!["call.state".to_owned(), "call.dtmf".to_owned()])
        );
        for bad in ["", "a,,b", "call state", "x\ny", &"a,".repeat(40)] {
            assert!(parse_types(Some(bad)).is_err(), "{bad:?}");
        }
    }
}
