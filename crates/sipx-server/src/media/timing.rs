//! What a media thread measures about its own clock, cheaply enough to run on every frame:
//! fixed-bucket histograms (plain counts, no atomics, no allocation) kept by the thread and
//! published to the metrics registry about once a second.
//!
//! Definitions (the media benchmark and dashboards read these). A *tick* is one phase's turn
//! (`phases`): the legs of that phase each give and take their 20 ms frame.
//! - **added latency** of a frame: from the instant its tick was due to the instant the packet
//!   carrying it was handed to the socket. It leaves out the jitter buffer's deliberate delay
//!   (its target, and the wait until the leg's tick) and counts everything the engine adds on
//!   top: the thread waking late, earlier work still running, the legs served before this one
//!   in the same tick, decoding, transcoding, encoding, SRTP, the send.
//! - **tick busy time**: from the tick's start to the end of its last leg's work.
//! - a **late tick** is one whose work ends after its legs' next tick is due (20 ms after
//!   this one): the thread did not keep up with real time. A **late frame** is one whose added
//!   latency is 20 ms or more: it left in the slot of the frame after it.
//!
//! Histograms are exported as Prometheus `_bucket` (cumulative, with an `le` label) and
//! `_count` counters; `histogram_quantile()` works on them as on any histogram.

use std::time::Duration;

/// Bucket upper bounds in microseconds, and their `le` labels in seconds.
const BOUNDS: [(u64, &str); 15] = [
    (50, "0.00005"),
    (100, "0.0001"),
    (200, "0.0002"),
    (300, "0.0003"),
    (500, "0.0005"),
    (750, "0.00075"),
    (1_000, "0.001"),
    (1_500, "0.0015"),
    (2_000, "0.002"),
    (3_000, "0.003"),
    (5_000, "0.005"),
    (10_000, "0.01"),
    (20_000, "0.02"),
    (50_000, "0.05"),
    (100_000, "0.1"),
];
const BUCKETS: usize = BOUNDS.len() + 1;

/// Counts of durations per bucket since the last [`Histogram::take`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Histogram {
    counts: [u64; BUCKETS],
}

