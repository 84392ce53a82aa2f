//! # MPEG-PS demuxer for GB28181 cameras (sans-IO)
//!
//! A GB28181 camera sends its media as an MPEG-2 program stream (ISO/IEC 13818-1 2.5) cut
//! into RTP payloads with no regard for its structure (GB/T 28181-2016 C.1). [`PsDemuxer`]
//! takes those payloads in order ([`PsDemuxer::push`], any split, down to one byte at a time)
//! and yields [`PsEvent`]s: which streams there are, then Annex B video access units and audio
//! frames with their 90 kHz PTS. It owns no socket, no clock and no thread.
//!
//! ## Byte layouts (ISO/IEC 13818-1, second edition, 2.5.3 / 2.5.4 / 2.4.3.6)
//!
//! ```text
//! pack header (2.5.3.3, Table 2-33), 14 bytes + stuffing:
//!   00 00 01 BA | 01 SCR[32..30] 1 SCR[29..15] 1 SCR[14..0] 1 SCR_ext(9) 1 |
//!   program_mux_rate(22) 1 1 | reserved(5) pack_stuffing_length(3) | stuffing (0xFF)*
//!   (MPEG-1, ISO/IEC 11172-1 2.4.3.2: `0010` instead of `01`, 12 bytes, no stuffing field)
//! system header (2.5.3.5, Table 2-34):  00 00 01 BB | header_length(16) | ...  skipped by length
//! PSM (2.5.4.1, Table 2-35):
//!   00 00 01 BC | length(16) | current_next(1) single_ext(1) reserved(1) version(5) |
//!   reserved(7) marker(1) | program_stream_info_length(16) descriptors |
//!   elementary_stream_map_length(16) { stream_type(8) elementary_stream_id(8)
//!   elementary_stream_info_length(16) descriptors }* | CRC_32
//! PES (2.4.3.6, Table 2-21), stream ids C0..DF audio, E0..EF video:
//!   00 00 01 id | PES_packet_length(16) | 10 scrambling(2) priority align copyright original |
//!   PTS_DTS_flags(2) ESCR ES_rate trick copy_info CRC extension | PES_header_data_length(8) |
//!   [PTS: 0010 PTS[32..30] 1 PTS[29..15] 1 PTS[14..0] 1] [DTS: 0001 ...] ... | payload
//! other ids >= BB (BB system header, BC PSM, BD/BF private, BE padding, F0..FF): 00 00 01 id
//!   | length(16) | length bytes, skipped.
//! ```
//!
//! Stream types (PSM): 0x1B H.264, 0x24 H.265, 0x90 G.711A, 0x91 G.711U, 0x0F AAC (ADTS)
//! (GB/T 28181-2016 C.1; ireader/media-server `mpeg-proto.h`). Camera quirks are from the
//! team's digest `shared/notes/gb28181.md` section 7.
//!
//! ## Theory of operation
//!
//! The demuxer is a state machine over the byte stream; it never needs a whole packet in one
//! piece. Header bytes (at most 6 + 65535 for a PSM, 9 + 255 for a PES header) are collected
//! into a small buffer; PES payload bytes are copied once, straight from the pushed slice into
//! the access unit being built (a `BytesMut` that is frozen into the event's `Bytes`).
//!
//! - **Sync.** At the start, after [`PsDemuxer::lost`] and whenever a header is invalid (an
//!   unknown start code where one was expected, a pack header with neither marker pattern, a
//!   PES whose `PES_packet_length` is shorter than its header), the demuxer counts a resync
//!   and scans for the next pack start `00 00 01 BA`; bytes scanned over are counted as
//!   skipped. So garbage between packs costs the garbage, not the following pack.
//! - **Headers.** Pack header: 14 bytes (MPEG-2) then `pack_stuffing_length` bytes skipped;
//!   MPEG-1 packs (12 bytes) are accepted too. System header, private streams 1/2 (BD/BF, where
//!   Hikvision puts its own data), padding (BE) and all other ids >= BB: skipped by their
//!   length. PSM: parsed for its ES map; descriptors are skipped by their lengths and the CRC
//!   is *not* checked (Hikvision writes `00000000`, others compute it wrongly).
//! - **PES.** Only the MPEG-2 PES syntax is read (an MPEG-1 PES is skipped and counted as
//!   dropped). `PES_packet_length` 0 (allowed for video, used by Hikvision) makes the payload
//!   unbounded: it ends at the next start code `00 00 01 xx` with `xx >= BA`. That cannot cut
//!   an Annex B stream short: H.264/H.265 NAL headers have the forbidden bit 0, so a NAL start
//!   code is followed by a byte < 0x80, and emulation prevention keeps `00 00 01` out of NAL
//!   payloads. A start code split across two pushes is found through the last three bytes
//!   consumed (`scan::Tail`) and the bytes already copied are taken back.
//! - **Streams.** The video stream is the first video id listed in the PSM with a supported
//!   stream type, else the first E0..EF PES seen; the audio stream likewise among C0..DF.
//!   PES of other ids are skipped (counted as dropped).
//! - **Access units.** A video frame may come as one PES, as several PES with the same PTS
//!   (cameras cut IDRs larger than ~64 KiB), or as one PES per NAL unit with a PTS on the first
//!   one only (Hikvision). So a video PES *with a PTS different from the open access unit's*
//!   closes it (the frame is emitted) and opens a new one; a PES with the same PTS or none
//!   appends to the open one; a PES without PTS and no open access unit is dropped. The pack
//!   header is deliberately not a boundary: one pack per frame is what GB28181 asks, but a
//!   camera that repeats the pack header inside a large frame would otherwise cut it, and
//!   waiting for the next PES header costs no latency beyond the pack header itself (both
//!   arrive in the same RTP packet). A frame is therefore emitted when the next frame's first
//!   PES header arrives; a caller that trusts the RTP marker bit can emit it at once with
//!   [`PsDemuxer::end_of_frame`]. Consequence: a camera that repeats the same PTS on
//!   consecutive frames gets them merged into one access unit (decodable, but one timestamp).
//! - **Codecs.** From the PSM when there is one. The video codec is also sniffed from the
//!   access units until one carries a parameter set or access unit delimiter
//!   ([`es::sniff_video`]), and the sniffed codec wins (Keda labels H.265 as 0x1B); until the
//!   codec is known, access units are dropped (no decoder could start on them anyway). Audio:
//!   the PSM's type, else G.711 A-law as GB28181 implies; a payload starting with a valid ADTS
//!   header makes it AAC whatever the PSM says (Dahua labels AAC as G.711). Each change of
//!   what is known is reported as [`PsEvent::StreamsKnown`] before the frames it concerns.
//! - **Keyframes.** An access unit whose first slice NAL is IDR (H.264 5) / IRAP (H.265
//!   16..=21); parameter sets are not required.
//! - **Loss.** [`PsDemuxer::lost`] (call it on an RTP sequence gap) drops the partial PES and
//!   the open access unit (its PTS is remembered so that the rest of that frame is dropped
//!   too) and resyncs at the next pack start.
//! - **Bounds.** An access unit larger than [`MAX_FRAME`] (an audio PES larger than
//!   [`MAX_AUDIO`]) is dropped and counted; the header buffer holds at most 65541 bytes; the
//!   event queue holds what one `push` produced (call [`PsDemuxer::poll`] after each push).
//!   No input panics.

