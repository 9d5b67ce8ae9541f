//! Small `Copy` identities whose `Debug` shows what they are.

use std::fmt;

/// A synchronisation source identifier (RFC 3550 §3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Ssrc(pub u32);

impl fmt::Debug for Ssrc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ssrc({:#010x})", self.0)
    }
}

/// An RTP payload type, 0..=127 (RFC 3550 §5.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Pt(pub u8);

impl Pt {
    /// Comfort noise (RFC 3389), statically assigned by RFC 3551.
    pub const CN: Pt = Pt(13);
}

impl fmt::Debug for Pt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pt({})", self.0)
    }
}
