//! Checks on the caller's output buffers.

use crate::CodecError;

/// The first `needed` elements of `out`, or an error saying how many were missing.
pub(crate) fn room<T>(out: &mut [T], needed: usize) -> Result<&mut [T], CodecError> {
    let available = out.len();
    out.get_mut(..needed)
        .ok_or(CodecError::BufferTooSmall { needed, available })
}
