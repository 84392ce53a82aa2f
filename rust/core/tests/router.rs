//! Router scenarios: one producer, a few consumers, a recording sink.

use std::time::{Duration, Instant};

use pms_core::media::{
    Codec, CodecName, ConsumerTrack, HeaderExtensions, MediaKind, ProducerTrack, TransportId,
};
use pms_core::router::{Router, RouterEvent, Sink};
use pms_core::rtcp::{self, Rtcp};
use pms_core::rtp;

#[derive(Default)]
struct Rec {
    rtp: Vec<(TransportId, Vec<u8>)>,
    rtcp: Vec<(TransportId, Vec<u8>)>,
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
    fn take_rtp(&mut self, to: TransportId) -> Vec<Vec<u8>> {
        let (mine, rest) = std::mem::take(&mut self.rtp)
            .into_iter()
            .partition(|(t, _)| *t == to);
        self.rtp = rest;
        mine.into_iter().map(|(_, p)| p).collect()
    }
    fn take_rtcp(&mut self, to: TransportId) -> Vec<Vec<u8>> {
        let (mine, rest) = std::mem::take(&mut self.rtcp)
            .into_iter()
            .partition(|(t, _)| *t == to);
        self.rtcp = rest;
        mine.into_iter().map(|(_, p)| p).collect()
    }
}

const P: TransportId = 10;
const C1: TransportId = 20;
const C2: TransportId = 21;
const VSSRC: u32 = 0xAAAA_0001;
const ASSRC: u32 = 0xAAAA_0002;

fn codec(name: CodecName, pt: u8, rtx: Option<u8>, fmtp: &str, fb: &[&str]) -> Codec {
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

const FB: &[&str] = &["nack", "nack pli", "ccm fir", "goog-remb"];

fn producer_tracks(video: CodecName, fmtp: &str, fb: &[&str]) -> Vec<ProducerTrack> {
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

fn consumer_tracks(n: u32, video: CodecName, rtx: bool) -> Vec<ConsumerTrack> {
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

struct Setup {
    r: Router,
    sink: Rec,
    t0: Instant,
}

fn setup(video: CodecName, fmtp: &str, fb: &[&str], rtx: bool, max_bitrate: u32) -> Setup {
    let t0 = Instant::now();
    let mut r = Router::new();
    r.add_producer(P, producer_tracks(video, fmtp, fb), max_bitrate, t0);
    r.add_consumer(C1, P, consumer_tracks(1, video, rtx), t0)
        .unwrap();
    Setup {
        r,
        sink: Rec::default(),
        t0,
    }
}

fn rtp_pkt(pt: u8, ssrc: u32, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

const VP8_KEY: &[u8] = &[0x90, 0x80, 0x81, 0x23, 0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a];
const VP8_DELTA: &[u8] = &[0x90, 0x80, 0x81, 0x24, 0x51, 0x42, 0x00];

#[test]
fn rewrite_and_seq_wrap() {
    let mut s = setup(CodecName::Vp8, "", FB, true, 0);
    s.r.consumer_connected(C1, s.t0, &mut s.sink);
    assert_eq!(s.r.poll_event(), None);
    let mut sent = Vec::new();
    for (i, seq) in [65534u16, 65535, 0, 1].into_iter().enumerate() {
        let mut p = rtp_pkt(
            102,
            VSSRC,
            seq,
            1000 + i as u32 * 3000,
            i == 3,
            if i == 0 { VP8_KEY } else { VP8_DELTA },
        );
        // A publisher header extension (abs-send-time), to be dropped, and one CSRC.
        p[0] |= 0x11;
        p.splice(12..12, [0, 0, 0, 0x42, 0xBE, 0xDE, 0, 1, 0x22, 1, 2, 3]);
        s.r.handle_rtp(s.t0, P, &p, &mut s.sink);
        sent.push(p);
    }
    assert_eq!(
        s.r.poll_event(),
        Some(RouterEvent::ProducerStarted { producer: P })
    );
    let out = s.sink.take_rtp(C1);
    assert_eq!(out.len(), 4);
    let first = rtp::parse(&out[0]).unwrap();
    for (i, o) in out.iter().enumerate() {
        let v = rtp::parse(o).unwrap();
        let src = rtp::parse(&sent[i]).unwrap();
        assert_eq!(v.ssrc, 0x5001);
        assert_eq!(v.payload_type, 96);
        assert_eq!(v.seq, first.seq.wrapping_add(i as u16));
        assert_eq!(v.timestamp.wrapping_sub(first.timestamp), i as u32 * 3000);
        assert_eq!(v.marker, i == 3);
        assert_eq!(v.payload, src.payload);
        assert_eq!(v.csrcs, &[0, 0, 0, 0x42]);
        let (profile, ext) = v.extension.unwrap();
        assert_eq!(
            (profile, &ext[..2]),
            (0xBEDE, &[0x90, b'v'][..]),
            "mid extension replaces the publisher's"
        );
    }
    let st = s.r.stats();
    assert_eq!(
        (st.packets_in, st.packets_out, st.producers, st.consumers),
        (4, 4, 1, 1)
    );
}

fn gating_case(codec: CodecName, delta: &[u8], key: &[u8]) {
    let mut s = setup(codec, "", FB, false, 0);
    s.r.consumer_connected(C1, s.t0, &mut s.sink);
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 1, 0, true, delta),
        &mut s.sink,
    );
    assert!(
        s.sink.take_rtp(C1).is_empty(),
        "{codec:?}: delta frame must not start a consumer"
    );
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 2, 3000, true, key),
        &mut s.sink,
    );
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 3, 6000, true, delta),
        &mut s.sink,
    );
    assert_eq!(
        s.sink.take_rtp(C1).len(),
        2,
        "{codec:?}: keyframe starts the consumer"
    );
    // Audio is never gated.
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(111, ASSRC, 9, 960, false, &[0xfc, 1, 2]),
        &mut s.sink,
    );
    let a = s.sink.take_rtp(C1);
    assert_eq!(a.len(), 1);
    assert_eq!(rtp::parse(&a[0]).unwrap().ssrc, 0x7001);
}

