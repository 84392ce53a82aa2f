//! The recording fuzz invariant (`fuzz/fuzz_targets/record_writer.rs`, and the unit test that
//! runs it on generated inputs): any byte sequence, read as RTP packets of a two-track stream
//! (sequence numbers, timestamps, markers and payloads taken from the input, with gaps,
//! duplicates, reordering and garbage) and recorded into each container by a
//! [`RecordWriter`], never panics; every write the writer asks for either appends or lands
//! inside bytes already appended; and a file that got a header starts with the container's
//! magic (`1A 45 DF A3` or `ftyp`) and is exactly as long as the writer says.

use std::time::{Duration, Instant};

use super::container::Container;
use super::sink::apply;
use super::writer::{RecordWriter, TrackSpec};
use crate::media::CodecName;

const VIDEO: [CodecName; 8] = [
    CodecName::H264,
    CodecName::H265,
    CodecName::Vp8,
    CodecName::Vp9,
    CodecName::Av1,
    CodecName::H264,
    CodecName::H265,
    CodecName::Av1,
];
const AUDIO: [CodecName; 4] = [
    CodecName::Opus,
    CodecName::Aac,
    CodecName::Pcma,
    CodecName::Pcmu,
];

fn spec(codec: CodecName) -> TrackSpec {
    let (rate, channels, fmtp) = match codec {
        CodecName::Opus => (48_000, 2, ""),
        CodecName::Aac => (
            44_100,
            2,
            "sizelength=13;indexlength=3;indexdeltalength=3;config=1210",
        ),
        CodecName::Pcma | CodecName::Pcmu => (8000, 1, ""),
        _ => (90_000, 0, ""),
    };
    TrackSpec {
        codec,
        clock_rate: rate,
        channels,
        fmtp: fmtp.to_string(),
    }
}

/// Runs the invariant of the module doc on `data`. Panics when it does not hold. Returns how
/// many of the three files got a header.
pub fn fuzz_check(data: &[u8]) -> usize {
    let Some((&sel, rest)) = data.split_first() else {
        return 0;
    };
    let mut started = 0;
    for container in [Container::Webm, Container::Mkv, Container::Mp4] {
        let video = VIDEO[(sel & 7) as usize];
        let audio = AUDIO[((sel >> 3) & 3) as usize];
        let tracks: Vec<TrackSpec> = [video, audio]
            .into_iter()
            .filter(|c| container.holds(*c))
            .map(spec)
            .collect();
        let Ok(mut w) = RecordWriter::new(container, &tracks) else {
            assert!(
                tracks.is_empty(),
                "refused a container that holds every codec"
            );
            continue;
        };
        started += run(&mut w, tracks.len(), rest, container) as usize;
    }
    started
}

fn run(w: &mut RecordWriter, n_tracks: usize, mut data: &[u8], container: Container) -> bool {
    let t0 = Instant::now();
    let mut file = Vec::new();
    let mut seq = [0u16; 2];
    let mut ts = [0u32; 2];
    let mut n = 0u64;
    let drain = |w: &mut RecordWriter, file: &mut Vec<u8>| {
        while let Some(x) = w.poll_output() {
            if let Some(o) = x.offset {
                assert!(
                    o + x.bytes.len() as u64 <= file.len() as u64,
                    "patch past the end"
                );
            }
            apply(file, &x);
        }
    };
    while let [ctrl, len, tail @ ..] = data {
        let take = (*len as usize).min(tail.len());
        let (payload, next) = tail.split_at(take);
        data = next;
        let track = (ctrl & 1) as usize % n_tracks;
        n += 1;
        let now = t0 + Duration::from_millis(n * 10);
        if ctrl & 0x80 != 0 {
            // Raw bytes as a packet: garbage, or RTP of the input's own making.
            let _ = w.handle_rtp(now, track, payload);
        } else {
            seq[track] = match (ctrl >> 2) & 3 {
                0 => seq[track].wrapping_add(1),
                1 => seq[track],
                2 => seq[track].wrapping_add(2),
                _ => seq[track].wrapping_sub(3),
            };
            ts[track] = match (ctrl >> 4) & 3 {
                0 => ts[track],
                1 => ts[track].wrapping_add(3000),
                2 => ts[track].wrapping_add(u32::from(*len) << 12),
                _ => ts[track].wrapping_sub(3000),
            };
            let mut p = vec![0x80, 96 | if ctrl & 2 != 0 { 0x80 } else { 0 }];
            p.extend_from_slice(&seq[track].to_be_bytes());
            p.extend_from_slice(&ts[track].to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, track as u8]);
            p.extend_from_slice(payload);
            let _ = w.handle_rtp(now, track, &p);
        }
        if ctrl & 0x40 != 0 {
            w.handle_sender_report(track, n << 32, ts[track]);
        }
        drain(w, &mut file);
    }
    w.finish();
    drain(w, &mut file);
    assert_eq!(file.len() as u64, w.stats().bytes);
    if w.started() {
        let magic: &[u8] = match container {
            Container::Mp4 => b"ftyp",
            _ => &[0x1a, 0x45, 0xdf, 0xa3],
        };
        let at = if container == Container::Mp4 { 4 } else { 0 };
        assert_eq!(file.get(at..at + 4), Some(magic));
    }
    w.started()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_inputs_hold_the_invariant() {
        let mut seed = 0x9e37_79b9u32;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        // PMS_RECORD_FUZZ_ROUNDS=100000 for a longer run (a debug build checks overflows too).
        let rounds = std::env::var("PMS_RECORD_FUZZ_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300u32);
        let mut started = 0;
        for round in 0..rounds {
            let len = (rnd() % 4000) as usize;
            let mut d: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
            if let Some(first) = d.first_mut() {
                *first = round as u8;
            }
            started += fuzz_check(&d);
        }
        assert!(started > 0, "random audio packets start some files");
    }

    #[test]
    fn files_start_with_what_is_ready_at_the_finish() {
        // Selector 0: H.264 + Opus. An IDR with in-band SPS/PPS (STAP-A), then Opus.
        let mut d = vec![0u8];
        let stap = [
            24u8, 0, 5, 0x67, 0x42, 0xc0, 0x1f, 0xaa, 0, 4, 0x68, 0xce, 0x3c, 0x80, 0, 3, 0x65, 1,
            2,
        ];
        d.extend_from_slice(&[0x12, stap.len() as u8]);
        d.extend_from_slice(&stap);
        for _ in 0..5 {
            d.extend_from_slice(&[0x13, 3, 0xf8, 0xff, 0xfe]);
        }
        // .webm records the Opus alone (it cannot hold H.264); .mkv and .mp4 wait for the
        // video until the finish (this SPS is cut short: no picture size), then start with
        // what is ready.
        assert_eq!(fuzz_check(&d), 3);
    }
}
