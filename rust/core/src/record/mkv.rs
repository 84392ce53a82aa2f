//! Matroska / WebM writer (Matroska specification, RFC 9559; WebM's subset).
//!
//! ## Layout, and why a cut file plays
//! `EBML header | Segment(unknown size) { Void(for SeekHead) | Info(Duration slot as Void) |
//! Tracks | Cluster(unknown size){ Timestamp, SimpleBlock... } ... | Cues }`.
//!
//! Everything is appended as it comes: each SimpleBlock as soon as its frame arrives, inside a
//! Cluster whose size is "unknown" while it is open, in a Segment of unknown size. A reader of
//! a file cut anywhere sees complete clusters and blocks up to the cut (players and FFmpeg
//! stop at the truncated block). When a cluster closes (the next one starts), its size is
//! patched in. A new Cluster starts at each video keyframe, after [`CLUSTER_MAX_MS`], or when a
//! block's time would not fit the 16-bit relative timestamp.
//!
//! On [`ContainerWriter::finish`]: the Cues (one CuePoint per cluster that starts with a video
//! keyframe, or per cluster for audio only) are appended, then patches set the Segment size,
//! turn the Void in Info into `Duration`, and the first Void into a SeekHead (Info, Tracks,
//! Cues). Timestamps are in ms (`TimestampScale` 1 000 000).

use super::container::{ContainerWriter, TrackInfo};
use super::ebml::{self, UNKNOWN_SIZE};
use super::params::{opus_head, waveformatex};
use super::sink::Sink;
use crate::media::{CodecName, MediaKind};

/// A cluster is closed after this long even without a keyframe.
pub const CLUSTER_MAX_MS: i64 = 2000;

const SEGMENT: u32 = 0x1853_8067;
const SEEK_HEAD: u32 = 0x114D_9B74;
const INFO: u32 = 0x1549_A966;
const TRACKS: u32 = 0x1654_AE6B;
const CLUSTER: u32 = 0x1F43_B675;
const CUES: u32 = 0x1C53_BB6B;
/// Room kept at the start of the Segment for the SeekHead (3 entries of at most 21 bytes,
/// 5 of header).
const SEEK_HEAD_ROOM: usize = 96;
/// `Duration` element: 2-byte ID, 1-byte size, 8-byte float.
const DURATION_ROOM: usize = 11;

#[derive(Debug)]
pub struct MkvWriter {
    webm: bool,
    /// Track kinds, by index (track number = index + 1).
    kinds: Vec<MediaKind>,
    has_video: bool,
    /// File offset of the Segment's size field, and of its data.
    segment_size_at: u64,
    segment_data: u64,
    seek_head_at: u64,
    duration_at: u64,
    info_at: u64,
    tracks_at: u64,
    /// Open cluster: (file offset of its size field, timestamp in ms).
    cluster: Option<(u64, i64)>,
    /// (time ms, cluster position relative to the segment data, track number).
    cues: Vec<(i64, u64, u64)>,
    /// Last block end time seen (ms), for Duration.
    end_ms: i64,
    /// Last block time per track, to guess the last frame's duration.
    last_ms: Vec<Option<i64>>,
    step_ms: Vec<i64>,
}

impl MkvWriter {
    pub fn new(webm: bool) -> MkvWriter {
        MkvWriter {
            webm,
            kinds: Vec::new(),
            has_video: false,
            segment_size_at: 0,
            segment_data: 0,
            seek_head_at: 0,
            duration_at: 0,
            info_at: 0,
            tracks_at: 0,
            cluster: None,
            cues: Vec::new(),
            end_ms: 0,
            last_ms: Vec::new(),
            step_ms: Vec::new(),
        }
    }

    fn ebml_header(&self) -> Vec<u8> {
        let mut h = Vec::new();
        ebml::uint(&mut h, 0x4286, 1);
        ebml::uint(&mut h, 0x42F7, 1);
        ebml::uint(&mut h, 0x42F2, 4);
        ebml::uint(&mut h, 0x42F3, 8);
        ebml::string(&mut h, 0x4282, if self.webm { "webm" } else { "matroska" });
        ebml::uint(&mut h, 0x4287, 4);
        ebml::uint(&mut h, 0x4285, 2);
        let mut out = Vec::new();
        ebml::elem(&mut out, 0x1A45_DFA3, &h);
        out
    }

