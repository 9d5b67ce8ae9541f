//! Reason phrases: the standard ones, and reasons from the network made fit for the history.

/// Reason phrases from the network are cut to this many bytes in the history.
pub(crate) const MAX_REASON: usize = 128;

/// The reason phrase of the final responses SIPx itself gives for a call (`Reject`) and of the
/// codes it records without a response (Timer B, transport failure); empty for others. The
/// full RFC 3261 table is `sipx_sip::msg::reason_phrase`, which the driver uses when a response
/// comes with an empty phrase.
pub(crate) fn phrase(code: u16) -> &'static str {
    match code {
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        487 => "Request Terminated",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "",
    }
}

/// A reason from the network for the history: cut to [`MAX_REASON`] bytes; an empty one is
/// replaced by a phrase of ours or `SIP <code>`, so every entry says something.
pub(crate) fn reason_of(code: u16, reason: String) -> String {
    let reason = cut(reason);
    if !reason.trim().is_empty() {
        return reason;
    }
    match phrase(code) {
        "" => format!("SIP {code}"),
        known => known.to_owned(),
    }
}

/// Bounds a reason from the network or a room to [`MAX_REASON`] bytes, on a character boundary.
pub(crate) fn cut(mut reason: String) -> String {
    if reason.len() > MAX_REASON {
        let mut at = MAX_REASON;
        while !reason.is_char_boundary(at) {
            at -= 1;
        }
        reason.truncate(at);
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_reasons_say_the_code_and_long_ones_are_cut() {
        assert_eq!(reason_of(487, String::new()), "Request Terminated");
        assert_eq!(reason_of(486, "  ".to_owned()), "SIP 486");
        assert_eq!(reason_of(486, "Occupied".to_owned()), "Occupied");
        // Cut on a character boundary: 'é' is two bytes.
        let long = "é".repeat(100);
        let cut = reason_of(486, long);
        assert_eq!(cut.len(), MAX_REASON);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
