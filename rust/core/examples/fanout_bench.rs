//! Micro-benchmark of the hot path: one publisher packet (1200-byte VP8 payload) forwarded to
//! 100 connected consumers through a counting sink. Run in release mode:
//! `cargo run --release -p pms-core --example fanout_bench`. Prints ns per forwarded packet.

use std::time::{Duration, Instant};

use pms_core::media::{
    Codec, CodecName, ConsumerTrack, HeaderExtensions, MediaKind, ProducerTrack, TransportId,
};
use pms_core::router::{Router, Sink};
use rand::rngs::StdRng;
use rand::SeedableRng;

struct Counting {
    packets: u64,
    bytes: u64,
}

impl Sink for Counting {
    fn send_rtp(&mut self, _: TransportId, pkt: &[u8]) {
        self.packets += 1;
        self.bytes += pkt.len() as u64;
    }
    fn send_rtcp(&mut self, _: TransportId, _: &[u8]) {}
}

fn main() {
    let consumers = 100u64;
    let codec = Codec {
        name: CodecName::Vp8,
        payload_type: 96,
        clock_rate: 90000,
        channels: 0,
        fmtp: String::new(),
        rtx_payload_type: Some(97),
        rtcp_fb: vec!["nack".into(), "nack pli".into()],
    };
    let t0 = Instant::now();
    let mut r = Router::new(Box::new(StdRng::seed_from_u64(1)));
    let track = ProducerTrack {
        kind: MediaKind::Video,
        mid: "0".into(),
        codec: codec.clone(),
        ssrc: Some(1),
        rtx_ssrc: None,
        extensions: HeaderExtensions::default(),
    };
    r.add_producer(1, vec![track], 0, t0);
    let mut sink = Counting {
        packets: 0,
        bytes: 0,
    };
    for i in 0..consumers {
        let ct = ConsumerTrack {
            kind: MediaKind::Video,
            mid: "0".into(),
            codec: codec.clone(),
            ssrc: 1000 + i as u32,
            rtx_ssrc: Some(5000 + i as u32),
            extensions: HeaderExtensions {
                mid: Some(1),
                ..Default::default()
            },
            producer_track: 0,
        };
        r.add_consumer(100 + i, 1, vec![ct], t0)
            .expect("valid consumer");
        r.consumer_connected(100 + i, t0, &mut sink);
    }
    let mut pkt = vec![0x80u8, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    pkt.extend_from_slice(&[0x90, 0x80, 0x81, 0x23, 0x50, 0x42]);
    pkt.resize(12 + 1200, 0xAB);
    // Start every consumer with a keyframe, then measure delta packets.
    r.handle_rtp(t0, 1, &pkt, &mut sink);
    pkt[16] = 0x51;
    let rounds = 200_000u32;
    let start = Instant::now();
    for i in 1..=rounds {
        let seq = i as u16;
        pkt[2..4].copy_from_slice(&seq.to_be_bytes());
        pkt[4..8].copy_from_slice(&(i * 3000).to_be_bytes());
        r.handle_rtp(
            t0 + Duration::from_micros(i as u64 * 100),
            1,
            &pkt,
            &mut sink,
        );
    }
    let el = start.elapsed();
    let forwarded = rounds as u64 * consumers;
    assert_eq!(sink.packets, forwarded + consumers);
    println!(
        "{} publisher packets x {} consumers: {:.1} ns per forwarded packet, {:.2} us per publisher packet ({:.1} Gbit/s out)",
        rounds,
        consumers,
        el.as_nanos() as f64 / forwarded as f64,
        el.as_nanos() as f64 / rounds as f64 / 1000.0,
        sink.bytes as f64 * 8.0 / el.as_secs_f64() / 1e9
    );
}