#[test]
fn keyframe_gating_per_codec() {
    gating_case(CodecName::Vp8, VP8_DELTA, VP8_KEY);
    gating_case(
        CodecName::Vp9,
        &[0xca, 0x80, 0x02, 0x00],
        &[0x8a, 0x80, 0x01, 0x00],
    );
    gating_case(
        CodecName::H264,
        &[0x41, 0x9a, 0x00],
        &[0x65, 0x88, 0x84, 0x00],
    );
    gating_case(CodecName::H264, &[0x7c, 0x05, 0x88], &[0x7c, 0x85, 0x88]);
    gating_case(CodecName::H265, &[0x02, 0x01, 0xd0], &[0x26, 0x01, 0xaf]);
    gating_case(CodecName::Av1, &[0x10, 0x32, 0x00], &[0x18, 0x0a, 0x0b]);
}

const SPROP: &str =
    "packetization-mode=1;profile-level-id=42e01f;sprop-parameter-sets=Z0LAH9oBQBbo,aM48gA==";
const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8];
const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

#[test]
fn sps_pps_injected_before_idr_from_sprop() {
    let mut s = setup(CodecName::H264, SPROP, FB, false, 0);
    s.r.consumer_connected(C1, s.t0, &mut s.sink);
    let idr = [0x65, 0x88, 0x84, 0x21];
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 100, 9000, true, &idr),
        &mut s.sink,
    );
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 101, 12000, true, &[0x41, 0x9a]),
        &mut s.sink,
    );
    let out = s.sink.take_rtp(C1);
    assert_eq!(out.len(), 3);
    let (a, b, c) = (
        rtp::parse(&out[0]).unwrap(),
        rtp::parse(&out[1]).unwrap(),
        rtp::parse(&out[2]).unwrap(),
    );
    assert_eq!(a.payload[0] & 0x1f, 24, "STAP-A first");
    let mut stap = vec![a.payload[0]];
    for n in [SPS, PPS] {
        stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
        stap.extend_from_slice(n);
    }
    assert_eq!(a.payload, &stap[..]);
    assert!(!a.marker);
    assert_eq!(a.timestamp, b.timestamp);
    assert_eq!(b.seq, a.seq.wrapping_add(1));
    assert_eq!(c.seq, b.seq.wrapping_add(1));
    assert_eq!(b.payload, &idr);

    // An IDR that comes with its own SPS/PPS just before it gets no injection.
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 102, 15000, false, SPS),
        &mut s.sink,
    );
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 103, 15000, false, PPS),
        &mut s.sink,
    );
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 104, 15000, true, &idr),
        &mut s.sink,
    );
    assert_eq!(s.sink.take_rtp(C1).len(), 3);
    // A later bare IDR gets one again (learned in-band).
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 105, 18000, true, &idr),
        &mut s.sink,
    );
    let out = s.sink.take_rtp(C1);
    assert_eq!(out.len(), 2);
    assert_eq!(rtp::parse(&out[0]).unwrap().payload[0] & 0x1f, 24);
    // NACK of the IDR after the injection maps to the right packet.
    let idr_seq = rtp::parse(&out[1]).unwrap().seq;
    let mut nack = Vec::new();
    rtcp::write_nack(&mut nack, 1, 0x5001, &[idr_seq, b.seq]);
    s.r.handle_rtcp(s.t0, C1, &nack, &mut s.sink);
    let re = s.sink.take_rtp(C1);
    assert_eq!(re.len(), 2);
    assert_eq!(rtp::parse(&re[0]).unwrap(), rtp::parse(&out[1]).unwrap());
    assert_eq!(rtp::parse(&re[1]).unwrap().payload, &idr);
    assert_eq!(rtp::parse(&re[1]).unwrap().seq, b.seq);
}

