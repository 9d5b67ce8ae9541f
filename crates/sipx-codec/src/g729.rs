//! G.729 Annex A with Annex B (VAD, DTX, comfort noise) through the system's bcg729 (Debian
//! `libbcg729-dev`). **bcg729 is GPL-3.0: building with the `g729` feature makes the result
//! GPL-3.0.** This is the crate's only `unsafe` code, the FFI calls below.
//!
//! Frames are 10 ms, 80 samples at 8 kHz, coded in 10 bytes; with Annex B the encoder may
//! instead produce a 2-byte SID (comfort noise) frame or nothing. An RTP payload holds whole
//! frames with at most one SID frame, at the end (RFC 3551, section 4.5.6).

use std::ptr::NonNull;

use crate::buffer::room;
use crate::{AudioDecoder, AudioEncoder, CodecError, CodecKind};

const KIND: CodecKind = CodecKind::G729;
/// Samples in one frame.
const FRAME_SAMPLES: usize = 80;
/// Bytes of one voice frame.
const VOICE_BYTES: usize = 10;
/// Bytes of one SID frame.
const SID_BYTES: usize = 2;

/// The minimal bcg729 API (bcg729/encoder.h, bcg729/decoder.h, version 1.1).
mod ffi {
    /// bcg729's encoder state; opaque.
    #[repr(C)]
    pub(super) struct EncoderChannel {
        _private: [u8; 0],
    }

    /// bcg729's decoder state; opaque.
    #[repr(C)]
    pub(super) struct DecoderChannel {
        _private: [u8; 0],
    }

    unsafe extern "C" {
        /// Allocates an encoder; `enable_vad` 1 turns on Annex B.
        #[link_name = "initBcg729EncoderChannel"]
        pub(super) fn init_encoder(enable_vad: u8) -> *mut EncoderChannel;
        #[link_name = "closeBcg729EncoderChannel"]
        pub(super) fn close_encoder(channel: *mut EncoderChannel);
        /// Reads 80 samples, writes 0, 2 or 10 bytes and their count.
        #[link_name = "bcg729Encoder"]
        pub(super) fn encode(
            channel: *mut EncoderChannel,
            input: *const i16,
            bitstream: *mut u8,
            bitstream_len: *mut u8,
        );
        #[link_name = "initBcg729DecoderChannel"]
        pub(super) fn init_decoder() -> *mut DecoderChannel;
        #[link_name = "closeBcg729DecoderChannel"]
        pub(super) fn close_decoder(channel: *mut DecoderChannel);
        /// Reads one frame of `bitstream_len` bytes, writes 80 samples.
        #[link_name = "bcg729Decoder"]
        pub(super) fn decode(
            channel: *mut DecoderChannel,
            bitstream: *const u8,
            bitstream_len: u8,
            frame_erased: u8,
            sid_frame: u8,
            rfc3389_payload: u8,
            output: *mut i16,
        );
    }
}

/// A G.729A encoder, with Annex B discontinuous transmission if asked.
#[derive(Debug)]
pub struct G729Encoder {
    channel: NonNull<ffi::EncoderChannel>,
}

// SAFETY: the channel is a heap block owned only by this value and touched only through
// `&mut self`; bcg729 keeps no thread-local or global state, so moving it between threads is fine.
unsafe impl Send for G729Encoder {}

impl G729Encoder {
    /// A new encoder; `dtx` enables Annex B (VAD, SID frames, silence not sent).
    pub fn new(dtx: bool) -> Result<Self, CodecError> {
        // SAFETY: plain constructor call; a null result (allocation failure) is handled.
        let channel = unsafe { ffi::init_encoder(u8::from(dtx)) };
        NonNull::new(channel)
            .map(|channel| Self { channel })
            .ok_or(CodecError::Library {
                kind: KIND,
                message: "encoder allocation failed",
            })
    }
}

impl Drop for G729Encoder {
    fn drop(&mut self) {
        // SAFETY: the channel came from `init_encoder` and is closed exactly once, here.
        unsafe { ffi::close_encoder(self.channel.as_ptr()) }
    }
}

impl AudioEncoder for G729Encoder {
    fn kind(&self) -> CodecKind {
        KIND
    }

    fn sample_rate(&self) -> u32 {
        8000
    }

