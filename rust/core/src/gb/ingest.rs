//! The packet path of one GB28181 ingest: camera RTP (PS payloads) in, producer RTP out.
//!
//! `RTP → [reorder (UDP)] → sequence-gap check → PsDemuxer → Packetizer / AudioPacketizer → RTP`
//!
//! - Gaps: a sequence gap (TCP: the next packet is not `last + 1`; UDP: the reorder buffer gave
//!   the gap up) calls [`PsDemuxer::lost`], which drops the torn frame and resyncs at the next
//!   pack header rather than hand a decoder a corrupt access unit.
//! - The RTP marker bit is *not* used to end frames: cameras set it inconsistently (see the
//!   digest, section 6); the demuxer ends a frame at the next frame's PES header, which
//!   arrives in the same RTP packet as the next pack header, so the cost is one frame interval
//!   of latency for the last frame before a pause and nothing otherwise.
//! - Going live ([`IngestOutput::Live`]): at the first video frame of a known codec (the
//!   demuxer has sniffed the elementary stream by then, so a PSM that lies is corrected), and
//!   when the stream has audio (the PSM lists it), at the first audio frame after that. Waiting for
//!   that frame lets the audio codec be what the payload is (Dahua labels AAC as G.711; the
//!   ADTS header decides) and gives AAC its `config`. Video frames that arrive meanwhile are
//!   held (at most [`MAX_HELD_FRAMES`], as refcounted `Bytes`) and sent right after, so the
//!   first IDR is not lost; without audio by then the stream goes live with video only.
//! - The tracks are fixed once live (the router's producer has them): a later change of codec
//!   is counted in [`IngestStats::codec_changes`] and its frames are dropped.
//! - Output SSRCs are ours (random per ingest), not the camera's: a camera that changes its
//!   SSRC or restarts keeps one producer SSRC, and players see no new stream.
//! - Timestamps: video RTP timestamp = the 90 kHz PTS (mod 2^32); audio = the PTS at the audio
//!   clock rate (the sample rate for AAC), kept continuous from one PES to the next by the
//!   [`AudioPacketizer`] (see [`audio`](super::audio)).
//! - Playback (GB28181 history): after [`PsIngest::set_scale`] the PTS go through a [`Retimer`]:
//!   at scale N (the device sends N times faster, its PTS in recording time) the output advances
//!   1/N of the PTS, so players keep a 1x clock; a PTS jump (a seek: more than [`MAX_PTS_STEP`]
//!   either way) continues one frame after the last output. Audio is dropped while
//!   the scale is not 1 (it cannot be played faster without resampling).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::audio::{audio_track, Adts, AudioPacketizer};
use super::reorder::{Ordered, Reorder};
use crate::media::{Codec, HeaderExtensions, MediaKind, ProducerTrack};
use crate::packetize::{Packetizer, DEFAULT_MAX_PAYLOAD};
use crate::ps::{AudioCodec, PsDemuxer, PsEvent, PsStats, VideoCodec};
use crate::rtp;

/// Video frames held at most while waiting for the first audio frame (2 s at 25 fps).
pub const MAX_HELD_FRAMES: usize = 50;
/// Payload type of the video track.
pub const VIDEO_PAYLOAD_TYPE: u8 = 96;

/// What the ingest hands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutput<'a> {
    /// The codecs are known: the producer tracks (video first). Once, before any `Rtp`.
    Live(&'a [ProducerTrack]),
    /// One RTP packet of a producer track (matching the track by SSRC and payload type).
    Rtp(&'a [u8]),
}

/// Counters since creation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// RTP packets taken (after reordering: in order, duplicates excluded).
    pub packets: u64,
    /// Payload bytes given to the demuxer.
    pub bytes: u64,
    /// Sequence gaps (each one a `lost()`).
    pub gaps: u64,
    /// Packets that did not parse as RTP, or RTCP.
    pub not_rtp: u64,
    /// Late or duplicate packets dropped by the reorder buffer.
    pub late: u64,
    /// Frames dropped because their codec changed after going live.
    pub codec_changes: u64,
    /// AAC frames dropped by the audio packetizer: another config than the track's, or several
    /// raw data blocks in one ADTS frame.
    pub audio_dropped: u64,
    pub video_frames: u64,
    pub audio_frames: u64,
}

