//! Fuzz target body. The `fuzz/` crate wraps it in one line; keeping it here means the normal
//! build compiles it and the unit tests run it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::{JoinRequest, Output, RoomKey, Sfu, SfuConfig};

/// Any text as a browser's signalling frame, and as a datagram: the SFU answers (often with an
/// `error` message) and never panics; the room keeps its participants.
pub fn signal(data: &[u8]) {
    let now = Instant::now();
    let mut sfu = Sfu::new(
        SfuConfig {
            candidate: SocketAddr::from(([127, 0, 0, 1], 7882)),
            auto_create: true,
            empty_room_timeout: Duration::from_secs(60),
            max_participants: 8,
        },
        now,
    );
    let join = |identity: &str, call_id: Option<String>| JoinRequest {
        room: RoomKey::new("app", "room"),
        identity: identity.to_owned(),
        name: identity.to_owned(),
        can_publish: true,
        can_subscribe: true,
        call_id,
        wall: 0,
    };
    let Ok(browser) = sfu.join(now, join("web", None)) else {
        panic!("join refused");
    };
    let Ok(phone) = sfu.join(now, join("phone", Some("c".into()))) else {
        panic!("join refused");
    };
    let text = String::from_utf8_lossy(data);
    sfu.handle_signal(now, browser, &text);
    // The same text wrapped as an SDP offer and answer reaches str0m's parser.
    for kind in ["offer", "answer"] {
        let frame = serde_json::json!({ "type": kind, "sdp": text }).to_string();
        sfu.handle_signal(now, browser, &frame);
    }
    sfu.handle_datagram(
        now,
        SocketAddr::from(([127, 0, 0, 1], 5000)),
        SocketAddr::from(([127, 0, 0, 1], 7882)),
        data,
    );
    sfu.handle_phone_audio(now, phone, 1, 960, data.first().copied(), data);
    sfu.handle_timeout(now + Duration::from_millis(50));
    while !matches!(sfu.poll_output(), Output::Timeout(_)) {}
    assert!(sfu.participant_count() <= 2);
}

#[cfg(test)]
mod tests {
    #[test]
    fn odd_frames_are_survived() {
        for data in [
            &b""[..],
            b"{}",
            b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
            b"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n",
            b"\x16\xfe\xfd\x00\x00\x00",
            b"\x80\x6f\x00\x01",
        ] {
            super::signal(data);
        }
    }
}
