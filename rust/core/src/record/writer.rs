//! [`RecordWriter`]: one recording, RTP packets in, file writes out.
//!
//! Per packet: the track's [`Depacketizer`] makes frames; the [`Timeline`] places them. The
//! container header needs every track's configuration (H.264/H.265 parameter sets, a VP8/VP9
//! keyframe for the picture size), so frames wait in `pending` until every track is ready: a
//! video track at its first keyframe with complete parameter sets, an audio track at its first
//! frame. A track still not ready [`START_WAIT_NS`] after the first ready frame is left out of
//! the file, and the others start without it. Then frames pass through a small interleaver
//! (each is released once no other track can still bring an earlier one, or after
//! [`INTERLEAVE_NS`]) to the container writer, whose bytes queue in a [`Sink`] the caller
//! drains with [`RecordWriter::poll_output`].

use std::collections::VecDeque;
use std::time::Instant;

use super::container::{Container, ContainerWriter, RecordError, TrackInfo, MAX_TRACKS};
use super::depack::{Depacketizer, Frame};
use super::mkv::MkvWriter;
use super::mp4::Mp4Writer;
use super::params::{aac_config, av1c, avcc, h264_size, h265_sps, hvcc};
use super::sink::{Sink, Write};
use super::timeline::Timeline;
use crate::media::{Codec, CodecName, MediaKind};
use crate::rtp::{self, RtpError};

/// How long ready tracks wait for the others before the file starts without them.
pub const START_WAIT_NS: i64 = 3_000_000_000;
/// Longest a frame waits in the interleaver for an earlier one of another track.
pub const INTERLEAVE_NS: i64 = 500_000_000;
/// Most frames held before the header is written (bounds memory if a track never starts).
const MAX_PENDING: usize = 4096;
/// Most bytes held before the header is written or in the interleaver (frames are up to
/// [`crate::record::depack::MAX_FRAME`] each, so a frame count alone does not bound memory).
const MAX_HELD_BYTES: usize = 32 << 20;
/// Most frames one track holds in the interleaver (bounds memory when a track's timestamps
/// jump far ahead of the others').
const MAX_QUEUED: usize = 512;

/// A track to record, as negotiated (see [`TrackSpec::from_codec`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSpec {
    pub codec: CodecName,
    pub clock_rate: u32,
    /// Audio channels (2 for Opus; 0 or 1 for mono).
    pub channels: u16,
    /// The fmtp parameters (`sprop-parameter-sets=...`, `config=...;sizelength=13`).
    pub fmtp: String,
}

impl TrackSpec {
    pub fn from_codec(c: &Codec) -> TrackSpec {
        TrackSpec {
            codec: c.name,
            clock_rate: c.clock_rate,
            channels: c.channels,
            fmtp: c.fmtp.clone(),
        }
    }
}

/// Counters of one recording.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordStats {
    /// Frames handed to the container, per track.
    pub frames_written: Vec<u64>,
    /// Frames dropped (loss, waiting for a keyframe, or a track left out), per track.
    pub frames_dropped: Vec<u64>,
    /// Packets that did not parse as RTP.
    pub bad_packets: u64,
    /// Bytes of the file (appends queued so far).
    pub bytes: u64,
    /// Time of the latest frame handed to the container (ns on the recording's timeline):
    /// the recording's duration so far, for the records list.
    pub last_frame_ns: i64,
}

#[derive(Debug)]
struct TrackState {
    spec: TrackSpec,
    depack: Depacketizer,
    info: Option<TrackInfo>,
    /// Index in the container (set at start for the tracks that made it).
    out_index: Option<usize>,
    queue: VecDeque<(i64, bool, Vec<u8>)>,
    /// Time of the newest frame of this track seen by the interleaver.
    newest_ns: Option<i64>,
    left_out: u64,
}

/// One recording: see the module doc.
#[derive(Debug)]
pub struct RecordWriter {
    tracks: Vec<TrackState>,
    timeline: Timeline,
    writer: Box<dyn ContainerWriter>,
    sink: Sink,
    started: bool,
    finished: bool,
    /// Before the start: (track, frame), in arrival order.
    pending: VecDeque<(usize, Frame)>,
    first_ready_ns: Option<i64>,
    /// Bytes in `pending` and in the tracks' queues.
    held_bytes: usize,
    scratch: Vec<Frame>,
    written: Vec<u64>,
    bad_packets: u64,
    last_frame_ns: i64,
}

impl RecordWriter {
    /// A writer for `file_name`'s container (`.webm`, `.mkv`, `.mp4`).
    pub fn for_file_name(
        file_name: &str,
        tracks: &[TrackSpec],
    ) -> Result<RecordWriter, RecordError> {
        let c = Container::from_file_name(file_name)
            .ok_or_else(|| RecordError::UnknownExtension(file_name.to_string()))?;
        RecordWriter::new(c, tracks)
    }