/// One camera's PS-over-RTP stream turned into producer RTP. Sans-IO.
#[derive(Debug)]
pub struct PsIngest {
    demux: PsDemuxer,
    reorder: Option<Reorder>,
    /// Next sequence number expected (TCP path).
    next_seq: Option<u16>,
    video_ssrc: u32,
    audio_ssrc: u32,
    video_codec: Option<VideoCodec>,
    video: Option<Packetizer>,
    audio_codec: Option<AudioCodec>,
    audio: Option<AudioPacketizer>,
    tracks: Vec<ProducerTrack>,
    live: bool,
    /// The demuxer's latest view: (video, audio).
    known: (Option<VideoCodec>, Option<AudioCodec>),
    held: Vec<(u64, Bytes)>,
    stats: IngestStats,
    retime: Option<Retimer>,
    /// The time of the packet or timeout being handled (the retimer's scale check).
    now: Option<Instant>,
}

/// A PTS jump larger than this (90 kHz: 5 s) re-anchors the [`Retimer`].
pub const MAX_PTS_STEP: u64 = 5 * 90_000;
/// The step after a re-anchored jump when no frame interval is known yet (40 ms).
const DEFAULT_STEP: u64 = 3_600;

/// How long the [`Retimer`] watches the PTS arrive after a scale change before it believes it.
pub const SCALE_CHECK: Duration = Duration::from_secs(3);
/// A wall-clock gap between frames longer than this (a pause) restarts the check.
const CHECK_GAP: Duration = Duration::from_secs(1);

/// Maps a playback's PTS (recording time) onto the players' clock: `out = anchor_out + (pts -
/// anchor_in) / scale`, re-anchored at every scale change and at PTS jumps (more than
/// [`MAX_PTS_STEP`] either way; B-frames' small steps back are not jumps). Sans-IO.
///
/// A device may ignore `Scale`: after a change to N != 1 the retimer watches the PTS arrive
/// ([`Retimer::observe`]) for [`SCALE_CHECK`] of frames (a pause or a seek restarts the watch); when
/// they advance closer to 1x than to N x (`|ln r| < |ln r - ln N|`), it goes back to 1 and says so
/// ([`Retimer::scale_ignored`]), so players are not slowed down or sped up for nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Retimer {
    scale: f64,
    anchor: Option<(u64, u64)>,
    last: Option<(u64, u64)>,
    step: u64,
    /// The watch after a scale change: (first frame's arrival, its PTS); `pending` until a frame.
    check: Option<(Instant, u64)>,
    check_pending: bool,
    last_arrival: Option<Instant>,
    ignored: bool,
}

impl Retimer {
    pub fn new(scale: f64) -> Retimer {
        let scale = Retimer::clamp(scale);
        Retimer {
            scale,
            anchor: None,
            last: None,
            step: DEFAULT_STEP,
            check: None,
            check_pending: scale != 1.0,
            last_arrival: None,
            ignored: false,
        }
    }

    /// The device did not honour the last scale asked for (the retimer went back to 1).
    pub fn scale_ignored(&self) -> bool {
        self.ignored
    }

    /// A frame with `pts` arrived at `now` (before its [`Retimer::map`]): checks a new scale.
    pub fn observe(&mut self, pts: u64, now: Instant) {
        let gap = self
            .last_arrival
            .is_some_and(|t| now.saturating_duration_since(t) > CHECK_GAP);
        let jump = self
            .last
            .is_some_and(|(last_in, _)| pts.abs_diff(last_in) > MAX_PTS_STEP);
        self.last_arrival = Some(now);
        if self.check_pending || ((gap || jump) && self.check.is_some()) {
            self.check = Some((now, pts));
            self.check_pending = false;
            return;
        }
        let Some((t0, p0)) = self.check else { return };
        let wall = now.saturating_duration_since(t0);
        if wall < SCALE_CHECK {
            return;
        }
        self.check = None;
        let rate = pts.saturating_sub(p0) as f64 / 90_000.0 / wall.as_secs_f64();
        if rate > 0.0 && rate.ln().abs() < (rate.ln() - self.scale.ln()).abs() {
            self.scale = 1.0;
            self.anchor = self.last;
            self.ignored = true;
        }
    }

