//! # GB28181 media ingest, sans-IO parts
//!
//! A GB28181 camera sends MPEG-PS in RTP to the platform's media port, over TCP (RFC 4571
//! framing, many cameras on one port) or UDP (GB/T 28181-2016 annex L, section 6 of the team's
//! digest). This module holds everything of that path that needs no socket, so it can be unit
//! tested and fuzzed; `pms-io`'s `gb` module owns the sockets, the timers and the router.
//!
//! - [`framing`]: the RFC 4571 deframer of one TCP connection;
//! - [`matcher`]: which ingest a packet belongs to (SSRC, else the camera's source IP);
//! - [`reorder`]: the small reorder buffer in front of a UDP ingest;
//! - [`ingest`]: one ingest's RTP → PS demuxer → producer RTP (video packetizer, [`audio`]).
//!
//! None of it panics on any input (see [`fuzz_check`]); none of it allocates per packet once
//! warmed up, except the demuxer's one buffer per access unit.

pub mod audio;
pub mod framing;
pub mod ingest;
pub mod matcher;
pub mod reorder;

pub use framing::{Deframer, FramingError};
pub use ingest::{IngestOutput, IngestStats, PsIngest};
pub use matcher::{Match, Matcher};
pub use reorder::{Ordered, Reorder};

use std::time::{Duration, Instant};

/// What one run of [`fuzz_check`] produced, to compare runs.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    frames: usize,
    error: Option<FramingError>,
    live: Vec<String>,
    rtp: Vec<(u8, u32, usize)>,
}

fn run(data: &[u8], sizes: &[usize], udp: bool) -> Outcome {
    let start = Instant::now();
    let mut d = Deframer::new();
    let mut ingest = PsIngest::new(udp, 1, 2);
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
/// before the tracks; every output packet parses.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    let whole = run(data, &[data.len().max(1)], false);
    let sizes: Vec<usize> = data
        .iter()
        .take(64)
        .map(|&b| 1 + (b as usize % 131))
        .collect();
    let mut split = run(data, &sizes, false);
    // RTP timestamps and payload sizes are deterministic; sequence numbers are random per
    // ingest and not compared.
    assert_eq!(whole.frames, split.frames, "split changes the framing");
    assert_eq!(whole.error.is_some(), split.error.is_some());
    split.error = whole.error;
    assert_eq!(whole, split, "split changes the output");
    let _ = run(data, &sizes, true);
}