mod es;
mod frames;
#[cfg(any(test, feature = "fuzzing"))]
mod fuzz;
mod headers;
mod scan;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::media::CodecName;
pub use es::{pts_to_rtp, PtsUnwrapper};
pub use headers::write_timestamp;
use headers::*;
use scan::{find_start, Hit, Tail};

#[cfg(any(test, feature = "fuzzing"))]
pub use fuzz::fuzz_check;

/// Largest video access unit kept (a 4K IDR is a few hundred KiB).
pub const MAX_FRAME: usize = 4 << 20;
/// Largest audio PES payload kept.
pub const MAX_AUDIO: usize = 256 << 10;
/// How many access units may pass without a parameter set or AUD before sniffing stops.
const MAX_SNIFF: u32 = 600;

/// Video codecs a GB28181 PS stream carries that we forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    H264,
    H265,
}

impl VideoCodec {
    pub fn codec_name(self) -> CodecName {
        match self {
            VideoCodec::H264 => CodecName::H264,
            VideoCodec::H265 => CodecName::H265,
        }
    }
}

/// Audio codecs a GB28181 PS stream carries that we forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    Pcma,
    Pcmu,
    /// ADTS frames (the payload keeps its ADTS headers).
    Aac,
}

impl AudioCodec {
    pub fn codec_name(self) -> CodecName {
        match self {
            AudioCodec::Pcma => CodecName::Pcma,
            AudioCodec::Pcmu => CodecName::Pcmu,
            AudioCodec::Aac => CodecName::Aac,
        }
    }
}

