//! Replays the saved inputs of the `transcode` fuzz target (`fuzz/corpus/transcode/*`) through
//! `pms_core::transcode::fuzz_check`, whole and cut at many points (from the start and to the
//! end: a stream joined late or left early is itself network input).
//!
//! `cargo test -p pms-core --release --test fuzz_corpus_transcode -- --ignored write_transcode_seed_corpus`
//! writes the seeds: the AAC of `tests/data/sine440_*.aac` (FFmpeg's encoder) as RTP records of
//! each source kind the target picks (a matching config, a lying one, odd AU header sizes),
//! with gaps, repeats, sender reports and corrupted frames, and G.711 of a tone.

use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/transcode")
}

#[test]
fn replay_transcode_corpus() {
    let mut n = 0;
    let mut made = 0;
    for entry in std::fs::read_dir(corpus()).expect("fuzz/corpus/transcode exists") {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        made += pms_core::transcode::fuzz_check(&data);
        let step = (data.len() / 8).max(1);
        for cut in (1..data.len()).step_by(step) {
            pms_core::transcode::fuzz_check(&data[..cut]);
            let mut tail = vec![data[0]];
            tail.extend_from_slice(&data[cut..]);
            pms_core::transcode::fuzz_check(&tail);
        }
        n += 1;
    }
    assert!(n >= 8, "the seed corpus is missing ({n} inputs)");
    assert!(
        made > 100,
        "the seeds reach the encoder ({made} Opus packets)"
    );
}

/// Raw AUs of an ADTS file.
fn adts_frames(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(h) = pms_core::gb::audio::Adts::parse(b) {
        out.push(b[h.header_len..h.frame_len].to_vec());
        b = &b[h.frame_len..];
    }
    out
}

/// One record of the fuzz input layout: `[len][flags][bytes]` (bytes cut to 255).
fn record(out: &mut Vec<u8>, flags: u8, bytes: &[u8]) {
    let n = bytes.len().min(255);
    out.push(n as u8);
    out.push(flags);
    out.extend_from_slice(&bytes[..n]);
}

#[test]
#[ignore]
fn write_transcode_seed_corpus() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let stereo = adts_frames(&std::fs::read(data.join("sine440_44k_stereo.aac")).unwrap());
    let mono = adts_frames(&std::fs::read(data.join("sine440_16k_mono.aac")).unwrap());
    let dir = corpus();
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, bytes: Vec<u8>| std::fs::write(dir.join(name), bytes).unwrap();
    // Flags: bit 1 wraps as one AU; bits 2-3 seq step; bits 4-7 ts step in frames.
    const AU: u8 = 0x02 | (1 << 2) | (1 << 4);
    for (sel, frames, name) in [
        (0u8, &stereo, "aac44_stereo"),
        (1, &mono, "aac16_mono"),
        (2, &stereo, "aac_lying_mono"),
        (3, &stereo, "aac_he_config"),
    ] {
        let mut plain = vec![sel];
        let mut rough = vec![sel];
        for (i, f) in frames.iter().take(40).enumerate() {
            record(&mut plain, AU, f);
            match i % 9 {
                3 => record(&mut rough, AU & 0x0F | (4 << 4), f), // a gap of 3 frames
                5 => {
                    record(&mut rough, AU, f);
                    record(&mut rough, 0x02, f); // a repeat
                }
                6 => {
                    let junk: Vec<u8> = f.iter().map(|b| b.rotate_left(3) ^ 0x5A).collect();
                    record(&mut rough, AU, &junk);
                }
                7 => record(&mut rough, 0x01, &(1024 * i as u32).to_be_bytes()), // a sender report
                _ => record(&mut rough, AU, f),
            }
        }
        write(name, plain);
        write(&format!("{name}_rough"), rough);
    }
    // Odd AU header sizes (6/2/2): the records' own bytes are the AU-headers section.
    let mut odd = vec![4u8];
    for f in mono.iter().take(20) {
        let mut p = vec![0x00, 0x06, (f.len().min(63) as u8) << 2];
        p.extend_from_slice(&f[..f.len().min(63)]);
        record(&mut odd, 1 << 2 | 1 << 4, &p);
    }
    write("aac_odd_headers", odd);
    // G.711 A-law and mu-law of a tone, 20 ms packets, one lost.
    for (sel, name) in [(5u8, "pcma"), (6, "pcmu"), (7, "pcma16k")] {
        let mut g = vec![sel];
        for k in 0..60u32 {
            let bytes: Vec<u8> = (0..160u32)
                .map(|i| {
                    let x =
                        ((k * 160 + i) as f32 * 2.0 * std::f32::consts::PI * 440.0 / 8000.0).sin();
                    (x * 100.0) as i8 as u8 ^ 0x55
                })
                .collect();
            let step = if k == 30 { 2 << 4 } else { 1 << 4 };
            record(&mut g, step | 1 << 2, &bytes);
        }
        write(name, g);
    }
}
