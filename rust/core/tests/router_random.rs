//! The router's random numbers (its RTCP sender SSRC, each consumer track's first sequence
//! number, timestamp base and RTX sequence) come from the source given to `Router::new`: the
//! same seed gives the same packets, and a constant source shows up as is in the headers.

use std::time::Duration;

use pms_core::media::CodecName;
use pms_core::router::{Router, RouterRng};
use pms_core::rtcp::{self, Rtcp};
use pms_core::rtp;
use rand::rngs::mock::StepRng;
use rand::rngs::StdRng;
use rand::SeedableRng;

mod common;

use common::*;

/// Every packet a short session produces: the keyframe request on connect, three forwarded
/// packets, an RTX answer to a NACK, and the RR + REMB of the first report interval.
fn session(rng: RouterRng) -> Rec {
    let t0 = std::time::Instant::now();
    let mut r = Router::new(rng);
    let mut sink = Rec::default();
    r.add_producer(P, producer_tracks(CodecName::Vp8, "", FB), 0, t0);
    r.add_consumer(C1, P, consumer_tracks(1, CodecName::Vp8, true), t0)
        .unwrap();
    r.consumer_connected(C1, t0, &mut sink);
    for (i, seq) in [100u16, 101, 102].into_iter().enumerate() {
        let payload = if i == 0 { VP8_KEY } else { VP8_DELTA };
        let pkt = rtp_pkt(102, VSSRC, seq, 9000 + i as u32 * 3000, i == 2, payload);
        r.handle_rtp(t0, P, &pkt, &mut sink);
    }
    let first = rtp::parse(&sink.rtp[0].1).unwrap().seq;
    let mut nack = Vec::new();
    rtcp::write_nack(&mut nack, 0x1234, 0x5001, &[first]);
    r.handle_rtcp(t0 + Duration::from_millis(20), C1, &nack, &mut sink);
    r.handle_timeout(t0 + Duration::from_secs(1), &mut sink);
    sink
}

#[test]
fn same_seed_same_packets() {
    let a = session(Box::new(StdRng::seed_from_u64(42)));
    let b = session(Box::new(StdRng::seed_from_u64(42)));
    assert_eq!(
        a.rtp.len(),
        4,
        "three forwarded packets and one retransmission"
    );
    assert!(a.rtcp.len() >= 2, "a keyframe request and a report");
    assert_eq!(a.rtp, b.rtp);
    assert_eq!(a.rtcp, b.rtcp);
    let c = session(Box::new(StdRng::seed_from_u64(43)));
    assert_ne!(
        a.rtp, c.rtp,
        "another seed, other sequence numbers and timestamps"
    );
}

#[test]
fn draws_come_from_the_source() {
    // A source that always returns the same word: a u32 draw is 0x89AB_CDEF, a u16 0xCDEF.
    let mut s = session(Box::new(StepRng::new(0x0123_4567_89AB_CDEF, 0)));
    let out = s.take_rtp(C1);
    let first = rtp::parse(&out[0]).unwrap();
    assert_eq!(first.seq, 0xCDEF, "first sequence number");
    assert_eq!(first.timestamp, 0x89AB_CDEF, "timestamp base");
    let rtx = rtp::parse(&out[3]).unwrap();
    assert_eq!(
        (rtx.ssrc, rtx.seq),
        (0x6001, 0xCDF0),
        "RTX sequence after its base"
    );
    let senders: Vec<u32> = s
        .take_rtcp(P)
        .iter()
        .flat_map(|p| rtcp::parse_compound(p).collect::<Vec<_>>())
        .filter_map(|item| match item {
            Ok(Rtcp::Pli { sender_ssrc, .. }) => Some(sender_ssrc),
            Ok(Rtcp::ReceiverReport { ssrc, .. }) => Some(ssrc),
            Ok(Rtcp::Remb { sender_ssrc, .. }) => Some(sender_ssrc),
            _ => None,
        })
        .collect();
    assert!(senders.len() >= 3, "PLI, RR and REMB: {senders:x?}");
    assert!(senders.iter().all(|s| *s == 0x89AB_CDEF), "{senders:x?}");
}