/// What the demuxer yields, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PsEvent {
    /// What is known about the streams changed (first PSM, a new PSM, a sniffed codec, the first
    /// audio PES without PSM). Comes before the first frame of a stream it describes.
    StreamsKnown {
        video: Option<VideoCodec>,
        audio: Option<AudioCodec>,
    },
    /// One access unit, Annex B (start codes as the camera wrote them).
    Video {
        pts_90k: u64,
        data: Bytes,
        keyframe: bool,
    },
    /// One audio PES payload (G.711 samples, or ADTS frames).
    Audio { pts_90k: u64, data: Bytes },
}

/// Counters since creation. `bytes` = all bytes pushed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PsStats {
    pub bytes: u64,
    /// Pack headers parsed.
    pub packs: u64,
    /// PES headers parsed (audio and video ids).
    pub pes: u64,
    /// Times sync was lost (invalid header, or [`PsDemuxer::lost`] outside of sync).
    pub resyncs: u64,
    /// Bytes discarded while looking for a pack start.
    pub skipped: u64,
    /// PES payloads or access units discarded: oversized, without PTS, of an unselected or
    /// MPEG-1 stream, before the codec was known, or cut by a loss.
    pub dropped: u64,
    pub video_frames: u64,
    pub audio_frames: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Video,
    Audio,
    Discard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Scanning for `00 00 01 BA`.
    Sync,
    /// Collecting a 4-byte start code.
    Next,
    /// Collecting a pack header.
    Pack,
    /// Collecting start code + 16-bit length.
    Length,
    /// Collecting a whole PSM of this many bytes.
    Psm(usize),
    /// Collecting a PES header; the PES_packet_length.
    PesHeader(usize),
    Skip(usize),
    Payload(usize, Target),
    Unbounded(Target),
}

#[derive(Debug, Default)]
struct Frame {
    data: BytesMut,
    pts: u64,
    open: bool,
    overflow: bool,
}

/// The demuxer of one PS stream. See the module documentation.
#[derive(Debug)]
pub struct PsDemuxer {
    state: State,
    hdr: Vec<u8>,
    tail: Tail,
    video: Frame,
    audio: Frame,
    video_id: Option<u8>,
    audio_id: Option<u8>,
    psm_video: Option<VideoCodec>,
    psm_audio: Option<AudioCodec>,
    sniffed_video: Option<VideoCodec>,
    sniff_tries: u32,
    audio_adts: Option<bool>,
    audio_seen: bool,
    announced: (Option<VideoCodec>, Option<AudioCodec>),
    video_pts: PtsUnwrapper,
    audio_pts: PtsUnwrapper,
    last_audio_pts: Option<u64>,
    lost_pts: Option<u64>,
    /// Capacity to reserve for the next access unit (the previous one's size).
    size_hint: usize,
    psm: Vec<PsmEntry>,
    events: VecDeque<PsEvent>,
    stats: PsStats,
}

impl Default for PsDemuxer {
    fn default() -> Self {
        PsDemuxer::new()
    }
}

fn is_video(id: u8) -> bool {
    (0xE0..=0xEF).contains(&id)
}

fn is_audio(id: u8) -> bool {
    (0xC0..=0xDF).contains(&id)
}

impl PsDemuxer {
    pub fn new() -> PsDemuxer {
        PsDemuxer {
            state: State::Sync,
            hdr: Vec::with_capacity(64),
            tail: Tail::default(),
            video: Frame::default(),
            audio: Frame::default(),
            video_id: None,
            audio_id: None,
            psm_video: None,
            psm_audio: None,
            sniffed_video: None,
            sniff_tries: 0,
            audio_adts: None,
            audio_seen: false,
            announced: (None, None),
            video_pts: PtsUnwrapper::default(),
            audio_pts: PtsUnwrapper::default(),
            last_audio_pts: None,
            lost_pts: None,
            size_hint: 0,
            psm: Vec::new(),
            events: VecDeque::new(),
            stats: PsStats::default(),
        }
    }

