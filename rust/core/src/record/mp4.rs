//! Fragmented MP4 writer (ISO/IEC 14496-12 8.8): the initialization segment first, then one
//! `moof`+`mdat` per fragment, each appended whole once complete, so a file cut anywhere holds
//! whole fragments up to the cut (plus a partial one players skip).
//!
//! A fragment is cut before a video keyframe, and after [`FRAGMENT_MAX_NS`] of video at the
//! latest; without video, every [`FRAGMENT_MAX_NS`] of audio. Half a second, because a crash
//! loses the fragment being built plus the frames still in the reorder window (four frames)
//! and the writer's interleaver: with 1 s fragments that came to more than the 1 s SPEC
//! section 5 allows (the end-to-end test's kill -9 copy measures it). Each fragment has one
//! `traf` per track with samples (`tfhd` with default-base-is-moof, `tfdt`, `trun` version 1),
//! their data in one `mdat`.
//!
//! ## Decode times
//! Frames arrive in decoding order with presentation times (RTP timestamps). Per track the
//! writer holds a window of the next frames ([`REORDER_WINDOW`] for H.264/H.265 with B-frames,
//! one otherwise) with a min-heap of their presentation times. A frame leaves the window with
//! decode time = the smallest presentation time in the window minus the track's reorder delay
//! (so decode times are the presentation times in sorted order, shifted), forced strictly
//! increasing, and duration = the next decode time minus its own. The reorder delay is read
//! from the first window (how far a presentation time runs ahead of its sorted place), so the
//! composition offsets `pts - dts` are >= 0; a stream that later reorders deeper gets negative
//! offsets, which `trun` version 1 allows.
//!
//! Decode times before zero cannot be written (`tfdt` is unsigned): the first fragment waits
//! until every track has released a sample, then one shift (the earliest decode time's
//! distance below zero) moves all tracks alike, so they stay in sync, and the `moov` written
//! then carries an edit list per track (`elst` media_time = the shift) so players still start
//! presentation at zero. Fragments are continuous: each `tfdt` is where the previous
//! fragment's last sample of the track ended.
//!
//! On finish the last samples are flushed (the last duration repeats the previous one), the
//! `mehd` duration is patched, and an `mfra` (`tfra` per track, `mfro`) is appended so players
//! seek without reading every fragment.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use super::container::{ContainerWriter, TrackInfo};
use super::mp4box::{bx, full, init_segment, timescale, u32b, u64b, InitTrack, MOVIE_TIMESCALE};
use super::sink::Sink;
use crate::media::{CodecName, MediaKind};

/// Longest fragment.
pub const FRAGMENT_MAX_NS: i64 = 500_000_000;
/// A fragment is also cut at this many bytes or samples (timestamps that do not advance
/// would otherwise grow it without end).
pub const FRAGMENT_MAX_BYTES: usize = 16 << 20;
pub const FRAGMENT_MAX_SAMPLES: usize = 2000;
/// Frames held per H.264/H.265 track to order presentation times into decode times.
pub const REORDER_WINDOW: usize = 4;

const FLAGS_SYNC: u32 = 0x0200_0000;
const FLAGS_NON_SYNC: u32 = 0x0101_0000;

#[derive(Debug, Clone)]
struct Sample {
    /// Before the shift (may be negative).
    dts: i64,
    duration: u32,
    cts: i32,
    key: bool,
    data: Vec<u8>,
}

#[derive(Debug)]
struct Track {
    video: bool,
    scale: u32,
    window_len: usize,
    /// (pts, key, data) in decoding order.
    window: VecDeque<(i64, bool, Vec<u8>)>,
    pts_heap: BinaryHeap<Reverse<i64>>,
    last_dts: Option<i64>,
    /// Reorder delay in ticks, fixed at the first release.
    delay: Option<i64>,
    /// Shift of the file's decode times, in this track's ticks.
    shift: i64,
    last_duration: u32,
    /// Samples of the fragment being built.
    frag: Vec<Sample>,
    /// (time, moof offset) of each fragment with a sync sample of this track, for `tfra`.
    index: Vec<(u64, u64)>,
}

#[derive(Debug, Default)]
pub struct Mp4Writer {
    tracks: Vec<Track>,
    has_video: bool,
    mehd_at: u64,
    sequence: u32,
    /// Start of the fragment being built (ns), by the samples released into it.
    frag_start_ns: Option<i64>,
    /// Bytes and samples of the fragment being built.
    frag_bytes: usize,
    frag_samples: usize,
    end_ns: i64,
    /// The init segment has been written.
    started: bool,
    /// The tracks as given to `start`, until the init segment is written.
    infos: Vec<InitTrack>,
    /// Samples released before the shift is known.
    pre: Vec<(usize, Sample)>,
    /// The shift of all decode times (ns), once known.
    shift_ns: Option<i64>,
    /// Between `start` and `finish`.
    open: bool,
}

impl Mp4Writer {
    pub fn new() -> Mp4Writer {
        Mp4Writer::default()
    }

