//! What the transcoder reads from a source RTP payload, without allocating: the access units of
//! an RFC 3640 AAC-hbr payload (`mpeg4-generic`, as RTSP publishers and our GB28181 gateway send
//! AAC) and G.711 samples (RFC 3551 4.5.14).
//!
//! An AAC-hbr payload is an AU-headers section (16-bit length in bits, then per AU `sizelength`
//! bits of size and `indexlength`, later `indexdeltalength`, bits of index), then the AUs back
//! to back. Each AU is one 1024-sample frame; an index delta of `d` puts the next AU `d + 1`
//! frames later. An AU larger than what the packet holds (a fragmented AU) ends the packet: the
//! transcoder counts it as corrupt and decodes what came before it.

/// Samples of one AAC frame (AAC-LC; the core of an HE-AAC frame).
pub const AAC_FRAME: u32 = 1024;

/// An AU-headers section that does not add up (truncated, an AU past the payload, no AU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedAus;

/// Field sizes of the AU headers, from the fmtp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuHeaders {
    pub size_len: u32,
    pub index_len: u32,
    pub delta_len: u32,
}

impl AuHeaders {
    /// From `sizelength`, `indexlength`, `indexdeltalength` of an fmtp (13/3/3 when absent,
    /// what every AAC-hbr sender uses). `None`: a `sizelength` of 0 or more than 16 bits, which
    /// no AU fits.
    pub fn from_fmtp(fmtp: &str) -> Option<AuHeaders> {
        let mut h = AuHeaders {
            size_len: 13,
            index_len: 3,
            delta_len: 3,
        };
        for kv in fmtp.split(';') {
            let Some((k, v)) = kv.trim().split_once('=') else {
                continue;
            };
            let Ok(n) = v.trim().parse::<u32>() else {
                continue;
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "sizelength" => h.size_len = n,
                "indexlength" => h.index_len = n.min(16),
                "indexdeltalength" => h.delta_len = n.min(16),
                _ => {}
            }
        }
        (1..=16).contains(&h.size_len).then_some(h)
    }

    /// Calls `f(frame_offset, au)` for each AU of `payload` (`frame_offset`: frames after the
    /// packet's timestamp). `Err` when the payload is malformed (after the AUs before the
    /// fault were given).
    pub fn for_each_au(
        &self,
        payload: &[u8],
        mut f: impl FnMut(u32, &[u8]),
    ) -> Result<(), MalformedAus> {
        let [a, b, ..] = payload else {
            return Err(MalformedAus);
        };
        let header_bits = u16::from_be_bytes([*a, *b]) as usize;
        let mut data_at = 2 + header_bits.div_ceil(8);
        let headers = payload.get(2..data_at).ok_or(MalformedAus)?;
        let mut r = Bits { b: headers, pos: 0 };
        let mut offset: u32 = 0;
        let mut first = true;
        while r.pos + self.size_len as usize <= header_bits {
            let size = r.read(self.size_len).ok_or(MalformedAus)? as usize;
            if first {
                r.read(self.index_len).ok_or(MalformedAus)?;
            } else {
                let delta = r.read(self.delta_len).ok_or(MalformedAus)?;
                offset = offset.saturating_add(delta.saturating_add(1));
            }
            first = false;
            let end = data_at.checked_add(size).ok_or(MalformedAus)?;
            let au = payload.get(data_at..end).ok_or(MalformedAus)?;
            data_at = end;
            if !au.is_empty() {
                f(offset, au);
            }
        }
        if first {
            return Err(MalformedAus); // no AU header at all
        }
        Ok(())
    }
}

/// Big-endian bit reader over a byte slice.
struct Bits<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    /// Reads `n` (<= 16) bits.
    fn read(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n.min(16) {
            let byte = *self.b.get(self.pos / 8)?;
            v = (v << 1) | u32::from((byte >> (7 - (self.pos % 8))) & 1);
            self.pos += 1;
        }
        Some(v)
    }
}

/// The AAC facts of an fmtp's `config=` (AudioSpecificConfig, ISO/IEC 14496-3 1.6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    /// Audio object type (2 AAC-LC, 5 SBR / HE-AAC, 29 PS / HE-AAC v2).
    pub object_type: u32,
    /// The rate the AAC core decodes at (for HE-AAC: the core's, half the output rate).
    pub core_rate: u32,
    pub channels: u32,
}

const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

