//! RTP port allocation: an even port for RTP and the next one for RTCP, from a configured
//! range, walked round-robin so a port just released is not handed out again at once (late
//! packets of the old call would land in the new one).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Mutex;

/// A bound RTP socket and its RTCP neighbour.
#[derive(Debug)]
pub struct PortPair {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
}

impl PortPair {
    pub fn rtp_port(&self) -> u16 {
        self.rtp.local_addr().map_or(0, |a| a.port())
    }
}

pub(crate) struct PortAllocator {
    ip: IpAddr,
    first: u16,
    /// Number of even ports in the range.
    pairs: u16,
    cursor: Mutex<u16>,
}

impl PortAllocator {
    /// The pairs of `min..=max`: each even port whose odd neighbour is in the range too (none,
    /// for a range without one: then every allocation fails, never binds outside it).
    pub fn new(ip: IpAddr, min: u16, max: u16) -> Self {
        let first = u32::from(min) + u32::from(min % 2);
        let pairs = (u32::from(max) + 1).saturating_sub(first) / 2;
        let (first, pairs) = (
            u16::try_from(first).unwrap_or(u16::MAX),
            u16::try_from(pairs).unwrap_or(0),
        );
        PortAllocator {
            ip,
            first,
            pairs,
            cursor: Mutex::new(0),
        }
    }

    /// Whether the range holds no pair at all.
    pub fn is_empty(&self) -> bool {
        self.pairs == 0
    }

    /// Binds the next free pair; tries the whole range once.
    pub fn allocate(&self) -> std::io::Result<PortPair> {
        if self.pairs == 0 {
            return Err(no_free_pair());
        }
        let start = {
            let mut c = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
            let s = *c;
            *c = (*c + 1) % self.pairs;
            s
        };
        for i in 0..self.pairs {
            let index = (start + i) % self.pairs;
            let port = self.first + 2 * index;
            let Ok(rtp) = UdpSocket::bind(SocketAddr::new(self.ip, port)) else {
                continue;
            };
            let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(self.ip, port + 1)) else {
                continue;
            };
            rtp.set_nonblocking(true)?;
            rtcp.set_nonblocking(true)?;
            if i > 0 {
                let mut c = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
                *c = (index + 1) % self.pairs;
            }
            return Ok(PortPair { rtp, rtcp });
        }
        Err(no_free_pair())
    }
}

fn no_free_pair() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free RTP port pair in media.rtp_port_min..media.rtp_port_max",
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pairs_are_even_and_adjacent_and_skip_busy_ports() {
        let a = PortAllocator::new(IpAddr::from([127, 0, 0, 1]), 41_001, 41_010);
        let p1 = a.allocate().unwrap();
        assert_eq!(p1.rtp_port(), 41_002);
        assert_eq!(p1.rtcp.local_addr().unwrap().port(), 41_003);
        // Someone else holds the next RTCP port: that pair is skipped.
        let _busy = UdpSocket::bind("127.0.0.1:41005").unwrap();
        let p2 = a.allocate().unwrap();
        assert_eq!(p2.rtp_port(), 41_006);
    }

    #[test]
    fn the_range_is_inclusive_and_never_left() {
        // 41_030..=41_037 holds four pairs, the last ending on the range's last port.
        let a = PortAllocator::new(IpAddr::from([127, 0, 0, 1]), 41_030, 41_037);
        let pairs: Vec<_> = (0..4).map(|_| a.allocate().unwrap()).collect();
        let mut ports: Vec<u16> = pairs.iter().map(PortPair::rtp_port).collect();
        ports.sort_unstable();
        assert_eq!(ports, [41_030, 41_032, 41_034, 41_036]);
        assert!(a.allocate().is_err());
        // No even port with its neighbour inside: nothing, rather than a port outside.
        let none = PortAllocator::new(IpAddr::from([127, 0, 0, 1]), 41_041, 41_042);
        assert!(none.allocate().is_err());
        let top = PortAllocator::new(IpAddr::from([127, 0, 0, 1]), 65_535, 65_535);
        assert!(top.allocate().is_err());
    }

    #[test]
    fn an_exhausted_range_is_an_error() {
        let a = PortAllocator::new(IpAddr::from([127, 0, 0, 1]), 41_020, 41_022);
        let _p = a.allocate().unwrap();
        assert!(a.allocate().is_err());
    }
}
