//! RTP packet helpers for the forwarding path: a zero-copy header view ([`RtpView`]), the
//! rewrite that writes one forwarded packet into a caller-owned buffer ([`write_packet`]), and
//! sequence-number unwrapping ([`SeqUnwrapper`]).
//!
//! Owns no state beyond the unwrapper; allocates nothing. Every parse is bounds-checked: a
//! header that claims more bytes than the packet holds (CSRC count, extension length, padding
//! length) is an [`RtpError`], never a panic.

/// Why an RTP packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtpError {
    /// Shorter than the fixed 12-byte header.
    TooShort,
    /// Version is not 2.
    BadVersion,
    /// The CSRC list or the header extension runs past the end of the packet.
    HeaderOverrun,
    /// The padding count is 0 or larger than what follows the header.
    BadPadding,
}

impl std::fmt::Display for RtpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            RtpError::TooShort => "rtp packet shorter than 12 bytes",
            RtpError::BadVersion => "rtp version is not 2",
            RtpError::HeaderOverrun => "rtp csrc list or header extension past the end",
            RtpError::BadPadding => "rtp padding length invalid",
        };
        f.write_str(s)
    }
}

impl std::error::Error for RtpError {}

/// A parsed view over one RTP packet. `payload` excludes the padding; `padding` is the number
/// of padding bytes (0 when the P bit is clear).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpView<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// The CSRC list as raw bytes (4 per CSRC).
    pub csrcs: &'a [u8],
    /// `(profile, data)` of the header extension, when the X bit is set.
    pub extension: Option<(u16, &'a [u8])>,
    pub payload: &'a [u8],
    pub padding: u8,
}

/// Size of the fixed RTP header.
pub const FIXED_HEADER: usize = 12;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

/// Parses one RTP packet without copying.
pub fn parse(pkt: &[u8]) -> Result<RtpView<'_>, RtpError> {
    if pkt.len() < FIXED_HEADER {
        return Err(RtpError::TooShort);
    }
    let b0 = pkt[0];
    if b0 >> 6 != 2 {
        return Err(RtpError::BadVersion);
    }
    let has_padding = b0 & 0x20 != 0;
    let has_ext = b0 & 0x10 != 0;
    let cc = (b0 & 0x0f) as usize;
    let b1 = pkt[1];
    let mut off = FIXED_HEADER + 4 * cc;
    if off > pkt.len() {
        return Err(RtpError::HeaderOverrun);
    }
    let csrcs = &pkt[FIXED_HEADER..off];
    let extension = if has_ext {
        let profile = be16(pkt, off).ok_or(RtpError::HeaderOverrun)?;
        let words = be16(pkt, off + 2).ok_or(RtpError::HeaderOverrun)? as usize;
        let start = off + 4;
        let end = start + 4 * words;
        if end > pkt.len() {
            return Err(RtpError::HeaderOverrun);
        }
        off = end;
        Some((profile, &pkt[start..end]))
    } else {
        None
    };
    let mut end = pkt.len();
    let mut padding = 0u8;
    if has_padding {
        // `end > off` is not guaranteed: a header-only packet with P set has no count byte.
        if end <= off {
            return Err(RtpError::BadPadding);
        }
        padding = pkt[end - 1];
        if padding == 0 || padding as usize > end - off {
            return Err(RtpError::BadPadding);
        }
        end -= padding as usize;
    }
    Ok(RtpView {
        marker: b1 & 0x80 != 0,
        payload_type: b1 & 0x7f,
        seq: u16::from_be_bytes([pkt[2], pkt[3]]),
        timestamp: u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]),
        ssrc: u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]),
        csrcs,
        extension,
        payload: &pkt[off..end],
        padding,
    })
}

/// Reads the SSRC and payload type of something that looks like RTP, without a full parse.
pub fn peek_ssrc_pt(pkt: &[u8]) -> Option<(u32, u8)> {
    Some((be32(pkt, 8)?, *pkt.get(1)? & 0x7f))
}

/// The header fields of one packet written by [`write_packet`].
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    pub ssrc: u32,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    /// Writes a one-byte header extension (RFC 8285) with this `(id, value)`: the consumer's
    /// `mid`. `id` must be 1..=14 and the value 1..=16 bytes; otherwise it is skipped.
    pub mid: Option<(u8, &'a [u8])>,
    /// For an RTX packet (RFC 4588): the original sequence number, written before the payload.
    pub osn: Option<u16>,
}

