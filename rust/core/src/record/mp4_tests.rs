use super::*;
use crate::record::sink::apply;

fn info(codec: CodecName) -> TrackInfo {
    TrackInfo {
        codec,
        clock_rate: if codec.kind() == MediaKind::Video {
            90_000
        } else {
            48_000
        },
        channels: 2,
        width: 320,
        height: 240,
        config: vec![1, 0x64, 0, 0x0d, 0xff, 0xe1],
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Top-level boxes: (type, start, size).
fn boxes(b: &[u8]) -> Vec<([u8; 4], usize, usize)> {
    let mut at = 0;
    let mut out = Vec::new();
    while at + 8 <= b.len() {
        let size = be32(b, at) as usize;
        let mut t = [0; 4];
        t.copy_from_slice(&b[at + 4..at + 8]);
        out.push((t, at, size));
        at += size.max(8);
    }
    out
}

fn write(tracks: &[TrackInfo], frames: &[(usize, i64, bool)]) -> Vec<u8> {
    let mut w = Mp4Writer::new();
    let mut sink = Sink::default();
    w.start(tracks, &mut sink);
    for &(t, ms, key) in frames {
        w.frame(t, ms * 1_000_000, key, &[0xcd; 7], &mut sink);
    }
    w.finish(&mut sink);
    let mut file = Vec::new();
    while let Some(x) = sink.poll() {
        apply(&mut file, &x);
    }
    file
}

#[test]
fn fragments_at_keyframes_and_every_half_second() {
    let mut frames = Vec::new();
    for i in 0..100 {
        // 4 s at 25 fps, a keyframe every 2 s; audio every 20 ms.
        frames.push((0, i * 40, i % 50 == 0));
        frames.push((1, i * 40, true));
        frames.push((1, i * 40 + 20, true));
    }
    let file = write(&[info(CodecName::H264), info(CodecName::Opus)], &frames);
    let b = boxes(&file);
    let kinds: Vec<&[u8; 4]> = b.iter().map(|x| &x.0).collect();
    assert_eq!(kinds[0], b"ftyp");
    assert_eq!(kinds[1], b"moov");
    assert_eq!(kinds.last(), Some(&b"mfra"));
    let moofs = kinds.iter().filter(|k| **k == b"moof").count();
    let starts: Vec<u64> = b
        .iter()
        .filter(|x| &x.0 == b"moof")
        .map(|x| {
            let at = x.1
                + file[x.1..]
                    .windows(4)
                    .position(|w| w == b"tfdt")
                    .unwrap_or(0);
            u64::from_be_bytes(file[at + 8..at + 16].try_into().unwrap_or_default())
        })
        .collect();
    assert_eq!(moofs, 8, "{starts:?}");
    assert_eq!(b.last().map(|x| x.1 + x.2), Some(file.len()));
    // mfro's last word is the mfra size.
    assert_eq!(
        be32(&file, file.len() - 4) as usize,
        b.last().map_or(0, |x| x.2)
    );
    // Every mdat follows its moof.
    for w in b.windows(2) {
        if &w[0].0 == b"moof" {
            assert_eq!(&w[1].0, b"mdat");
        }
    }
}

/// (dts, cts) of the first trun of the first moof.
fn first_trun(file: &[u8]) -> (u64, Vec<(u32, i32)>) {
    let moof = boxes(file)
        .into_iter()
        .find(|b| &b.0 == b"moof")
        .map_or(0, |b| b.1);
    let tfdt = moof
        + file[moof..]
            .windows(4)
            .position(|w| w == b"tfdt")
            .unwrap_or(0);
    let base = u64::from_be_bytes(file[tfdt + 8..tfdt + 16].try_into().unwrap_or_default());
    let trun = moof
        + file[moof..]
            .windows(4)
            .position(|w| w == b"trun")
            .unwrap_or(0);
    let n = be32(file, trun + 8) as usize;
    let mut at = trun + 16;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push((be32(file, at), be32(file, at + 12) as i32));
        at += 16;
    }
    (base, out)
}

#[test]
fn b_frames_get_increasing_decode_times_and_non_negative_offsets() {
    // Decoding order I0 P3 B1 B2 P6 B4 B5 ... (in frames of 40 ms = 3600 ticks).
    let order = [0i64, 3, 1, 2, 6, 4, 5, 9, 7, 8];
    let frames: Vec<_> = order.iter().map(|&p| (0, p * 40, p == 0)).collect();
    let file = write(&[info(CodecName::H264)], &frames);
    let (base, samples) = first_trun(&file);
    assert_eq!(samples.len(), order.len());
    let mut dts = base as i64;
    let mut pts = Vec::new();
    for (dur, cts) in &samples {
        assert!(*cts >= 0, "{samples:?}");
        assert!(*dur > 0);
        pts.push(dts + *cts as i64);
        dts += *dur as i64;
    }
    // Presentation times come back as sent, shifted by the edit (one frame of delay).
    let want: Vec<i64> = order.iter().map(|p| p * 3600 + 3600).collect();
    assert_eq!(pts, want);
    assert!(file.windows(4).any(|w| w == b"elst"));
}

#[test]
fn audio_only_fragments_every_half_second() {
    let frames: Vec<_> = (0..150).map(|i| (0, i * 20, true)).collect();
    let file = write(&[info(CodecName::Opus)], &frames);
    let moofs = boxes(&file).iter().filter(|b| &b.0 == b"moof").count();
    assert_eq!(moofs, 6);
    assert!(!file.windows(4).any(|w| w == b"elst"), "no shift needed");
}

#[test]
fn frozen_timestamps_still_cut_fragments() {
    let frames: Vec<_> = (0..5000).map(|_| (0, 0, true)).collect();
    let file = write(&[info(CodecName::Opus)], &frames);
    let moofs = boxes(&file).iter().filter(|b| &b.0 == b"moof").count();
    assert_eq!(moofs, 3, "2000 samples per fragment at most");
}