#[test]
fn nack_answered_with_rtx() {
    let mut s = setup(CodecName::Vp8, "", FB, true, 0);
    s.r.consumer_connected(C1, s.t0, &mut s.sink);
    for (i, seq) in [65535u16, 0, 1].into_iter().enumerate() {
        let payload = if i == 0 { VP8_KEY } else { VP8_DELTA };
        s.r.handle_rtp(
            s.t0,
            P,
            &rtp_pkt(102, VSSRC, seq, 5000, i == 2, payload),
            &mut s.sink,
        );
    }
    let out = s.sink.take_rtp(C1);
    let seqs: Vec<u16> = out.iter().map(|p| rtp::parse(p).unwrap().seq).collect();
    let mut nack = Vec::new();
    rtcp::write_nack(
        &mut nack,
        0x1234,
        0x5001,
        &[seqs[0], seqs[2], seqs[2].wrapping_add(50)],
    );
    s.r.handle_rtcp(s.t0 + Duration::from_millis(30), C1, &nack, &mut s.sink);
    let re = s.sink.take_rtp(C1);
    assert_eq!(re.len(), 2, "the unknown seq is skipped");
    let r0 = rtp::parse(&re[0]).unwrap();
    let r1 = rtp::parse(&re[1]).unwrap();
    let o0 = rtp::parse(&out[0]).unwrap();
    assert_eq!((r0.ssrc, r0.payload_type), (0x6001, 97));
    assert_eq!(r1.seq, r0.seq.wrapping_add(1), "own RTX seq counter");
    assert_eq!(r0.timestamp, o0.timestamp);
    assert_eq!(&r0.payload[..2], &seqs[0].to_be_bytes(), "OSN first");
    assert_eq!(&r0.payload[2..], o0.payload);
    assert!(r1.marker);
    let st = s.r.stats();
    assert_eq!((st.nacks, st.retransmits), (1, 2));

    // Without RTX negotiated: resent as is.
    let mut s = setup(CodecName::Vp8, "", FB, false, 0);
    s.r.consumer_connected(C1, s.t0, &mut s.sink);
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 7, 5000, true, VP8_KEY),
        &mut s.sink,
    );
    let out = s.sink.take_rtp(C1);
    let mut nack = Vec::new();
    rtcp::write_nack(
        &mut nack,
        0x1234,
        0x5001,
        &[rtp::parse(&out[0]).unwrap().seq],
    );
    s.r.handle_rtcp(s.t0, C1, &nack, &mut s.sink);
    assert_eq!(s.sink.take_rtp(C1), out);
}

