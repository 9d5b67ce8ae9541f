//! Fuzz target body. The `fuzz/` crate wraps it in one line; keeping it here means the normal
//! build compiles it and the unit tests run it over the fixtures.

use std::net::{IpAddr, Ipv4Addr};

use crate::{MediaConfig, MediaSession, SessionDescription};

/// Any bytes: parsing never panics; whatever parses serialises to text that parses back to the
/// same description (so serialising again gives the same bytes); answering it never panics,
/// and an answer we produce parses too.
pub fn sdp(data: &[u8]) {
    let Ok(sdp) = SessionDescription::parse(data) else {
        return;
    };
    let first = sdp.to_string();
    let again = match SessionDescription::parse(first.as_bytes()) {
        Ok(again) => again,
        Err(e) => panic!("serialised SDP does not parse ({e}): {first:?}"),
    };
    assert_eq!(
        first,
        again.to_string(),
        "serialise/parse/serialise is not stable"
    );

    let config = MediaConfig::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 40000, 7);
    let Ok(mut session) = MediaSession::new(config, &[0x5a; crate::KEY_MATERIAL_LEN]) else {
        panic!("default configuration refused");
    };
    if let Ok(answer) = session.handle_offer(&sdp)
        && let Err(e) = SessionDescription::parse(answer.to_string().as_bytes())
    {
        panic!("our answer does not parse ({e}): {answer}");
    }
}
