//! What the demuxer learns from the elementary streams themselves: the video codec when there
//! is no PSM (or the PSM lies), keyframes, ADTS in an "audio" stream, and PTS unwrapping.

use super::{AudioCodec, VideoCodec};
use crate::annexb::{h264_type, h265_type, nal_starts};

/// NAL units looked at per access unit before giving up (an AU starts with its AUD, parameter
/// sets and SEI; the first slice decides).
const MAX_NALS_LOOKED_AT: usize = 32;

/// Decides H.264 vs H.265 from an Annex B access unit, or `None` when it carries nothing
/// decisive. Decisive are parameter sets and access unit delimiters, which cameras send with
/// every IDR:
/// - H.265 (Rec. H.265 7.3.1.2): `nal_unit_type` 32..=35 (VPS/SPS/PPS/AUD) with
///   `forbidden_zero_bit` 0, `nuh_layer_id` 0 and `nuh_temporal_id_plus1` 1: bytes `4x 01`.
/// - H.264 (Rec. H.264 7.3.1): `nal_unit_type` 7/8/9 (SPS/PPS/AUD), forbidden bit 0.
///
/// The H.265 test runs first: its 2-byte pattern is the stricter one (H.264 SPS `67 xx`
/// reads as H.265 type 51, never 32..=35; H.265 VPS `40 01` reads as H.264 type 0).
pub fn sniff_video(au: &[u8]) -> Option<VideoCodec> {
    for nal in nal_starts(au).take(MAX_NALS_LOOKED_AT) {
        let (b0, b1) = match nal {
            [b0, b1, ..] => (*b0, *b1),
            _ => continue,
        };
        if b0 & 0x80 != 0 {
            continue;
        }
        if b0 & 0x01 == 0 && b1 == 0x01 && matches!(h265_type(nal), Some(32..=35)) {
            return Some(VideoCodec::H265);
        }
        if matches!(h264_type(nal), Some(7..=9)) {
            return Some(VideoCodec::H264);
        }
    }
    None
}

/// Whether the access unit is a keyframe: its first slice NAL is an IDR (H.264 type 5) or an
/// IRAP picture (H.265 types 16..=21).
pub fn is_keyframe(codec: VideoCodec, au: &[u8]) -> bool {
    for nal in nal_starts(au).take(MAX_NALS_LOOKED_AT) {
        match codec {
            VideoCodec::H264 => match h264_type(nal) {
                Some(5) => return true,
                Some(1..=4) => return false,
                _ => {}
            },
            VideoCodec::H265 => match h265_type(nal) {
                Some(16..=21) => return true,
                Some(0..=15) => return false,
                _ => {}
            },
        }
    }
    false
}

/// Whether an audio payload starts with an ADTS header (ISO/IEC 14496-3 1.A.2.2: syncword
/// 0xFFF, layer 00) whose `aac_frame_length` fits the payload: Dahua labels AAC as G.711 in its
/// PSM, and a camera without PSM may send AAC on 0xC0.
pub fn looks_like_adts(p: &[u8]) -> bool {
    let [b0, b1, _, b3, b4, b5, ..] = *p else {
        return false;
    };
    if b0 != 0xFF || b1 & 0xF6 != 0xF0 {
        return false;
    }
    let len = ((b3 as usize & 0x03) << 11) | (b4 as usize) << 3 | (b5 as usize >> 5);
    (7..=p.len()).contains(&len)
}

/// The audio codec of a PSM `stream_type` (GB28181-2016 C.1; ireader/media-server
/// `mpeg-proto.h`).
pub fn audio_codec(stream_type: u8) -> Option<AudioCodec> {
    match stream_type {
        0x90 => Some(AudioCodec::Pcma),
        0x91 => Some(AudioCodec::Pcmu),
        0x0F => Some(AudioCodec::Aac),
        _ => None,
    }
}

/// The video codec of a PSM `stream_type`.
pub fn video_codec(stream_type: u8) -> Option<VideoCodec> {
    match stream_type {
        0x1B => Some(VideoCodec::H264),
        0x24 => Some(VideoCodec::H265),
        _ => None,
    }
}