#[test]
fn publisher_rtx_unwrapped_and_duplicates_dropped() {
    let mut s = setup(CodecName::Vp8, "", FB, false, 0);
    s.r.consumer_connected(C1, s.t0, &mut s.sink);
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 10, 0, false, VP8_KEY),
        &mut s.sink,
    );
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 12, 0, true, VP8_DELTA),
        &mut s.sink,
    );
    let upstream = s.sink.take_rtcp(P);
    let nack = upstream.iter().find_map(|p| {
        rtcp::parse_compound(p).find_map(|r| match r {
            Ok(Rtcp::Nack {
                media_ssrc, seqs, ..
            }) => Some((media_ssrc, seqs.collect::<Vec<_>>())),
            _ => None,
        })
    });
    assert_eq!(nack, Some((VSSRC, vec![11])), "gap NACKed upstream");
    let mut rtx_payload = 11u16.to_be_bytes().to_vec();
    rtx_payload.extend_from_slice(VP8_DELTA);
    let rtx = rtp_pkt(103, VSSRC + 100, 500, 0, false, &rtx_payload);
    s.r.handle_rtp(s.t0, P, &rtx, &mut s.sink);
    s.r.handle_rtp(s.t0, P, &rtx, &mut s.sink);
    let out = s.sink.take_rtp(C1);
    assert_eq!(out.len(), 3, "recovered packet forwarded once");
    let v: Vec<_> = out.iter().map(|p| rtp::parse(p).unwrap()).collect();
    assert_eq!(v[2].seq, v[0].seq.wrapping_add(1));
    assert_eq!(v[2].payload, VP8_DELTA);
    assert_eq!(v[1].seq, v[0].seq.wrapping_add(2));
}

fn keyframe_requests(sink: &mut Rec) -> Vec<(u8, u32)> {
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

#[test]
fn pli_on_join_rate_limited_and_forwarded() {
    let mut s = setup(CodecName::Vp8, "", FB, false, 0);
    s.r.add_consumer(C2, P, consumer_tracks(2, CodecName::Vp8, false), s.t0)
        .unwrap();
    s.r.consumer_connected(C1, s.t0, &mut s.sink);
    assert_eq!(keyframe_requests(&mut s.sink), vec![(1, VSSRC)]);
    let t1 = s.t0 + Duration::from_millis(100);
    s.r.consumer_connected(C2, t1, &mut s.sink);
    let mut pli = Vec::new();
    rtcp::write_pli(&mut pli, 0x99, 0x5001);
    s.r.handle_rtcp(t1, C1, &pli, &mut s.sink);
    assert!(
        keyframe_requests(&mut s.sink).is_empty(),
        "inside 500 ms: deferred"
    );
    let due = s.r.poll_timeout().unwrap();
    assert_eq!(due, s.t0 + Duration::from_millis(500));
    s.r.handle_timeout(due, &mut s.sink);
    assert_eq!(
        keyframe_requests(&mut s.sink),
        vec![(1, VSSRC)],
        "one request for both"
    );
    s.r.handle_timeout(due + Duration::from_millis(10), &mut s.sink);
    assert!(keyframe_requests(&mut s.sink).is_empty());
    // A player's PLI after the interval goes up at once.
    s.r.handle_rtcp(due + Duration::from_millis(600), C1, &pli, &mut s.sink);
    assert_eq!(keyframe_requests(&mut s.sink), vec![(1, VSSRC)]);
    assert_eq!(s.r.stats().plis, 3);

    // FIR when the publisher only negotiated `ccm fir`.
    let mut s = setup(CodecName::Vp8, "", &["ccm fir", "nack"], false, 0);
    s.r.consumer_connected(C1, s.t0, &mut s.sink);
    assert_eq!(keyframe_requests(&mut s.sink), vec![(4, VSSRC)]);
}

#[test]
fn sender_report_translated() {
    let mut s = setup(CodecName::Vp8, "", FB, false, 0);
    s.r.consumer_connected(C1, s.t0, &mut s.sink);
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 1, 90_000, true, VP8_KEY),
        &mut s.sink,
    );
    let out = s.sink.take_rtp(C1);
    let ts_out = rtp::parse(&out[0]).unwrap().timestamp;
    let mut sr = Vec::new();
    rtcp::write_sr(&mut sr, VSSRC, 0xE000_0000_8000_0000, 180_000, 50, 5000);
    s.r.handle_rtcp(s.t0, P, &sr, &mut s.sink);
    let got = s.sink.take_rtcp(C1);
    assert_eq!(got.len(), 1);
    match rtcp::parse_compound(&got[0]).next() {
        Some(Ok(Rtcp::SenderReport {
            ssrc,
            ntp_time,
            rtp_time,
            packet_count,
            octet_count,
            ..
        })) => {
            assert_eq!((ssrc, ntp_time), (0x5001, 0xE000_0000_8000_0000));
            assert_eq!(rtp_time, ts_out.wrapping_add(90_000));
            assert_eq!((packet_count, octet_count), (1, VP8_KEY.len() as u32));
        }
        o => panic!("{o:?}"),
    }
    // Consumer RRs are kept.
    let mut rr = Vec::new();
    rtcp::write_rr(
        &mut rr,
        0x77,
        &[rtcp::ReportBlock {
            ssrc: 0x5001,
            fraction_lost: 3,
            ..Default::default()
        }],
    );
    s.r.handle_rtcp(s.t0, C1, &rr, &mut s.sink);
    let reps = s.r.consumer_reports(C1).unwrap();
    assert_eq!(reps[0].last_rr.unwrap().fraction_lost, 3);
}

