//! What the router tells about each producer (per kind: packets and bytes in and out, packets
//! lost, NACKs from its consumers, keyframe requests sent) and how long consumers waited for
//! their first keyframe (the join histogram).
//!
//! The hot path only bumps integers kept in the per-track state (`state::TrackCounters`): the
//! packets out of one incoming packet are counted once, as the difference of the router's
//! global counters around its fan-out, never per consumer. Reading them
//! ([`Router::producer_stats`]) walks every producer and is meant for ~1 Hz, off the hot path.

use std::time::{Duration, Instant};

use super::Router;
use crate::media::{MediaKind, TransportId};

/// Upper bounds (milliseconds) of the join histogram's buckets; a last `+Inf` bucket is implied.
pub const JOIN_BUCKETS_MS: [u64; 8] = [50, 100, 250, 500, 1000, 2000, 5000, 10000];

/// Counters of one producer's tracks of one kind, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindStats {
    /// Valid RTP packets received (RTX included) and their bytes (RTP header included).
    pub packets_in: u64,
    pub bytes_in: u64,
    /// RTP packets sent to consumers (retransmissions, replays and injected parameter sets
    /// included) and their bytes.
    pub packets_out: u64,
    pub bytes_out: u64,
    /// Packets that never arrived (RFC 3550 expected minus received, per track).
    pub lost: u64,
    /// Generic NACK messages consumers sent about these tracks.
    pub nacks: u64,
    /// Keyframe requests (PLI or FIR) sent to the producer.
    pub plis: u64,
}

impl KindStats {
    /// Adds `o` into `self` (summing tracks, workers or streams).
    pub fn add(&mut self, o: &KindStats) {
        self.packets_in += o.packets_in;
        self.bytes_in += o.bytes_in;
        self.packets_out += o.packets_out;
        self.bytes_out += o.bytes_out;
        self.lost += o.lost;
        self.nacks += o.nacks;
        self.plis += o.plis;
    }
}

/// One producer's counters per kind, and its consumers now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProducerStats {
    pub video: KindStats,
    pub audio: KindStats,
    pub consumers: usize,
}

/// Time from a consumer's transport connecting to its first video keyframe sent, as cumulative
/// bucket counts (Prometheus style: `buckets[i]` counts the joins of at most
/// `JOIN_BUCKETS_MS[i]`), their count and sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JoinHistogram {
    pub buckets: [u64; JOIN_BUCKETS_MS.len()],
    pub count: u64,
    pub sum_micros: u64,
}

impl JoinHistogram {
    /// Records one join of `d`.
    pub fn observe(&mut self, d: Duration) {
        let ms = d.as_secs_f64() * 1000.0;
        for (b, bound) in self.buckets.iter_mut().zip(JOIN_BUCKETS_MS) {
            if ms <= bound as f64 {
                *b += 1;
            }
        }
        self.count += 1;
        self.sum_micros += d.as_micros().min(u64::MAX as u128) as u64;
    }

    /// Adds `o` into `self` (summing workers).
    pub fn add(&mut self, o: &JoinHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(o.buckets) {
            *a += b;
        }
        self.count += o.count;
        self.sum_micros += o.sum_micros;
    }

    /// A consumer's first video keyframe went out at `now`: observes the time since its
    /// transport connected (`from`, taken), once per consumer (`joined`).
    pub(super) fn joined(&mut self, from: &mut Option<Instant>, joined: &mut bool, now: Instant) {
        if let Some(t) = from.take() {
            *joined = true;
            self.observe(now.saturating_duration_since(t));
        }
    }
}

impl Router {
    /// Every producer's counters, into `out` (cleared first; reuse it to avoid allocating).
    /// O(producers x tracks): call it about once a second, not per packet.
    pub fn producer_stats(&self, out: &mut Vec<(TransportId, ProducerStats)>) {
        out.clear();
        for (id, p) in &self.producers {
            let mut s = ProducerStats {
                consumers: p.consumers.len(),
                ..ProducerStats::default()
            };
            for (i, t) in p.tracks.iter().enumerate() {
                let c = &t.counters;
                // A track fed for the producer (transcoded audio) adds what it sends to players,
                // not to what the publisher sent.
                let own = i < p.own_tracks;
                let k = KindStats {
                    packets_in: if own { c.packets_in } else { 0 },
                    bytes_in: if own { c.bytes_in } else { 0 },
                    packets_out: c.packets_out,
                    bytes_out: c.bytes_out,
                    lost: if own { t.stats.lost() } else { 0 },
                    nacks: c.nacks,
                    plis: c.plis,
                };
                match t.cfg.kind {
                    MediaKind::Video => s.video.add(&k),
                    MediaKind::Audio => s.audio.add(&k),
                }
            }
            out.push((*id, s));
        }
    }

    /// The join histogram since the router was made.
    pub fn join_histogram(&self) -> JoinHistogram {
        self.join
    }
}
