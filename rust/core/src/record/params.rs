//! Codec configuration records the containers carry: `avcC` (ISO/IEC 14496-15 5.3.3),
//! `hvcC` (14496-15 8.3.3) built from the parameter sets, the picture size read from an SPS,
//! `OpusHead` (RFC 7845 5.1), the AAC AudioSpecificConfig (from the fmtp `config=`), and the
//! `WAVEFORMATEX` of G.711 in Matroska (`A_MS/ACM`). Pure functions over bytes; a parameter
//! set that does not parse gives `None`, never a panic.

/// Removes emulation prevention bytes (`00 00 03` -> `00 00`) from a NAL unit's payload.
fn unescape(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Exp-Golomb bit reader over an unescaped RBSP.
struct Bits<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.b.get(self.pos / 8)?;
        let v = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(v as u32)
    }
    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.pos += n;
        (self.pos <= self.b.len() * 8).then_some(())
    }
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.bits(zeros)?)
    }
    fn se(&mut self) -> Option<i32> {
        let k = self.ue()?;
        Some(if k & 1 == 1 {
            k.div_ceil(2) as i32
        } else {
            -((k / 2) as i32)
        })
    }
}

fn h264_scaling_list(r: &mut Bits<'_>, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            next = (last + r.se()? + 256) % 256;
        }
        last = if next == 0 { last } else { next };
    }
    Some(())
}

/// What an H.264 SPS says that the containers repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H264Sps {
    pub profile: u8,
    pub chroma: u32,
    pub bit_depth_luma: u32,
    pub bit_depth_chroma: u32,
    pub width: u32,
    pub height: u32,
}

/// Picture size from an H.264 SPS NAL unit (header byte included), cropping applied.
pub fn h264_size(sps: &[u8]) -> Option<(u32, u32)> {
    h264_sps(sps).map(|s| (s.width, s.height))
}

