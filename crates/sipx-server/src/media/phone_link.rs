//! [`PhoneLink`]: the audio of one phone participant between its media thread (which owns the
//! SIP leg, decodes the room's Opus streams and mixes them, and encodes the caller's voice to
//! Opus) and the rooms thread (which forwards Opus packets between participants and never
//! decodes).
//!
//! Two bounded queues of fixed-size packets under one mutex: the media thread touches it once per
//! 20 ms tick, the rooms thread once per forwarded packet, so the lock is never contended for
//! long and nothing is allocated per packet. When a queue is full the oldest packet is dropped
//! (and counted): late audio is worth less than new audio. The rooms thread also says here
//! who hears the phone (`Audience`): its media thread encodes its voice for the room only for
//! listeners that do not mix with it on that thread.
//!
//! The media thread wakes the rooms thread once per phase of ticks that queued any voice
//! ([`PhoneLink::notify_rooms`]), not once per packet: one wake-up per millisecond at most,
//! whatever the number of phones.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// The largest Opus payload carried (RFC 6716 caps one frame at 1275 bytes).
pub const MAX_PAYLOAD: usize = 1275;
/// Packets queued toward the phone: 20 ms of up to 32 talking participants.
const DOWN_CAPACITY: usize = 32;
/// Packets queued toward the room: 200 ms of the caller's voice.
const UP_CAPACITY: usize = 10;

/// One Opus packet.
#[derive(Clone)]
pub struct LinkPacket {
    /// Toward the phone: which participant it comes from (the rooms thread's key). Toward the
    /// room: unused (0).
    pub source: u64,
    /// Extended RTP sequence number.
    pub seq: u64,
    /// RTP time in 48 kHz ticks (Opus's RTP clock, RFC 7587), extended.
    pub rtp_time: u64,
    /// RFC 6464 level of the audio in -dBov (0 loudest, 127 silence), when known.
    pub level: Option<u8>,
    /// When it was queued: toward the phone, when the rooms thread received it, which is
    /// what the phone's jitter buffers measure (the media thread drains only every 20 ms).
    pub arrived: Instant,
    len: u16,
    data: [u8; MAX_PAYLOAD],
}

impl LinkPacket {
    pub fn payload(&self) -> &[u8] {
        &self.data[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for LinkPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkPacket")
            .field("source", &self.source)
            .field("seq", &self.seq)
            .field("rtp_time", &self.rtp_time)
            .field("len", &self.len)
            .finish()
    }
}

/// A packet's fields but the payload.
struct Header {
    source: u64,
    seq: u64,
    rtp_time: u64,
    level: Option<u8>,
    arrived: Instant,
}

/// A ring of packets. Its memory is reserved up front but slots are written only as packets
/// first need them: a link made for every call (thousands a second under load) costs no page
/// faults or copies for the slots a silent phone never fills.
struct Ring {
    /// At most `capacity` (reserved: never reallocated).
    slots: Vec<LinkPacket>,
    capacity: usize,
    /// Indices of filled slots, oldest first; `free` holds the others already written once.
    filled: VecDeque<usize>,
    free: Vec<usize>,
    dropped: u64,
}

impl Ring {
    fn new(capacity: usize) -> Ring {
        Ring {
            slots: Vec::with_capacity(capacity),
            capacity,
            filled: VecDeque::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            dropped: 0,
        }
    }

    /// A slot to fill: a free one, else a new one while under capacity, else the oldest
    /// (its packet dropped).
    fn take_slot(&mut self, arrived: Instant) -> Option<usize> {
        if let Some(i) = self.free.pop() {
            return Some(i);
        }
        if self.slots.len() < self.capacity {
            self.slots.push(LinkPacket {
                source: 0,
                seq: 0,
                rtp_time: 0,
                level: None,
                arrived,
                len: 0,
                data: [0; MAX_PAYLOAD],
            });
            return Some(self.slots.len() - 1);
        }
        self.dropped += 1;
        self.filled.pop_front()
    }

    fn push(&mut self, header: Header, payload: &[u8]) {
        let Header {
            source,
            seq,
            rtp_time,
            level,
            arrived,
        } = header;
        if payload.len() > MAX_PAYLOAD {
            self.dropped += 1;
            return;
        }
        let Some(index) = self.take_slot(arrived) else {
            return;
        };
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        slot.source = source;
        slot.seq = seq;
        slot.rtp_time = rtp_time;
        slot.level = level;
        slot.arrived = arrived;
        slot.len = payload.len() as u16;
        slot.data[..payload.len()].copy_from_slice(payload);
        self.filled.push_back(index);
    }

