//! PS demux throughput: demuxes a PS file at least `--iterations` times and for at least
//! `--min-seconds` of CPU time (default 20 and 1.0) with `pms_core::ps::PsDemuxer`,
//! pushing it in pieces of `--chunk` bytes (1400: RTP payloads as cameras send them; 0: the
//! whole file at once), polling and dropping every event, and prints one JSON line with MB/s
//! (10^6 bytes) of CPU time (this thread's, from `/proc/thread-self/schedstat`; wall time
//! where that file is missing).
//!
//! ```sh
//! cargo run --release -p pms-core --example ps_demux_bench -- FILE [--iterations N] [--chunk B]
//!     [--min-seconds S]
//! ```
//! `bench/ps_demux/run.py` builds and runs it next to FFmpeg's demuxer.

use std::time::Instant;

use pms_core::ps::{PsDemuxer, PsEvent};

fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let mut iterations = 20usize;
    let mut chunk = 1400usize;
    let mut min_seconds = 1.0f64;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--iterations" => iterations = args.next().and_then(|v| v.parse().ok()).unwrap_or(20),
            "--chunk" => chunk = args.next().and_then(|v| v.parse().ok()).unwrap_or(1400),
            "--min-seconds" => {
                min_seconds = args.next().and_then(|v| v.parse().ok()).unwrap_or(1.0)
            }
            _ => path = Some(a),
        }
    }
    let Some(path) = path else {
        eprintln!(
            "usage: ps_demux_bench FILE [--iterations N] [--chunk BYTES (0 = whole file)] [--min-seconds S]"
        );
        std::process::exit(2);
    };
    let data = std::fs::read(&path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(1)
    });
    let piece = if chunk == 0 { data.len().max(1) } else { chunk };
    let (mut video, mut audio, mut keyframes, mut payload) = (0u64, 0u64, 0u64, 0u64);
    let mut stats = None;
    let (cpu0, wall0) = (cpu_ns(), Instant::now());
    let min_iterations = iterations;
    let mut iterations = 0usize;
    let spent = |cpu0: Option<u64>| match (cpu0, cpu_ns()) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e9,
        _ => wall0.elapsed().as_secs_f64(),
    };
    while iterations < min_iterations || spent(cpu0) < min_seconds {
        iterations += 1;
        let mut d = PsDemuxer::new();
        for p in data.chunks(piece) {
            d.push(p);
            while let Some(e) = d.poll() {
                match e {
                    PsEvent::Video { data, keyframe, .. } => {
                        video += 1;
                        keyframes += keyframe as u64;
                        payload += data.len() as u64;
                    }
                    PsEvent::Audio { data, .. } => {
                        audio += 1;
                        payload += data.len() as u64;
                    }
                    PsEvent::StreamsKnown { .. } => {}
                }
            }
        }
        d.end_of_frame();
        while let Some(e) = d.poll() {
            if let PsEvent::Video { data, keyframe, .. } = e {
                video += 1;
                keyframes += keyframe as u64;
                payload += data.len() as u64;
            }
        }
        stats = Some(d.stats());
    }
    let wall = wall0.elapsed().as_secs_f64();
    let (secs, clock) = match (cpu0, cpu_ns()) {
        (Some(a), Some(b)) if b > a => ((b - a) as f64 / 1e9, "thread_cpu"),
        _ => (wall, "wall"),
    };
    let bytes = data.len() as u64 * iterations as u64;
    let s = stats.unwrap_or_default();
    println!(
        "{{\"file\":\"{path}\",\"bytes\":{},\"iterations\":{iterations},\"chunk\":{chunk},\
         \"seconds\":{secs:.6},\"clock\":\"{clock}\",\"wall_seconds\":{wall:.6},\
         \"mb_per_s\":{:.1},\"video_frames\":{},\"audio_frames\":{},\"keyframes\":{},\
         \"payload_bytes\":{},\"packs\":{},\"pes\":{},\"resyncs\":{},\"dropped\":{}}}",
        data.len(),
        bytes as f64 / 1e6 / secs,
        video / iterations.max(1) as u64,
        audio / iterations.max(1) as u64,
        keyframes / iterations.max(1) as u64,
        payload / iterations.max(1) as u64,
        s.packs,
        s.pes,
        s.resyncs,
        s.dropped,
    );
}
