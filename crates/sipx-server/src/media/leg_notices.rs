//! What a leg tells about its peer's packets, said in the log in the same words for every
//! kind of call (the echo test's, a controlled call's). Each is said once per leg at most
//! (the leg counts the rest, exported when it ends).

use sipx_media::leg::LegEvent;

/// Logs `event` if it is a notice; false for the events a call acts on.
pub(crate) fn log(call: &dyn std::fmt::Display, event: &LegEvent) -> bool {
    match event {
        LegEvent::RemoteLatched(addr) => {
            tracing::info!(call = %call, %addr, "media latched to the address the peer sends from");
        }
        LegEvent::ForeignSource(addr) => {
            tracing::warn!(call = %call, %addr, "media from an address that is not the peer's dropped");
        }
        LegEvent::SsrcCollision { old, new } => {
            tracing::info!(call = %call, old = old.0, new = new.0, "the peer's RTP named our SSRC: ours changed");
        }
        LegEvent::UnexpectedPayloadType(pt) => {
            tracing::warn!(
                call = %call,
                payload_type = pt,
                "the peer sends RTP of a payload type the SDP did not agree on: dropped (more are counted in sipx_media_dropped_total)"
            );
        }
        LegEvent::SecondStream(ssrc) => {
            tracing::info!(
                call = %call,
                ssrc = ssrc.0,
                "a second RTP stream arrives beside the one playing: not played"
            );
        }
        _ => return false,
    }
    true
}

/// Before a call ends for a media timeout: when packets kept coming from another address
/// meanwhile, says so. The peer may have moved (a NAT, a relay) with a new SSRC and no
/// re-INVITE, which the RTP bleed rules do not follow (`sipx_media::leg` latch).
pub(crate) fn timeout_elsewhere(call: &dyn std::fmt::Display, elsewhere: bool) {
    if elsewhere {
        tracing::warn!(
            call = %call,
            "media timeout while RTP kept arriving from an address that is not the peer's (dropped: it proved nothing); a peer that moves needs a re-INVITE"
        );
    }
}