    fn drain(&mut self, mut f: impl FnMut(&LinkPacket)) {
        while let Some(index) = self.filled.pop_front() {
            if let Some(p) = self.slots.get(index) {
                f(p);
            }
            self.free.push(index);
        }
    }
}

struct Inner {
    down: Ring,
    up: Ring,
    /// Participants that left: the media thread forgets their decoders.
    gone: Vec<u64>,
    closed: bool,
    /// Who in the room hears the phone.
    audience: Audience,
    /// The loss, in percent, its listeners report on its voice: what its FEC is sized for.
    expected_loss: u8,
    /// The room (a number the rooms thread gives each room) and the phone's participant key in
    /// it, once joined: phones of one room on one media thread mix together.
    joined: Option<Joined>,
}

/// Where a joined phone is: its room's number and its own participant key (`LinkPacket::source`
/// of its voice on other phones' links).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joined {
    pub room: u64,
    pub participant: u64,
}

/// The participants that hear a phone, as the rooms thread last said
/// (`sipx_rooms::Output::PhoneHeard`), with a version that changes whenever the list does.
#[derive(Debug, Default)]
struct Audience {
    /// `None` until the rooms thread says: then the phone counts as heard by everyone.
    heard_by: Option<Vec<u64>>,
    version: u64,
}

/// The link's state as a tick's drain found it (`PhoneLink::drain_downlink`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Downlink {
    /// The audience's version: it changes whenever [`PhoneLink::hearing`] may answer otherwise.
    pub audience: u64,
    /// The link is over ([`PhoneLink::close`]).
    pub closed: bool,
    /// The loss, in percent, to size the caller's Opus FEC for ([`PhoneLink::set_expected_loss`]).
    pub expected_loss: u8,
}

/// Where a phone's voice is heard (`PhoneLink::hearing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hearing {
    /// By phones that mix with it on its media thread: they take its frames as they are.
    pub beside: bool,
    /// By anyone else, through the rooms thread: its voice must be encoded for the room.
    pub elsewhere: bool,
}

/// What wakes the rooms thread when the caller's voice is queued.
pub type Notify = Arc<dyn Fn() + Send + Sync>;

/// Shared by one phone's media leg and the rooms thread. See the module docs.
pub struct PhoneLink {
    inner: Mutex<Inner>,
    notify: Notify,
}

impl std::fmt::Debug for PhoneLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhoneLink").finish_non_exhaustive()
    }
}

impl PhoneLink {
    /// `notify` wakes the rooms thread (from the media thread, [`PhoneLink::notify_rooms`]).
    pub fn new(notify: Notify) -> Arc<PhoneLink> {
        Arc::new(PhoneLink {
            inner: Mutex::new(Inner {
                down: Ring::new(DOWN_CAPACITY),
                up: Ring::new(UP_CAPACITY),
                gone: Vec::with_capacity(8),
                closed: false,
                audience: Audience::default(),
                expected_loss: 0,
                joined: None,
            }),
            notify,
        })
    }