    fn clamp(scale: f64) -> f64 {
        if scale.is_finite() {
            scale.clamp(0.01, 100.0)
        } else {
            1.0
        }
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// A new scale from the next frame on.
    pub fn set_scale(&mut self, scale: f64) {
        self.scale = Retimer::clamp(scale);
        self.anchor = self.last;
        self.check = None;
        self.check_pending = self.scale != 1.0;
        self.ignored = false;
    }

    /// The output timestamp (90 kHz) of a frame with `pts`.
    pub fn map(&mut self, pts: u64) -> u64 {
        let (anchor_in, anchor_out) = match (self.anchor, self.last) {
            (None, _) => (pts, pts),
            (Some(_), Some((last_in, last_out))) if pts.abs_diff(last_in) > MAX_PTS_STEP => {
                (pts, last_out.wrapping_add(self.step))
            }
            (Some(a), _) => a,
        };
        self.anchor = Some((anchor_in, anchor_out));
        // Signed: B-frames come a little before the previous PTS. Both fit i64 (33-bit PTS, unwrapped).
        let delta = (pts as i64).wrapping_sub(anchor_in as i64) as f64 / self.scale;
        let out = anchor_out.wrapping_add_signed(delta as i64);
        if let Some((last_in, last_out)) = self.last {
            let d = out.wrapping_sub(last_out);
            if pts > last_in && d > 0 && d < MAX_PTS_STEP {
                self.step = d;
            }
        }
        self.last = Some((pts, out));
        out
    }
}

fn video_track(codec: VideoCodec, ssrc: u32) -> ProducerTrack {
    let fmtp = match codec {
        VideoCodec::H264 => "packetization-mode=1".to_string(),
        VideoCodec::H265 => String::new(),
    };
    ProducerTrack {
        kind: MediaKind::Video,
        mid: "0".into(),
        codec: Codec {
            name: codec.codec_name(),
            payload_type: VIDEO_PAYLOAD_TYPE,
            clock_rate: 90_000,
            channels: 0,
            fmtp,
            rtx_payload_type: None,
            rtcp_fb: Vec::new(),
        },
        ssrc: Some(ssrc),
        rtx_ssrc: None,
        extensions: HeaderExtensions::default(),
    }
}

impl PsIngest {
    /// `reorder`: put a reorder buffer in front (UDP). `video_ssrc`/`audio_ssrc`: our SSRCs.
    pub fn new(reorder: bool, video_ssrc: u32, audio_ssrc: u32) -> PsIngest {
        PsIngest {
            demux: PsDemuxer::new(),
            reorder: reorder.then(Reorder::new),
            next_seq: None,
            video_ssrc,
            audio_ssrc,
            video_codec: None,
            video: None,
            audio_codec: None,
            audio: None,
            tracks: Vec::new(),
            live: false,
            known: (None, None),
            held: Vec::new(),
            stats: IngestStats::default(),
            retime: None,
            now: None,
        }
    }

    pub fn stats(&self) -> IngestStats {
        let mut s = self.stats;
        if let Some(r) = &self.reorder {
            s.late = r.stats().late;
        }
        if let Some(a) = &self.audio {
            s.audio_dropped = a.dropped();
        }
        s
    }

    pub fn demux_stats(&self) -> PsStats {
        self.demux.stats()
    }

    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The producer tracks once live.
    pub fn tracks(&self) -> &[ProducerTrack] {
        &self.tracks
    }

    /// One RTP packet from the camera (RTCP and non-RTP are counted and ignored).
    pub fn push_rtp(&mut self, pkt: &[u8], now: Instant, out: &mut impl FnMut(IngestOutput)) {
        self.now = Some(now);
        let Ok(v) = rtp::parse(pkt) else {
            self.stats.not_rtp += 1;
            return;
        };
        if (72..=76).contains(&v.payload_type) {
            // RTCP (PT 200..=204 with the marker bit read as part of it).
            self.stats.not_rtp += 1;
            return;
        }
        if let Some(mut r) = self.reorder.take() {
            r.push(v.seq, v.payload, now, &mut |o| match o {
                Ordered::Packet(p) => self.payload(p, out),
                Ordered::Lost => self.lost(),
            });
            self.reorder = Some(r);
            return;
        }
        if self.next_seq.is_some_and(|n| n != v.seq) {
            self.lost();
        }
        self.next_seq = Some(v.seq.wrapping_add(1));
        self.payload(v.payload, out);
    }

