//! `pms-gb-sender`: N cameras sending one PS file as PS-over-RTP over TCP (RFC 4571), each at
//! a fixed bitrate with its own SSRC, for a GB28181 media port to ingest.
//!
//! ```text
//! pms-gb-sender --addr 127.0.0.1:PORT --ps FILE --streams N [--bitrate 2000000]
//!               [--seconds 10] [--ssrc-base 1] [--threads 1] [--payload 1400]
//!               [--start-within 0] [--stdin-stop 0]
//! ```
//!
//! The file is cut once into RTP payloads of at most `--payload` bytes (each pack starts a new
//! packet, as cameras do; the timestamp is the pack's SCR); every stream replays that list in a
//! loop from its own random starting pack (so IDRs do not all arrive at once; with
//! `--start-within S` > 0, a pack among the first S seconds of the file, so that a run shorter
//! than the file minus S never wraps around to the file's start and its timestamps), with its own
//! SSRC (`ssrc-base + i`) and contiguous sequence numbers. Pacing is by bytes: every 10 ms
//! each stream writes, in one `write`, the whole packets its budget (`bitrate` x elapsed)
//! allows. Connections are blocking; a server that reads slowly slows the sender down, which
//! shows as `behind_ms` (how far the last round ran past its deadline) and as fewer packets
//! than the budget. With `--stdin-stop 1` it also stops, early, when its standard input closes
//! (the caller ends the run when it likes and still gets the figures). Prints one JSON line: packets and bytes sent (total, min and max per
//! stream), elapsed seconds, `behind_ms`.
//!
//! Standard library only; no code from the server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

struct Args {
    addr: SocketAddr,
    ps: String,
    streams: usize,
    bitrate: u64,
    seconds: f64,
    ssrc_base: u32,
    threads: usize,
    payload: usize,
    start_within: f64,
    stdin_stop: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        addr: "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
        ps: String::new(),
        streams: 1,
        bitrate: 2_000_000,
        seconds: 10.0,
        ssrc_base: 1,
        threads: 1,
        payload: 1400,
        start_within: 0.0,
        stdin_stop: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{k} {v}: {e}");
        match k.as_str() {
            "--addr" => a.addr = v.parse().map_err(|e| bad(&e))?,
            "--ps" => a.ps = v.clone(),
            "--streams" => a.streams = v.parse().map_err(|e| bad(&e))?,
            "--bitrate" => a.bitrate = v.parse().map_err(|e| bad(&e))?,
            "--seconds" => a.seconds = v.parse().map_err(|e| bad(&e))?,
            "--ssrc-base" => a.ssrc_base = v.parse().map_err(|e| bad(&e))?,
            "--threads" => a.threads = v.parse().map_err(|e| bad(&e))?,
            "--payload" => a.payload = v.parse().map_err(|e| bad(&e))?,
            "--start-within" => a.start_within = v.parse().map_err(|e| bad(&e))?,
            "--stdin-stop" => a.stdin_stop = v != "0",
            _ => return Err(format!("unknown option {k}")),
        }
    }
    if a.ps.is_empty() || a.streams == 0 || a.threads == 0 || !(100..=60000).contains(&a.payload) {
        return Err(
            "need --ps FILE, --streams >= 1, --threads >= 1, 100 <= --payload <= 60000".into(),
        );
    }
    Ok(a)
}

/// One RTP packet of the file: (timestamp, payload range); `pack` marks a pack start.
struct Chunk {
    ts: u32,
    start: usize,
    end: usize,
    pack: bool,
}

fn pack_starts(ps: &[u8]) -> Vec<usize> {
    ps.windows(4)
        .enumerate()
        .filter(|(_, w)| *w == [0, 0, 1, 0xBA])
        .map(|(i, _)| i)
        .collect()
}

fn scr(ps: &[u8], at: usize) -> u32 {
    let b = &ps[at + 4..at + 10];
    let v = ((b[0] as u64 >> 3) & 7) << 30
        | (b[0] as u64 & 3) << 28
        | (b[1] as u64) << 20
        | ((b[2] as u64 >> 3) & 0x1F) << 15
        | (b[2] as u64 & 3) << 13
        | (b[3] as u64) << 5
        | (b[4] as u64 >> 3);
    v as u32
}

fn chunks(ps: &[u8], payload: usize) -> Vec<Chunk> {
    let mut bounds = pack_starts(ps);
    if bounds.first() != Some(&0) {
        bounds.insert(0, 0);
    }
    bounds.push(ps.len());
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let (a, b) = (w[0], w[1]);
        let is_pack = ps.len() >= a + 14 && ps[a..a + 4] == [0, 0, 1, 0xBA];
        let ts = if is_pack { scr(ps, a) } else { 0 };
        let mut i = a;
        while i < b {
            let end = (i + payload).min(b);
            out.push(Chunk {
                ts,
                start: i,
                end,
                pack: i == a && is_pack,
            });
            i = end;
        }
    }
    out
}

struct Stream {
    conn: TcpStream,
    ssrc: u32,
    seq: u16,
    next: usize,
    sent_bytes: u64,
    packets: u64,
}

