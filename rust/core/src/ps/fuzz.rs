//! The check the `ps_demux` fuzz target runs (also replayed by `tests/fuzz_corpus_ps.rs`).

use super::headers::LENGTH_HEADER;
use super::{PsDemuxer, PsEvent, MAX_AUDIO, MAX_FRAME};

/// The fuzz target's check: `data` pushed whole, then in pieces whose sizes come from `data`,
/// and once with losses; never a panic, memory bounded, counters consistent, and the split
/// run yields the same events as the whole one.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    let whole = run(data, &[data.len().max(1)], None);
    let sizes: Vec<usize> = data
        .iter()
        .take(64)
        .map(|&b| 1 + (b as usize % 97))
        .collect();
    let split = run(data, &sizes, None);
    assert_eq!(whole, split, "split changes the events");
    let _ = run(data, &sizes, Some(3));
}

/// Pushes `data` in pieces of the cyclic `sizes`, calling `lost()` before every `lost_every`-th
/// piece; checks the invariants and returns the events (and `end_of_frame` ones at the end).
fn run(data: &[u8], sizes: &[usize], lost_every: Option<usize>) -> Vec<PsEvent> {
    let mut d = PsDemuxer::new();
    let mut events = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < data.len() {
        let n = sizes[i % sizes.len()].max(1).min(data.len() - at);
        if lost_every.is_some_and(|e| i % e == e - 1) {
            d.lost();
        }
        d.push(&data[at..at + n]);
        at += n;
        i += 1;
        assert!(d.hdr.len() <= LENGTH_HEADER + 0xFFFF);
        assert!(d.video.data.len() <= MAX_FRAME && d.audio.data.len() <= MAX_AUDIO);
        events.extend(std::iter::from_fn(|| d.poll()));
    }
    d.end_of_frame();
    events.extend(std::iter::from_fn(|| d.poll()));
    let s = d.stats();
    assert_eq!(s.bytes, data.len() as u64);
    assert!(s.skipped <= s.bytes);
    let video = events
        .iter()
        .filter(|e| matches!(e, PsEvent::Video { .. }))
        .count();
    let audio = events
        .iter()
        .filter(|e| matches!(e, PsEvent::Audio { .. }))
        .count();
    assert_eq!(
        (video as u64, audio as u64),
        (s.video_frames, s.audio_frames)
    );
    assert!(s.video_frames + s.audio_frames <= s.pes);
    assert!(s.packs * 12 <= s.bytes && s.pes * 9 <= s.bytes);
    for e in &events {
        if let PsEvent::Video { data, .. } = e {
            assert!(!data.is_empty() && data.len() <= MAX_FRAME);
        }
    }
    events
}