    /// The next event, if any.
    pub fn poll(&mut self) -> Option<PsEvent> {
        self.events.pop_front()
    }

    pub fn stats(&self) -> PsStats {
        self.stats
    }

    /// The video codec as currently known.
    pub fn video_codec(&self) -> Option<VideoCodec> {
        self.sniffed_video.or(self.psm_video)
    }

    /// The audio codec as currently known.
    pub fn audio_codec(&self) -> Option<AudioCodec> {
        if self.audio_adts == Some(true) {
            return Some(AudioCodec::Aac);
        }
        match (self.psm_audio, self.audio_seen) {
            (Some(c), _) => Some(c),
            (None, true) => Some(AudioCodec::Pcma),
            (None, false) => None,
        }
    }

    /// Bytes were lost before the next `push` (an RTP sequence gap): drops the partial PES and
    /// the open access unit, and resyncs at the next pack start.
    pub fn lost(&mut self) {
        if self.video.open {
            self.stats.dropped += 1;
            self.lost_pts = Some(self.video.pts);
            self.close_frame_without_emitting();
        }
        if self.audio.open {
            self.stats.dropped += 1;
            self.audio.open = false;
            self.audio.data.clear();
        }
        if self.state != State::Sync {
            self.stats.resyncs += 1;
        }
        self.hdr.clear();
        self.tail.clear();
        self.state = State::Sync;
    }

    /// A new source (a new camera session on the same demuxer): like [`lost`](Self::lost), and
    /// forgets the stream map, the codecs and the timestamps. Counters and events not yet
    /// polled are kept.
    pub fn reset(&mut self) {
        self.lost();
        let stats = self.stats;
        let events = std::mem::take(&mut self.events);
        *self = PsDemuxer::new();
        self.stats = stats;
        self.events = events;
    }

    /// Emits the open access unit now (the caller knows the frame is complete: RTP marker,
    /// end of input). Ignored in the middle of a PES with a known length.
    pub fn end_of_frame(&mut self) {
        match self.state {
            State::Payload(_, _) | State::PesHeader(_) => {}
            State::Unbounded(Target::Audio) => {
                self.end_audio();
                self.emit_video();
            }
            _ => self.emit_video(),
        }
    }

    /// Feeds the next bytes of the PS stream.
    pub fn push(&mut self, data: &[u8]) {
        self.stats.bytes += data.len() as u64;
        let mut pos = 0;
        while pos < data.len() {
            let rest = &data[pos..];
            match self.state {
                State::Sync => match find_start(&self.tail, rest, |x| x == PACK_START) {
                    Hit::Tail(k) => {
                        self.stats.skipped = self.stats.skipped.saturating_sub(k as u64);
                        self.restart_at_tail(k);
                    }
                    Hit::Data(i) => {
                        self.stats.skipped += i as u64;
                        pos += i;
                        self.tail.clear();
                        self.hdr.clear();
                        self.state = State::Next;
                    }
                    Hit::None => {
                        self.stats.skipped += rest.len() as u64;
                        self.tail.push(rest);
                        pos = data.len();
                    }
                },
                State::Next => {
                    if !self.fill(data, &mut pos, 4) {
                        continue;
                    }
                    if self.hdr[..3] != [0, 0, 1] {
                        self.resync();
                        continue;
                    }
                    match self.hdr[3] {
                        PACK_START => self.state = State::Pack,
                        PROGRAM_END => self.hdr.clear(),
                        SYSTEM_HEADER..=0xFF => self.state = State::Length,
                        _ => self.resync(),
                    }
                }
                State::Pack => {
                    if !self.fill(data, &mut pos, 5) {
                        continue;
                    }
                    let Some(n) = pack_header_len(&self.hdr) else {
                        self.resync();
                        continue;
                    };
                    if !self.fill(data, &mut pos, n) {
                        continue;
                    }
                    self.stats.packs += 1;
                    let stuffing = if n == PACK_MPEG2 {
                        pack_stuffing(&self.hdr)
                    } else {
                        0
                    };
                    self.hdr.clear();
                    self.state = if stuffing > 0 {
                        State::Skip(stuffing)
                    } else {
                        State::Next
                    };
                }
                State::Length => {
                    if !self.fill(data, &mut pos, LENGTH_HEADER) {
                        continue;
                    }
                    let id = self.hdr[3];
                    let len = u16::from_be_bytes([self.hdr[4], self.hdr[5]]) as usize;
                    if id == PSM {
                        self.state = State::Psm(LENGTH_HEADER + len);
                    } else if is_video(id) || is_audio(id) {
                        self.state = State::PesHeader(len);
                    } else {
                        self.hdr.clear();
                        self.state = if len > 0 {
                            State::Skip(len)
                        } else {
                            State::Next
                        };
                    }
                }
                State::Psm(total) => {
                    if !self.fill(data, &mut pos, total) {
                        continue;
                    }
                    self.handle_psm();
                    self.hdr.clear();
                    self.state = State::Next;
                }
                State::PesHeader(len) => self.pes_header(data, &mut pos, len),
                State::Skip(n) => {
                    let k = n.min(rest.len());
                    pos += k;
                    self.state = if n > k {
                        State::Skip(n - k)
                    } else {
                        State::Next
                    };
                }
                State::Payload(left, target) => {
                    let k = left.min(rest.len());
                    self.sink(target, &rest[..k]);
                    pos += k;
                    if left > k {
                        self.state = State::Payload(left - k, target);
                    } else {
                        self.end_pes(target);
                        self.state = State::Next;
                    }
                }
                State::Unbounded(target) => match find_start(&self.tail, rest, |x| x >= PACK_START)
                {
                    Hit::Tail(k) => {
                        self.unsink(target, k);
                        self.end_pes(target);
                        self.restart_at_tail(k);
                    }
                    Hit::Data(i) => {
                        self.sink(target, &rest[..i]);
                        pos += i;
                        self.end_pes(target);
                        self.tail.clear();
                        self.hdr.clear();
                        self.state = State::Next;
                    }
                    Hit::None => {
                        self.sink(target, rest);
                        self.tail.push(rest);
                        pos = data.len();
                    }
                },
            }
        }
    }

