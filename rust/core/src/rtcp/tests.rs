//! Wire-format tests: our writers against `rtc-rtcp`'s reader, `rtc-rtcp`'s writers against our
//! reader, and the reception statistics.

use std::time::{Duration, Instant};

use super::*;
use rtc_rtcp::packet::unmarshal;

fn decode(buf: &[u8]) -> Vec<Box<dyn rtc_rtcp::packet::Packet>> {
    let mut b = bytes::Bytes::copy_from_slice(buf);
    unmarshal(&mut b).expect("rtc-rtcp parses our output")
}

#[test]
fn writers_match_rtc_rtcp() {
    use rtc_rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate as Remb;
    use rtc_rtcp::receiver_report::ReceiverReport;
    let mut buf = Vec::new();
    let block = ReportBlock {
        ssrc: 5,
        fraction_lost: 12,
        total_lost: 300,
        highest_seq: 70000,
        jitter: 9,
        last_sr: 77,
        delay_since_last_sr: 65536,
    };
    write_rr(&mut buf, 1, &[block]);
    write_remb(&mut buf, 1, 33_554_431, &[5, 6]);
    let pkts = decode(&buf);
    let rr = pkts[0].as_any().downcast_ref::<ReceiverReport>().unwrap();
    assert_eq!(rr.ssrc, 1);
    assert_eq!(
        (
            rr.reports[0].ssrc,
            rr.reports[0].fraction_lost,
            rr.reports[0].total_lost
        ),
        (5, 12, 300)
    );
    assert_eq!(
        (
            rr.reports[0].last_sequence_number,
            rr.reports[0].last_sender_report
        ),
        (70000, 77)
    );
    let remb = pkts[1].as_any().downcast_ref::<Remb>().unwrap();
    assert!(
        remb.bitrate <= 33_554_431.0 && remb.bitrate > 33_000_000.0,
        "{}",
        remb.bitrate
    );
    assert_eq!(remb.ssrcs, vec![5, 6]);
    // Our own reader agrees.
    let ours: Vec<_> = parse_compound(&buf).collect::<Result<_, _>>().unwrap();
    match ours[1] {
        Rtcp::Remb { bitrate, .. } => assert!(bitrate <= 33_554_431),
        ref o => panic!("{o:?}"),
    }
    match ours[0] {
        Rtcp::ReceiverReport { mut reports, .. } => assert_eq!(reports.next(), Some(block)),
        ref o => panic!("{o:?}"),
    }
}

#[test]
fn read_rtc_rtcp_output() {
    use rtc_rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
    use rtc_rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtc_rtcp::sender_report::SenderReport;
    use rtc_rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
    use rtc_shared::marshal::Marshal;
    let mut buf = Vec::new();
    let sr = SenderReport {
        ssrc: 9,
        ntp_time: 0x1122334455667788,
        rtp_time: 1000,
        packet_count: 3,
        octet_count: 300,
        ..Default::default()
    };
    buf.extend_from_slice(&sr.marshal().unwrap());
    let nack = TransportLayerNack {
        sender_ssrc: 1,
        media_ssrc: 2,
        nacks: vec![NackPair {
            packet_id: 65534,
            lost_packets: 0b101,
        }],
    };
    buf.extend_from_slice(&nack.marshal().unwrap());
    buf.extend_from_slice(
        &PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: 2,
        }
        .marshal()
        .unwrap(),
    );
    let fir = FullIntraRequest {
        sender_ssrc: 1,
        media_ssrc: 0,
        fir: vec![FirEntry {
            ssrc: 2,
            sequence_number: 1,
        }],
    };
    buf.extend_from_slice(&fir.marshal().unwrap());
    let got: Vec<_> = parse_compound(&buf).collect::<Result<_, _>>().unwrap();
    assert!(matches!(
        got[0],
        Rtcp::SenderReport {
            ssrc: 9,
            ntp_time: 0x1122334455667788,
            rtp_time: 1000,
            packet_count: 3,
            octet_count: 300,
            ..
        }
    ));
    match got[1] {
        Rtcp::Nack {
            media_ssrc: 2,
            seqs,
            ..
        } => assert_eq!(seqs.collect::<Vec<_>>(), vec![65534, 65535, 1]),
        ref o => panic!("{o:?}"),
    }
    assert_eq!(
        got[2],
        Rtcp::Pli {
            sender_ssrc: 1,
            media_ssrc: 2
        }
    );
    assert_eq!(
        got[3],
        Rtcp::Fir {
            sender_ssrc: 1,
            media_ssrc: 2
        }
    );
}

#[test]
fn nack_writer_packs() {
    let mut buf = Vec::new();
    write_nack(&mut buf, 1, 2, &[65535, 0, 3, 40]);
    let got: Vec<_> = parse_compound(&buf).collect::<Result<_, _>>().unwrap();
    match got[0] {
        Rtcp::Nack { seqs, .. } => assert_eq!(seqs.collect::<Vec<_>>(), vec![65535, 0, 3, 40]),
        ref o => panic!("{o:?}"),
    }
}

#[test]
fn garbage_stops() {
    let mut it = parse_compound(&[0x80, 201, 0, 9, 0, 0]);
    assert_eq!(it.next(), Some(Err(RtcpError::Malformed)));
    assert_eq!(it.next(), None);
    assert_eq!(
        parse_compound(&[0x81, 205, 0, 1, 0, 0, 0, 0]).next(),
        Some(Err(RtcpError::Truncated { packet_type: 205 }))
    );
    assert_eq!(remb_encode(10_000_000), (156_250, 6));
}

#[test]
fn stats_loss_and_jitter() {
    let t0 = Instant::now();
    let mut s = ReceiveStats::new(90000);
    for i in 0..10u64 {
        if i == 4 {
            continue;
        }
        s.on_packet(
            65536 + i,
            (i * 3000) as u32,
            Duration::from_millis(i * 33),
            false,
        );
    }
    s.on_sender_report(0x0000_1234_5678_0000, t0);
    let r = s.report(7, t0 + Duration::from_millis(500));
    assert_eq!(r.total_lost, 1);
    assert_eq!(r.fraction_lost, 25); // 1/10 * 256
    assert_eq!(r.highest_seq, 65536 + 9);
    assert_eq!(r.last_sr, 0x1234_5678);
    assert_eq!(r.delay_since_last_sr, 32768);
    assert!(r.jitter < 100, "{}", r.jitter);
    let r2 = s.report(7, t0);
    assert_eq!(r2.fraction_lost, 0);
}