    /// When the reorder buffer wants [`handle_timeout`](Self::handle_timeout).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.reorder.as_ref().and_then(Reorder::poll_timeout)
    }

    pub fn handle_timeout(&mut self, now: Instant, out: &mut impl FnMut(IngestOutput)) {
        self.now = Some(now);
        if let Some(mut r) = self.reorder.take() {
            r.handle_timeout(now, &mut |o| match o {
                Ordered::Packet(p) => self.payload(p, out),
                Ordered::Lost => self.lost(),
            });
            self.reorder = Some(r);
        }
    }

    /// Re-time the output for a playback at `scale` (see [`Retimer`]); 1.0 keeps the pace but
    /// still makes seeks continuous.
    pub fn scale_ignored(&self) -> bool {
        self.retime.as_ref().is_some_and(Retimer::scale_ignored)
    }

    /// Sets the playback's scale (see [`Retimer`]).
    pub fn set_scale(&mut self, scale: f64) {
        match self.retime.as_mut() {
            Some(r) => r.set_scale(scale),
            None => self.retime = Some(Retimer::new(scale)),
        }
    }

    /// Bytes are missing before the next payload.
    pub fn lost(&mut self) {
        self.stats.gaps += 1;
        self.demux.lost();
    }

    fn payload(&mut self, p: &[u8], out: &mut impl FnMut(IngestOutput)) {
        self.stats.packets += 1;
        self.stats.bytes += p.len() as u64;
        self.demux.push(p);
        while let Some(ev) = self.demux.poll() {
            match ev {
                PsEvent::StreamsKnown { video, audio } => {
                    self.known = (video, audio);
                }
                PsEvent::Video { pts_90k, data, .. } => {
                    self.stats.video_frames += 1;
                    if !self.live && self.known.0.is_some() {
                        if self.known.1.is_some() && self.held.len() < MAX_HELD_FRAMES {
                            self.held.push((pts_90k, data));
                            continue;
                        }
                        // No audio in this stream, or none in time: live with video only.
                        self.go_live(None, out);
                    }
                    self.send_video(pts_90k, &data, out);
                }
                PsEvent::Audio { pts_90k, data } => {
                    self.stats.audio_frames += 1;
                    if !self.live && self.known.0.is_some() {
                        self.go_live(Some(&data), out);
                    }
                    self.send_audio(pts_90k, &data, out);
                }
            }
        }
    }

    fn go_live(&mut self, first_audio: Option<&[u8]>, out: &mut impl FnMut(IngestOutput)) {
        let Some(vc) = self.known.0 else { return };
        self.video_codec = Some(vc);
        self.tracks.push(video_track(vc, self.video_ssrc));
        self.video = Packetizer::new(
            vc.codec_name(),
            self.video_ssrc,
            VIDEO_PAYLOAD_TYPE,
            rand::random(),
            DEFAULT_MAX_PAYLOAD,
        );
        if let (Some(ac), Some(first)) = (self.demux.audio_codec(), first_audio) {
            let adts = Adts::parse(first);
            if let Some(t) = audio_track(ac, adts, self.audio_ssrc) {
                self.audio = Some(AudioPacketizer::new(&t, adts, rand::random()));
                self.audio_codec = Some(ac);
                self.tracks.push(t);
            }
        }
        self.live = true;
        out(IngestOutput::Live(&self.tracks));
        for (pts, data) in std::mem::take(&mut self.held) {
            self.send_video(pts, &data, out);
        }
    }

