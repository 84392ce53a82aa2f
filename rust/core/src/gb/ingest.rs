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

use std::time::Instant;

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
        if let Some(mut r) = self.reorder.take() {
            r.handle_timeout(now, &mut |o| match o {
                Ordered::Packet(p) => self.payload(p, out),
                Ordered::Lost => self.lost(),
            });
            self.reorder = Some(r);
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
        if let Some(a) = self.audio.as_mut() {
            a.packetize(pts, data, |pkt| out(IngestOutput::Rtp(pkt)));
        }
    }
}
