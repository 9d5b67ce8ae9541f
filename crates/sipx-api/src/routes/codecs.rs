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
    /// Only in builds with the `g729` feature; elsewhere it is left out of the list.
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

/// A list given as `field`: at least one codec, each once.
pub(super) fn check(codecs: &[CodecName], field: &str, c: &mut Checker) {
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