fn rr_remb(s: &mut Setup, at: Instant) -> (Vec<rtcp::ReportBlock>, u64, Vec<u32>) {
    s.r.handle_timeout(at, &mut s.sink);
    let pkts = s.sink.take_rtcp(P);
    assert_eq!(pkts.len(), 1);
    let mut blocks = Vec::new();
    let mut remb = None;
    let raw = &pkts[0];
    for r in rtcp::parse_compound(raw) {
        match r.unwrap() {
            Rtcp::ReceiverReport { reports, .. } => blocks.extend(reports),
            Rtcp::Remb { bitrate, .. } => remb = Some(bitrate),
            _ => {}
        }
    }
    // The REMB lists the SSRCs after its 20 fixed bytes.
    let remb_at = raw.len() - 4 * blocks.len();
    let ssrcs = raw[remb_at..]
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (blocks, remb.unwrap(), ssrcs)
}

#[test]
fn receiver_report_and_remb() {
    let mut s = setup(CodecName::Vp8, "", FB, false, 2_500_001);
    assert_eq!(s.r.poll_timeout(), Some(s.t0 + Duration::from_secs(1)));
    for seq in [1u16, 2, 4, 5] {
        let at = s.t0 + Duration::from_millis(seq as u64 * 10);
        s.r.handle_rtp(
            at,
            P,
            &rtp_pkt(102, VSSRC, seq, seq as u32 * 900, false, VP8_DELTA),
            &mut s.sink,
        );
    }
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(111, ASSRC, 300, 0, false, &[1]),
        &mut s.sink,
    );
    let mut sr = Vec::new();
    rtcp::write_sr(&mut sr, VSSRC, 0x0000_1111_2222_0000, 0, 1, 1);
    s.r.handle_rtcp(s.t0 + Duration::from_millis(500), P, &sr, &mut s.sink);
    s.sink.take_rtcp(P);
    let (blocks, bitrate, ssrcs) = {
        let at = s.t0 + Duration::from_secs(1);
        rr_remb(&mut s, at)
    };
    assert_eq!(blocks.len(), 2);
    let v = blocks.iter().find(|b| b.ssrc == VSSRC).unwrap();
    assert_eq!(v.total_lost, 1);
    assert_eq!(v.fraction_lost, (256u32 / 5) as u8);
    assert_eq!(v.highest_seq & 0xffff, 5);
    assert_eq!(v.last_sr, 0x1111_2222);
    assert_eq!(v.delay_since_last_sr, 32768);
    assert!(blocks.iter().any(|b| b.ssrc == ASSRC && b.total_lost == 0));
    assert!(bitrate <= 2_500_001 && bitrate > 2_400_000, "{bitrate}");
    assert_eq!(ssrcs.len(), 2);
    assert!(ssrcs.contains(&VSSRC) && ssrcs.contains(&ASSRC));
    assert_eq!(s.r.poll_timeout(), Some(s.t0 + Duration::from_secs(2)));

    // No max_bitrate: the default.
    let mut s = setup(CodecName::Vp8, "", FB, false, 0);
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 1, 0, false, VP8_DELTA),
        &mut s.sink,
    );
    let (_, bitrate, _) = {
        let at = s.t0 + Duration::from_secs(1);
        rr_remb(&mut s, at)
    };
    assert!(bitrate <= 10_000_000 && bitrate > 9_900_000);
}

