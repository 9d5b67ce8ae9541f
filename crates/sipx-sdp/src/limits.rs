//! Hard limits that keep hostile input from costing more than a bounded amount of memory and
//! work. Real SIP SDPs are a few hundred bytes; a WebRTC offer with many candidates is a few
//! kilobytes and under two hundred lines.

/// Largest SDP accepted, in bytes (the largest SIP message SIPx accepts is 64 KiB).
pub const MAX_SDP_SIZE: usize = 32 * 1024;
/// Most non-empty lines in one SDP.
pub const MAX_LINES: usize = 1024;
/// Most `m=` sections.
pub const MAX_MEDIA: usize = 32;
/// Most formats (payload types) on one `m=` line: there are only 128 payload type numbers.
pub const MAX_FORMATS: usize = 128;
