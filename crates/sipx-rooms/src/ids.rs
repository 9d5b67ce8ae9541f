//! Names of rooms and participants.

use std::fmt;

/// A room: rooms belong to one application (tenant) and are named within it, so two
/// applications may both have a room called "sales" without meeting.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomKey {
    pub app: String,
    pub name: String,
}

impl RoomKey {
    pub fn new(app: impl Into<String>, name: impl Into<String>) -> RoomKey {
        RoomKey {
            app: app.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for RoomKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.name)
    }
}

/// One participant's connection, unique for the SFU's lifetime (an identity that rejoins gets a
/// new one).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

impl fmt::Debug for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ParticipantId({})", self.0)
    }
}

/// Room and participant names: 1–64 characters of letters, digits, `-`, `_`, `.`, `@`, `+`.
/// They appear in URLs, logs and SIP URIs, so nothing that needs escaping.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '+'))
}

/// The prefix of the identities SIPx gives phone participants that have none of their own
/// (`phone-<n>`). No one may choose one (a browser's token, a dial-out's `identity`): taken
/// first, a phone's coming name would turn that call away.
pub const PHONE_IDENTITY_PREFIX: &str = "phone-";

/// Whether an application may choose `identity` for a participant (see
/// [`PHONE_IDENTITY_PREFIX`]).
pub fn may_choose_identity(identity: &str) -> bool {
    // Whatever its case: `PHONE-2` beside `phone-2` would read as the same participant.
    !identity
        .get(..PHONE_IDENTITY_PREFIX.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(PHONE_IDENTITY_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_url_and_uri_safe() {
        assert!(valid_name("sales-2026_q4"));
        assert!(valid_name("+4930123"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name("x/y"));
        assert!(!valid_name(&"a".repeat(65)));
    }

    #[test]
    fn phone_names_are_sipxs_whatever_their_case() {
        for reserved in ["phone-2", "PHONE-2", "Phone-x"] {
            assert!(!may_choose_identity(reserved), "{reserved}");
        }
        for free in ["phone", "phones-2", "my-phone-2", "alice", "p"] {
            assert!(may_choose_identity(free), "{free}");
        }
    }
}