impl Histogram {
    pub fn record(&mut self, value: Duration) {
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        // Bounds are inclusive upper limits (`le`); the last slot is +Inf.
        let index = BOUNDS.partition_point(|&(bound, _)| bound < micros);
        self.counts[index] += 1;
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The counts so far, cumulative as Prometheus wants them (bucket i holds every value
    /// ≤ its bound; the last is the total), and starts again from zero.
    pub fn take(&mut self) -> [u64; BUCKETS] {
        let mut cumulative = [0u64; BUCKETS];
        let mut running = 0;
        for (out, count) in cumulative.iter_mut().zip(&self.counts) {
            running += count;
            *out = running;
        }
        self.counts = [0; BUCKETS];
        cumulative
    }
}

/// One histogram's counters in the registry, looked up once.
struct Exported {
    buckets: Vec<metrics::Counter>,
    count: metrics::Counter,
}

impl Exported {
    fn new(name: &'static str) -> Self {
        let bucket_name = format!("{name}_bucket");
        let mut buckets: Vec<metrics::Counter> = BOUNDS
            .iter()
            .map(|&(_, le)| metrics::counter!(bucket_name.clone(), "le" => le))
            .collect();
        buckets.push(metrics::counter!(bucket_name, "le" => "+Inf"));
        Exported {
            buckets,
            count: metrics::counter!(format!("{name}_count")),
        }
    }

    fn publish(&self, histogram: &mut Histogram) {
        let cumulative = histogram.take();
        for (counter, &n) in self.buckets.iter().zip(&cumulative) {
            counter.increment(n);
        }
        self.count.increment(cumulative[BUCKETS - 1]);
    }
}

/// A media thread's clock measurements: recorded per frame and per tick, published every
/// [`PUBLISH_EVERY`] ticks.
pub(crate) struct TickStats {
    pub added_latency: Histogram,
    pub tick_busy: Histogram,
    pub ticks: u64,
    pub late_ticks: u64,
    pub late_frames: u64,
    since_publish: u32,
    exported: Option<ExportedStats>,
}

struct ExportedStats {
    added_latency: Exported,
    tick_busy: Exported,
    ticks: metrics::Counter,
    late_ticks: metrics::Counter,
    late_frames: metrics::Counter,
}

/// Ticks between two publications: a second or less (a thread with legs wakes at least 200
/// times a second, `phases`).
pub(crate) const PUBLISH_EVERY: u32 = 200;

impl TickStats {
    /// Stats that are published to the global metrics registry.
    pub fn exported() -> Self {
        TickStats {
            exported: Some(ExportedStats {
                added_latency: Exported::new("sipx_media_added_latency_seconds"),
                tick_busy: Exported::new("sipx_media_tick_busy_seconds"),
                ticks: metrics::counter!("sipx_media_ticks_total"),
                late_ticks: metrics::counter!("sipx_media_late_ticks_total"),
                late_frames: metrics::counter!("sipx_media_late_frames_total"),
            }),
            ..Self::local()
        }
    }

    /// Stats kept only here (tests).
    pub fn local() -> Self {
        TickStats {
            added_latency: Histogram::default(),
            tick_busy: Histogram::default(),
            ticks: 0,
            late_ticks: 0,
            late_frames: 0,
            since_publish: 0,
            exported: None,
        }
    }

    /// A frame left `added` after its tick was due; `period` is the tick's length.
    pub fn frame_sent(&mut self, added: Duration, period: Duration) {
        self.added_latency.record(added);
        if added >= period {
            self.late_frames += 1;
        }
    }

    /// A tick is over: `busy` is its work, `overrun` whether it ended after the next tick
    /// was due. Publishes once every [`PUBLISH_EVERY`] ticks.
    pub fn tick_done(&mut self, busy: Duration, overrun: bool) {
        self.tick_busy.record(busy);
        self.ticks += 1;
        if overrun {
            self.late_ticks += 1;
        }
        self.since_publish += 1;
        if self.since_publish >= PUBLISH_EVERY {
            self.publish();
        }
    }

    /// Moves what was counted since the last call into the registry (a no-op for local
    /// stats, which keep counting).
    pub fn publish(&mut self) {
        self.since_publish = 0;
        let Some(e) = &self.exported else {
            return;
        };
        e.added_latency.publish(&mut self.added_latency);
        e.tick_busy.publish(&mut self.tick_busy);
        e.ticks.increment(std::mem::take(&mut self.ticks));
        e.late_ticks.increment(std::mem::take(&mut self.late_ticks));
        e.late_frames
            .increment(std::mem::take(&mut self.late_frames));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_bucket_whose_bound_covers_them() {
        let mut h = Histogram::default();
        h.record(Duration::from_micros(0));
        h.record(Duration::from_micros(50)); // on the bound: le=0.00005
        h.record(Duration::from_micros(51));
        h.record(Duration::from_micros(1_999));
        h.record(Duration::from_secs(3)); // beyond every bound: +Inf only
        assert_eq!(h.count(), 5);
        let c = h.take();
        assert_eq!(c[0], 2, "≤ 50 µs");
        assert_eq!(c[1], 3, "≤ 100 µs");
        assert_eq!(c[7], 3, "≤ 1.5 ms");
        assert_eq!(c[8], 4, "≤ 2 ms");
        assert_eq!(c[BOUNDS.len() - 1], 4, "≤ 100 ms");
        assert_eq!(c[BUCKETS - 1], 5, "+Inf is the total");
        assert_eq!(h.count(), 0, "take starts again");
    }

    #[test]
    fn late_ticks_and_frames_are_counted_by_their_definitions() {
        let period = Duration::from_millis(20);
        let mut s = TickStats::local();
        s.frame_sent(Duration::from_micros(300), period);
        s.frame_sent(Duration::from_millis(20), period);
        s.frame_sent(Duration::from_millis(25), period);
        s.tick_done(Duration::from_millis(4), false);
        s.tick_done(Duration::from_millis(21), true);
        assert_eq!((s.ticks, s.late_ticks, s.late_frames), (2, 1, 2));
        assert_eq!(s.added_latency.count(), 3);
        assert_eq!(s.tick_busy.count(), 2);
    }

    #[test]
    fn local_stats_keep_counting_through_a_publication() {
        let mut s = TickStats::local();
        for _ in 0..PUBLISH_EVERY + 1 {
            s.tick_done(Duration::from_micros(10), false);
        }
        assert_eq!(s.ticks, u64::from(PUBLISH_EVERY) + 1);
    }
}