    /// Takes the oldest frame out of a track's window as a sample.
    fn release(t: &mut Track, flushing: bool) -> Option<Sample> {
        if t.delay.is_none() {
            let mut sorted: Vec<i64> = t.window.iter().map(|f| f.0).collect();
            sorted.sort_unstable();
            let d = t
                .window
                .iter()
                .zip(&sorted)
                .map(|(f, s)| s - f.0)
                .max()
                .unwrap_or(0);
            t.delay = Some(d.max(0));
        }
        let delay = t.delay.unwrap_or(0);
        let (pts, key, data) = t.window.pop_front()?;
        let Reverse(smallest) = t.pts_heap.pop()?;
        let floor = t.last_dts.map_or(i64::MIN, |d| d + 1);
        let dts = (smallest - delay).max(floor);
        let duration = match t.pts_heap.peek() {
            Some(&Reverse(next)) if !flushing || next - delay > dts => {
                (next - delay - dts).clamp(1, u32::MAX as i64) as u32
            }
            _ => t.last_duration.max(1),
        };
        t.last_dts = Some(dts);
        t.last_duration = duration;
        let cts = (pts - dts).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        Some(Sample {
            dts,
            duration,
            cts,
            key,
            data,
        })
    }

    fn ns(t: &Track, ticks: i64) -> i64 {
        (ticks as i128 * 1_000_000_000 / t.scale as i128) as i64
    }

    /// Takes a released sample: before the shift is known, holds it; then places it.
    fn take(&mut self, i: usize, s: Sample, out: &mut Sink) {
        if self.shift_ns.is_none() {
            self.pre.push((i, s));
            let all = (0..self.tracks.len()).all(|k| self.pre.iter().any(|(j, _)| *j == k));
            if all {
                self.fix_shift(out);
            }
            return;
        }
        self.place(i, s, out);
    }

    /// Fixes the shift from the held samples, writes the init segment, places them.
    fn fix_shift(&mut self, out: &mut Sink) {
        let earliest = self
            .pre
            .iter()
            .map(|(i, s)| Mp4Writer::ns(&self.tracks[*i], s.dts))
            .min()
            .unwrap_or(0);
        let shift_ns = (-earliest).max(0);
        self.shift_ns = Some(shift_ns);
        let mut infos = std::mem::take(&mut self.infos);
        for (t, info) in self.tracks.iter_mut().zip(&mut infos) {
            // Rounded up so that no decode time lands below zero.
            t.shift = ((shift_ns as i128 * t.scale as i128 + 999_999_999) / 1_000_000_000) as i64;
            info.edit = t.shift.max(0) as u32;
        }
        let (init, mehd) = init_segment(&infos);
        self.mehd_at = out.len() + mehd as u64;
        out.append(&init);
        self.started = true;
        for (i, s) in std::mem::take(&mut self.pre) {
            self.place(i, s, out);
        }
    }

    /// Adds a sample to the fragment, cutting the fragment before it if needed.
    fn place(&mut self, i: usize, mut s: Sample, out: &mut Sink) {
        s.dts = (s.dts + self.tracks[i].shift).max(0);
        let ns = Mp4Writer::ns(&self.tracks[i], s.dts);
        // With video, only video decides the cuts (audio runs ahead of the reorder window).
        let decides = self.tracks[i].video || !self.has_video;
        if decides {
            let key_cut = s.key && self.tracks[i].video;
            let too_long = self
                .frag_start_ns
                .is_some_and(|st| ns - st >= FRAGMENT_MAX_NS);
            let has_video = self.has_video;
            let any = self
                .tracks
                .iter()
                .any(|t| !t.frag.is_empty() && (t.video || !has_video));
            let too_big =
                self.frag_bytes >= FRAGMENT_MAX_BYTES || self.frag_samples >= FRAGMENT_MAX_SAMPLES;
            if any && (key_cut || too_long || too_big) {
                self.flush_fragment(out);
            }
            if self.frag_start_ns.is_none() {
                self.frag_start_ns = Some(ns);
            }
        }
        let end = ns + Mp4Writer::ns(&self.tracks[i], s.duration as i64);
        self.end_ns = self.end_ns.max(end);
        self.frag_bytes += s.data.len();
        self.frag_samples += 1;
        self.tracks[i].frag.push(s);
    }

    fn flush_fragment(&mut self, out: &mut Sink) {
        self.frag_start_ns = None;
        (self.frag_bytes, self.frag_samples) = (0, 0);
        if self.tracks.iter().all(|t| t.frag.is_empty()) {
            return;
        }
        self.sequence += 1;
        let moof_at = out.len();
        // Build once to learn the moof size, then again with the data offsets.
        let moof = self.moof(0);
        let moof = self.moof(moof.len() as u32 + 8);
        let data_len: usize = self
            .tracks
            .iter()
            .flat_map(|t| &t.frag)
            .map(|s| s.data.len())
            .sum();
        let mut head = moof;
        u32b(&mut head, (data_len + 8) as u32);
        head.extend_from_slice(b"mdat");
        out.append(&head);
        let has_video = self.has_video;
        for t in &mut self.tracks {
            if let Some(first) = t.frag.first() {
                if first.key && (t.video || !has_video) {
                    t.index.push((first.dts as u64, moof_at));
                }
            }
            for s in t.frag.drain(..) {
                out.append(&s.data);
            }
        }
    }

