//! # The SFU router: producers fanned out to consumers
//!
//! One `Router` per worker thread. It owns, per producer (publisher) track, the retransmission
//! buffer (which doubles as the keyframe cache), the H.264/H.265 parameter sets and the
//! reception statistics; per consumer (player) track, the rewrite state (SSRC, payload type,
//! sequence and timestamp offsets, RTX counter). It never touches sockets or clocks and has no
//! randomness of its own: the I/O layer passes decrypted packets and `now`, gets plain packets
//! back through a [`Sink`], and gives [`Router::new`] the source its random numbers come from.
//!
//! ## Theory of operation
//!
//! - **Identification.** A producer packet is matched to a track by SSRC (from the SDP, or
//!   learned from the first packet with the track's payload type). RTX packets (RFC 4588) are
//!   unwrapped to the original sequence number; one already held is a duplicate and dropped.
//! - **Rewrite.** Consumer seq = producer seq + `seq_off` (mod 2^16), consumer ts = producer
//!   ts + `ts_off` (random base per consumer track). `seq_off` is chosen when a consumer track
//!   (re)starts so that its sequence numbers stay contiguous across mutes and keyframe waits;
//!   an injected parameter-set packet shifts it by one. The previous offset is remembered for
//!   NACKs of packets sent before the last shift. Publisher header extensions are dropped; the
//!   consumer's `mid` extension is written when negotiated. Padding is kept as is.
//! - **Keyframes.** A video consumer track forwards nothing until a packet that starts a
//!   keyframe ([`crate::codec`]). On connect, the router replays the producer's last keyframe
//!   *and every packet after it* from the retransmission buffer (at most
//!   [`KEYFRAME_CACHE_MAX_PACKETS`], all packets of the keyframe itself present), so the
//!   consumer decodes at once and continues with the next live packet; otherwise it waits for
//!   the keyframe that the PLI/FIR sent on connect produces. Replaying only the keyframe would
//!   leave the decoder with delta frames that reference frames it never got.
//! - **Keyframe requests** (join, unmute, a player's PLI/FIR) go upstream at most once per
//!   [`KEYFRAME_REQUEST_INTERVAL`] per producer track; a request inside the interval is
//!   deferred to its end (through [`Router::poll_timeout`]), never lost.
//! - **RTCP.** Every [`REPORT_INTERVAL`] each producer gets RR + REMB; a producer's SR is
//!   translated to each consumer of that track; consumers' NACKs are answered from the buffer
//!   (as RTX when negotiated), their PLI/FIR forwarded, their RRs kept.
//!
//! Hot path cost: `handle_rtp` does one parse, one copy into the track's buffer, and per
//! consumer one header write plus one payload copy into the router's scratch buffer. No
//! allocation per packet per consumer, no locks.
//!
//! ## Modules (imports go down this list, never up)
//!
//! - this file: the public API (limits, [`Sink`], events, errors, stats) and the control calls
//!   (add, remove, mute, connect);
//! - `forward`: the RTP hot path and the keyframe-cache replay; it calls `feedback` for the
//!   keyframe requests and upstream NACKs a packet triggers;
//! - `feedback`: RTCP in and out, keyframe-request rate limit, timers;
//! - `packet`: what both paths write with: `Frame` (one packet in producer terms), `Out` (scratch
//!   buffer, sink, counters) and the consumer header;
//! - `state`: the per-track state both paths act on.

mod feedback;
mod forward;
mod metrics;
mod packet;
mod state;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::{Rng, RngCore};

use crate::media::{ConsumerTrack, MediaKind, ProducerTrack, TransportId};
use crate::rtcp::ReportBlock;
use state::{Consumer, ConsumerTrackState, IdMap, Producer, ProducerTrackState};

pub use metrics::{JoinHistogram, KindStats, ProducerStats, JOIN_BUCKETS_MS};

/// Minimum spacing of keyframe requests (PLI/FIR) sent to one producer track.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);
/// Spacing of the RR + REMB compound sent to each producer.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// REMB sent when the publisher has no `max_bitrate`.
pub const DEFAULT_REMB_BITRATE: u64 = 10_000_000;
/// Longest replay (keyframe + following packets) a connecting consumer gets from the cache.
pub const KEYFRAME_CACHE_MAX_PACKETS: u64 = 600;
/// Retransmission buffer slots per video / audio track.
pub const VIDEO_BUFFER_SLOTS: usize = 1024;
pub const AUDIO_BUFFER_SLOTS: usize = 128;
/// At most this many packets are retransmitted per RTCP compound (bounds NACK storms).
pub const MAX_RETRANSMITS_PER_RTCP: usize = 256;
/// Gaps up to this size in a producer's sequence numbers are NACKed upstream at once.
pub const MAX_UPSTREAM_NACK_GAP: u64 = 32;