    fn close_cluster(&mut self, out: &mut Sink) {
        if let Some((size_at, _)) = self.cluster.take() {
            let size = out.len() - size_at - 8;
            out.patch(size_at, ebml::size_fixed(size, 8));
        }
    }

    fn open_cluster(&mut self, ms: i64, cue_track: Option<u64>, out: &mut Sink) {
        self.close_cluster(out);
        let pos = out.len();
        if let Some(track) = cue_track {
            self.cues.push((ms, pos - self.segment_data, track));
        }
        let mut b = Vec::new();
        ebml::id(&mut b, CLUSTER);
        let size_at = pos + b.len() as u64;
        b.extend_from_slice(&UNKNOWN_SIZE);
        ebml::uint(&mut b, 0xE7, ms as u64);
        out.append(&b);
        self.cluster = Some((size_at, ms));
    }
}

/// One TrackEntry.
fn track_entry(number: u64, t: &TrackInfo) -> Vec<u8> {
    let mut e = Vec::new();
    ebml::uint(&mut e, 0xD7, number);
    ebml::uint(&mut e, 0x73C5, number);
    let video = t.kind() == MediaKind::Video;
    ebml::uint(&mut e, 0x83, if video { 1 } else { 2 });
    ebml::uint(&mut e, 0x9C, 0); // FlagLacing
    let (id, private) = match t.codec {
        CodecName::H264 => ("V_MPEG4/ISO/AVC", t.config.clone()),
        CodecName::H265 => ("V_MPEGH/ISO/HEVC", t.config.clone()),
        CodecName::Vp8 => ("V_VP8", Vec::new()),
        CodecName::Vp9 => ("V_VP9", Vec::new()),
        CodecName::Av1 => ("V_AV1", t.config.clone()),
        CodecName::Opus => ("A_OPUS", opus_head(t.channels, t.clock_rate)),
        CodecName::Aac => ("A_AAC", t.config.clone()),
        CodecName::Pcma => ("A_MS/ACM", waveformatex(false, t.clock_rate, t.channels)),
        CodecName::Pcmu => ("A_MS/ACM", waveformatex(true, t.clock_rate, t.channels)),
    };
    ebml::string(&mut e, 0x86, id);
    if !private.is_empty() {
        ebml::elem(&mut e, 0x63A2, &private);
    }
    if t.codec == CodecName::Opus {
        ebml::uint(&mut e, 0x56BB, 80_000_000); // SeekPreRoll: 80 ms
    }
    let mut sub = Vec::new();
    if video {
        if t.width > 0 && t.height > 0 {
            ebml::uint(&mut sub, 0xB0, t.width as u64);
            ebml::uint(&mut sub, 0xBA, t.height as u64);
        }
        ebml::elem(&mut e, 0xE0, &sub);
    } else {
        ebml::float(&mut sub, 0xB5, t.clock_rate as f64);
        ebml::uint(&mut sub, 0x9F, t.channels.max(1) as u64);
        if matches!(t.codec, CodecName::Pcma | CodecName::Pcmu) {
            ebml::uint(&mut sub, 0x6264, 8);
        }
        ebml::elem(&mut e, 0xE1, &sub);
    }
    let mut out = Vec::new();
    ebml::elem(&mut out, 0xAE, &e);
    out
}

impl ContainerWriter for MkvWriter {
    fn start(&mut self, tracks: &[TrackInfo], out: &mut Sink) {
        self.kinds = tracks.iter().map(|t| t.kind()).collect();
        self.has_video = self.kinds.contains(&MediaKind::Video);
        self.last_ms = vec![None; tracks.len()];
        self.step_ms = vec![20; tracks.len()];
        out.append(&self.ebml_header());
        let mut b = Vec::new();
        ebml::id(&mut b, SEGMENT);
        self.segment_size_at = out.len() + b.len() as u64;
        b.extend_from_slice(&UNKNOWN_SIZE);
        self.segment_data = out.len() + b.len() as u64;
        self.seek_head_at = self.segment_data;
        ebml::void(&mut b, SEEK_HEAD_ROOM);
        out.append(&b);

        self.info_at = out.len();
        let mut info = Vec::new();
        ebml::uint(&mut info, 0x2AD7B1, 1_000_000);
        ebml::string(&mut info, 0x4D80, "pms-trio");
        ebml::string(&mut info, 0x5741, "pms-trio");
        let mut b = Vec::new();
        ebml::id(&mut b, INFO);
        ebml::size(&mut b, (info.len() + DURATION_ROOM) as u64);
        b.extend_from_slice(&info);
        self.duration_at = self.info_at + b.len() as u64;
        ebml::void(&mut b, DURATION_ROOM);
        out.append(&b);

        self.tracks_at = out.len();
        let entries: Vec<u8> = (0..tracks.len())
            .flat_map(|i| track_entry(i as u64 + 1, &tracks[i]))
            .collect();
        let mut b = Vec::new();
        ebml::elem(&mut b, TRACKS, &entries);
        out.append(&b);
    }

