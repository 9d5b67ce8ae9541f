//! Network delay estimation for the jitter buffer, in RTP timestamp units.
//!
//! Every packet gives a *transit*: arrival time (on the stream's clock, from the first packet)
//! minus its timestamp. The smallest recent transit is the *base*, the path's fastest delay;
//! a packet's transit above the base is how late it was compared to that fastest one. The
//! buffer must hold the largest recent such lateness, the *spread*, so the target delay follows
//! it. Both come from a sliding window of time buckets, so a sender clock running slightly fast
//! or slow (which makes transit drift) moves the base with it instead of being held forever.

use std::time::Instant;

use crate::stats::duration_to_units;

/// The window is this many buckets; old buckets fall out as packets arrive in new ones.
const BUCKETS: usize = 4;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    index: i64,
    min: i64,
    max: i64,
}

/// One packet's arrival time and transit, in timestamp units.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    pub(super) arrival: i64,
    pub(super) transit: i64,
}

/// Sliding minimum/maximum of transit and the target delay derived from them.
#[derive(Debug, Clone)]
pub(super) struct DelayTracker {
    rate: u32,
    epoch: Option<Instant>,
    bucket_units: i64,
    buckets: [Option<Bucket>; BUCKETS],
    /// Target playout delay above the base, smoothed: rises at once, decays slowly.
    target: f64,
    min_target: f64,
    max_target: f64,
    /// Added to the spread: tick quantisation and packets longer than a frame need it.
    margin: f64,
}

impl DelayTracker {
    /// All durations in timestamp units; `window` is the length of the sliding window.
    pub(super) fn new(
        rate: u32,
        window: i64,
        initial: i64,
        min: i64,
        max: i64,
        margin: i64,
    ) -> Self {
        DelayTracker {
            rate,
            epoch: None,
            bucket_units: (window / BUCKETS as i64).max(1),
            buckets: [None; BUCKETS],
            target: initial as f64,
            min_target: min as f64,
            max_target: max.max(min) as f64,
            margin: margin as f64,
        }
    }

    /// `now` on the stream's clock, counted from the first instant seen.
    pub(super) fn arrival(&mut self, now: Instant) -> i64 {
        let epoch = *self.epoch.get_or_insert(now);
        duration_to_units(now.saturating_duration_since(epoch), self.rate) as i64
    }

    /// One packet's arrival and transit (arrival minus extended timestamp), not yet recorded:
    /// the caller first checks it is not a timestamp jump.
    pub(super) fn measure(&mut self, now: Instant, ts: i64) -> Sample {
        let arrival = self.arrival(now);
        Sample {
            arrival,
            transit: arrival - ts,
        }
    }

    /// Records a measured packet in the window.
    pub(super) fn record(&mut self, sample: Sample) {
        let Sample { arrival, transit } = sample;
        let index = arrival / self.bucket_units;
        let slot = &mut self.buckets[index.rem_euclid(BUCKETS as i64) as usize];
        match slot {
            Some(b) if b.index == index => {
                b.min = b.min.min(transit);
                b.max = b.max.max(transit);
            }
            _ => {
                *slot = Some(Bucket {
                    index,
                    min: transit,
                    max: transit,
                })
            }
        }
        let desired = self.desired();
        if desired > self.target {
            self.target = desired;
        }
    }

    /// Buckets within the window that ends at the newest one; in silence the window stays put,
    /// so the base is kept rather than forgotten.
    fn live(&self) -> impl Iterator<Item = &Bucket> {
        let newest = self
            .buckets
            .iter()
            .flatten()
            .map(|b| b.index)
            .max()
            .unwrap_or(0);
        self.buckets
            .iter()
            .flatten()
            .filter(move |b| b.index > newest - BUCKETS as i64)
    }

    /// The smallest recent transit, once a packet has been seen.
    pub(super) fn base(&self) -> Option<i64> {
        self.live().map(|b| b.min).min()
    }

    /// The largest recent lateness above the base.
    pub(super) fn spread(&self) -> i64 {
        match (self.base(), self.live().map(|b| b.max).max()) {
            (Some(base), Some(max)) => max - base,
            _ => 0,
        }
    }

    fn desired(&self) -> f64 {
        (self.spread() as f64 + self.margin).clamp(self.min_target, self.max_target)
    }

    /// Once per playout tick: let the target decay towards what the network needs now, with a
    /// time constant of about 250 ticks (5 s), so one burst does not shrink the buffer at once.
    pub(super) fn on_tick(&mut self) {
        let desired = self.desired();
        if desired < self.target {
            self.target += (desired - self.target) / 250.0;
        }
    }

    /// Target delay above the base, in timestamp units.
    pub(super) fn target(&self) -> i64 {
        self.target.round() as i64
    }

    /// The timestamp that should be playing at `now`: packets at it arrived `target` ago
    /// on the fastest path.
    pub(super) fn ideal_cursor(&mut self, now: Instant) -> Option<i64> {
        let base = self.base()?;
        Some(self.arrival(now) - base - self.target())
    }

    /// Forgets the base (after a resync or a new source); the target and the clock stay.
    pub(super) fn reset_base(&mut self) {
        self.buckets = [None; BUCKETS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn target_follows_spread_up_at_once_and_down_slowly() {
        let t0 = Instant::now();
        // 8 kHz, 2 s window, initial 40 ms, min 20 ms, max 200 ms, margin 20 ms.
        let mut d = DelayTracker::new(8000, 16_000, 320, 160, 1600, 160);
        for i in 0..100i64 {
            // Every fifth packet 50 ms late.
            let late = if i % 5 == 0 { 50 } else { 0 };
            let s = d.measure(t0 + Duration::from_millis((20 * i + late) as u64), 160 * i);
            d.record(s);
        }
        assert_eq!(d.spread(), 400);
        assert_eq!(d.target(), 560);
        // Calm for long enough that the late packets leave the window.
        for i in 100..400i64 {
            let s = d.measure(t0 + Duration::from_millis((20 * i) as u64), 160 * i);
            d.record(s);
            d.on_tick();
        }
        assert_eq!(d.spread(), 0);
        assert!(d.target() < 560 && d.target() > 160, "{}", d.target());
    }
}
