//! A stream connection's queue of messages for its writer. Unbounded in count, so that a burst
//! is never cut short: over TCP nothing retransmits a message dropped here (RFC 3261 §17.1.2.1
//! leaves that to the transport), and one connection may carry hundreds of calls (a proxy in
//! front of SIPx), whose BYEs all go at once when a room closes or SIPx stops. Bounded in
//! bytes instead: messages for a peer that has stopped reading while they piled up are
//! dropped ([`PushError::Full`]) rather than growing SIPx's memory without end.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

/// The most bytes waiting for one connection's writer: a few thousand messages.
pub(crate) const MAX_QUEUED_BYTES: usize = 4 << 20;

/// The core's end (the one producer): where messages for the connection go.
#[derive(Debug)]
pub(crate) struct WriteQueue {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    /// Messages dropped so far: the first drop is worth a warning, the next ones a count.
    dropped: u64,
    /// The connection's peer, for that warning.
    peer: std::net::SocketAddr,
}

/// The writer's end.
pub(crate) struct WriteQueueReader {
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
}

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The writer has gone: the connection is closing.
    Closed,
    /// More than [`MAX_QUEUED_BYTES`] wait: the peer is not reading.
    Full,
}

/// The queue of the connection to `peer`.
pub(crate) fn write_queue(peer: std::net::SocketAddr) -> (WriteQueue, WriteQueueReader) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        WriteQueue {
            tx,
            queued: queued.clone(),
            dropped: 0,
            peer,
        },
        WriteQueueReader { rx, queued },
    )
}

impl WriteQueue {
    pub fn push(&mut self, bytes: Vec<u8>) -> Result<(), PushError> {
        let len = bytes.len();
        if self.tx.is_closed() {
            return Err(PushError::Closed);
        }
        if self.queued.load(Ordering::Relaxed) + len > MAX_QUEUED_BYTES {
            self.dropped += 1;
            return Err(PushError::Full);
        }
        self.queued.fetch_add(len, Ordering::Relaxed);
        self.tx.send(bytes).map_err(|e| {
            self.queued.fetch_sub(e.0.len(), Ordering::Relaxed);
            PushError::Closed
        })
    }

    /// Queues `bytes`; a message dropped for a stuck peer is counted, and the first one of
    /// the connection logged.
    pub fn send(&mut self, bytes: Vec<u8>) {
        if self.push(bytes) == Err(PushError::Full) {
            metrics::counter!("sipx_sip_stream_send_dropped_total").increment(1);
            if self.dropped == 1 {
                tracing::warn!(peer = %self.peer, "SIP messages not sent: the connection's peer reads nothing (more are counted in sipx_sip_stream_send_dropped_total)");
            }
        }
    }
}

impl WriteQueueReader {
    /// The next message to write; `None` once the core has let go of the connection and
    /// everything queued has been taken.
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        let bytes = self.rx.recv().await?;
        self.queued.fetch_sub(bytes.len(), Ordering::Relaxed);
        Some(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_is_kept_whole_and_messages_for_a_peer_that_reads_nothing_are_dropped() {
        let (mut queue, mut reader) = write_queue(([127, 0, 0, 1], 5060).into());
        // Far more messages than the old fixed queue of 256 held.
        for i in 0..5000u32 {
            queue.push(i.to_be_bytes().repeat(100)).unwrap();
        }
        for i in 0..5000u32 {
            assert_eq!(reader.next().await, Some(i.to_be_bytes().repeat(100)));
        }
        // Nobody reads: past the byte bound, pushes are refused, and reading makes room again.
        let message = vec![b'x'; 64 * 1024];
        let fit = MAX_QUEUED_BYTES / message.len();
        for _ in 0..fit {
            queue.push(message.clone()).unwrap();
        }
        assert_eq!(queue.push(message.clone()), Err(PushError::Full));
        assert!(reader.next().await.is_some());
        assert_eq!(queue.push(message.clone()), Ok(()));
        // The writer gone: closed.
        drop(reader);
        assert_eq!(queue.push(vec![1]), Err(PushError::Closed));
    }
}