/// Upper bound of the bytes [`write_packet`] adds on top of CSRCs + payload + padding.
pub const MAX_WRITE_OVERHEAD: usize = FIXED_HEADER + 4 + 20 + 2;

/// Writes `hdr` + `csrcs` + (OSN) + `payload` + `padding` bytes of padding into `out`.
/// Returns the packet length, or `None` when `out` is too small (nothing useful written).
pub fn write_packet(
    out: &mut [u8],
    hdr: &Header<'_>,
    csrcs: &[u8],
    payload: &[u8],
    padding: u8,
) -> Option<usize> {
    let cc = csrcs.len() / 4;
    if cc > 15 || !csrcs.len().is_multiple_of(4) {
        return None;
    }
    let mid = hdr
        .mid
        .filter(|(id, v)| (1..=14).contains(id) && (1..=16).contains(&v.len()));
    let ext_len = match mid {
        // 4-byte extension header + element header + value, padded to 32 bits.
        Some((_, v)) => 4 + (1 + v.len()).div_ceil(4) * 4,
        None => 0,
    };
    let osn_len = if hdr.osn.is_some() { 2 } else { 0 };
    let total = FIXED_HEADER + csrcs.len() + ext_len + osn_len + payload.len() + padding as usize;
    if out.len() < total {
        return None;
    }
    out[0] =
        0x80 | if padding > 0 { 0x20 } else { 0 } | if mid.is_some() { 0x10 } else { 0 } | cc as u8;
    out[1] = (hdr.payload_type & 0x7f) | if hdr.marker { 0x80 } else { 0 };
    out[2..4].copy_from_slice(&hdr.seq.to_be_bytes());
    out[4..8].copy_from_slice(&hdr.timestamp.to_be_bytes());
    out[8..12].copy_from_slice(&hdr.ssrc.to_be_bytes());
    let mut at = FIXED_HEADER;
    out[at..at + csrcs.len()].copy_from_slice(csrcs);
    at += csrcs.len();
    if let Some((id, v)) = mid {
        let words = ((ext_len - 4) / 4) as u16;
        out[at..at + 2].copy_from_slice(&[0xBE, 0xDE]);
        out[at + 2..at + 4].copy_from_slice(&words.to_be_bytes());
        out[at + 4] = (id << 4) | (v.len() as u8 - 1);
        out[at + 5..at + 5 + v.len()].copy_from_slice(v);
        out[at + 5 + v.len()..at + ext_len].fill(0);
        at += ext_len;
    }
    if let Some(osn) = hdr.osn {
        out[at..at + 2].copy_from_slice(&osn.to_be_bytes());
        at += 2;
    }
    out[at..at + payload.len()].copy_from_slice(payload);
    at += payload.len();
    if padding > 0 {
        let p = padding as usize;
        out[at..at + p - 1].fill(0);
        out[at + p - 1] = padding;
        at += p;
    }
    Some(at)
}

/// Extends 16-bit sequence numbers to 64 bits (RFC 3550 A.1 style, without probation).
/// The first packet is placed at cycle 1 so that a slightly older packet does not underflow.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeqUnwrapper {
    highest: Option<u64>,
}

impl SeqUnwrapper {
    /// The extended sequence number of `seq` relative to the highest seen so far; updates it.
    pub fn unwrap(&mut self, seq: u16) -> u64 {
        let ext = self.peek(seq);
        if self.highest.is_none_or(|h| ext > h) {
            self.highest = Some(ext);
        }
        ext
    }

    /// Like [`unwrap`](Self::unwrap) without updating.
    pub fn peek(&self, seq: u16) -> u64 {
        match self.highest {
            None => (1u64 << 16) + seq as u64,
            Some(h) => {
                let delta = seq.wrapping_sub(h as u16) as i16 as i64;
                // Saturate instead of underflowing on a packet far in the past.
                (h as i64 + delta).max(0) as u64
            }
        }
    }

