//! The answers a stateless UAS sent lately (RFC 3261 §8.2.7: a 401 keeps no transaction), so
//! that a retransmission of their request gets the same bytes again. A fresh challenge, with
//! another nonce and tag, would reach a client that already answered the first one as a second,
//! unexpected 401 (sipp aborts on it).
//!
//! What a transaction would have absorbed, and no more: UDP retransmissions, for Timer J
//! (64·T1), of the very request (same Call-ID, CSeq and source as well as the same branch:
//! clients reuse branches, and devices behind different NATs may write the same Via). Bounded in entries and bytes: under a flood of unauthenticated
//! requests the oldest go first, and a late retransmission then earns a fresh challenge, as it
//! would from a stateless UAS.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// At most this many answers are kept...
const MAX_ENTRIES: usize = 4096;
/// ...and this many bytes of them (answers copy the request's Vias: a hostile one can be big).
const MAX_BYTES: usize = 4 << 20;

/// Which request an answer was for, beyond its transaction key: its Call-ID, CSeq number,
/// and where the answer went.
pub(crate) type RequestId = (String, u32, std::net::SocketAddr);

struct Answer {
    bytes: Vec<u8>,
    request: RequestId,
    /// Its place in `order` (a key answered again later gets a new one).
    serial: u64,
    /// Counted against [`MAX_BYTES`]: the answer, the key's text and the request id.
    weight: usize,
}

pub(crate) struct RecentAnswers<K> {
    by_key: HashMap<K, Answer, crate::FastHash>,
    order: VecDeque<(Instant, K, u64)>,
    bytes: usize,
    next_serial: u64,
    ttl: Duration,
}

impl<K: Hash + Eq + Clone> RecentAnswers<K> {
    /// Answers are kept for `ttl` (Timer J).
    pub fn new(ttl: Duration) -> Self {
        RecentAnswers {
            by_key: HashMap::default(),
            order: VecDeque::new(),
            bytes: 0,
            next_serial: 0,
            ttl,
        }
    }

    /// Keeps `bytes`, the answer to the request `request` of transaction `key`, whose text is
    /// `key_len` bytes long.
    pub fn remember(
        &mut self,
        now: Instant,
        key: K,
        key_len: usize,
        request: RequestId,
        bytes: Vec<u8>,
    ) {
        self.expire(now);
        let weight = bytes.len() + 2 * key_len + request.0.len();
        if weight > MAX_BYTES / 16 {
            // One answer must not push out a thousand others.
            return;
        }
        while self.order.len() >= MAX_ENTRIES || self.bytes + weight > MAX_BYTES {
            if !self.drop_oldest() {
                break;
            }
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        let answer = Answer {
            bytes,
            request,
            serial,
            weight,
        };
        if let Some(old) = self.by_key.insert(key.clone(), answer) {
            self.bytes -= old.weight;
        }
        self.bytes += weight;
        self.order.push_back((now, key, serial));
    }

    /// The answer to send again when the request `request` of transaction `key` is a
    /// retransmission of one answered lately; `None` when it is a new request (its answer is
    /// then forgotten: another request under the same key is not a retransmission).
    pub fn answer(&mut self, now: Instant, key: &K, request: &RequestId) -> Option<Vec<u8>> {
        self.expire(now);
        let answer = self.by_key.get(key)?;
        if answer.request == *request {
            return Some(answer.bytes.clone());
        }
        if let Some(old) = self.by_key.remove(key) {
            self.bytes -= old.weight;
        }
        None
    }

    fn expire(&mut self, now: Instant) {
        while self
            .order
            .front()
            .is_some_and(|(at, _, _)| now.saturating_duration_since(*at) >= self.ttl)
        {
            self.drop_oldest();
        }
    }

    /// Forgets the oldest answer; false when there is none.
    fn drop_oldest(&mut self) -> bool {
        let Some((_, key, serial)) = self.order.pop_front() else {
            return false;
        };
        if self.by_key.get(&key).is_some_and(|a| a.serial == serial)
            && let Some(old) = self.by_key.remove(&key)
        {
            self.bytes -= old.weight;
        }
        true
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(call: &str, cseq: u32) -> RequestId {
        (call.to_owned(), cseq, ([192, 0, 2, 1], 5060).into())
    }

    #[test]
    fn a_retransmission_gets_the_answer_until_timer_j() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(32);
        let mut recent = RecentAnswers::new(ttl);
        recent.remember(t0, "k1", 2, id("c", 1), b"401 a".to_vec());
        assert_eq!(
            recent.answer(t0, &"k1", &id("c", 1)),
            Some(b"401 a".to_vec())
        );
        assert_eq!(
            recent.answer(t0 + ttl / 2, &"k1", &id("c", 1)),
            Some(b"401 a".to_vec())
        );
        assert_eq!(recent.answer(t0 + ttl, &"k1", &id("c", 1)), None);
        assert_eq!(recent.len(), 0);
    }

    #[test]
    fn the_same_branch_on_another_request_is_a_new_request() {
        let t0 = Instant::now();
        let mut recent = RecentAnswers::new(Duration::from_secs(32));
        recent.remember(t0, "k1", 2, id("c", 1), b"401 a".to_vec());
        // A client that reused its branch for the REGISTER with credentials (CSeq 2).
        assert_eq!(recent.answer(t0, &"k1", &id("c", 2)), None);
        assert_eq!(recent.answer(t0, &"k1", &id("c", 1)), None, "forgotten");
        // Another device behind another NAT that wrote the same Via and branch.
        recent.remember(t0, "k1", 2, id("c", 1), b"401 a".to_vec());
        let elsewhere = ("c".to_owned(), 1, ([198, 51, 100, 7], 5060).into());
        assert_eq!(recent.answer(t0, &"k1", &elsewhere), None);
        // Answered again under the same key: the newer answer stays when the older expires.
        recent.remember(t0, "k2", 2, id("d", 1), b"401 b".to_vec());
        recent.remember(
            t0 + Duration::from_secs(20),
            "k2",
            2,
            id("d", 1),
            b"401 c".to_vec(),
        );
        let later = t0 + Duration::from_secs(40);
        assert_eq!(
            recent.answer(later, &"k2", &id("d", 1)),
            Some(b"401 c".to_vec())
        );
    }

    #[test]
    fn entries_and_bytes_are_bounded_oldest_first() {
        let t0 = Instant::now();
        let mut recent = RecentAnswers::new(Duration::from_secs(32));
        for i in 0..(MAX_ENTRIES + 10) {
            recent.remember(t0, i, 8, id("c", 1), vec![0; 100]);
        }
        assert_eq!(recent.len(), MAX_ENTRIES);
        assert_eq!(recent.answer(t0, &0, &id("c", 1)), None);
        assert!(recent.answer(t0, &(MAX_ENTRIES + 9), &id("c", 1)).is_some());
        // Big answers: the byte bound holds, and one too big is not kept at all.
        let big = MAX_BYTES / 32;
        for i in 0..100 {
            recent.remember(t0, 10_000 + i, 8, id("c", 1), vec![0; big]);
        }
        assert!(recent.bytes <= MAX_BYTES);
        assert!(recent.answer(t0, &10_099, &id("c", 1)).is_some());
        recent.remember(t0, 20_000, 8, id("c", 1), vec![0; MAX_BYTES / 8]);
        assert_eq!(recent.answer(t0, &20_000, &id("c", 1)), None);
    }
}