    /// Encodes whole 10 ms frames. A SID frame is kept only if it is the last thing written
    /// (a later voice or SID frame replaces it), so the payload stays valid for RTP.
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        if pcm.is_empty() || !pcm.len().is_multiple_of(FRAME_SAMPLES) {
            return Err(CodecError::FrameSize {
                kind: KIND,
                samples: pcm.len(),
            });
        }
        let out = room(out, pcm.len() / FRAME_SAMPLES * VOICE_BYTES)?;
        let mut written = 0;
        let mut pending_sid = None;
        for frame in pcm.chunks_exact(FRAME_SAMPLES) {
            let mut bits = [0u8; VOICE_BYTES];
            let mut len = 0u8;
            // SAFETY: `frame` holds the 80 samples bcg729 reads; `bits` has room for the at
            // most 10 bytes it writes; `len` is a valid u8; the channel is live.
            unsafe {
                ffi::encode(
                    self.channel.as_ptr(),
                    frame.as_ptr(),
                    bits.as_mut_ptr(),
                    &mut len,
                )
            };
            let len = usize::from(len).min(VOICE_BYTES);
            if len == 0 {
                continue;
            }
            if let Some(at) = pending_sid.take() {
                written = at;
            }
            if len == SID_BYTES {
                pending_sid = Some(written);
            }
            out[written..written + len].copy_from_slice(&bits[..len]);
            written += len;
        }
        Ok(written)
    }
}

/// A G.729A decoder that also takes Annex B SID frames and conceals lost frames.
#[derive(Debug)]
pub struct G729Decoder {
    channel: NonNull<ffi::DecoderChannel>,
}

// SAFETY: as for the encoder: owned heap state, used only through `&mut self`.
unsafe impl Send for G729Decoder {}

impl G729Decoder {
    /// A new decoder.
    pub fn new() -> Result<Self, CodecError> {
        // SAFETY: plain constructor call; a null result is handled.
        let channel = unsafe { ffi::init_decoder() };
        NonNull::new(channel)
            .map(|channel| Self { channel })
            .ok_or(CodecError::Library {
                kind: KIND,
                message: "decoder allocation failed",
            })
    }

    /// Decodes one 10- or 2-byte frame (or an erasure) into 80 samples.
    fn decode_frame(&mut self, frame: &[u8], erased: bool, out: &mut [i16]) {
        debug_assert!(frame.len() <= VOICE_BYTES && out.len() == FRAME_SAMPLES);
        // Padding, so bcg729 never reads past our bytes whatever the frame type.
        let mut bits = [0u8; VOICE_BYTES];
        bits[..frame.len()].copy_from_slice(frame);
        let sid = !erased && frame.len() == SID_BYTES;
        // SAFETY: `bits` holds 10 readable bytes (more than the stated length); `out` holds the
        // 80 samples bcg729 writes; the channel is live.
        unsafe {
            ffi::decode(
                self.channel.as_ptr(),
                bits.as_ptr(),
                frame.len() as u8,
                u8::from(erased),
                u8::from(sid),
                0,
                out.as_mut_ptr(),
            )
        };
    }
}

impl Drop for G729Decoder {
    fn drop(&mut self) {
        // SAFETY: the channel came from `init_decoder` and is closed exactly once, here.
        unsafe { ffi::close_decoder(self.channel.as_ptr()) }
    }
}

impl AudioDecoder for G729Decoder {
    fn kind(&self) -> CodecKind {
        KIND
    }

    fn sample_rate(&self) -> u32 {
        8000
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let tail = payload.len() % VOICE_BYTES;
        if payload.is_empty() || (tail != 0 && tail != SID_BYTES) {
            return Err(CodecError::Malformed {
                kind: KIND,
                reason: "length is not 10 bytes per frame plus an optional 2-byte SID",
            });
        }
        let frames = payload.len().div_ceil(VOICE_BYTES);
        let out = room(out, frames * FRAME_SAMPLES)?;
        for (frame, samples) in payload
            .chunks(VOICE_BYTES)
            .zip(out.chunks_exact_mut(FRAME_SAMPLES))
        {
            self.decode_frame(frame, false, samples);
        }
        Ok(out.len())
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        if out.is_empty() || !out.len().is_multiple_of(FRAME_SAMPLES) {
            return Err(CodecError::FrameSize {
                kind: KIND,
                samples: out.len(),
            });
        }
        for samples in out.chunks_exact_mut(FRAME_SAMPLES) {
            self.decode_frame(&[], true, samples);
        }
        Ok(out.len())
    }
}

#[cfg(test)]
mod tests;