    /// The highest extended sequence number seen.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(cc: u8, ext: Option<&[u8]>, payload: &[u8], pad: u8) -> Vec<u8> {
        let mut v = vec![0x80 | cc, 96 | 0x80, 0x12, 0x34, 0, 0, 0x10, 0, 1, 2, 3, 4];
        for i in 0..cc {
            v.extend_from_slice(&[0, 0, 0, i]);
        }
        if let Some(e) = ext {
            v[0] |= 0x10;
            v.extend_from_slice(&[0xBE, 0xDE]);
            v.extend_from_slice(&((e.len() / 4) as u16).to_be_bytes());
            v.extend_from_slice(e);
        }
        v.extend_from_slice(payload);
        if pad > 0 {
            v[0] |= 0x20;
            v.extend(std::iter::repeat_n(0, pad as usize - 1));
            v.push(pad);
        }
        v
    }

    #[test]
    fn parse_full() {
        let p = pkt(2, Some(&[0x10, 0xAA, 0, 0]), b"hello", 3);
        let v = parse(&p).unwrap();
        assert!(v.marker);
        assert_eq!(v.payload_type, 96);
        assert_eq!(v.seq, 0x1234);
        assert_eq!(v.timestamp, 0x1000);
        assert_eq!(v.ssrc, 0x01020304);
        assert_eq!(v.csrcs.len(), 8);
        assert_eq!(v.extension.unwrap().1, &[0x10, 0xAA, 0, 0]);
        assert_eq!(v.payload, b"hello");
        assert_eq!(v.padding, 3);
    }

    #[test]
    fn parse_lies() {
        let mut p = pkt(0, None, b"x", 0);
        p[0] |= 0x0f; // 15 CSRCs claimed
        assert_eq!(parse(&p), Err(RtpError::HeaderOverrun));
        let mut p = pkt(0, Some(&[0, 0, 0, 0]), b"", 0);
        p[15] = 200; // extension length beyond the packet
        assert_eq!(parse(&p), Err(RtpError::HeaderOverrun));
        let mut p = pkt(0, None, b"ab", 2);
        *p.last_mut().unwrap() = 9; // padding longer than the payload
        assert_eq!(parse(&p), Err(RtpError::BadPadding));
        *p.last_mut().unwrap() = 0;
        assert_eq!(parse(&p), Err(RtpError::BadPadding));
        let mut h = pkt(0, None, b"", 0);
        h[0] |= 0x20; // P set, no bytes after the header
        assert_eq!(parse(&h), Err(RtpError::BadPadding));
        assert_eq!(parse(&[0x80; 11]), Err(RtpError::TooShort));
        assert_eq!(parse(&[0x40; 12]), Err(RtpError::BadVersion));
    }

    #[test]
    fn write_roundtrip_with_mid_and_osn() {
        let mut out = [0u8; 200];
        let hdr = Header {
            ssrc: 7,
            payload_type: 97,
            seq: 65535,
            timestamp: 42,
            marker: true,
            mid: Some((3, b"v0")),
            osn: Some(0xABCD),
        };
        let n = write_packet(&mut out, &hdr, &[0, 0, 0, 9], b"data", 4).unwrap();
        let v = parse(&out[..n]).unwrap();
        assert_eq!(
            (v.ssrc, v.payload_type, v.seq, v.timestamp, v.marker),
            (7, 97, 65535, 42, true)
        );
        assert_eq!(v.csrcs, &[0, 0, 0, 9]);
        let (profile, ext) = v.extension.unwrap();
        assert_eq!(profile, 0xBEDE);
        assert_eq!(&ext[..3], &[0x31, b'v', b'0']);
        assert_eq!(&v.payload[..2], &[0xAB, 0xCD]);
        assert_eq!(&v.payload[2..], b"data");
        assert_eq!(v.padding, 4);
        assert!(write_packet(&mut out[..10], &hdr, &[], b"x", 0).is_none());
    }

    #[test]
    fn unwrap_wraps() {
        let mut u = SeqUnwrapper::default();
        let a = u.unwrap(65534);
        assert_eq!(u.unwrap(65535), a + 1);
        assert_eq!(u.unwrap(0), a + 2);
        assert_eq!(u.unwrap(65535), a + 1); // late packet
        assert_eq!(u.highest(), Some(a + 2));
        assert_eq!(u.unwrap(5), a + 7);
    }
}