    fn send_video(&mut self, pts: u64, data: &[u8], out: &mut impl FnMut(IngestOutput)) {
        if !self.live {
            return;
        }
        if self.known.0 != self.video_codec {
            self.stats.codec_changes += 1;
            return;
        }
        let pts = match self.retime.as_mut() {
            Some(r) => {
                if let Some(now) = self.now {
                    r.observe(pts, now);
                }
                r.map(pts)
            }
            None => pts,
        };
        if let Some(p) = self.video.as_mut() {
            p.packetize(data, pts as u32, |pkt| out(IngestOutput::Rtp(pkt)));
        }
    }

    fn send_audio(&mut self, pts: u64, data: &[u8], out: &mut impl FnMut(IngestOutput)) {
        if !self.live {
            return;
        }
        if self.demux.audio_codec() != self.audio_codec {
            self.stats.codec_changes += 1;
            return;
        }
        if self.retime.as_ref().is_some_and(|r| r.scale() != 1.0) {
            self.stats.audio_dropped += 1;
            return;
        }
        if let Some(a) = self.audio.as_mut() {
            a.packetize(pts, data, |pkt| out(IngestOutput::Rtp(pkt)));
        }
    }
}

#[cfg(test)]
mod retimer_tests {
    use super::*;

    #[test]
    fn identity_until_the_scale_changes_then_a_quarter_pace() {
        let mut r = Retimer::new(1.0);
        assert_eq!(r.map(90_000), 90_000);
        assert_eq!(r.map(93_600), 93_600);
        r.set_scale(4.0);
        assert_eq!(r.map(97_200), 93_600 + 900);
        assert_eq!(r.map(97_200 + 36_000), 93_600 + 900 + 9_000);
        r.set_scale(1.0);
        assert_eq!(r.map(97_200 + 36_000 + 3_600), 93_600 + 900 + 9_000 + 3_600);
    }

    #[test]
    fn a_seek_either_way_continues_one_frame_later() {
        let mut r = Retimer::new(1.0);
        r.map(0);
        let last = r.map(3_600);
        assert_eq!(r.map(10 * 90_000), last + 3_600); // forward jump of 10 s
        assert_eq!(r.map(10 * 90_000 + 3_600), last + 7_200);
        assert_eq!(r.map(90_000), last + 10_800); // backwards
    }

    #[test]
    fn b_frames_a_little_earlier_are_not_a_jump() {
        let mut r = Retimer::new(1.0);
        r.map(90_000);
        r.set_scale(2.0);
        assert_eq!(r.map(90_000 + 10_800), 90_000 + 5_400);
        assert_eq!(r.map(90_000 + 3_600), 90_000 + 1_800);
    }

    #[test]
    fn a_device_that_ignores_scale_is_found_out_and_a_pause_is_not_mistaken_for_it() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        // honours 4x: 40 ms of wall per 160 ms of PTS
        let mut r = Retimer::new(1.0);
        r.set_scale(4.0);
        for i in 0..100u64 {
            r.observe(i * 14_400, at(i * 40));
            r.map(i * 14_400);
        }
        assert!(!r.scale_ignored() && r.scale() == 4.0);
        // ignores it: the PTS keep coming at 1x
        let mut r = Retimer::new(1.0);
        r.set_scale(4.0);
        let mut last = 0;
        for i in 0..100u64 {
            r.observe(i * 3_600, at(i * 40));
            last = r.map(i * 3_600);
        }
        assert!(r.scale_ignored() && r.scale() == 1.0);
        r.observe(100 * 3_600, at(4_000));
        assert_eq!(r.map(100 * 3_600), last + 3_600); // back at 1x, continuous
                                                      // honours 4x with a 3 s pause inside the watch
        let mut r = Retimer::new(1.0);
        r.set_scale(4.0);
        for i in 0..100u64 {
            let wall = i * 40 + if i >= 10 { 3_000 } else { 0 };
            r.observe(i * 14_400, at(wall));
            r.map(i * 14_400);
        }
        assert!(!r.scale_ignored(), "a pause is not a device ignoring Scale");
    }

    #[test]
    fn nonsense_scales_are_clamped() {
        for s in [f64::NAN, f64::INFINITY, -3.0, 0.0, 1e9] {
            let mut r = Retimer::new(s);
            r.map(0);
            let out = r.map(90_000);
            assert!(out <= 9_000_000, "{s}: {out}");
        }
    }
}