#[test]
fn mute_and_unmute() {
    let mut s = setup(CodecName::Vp8, "", FB, false, 0);
    s.r.consumer_connected(C1, s.t0, &mut s.sink);
    keyframe_requests(&mut s.sink);
    let mut seq = 0u16;
    let mut send = |s: &mut Setup, payload: &[u8], ssrc: u32, pt: u8| {
        seq += 1;
        s.r.handle_rtp(
            s.t0,
            P,
            &rtp_pkt(pt, ssrc, seq, seq as u32 * 100, true, payload),
            &mut s.sink,
        );
        s.sink.take_rtp(C1).len()
    };
    assert_eq!(send(&mut s, VP8_KEY, VSSRC, 102), 1);
    assert_eq!(s.r.set_muted(C1, Some(true), None), Some((true, false)));
    assert_eq!(send(&mut s, VP8_DELTA, VSSRC, 102), 0);
    assert_eq!(send(&mut s, &[1], ASSRC, 111), 1, "audio still flows");
    assert_eq!(s.r.set_muted(C1, Some(false), None), Some((false, false)));
    s.r.handle_timeout(s.t0 + Duration::from_millis(600), &mut s.sink);
    assert_eq!(
        keyframe_requests(&mut s.sink),
        vec![(1, VSSRC)],
        "unmute asks for a keyframe"
    );
    assert_eq!(
        send(&mut s, VP8_DELTA, VSSRC, 102),
        0,
        "waits for a keyframe"
    );
    assert_eq!(send(&mut s, VP8_KEY, VSSRC, 102), 1);
    // Producer-side mute stops every consumer.
    assert_eq!(s.r.set_muted(P, None, Some(true)), Some((false, true)));
    assert_eq!(send(&mut s, &[1], ASSRC, 111), 0);
    assert_eq!(s.r.set_muted(99, None, None), None);
}

#[test]
fn video_seq_contiguous_across_mute() {
    let mut s = setup(CodecName::Vp8, "", FB, false, 0);
    s.r.consumer_connected(C1, s.t0, &mut s.sink);
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 1, 0, true, VP8_KEY),
        &mut s.sink,
    );
    s.r.set_muted(C1, Some(true), None);
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 2, 0, true, VP8_DELTA),
        &mut s.sink,
    );
    s.r.set_muted(C1, Some(false), None);
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 3, 0, true, VP8_KEY),
        &mut s.sink,
    );
    let out: Vec<_> = s
        .sink
        .take_rtp(C1)
        .iter()
        .map(|p| rtp::parse(p).unwrap().seq)
        .collect();
    assert_eq!(out.len(), 2);
    assert_eq!(out[1], out[0].wrapping_add(1));
}

#[test]
fn keyframe_cache_replayed_on_connect() {
    let mut s = setup(CodecName::Vp8, "", FB, false, 0);
    // Keyframe in two packets, then two delta frames, before the consumer connects.
    let cont = [0x80, 0x80, 0x81, 0x23, 0x00];
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 65534, 0, false, VP8_KEY),
        &mut s.sink,
    );
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 65535, 0, true, &cont),
        &mut s.sink,
    );
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 0, 3000, true, VP8_DELTA),
        &mut s.sink,
    );
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 1, 6000, true, VP8_DELTA),
        &mut s.sink,
    );
    s.r.consumer_connected(C1, s.t0, &mut s.sink);
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 2, 9000, true, VP8_DELTA),
        &mut s.sink,
    );
    let out: Vec<_> = s.sink.take_rtp(C1);
    assert_eq!(out.len(), 5);
    let v: Vec<_> = out.iter().map(|p| rtp::parse(p).unwrap()).collect();
    assert_eq!(v[0].payload, VP8_KEY);
    for i in 1..5 {
        assert_eq!(v[i].seq, v[0].seq.wrapping_add(i as u16));
    }
    assert_eq!(v[4].timestamp.wrapping_sub(v[0].timestamp), 9000);
    assert_eq!(
        keyframe_requests(&mut s.sink),
        vec![(1, VSSRC)],
        "a PLI is still sent"
    );

    // An incomplete cached keyframe (its second packet lost): wait for a fresh one.
    let mut s = setup(CodecName::Vp8, "", FB, false, 0);
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 10, 0, false, VP8_KEY),
        &mut s.sink,
    );
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 12, 3000, true, VP8_DELTA),
        &mut s.sink,
    );
    s.r.consumer_connected(C1, s.t0, &mut s.sink);
    assert!(s.sink.take_rtp(C1).is_empty());
}

