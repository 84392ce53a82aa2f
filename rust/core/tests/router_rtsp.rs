//! Router additions for RTSP: parameter-set events, consumer tracks added one SETUP at a time
//! with a given start (RTP-Info), and PAUSE.

use std::time::Instant;

use pms_core::media::{
    Codec, CodecName, ConsumerTrack, HeaderExtensions, MediaKind, ProducerTrack,
};
use pms_core::router::{Router, RouterEvent, Sink};
use rand::rngs::StdRng;
use rand::SeedableRng;

#[derive(Default)]
struct Capture(Vec<(u64, Vec<u8>)>);
impl Sink for Capture {
    fn send_rtp(&mut self, to: u64, pkt: &[u8]) {
        self.0.push((to, pkt.to_vec()));
    }
    fn send_rtcp(&mut self, _: u64, _: &[u8]) {}
}

fn codec() -> Codec {
    Codec {
        name: CodecName::H264,
        payload_type: 96,
        clock_rate: 90000,
        channels: 0,
        fmtp: "packetization-mode=1".into(),
        rtx_payload_type: None,
        rtcp_fb: vec![],
    }
}

fn rtp(seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0x80 | 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&7u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn stap(nals: &[&[u8]]) -> Vec<u8> {
    let mut s = vec![0x78];
    for n in nals {
        s.extend_from_slice(&(n.len() as u16).to_be_bytes());
        s.extend_from_slice(n);
    }
    s
}

#[test]
fn parameter_sets_events_start_and_pause() {
    let now = Instant::now();
    let mut r = Router::new(Box::new(StdRng::seed_from_u64(1)));
    let track = ProducerTrack {
        kind: MediaKind::Video,
        mid: "0".into(),
        codec: codec(),
        ssrc: None,
        rtx_ssrc: None,
        extensions: HeaderExtensions::default(),
    };
    r.add_producer(1, vec![track], 0, now);
    r.add_consumer(2, 1, vec![], now).unwrap();
    let ct = ConsumerTrack {
        kind: MediaKind::Video,
        mid: "0".into(),
        codec: codec(),
        ssrc: 99,
        rtx_ssrc: None,
        extensions: HeaderExtensions::default(),
        producer_track: 0,
    };
    let mut bad = ct.clone();
    bad.kind = MediaKind::Audio;
    assert!(r.add_consumer_track(2, bad, None).is_err());
    r.add_consumer_track(2, ct, Some((1000, 5000))).unwrap();
    let mut sink = Capture::default();
    r.consumer_connected(2, now, &mut sink);

    let (sps, pps, pps2): (&[u8], &[u8], &[u8]) = (
        &[0x67, 0x42, 0xc0, 0x1f],
        &[0x68, 0xce, 0x3c, 0x80],
        &[0x68, 0xce, 0x3c, 0x81],
    );
    let events = |r: &mut Router| {
        std::iter::from_fn(|| r.poll_event())
            .filter(|e| matches!(e, RouterEvent::ParameterSets { .. }))
            .collect::<Vec<_>>()
    };
    r.handle_rtp(now, 1, &rtp(10, 90, &stap(&[sps, pps])), &mut sink);
    assert_eq!(
        events(&mut r),
        vec![RouterEvent::ParameterSets {
            producer: 1,
            track: 0,
            nals: vec![sps.to_vec(), pps.to_vec()]
        }]
    );
    r.handle_rtp(now, 1, &rtp(11, 90, &[0x65, 1]), &mut sink);
    r.handle_rtp(now, 1, &rtp(12, 180, &stap(&[sps, pps])), &mut sink);
    assert!(events(&mut r).is_empty(), "unchanged sets raise nothing");
    r.handle_rtp(now, 1, &rtp(13, 270, &stap(&[sps, pps2])), &mut sink);
    assert_eq!(events(&mut r).len(), 1);
    // The consumer started at the given seq/timestamp.
    let first = &sink.0[0].1;
    assert_eq!(u16::from_be_bytes([first[2], first[3]]), 1000);
    assert_eq!(
        u32::from_be_bytes([first[4], first[5], first[6], first[7]]),
        5000
    );
    let sent = sink.0.len();
    r.pause_consumer(2);
    r.handle_rtp(now, 1, &rtp(14, 360, &[0x41, 1]), &mut sink);
    assert_eq!(sink.0.len(), sent, "nothing while paused");
}
