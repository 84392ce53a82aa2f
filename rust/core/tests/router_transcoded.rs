//! A track the producer does not send itself (the audio transcoder's Opus track, SPEC 11): put
//! at its own index with `set_producer_track`, fed under the producer's id, consumed like any
//! track: rewritten to the player's SSRC and payload type, NACKs answered from its buffer,
//! sender reports translated, consumer mute applied; `track_consumers` counts its players;
//! per-stream counters take its output, not its input (the publisher did not send it).

use std::time::Duration;

use pms_core::media::{CodecName, ConsumerTrack, HeaderExtensions, MediaKind, ProducerTrack};
use pms_core::router::RouterError;
use pms_core::rtcp::{self, Rtcp};
use pms_core::rtp;

mod common;

use common::*;

const OPUS_SSRC: u32 = 0x0B0B_0001;

fn opus_track() -> ProducerTrack {
    ProducerTrack {
        kind: MediaKind::Audio,
        mid: "opus".into(),
        codec: codec(CodecName::Opus, 111, None, "", &[]),
        ssrc: Some(OPUS_SSRC),
        rtx_ssrc: None,
        extensions: HeaderExtensions::default(),
    }
}

fn player_of(index: usize) -> Vec<ConsumerTrack> {
    vec![ConsumerTrack {
        kind: MediaKind::Audio,
        mid: "a".into(),
        codec: codec(CodecName::Opus, 109, None, "", &["nack"]),
        ssrc: 0x7777,
        rtx_ssrc: None,
        extensions: HeaderExtensions::default(),
        producer_track: index,
    }]
}

#[test]
fn a_transcoded_track_is_consumed_like_any_other() {
    let mut s = setup(CodecName::Vp8, "", FB, false, 0);
    assert_eq!(
        s.r.set_producer_track(P, 5, opus_track()),
        Err(RouterError::BadProducerTrack {
            consumer: P,
            index: 5
        })
    );
    s.r.set_producer_track(P, 2, opus_track()).unwrap();
    assert_eq!(s.r.track_consumers(P, 2), 0);
    s.r.add_consumer(C2, P, player_of(2), s.t0).unwrap();
    assert_eq!(s.r.track_consumers(P, 2), 1);
    assert_eq!(s.r.track_consumers(P, 1), 1, "C1 consumes the source audio");
    s.r.consumer_connected(C2, s.t0, &mut s.sink);
    for seq in 100..105u16 {
        let pkt = rtp_pkt(111, OPUS_SSRC, seq, 960 * u32::from(seq), false, b"opus");
        s.r.handle_rtp(s.t0, P, &pkt, &mut s.sink);
    }
    let out = s.sink.take_rtp(C2);
    assert_eq!(out.len(), 5);
    assert!(
        s.sink.take_rtp(C1).is_empty(),
        "C1 does not take the Opus track"
    );
    let first = rtp::parse(&out[0]).unwrap();
    assert_eq!((first.ssrc, first.payload_type), (0x7777, 109));
    let seqs: Vec<u16> = out.iter().map(|p| rtp::parse(p).unwrap().seq).collect();
    // Per-stream counters: what the track sends counts as audio out, not as publisher input.
    let mut stats = Vec::new();
    s.r.producer_stats(&mut stats);
    let (_, st) = stats.iter().find(|(id, _)| *id == P).unwrap();
    assert_eq!((st.audio.packets_in, st.audio.packets_out), (0, 5));

    // A NACK from the player is answered from the Opus track's buffer.
    let mut nack = Vec::new();
    rtcp::write_nack(&mut nack, 0x1234, 0x7777, &[seqs[1]]);
    s.r.handle_rtcp(s.t0 + Duration::from_millis(20), C2, &nack, &mut s.sink);
    let re = s.sink.take_rtp(C2);
    assert_eq!(re.len(), 1);
    assert_eq!(rtp::parse(&re[0]).unwrap().seq, seqs[1]);

    // The players' loss reports reach the transcoder (its FEC follows the worst).
    assert_eq!(s.r.track_loss(P, 2), None);
    let mut rr = Vec::new();
    let block = rtcp::ReportBlock {
        ssrc: 0x7777,
        fraction_lost: 26,
        total_lost: 3,
        highest_seq: 0,
        jitter: 0,
        last_sr: 0,
        delay_since_last_sr: 0,
    };
    rtcp::write_rr(&mut rr, 0x1234, &[block]);
    s.r.handle_rtcp(s.t0, C2, &rr, &mut s.sink);
    assert_eq!(s.r.track_loss(P, 2), Some(26));

    // A sender report of the Opus SSRC reaches the player with its own SSRC and offset.
    let mut sr = Vec::new();
    rtcp::write_sr(&mut sr, OPUS_SSRC, 0x1111_2222_3333_4444, 960 * 100, 5, 20);
    s.r.handle_rtcp(s.t0, P, &sr, &mut s.sink);
    let reports = s.sink.take_rtcp(C2);
    let Some(Ok(Rtcp::SenderReport {
        ssrc,
        ntp_time,
        rtp_time,
        ..
    })) = reports.first().and_then(|r| rtcp::parse_compound(r).next())
    else {
        panic!("no sender report: {reports:?}");
    };
    assert_eq!((ssrc, ntp_time), (0x7777, 0x1111_2222_3333_4444));
    assert_eq!(rtp_time, first.timestamp, "mapped like the packets");

    // Mute of the player stops it; the track index can be replaced (a new transcoder).
    s.r.set_muted(C2, None, Some(true));
    let pkt = rtp_pkt(111, OPUS_SSRC, 105, 960 * 105, false, b"opus");
    s.r.handle_rtp(s.t0, P, &pkt, &mut s.sink);
    assert!(s.sink.take_rtp(C2).is_empty());
    s.r.set_producer_track(P, 2, opus_track()).unwrap();
    s.r.remove(C2);
    assert_eq!(s.r.track_consumers(P, 2), 0);
}
