//! Per-track state of the router: what it keeps for each producer track (SSRCs, retransmission
//! buffer, parameter sets, reception stats, keyframe-request state) and each consumer track
//! (rewrite offsets, counters). Plain data with constructors; the forward and feedback paths
//! act on it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use rand::{Rng, RngCore};

use super::{AUDIO_BUFFER_SLOTS, VIDEO_BUFFER_SLOTS};
use crate::codec::ParamSets;
use crate::media::{CodecName, ConsumerTrack, MediaKind, ProducerTrack, TransportId};
use crate::retransmit::RetransmitBuffer;
use crate::rtcp::{ReceiveStats, ReportBlock};
use crate::rtp::SeqUnwrapper;

/// Fx-style hasher for `TransportId` keys: ids are ours, not attacker-chosen.
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(5) ^ *b as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

pub(super) type IdMap<V> = HashMap<TransportId, V, BuildHasherDefault<IdHasher>>;

pub(super) struct ProducerTrackState {
    pub(super) cfg: ProducerTrack,
    pub(super) ssrc: Option<u32>,
    pub(super) rtx_ssrc: Option<u32>,
    pub(super) seq: SeqUnwrapper,
    pub(super) buffer: RetransmitBuffer,
    pub(super) stats: ReceiveStats,
    pub(super) params: Option<ParamSets>,
    /// RTP timestamp of the last frame that carried (or was given) parameter sets.
    pub(super) params_ts: Option<u32>,
    /// Extended seq of the first packet of the last keyframe.
    pub(super) last_keyframe: Option<u64>,
    pub(super) use_fir: bool,
    pub(super) fir_seq: u8,
    pub(super) nack_upstream: bool,
    pub(super) last_kf_request: Option<Instant>,
    pub(super) kf_pending: bool,
    /// Added to the sequence numbers and timestamps of the source: zero until the source
    /// restarts ([`Router::restart_producer`](super::Router::restart_producer)), then what maps
    /// the new source onto the track's timeline where the old one stopped.
    pub(super) seq_shift: u16,
    pub(super) ts_shift: u32,
    /// The (mapped) timestamp of the last media packet and when it arrived.
    pub(super) last_ts: Option<(u32, Instant)>,
    /// The next media packet is the restarted source's first: it sets the shifts.
    pub(super) rebase: bool,
    /// What went through this track (see [`super::metrics`]).
    pub(super) counters: TrackCounters,
}

/// Per producer track counters: plain integers bumped on the hot path, read at ~1 Hz.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TrackCounters {
    pub(super) packets_in: u64,
    pub(super) bytes_in: u64,
    /// RTP packets (and bytes) sent to consumers from this track, retransmissions included.
    pub(super) packets_out: u64,
    pub(super) bytes_out: u64,
    /// Generic NACK messages consumers sent about this track.
    pub(super) nacks: u64,
    /// Keyframe requests (PLI or FIR) sent upstream for this track.
    pub(super) plis: u64,
}

impl ProducerTrackState {
    pub(super) fn new(cfg: ProducerTrack) -> Self {
        let fb = |v: &str| cfg.codec.rtcp_fb.iter().any(|f| f.eq_ignore_ascii_case(v));
        let use_fir = fb("ccm fir") && !fb("nack pli");
        let nack_upstream = fb("nack");
        let mut params = ParamSets::new(cfg.codec.name);
        if let Some(p) = params.as_mut() {
            p.load_fmtp(&cfg.codec.fmtp);
        }
        let slots = if cfg.kind == MediaKind::Video {
            VIDEO_BUFFER_SLOTS
        } else {
            AUDIO_BUFFER_SLOTS
        };
        ProducerTrackState {
            ssrc: cfg.ssrc,
            rtx_ssrc: cfg.rtx_ssrc,
            seq: SeqUnwrapper::default(),
            buffer: RetransmitBuffer::new(slots),
            stats: ReceiveStats::new(cfg.codec.clock_rate),
            params,
            params_ts: None,
            last_keyframe: None,
            use_fir,
            fir_seq: 0,
            nack_upstream,
            last_kf_request: None,
            kf_pending: false,
            seq_shift: 0,
            ts_shift: 0,
            last_ts: None,
            rebase: false,
            counters: TrackCounters::default(),
            cfg,
        }
    }

    pub(super) fn codec(&self) -> CodecName {
        self.cfg.codec.name
    }
}

pub(super) struct Producer {
    pub(super) tracks: Vec<ProducerTrackState>,
    /// Tracks the producer sends itself (the first ones); those after are fed for it
    /// (`Router::set_producer_track`: the audio transcoder's Opus track).
    pub(super) own_tracks: usize,
    pub(super) consumers: Vec<TransportId>,
    pub(super) max_bitrate: u32,
    pub(super) video_muted: bool,
    pub(super) audio_muted: bool,
    pub(super) started: bool,
    pub(super) next_report: Instant,
    pub(super) sender_ssrc: u32,
}

pub(super) struct ConsumerTrackState {
    pub(super) cfg: ConsumerTrack,
    /// Forwarding live packets (false: waiting for a start point, muted, or not connected).
    pub(super) started: bool,
    /// Producer extended seq of the first packet of the current run.
    pub(super) start_ext: u64,
    pub(super) seq_off: u16,
    pub(super) prev_seq_off: u16,
    /// First consumer seq that uses `seq_off` (earlier ones use `prev_seq_off`).
    pub(super) off_since: u16,
    /// Consumer seq of the last injected parameter-set packet (not retransmittable).
    pub(super) injected: Option<u16>,
    /// Next consumer seq after the highest sent.
    pub(super) next_seq: u16,
    pub(super) ts_base: u32,
    pub(super) ts_off: Option<u32>,
    pub(super) rtx_seq: u16,
    pub(super) packets_sent: u32,
    pub(super) octets_sent: u32,
    pub(super) last_rr: Option<ReportBlock>,
}

impl ConsumerTrackState {
    /// A stopped track whose first sequence number, timestamp base and RTX sequence are
    /// drawn from `rng` (the router's injected source).
    pub(super) fn new(cfg: ConsumerTrack, rng: &mut dyn RngCore) -> Self {
        ConsumerTrackState {
            cfg,
            started: false,
            start_ext: 0,
            seq_off: 0,
            prev_seq_off: 0,
            off_since: 0,
            injected: None,
            next_seq: rng.gen(),
            ts_base: rng.gen(),
            ts_off: None,
            rtx_seq: rng.gen(),
            packets_sent: 0,
            octets_sent: 0,
            last_rr: None,
        }
    }
}

pub(super) struct Consumer {
    pub(super) producer: TransportId,
    pub(super) tracks: Vec<ConsumerTrackState>,
    pub(super) connected: bool,
    pub(super) video_muted: bool,
    pub(super) audio_muted: bool,
    /// When the transport first connected, until its first video keyframe is sent (the join
    /// histogram's start); taken at that keyframe.
    pub(super) join_from: Option<Instant>,
    /// The join time was observed (a reconnect after an RTSP PAUSE is not a new join).
    pub(super) joined: bool,
}
