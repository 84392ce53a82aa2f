//! Per-stream statistics: each worker's snapshot of its router's producers (counters by kind,
//! bitrate in over the last interval) and join histogram, published about once a second, and
//! the engine's view of them by stream name ([`StreamStats`]).
//!
//! Off the hot path: a worker takes its own mutex once per [`PUBLISH_INTERVAL`]; a scrape takes
//! each worker's for a copy. A leaf module: it knows no worker loop, peer or engine.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pms_core::media::TransportId;
use pms_core::router::{JoinHistogram, KindStats, ProducerStats, Router};

/// How often a worker publishes its producers' counters (and so the bitrate's window).
pub(crate) const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// One producer as its worker last published it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProducerSnapshot {
    pub stats: ProducerStats,
    /// Bits per second received over the last interval: video, audio.
    pub bitrate_bps: [u64; 2],
}

/// What one worker publishes.
#[derive(Debug, Default)]
pub(crate) struct WorkerMedia {
    pub producers: HashMap<TransportId, ProducerSnapshot>,
    pub join: JoinHistogram,
}

/// A worker's slot, locked at ~1 Hz by the worker and per scrape by the engine.
#[derive(Default)]
pub(crate) struct MediaSlot(Mutex<WorkerMedia>);

impl MediaSlot {
    pub(crate) fn lock(&self) -> MutexGuard<'_, WorkerMedia> {
        match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// One live stream's counters (its producer's), as [`crate::Engine::stream_stats`] returns them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamStats {
    pub name: String,
    pub video: KindStats,
    pub audio: KindStats,
    /// Bits per second the publisher sent over about the last second: video, audio.
    pub bitrate_bps: [u64; 2],
    /// Consumers (players of any kind) in the router.
    pub consumers: usize,
}

/// The worker's side: reads its router at most every [`PUBLISH_INTERVAL`] and publishes.
pub(crate) struct Publisher {
    last: Option<Instant>,
    /// Bytes in (video, audio) per producer at the last publication.
    prev: HashMap<TransportId, [u64; 2]>,
    buf: Vec<(TransportId, ProducerStats)>,
}

impl Publisher {
    pub(crate) fn new() -> Publisher {
        Publisher {
            last: None,
            prev: HashMap::new(),
            buf: Vec::new(),
        }
    }

    /// Publishes into `slot` if the interval has passed since the last time.
    pub(crate) fn maybe_publish(&mut self, router: &Router, slot: &MediaSlot, now: Instant) {
        let elapsed = match self.last {
            Some(l) if now < l + PUBLISH_INTERVAL => return,
            Some(l) => now.saturating_duration_since(l),
            None => Duration::ZERO,
        };
        self.last = Some(now);
        router.producer_stats(&mut self.buf);
        let mut prev = HashMap::with_capacity(self.buf.len());
        let mut producers = HashMap::with_capacity(self.buf.len());
        for (id, s) in &self.buf {
            let bytes = [s.video.bytes_in, s.audio.bytes_in];
            let bitrate_bps = match self.prev.get(id) {
                Some(p) if !elapsed.is_zero() => {
                    let rate = |now: u64, before: u64| {
                        (now.saturating_sub(before) as f64 * 8.0 / elapsed.as_secs_f64()) as u64
                    };
                    [rate(bytes[0], p[0]), rate(bytes[1], p[1])]
                }
                _ => [0, 0],
            };
            prev.insert(*id, bytes);
            producers.insert(
                *id,
                ProducerSnapshot {
                    stats: *s,
                    bitrate_bps,
                },
            );
        }
        self.prev = prev;
        let mut m = slot.lock();
        m.producers = producers;
        m.join = router.join_histogram();
    }
}

/// Sums the workers' join histograms.
pub(crate) fn join_histogram(slots: &[MediaSlot]) -> JoinHistogram {
    let mut h = JoinHistogram::default();
    for s in slots {
        h.add(&s.lock().join);
    }
    h
}

/// The stats of each stream in `streams` (name, producer id) whose producer a worker published.
pub(crate) fn stream_stats(
    slots: &[MediaSlot],
    streams: &[(String, TransportId)],
) -> Vec<StreamStats> {
    let mut all: HashMap<TransportId, ProducerSnapshot> = HashMap::new();
    for s in slots {
        all.extend(s.lock().producers.iter().map(|(k, v)| (*k, *v)));
    }
    streams
        .iter()
        .filter_map(|(name, id)| {
            let p = all.get(id)?;
            Some(StreamStats {
                name: name.clone(),
                video: p.stats.video,
                audio: p.stats.audio,
                bitrate_bps: p.bitrate_bps,
                consumers: p.stats.consumers,
            })
        })
        .collect()
}