    /// `moof` with trun data offsets counted from `data_start` (moof size + mdat header).
    fn moof(&self, data_start: u32) -> Vec<u8> {
        let mut o = Vec::new();
        let mut offset = data_start;
        bx(&mut o, b"moof", |o| {
            full(o, b"mfhd", 0, 0, |o| u32b(o, self.sequence));
            for (i, t) in self.tracks.iter().enumerate() {
                let Some(first) = t.frag.first() else {
                    continue;
                };
                bx(o, b"traf", |o| {
                    full(o, b"tfhd", 0, 0x02_0000, |o| u32b(o, i as u32 + 1));
                    full(o, b"tfdt", 1, 0, |o| u64b(o, first.dts as u64));
                    full(o, b"trun", 1, 0x0f01, |o| {
                        u32b(o, t.frag.len() as u32);
                        u32b(o, offset);
                        for s in &t.frag {
                            u32b(o, s.duration);
                            u32b(o, s.data.len() as u32);
                            u32b(
                                o,
                                if s.key || !t.video {
                                    FLAGS_SYNC
                                } else {
                                    FLAGS_NON_SYNC
                                },
                            );
                            o.extend_from_slice(&s.cts.to_be_bytes());
                        }
                    });
                });
                offset += t.frag.iter().map(|s| s.data.len() as u32).sum::<u32>();
            }
        });
        o
    }

    fn mfra(&self) -> Vec<u8> {
        let mut o = Vec::new();
        bx(&mut o, b"mfra", |o| {
            for (i, t) in self.tracks.iter().enumerate() {
                full(o, b"tfra", 1, 0, |o| {
                    u32b(o, i as u32 + 1);
                    u32b(o, 0); // 1-byte traf/trun/sample numbers
                    u32b(o, t.index.len() as u32);
                    for &(time, moof) in &t.index {
                        u64b(o, time);
                        u64b(o, moof);
                        o.extend_from_slice(&[1, 1, 1]);
                    }
                });
            }
            // mfro's body is the size of the whole mfra, known once it is built.
            full(o, b"mfro", 0, 0, |o| u32b(o, 0));
        });
        let len = o.len() as u32;
        let n = o.len();
        o[n - 4..].copy_from_slice(&len.to_be_bytes());
        o
    }
}

impl ContainerWriter for Mp4Writer {
    fn start(&mut self, tracks: &[TrackInfo], out: &mut Sink) {
        self.tracks = tracks
            .iter()
            .map(|t| Track {
                video: t.kind() == MediaKind::Video,
                scale: timescale(t),
                window_len: if matches!(t.codec, CodecName::H264 | CodecName::H265) {
                    REORDER_WINDOW
                } else {
                    1
                },
                window: VecDeque::new(),
                pts_heap: BinaryHeap::new(),
                last_dts: None,
                delay: None,
                shift: 0,
                last_duration: 1,
                frag: Vec::new(),
                index: Vec::new(),
            })
            .collect();
        self.has_video = self.tracks.iter().any(|t| t.video);
        self.infos = tracks
            .iter()
            .map(|t| InitTrack {
                info: t.clone(),
                edit: 0,
            })
            .collect();
        self.open = !tracks.is_empty();
        let _ = out; // the init segment waits for the shift (see the module doc)
    }

    fn frame(&mut self, track: usize, time_ns: i64, keyframe: bool, data: &[u8], out: &mut Sink) {
        let Some(t) = self.tracks.get_mut(track) else {
            return;
        };
        let pts = (time_ns as i128 * t.scale as i128 / 1_000_000_000) as i64;
        t.window.push_back((pts, keyframe, data.to_vec()));
        t.pts_heap.push(Reverse(pts));
        if t.window.len() > t.window_len {
            if let Some(s) = Mp4Writer::release(t, false) {
                self.take(track, s, out);
            }
        }
    }

    fn finish(&mut self, out: &mut Sink) {
        if !self.open {
            return;
        }
        self.open = false;
        for i in 0..self.tracks.len() {
            while let Some(s) = Mp4Writer::release(&mut self.tracks[i], true) {
                self.take(i, s, out);
            }
        }
        if !self.started {
            // A track that never released a sample: fix the shift with what there is.
            self.fix_shift(out);
        }
        self.flush_fragment(out);
        let ms = (self.end_ns.max(0) / 1_000_000) as u64 * MOVIE_TIMESCALE as u64 / 1000;
        out.patch(self.mehd_at, ms.to_be_bytes().to_vec());
        out.append(&self.mfra());
        self.started = false;
    }
}

#[cfg(test)]
#[path = "mp4_tests.rs"]
mod tests;
