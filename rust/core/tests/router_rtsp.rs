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

/// A restarted source (a cascade pull that reconnected): new SSRC, sequence numbers and
/// timestamps; the player sees nothing until the next keyframe, then contiguous sequence
/// numbers and a timestamp the elapsed time after the last one.
#[test]
fn restarted_source_continues_the_players_timeline() {
    let t0 = Instant::now();
    let mut r = Router::new(Box::new(StdRng::seed_from_u64(2)));
    let track = ProducerTrack {
        kind: MediaKind::Video,
        mid: "0".into(),
        codec: codec(),
        ssrc: None,
        rtx_ssrc: None,
        extensions: HeaderExtensions::default(),
    };
    r.add_producer(1, vec![track], 0, t0);
    r.add_consumer(2, 1, vec![], t0).unwrap();
    let ct = ConsumerTrack {
        kind: MediaKind::Video,
        mid: "0".into(),
        codec: codec(),
        ssrc: 99,
        rtx_ssrc: None,
        extensions: HeaderExtensions::default(),
        producer_track: 0,
    };
    r.add_consumer_track(2, ct, Some((1000, 5000))).unwrap();
    let mut sink = Capture::default();
    r.consumer_connected(2, t0, &mut sink);
    let sps: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0xd9];
    let pps: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
    let idr: &[u8] = &[0x65, 0x88, 0x84];
    let p_frame: &[u8] = &[0x41, 0x9a, 0x02];
    let with_ssrc = |mut p: Vec<u8>, ssrc: u32| {
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p
    };
    // the first source: a keyframe and two frames, 3000 ticks (1/30 s) apart
    r.handle_rtp(
        t0,
        1,
        &with_ssrc(rtp(10, 100, &stap(&[sps, pps])), 7),
        &mut sink,
    );
    r.handle_rtp(t0, 1, &with_ssrc(rtp(11, 100, idr), 7), &mut sink);
    let t1 = t0 + std::time::Duration::from_millis(33);
    r.handle_rtp(t1, 1, &with_ssrc(rtp(12, 3100, p_frame), 7), &mut sink);
    let seen = |s: &Capture| -> Vec<(u16, u32, u32)> {
        s.0.iter()
            .map(|(_, p)| {
                (
                    u16::from_be_bytes([p[2], p[3]]),
                    u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
                    u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
                )
            })
            .collect()
    };
    let before = seen(&sink);
    let (last_seq, last_ts, ssrc) = *before.last().unwrap();
    assert_eq!(ssrc, 99);
    // the source restarts 2 s later with everything new; a P-frame first, then a keyframe
    r.restart_producer(1);
    sink.0.clear();
    let t2 = t1 + std::time::Duration::from_secs(2);
    r.handle_rtp(
        t2,
        1,
        &with_ssrc(rtp(40000, 7_000_000, p_frame), 0xabcd),
        &mut sink,
    );
    assert!(
        sink.0.is_empty(),
        "a frame before the new source's keyframe reached the player"
    );
    let t3 = t2 + std::time::Duration::from_millis(33);
    r.handle_rtp(
        t3,
        1,
        &with_ssrc(rtp(40001, 7_003_000, idr), 0xabcd),
        &mut sink,
    );
    r.handle_rtp(
        t3,
        1,
        &with_ssrc(rtp(40002, 7_006_000, p_frame), 0xabcd),
        &mut sink,
    );
    let after = seen(&sink);
    assert!(after.len() >= 2, "{after:?}");
    // contiguous sequence numbers (parameter sets may be injected before the IDR: also +1)
    assert_eq!(
        after[0].0,
        last_seq.wrapping_add(1),
        "{before:?} then {after:?}"
    );
    for w in after.windows(2) {
        assert_eq!(w[1].0, w[0].0.wrapping_add(1));
    }
    assert!(after.iter().all(|a| a.2 == 99));
    // timestamps: about 2.033 s of 90 kHz after the last one, and the new source's own steps
    let idr_ts = after[after.len() - 2].1;
    let gap = idr_ts.wrapping_sub(last_ts);
    assert!((180_000..=186_000).contains(&gap), "gap {gap} ticks");
    assert_eq!(after[after.len() - 1].1.wrapping_sub(idr_ts), 3000);
}