#[test]
fn producer_removal_returns_consumers() {
    let mut s = setup(CodecName::Vp8, "", FB, false, 0);
    s.r.add_consumer(C2, P, consumer_tracks(2, CodecName::Vp8, false), s.t0)
        .unwrap();
    assert!(s.r.add_consumer(C2, P, vec![], s.t0).is_err());
    assert!(s.r.add_consumer(30, 999, vec![], s.t0).is_err());
    let mut bad = consumer_tracks(3, CodecName::Vp8, false);
    bad[0].producer_track = 1; // video consumer track on the audio producer track
    assert!(s.r.add_consumer(31, P, bad, s.t0).is_err());
    assert!(s.r.remove(C2).is_empty());
    let mut gone = s.r.remove(P);
    gone.sort();
    assert_eq!(gone, vec![C1]);
    assert_eq!((s.r.stats().producers, s.r.stats().consumers), (0, 0));
    assert!(s.r.remove(C1).is_empty());
    assert_eq!(s.r.poll_timeout(), None);
}

/// xorshift64*: a fixed-seed generator, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn garbage_never_panics() {
    let mut s = setup(CodecName::H264, SPROP, FB, true, 0);
    s.r.add_consumer(C2, P, consumer_tracks(2, CodecName::H264, false), s.t0)
        .unwrap();
    s.r.consumer_connected(C1, s.t0, &mut s.sink);
    s.r.consumer_connected(C2, s.t0, &mut s.sink);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut buf = Vec::new();
    for i in 0..200_000u64 {
        let len = (rng.next() % 200) as usize;
        buf.clear();
        buf.extend((0..len).map(|_| rng.next() as u8));
        // Make half of them look like RTP/RTCP of the right version and SSRCs so they get deep.
        if i % 2 == 0 && len >= 12 {
            buf[0] = 0x80 | (buf[0] & 0x3f);
            if i % 4 == 0 {
                buf[1] = if i % 8 == 0 {
                    102 | (buf[1] & 0x80)
                } else {
                    103
                };
                buf[8..12]
                    .copy_from_slice(&(if i % 8 == 0 { VSSRC } else { VSSRC + 100 }).to_be_bytes());
            }
        }
        let now = s.t0 + Duration::from_micros(i * 50);
        match i % 4 {
            0 | 1 => s.r.handle_rtp(now, P, &buf, &mut s.sink),
            2 => {
                s.r.handle_rtcp(now, if i % 8 == 2 { P } else { C1 }, &buf, &mut s.sink)
            }
            _ => {
                if len >= 8 {
                    buf[1] = [200, 201, 205, 206][(i / 4 % 4) as usize];
                    buf[2] = 0;
                    buf[3] = ((len / 4).saturating_sub(1)) as u8;
                    buf[8..]
                        .iter_mut()
                        .take(4)
                        .zip(0x5001u32.to_be_bytes())
                        .for_each(|(b, v)| *b = v);
                }
                s.r.handle_rtcp(now, C1, &buf, &mut s.sink)
            }
        }
        s.r.handle_timeout(now, &mut s.sink);
        if i % 1000 == 0 {
            s.sink.rtp.clear();
            s.sink.rtcp.clear();
        }
    }
    assert!(s.r.stats().rtp_dropped > 0);
}
