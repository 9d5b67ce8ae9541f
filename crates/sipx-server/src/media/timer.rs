//! A wake-up for the media poll precise to the microsecond. epoll's timeout counts whole
//! milliseconds (and mio rounds up), which would start 20 ms ticks up to 1 ms late; a Linux
//! timerfd in the same poll wakes the thread on time while sockets keep waking it at once.
//! Elsewhere there is no timer, and the poll's own timeout is all there is.

use std::io;
use std::time::Duration;

use mio::{Registry, Token};

#[cfg(target_os = "linux")]
pub(crate) struct Timer {
    fd: std::os::fd::OwnedFd,
}

#[cfg(target_os = "linux")]
impl Timer {
    /// A timer whose expiry is reported on `token`.
    pub fn new(registry: &Registry, token: Token) -> io::Result<Timer> {
        use rustix::time::{TimerfdClockId, TimerfdFlags, timerfd_create};
        use std::os::fd::AsRawFd;
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        registry.register(
            &mut mio::unix::SourceFd(&fd.as_raw_fd()),
            token,
            mio::Interest::READABLE,
        )?;
        Ok(Timer { fd })
    }

    /// Fires once, `after` from now (at once if zero). Replaces any earlier setting.
    pub fn set(&self, after: Duration) -> io::Result<()> {
        use rustix::time::{Itimerspec, TimerfdTimerFlags, Timespec, timerfd_settime};
        // A zero value would disarm the timer; one nanosecond fires at once.
        let after = after.max(Duration::from_nanos(1));
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(after.subsec_nanos()),
            },
        };
        timerfd_settime(&self.fd, TimerfdTimerFlags::empty(), &spec)?;
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) struct Timer;

#[cfg(not(target_os = "linux"))]
impl Timer {
    pub fn new(_: &Registry, _: Token) -> io::Result<Timer> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub fn set(&self, _: Duration) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::time::Instant;

    use mio::{Events, Poll};

    use super::*;

    #[test]
    fn the_poll_wakes_when_the_timer_fires_within_the_millisecond() {
        let mut poll = Poll::new().unwrap();
        let timer = Timer::new(poll.registry(), Token(7)).unwrap();
        let mut events = Events::with_capacity(4);
        let mut fastest = Duration::MAX;
        // Several rounds: the timer re-arms, and each expiry is one readiness event.
        for _ in 0..5 {
            let start = Instant::now();
            timer.set(Duration::from_micros(300)).unwrap();
            poll.poll(&mut events, Some(Duration::from_secs(2)))
                .unwrap();
            let waited = start.elapsed();
            assert!(events.iter().any(|e| e.token() == Token(7)), "{waited:?}");
            assert!(waited >= Duration::from_micros(300), "{waited:?}");
            fastest = fastest.min(waited);
        }
        // epoll's own timeout cannot wake before a whole millisecond; the timer can (the best
        // of five rounds, so a busy machine does not fail the test).
        assert!(fastest < Duration::from_millis(1), "{fastest:?}");
    }
}
