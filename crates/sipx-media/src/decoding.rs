//! One received stream from jitter buffer to PCM: decode what [`JitterBuffer::tick`] says to
//! play (concealing payloads the decoder refuses), conceal or recover (Opus in-band FEC) lost
//! packets, into a small PCM queue at the decoder's rate that absorbs packet sizes other than
//! the 20 ms frame: a 30 ms packet leaves 10 ms for the next tick, on which the jitter buffer
//! says `Continue`. Shared by the media leg and the room bridge's sources.
//!
//! [`JitterBuffer::tick`]: crate::jitter::JitterBuffer::tick

use sipx_codec::{AudioDecoder, CodecError, CodecKind, Decoder, new_decoder};

use crate::jitter::Playout;
use crate::pcm_queue::PcmQueue;

/// What one jitter buffer tick gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Played {
    /// Received payloads were decoded; `errors` of them were refused and concealed instead.
    Frame { errors: u32 },
    /// A lost packet was concealed (or recovered from the next one's FEC).
    Lost,
    /// RFC 3389 comfort noise; `level` is a new noise level in -dBov when one came.
    ComfortNoise { level: Option<u8> },
    /// Nothing new: earlier audio may still be queued.
    Nothing,
}

/// A decoder with its PCM queue. All memory is allocated in [`StreamDecoder::new`].
#[derive(Debug)]
pub(crate) struct StreamDecoder {
    kind: CodecKind,
    rate: u32,
    decoder: Decoder,
    queue: PcmQueue,
    /// One packet's decoded PCM, before it is queued.
    scratch: Box<[i16]>,
    /// Samples of the last received packet: what one lost packet covers.
    last_packet_samples: usize,
}

impl StreamDecoder {
    /// A decoder of `kind` producing PCM at `rate`.
    pub(crate) fn new(kind: CodecKind, rate: u32) -> Result<Self, CodecError> {
        // Up to 120 ms packets decode at once; the queue holds a few of them.
        let max_packet = rate as usize * 120 / 1000;
        Ok(StreamDecoder {
            kind,
            rate,
            decoder: new_decoder(kind, rate)?,
            queue: PcmQueue::new(4 * max_packet),
            scratch: vec![0; max_packet.max(rate as usize / 50)].into(),
            last_packet_samples: rate as usize / 50,
        })
    }

    /// Decodes or conceals what one tick of the jitter buffer handed out into the queue.
    pub(crate) fn play(&mut self, playout: Playout<'_>) -> Played {
        let out = &mut self.scratch;
        match playout {
            Playout::Frame(frame) => {
                let mut errors = 0;
                for packet in frame.packets() {
                    match self.decoder.decode(packet.payload, out) {
                        Ok(n) => {
                            self.queue.push(&out[..n]);
                            self.last_packet_samples = n;
                        }
                        Err(_) => {
                            errors += 1;
                            let n = self.last_packet_samples.min(out.len());
                            if self.decoder.conceal(&mut out[..n]).is_ok() {
                                self.queue.push(&out[..n]);
                            }
                        }
                    }
                }
                Played::Frame { errors }
            }
            Playout::Continue | Playout::Empty => Played::Nothing,
            Playout::Lost { fec } => {
                let n = self.last_packet_samples.min(out.len());
                let filled = match fec {
                    Some(next) => self.decoder.recover(next.payload, &mut out[..n]),
                    None => self.decoder.conceal(&mut out[..n]),
                };
                if filled.is_ok() {
                    self.queue.push(&out[..n]);
                }
                Played::Lost
            }
            Playout::ComfortNoise { update } => {
                self.queue.clear();
                // RFC 3389 §3: the first byte is the noise level in -dBov.
                let level = update.map(|p| p.payload.first().map_or(127, |l| l & 0x7f));
                Played::ComfortNoise { level }
            }
        }
    }

    /// Samples decoded and not yet taken.
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Moves the oldest decoded samples into `out` (zero-filling what is missing); returns
    /// how many were real.
    pub(crate) fn pop_into(&mut self, out: &mut [i16]) -> usize {
        self.queue.pop_into(out)
    }

    /// Forgets the old stream's decoder state and queued audio (a new source starts).
    pub(crate) fn reset(&mut self) {
        if let Ok(decoder) = new_decoder(self.kind, self.rate) {
            self.decoder = decoder;
        }
        self.queue.clear();
        self.last_packet_samples = self.rate as usize / 50;
    }
}