#[derive(Default)]
struct Totals {
    packets: Vec<u64>,
    bytes: u64,
    behind_ms: f64,
}

/// Set when standard input closes (`--stdin-stop`).
static STOP: AtomicBool = AtomicBool::new(false);

fn run_thread(args: &Args, ps: &[u8], list: &[Chunk], ssrcs: Vec<u32>, seed: u64) -> Totals {
    let mut rng = seed | 1;
    let mut rand = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let first_ts = list.iter().find(|c| c.pack).map_or(0, |c| c.ts);
    let window = (args.start_within * 90_000.0) as u32;
    let packs: Vec<usize> = (0..list.len())
        .filter(|i| list[*i].pack)
        .filter(|i| window == 0 || list[*i].ts.wrapping_sub(first_ts) < window)
        .collect();
    let mut streams: Vec<Stream> = ssrcs
        .into_iter()
        .filter_map(|ssrc| {
            let conn = TcpStream::connect(args.addr).ok()?;
            let _ = conn.set_nodelay(true);
            let start = packs
                .get(rand() as usize % packs.len().max(1))
                .copied()
                .unwrap_or(0);
            Some(Stream {
                conn,
                ssrc,
                seq: rand() as u16,
                next: start,
                sent_bytes: 0,
                packets: 0,
            })
        })
        .collect();
    let per_sec = args.bitrate as f64 / 8.0;
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(args.seconds);
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut behind = Duration::ZERO;
    let mut round = 0u32;
    while Instant::now() < end && !STOP.load(Ordering::Relaxed) {
        round += 1;
        let deadline = t0 + Duration::from_millis(10) * round;
        let budget = (per_sec * deadline.duration_since(t0).as_secs_f64()) as u64;
        let mut dead = Vec::new();
        for (k, s) in streams.iter_mut().enumerate() {
            buf.clear();
            while s.sent_bytes < budget {
                let c = &list[s.next];
                let len = 12 + c.end - c.start;
                buf.extend_from_slice(&(len as u16).to_be_bytes());
                buf.extend_from_slice(&[0x80, 96]);
                buf.extend_from_slice(&s.seq.to_be_bytes());
                buf.extend_from_slice(&c.ts.to_be_bytes());
                buf.extend_from_slice(&s.ssrc.to_be_bytes());
                buf.extend_from_slice(&ps[c.start..c.end]);
                s.seq = s.seq.wrapping_add(1);
                s.sent_bytes += len as u64 + 2;
                s.packets += 1;
                s.next = (s.next + 1) % list.len();
            }
            if !buf.is_empty() && s.conn.write_all(&buf).is_err() {
                dead.push(k);
            }
        }
        for k in dead.into_iter().rev() {
            eprintln!(
                "stream ssrc {} : connection closed by the server",
                streams[k].ssrc
            );
            streams.swap_remove(k);
        }
        let now = Instant::now();
        if now < deadline {
            std::thread::sleep(deadline - now);
        } else {
            behind = behind.max(now - deadline);
        }
    }
    Totals {
        packets: streams.iter().map(|s| s.packets).collect(),
        bytes: streams.iter().map(|s| s.sent_bytes).sum(),
        behind_ms: behind.as_secs_f64() * 1000.0,
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pms-gb-sender: {e}");
            std::process::exit(2);
        }
    };
    let ps = match std::fs::read(&args.ps) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("pms-gb-sender: {}: {e}", args.ps);
            std::process::exit(2);
        }
    };
    let list = chunks(&ps, args.payload);
    if list.is_empty() {
        eprintln!("pms-gb-sender: {} is empty", args.ps);
        std::process::exit(2);
    }
    if args.stdin_stop {
        std::thread::spawn(|| {
            let mut sink = [0u8; 256];
            while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
            STOP.store(true, Ordering::Relaxed);
        });
    }
    let t0 = Instant::now();
    let totals: Vec<Totals> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..args.threads)
            .map(|t| {
                let ssrcs: Vec<u32> = (0..args.streams)
                    .filter(|i| i % args.threads == t)
                    .map(|i| args.ssrc_base.wrapping_add(i as u32))
                    .collect();
                let (a, p, l) = (&args, &ps, &list);
                scope.spawn(move || run_thread(a, p, l, ssrcs, 0x9E37_79B9_7F4A_7C15 ^ t as u64))
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let per: Vec<u64> = totals
        .iter()
        .flat_map(|t| t.packets.iter().copied())
        .collect();
    println!(
        "{{\"streams\": {}, \"connected\": {}, \"packets\": {}, \"bytes\": {}, \"min_packets\": {}, \"max_packets\": {}, \"seconds\": {:.3}, \"behind_ms\": {:.1}, \"chunks\": {}}}",
        args.streams,
        per.len(),
        per.iter().sum::<u64>(),
        totals.iter().map(|t| t.bytes).sum::<u64>(),
        per.iter().min().copied().unwrap_or(0),
        per.iter().max().copied().unwrap_or(0),
        t0.elapsed().as_secs_f64(),
        totals.iter().map(|t| t.behind_ms).fold(0.0, f64::max),
        list.len()
    );
}