    fn frame(&mut self, track: usize, time_ns: i64, keyframe: bool, data: &[u8], out: &mut Sink) {
        let Some(&kind) = self.kinds.get(track) else {
            return;
        };
        let ms = time_ns.max(0) / 1_000_000;
        let video_key = keyframe && kind == MediaKind::Video;
        let cut = match self.cluster {
            None => true,
            Some((_, start)) => {
                let rel = ms - start;
                video_key || rel >= CLUSTER_MAX_MS || rel > i16::MAX as i64 || rel < i16::MIN as i64
            }
        };
        if cut {
            let cue = if video_key || !self.has_video {
                Some(track as u64 + 1)
            } else {
                None
            };
            self.open_cluster(ms, cue, out);
        }
        let start = self.cluster.map_or(ms, |(_, s)| s);
        let rel = (ms - start).clamp(i16::MIN as i64, i16::MAX as i64) as i16;
        let mut b = Vec::with_capacity(data.len() + 16);
        ebml::id(&mut b, 0xA3);
        ebml::size(&mut b, data.len() as u64 + 4);
        b.push(0x80 | (track as u8 + 1)); // track number as a 1-byte vint (< 127 tracks)
        b.extend_from_slice(&rel.to_be_bytes());
        b.push(if keyframe { 0x80 } else { 0 });
        out.append(&b);
        out.append(data);
        if let Some(last) = self.last_ms[track] {
            if ms > last {
                self.step_ms[track] = ms - last;
            }
        }
        self.last_ms[track] = Some(ms);
        self.end_ms = self.end_ms.max(ms + self.step_ms[track]);
    }

    fn finish(&mut self, out: &mut Sink) {
        if self.kinds.is_empty() {
            return;
        }
        self.close_cluster(out);
        let cues_at = out.len();
        let mut points = Vec::new();
        for &(ms, pos, track) in &self.cues {
            let mut tp = Vec::new();
            ebml::uint(&mut tp, 0xF7, track);
            ebml::uint(&mut tp, 0xF1, pos);
            let mut p = Vec::new();
            ebml::uint(&mut p, 0xB3, ms.max(0) as u64);
            ebml::elem(&mut p, 0xB7, &tp);
            ebml::elem(&mut points, 0xBB, &p);
        }
        let mut b = Vec::new();
        ebml::elem(&mut b, CUES, &points);
        out.append(&b);

        let seg_size = out.len() - self.segment_data;
        out.patch(self.segment_size_at, ebml::size_fixed(seg_size, 8));
        let mut d = Vec::new();
        ebml::float(&mut d, 0x4489, self.end_ms as f64);
        out.patch(self.duration_at, d);
        let mut seeks = Vec::new();
        for (eid, at) in [
            (INFO, self.info_at),
            (TRACKS, self.tracks_at),
            (CUES, cues_at),
        ] {
            let mut s = Vec::new();
            let mut idb = Vec::new();
            ebml::id(&mut idb, eid);
            ebml::elem(&mut s, 0x53AB, &idb);
            ebml::uint(&mut s, 0x53AC, at - self.segment_data);
            ebml::elem(&mut seeks, 0x4DBB, &s);
        }
        let mut sh = Vec::new();
        ebml::elem(&mut sh, SEEK_HEAD, &seeks);
        if sh.len() + 2 <= SEEK_HEAD_ROOM {
            let rest = SEEK_HEAD_ROOM - sh.len();
            ebml::void(&mut sh, rest);
            out.patch(self.seek_head_at, sh);
        }
        self.kinds.clear();
    }
}

#[cfg(test)]
#[path = "mkv_tests.rs"]
mod tests;
