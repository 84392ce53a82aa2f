//! Audio payloads: Opus (RFC 7587) and G.711 (RFC 3551) packets are one frame each; AAC in
//! RFC 3640 AAC-hbr (`mpeg4-generic`, as RTSP publishers and our GB28181 gateway send it):
//! an AU-headers section (16-bit length in bits, then per AU `sizelength` bits of size and
//! `indexlength`/`indexdeltalength` bits of index), then the AUs back to back. Each AU is one
//! frame, `1024` samples after the previous one (an index delta adds its own). An AU fragmented
//! over several packets (a header size larger than what follows) is dropped.

use super::assembly::{Frame, SeqCheck};
use crate::media::CodecName;
use crate::rtp::RtpView;

/// Samples of one AAC frame.
const AAC_FRAME: u32 = 1024;

#[derive(Debug)]
pub struct AudioDepacketizer {
    aac: Option<AacHbr>,
    seq: SeqCheck,
    dropped: u64,
}

/// Field sizes of the AU headers, from the fmtp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AacHbr {
    size_len: u32,
    index_len: u32,
    delta_len: u32,
}

impl AacHbr {
    fn from_fmtp(fmtp: &str) -> AacHbr {
        let mut h = AacHbr {
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
                "sizelength" => h.size_len = n.min(32),
                "indexlength" => h.index_len = n.min(32),
                "indexdeltalength" => h.delta_len = n.min(32),
                _ => {}
            }
        }
        h
    }
}

/// Reads `n` (<= 32) bits big-endian from `b` at bit position `*pos`.
fn bits(b: &[u8], pos: &mut usize, n: u32) -> Option<u32> {
    let mut v: u64 = 0;
    for _ in 0..n {
        let byte = *b.get(*pos / 8)?;
        let bit = (byte >> (7 - (*pos % 8))) & 1;
        v = (v << 1) | bit as u64;
        *pos += 1;
    }
    u32::try_from(v).ok()
}

impl AudioDepacketizer {
    pub fn new(codec: CodecName, fmtp: &str) -> AudioDepacketizer {
        AudioDepacketizer {
            aac: (codec == CodecName::Aac).then(|| AacHbr::from_fmtp(fmtp)),
            seq: SeqCheck::default(),
            dropped: 0,
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn push(&mut self, pkt: &RtpView<'_>, out: &mut Vec<Frame>) {
        if self.seq.check(pkt.seq).is_none() || pkt.payload.is_empty() {
            return;
        }
        let Some(hbr) = self.aac else {
            out.push(Frame {
                rtp_ts: pkt.timestamp,
                keyframe: true,
                data: pkt.payload.to_vec(),
            });
            return;
        };
        if self.aac_aus(hbr, pkt, out).is_none() {
            self.dropped += 1;
        }
    }

    fn aac_aus(&mut self, h: AacHbr, pkt: &RtpView<'_>, out: &mut Vec<Frame>) -> Option<()> {
        let p = pkt.payload;
        let header_bits = u16::from_be_bytes([*p.first()?, *p.get(1)?]) as usize;
        let mut data_at = 2 + header_bits.div_ceil(8);
        let headers = p.get(2..data_at)?;
        let mut pos = 0;
        let mut ts = pkt.timestamp;
        let mut first = true;
        let each = (h.size_len + h.index_len.min(h.delta_len)) as usize;
        if each == 0 || h.size_len == 0 {
            return None;
        }
        while pos + h.size_len as usize <= header_bits {
            let size = bits(headers, &mut pos, h.size_len)? as usize;
            let index = if first {
                bits(headers, &mut pos, h.index_len)?
            } else {
                bits(headers, &mut pos, h.delta_len)? + 1
            };
            if !first {
                ts = ts.wrapping_add(AAC_FRAME.wrapping_mul(index));
            }
            first = false;
            let au = p.get(data_at..data_at.checked_add(size)?)?;
            data_at += size;
            if !au.is_empty() {
                out.push(Frame {
                    rtp_ts: ts,
                    keyframe: true,
                    data: au.to_vec(),
                });
            }
        }
        Some(())
    }
}
