//! What the router scenario tests share: a recording [`Sink`], the ids and SSRCs of one
//! producer and its consumers, codec and track builders, a [`Setup`] of one producer with one
//! consumer, an RTP packet builder, and sample payloads (VP8 frames, H.264 parameter sets).
//!
//! Each `router_*.rs` test binary uses part of it.
#![allow(dead_code)]

use std::time::Instant;

use pms_core::media::{
    Codec, CodecName, ConsumerTrack, HeaderExtensions, MediaKind, ProducerTrack, TransportId,
};
use pms_core::router::{Router, Sink};
use pms_core::rtcp::{self, Rtcp};
use rand::rngs::StdRng;
use rand::SeedableRng;

#[derive(Default)]
pub struct Rec {
    pub rtp: Vec<(TransportId, Vec<u8>)>,
    pub rtcp: Vec<(TransportId, Vec<u8>)>,
}

impl Sink for Rec {
    fn send_rtp(&mut self, to: TransportId, pkt: &[u8]) {
        self.rtp.push((to, pkt.to_vec()));
    }
    fn send_rtcp(&mut self, to: TransportId, pkt: &[u8]) {
        self.rtcp.push((to, pkt.to_vec()));
    }
}

impl Rec {
    pub fn take_rtp(&mut self, to: TransportId) -> Vec<Vec<u8>> {
        let (mine, rest) = std::mem::take(&mut self.rtp)
            .into_iter()
            .partition(|(t, _)| *t == to);
        self.rtp = rest;
        mine.into_iter().map(|(_, p)| p).collect()
    }
    pub fn take_rtcp(&mut self, to: TransportId) -> Vec<Vec<u8>> {
        let (mine, rest) = std::mem::take(&mut self.rtcp)
            .into_iter()
            .partition(|(t, _)| *t == to);
        self.rtcp = rest;
        mine.into_iter().map(|(_, p)| p).collect()
    }
}

pub const P: TransportId = 10;
pub const C1: TransportId = 20;
pub const C2: TransportId = 21;
pub const VSSRC: u32 = 0xAAAA_0001;
pub const ASSRC: u32 = 0xAAAA_0002;

pub fn codec(name: CodecName, pt: u8, rtx: Option<u8>, fmtp: &str, fb: &[&str]) -> Codec {
    Codec {
        name,
        payload_type: pt,
        clock_rate: if name == CodecName::Opus {
            48000
        } else {
            90000
        },
        channels: if name == CodecName::Opus { 2 } else { 0 },
        fmtp: fmtp.into(),
        rtx_payload_type: rtx,
        rtcp_fb: fb.iter().map(|s| s.to_string()).collect(),
    }
}

pub const FB: &[&str] = &["nack", "nack pli", "ccm fir", "goog-remb"];

pub fn producer_tracks(video: CodecName, fmtp: &str, fb: &[&str]) -> Vec<ProducerTrack> {
    vec![
        ProducerTrack {
            kind: MediaKind::Video,
            mid: "0".into(),
            codec: codec(video, 102, Some(103), fmtp, fb),
            ssrc: Some(VSSRC),
            rtx_ssrc: Some(VSSRC + 100),
            extensions: HeaderExtensions::default(),
        },
        ProducerTrack {
            kind: MediaKind::Audio,
            mid: "1".into(),
            codec: codec(CodecName::Opus, 111, None, "", &[]),
            ssrc: None,
            rtx_ssrc: None,
            extensions: HeaderExtensions::default(),
        },
    ]
}

pub fn consumer_tracks(n: u32, video: CodecName, rtx: bool) -> Vec<ConsumerTrack> {
    vec![
        ConsumerTrack {
            kind: MediaKind::Video,
            mid: "v".into(),
            codec: codec(video, 96, rtx.then_some(97), "", FB),
            ssrc: 0x5000 + n,
            rtx_ssrc: rtx.then_some(0x6000 + n),
            extensions: HeaderExtensions {
                mid: Some(9),
                ..Default::default()
            },
            producer_track: 0,
        },
        ConsumerTrack {
            kind: MediaKind::Audio,
            mid: "a".into(),
            codec: codec(CodecName::Opus, 109, None, "", &[]),
            ssrc: 0x7000 + n,
            rtx_ssrc: None,
            extensions: HeaderExtensions::default(),
            producer_track: 1,
        },
    ]
}

pub struct Setup {
    pub r: Router,
    pub sink: Rec,
    pub t0: Instant,
}

pub fn setup(video: CodecName, fmtp: &str, fb: &[&str], rtx: bool, max_bitrate: u32) -> Setup {
    let t0 = Instant::now();
    let mut r = Router::new(Box::new(StdRng::seed_from_u64(1)));
    r.add_producer(P, producer_tracks(video, fmtp, fb), max_bitrate, t0);
    r.add_consumer(C1, P, consumer_tracks(1, video, rtx), t0)
        .unwrap();
    Setup {
        r,
        sink: Rec::default(),
        t0,
    }
}

pub fn rtp_pkt(pt: u8, ssrc: u32, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

pub const VP8_KEY: &[u8] = &[0x90, 0x80, 0x81, 0x23, 0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a];
pub const VP8_DELTA: &[u8] = &[0x90, 0x80, 0x81, 0x24, 0x51, 0x42, 0x00];

pub const SPROP: &str =
    "packetization-mode=1;profile-level-id=42e01f;sprop-parameter-sets=Z0LAH9oBQBbo,aM48gA==";
pub const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8];
pub const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

/// The keyframe requests sent to the producer [`P`]: `(1, ssrc)` for a PLI, `(4, ssrc)` for a FIR.
pub fn keyframe_requests(sink: &mut Rec) -> Vec<(u8, u32)> {
    sink.take_rtcp(P)
        .iter()
        .flat_map(|p| rtcp::parse_compound(p).collect::<Vec<_>>())
        .filter_map(|r| match r {
            Ok(Rtcp::Pli { media_ssrc, .. }) => Some((1, media_ssrc)),
            Ok(Rtcp::Fir { media_ssrc, .. }) => Some((4, media_ssrc)),
            _ => None,
        })
        .collect()
}