/// What the router writes to; implemented by the I/O layer (it encrypts with the target
/// transport's SRTP context and sends). `pkt` is a plain RTP/RTCP packet valid only during the
/// call.
pub trait Sink {
    fn send_rtp(&mut self, to: TransportId, pkt: &[u8]);
    fn send_rtcp(&mut self, to: TransportId, pkt: &[u8]);
}

/// A sink that drops everything (fuzzing, benchmarks).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl Sink for NullSink {
    fn send_rtp(&mut self, _: TransportId, _: &[u8]) {}
    fn send_rtcp(&mut self, _: TransportId, _: &[u8]) {}
}

/// What the router tells the I/O layer (which forwards it to Python).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouterEvent {
    /// The first valid RTP packet of a producer arrived.
    ProducerStarted { producer: TransportId },
    /// A producer track's H.264 SPS/PPS (H.265 VPS/SPS/PPS) changed in band and the set is
    /// complete: `nals` in decoding order. Not raised for the sets of the SDP `fmtp`.
    ParameterSets {
        producer: TransportId,
        track: usize,
        nals: Vec<Vec<u8>>,
    },
}

/// Our misuse of the router (bad ids or track indexes); a bug in the caller, not the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouterError {
    UnknownProducer(TransportId),
    /// The id is already used by a producer or consumer.
    DuplicateId(TransportId),
    /// `ConsumerTrack::producer_track` is out of range or its kind differs from the producer's.
    BadProducerTrack {
        consumer: TransportId,
        index: usize,
    },
}

impl std::fmt::Display for RouterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouterError::UnknownProducer(id) => write!(f, "unknown producer {id}"),
            RouterError::DuplicateId(id) => write!(f, "transport {id} already in the router"),
            RouterError::BadProducerTrack { consumer, index } => {
                write!(f, "consumer {consumer}: bad producer track {index}")
            }
        }
    }
}

impl std::error::Error for RouterError {}

/// Counters since the router was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterStats {
    pub producers: usize,
    pub consumers: usize,
    /// Valid RTP packets received from producers (RTX included).
    pub packets_in: u64,
    /// RTP packets handed to the sink (retransmissions and injected parameter sets included).
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Generic NACK messages received from consumers.
    pub nacks: u64,
    /// Keyframe requests (PLI or FIR) sent to producers.
    pub plis: u64,
    /// Packets retransmitted to consumers.
    pub retransmits: u64,
    /// RTP packets dropped: malformed, unknown SSRC/payload type, or from an unknown transport.
    pub rtp_dropped: u64,
    /// RTCP compounds (or parts) that were malformed or came from an unknown transport.
    pub rtcp_dropped: u64,
}

/// Reception quality a consumer reported for one of its tracks (its last RR block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerTrackReport {
    pub ssrc: u32,
    pub packets_sent: u32,
    pub octets_sent: u32,
    pub last_rr: Option<ReportBlock>,
}

/// The SFU forwarding state of one worker thread. See the module docs.
pub struct Router {
    producers: IdMap<Producer>,
    consumers: IdMap<Consumer>,
    events: VecDeque<RouterEvent>,
    stats: RouterStats,
    /// RTP output scratch: one forwarded packet at a time.
    scratch: Vec<u8>,
    /// RTCP output scratch.
    rtcp: Vec<u8>,
    /// Reference instant for jitter arithmetic; the first `now` the router saw.
    epoch: Option<Instant>,
    /// The latest `now` the router saw (for requests made from calls without `now`).
    last_now: Option<Instant>,
    /// Where sender SSRCs, first sequence numbers and timestamp bases come from.
    rng: RouterRng,
    /// Consumers' connect-to-first-keyframe times.
    join: JoinHistogram,
}

/// The router's source of random numbers, given at construction: the I/O layer passes one
/// seeded from the OS, tests and fuzzing a seeded one so runs repeat. Drawn from only when
/// producers and consumer tracks are added, never per packet.
pub type RouterRng = Box<dyn RngCore + Send>;