    // A driver's clock: packets are stamped when they cross.
    #[allow(clippy::disallowed_methods)]
    fn now() -> Instant {
        Instant::now()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves two queues of plain data: still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    // ---- rooms thread side ----

    /// Queues a packet of another participant toward the phone, stamped with the time now.
    pub fn push_downlink(&self, source: u64, seq: u64, rtp_time: u64, payload: &[u8]) {
        let header = Header {
            source,
            seq,
            rtp_time,
            level: None,
            arrived: Self::now(),
        };
        self.lock().down.push(header, payload);
    }

    /// A participant left: its decoder on the media side can go.
    pub fn source_gone(&self, source: u64) {
        let mut inner = self.lock();
        if inner.gone.len() < inner.gone.capacity() {
            inner.gone.push(source);
        }
    }

    /// The phone joined room number `room` as participant `participant`.
    pub fn set_joined(&self, joined: Joined) {
        self.lock().joined = Some(joined);
    }

    /// The participants that hear the phone now (`sipx_rooms::Output::PhoneHeard`).
    pub fn set_audience(&self, heard_by: impl IntoIterator<Item = u64>) {
        let mut inner = self.lock();
        let audience = &mut inner.audience;
        let list = audience.heard_by.get_or_insert_with(Vec::new);
        list.clear();
        list.extend(heard_by);
        audience.version += 1;
    }

    /// The loss, in percent, the phone's listeners report (`sipx_rooms::Output::PhoneLoss`).
    pub fn set_expected_loss(&self, percent: u8) {
        self.lock().expected_loss = percent;
    }

    /// Takes the caller's voice packets queued since the last call.
    pub fn drain_uplink(&self, f: impl FnMut(&LinkPacket)) {
        self.lock().up.drain(f);
    }

    // ---- media thread side ----

    /// Takes the room's packets queued since the last tick, and the participants that left;
    /// returns what else the tick needs to know of the link, under the same lock.
    pub fn drain_downlink(
        &self,
        f: impl FnMut(&LinkPacket),
        mut gone: impl FnMut(u64),
    ) -> Downlink {
        let mut inner = self.lock();
        inner.down.drain(f);
        for source in inner.gone.drain(..) {
            gone(source);
        }
        Downlink {
            audience: inner.audience.version,
            closed: inner.closed,
            expected_loss: inner.expected_loss,
        }
    }

    /// Who hears the phone, split by `beside` (true for a participant that mixes with the
    /// phone on its media thread): (someone beside it does, someone else does). Before the
    /// rooms thread said, everyone does.
    pub fn hearing(&self, beside: impl Fn(u64) -> bool) -> Hearing {
        let inner = self.lock();
        match &inner.audience.heard_by {
            None => Hearing {
                beside: true,
                elsewhere: true,
            },
            Some(list) => Hearing {
                beside: list.iter().any(|&k| beside(k)),
                elsewhere: list.iter().any(|&k| !beside(k)),
            },
        }
    }

    /// Queues one packet of the caller's voice; [`PhoneLink::notify_rooms`] tells the rooms
    /// thread.
    pub fn push_uplink(&self, seq: u64, rtp_time: u64, level: Option<u8>, payload: &[u8]) {
        let header = Header {
            source: 0,
            seq,
            rtp_time,
            level,
            arrived: Self::now(),
        };
        self.lock().up.push(header, payload);
    }

    /// Wakes the rooms thread to take the voice queued on this link and on any other.
    pub fn notify_rooms(&self) {
        (self.notify)();
    }

    // ---- either side ----

    /// Where the phone joined, once it has.
    pub fn joined(&self) -> Option<Joined> {
        self.lock().joined
    }

    /// The link is over (the call ended or the participant was removed).
    pub fn close(&self) {
        self.lock().closed = true;
    }

    /// (The media thread learns it at each drain, [`Downlink::closed`].)
    #[cfg(test)]
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Packets dropped because a queue was full: (toward the phone, toward the room).
    pub fn dropped(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.down.dropped, inner.up.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Arc<PhoneLink> {
        PhoneLink::new(Arc::new(|| {}))
    }

    #[test]
    fn packets_cross_in_order_and_the_oldest_is_dropped_when_full() {
        let link = link();
        for seq in 0..(DOWN_CAPACITY as u64 + 3) {
            link.push_downlink(7, seq, seq * 960, &[seq as u8; 3]);
        }
        let mut seen = Vec::new();
        link.drain_downlink(
            |p| seen.push((p.source, p.seq, p.payload().to_vec())),
            |_| {},
        );
        assert_eq!(seen.len(), DOWN_CAPACITY);
        assert_eq!(seen[0].1, 3);
        assert_eq!(seen[0].2, vec![3u8; 3]);
        assert_eq!(link.dropped(), (3, 0));
        let mut again = 0;
        link.drain_downlink(|_| again += 1, |_| {});
        assert_eq!(again, 0);
    }

    #[test]
    fn uplink_is_taken_once_the_rooms_thread_is_woken_and_oversized_payloads_are_refused() {
        let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let w = woken.clone();
        let link = PhoneLink::new(Arc::new(move || {
            w.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }));
        link.push_uplink(1, 960, Some(30), &[1, 2, 3]);
        link.push_uplink(2, 1920, None, &[0; MAX_PAYLOAD + 1]);
        assert_eq!(woken.load(std::sync::atomic::Ordering::Relaxed), 0);
        link.notify_rooms();
        assert_eq!(woken.load(std::sync::atomic::Ordering::Relaxed), 1);
        let mut got = Vec::new();
        link.drain_uplink(|p| got.push((p.seq, p.level, p.payload().len())));
        assert_eq!(got, vec![(1, Some(30), 3)]);
        assert_eq!(link.dropped(), (0, 1));
    }

    #[test]
    fn departures_reach_the_media_side_once() {
        let link = link();
        link.source_gone(4);
        let mut gone = Vec::new();
        let before = link.drain_downlink(|_| {}, |s| gone.push(s));
        let everyone = Hearing {
            beside: true,
            elsewhere: true,
        };
        assert_eq!(link.hearing(|_| false), everyone, "heard until told");
        link.set_audience([]);
        assert_ne!(
            link.drain_downlink(|_| {}, |s| gone.push(s)).audience,
            before.audience
        );
        assert_eq!(gone, vec![4]);
        let nobody = Hearing {
            beside: false,
            elsewhere: false,
        };
        assert_eq!(link.hearing(|_| true), nobody);
        link.set_audience([7, 9]);
        let hearing = link.hearing(|k| k == 7);
        assert!(hearing.beside && hearing.elsewhere);
        let hearing = link.hearing(|k| k == 7 || k == 9);
        assert!(hearing.beside && !hearing.elsewhere);
        assert!(!link.is_closed());
        link.close();
        assert!(link.is_closed());
        assert!(link.drain_downlink(|_| {}, |_| {}).closed);
    }

    #[test]
    fn the_loss_listeners_report_reaches_the_media_side_at_each_drain() {
        let link = link();
        assert_eq!(link.drain_downlink(|_| {}, |_| {}).expected_loss, 0);
        link.set_expected_loss(10);
        assert_eq!(link.drain_downlink(|_| {}, |_| {}).expected_loss, 10);
        assert_eq!(link.drain_downlink(|_| {}, |_| {}).expected_loss, 10);
        link.set_expected_loss(0);
        assert_eq!(link.drain_downlink(|_| {}, |_| {}).expected_loss, 0);
    }
}
