//! Router RTCP reports: producers' sender reports translated for consumers, consumers'
//! receiver reports kept, and our periodic receiver report + REMB to the producer.

use std::time::{Duration, Instant};

use pms_core::media::CodecName;
use pms_core::rtcp::{self, Rtcp};
use pms_core::rtp;

mod common;

use common::*;

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