impl Router {
    /// An empty router drawing its random numbers (RTCP sender SSRCs, consumers' first
    /// sequence numbers, timestamp bases and RTX sequences) from `rng`. Allocates its scratch
    /// buffers once.
    pub fn new(rng: RouterRng) -> Self {
        Router {
            producers: IdMap::default(),
            consumers: IdMap::default(),
            events: VecDeque::new(),
            stats: RouterStats::default(),
            scratch: vec![0; 65536 + crate::rtp::MAX_WRITE_OVERHEAD + 64],
            rtcp: Vec::with_capacity(1500),
            epoch: None,
            last_now: None,
            rng,
            join: JoinHistogram::default(),
        }
    }

    fn tick(&mut self, now: Instant) {
        self.epoch.get_or_insert(now);
        if self.last_now.is_none_or(|l| now > l) {
            self.last_now = Some(now);
        }
    }

    /// Adds a producer (a publisher transport) with its negotiated tracks. `max_bitrate` (bps,
    /// 0 = none) caps the REMB we send it. An id already present is replaced.
    pub fn add_producer(
        &mut self,
        id: TransportId,
        tracks: Vec<ProducerTrack>,
        max_bitrate: u32,
        now: Instant,
    ) {
        self.tick(now);
        let removed = self.remove(id);
        debug_assert!(removed.is_empty(), "add_producer replaced a live producer");
        let own_tracks = tracks.len();
        let producer = Producer {
            tracks: tracks.into_iter().map(ProducerTrackState::new).collect(),
            own_tracks,
            consumers: Vec::new(),
            max_bitrate,
            video_muted: false,
            audio_muted: false,
            started: false,
            next_report: now + REPORT_INTERVAL,
            sender_ssrc: self.rng.gen(),
        };
        self.producers.insert(id, producer);
    }

    /// Adds a consumer (a player transport) of `producer`. Each track's `producer_track` must
    /// index a producer track of the same kind. It starts sending after [`consumer_connected`].
    ///
    /// [`consumer_connected`]: Router::consumer_connected
    pub fn add_consumer(
        &mut self,
        id: TransportId,
        producer: TransportId,
        tracks: Vec<ConsumerTrack>,
        now: Instant,
    ) -> Result<(), RouterError> {
        self.tick(now);
        if self.consumers.contains_key(&id) || self.producers.contains_key(&id) {
            return Err(RouterError::DuplicateId(id));
        }
        let prod = self
            .producers
            .get_mut(&producer)
            .ok_or(RouterError::UnknownProducer(producer))?;
        for t in &tracks {
            match prod.tracks.get(t.producer_track) {
                Some(p) if p.cfg.kind == t.kind => {}
                _ => {
                    return Err(RouterError::BadProducerTrack {
                        consumer: id,
                        index: t.producer_track,
                    })
                }
            }
        }
        prod.consumers.push(id);
        let consumer = Consumer {
            producer,
            tracks: tracks
                .into_iter()
                .map(|t| ConsumerTrackState::new(t, &mut *self.rng))
                .collect(),
            connected: false,
            video_muted: false,
            audio_muted: false,
            join_from: None,
            joined: false,
        };
        self.consumers.insert(id, consumer);
        Ok(())
    }

    /// Adds one track to a consumer made by [`add_consumer`](Router::add_consumer) (RTSP: one
    /// track per SETUP). `start` gives the first sequence number and RTP timestamp it will send
    /// (RTSP `RTP-Info`); `None`: drawn from the router's source.
    pub fn add_consumer_track(
        &mut self,
        id: TransportId,
        track: ConsumerTrack,
        start: Option<(u16, u32)>,
    ) -> Result<(), RouterError> {
        let c = self
            .consumers
            .get_mut(&id)
            .ok_or(RouterError::UnknownProducer(id))?;
        let ok = self
            .producers
            .get(&c.producer)
            .and_then(|p| p.tracks.get(track.producer_track))
            .is_some_and(|p| p.cfg.kind == track.kind);
        if !ok {
            return Err(RouterError::BadProducerTrack {
                consumer: id,
                index: track.producer_track,
            });
        }
        let mut st = ConsumerTrackState::new(track, &mut *self.rng);
        if let Some((seq, ts)) = start {
            st.next_seq = seq;
            st.ts_base = ts;
        }
        c.tracks.push(st);
        Ok(())
    }

