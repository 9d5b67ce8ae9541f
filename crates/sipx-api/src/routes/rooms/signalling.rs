//! `GET /v1/rtc?token=…`: a browser's signalling WebSocket (docs/rooms-signalling.md). The
//! join token is checked first; a refused join still upgrades, then closes with a 44xx code and
//! a reason, because browsers cannot read the status of a refused handshake.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sipx_rooms::{JoinRequest, RoomError, RoomKey};

use super::token::{JoinClaims, display_name};
use super::unix_now;
use crate::extract::ApiQuery;
use crate::problem::ApiError;
use crate::state::ApiState;

/// Largest signalling frame accepted (an SDP offer with many m-lines stays far below).
const MAX_FRAME: usize = 256 * 1024;
/// A socket that says nothing for this long is closed (clients ping every 20 s).
const IDLE: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize)]
pub struct ConnectParams {
    #[serde(default)]
    token: String,
}

/// Close codes (4000–4999 are the application's, RFC 6455 §7.4.2).
const UNAUTHORIZED: u16 = 4401;
const FORBIDDEN: u16 = 4403;
const NOT_FOUND: u16 = 4404;
const CONFLICT: u16 = 4409;
const UNAVAILABLE: u16 = 4503;

pub async fn connect(
    State(state): State<ApiState>,
    ApiQuery(params): ApiQuery<ConnectParams>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // A plain GET (a browser tab, a probe) gets a problem document, as every refusal does.
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            let why = rejection.body_text();
            return match rejection.status() {
                StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
                _ => ApiError::BadRequest(format!("this is a WebSocket endpoint: {why}")),
            }
            .into_response();
        }
    };
    let checked = check_token(&state, &params.token).await;
    ws.max_message_size(MAX_FRAME)
        .on_upgrade(move |socket| session(state, socket, checked))
}

/// Who the token lets in, or the close code and reason.
async fn check_token(state: &ApiState, token: &str) -> Result<(String, JoinClaims), (u16, String)> {
    let refuse = |why: &str| (UNAUTHORIZED, why.to_owned());
    let peeked = sipx_secrets::jwt::peek_claims(token).map_err(|e| refuse(&e.to_string()))?;
    let claims: JoinClaims =
        serde_json::from_slice(&peeked).map_err(|_| refuse("the token's claims are not a join"))?;
    let creds = state
        .store
        .app_credentials(&claims.iss)
        .await
        .map_err(|_| (UNAVAILABLE, "the database is unavailable".to_owned()))?;
    let Some((app, secret)) = creds else {
        return Err(refuse("the token is not valid"));
    };
    let verified = sipx_secrets::jwt::verify(token, secret.expose())
        .map_err(|_| refuse("the token is not valid"))?;
    // Act only on the verified bytes.
    let claims: JoinClaims = serde_json::from_slice(&verified)
        .map_err(|_| refuse("the token's claims are not a join"))?;
    if claims.exp <= unix_now() {
        return Err(refuse("the token has expired"));
    }
    if app.disabled {
        return Err((FORBIDDEN, "the application is disabled".to_owned()));
    }
    if !sipx_rooms::valid_name(&claims.room) || !sipx_rooms::valid_name(&claims.sub) {
        return Err(refuse("the token names an invalid room or identity"));
    }
    // A token the application minted itself gets the checks SIPx's own minting makes.
    let name = display_name(claims.name).map_err(|()| refuse("the token's name is not valid"))?;
    if !sipx_rooms::may_choose_identity(&claims.sub) {
        return Err(refuse(
            "phone-… identities are SIPx's for phone participants",
        ));
    }
    Ok((app.id, JoinClaims { name, ..claims }))
}

async fn close(mut socket: WebSocket, code: u16, reason: String) {
    let reason: String = reason.chars().take(100).collect();
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

async fn session(
    state: ApiState,
    socket: WebSocket,
    checked: Result<(String, JoinClaims), (u16, String)>,
) {
    // Counted from the upgrade: the stop waits for this socket's close frame.
    let mut place = state.sockets.open();
    let (app, claims) = match checked {
        Ok(c) => c,
        Err((code, reason)) => return close(socket, code, reason).await,
    };
    let Some(rooms) = state.rooms.clone() else {
        return close(
            socket,
            UNAVAILABLE,
            "the built-in rooms are disabled".into(),
        )
        .await;
    };
    let join = JoinRequest {
        room: RoomKey::new(app, claims.room.clone()),
        identity: claims.sub.clone(),
        name: claims.name.clone().unwrap_or_else(|| claims.sub.clone()),
        can_publish: claims.can_publish,
        can_subscribe: claims.can_subscribe,
        call_id: None,
        wall: unix_now(),
    };
    let mut signal = match rooms.connect(join).await {
        Ok(s) => s,
        Err(RoomError::NotFound) => return close(socket, NOT_FOUND, "no such room".into()).await,
        Err(RoomError::Full) => return close(socket, FORBIDDEN, "the room is full".into()).await,
        Err(RoomError::IdentityTaken) => {
            return close(
                socket,
                CONFLICT,
                "a phone participant has this identity".into(),
            )
            .await;
        }
        Err(e) => return close(socket, 1011, e.to_string()).await,
    };
    let id = signal.id;
    let mut socket = socket;
    let mut idle_at = tokio::time::Instant::now() + IDLE;
    loop {
        tokio::select! {
            // The service stops (after its drain): the participant is told why, and the
            // socket closes as going away.
            () = place.stopping() => {
                let bye = serde_json::json!({"type": "closed", "reason": "stopping"});
                let _ = socket.send(Message::Text(bye.to_string().into())).await;
                close(socket, 1001, "server stopping".into()).await;
                rooms.disconnect(id);
                return;
            }
            // Timed from the client's last frame: what the server sends does not keep a
            // silent client's socket open.
            () = tokio::time::sleep_until(idle_at) => {
                close(socket, 1001, "idle".into()).await;
                rooms.disconnect(id);
                return;
            }
            incoming = socket.recv() => {
                idle_at = tokio::time::Instant::now() + IDLE;
                match incoming {
                    Some(Ok(Message::Text(text))) => rooms.signal(id, text.as_str().to_owned()),
                    Some(Ok(Message::Close(_))) | None => break,
                    // A frame over MAX_FRAME, or one that breaks the protocol: the client is
                    // told which (RFC 6455 §7.4.1), not left with a dropped connection.
                    Some(Err(e)) => {
                        let error = e.to_string();
                        let code = if error.contains("too long") { 1009 } else { 1002 };
                        close(socket, code, error).await;
                        rooms.disconnect(id);
                        return;
                    }
                    Some(Ok(_)) => {} // binary, ping, pong: nothing to do
                }
            }
            outgoing = signal.outgoing.recv() => match outgoing {
                Some(text) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                // The rooms are done with this participant (its last message said why).
                None => {
                    close(socket, 1000, "closed".into()).await;
                    rooms.disconnect(id);
                    return;
                }
            },
        }
    }
    rooms.disconnect(id);
}