/// Parses an H.264 SPS NAL unit (header byte included) as far as the frame cropping.
pub fn h264_sps(sps: &[u8]) -> Option<H264Sps> {
    let rbsp = unescape(sps.get(1..)?);
    let r = &mut Bits { b: &rbsp, pos: 0 };
    let profile = r.bits(8)?;
    r.skip(16)?;
    r.ue()?;
    let (mut chroma, mut depth_l, mut depth_c) = (1, 8, 8);
    if high_profile(profile as u8) {
        chroma = r.ue()?;
        if chroma == 3 {
            r.skip(1)?;
        }
        depth_l = 8 + r.ue()?;
        depth_c = 8 + r.ue()?;
        r.skip(1)?;
        if r.bit()? == 1 {
            let n = if chroma == 3 { 12 } else { 8 };
            for i in 0..n {
                if r.bit()? == 1 {
                    h264_scaling_list(r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?;
        }
        1 => {
            r.skip(1)?;
            r.se()?;
            r.se()?;
            let n = r.ue()?;
            if n > 255 {
                return None;
            }
            for _ in 0..n {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.skip(1)?;
    let w_mbs = r.ue()? + 1;
    let h_units = r.ue()? + 1;
    let frame_mbs_only = r.bit()?;
    if frame_mbs_only == 0 {
        r.skip(1)?;
    }
    r.skip(1)?;
    let (mut cl, mut cr, mut ct, mut cb) = (0, 0, 0, 0);
    if r.bit()? == 1 {
        (cl, cr, ct, cb) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
    }
    let (sub_w, sub_h) = match chroma {
        0 | 3 => (1, 1),
        2 => (2, 1),
        _ => (2, 2),
    };
    let crop_x = if chroma == 0 { 1 } else { sub_w };
    let crop_y = (if chroma == 0 { 1 } else { sub_h }) * (2 - frame_mbs_only);
    let w = (w_mbs * 16).checked_sub(crop_x * (cl + cr))?;
    let h = (h_units * 16 * (2 - frame_mbs_only)).checked_sub(crop_y * (ct + cb))?;
    Some(H264Sps {
        profile: profile as u8,
        chroma,
        bit_depth_luma: depth_l,
        bit_depth_chroma: depth_c,
        width: w,
        height: h,
    })
}

/// Profiles whose SPS carries chroma format and bit depths (and whose `avcC` repeats them).
fn high_profile(p: u8) -> bool {
    matches!(
        p,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134
    )
}

/// The `profile_tier_level` fields `hvcC` repeats (12 bytes: profile space/tier/idc,
/// compatibility flags, constraint flags, level), the sub-layer count, and the size.
pub struct H265Sps {
    pub ptl: [u8; 12],
    pub sub_layers: u8,
    pub chroma: u32,
    pub bit_depth_luma: u32,
    pub bit_depth_chroma: u32,
    pub width: u32,
    pub height: u32,
}

/// Parses an H.265 SPS NAL unit (2-byte header included).
pub fn h265_sps(sps: &[u8]) -> Option<H265Sps> {
    let rbsp = unescape(sps.get(2..)?);
    let r = &mut Bits { b: &rbsp, pos: 0 };
    r.skip(4)?;
    let max_sub = r.bits(3)?;
    r.skip(1)?;
    let ptl: [u8; 12] = rbsp.get(1..13)?.try_into().ok()?;
    r.skip(96)?;
    // max_sub < 8 (3 bits): the indexes below stay inside these arrays.
    let mut sub_profile = [false; 8];
    let mut sub_level = [false; 8];
    for i in 0..max_sub as usize {
        sub_profile[i] = r.bit()? == 1;
        sub_level[i] = r.bit()? == 1;
    }
    if max_sub > 0 {
        r.skip(2 * (8 - max_sub as usize))?;
    }
    for i in 0..max_sub as usize {
        if sub_profile[i] {
            r.skip(88)?;
        }
        if sub_level[i] {
            r.skip(8)?;
        }
    }
    r.ue()?; // sps_seq_parameter_set_id
    let chroma = r.ue()?;
    if chroma == 3 {
        r.skip(1)?;
    }
    let mut w = r.ue()?;
    let mut h = r.ue()?;
    if r.bit()? == 1 {
        let (l, rt, t, b) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let (sw, sh) = match chroma {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        w = w.checked_sub(sw * (l + rt))?;
        h = h.checked_sub(sh * (t + b))?;
    }
    let depth_l = 8 + r.ue()?;
    let depth_c = 8 + r.ue()?;
    Some(H265Sps {
        ptl,
        sub_layers: max_sub as u8 + 1,
        chroma,
        bit_depth_luma: depth_l,
        bit_depth_chroma: depth_c,
        width: w,
        height: h,
    })
}

/// `AVCDecoderConfigurationRecord` from one SPS and one PPS (header bytes included); for the
/// High profiles with the chroma format and bit depths that 14496-15 5.3.3.1 adds.
pub fn avcc(sps: &[u8], pps: &[u8]) -> Option<Vec<u8>> {
    let p = sps.get(1..4)?;
    let mut v = vec![1, p[0], p[1], p[2], 0xff, 0xe1];
    v.extend_from_slice(&u16::try_from(sps.len()).ok()?.to_be_bytes());
    v.extend_from_slice(sps);
    v.push(1);
    v.extend_from_slice(&u16::try_from(pps.len()).ok()?.to_be_bytes());
    v.extend_from_slice(pps);
    if high_profile(p[0]) {
        let s = h264_sps(sps)?;
        v.push(0xfc | (s.chroma as u8 & 3));
        v.push(0xf8 | (s.bit_depth_luma.saturating_sub(8) as u8 & 7));
        v.push(0xf8 | (s.bit_depth_chroma.saturating_sub(8) as u8 & 7));
        v.push(0); // no SPS extensions
    }
    Some(v)
}

/// `HEVCDecoderConfigurationRecord` from VPS, SPS and PPS (header bytes included).
pub fn hvcc(vps: &[u8], sps: &[u8], pps: &[u8]) -> Option<Vec<u8>> {
    let s = h265_sps(sps)?;
    let mut v = vec![1];
    v.extend_from_slice(&s.ptl);
    v.extend_from_slice(&[0xf0, 0x00]); // min_spatial_segmentation_idc = 0
    v.push(0xfc); // parallelismType = 0
    v.push(0xfc | (s.chroma as u8 & 3));
    v.push(0xf8 | (s.bit_depth_luma.saturating_sub(8) as u8 & 7));
    v.push(0xf8 | (s.bit_depth_chroma.saturating_sub(8) as u8 & 7));
    // avgFrameRate 0; then constantFrameRate 0, numTemporalLayers, temporalIdNested 1,
    // lengthSizeMinusOne 3.
    v.extend_from_slice(&[0, 0]);
    v.push(((s.sub_layers & 7) << 3) | 0x04 | 0x03);
    v.push(3);
    for (t, nal) in [(32u8, vps), (33, sps), (34, pps)] {
        v.push(0x80 | t); // array_completeness = 1
        v.extend_from_slice(&1u16.to_be_bytes());
        v.extend_from_slice(&u16::try_from(nal.len()).ok()?.to_be_bytes());
        v.extend_from_slice(nal);
    }
    Some(v)
}

/// `AV1CodecConfigurationRecord` (av1C, AV1-ISOBMFF 2.3) from a sequence header OBU (with its
/// header and size field), and the maximum picture size it declares. The colour fields are
/// written for 8-bit 4:2:0 (decoders read the sequence header carried after them).
pub fn av1c(seq_obu: &[u8]) -> Option<(Vec<u8>, u32, u32)> {
    let ext = seq_obu.first()? & 0x04 != 0;
    let mut at = 1 + ext as usize;
    let n = super::depack::av1::leb128(seq_obu, &mut at)? as usize;
    let body = seq_obu.get(at..at.checked_add(n)?)?;
    let r = &mut Bits { b: body, pos: 0 };
    let profile = r.bits(3)?;
    r.skip(1)?; // still_picture
    let reduced = r.bit()? == 1;
    let (mut level, mut tier) = (0, 0);
    if reduced {
        level = r.bits(5)?;
    } else {
        let mut delay_len = 0;
        let mut decoder_model = false;
        if r.bit()? == 1 {
            // timing_info
            r.skip(64)?;
            if r.bit()? == 1 {
                // num_ticks_per_picture_minus_1: uvlc
                let mut zeros = 0;
                while r.bit()? == 0 {
                    zeros += 1;
                    if zeros >= 32 {
                        return None;
                    }
                }
                r.skip(zeros)?;
            }
            decoder_model = r.bit()? == 1;
            if decoder_model {
                delay_len = r.bits(5)? as usize + 1;
                r.skip(32 + 5 + 5)?;
            }
        }
        let display_delay = r.bit()? == 1;
        let ops = r.bits(5)? + 1;
        for i in 0..ops {
            r.skip(12)?;
            let l = r.bits(5)?;
            let t = if l > 7 { r.bit()? } else { 0 };
            if i == 0 {
                (level, tier) = (l, t);
            }
            if decoder_model && r.bit()? == 1 {
                r.skip(2 * delay_len + 1)?;
            }
            if display_delay && r.bit()? == 1 {
                r.skip(4)?;
            }
        }
    }
    let wbits = r.bits(4)? + 1;
    let hbits = r.bits(4)? + 1;
    let w = r.bits(wbits)? + 1;
    let h = r.bits(hbits)? + 1;
    let mut v = vec![
        0x81,
        ((profile as u8) << 5) | (level as u8 & 0x1f),
        ((tier as u8) << 7) | 0x0c,
        0,
    ];
    v.extend_from_slice(seq_obu);
    Some((v, w, h))
}

/// `OpusHead` for Matroska's CodecPrivate; pre-skip 0 (RTP does not say the encoder's).
pub fn opus_head(channels: u16, rate: u32) -> Vec<u8> {
    let mut v = b"OpusHead".to_vec();
    v.push(1);
    v.push(channels.clamp(1, 2) as u8);
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&0i16.to_le_bytes());
    v.push(0);
    v
}

const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// The AudioSpecificConfig from an fmtp's `config=` hex, with its sample rate and channels.
pub fn aac_config(fmtp: &str) -> Option<(Vec<u8>, u32, u16)> {
    let hex = fmtp.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case("config").then(|| v.trim())
    })?;
    if hex.len() % 2 != 0 || hex.len() < 4 || hex.len() > 128 {
        return None;
    }
    let asc = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let r = &mut Bits { b: &asc, pos: 0 };
    let mut object = r.bits(5)?;
    if object == 31 {
        object = 32 + r.bits(6)?;
    }
    let idx = r.bits(4)?;
    let rate = if idx == 15 {
        r.bits(24)?
    } else {
        *AAC_RATES.get(idx as usize)?
    };
    let channels = r.bits(4)? as u16;
    (object > 0 && rate > 0).then_some((asc, rate, channels))
}

/// `WAVEFORMATEX` of 8-bit G.711 (format tag 6 A-law, 7 mu-law), mono.
pub fn waveformatex(mu_law: bool, rate: u32, channels: u16) -> Vec<u8> {
    let ch = channels.max(1);
    let mut v = Vec::with_capacity(18);
    v.extend_from_slice(&(if mu_law { 7u16 } else { 6 }).to_le_bytes());
    v.extend_from_slice(&ch.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * ch as u32).to_le_bytes()); // bytes per second
    v.extend_from_slice(&ch.to_le_bytes()); // block align
    v.extend_from_slice(&8u16.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    // x264 High 320x240 SPS and x265 Main 320x240 SPS (made with ffmpeg from testsrc).
    const SPS: [u8; 25] = [
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0x99, 0x60,
    ];
    const SPS265: [u8; 36] = [
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x3c, 0xa0, 0x0a, 0x08, 0x0f, 0x16, 0x5b, 0xa4, 0xa4, 0xc2, 0xf0, 0x16, 0x80,
        0x80, 0x00, 0x00, 0x03, 0x00, 0x80,
    ];

    #[test]
    fn h265_sps_and_hvcc() {
        let s = h265_sps(&SPS265).expect("parses");
        assert_eq!(
            (s.width, s.height, s.chroma, s.sub_layers),
            (320, 240, 1, 1)
        );
        assert_eq!(s.ptl[0], 0x01, "Main profile");
        let c = hvcc(&[0x40, 0x01, 1], &SPS265, &[0x44, 0x01, 2]).unwrap_or_default();
        assert_eq!(c[0], 1);
        assert_eq!(c[22], 3, "three arrays");
        assert!(h265_sps(&SPS265[..10]).is_none());
    }

    #[test]
    fn h264_sps_size_and_avcc() {
        assert_eq!(h264_size(&SPS), Some((320, 240)));
        let c = avcc(&SPS, &[0x68, 0xcb, 0x83, 0xcb, 0x20]).unwrap_or_default();
        assert_eq!(&c[..6], &[1, 0x64, 0x00, 0x0d, 0xff, 0xe1]);
        assert_eq!(
            c.len(),
            6 + 2 + 25 + 1 + 2 + 5 + 4,
            "High profile: 4 more bytes"
        );
        assert_eq!(&c[c.len() - 4..], &[0xfd, 0xf8, 0xf8, 0]);
        assert_eq!(h264_size(&[0x67]), None);
        assert_eq!(h264_size(&[0x67, 100, 0, 0, 0xff, 0xff]), None);
    }

    #[test]
    fn aac_config_and_wave() {
        let (asc, rate, ch) = aac_config("streamtype=5; config=1210; sizelength=13").unwrap();
        assert_eq!((asc, rate, ch), (vec![0x12, 0x10], 44100, 2));
        assert_eq!(aac_config("config=1"), None);
        assert_eq!(aac_config("config=zz10"), None);
        let w = waveformatex(false, 8000, 1);
        assert_eq!(&w[..4], &[6, 0, 1, 0]);
        assert_eq!(w.len(), 18);
        assert_eq!(&opus_head(2, 48000)[..10], b"OpusHead\x01\x02");
    }

    #[test]
    fn av1c_from_a_sequence_header() {
        // libaom's 320x240 sequence header OBU (from tests/data/record/av1.ivf).
        let obu = [
            0x0a, 0x0b, 0x00, 0x00, 0x00, 0x04, 0x3c, 0xff, 0xbc, 0xda, 0xf9, 0x00, 0x40,
        ];
        let (c, w, h) = av1c(&obu).expect("parses");
        assert_eq!((w, h), (320, 240));
        assert_eq!(c[0], 0x81);
        assert_eq!(&c[4..], &obu);
        assert!(av1c(&obu[..5]).is_none());
    }

    #[test]
    fn unescapes_emulation_prevention() {
        assert_eq!(unescape(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
    }
}
