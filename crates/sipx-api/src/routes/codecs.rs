//! A trunk's or SIP account's own codecs: the ones its calls may use, in order of preference,
//! instead of the server's `media.codecs`. Stored as space-separated names.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::problem::Checker;

/// A codec of the phone side.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[schema(example = "PCMA")]
pub enum CodecName {
    #[serde(rename = "opus")]
    Opus,
    G722,
    #[serde(rename = "PCMU")]
    Pcmu,
    #[serde(rename = "PCMA")]
    Pcma,
    /// Only in builds with the `g729` feature (elsewhere refused with 422).
    G729,
}

impl CodecName {
    fn as_str(self) -> &'static str {
        match self {
            CodecName::Opus => "opus",
            CodecName::G722 => "G722",
            CodecName::Pcmu => "PCMU",
            CodecName::Pcma => "PCMA",
            CodecName::G729 => "G729",
        }
    }

    fn from_name(name: &str) -> Option<CodecName> {
        [
            CodecName::Opus,
            CodecName::G722,
            CodecName::Pcmu,
            CodecName::Pcma,
            CodecName::G729,
        ]
        .into_iter()
        .find(|c| c.as_str().eq_ignore_ascii_case(name))
    }
}

/// A list given as `field`: at least one codec, each once, G729 only when the build has it.
pub(super) fn check(codecs: &[CodecName], g729: bool, field: &str, c: &mut Checker) {
    c.check(
        !codecs.is_empty(),
        field,
        "at least one codec, or null for the server's",
    );
    let repeated = codecs
        .iter()
        .enumerate()
        .any(|(i, codec)| codecs[..i].contains(codec));
    c.check(!repeated, field, "each codec at most once");
    c.check(
        g729 || !codecs.contains(&CodecName::G729),
        field,
        "G729 needs a build with the g729 feature",
    );
}

pub(super) fn to_stored(codecs: &[CodecName]) -> Vec<String> {
    codecs.iter().map(|c| c.as_str().to_owned()).collect()
}

/// The API wrote what is stored; a name it does not know is left out.
pub(super) fn from_stored(names: &[String]) -> Vec<CodecName> {
    names
        .iter()
        .filter_map(|n| CodecName::from_name(n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_by(codecs: &[CodecName], g729: bool) -> bool {
        let mut c = Checker::default();
        check(codecs, g729, "codecs", &mut c);
        !c.into_errors().is_empty()
    }

    fn refused(codecs: &[CodecName]) -> bool {
        refused_by(codecs, true)
    }

    #[test]
    fn a_list_has_codecs_each_once_and_g729_where_built() {
        use CodecName::*;
        assert!(!refused(&[Pcma, Opus, G722, Pcmu]));
        assert!(refused(&[]));
        assert!(refused(&[Pcma, Opus, Pcma]));
        assert!(!refused_by(&[G729, Pcmu], true));
        assert!(refused_by(&[G729, Pcmu], false));
    }

    #[test]
    fn stored_names_read_back_in_order() {
        use CodecName::*;
        let stored = to_stored(&[G722, Opus, Pcmu]);
        assert_eq!(stored, ["G722", "opus", "PCMU"]);
        assert_eq!(from_stored(&stored), [G722, Opus, Pcmu]);
        assert_eq!(from_stored(&["pcma".to_owned(), "AMR".to_owned()]), [Pcma]);
    }
}