    /// Puts `track` at `index` of a producer's tracks: appended when `index` is the number of
    /// tracks, or replacing (fresh state) the one there. A track the producer does not send
    /// itself: the audio transcoder feeds it through [`handle_rtp`](Router::handle_rtp) and
    /// [`handle_rtcp`](Router::handle_rtcp) under the producer's id, and players consume it
    /// like any other (NACK from its buffer, mute, SR translation, counters).
    pub fn set_producer_track(
        &mut self,
        producer: TransportId,
        index: usize,
        track: ProducerTrack,
    ) -> Result<(), RouterError> {
        let p = self
            .producers
            .get_mut(&producer)
            .ok_or(RouterError::UnknownProducer(producer))?;
        let state = ProducerTrackState::new(track);
        match index.cmp(&p.tracks.len()) {
            std::cmp::Ordering::Less => p.tracks[index] = state,
            std::cmp::Ordering::Equal => p.tracks.push(state),
            std::cmp::Ordering::Greater => {
                return Err(RouterError::BadProducerTrack {
                    consumer: producer,
                    index,
                })
            }
        }
        Ok(())
    }

    /// How many consumers of `producer` have a track fed by its track `index`.
    pub fn track_consumers(&self, producer: TransportId, index: usize) -> usize {
        let Some(p) = self.producers.get(&producer) else {
            return 0;
        };
        p.consumers
            .iter()
            .filter_map(|c| self.consumers.get(c))
            .filter(|c| c.tracks.iter().any(|t| t.cfg.producer_track == index))
            .count()
    }

    /// The worst loss (RTCP `fraction lost`, /256) the consumers of a producer's track `index`
    /// last reported; `None` before any report.
    pub fn track_loss(&self, producer: TransportId, index: usize) -> Option<u8> {
        let p = self.producers.get(&producer)?;
        p.consumers
            .iter()
            .filter_map(|c| self.consumers.get(c))
            .flat_map(|c| c.tracks.iter())
            .filter(|t| t.cfg.producer_track == index)
            .filter_map(|t| t.last_rr.map(|rr| rr.fraction_lost))
            .max()
    }

    /// Stops sending to a consumer until the next [`consumer_connected`] (RTSP PAUSE). Its
    /// tracks restart at a keyframe with contiguous sequence numbers.
    ///
    /// [`consumer_connected`]: Router::consumer_connected
    pub fn pause_consumer(&mut self, id: TransportId) {
        if let Some(c) = self.consumers.get_mut(&id) {
            c.connected = false;
            for t in &mut c.tracks {
                t.started = false;
            }
        }
    }

    /// The producer's source starts over (a cascade pull that reconnected to its origin): a
    /// new SSRC, sequence numbers and timestamps. Its tracks learn the new SSRCs and map the new
    /// source onto their timeline, one sequence number and the elapsed time after the last
    /// packet; the keyframe cache (the old source's) is dropped; every consumer track restarts at
    /// the next keyframe (video) or packet (audio) with contiguous sequence numbers, so players
    /// see one stream with a gap in time, not a new one.
    pub fn restart_producer(&mut self, id: TransportId) {
        let Some(prod) = self.producers.get_mut(&id) else {
            return;
        };
        for t in &mut prod.tracks {
            t.ssrc = t.cfg.ssrc;
            t.rtx_ssrc = t.cfg.rtx_ssrc;
            t.rebase = true;
            t.last_keyframe = None;
            t.kf_pending = false;
            t.last_kf_request = None;
        }
        for cid in &prod.consumers {
            if let Some(c) = self.consumers.get_mut(cid) {
                for t in &mut c.tracks {
                    t.started = false;
                }
            }
        }
    }

    /// Removes a producer or consumer. Removing a producer also removes its consumers and
    /// returns their ids (the I/O layer closes them). Unknown ids: no-op.
    pub fn remove(&mut self, id: TransportId) -> Vec<TransportId> {
        if let Some(p) = self.producers.remove(&id) {
            for c in &p.consumers {
                self.consumers.remove(c);
            }
            return p.consumers;
        }
        if let Some(c) = self.consumers.remove(&id) {
            if let Some(p) = self.producers.get_mut(&c.producer) {
                p.consumers.retain(|x| *x != id);
            }
        }
        Vec::new()
    }

