//! Router retransmission: consumers' NACKs answered (with RTX or as is), and the publisher's
//! gaps NACKed upstream with its RTX unwrapped and duplicates dropped.

use std::time::Duration;

use pms_core::media::CodecName;
use pms_core::rtcp::{self, Rtcp};
use pms_core::rtp;

mod common;

use common::*;

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