    /// Checks that `container` holds every track's codec (else 415).
    pub fn new(container: Container, tracks: &[TrackSpec]) -> Result<RecordWriter, RecordError> {
        if tracks.is_empty() || tracks.len() > MAX_TRACKS {
            return Err(RecordError::BadTrackCount(tracks.len()));
        }
        let mut states = Vec::with_capacity(tracks.len());
        for spec in tracks {
            let unsupported = RecordError::UnsupportedCodec {
                container,
                codec: spec.codec,
            };
            if !container.holds(spec.codec) {
                return Err(unsupported);
            }
            if spec.codec == CodecName::Aac && aac_config(&spec.fmtp).is_none() {
                return Err(RecordError::MissingCodecConfig(spec.codec));
            }
            let depack = Depacketizer::new(spec.codec, &spec.fmtp).ok_or(unsupported)?;
            states.push(TrackState {
                spec: spec.clone(),
                depack,
                info: None,
                out_index: None,
                queue: VecDeque::new(),
                newest_ns: None,
                left_out: 0,
            });
        }
        let rates: Vec<u32> = tracks.iter().map(|t| t.clock_rate).collect();
        let writer: Box<dyn ContainerWriter> = match container {
            Container::Webm => Box::new(MkvWriter::new(true)),
            Container::Mkv => Box::new(MkvWriter::new(false)),
            Container::Mp4 => Box::new(Mp4Writer::new()),
        };
        Ok(RecordWriter {
            written: vec![0; tracks.len()],
            tracks: states,
            timeline: Timeline::new(&rates),
            writer,
            sink: Sink::default(),
            started: false,
            finished: false,
            pending: VecDeque::new(),
            first_ready_ns: None,
            held_bytes: 0,
            scratch: Vec::new(),
            bad_packets: 0,
            last_frame_ns: 0,
        })
    }

    /// One RTP packet of track `track` (index into the specs), received at `now`. A packet
    /// that is not RTP is counted and refused; nothing else is an error.
    pub fn handle_rtp(
        &mut self,
        now: Instant,
        track: usize,
        packet: &[u8],
    ) -> Result<(), RtpError> {
        let view = match rtp::parse(packet) {
            Ok(v) => v,
            Err(e) => {
                self.bad_packets += 1;
                return Err(e);
            }
        };
        if self.finished || track >= self.tracks.len() {
            return Ok(());
        }
        self.timeline.packet(now, track, view.timestamp);
        let mut frames = std::mem::take(&mut self.scratch);
        self.tracks[track].depack.push(&view, &mut frames);
        for f in frames.drain(..) {
            self.on_frame(track, f);
        }
        self.scratch = frames;
        Ok(())
    }

    /// An RTCP sender report of `track`: NTP time `ntp` is RTP time `rtp_ts`.
    pub fn handle_sender_report(&mut self, track: usize, ntp: u64, rtp_ts: u32) {
        self.timeline.sender_report(track, ntp, rtp_ts);
    }

    /// The next write for the file, in order.
    pub fn poll_output(&mut self) -> Option<Write> {
        self.sink.poll()
    }