const PTS_MOD: i64 = 1 << 33;

/// Extends 33-bit PTS values to a monotone-ish u64: each value is placed at the distance
/// closest to the previous one (a jump of more than 2^32 ticks, 13 hours, reads as a wrap).
/// Never below 0: a value before the first one saturates.
#[derive(Debug, Clone, Copy, Default)]
pub struct PtsUnwrapper {
    last: Option<i64>,
}

impl PtsUnwrapper {
    pub fn unwrap(&mut self, pts33: u64) -> u64 {
        let v = (pts33 as i64) & (PTS_MOD - 1);
        let ext = match self.last {
            None => v,
            Some(last) => {
                let mut d = (v - last).rem_euclid(PTS_MOD);
                if d >= PTS_MOD / 2 {
                    d -= PTS_MOD;
                }
                (last + d).max(0)
            }
        };
        self.last = Some(ext);
        ext as u64
    }
}

/// The RTP timestamp of a 90 kHz PTS at `clock_rate` (90000 for video, 8000 for G.711, the
/// sample rate for AAC), rounded to the nearest tick (a muxer that floored `samples * 90000 /
/// rate` into the PTS gets its sample count back at rates up to 44.1 kHz), wrapping at 32 bits
/// as RTP does.
pub fn pts_to_rtp(pts_90k: u64, clock_rate: u32) -> u32 {
    if clock_rate == 90_000 {
        return pts_90k as u32;
    }
    ((pts_90k as u128 * clock_rate as u128 + 45_000) / 90_000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_codecs() {
        let h264 = [
            0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x65, 0x88,
        ];
        assert_eq!(sniff_video(&h264), Some(VideoCodec::H264));
        assert!(is_keyframe(VideoCodec::H264, &h264));
        let h265 = [
            0, 0, 0, 1, 0x40, 0x01, 0x0c, 0, 0, 1, 0x42, 0x01, 1, 0, 0, 1, 0x26, 0x01, 0xaf,
        ];
        assert_eq!(sniff_video(&h265), Some(VideoCodec::H265));
        assert!(is_keyframe(VideoCodec::H265, &h265));
        // P slices only: nothing decisive.
        assert_eq!(
            sniff_video(&[0, 0, 1, 0x41, 0x9a, 0, 0, 1, 0x02, 0x01, 0xd0]),
            None
        );
        assert!(!is_keyframe(VideoCodec::H264, &[0, 0, 1, 0x41, 0x9a]));
        assert!(!is_keyframe(VideoCodec::H265, &[0, 0, 1, 0x02, 0x01]));
    }

    #[test]
    fn adts() {
        let mut f = vec![0xFF, 0xF1, 0x50, 0x80, 0x01, 0x1F, 0xFC];
        f.resize(8, 0); // frame length 8
        assert!(looks_like_adts(&f));
        assert!(!looks_like_adts(&f[..7]));
        assert!(!looks_like_adts(&[0xD5; 160]));
    }

    #[test]
    fn unwraps_pts() {
        let mut u = PtsUnwrapper::default();
        assert_eq!(u.unwrap((1 << 33) - 3000), (1 << 33) - 3000);
        assert_eq!(u.unwrap(0), 1 << 33);
        assert_eq!(u.unwrap(3000), (1 << 33) + 3000);
        assert_eq!(u.unwrap(0), 1 << 33);
        let mut u = PtsUnwrapper::default();
        assert_eq!(u.unwrap(100), 100);
        assert_eq!(u.unwrap((1 << 33) - 100), 0);
        assert_eq!(pts_to_rtp(90_000, 8000), 8000);
        // 44.1 kHz frame k=1 at a floored PTS (2089.8 ticks -> 2089): sample 1024, not 1023.
        assert_eq!(pts_to_rtp(90_000 + 2089, 44_100), 44_100 + 1024);
        assert_eq!(pts_to_rtp((1 << 32) + 5, 90_000), 5);
    }
}
