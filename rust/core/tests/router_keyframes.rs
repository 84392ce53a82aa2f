//! Router keyframes: gating a new consumer on a keyframe per codec, SPS/PPS injection before
//! an IDR, PLI/FIR to the producer with its rate limit, and the keyframe cache replayed on connect.

use std::time::Duration;

use pms_core::media::CodecName;
use pms_core::rtcp;
use pms_core::rtp;

mod common;

use common::*;

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
