//! The router targets: [`fuzz_rtp`] and [`fuzz_rtcp`] feed a router with one producer (H.264
//! video + Opus audio) and two connected consumers ([`fuzz_router`]); nothing panics and memory
//! stays bounded (fixed-size retransmission buffers).

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::codec;
use crate::media::{
    CodecName, ConsumerTrack, HeaderExtensions, MediaKind, ProducerTrack, TransportId,
};
use crate::router::{NullSink, Router};

/// Producer id in [`fuzz_router`].
pub const PRODUCER: TransportId = 1;
/// Consumer ids in [`fuzz_router`].
pub const CONSUMERS: [TransportId; 2] = [2, 3];

/// A router with producer [`PRODUCER`] (track 0: H.264 pt 102/rtx 103 learned by payload
/// type; track 1: Opus pt 111 ssrc 0x1111) and connected consumers [`CONSUMERS`] (ssrcs
/// 0xC0000001/2, the first with RTX and a `mid` extension).
pub fn fuzz_router(now: Instant) -> Router {
    // Seeded: a crash replays with the same SSRCs and sequence numbers.
    let mut r = Router::new(Box::new(StdRng::seed_from_u64(0x5eed)));
    let ext = HeaderExtensions::default();
    let producer = vec![
        ProducerTrack {
            kind: MediaKind::Video,
            mid: "0".into(),
            codec: codec(CodecName::H264, 102, Some(103)),
            ssrc: None,
            rtx_ssrc: None,
            extensions: ext,
        },
        ProducerTrack {
            kind: MediaKind::Audio,
            mid: "1".into(),
            codec: codec(CodecName::Opus, 111, None),
            ssrc: Some(0x1111),
            rtx_ssrc: None,
            extensions: ext,
        },
    ];
    r.add_producer(PRODUCER, producer, 1_000_000, now);
    for (i, id) in CONSUMERS.into_iter().enumerate() {
        let with_rtx = i == 0;
        let tracks = vec![
            ConsumerTrack {
                kind: MediaKind::Video,
                mid: "0".into(),
                codec: codec(CodecName::H264, 96, with_rtx.then_some(97)),
                ssrc: 0xC000_0001 + i as u32 * 16,
                rtx_ssrc: with_rtx.then_some(0xC000_0100),
                extensions: HeaderExtensions {
                    mid: with_rtx.then_some(4),
                    ..ext
                },
                producer_track: 0,
            },
            ConsumerTrack {
                kind: MediaKind::Audio,
                mid: "1".into(),
                codec: codec(CodecName::Opus, 111, None),
                ssrc: 0xC000_0002 + i as u32 * 16,
                rtx_ssrc: None,
                extensions: ext,
                producer_track: 1,
            },
        ];
        // Ids are fresh and track indexes valid: cannot fail.
        let _ = r.add_consumer(id, PRODUCER, tracks, now);
        r.consumer_connected(id, now, &mut NullSink);
    }
    r
}

/// Feeds `data` as a sequence of RTP packets: each chunk is preceded by a 2-byte length (the
/// remainder when it runs short); chunk bytes go to `handle_rtp` from the producer, with a
/// timeout run between chunks.
pub fn fuzz_rtp(data: &[u8]) {
    let t0 = Instant::now();
    let mut r = fuzz_router(t0);
    for (i, chunk) in chunks(data).enumerate() {
        let now = t0 + Duration::from_millis(i as u64 * 7);
        r.handle_rtp(now, PRODUCER, chunk, &mut NullSink);
        r.handle_timeout(now, &mut NullSink);
    }
}

/// Feeds `data` as RTCP: chunks alternate between producer and consumers, after a few valid
/// RTP packets so that NACKs find something to retransmit.
pub fn fuzz_rtcp(data: &[u8]) {
    let t0 = Instant::now();
    let mut r = fuzz_router(t0);
    let mut pkt = [
        0x80u8, 102, 0, 0, 0, 0, 0, 0, 0, 0, 0x22, 0x22, 0x65, 0x88, 0x80,
    ];
    for s in 0..8u16 {
        pkt[2..4].copy_from_slice(&s.to_be_bytes());
        r.handle_rtp(t0, PRODUCER, &pkt, &mut NullSink);
    }
    let ids = [PRODUCER, CONSUMERS[0], CONSUMERS[1]];
    for (i, chunk) in chunks(data).enumerate() {
        let now = t0 + Duration::from_millis(i as u64 * 7);
        r.handle_rtcp(now, ids[i % 3], chunk, &mut NullSink);
        r.handle_timeout(now, &mut NullSink);
    }
}

fn chunks(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if data.is_empty() {
            return None;
        }
        let n = match data {
            [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]) as usize).min(rest.len()),
            _ => 0,
        };
        let skip = data.len().min(2);
        let chunk = &data[skip..skip + n];
        data = &data[skip + n..];
        Some(chunk)
    })
}