    /// Mute per SPEC: on a producer, stops that kind for every consumer; on a consumer, for
    /// it. `None` keeps the current state. Returns `(video_muted, audio_muted)` now, or `None`
    /// for an unknown id. A track that resumes restarts at a keyframe (video) or the next
    /// packet (audio) with contiguous sequence numbers; unmuting video requests a keyframe.
    pub fn set_muted(
        &mut self,
        id: TransportId,
        video: Option<bool>,
        audio: Option<bool>,
    ) -> Option<(bool, bool)> {
        if let Some(p) = self.producers.get_mut(&id) {
            let (old_v, old_a) = (p.video_muted, p.audio_muted);
            p.video_muted = video.unwrap_or(p.video_muted);
            p.audio_muted = audio.unwrap_or(p.audio_muted);
            let (v, a) = (p.video_muted, p.audio_muted);
            let consumers = p.consumers.clone();
            for cid in consumers {
                if let Some(c) = self.consumers.get_mut(&cid) {
                    stop_changed(c, old_v != v, old_a != a);
                }
            }
            if old_v && !v {
                self.request_video_keyframes(id);
            }
            return Some((v, a));
        }
        let c = self.consumers.get_mut(&id)?;
        let (old_v, old_a) = (c.video_muted, c.audio_muted);
        c.video_muted = video.unwrap_or(c.video_muted);
        c.audio_muted = audio.unwrap_or(c.audio_muted);
        let (v, a) = (c.video_muted, c.audio_muted);
        stop_changed(c, old_v != v, old_a != a);
        let producer = c.producer;
        if old_v && !v {
            self.request_video_keyframes(producer);
        }
        Some((v, a))
    }

    /// Marks a keyframe request pending on every video track of `producer`; sent from
    /// [`handle_timeout`](Router::handle_timeout) within the rate limit.
    fn request_video_keyframes(&mut self, producer: TransportId) {
        if let Some(p) = self.producers.get_mut(&producer) {
            for t in p
                .tracks
                .iter_mut()
                .filter(|t| t.cfg.kind == MediaKind::Video)
            {
                t.kf_pending = true;
            }
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<RouterEvent> {
        self.events.pop_front()
    }

    /// Counters.
    pub fn stats(&self) -> RouterStats {
        RouterStats {
            producers: self.producers.len(),
            consumers: self.consumers.len(),
            ..self.stats
        }
    }

    /// Per-track send counters and the last receiver report of a consumer.
    pub fn consumer_reports(&self, id: TransportId) -> Option<Vec<ConsumerTrackReport>> {
        let c = self.consumers.get(&id)?;
        Some(
            c.tracks
                .iter()
                .map(|t| ConsumerTrackReport {
                    ssrc: t.cfg.ssrc,
                    packets_sent: t.packets_sent,
                    octets_sent: t.octets_sent,
                    last_rr: t.last_rr,
                })
                .collect(),
        )
    }

    /// Whether every video track of `producer` has a keyframe in its cache that a consumer
    /// connecting now would be given (the same bounds as the replay on connect). False for an
    /// unknown producer or one without video. The GB28181 ingest asks this before telling the
    /// control plane that a camera should send an IDR.
    pub fn keyframe_cached(&self, producer: TransportId) -> bool {
        let Some(p) = self.producers.get(&producer) else {
            return false;
        };
        let mut video = p
            .tracks
            .iter()
            .filter(|t| t.cfg.kind == MediaKind::Video)
            .peekable();
        video.peek().is_some()
            && video.all(|t| match (t.last_keyframe, t.seq.highest()) {
                (Some(k), Some(h)) => {
                    h >= k
                        && h - k < KEYFRAME_CACHE_MAX_PACKETS
                        && h - k < t.buffer.capacity() as u64
                }
                _ => false,
            })
    }

    /// The SSRC a producer track was given or learned, if known yet.
    pub fn producer_ssrc(&self, id: TransportId, track: usize) -> Option<u32> {
        self.producers.get(&id)?.tracks.get(track)?.ssrc
    }
}

/// Stops the tracks of the kinds whose mute state changed; they restart on their own.
fn stop_changed(c: &mut Consumer, video: bool, audio: bool) {
    for t in &mut c.tracks {
        if (t.cfg.kind == MediaKind::Video && video) || (t.cfg.kind == MediaKind::Audio && audio) {
            t.started = false;
        }
    }
}
