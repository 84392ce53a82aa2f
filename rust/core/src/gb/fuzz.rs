//! The check the `gb_ingest` fuzz target runs (also replayed by `tests/fuzz_corpus_gb.rs`):
//! one camera's TCP bytes through the deframer and an ingest, whole and split. Built only with
//! the `fuzzing` feature (or for unit tests): it reads the clock for its start instant.

use std::time::{Duration, Instant};

use super::{Deframer, FramingError, IngestOutput, PsIngest};

/// What one run of [`fuzz_check`] produced, to compare runs.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    frames: usize,
    error: Option<FramingError>,
    live: Vec<String>,
    rtp: Vec<(u8, u32, usize)>,
}

fn run(data: &[u8], sizes: &[usize], udp: bool, scale: Option<f64>) -> Outcome {
    let start = Instant::now();
    let mut d = Deframer::new();
    let mut ingest = PsIngest::new(udp, 1, 2);
    if let Some(s) = scale {
        ingest.set_scale(s);
    }
    let mut o = Outcome {
        frames: 0,
        error: None,
        live: Vec::new(),
        rtp: Vec::new(),
    };
    let mut at = 0;
    let mut i = 0;
    let mut tick = 0u64;
    while at < data.len() {
        let n = sizes[i % sizes.len()].max(1).min(data.len() - at);
        let now = start + Duration::from_millis(tick);
        let r = d.push(&data[at..at + n], |pkt| {
            o.frames += 1;
            ingest.push_rtp(pkt, now, &mut |out| match out {
                IngestOutput::Live(t) => {
                    assert!(o.live.is_empty(), "Live twice");
                    assert!(o.rtp.is_empty(), "RTP before Live");
                    o.live = t
                        .iter()
                        .map(|t| t.codec.name.encoding_name().to_string())
                        .collect();
                }
                IngestOutput::Rtp(p) => {
                    assert!(!o.live.is_empty(), "RTP before Live");
                    let v = crate::rtp::parse(p).expect("our RTP parses");
                    assert!(p.len() <= crate::rtp::FIXED_HEADER + 8192 + 4);
                    o.rtp.push((v.payload_type, v.timestamp, v.payload.len()));
                }
            });
        });
        if let Err(e) = r {
            o.error = Some(e);
            break;
        }
        at += n;
        i += 1;
        if udp {
            tick += 7;
        }
    }
    ingest.handle_timeout(start + Duration::from_secs(3600), &mut |_| {});
    assert_eq!(ingest.poll_timeout(), None);
    o
}

/// The `gb_ingest` fuzz target's check: `data` read as the bytes of one camera's TCP
/// connection (RFC 4571 frames of RTP carrying PS), fed whole and in pieces whose sizes come
/// from `data`, through the deframer and a TCP ingest, then through a UDP ingest (reorder
/// buffer, with time passing). Never a panic; the split run frames and outputs exactly what
/// the whole run does (same frames, same framing error, same tracks, same RTP packets); no RTP
/// before the tracks; every output packet parses. Then a playback's re-timed ingest (scale from
/// `data`): never a panic, the same number of RTP packets as the run without re-timing.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    let whole = run(data, &[data.len().max(1)], false, None);
    let sizes: Vec<usize> = data
        .iter()
        .take(64)
        .map(|&b| 1 + (b as usize % 131))
        .collect();
    let mut split = run(data, &sizes, false, None);
    // RTP timestamps and payload sizes are deterministic; sequence numbers are random per
    // ingest and not compared.
    assert_eq!(whole.frames, split.frames, "split changes the framing");
    assert_eq!(whole.error.is_some(), split.error.is_some());
    split.error = whole.error;
    assert_eq!(whole, split, "split changes the output");
    let _ = run(data, &sizes, true, None);
    let scale = [0.25, 1.0, 4.0, 8.0][data.first().map_or(0, |b| *b as usize % 4)];
    let retimed = run(data, &[data.len().max(1)], false, Some(scale));
    let video = |o: &Outcome| {
        o.rtp
            .iter()
            .filter(|r| r.0 == super::ingest::VIDEO_PAYLOAD_TYPE)
            .count()
    };
    assert_eq!(
        video(&retimed),
        video(&whole),
        "re-timing changes the video packets"
    );
}
