//! The SRTP policy stored with a trunk or a SIP account (column `srtp`, NULL = the server's).

/// Whether a trunk's or an account's calls must, may or must not encrypt media (SDES-SRTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpPolicy {
    Disabled,
    Allowed,
    Required,
}

impl SrtpPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            SrtpPolicy::Disabled => "disabled",
            SrtpPolicy::Allowed => "allowed",
            SrtpPolicy::Required => "required",
        }
    }

    /// The stored spelling back; `None` for anything else (the column's CHECK allows nothing
    /// else, so that means "no policy", never an error).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "disabled" => Some(SrtpPolicy::Disabled),
            "allowed" => Some(SrtpPolicy::Allowed),
            "required" => Some(SrtpPolicy::Required),
            _ => None,
        }
    }
}

/// Reads a nullable `srtp` column.
pub(crate) fn from_column(value: Option<String>) -> Option<SrtpPolicy> {
    value.as_deref().and_then(SrtpPolicy::parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for p in [
            SrtpPolicy::Disabled,
            SrtpPolicy::Allowed,
            SrtpPolicy::Required,
        ] {
            assert_eq!(SrtpPolicy::parse(p.as_str()), Some(p));
        }
        assert_eq!(SrtpPolicy::parse("Required"), None);
        assert_eq!(from_column(None), None);
    }
}
