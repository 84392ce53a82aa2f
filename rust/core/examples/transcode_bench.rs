//! Transcoder throughput and added latency (`bench/transcode/run.py` drives it).
//!
//! `cargo run --release -p pms-core --example transcode_bench -- FILE.aac N [SECONDS [COMPLEXITY|-1 [LOSS%]]]`
//!
//! Reads an ADTS AAC file (FFmpeg's encoder, 44.1 kHz stereo by default), cuts it into RFC 3640
//! RTP packets (one AU each), and feeds the same packets, interleaved, to N transcoders on this
//! one thread, as a worker would with N streams: every transcoder gets frame k before any gets
//! frame k+1. It prints one JSON line: audio seconds per transcoder, CPU seconds (this thread's
//! clock), transcodes per core (`N * audio / cpu`), and for transcoder 0 the latency it adds
//! per Opus packet: the time from the arrival of the AAC packet that completes an Opus packet
//! (its end on the source clock, a live source's send time) back to the end of that Opus
//! packet's audio (so it includes the FIFO wait for a full 20 ms frame, the resampler's delay
//! and the encoder's lookahead), plus the measured processing time of that call.

use std::time::Instant;

use pms_core::gb::audio::Adts;
use pms_core::media::CodecName;
use pms_core::transcode::{OpusSpec, SourceSpec, Transcoder};

const RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

fn thread_cpu() -> f64 {
    let mut ts = libc_timespec::default();
    // SAFETY: clock_gettime writes the struct we pass (layout of struct timespec on Linux).
    unsafe { clock_gettime(3, &mut ts) }; // CLOCK_THREAD_CPUTIME_ID
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}

#[repr(C)]
#[derive(Default)]
struct libc_timespec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, ts: *mut libc_timespec) -> i32;
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .expect("usage: transcode_bench FILE.aac N [SECONDS]");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let seconds: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let complexity: Option<i32> = args.get(4).and_then(|s| s.parse().ok()).filter(|c| *c >= 0);
    let loss: Option<i32> = args.get(5).and_then(|s| s.parse().ok());
    let data = std::fs::read(path).expect("read the AAC file");
    let mut b = &data[..];
    let mut aus = Vec::new();
    let mut cfg = None;
    while let Some(h) = Adts::parse(b) {
        cfg.get_or_insert((h.object_type, h.rate_index, h.channels));
        aus.push(b[h.header_len..h.frame_len].to_vec());
        b = &b[h.frame_len..];
    }
    let (ot, ri, ch) = cfg.expect("an ADTS file");
    let rate = RATES[ri as usize];
    let asc = (u16::from(ot) << 11) | (u16::from(ri) << 7) | (u16::from(ch) << 3);
    let fmtp = format!("sizelength=13;indexlength=3;indexdeltalength=3;config={asc:04x}");
    let frames = ((seconds * rate as f64 / 1024.0) as usize).min(aus.len());
    let packets: Vec<Vec<u8>> = aus[..frames]
        .iter()
        .enumerate()
        .map(|(i, au)| {
            let mut p = vec![0x80, 97];
            p.extend_from_slice(&(i as u16).to_be_bytes());
            p.extend_from_slice(&(1024 * i as u32).to_be_bytes());
            p.extend_from_slice(&7u32.to_be_bytes());
            p.extend_from_slice(&[0x00, 0x10]);
            p.extend_from_slice(&((au.len() as u16) << 3).to_be_bytes());
            p.extend_from_slice(au);
            p
        })
        .collect();
    let base = 0u32;
    let mut ts: Vec<Transcoder> = (0..n)
        .map(|i| {
            Transcoder::new(
                SourceSpec {
                    codec: CodecName::Aac,
                    clock_rate: rate,
                    fmtp: fmtp.clone(),
                },
                OpusSpec {
                    ssrc: i as u32 + 1,
                    payload_type: 111,
                    first_seq: 0,
                    ts_base: base,
                },
            )
            .expect("a transcoder")
        })
        .map(|mut t| {
            if let Some(c) = complexity {
                t.set_complexity(c);
            }
            if let Some(l) = loss {
                t.set_expected_loss(l);
            }
            t
        })
        .collect();
    let mut latencies = Vec::new();
    let mut opus_bytes = 0u64;
    let mut opus_packets = 0u64;
    let cpu0 = thread_cpu();
    for (k, pkt) in packets.iter().enumerate() {
        for (i, t) in ts.iter_mut().enumerate() {
            let t0 = Instant::now();
            t.handle_rtp(pkt);
            let took = t0.elapsed().as_secs_f64();
            let arrival = (k as f64 + 1.0) * 1024.0 / rate as f64;
            t.drain(|o| {
                if o.rtcp || o.data.len() < 12 {
                    return;
                }
                opus_packets += 1;
                opus_bytes += (o.data.len() - 12) as u64;
                if i == 0 {
                    let ots = u32::from_be_bytes([o.data[4], o.data[5], o.data[6], o.data[7]]);
                    let end = (ots.wrapping_sub(base) as i32 as f64 + 960.0) / 48_000.0;
                    latencies.push(arrival - end + took);
                }
            });
        }
    }
    let cpu = thread_cpu() - cpu0;
    let audio = frames as f64 * 1024.0 / rate as f64;
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize] * 1000.0;
    let corrupt: u64 = ts.iter().map(|t| t.stats().frames_corrupt).sum();
    println!(
        "{{\"transcoders\": {n}, \"rate\": {rate}, \"channels\": {ch}, \"audio_seconds\": {audio:.2}, \
         \"cpu_seconds\": {cpu:.3}, \"per_core\": {:.0}, \"opus_kbps\": {:.1}, \
         \"latency_ms_mean\": {:.2}, \"latency_ms_p50\": {:.2}, \"latency_ms_max\": {:.2}, \"corrupt\": {corrupt}}}",
        n as f64 * audio / cpu,
        opus_bytes as f64 * 8.0 / audio / n as f64 / 1000.0,
        latencies.iter().sum::<f64>() / latencies.len() as f64 * 1000.0,
        pct(0.5),
        pct(1.0),
    );
    let _ = opus_packets;
}
