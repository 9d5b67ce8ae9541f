//! The outgoing packet queue: a ring of preallocated datagram buffers, so producing a packet
//! (at `push_frame`, at an RTCP or DTMF timeout) and handing it out (`poll_transmit`) never
//! allocates. Packets are stored in clear; SRTP is applied in the caller's buffer. A packet
//! may wait for its time (`push_at`): packets of other lengths than the 20 ms tick leave
//! evenly spaced, not in bursts on the tick.

use std::time::Instant;

use crate::error::MediaError;

/// Datagrams waiting: a 60 ms G.711 frame split at 10 ms is six, plus RTCP and DTMF.
const SLOTS: usize = 16;
/// Room for any packet SIPx builds, leaving space for the SRTP trailer within a 1500-byte MTU.
const SLOT_SIZE: usize = 1400;

/// Which socket and protection a queued packet takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Channel {
    Rtp,
    Rtcp,
}

#[derive(Debug)]
struct Slot {
    channel: Channel,
    /// Not to be sent before this.
    due: Option<Instant>,
    len: usize,
    data: Box<[u8]>,
}

#[derive(Debug)]
pub(super) struct TransmitQueue {
    slots: Box<[Slot]>,
    head: usize,
    len: usize,
}

impl TransmitQueue {
    pub(super) fn new() -> Self {
        let slots = (0..SLOTS)
            .map(|_| Slot {
                channel: Channel::Rtp,
                due: None,
                len: 0,
                data: vec![0; SLOT_SIZE].into(),
            })
            .collect();
        TransmitQueue {
            slots,
            head: 0,
            len: 0,
        }
    }

    /// Lets `write` fill the next free slot, returning its length (0: nothing to send). False
    /// if the queue is full or the write failed: the packet is dropped.
    pub(super) fn push(
        &mut self,
        channel: Channel,
        write: impl FnOnce(&mut [u8]) -> Result<usize, MediaError>,
    ) -> bool {
        self.push_at(channel, None, write)
    }

    /// As [`TransmitQueue::push`], for a packet not to leave before `due`; what is queued
    /// after it waits for it too (order is kept).
    pub(super) fn push_at(
        &mut self,
        channel: Channel,
        due: Option<Instant>,
        write: impl FnOnce(&mut [u8]) -> Result<usize, MediaError>,
    ) -> bool {
        if self.len == SLOTS {
            return false;
        }
        let slot = &mut self.slots[(self.head + self.len) % SLOTS];
        match write(&mut slot.data) {
            Ok(0) => true,
            Ok(len) => {
                slot.channel = channel;
                slot.due = due;
                slot.len = len;
                self.len += 1;
                true
            }
            Err(_) => false,
        }
    }

    /// When the oldest packet may leave, if it has to wait.
    pub(super) fn waiting_until(&self) -> Option<Instant> {
        (self.len > 0).then(|| self.slots[self.head].due).flatten()
    }

    /// Lets every packet queued leave at once (the leg is ending).
    pub(super) fn release_all(&mut self) {
        for k in 0..self.len {
            self.slots[(self.head + k) % SLOTS].due = None;
        }
    }

    /// The oldest packet, if it may leave at `now`, removed from the queue (its bytes stay
    /// valid until the next push).
    pub(super) fn pop(&mut self, now: Instant) -> Option<(Channel, &[u8])> {
        if self.len == 0 || self.slots[self.head].due.is_some_and(|due| due > now) {
            return None;
        }
        let slot = &self.slots[self.head];
        self.head = (self.head + 1) % SLOTS;
        self.len -= 1;
        Some((slot.channel, &slot.data[..slot.len]))
    }
}
