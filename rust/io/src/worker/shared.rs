//! What the engine and its workers share: the registry (locked on connect and close, never
//! per packet), the event queue, each worker's command channel and published counters, and
//! settings the workers read once per use.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use super::Command;
use crate::events::EventQueue;
use crate::media_stats::MediaSlot;
use crate::registry::Registry;
use crate::stats::STAT_NAMES;

/// A worker's command channel and waker.
pub(crate) struct WorkerHandle {
    pub(crate) tx: Sender<Command>,
    pub(crate) waker: mio::Waker,
}

impl WorkerHandle {
    pub(crate) fn send(&self, cmd: Command) {
        if self.tx.send(cmd).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

pub(crate) struct Shared {
    registry: Mutex<Registry>,
    pub(crate) events: Arc<EventQueue>,
    pub(crate) handles: OnceLock<Vec<WorkerHandle>>,
    /// Per worker, counters the worker publishes (at most every few milliseconds).
    pub(crate) stats: Vec<[AtomicU64; STAT_NAMES.len()]>,
    /// Per worker, its producers' counters and join histogram (published about once a second).
    pub(crate) media: Vec<MediaSlot>,
    /// `rtsp.mergeWriteMs`: how long an RTSP TCP player's output may wait to leave in one write
    /// (0: at the end of each poll iteration). Read by RTSP peers at each flush.
    pub(crate) rtsp_merge_write_ms: AtomicU64,
    /// `webrtc.transcodeAudio`: WebRTC players of AAC (or of G.711 without PCMA/PCMU in their
    /// offer) get Opus from a transcoder (SPEC 11). Read at each `create_player`.
    pub(crate) transcode_audio: std::sync::atomic::AtomicBool,
    /// How long a transcoder runs on after its last player (ms).
    pub(crate) transcode_linger_ms: AtomicU64,
    /// libopus complexity (0-10) of new transcoders.
    pub(crate) transcode_complexity: AtomicU64,
    /// `webrtc.udpGso`: group a player's datagrams of one poll iteration into segmented sends
    /// (`crate::batch`). Read at each flush.
    pub(crate) udp_gso: AtomicBool,
}

impl Shared {
    pub(crate) fn new(workers: usize, events: Arc<EventQueue>) -> Shared {
        Shared {
            registry: Mutex::new(Registry::default()),
            events,
            handles: OnceLock::new(),
            stats: (0..workers)
                .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
                .collect(),
            media: (0..workers).map(|_| MediaSlot::default()).collect(),
            rtsp_merge_write_ms: AtomicU64::new(0),
            transcode_audio: std::sync::atomic::AtomicBool::new(true),
            transcode_linger_ms: AtomicU64::new(10_000),
            transcode_complexity: AtomicU64::new(pms_core::transcode::encode::COMPLEXITY as u64),
            udp_gso: AtomicBool::new(true),
        }
    }

    pub(crate) fn registry(&self) -> MutexGuard<'_, Registry> {
        match self.registry.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub(crate) fn workers(&self) -> &[WorkerHandle] {
        self.handles.get().map(Vec::as_slice).unwrap_or(&[])
    }
}