impl AacConfig {
    /// Parses the hex `config=` of an fmtp. `None`: absent or not an AudioSpecificConfig.
    pub fn from_fmtp(fmtp: &str) -> Option<AacConfig> {
        let hex = fmtp.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            k.trim().eq_ignore_ascii_case("config").then(|| v.trim())
        })?;
        let mut asc = [0u8; 16];
        if hex.len() % 2 != 0 || hex.len() < 4 || hex.len() > 2 * asc.len() {
            return None;
        }
        for (i, slot) in asc.iter_mut().enumerate().take(hex.len() / 2) {
            *slot = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        let mut r = Bits { b: &asc, pos: 0 };
        let mut object_type = r.read(5)?;
        if object_type == 31 {
            object_type = 32 + r.read(6)?;
        }
        let rate = |r: &mut Bits<'_>| -> Option<u32> {
            match r.read(4)? {
                15 => Some((r.read(12)? << 12) | r.read(12)?),
                i => AAC_RATES.get(i as usize).copied(),
            }
        };
        let core_rate = rate(&mut r)?;
        let channels = r.read(4)?;
        (core_rate > 0).then_some(AacConfig {
            object_type,
            core_rate,
            channels,
        })
    }
}

/// G.711 A-law byte to a linear sample in [-1, 1).
#[inline]
pub fn alaw_to_f32(b: u8) -> f32 {
    let a = b ^ 0x55;
    let seg = (a >> 4) & 7;
    let mant = i32::from(a & 0x0F);
    let mag = if seg == 0 {
        (mant << 4) + 8
    } else {
        ((mant << 4) + 0x108) << (seg - 1)
    };
    let v = if a & 0x80 != 0 { mag } else { -mag };
    v as f32 / 32768.0
}

/// G.711 mu-law byte to a linear sample in [-1, 1).
#[inline]
pub fn ulaw_to_f32(b: u8) -> f32 {
    let u = !b;
    let seg = (u >> 4) & 7;
    let mant = i32::from(u & 0x0F);
    let mag = (((mant << 3) + 0x84) << seg) - 0x84;
    let v = if u & 0x80 != 0 { -mag } else { mag };
    v as f32 / 32768.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_aus_with_delta() {
        let h = AuHeaders::from_fmtp("sizelength=13;indexlength=3;indexdeltalength=3").unwrap();
        // headers: 32 bits; AU sizes 2 and 1, delta 0.
        let p = [0x00, 0x20, 0x00, 0x10, 0x00, 0x08, 0xAA, 0xBB, 0xCC];
        let mut got = Vec::new();
        h.for_each_au(&p, |o, au| got.push((o, au.to_vec())))
            .unwrap();
        assert_eq!(got, vec![(0, vec![0xAA, 0xBB]), (1, vec![0xCC])]);
    }

    #[test]
    fn truncated_au_is_an_error_after_the_good_ones() {
        let h = AuHeaders::from_fmtp("").unwrap();
        let p = [0x00, 0x20, 0x00, 0x10, 0x00, 0x40, 0xAA, 0xBB, 0xCC];
        let mut n = 0;
        assert!(h.for_each_au(&p, |_, _| n += 1).is_err());
        assert_eq!(n, 1);
        assert!(h.for_each_au(&[0x00], |_, _| {}).is_err());
        assert!(AuHeaders::from_fmtp("sizelength=0").is_none());
        assert!(AuHeaders::from_fmtp("sizelength=40").is_none());
    }

    #[test]
    fn config_of_lc_and_he() {
        let lc = AacConfig::from_fmtp("streamtype=5; config=1210").unwrap();
        assert_eq!((lc.object_type, lc.core_rate, lc.channels), (2, 44100, 2));
        let he = AacConfig::from_fmtp("config=2B8A0800").unwrap();
        assert_eq!(he.object_type, 5);
        assert!(AacConfig::from_fmtp("config=1").is_none());
        assert!(AacConfig::from_fmtp("config=zz10").is_none());
        assert!(AacConfig::from_fmtp("mode=AAC-hbr").is_none());
    }

    #[test]
    fn g711_tables() {
        assert!(alaw_to_f32(0xD5).abs() < 0.001);
        assert!(ulaw_to_f32(0xFF).abs() < 0.001);
        assert!(alaw_to_f32(0xAA) > 0.9 && alaw_to_f32(0x2A) < -0.9);
        assert!(ulaw_to_f32(0x80) > 0.9 && ulaw_to_f32(0x00) < -0.9);
    }
}