    /// Ends the recording: flushes held frames and queues the final writes (index, sizes,
    /// duration). A recording that never started writes nothing. Idempotent.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        if !self.started && self.tracks.iter().any(|t| t.info.is_some()) {
            self.start();
        }
        self.release(true);
        if self.started {
            self.writer.finish(&mut self.sink);
        }
        self.finished = true;
    }

    /// Whether the header has been written (every track ready, or the wait is over).
    pub fn started(&self) -> bool {
        self.started
    }

    pub fn stats(&self) -> RecordStats {
        RecordStats {
            frames_written: self.written.clone(),
            frames_dropped: self
                .tracks
                .iter()
                .map(|t| t.depack.dropped() + t.left_out)
                .collect(),
            bad_packets: self.bad_packets,
            bytes: self.sink.len(),
            last_frame_ns: self.last_frame_ns,
        }
    }

    /// The track's configuration, once its frames say enough.
    fn try_ready(&mut self, track: usize, f: &Frame) {
        let t = &mut self.tracks[track];
        if t.info.is_some() {
            return;
        }
        let s = &t.spec;
        let mut info = TrackInfo {
            codec: s.codec,
            clock_rate: s.clock_rate,
            channels: s.channels,
            width: 0,
            height: 0,
            config: Vec::new(),
        };
        match s.codec {
            CodecName::H264 | CodecName::H265 => {
                let Some(ps) = t.depack.param_sets() else {
                    return;
                };
                if !f.keyframe || !ps.complete() {
                    return;
                }
                let sets = ps.nals();
                let built = match sets.as_slice() {
                    [sps, pps] if s.codec == CodecName::H264 => avcc(sps, pps).zip(h264_size(sps)),
                    [vps, sps, pps] if s.codec == CodecName::H265 => {
                        hvcc(vps, sps, pps).zip(h265_sps(sps).map(|s| (s.width, s.height)))
                    }
                    _ => None,
                };
                let Some((config, (w, h))) = built else {
                    return;
                };
                (info.config, info.width, info.height) = (config, w, h);
            }
            CodecName::Av1 => {
                let Some(seq) = t.depack.av1_seq_header() else {
                    return;
                };
                let Some((config, w, h)) = av1c(seq).filter(|_| f.keyframe) else {
                    return;
                };
                (info.config, info.width, info.height) = (config, w, h);
            }
            CodecName::Vp8 | CodecName::Vp9 => {
                if !f.keyframe {
                    return;
                }
                if let Some((w, h)) = t.depack.vpx_size() {
                    (info.width, info.height) = (w as u32, h as u32);
                }
            }
            CodecName::Aac => {
                // The RTP clock of mpeg4-generic is the sample rate; the SDP's is kept.
                let Some((asc, _rate, ch)) = aac_config(&s.fmtp) else {
                    return;
                };
                (info.config, info.channels) = (asc, ch);
            }
            CodecName::Opus | CodecName::Pcma | CodecName::Pcmu => {}
        }
        t.info = Some(info);
    }

    fn on_frame(&mut self, track: usize, f: Frame) {
        if self.started {
            if self.tracks[track].out_index.is_none() {
                self.tracks[track].left_out += 1;
                return;
            }
            self.enqueue(track, f);
            self.release(false);
            return;
        }
        self.try_ready(track, &f);
        if self.tracks[track].info.is_none() {
            self.tracks[track].left_out += 1;
            return;
        }
        let now_ns = self.timeline.peek_ns(track, f.rtp_ts).unwrap_or(0);
        let first = *self.first_ready_ns.get_or_insert(now_ns);
        self.held_bytes += f.data.len();
        self.pending.push_back((track, f));
        let all = self.tracks.iter().all(|t| t.info.is_some());
        let full = self.pending.len() >= MAX_PENDING || self.held_bytes >= MAX_HELD_BYTES;
        if all || now_ns - first >= START_WAIT_NS || full {
            self.start();
            self.release(false);
        }
    }

    fn start(&mut self) {
        let mut infos = Vec::new();
        for t in &mut self.tracks {
            if let Some(info) = &t.info {
                t.out_index = Some(infos.len());
                infos.push(info.clone());
            }
        }
        self.writer.start(&infos, &mut self.sink);
        self.started = true;
        while let Some((track, f)) = self.pending.pop_front() {
            self.held_bytes = self.held_bytes.saturating_sub(f.data.len());
            self.enqueue(track, f);
        }
    }

    fn enqueue(&mut self, track: usize, f: Frame) {
        let Some(ns) = self.timeline.time_ns(track, f.rtp_ts) else {
            return;
        };
        let t = &mut self.tracks[track];
        t.newest_ns = Some(t.newest_ns.map_or(ns, |n| n.max(ns)));
        self.held_bytes += f.data.len();
        t.queue.push_back((ns, f.keyframe, f.data));
    }

    /// Hands queued frames to the container, earliest head first, as far as no other live
    /// track can still bring an earlier frame (or everything, when `all`, or while a queue is
    /// over [`MAX_QUEUED`] or the held bytes over [`MAX_HELD_BYTES`]).
    fn release(&mut self, all: bool) {
        loop {
            let head = self
                .tracks
                .iter()
                .enumerate()
                .filter_map(|(i, t)| t.queue.front().map(|f| (f.0, i)))
                .min();
            let Some((ns, i)) = head else { return };
            let newest = self
                .tracks
                .iter()
                .filter_map(|t| t.newest_ns)
                .max()
                .unwrap_or(ns);
            let waiting = self.tracks.iter().any(|t| {
                t.out_index.is_some() && t.queue.is_empty() && t.newest_ns.is_none_or(|n| n < ns)
            });
            let crowded = self.held_bytes >= MAX_HELD_BYTES
                || self.tracks.iter().any(|t| t.queue.len() > MAX_QUEUED);
            if !all && !crowded && waiting && newest - ns < INTERLEAVE_NS {
                return;
            }
            let t = &mut self.tracks[i];
            let Some((ns, key, data)) = t.queue.pop_front() else {
                return;
            };
            self.held_bytes = self.held_bytes.saturating_sub(data.len());
            let Some(out) = t.out_index else { continue };
            self.writer.frame(out, ns, key, &data, &mut self.sink);
            self.written[i] += 1;
            self.last_frame_ns = self.last_frame_ns.max(ns);
        }
    }

    /// Kinds of the tracks in the file, once started (for the caller's logs).
    pub fn kinds(&self) -> Vec<MediaKind> {
        self.tracks
            .iter()
            .filter(|t| t.out_index.is_some())
            .map(|t| t.spec.codec.kind())
            .collect()
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
