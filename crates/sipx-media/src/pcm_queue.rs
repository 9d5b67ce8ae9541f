//! A FIFO of PCM samples with a fixed capacity, between a decoder (which produces whole packets)
//! and a 20 ms clock (which takes frames), or the other way round before an encoder.

/// When full, the oldest samples go: a stream that delivers more than it should loses its
/// backlog, not its newest audio.
#[derive(Debug)]
pub(crate) struct PcmQueue {
    buf: Box<[i16]>,
    len: usize,
}

impl PcmQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        PcmQueue {
            buf: vec![0; capacity].into(),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Keeps the oldest `len` samples at most, dropping the newest.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    pub(crate) fn push(&mut self, samples: &[i16]) {
        let samples = &samples[samples.len().saturating_sub(self.buf.len())..];
        let overflow = (self.len + samples.len()).saturating_sub(self.buf.len());
        if overflow > 0 {
            self.buf.copy_within(overflow..self.len, 0);
            self.len -= overflow;
        }
        self.buf[self.len..self.len + samples.len()].copy_from_slice(samples);
        self.len += samples.len();
    }

    /// Moves the oldest `out.len()` samples into `out` (fewer if fewer are queued; the rest
    /// of `out` is zeroed). Returns how many were real.
    pub(crate) fn pop_into(&mut self, out: &mut [i16]) -> usize {
        let n = out.len().min(self.len);
        out[..n].copy_from_slice(&self.buf[..n]);
        out[n..].fill(0);
        self.buf.copy_within(n..self.len, 0);
        self.len -= n;
        n
    }
}