    /// Copies header bytes from `data[*pos..]` until the header buffer holds `need` bytes.
    fn fill(&mut self, data: &[u8], pos: &mut usize, need: usize) -> bool {
        if self.hdr.len() < need {
            let k = (need - self.hdr.len()).min(data.len() - *pos);
            self.hdr.extend_from_slice(&data[*pos..*pos + k]);
            *pos += k;
        }
        self.hdr.len() >= need
    }

    /// A start code begins with the last `k` bytes of the tail: they become the header bytes.
    fn restart_at_tail(&mut self, k: usize) {
        self.hdr.clear();
        self.hdr.extend_from_slice(&[0, 0, 1][..k.min(3)]);
        self.tail.clear();
        self.state = State::Next;
    }

    /// The header bytes are not what they should be: scan for the next pack start, starting
    /// with the header bytes after the first (they may begin one).
    fn resync(&mut self) {
        self.stats.resyncs += 1;
        self.stats.skipped += self.hdr.len() as u64;
        self.tail.clear();
        if let Some(h) = self.hdr.get(1..) {
            self.tail.push(h);
        }
        self.hdr.clear();
        self.state = State::Sync;
    }

    fn pes_header(&mut self, data: &[u8], pos: &mut usize, len: usize) {
        if !self.fill(data, pos, PES_FIXED) {
            return;
        }
        if self.hdr[6] & 0xC0 != 0x80 {
            // MPEG-1 PES syntax (or garbage): skip it when its length says where it ends.
            if len >= 3 {
                self.stats.dropped += 1;
                self.hdr.clear();
                self.state = if len > 3 {
                    State::Skip(len - 3)
                } else {
                    State::Next
                };
            } else {
                self.resync();
            }
            return;
        }
        let header_len = 3 + self.hdr[8] as usize;
        if len != 0 && len < header_len {
            self.resync();
            return;
        }
        if !self.fill(data, pos, LENGTH_HEADER + header_len) {
            return;
        }
        let id = self.hdr[3];
        let pts = parse_pes_header(&self.hdr).and_then(|h| h.pts);
        self.stats.pes += 1;
        self.hdr.clear();
        let target = self.start_pes(id, pts);
        if len == 0 {
            self.tail.clear();
            self.state = State::Unbounded(target);
        } else if len > header_len {
            self.state = State::Payload(len - header_len, target);
        } else {
            self.end_pes(target);
            self.state = State::Next;
        }
    }
}
