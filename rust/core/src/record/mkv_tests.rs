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
        channels: if codec.kind() == MediaKind::Video {
            0
        } else {
            2
        },
        width: 320,
        height: 240,
        config: Vec::new(),
    }
}

/// Reads an EBML ID or size at `at`: (value without the marker for sizes, length).
fn vint(b: &[u8], at: usize, keep_marker: bool) -> (u64, usize) {
    let len = b[at].leading_zeros() as usize + 1;
    let mut v = 0u64;
    for &x in &b[at..at + len] {
        v = (v << 8) | x as u64;
    }
    if !keep_marker {
        v &= (1u64 << (7 * len)) - 1;
    }
    (v, len)
}

/// Top-level children of `b[start..end]`: (id, data start, size).
fn children(b: &[u8], start: usize, end: usize) -> Vec<(u64, usize, usize)> {
    let mut at = start;
    let mut out = Vec::new();
    while at < end {
        let (id, il) = vint(b, at, true);
        let (size, sl) = vint(b, at + il, false);
        let data = at + il + sl;
        out.push((id, data, size as usize));
        at = data + size as usize;
    }
    out
}

fn write(webm: bool, tracks: &[TrackInfo], frames: &[(usize, i64, bool)], finish: bool) -> Vec<u8> {
    let mut w = MkvWriter::new(webm);
    let mut sink = Sink::default();
    w.start(tracks, &mut sink);
    for &(t, ms, key) in frames {
        w.frame(t, ms * 1_000_000, key, &[0xab; 10], &mut sink);
    }
    if finish {
        w.finish(&mut sink);
    }
    let mut file = Vec::new();
    while let Some(x) = sink.poll() {
        apply(&mut file, &x);
    }
    file
}

#[test]
fn finished_file_has_sizes_duration_cues_and_seek_head() {
    let mut frames = Vec::new();
    for i in 0..50 {
        frames.push((0, i * 40, i % 25 == 0));
        frames.push((1, i * 40 + 5, true));
    }
    let file = write(
        true,
        &[info(CodecName::Vp8), info(CodecName::Opus)],
        &frames,
        true,
    );
    let top = children(&file, 0, file.len());
    assert_eq!(top.len(), 2);
    let (ebml_id, hdr, hdr_len) = top[0];
    assert_eq!(ebml_id, 0x1A45DFA3);
    assert!(file[hdr..hdr + hdr_len].windows(4).any(|w| w == b"webm"));
    let (seg_id, seg, seg_len) = top[1];
    assert_eq!(seg_id, SEGMENT as u64);
    assert_eq!(seg + seg_len, file.len(), "segment size patched");
    let ids: Vec<u64> = children(&file, seg, file.len())
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(ids[0], SEEK_HEAD as u64);
    assert_eq!(ids[1], 0xEC);
    assert_eq!(ids[2], INFO as u64);
    assert_eq!(ids[3], TRACKS as u64);
    let clusters = ids.iter().filter(|&&i| i == CLUSTER as u64).count();
    assert_eq!(clusters, 2, "one cluster per video keyframe");
    assert_eq!(*ids.last().unwrap_or(&0), CUES as u64);
    // Duration: the last block (audio at 1965 ms) plus one frame.
    let info_el = children(&file, seg, file.len())[2];
    let dur = children(&file, info_el.1, info_el.1 + info_el.2)
        .into_iter()
        .find(|c| c.0 == 0x4489)
        .map(|c| f64::from_be_bytes(file[c.1..c.1 + 8].try_into().unwrap_or_default()));
    assert_eq!(dur, Some(2005.0));
}

#[test]
fn an_unfinished_file_has_unknown_sizes_and_whole_blocks() {
    let frames: Vec<_> = (0..10).map(|i| (0, i * 40, i == 0)).collect();
    let file = write(false, &[info(CodecName::H264)], &frames, false);
    assert!(file.windows(8).any(|w| w == b"matroska"));
    let seg = file
        .windows(4)
        .position(|w| w == [0x18, 0x53, 0x80, 0x67])
        .unwrap_or(0);
    assert_eq!(file[seg + 4..seg + 12], UNKNOWN_SIZE);
    let blocks = file.windows(2).filter(|w| w == &[0xa3, 0x8e]).count();
    assert_eq!(blocks, 10);
}

#[test]
fn audio_only_cuts_clusters_every_two_seconds() {
    let frames: Vec<_> = (0..250).map(|i| (0, i * 20, true)).collect();
    let file = write(false, &[info(CodecName::Opus)], &frames, true);
    let top = children(&file, 0, file.len());
    let (_, seg, len) = top[1];
    let kids = children(&file, seg, seg + len);
    let clusters: Vec<_> = kids.iter().filter(|c| c.0 == CLUSTER as u64).collect();
    assert_eq!(clusters.len(), 3);
    let cues = kids
        .iter()
        .find(|c| c.0 == CUES as u64)
        .map(|c| children(&file, c.1, c.1 + c.2));
    assert_eq!(cues.map(|c| c.len()), Some(3));
}

#[test]
fn g711_is_an_acm_track() {
    let mut t = info(CodecName::Pcmu);
    t.clock_rate = 8000;
    let e = track_entry(1, &t);
    assert!(e.windows(8).any(|w| w == b"A_MS/ACM"));
    assert!(e.windows(2).any(|w| w == [7, 0]), "WAVE_FORMAT_MULAW");
}
