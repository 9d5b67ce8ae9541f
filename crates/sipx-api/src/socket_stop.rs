//! The end of long-lived sockets (room signalling) at the service's stop. They outlive the
//! HTTP server's graceful stop (hyper hands an upgraded socket over and forgets it), and a
//! drain keeps them open on purpose: browsers go on talking to the phones still in calls. Once
//! the calls are over, each socket is told to close with a going-away frame, and the stop
//! waits a little for those frames to leave, so browsers learn the server stopped instead of
//! seeing the connection drop.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Shared by the sockets and the stop. Cheap to clone.
#[derive(Clone)]
pub struct SocketStop {
    inner: Arc<Inner>,
}

struct Inner {
    stopping: watch::Sender<bool>,
    open: watch::Sender<usize>,
}

impl Default for SocketStop {
    fn default() -> Self {
        SocketStop {
            inner: Arc::new(Inner {
                stopping: watch::Sender::new(false),
                open: watch::Sender::new(0),
            }),
        }
    }
}

/// An open socket's place: counted until dropped.
pub struct OpenSocket {
    inner: Arc<Inner>,
    stopping: watch::Receiver<bool>,
}

impl SocketStop {
    /// Counts a socket as open until the returned place is dropped.
    pub fn open(&self) -> OpenSocket {
        self.inner.open.send_modify(|n| *n += 1);
        OpenSocket {
            inner: self.inner.clone(),
            stopping: self.inner.stopping.subscribe(),
        }
    }

    /// Tells every open socket to close, and waits until they have or `within` has passed;
    /// true when they all closed.
    pub async fn close_all(&self, within: Duration) -> bool {
        self.inner.stopping.send_replace(true);
        let mut open = self.inner.open.subscribe();
        tokio::time::timeout(within, open.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Sockets open now.
    pub fn open_count(&self) -> usize {
        *self.inner.open.borrow()
    }
}

impl OpenSocket {
    /// Resolves once the service stops (at once if it has).
    pub async fn stopping(&mut self) {
        // An error means the sender is gone, which it cannot be while `inner` is held.
        let _ = self.stopping.wait_for(|s| *s).await;
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.inner.open.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_stop_tells_open_sockets_and_waits_for_them_to_close() {
        let stop = SocketStop::default();
        assert!(stop.close_all(Duration::from_secs(1)).await, "nothing open");
        let stop = SocketStop::default();
        let mut socket = stop.open();
        let lingering = stop.open();
        assert_eq!(stop.open_count(), 2);
        let closer = tokio::spawn(async move {
            socket.stopping().await;
            drop(socket);
        });
        // One socket never closes: the stop gives up after its bound.
        assert!(!stop.close_all(Duration::from_secs(2)).await);
        closer.await.unwrap();
        assert_eq!(stop.open_count(), 1);
        drop(lingering);
        assert!(stop.close_all(Duration::from_secs(2)).await);
        // A socket opened after the stop learns of it at once.
        let mut late = stop.open();
        tokio::time::timeout(Duration::from_millis(1), late.stopping())
            .await
            .unwrap();
    }
}
