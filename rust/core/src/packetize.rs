//! RTP packetization of H.264 (RFC 6184) and H.265 (RFC 7798) access units in Annex B form:
//! what the GB28181 gateway does with the frames of [`crate::ps::PsDemuxer`] to make a
//! producer's RTP.
//!
//! Per access unit, NAL units in order ([`crate::annexb::nal_units`]):
//! - runs of consecutive NAL units that fit one packet together (parameter sets, AUD, SEI) go
//!   out as one aggregation packet: STAP-A (RFC 6184 5.7.1) / AP (RFC 7798 4.4.2);
//! - a NAL unit that fits alone is a single NAL unit packet (RFC 6184 5.6, RFC 7798 4.4.1);
//! - a larger one is cut into fragmentation units: FU-A (RFC 6184 5.8) / FU (RFC 7798 4.4.3);
//! - the last packet of the access unit has the marker bit; all share its timestamp.
//!
//! Sans-IO and allocation-free per packet: each packet is written into one scratch buffer the
//! packetizer owns and lent to the caller's closure, which sends or copies it. No DONL fields
//! (`sprop-max-don-diff` = 0), packetization-mode 1.

use crate::annexb::nal_units;
use crate::media::CodecName;
use crate::rtp::FIXED_HEADER;

/// Default largest RTP payload: leaves room for SRTP, header extensions and tunnels at 1500 MTU.
pub const DEFAULT_MAX_PAYLOAD: usize = 1200;

/// Packetizes H.264 or H.265 access units of one stream (one SSRC).
#[derive(Debug, Clone)]
pub struct Packetizer {
    h265: bool,
    ssrc: u32,
    payload_type: u8,
    seq: u16,
    max_payload: usize,
    buf: Vec<u8>,
}

impl Packetizer {
    /// `None` for a codec other than H.264/H.265 or `max_payload` < 16.
    pub fn new(
        codec: CodecName,
        ssrc: u32,
        payload_type: u8,
        first_seq: u16,
        max_payload: usize,
    ) -> Option<Packetizer> {
        let h265 = match codec {
            CodecName::H264 => false,
            CodecName::H265 => true,
            _ => return None,
        };
        if max_payload < 16 {
            return None;
        }
        Some(Packetizer {
            h265,
            ssrc,
            payload_type: payload_type & 0x7f,
            seq: first_seq,
            max_payload,
            buf: vec![0; FIXED_HEADER + max_payload],
        })
    }

    /// The sequence number the next packet gets.
    pub fn next_seq(&self) -> u16 {
        self.seq
    }

    /// Cuts one Annex B access unit into RTP packets with `timestamp`, handing each to
    /// `out` (valid only during the call). Returns the number of packets.
    pub fn packetize(&mut self, au: &[u8], timestamp: u32, mut out: impl FnMut(&[u8])) -> usize {
        let hdr_len = if self.h265 { 2 } else { 1 };
        let max = self.max_payload;
        let mut nals = nal_units(au).filter(|n| n.len() >= hdr_len).peekable();
        let mut sent = 0;
        while let Some(nal) = nals.next() {
            if nal.len() > max {
                sent += self.fragment(nal, nals.peek().is_none(), timestamp, &mut out);
                continue;
            }
            let fits_with_next = |n: &&[u8]| hdr_len + 2 + nal.len() + 2 + n.len() <= max;
            if !nals.peek().is_some_and(fits_with_next) {
                let p = FIXED_HEADER;
                self.buf[p..p + nal.len()].copy_from_slice(nal);
                let last = nals.peek().is_none();
                sent += self.send(nal.len(), last, timestamp, &mut out);
                continue;
            }
            // Aggregation packet: header, then (16-bit size, NAL unit)*.
            let mut at = FIXED_HEADER + hdr_len;
            let (mut f, mut nri, mut layer, mut tid) = (0u8, 0u8, u8::MAX, u8::MAX);
            let mut add = |buf: &mut [u8], n: &[u8], at: &mut usize| {
                buf[*at..*at + 2].copy_from_slice(&(n.len() as u16).to_be_bytes());
                buf[*at + 2..*at + 2 + n.len()].copy_from_slice(n);
                *at += 2 + n.len();
                f |= n[0] & 0x80;
                nri = nri.max(n[0] & 0x60);
                if let Some(&b1) = n.get(1) {
                    layer = layer.min(((n[0] & 1) << 5) | (b1 >> 3));
                    tid = tid.min(b1 & 7);
                }
            };
            add(&mut self.buf, nal, &mut at);
            while let Some(n) = nals.next_if(|n| at + 2 + n.len() <= FIXED_HEADER + max) {
                add(&mut self.buf, n, &mut at);
            }
            if self.h265 {
                self.buf[FIXED_HEADER] = f | (48 << 1) | (layer >> 5);
                self.buf[FIXED_HEADER + 1] = (layer << 3) | tid;
            } else {
                self.buf[FIXED_HEADER] = f | nri | 24;
            }
            let last = nals.peek().is_none();
            sent += self.send(at - FIXED_HEADER, last, timestamp, &mut out);
        }
        sent
    }

    /// FU-A / FU packets of one NAL unit larger than a packet.
    fn fragment(
        &mut self,
        nal: &[u8],
        last_nal: bool,
        timestamp: u32,
        out: &mut impl FnMut(&[u8]),
    ) -> usize {
        let (head, body, typ) = if self.h265 {
            (3, &nal[2..], (nal[0] >> 1) & 0x3f)
        } else {
            (2, &nal[1..], nal[0] & 0x1f)
        };
        let p = FIXED_HEADER;
        if self.h265 {
            self.buf[p] = (nal[0] & 0x81) | (49 << 1);
            self.buf[p + 1] = nal[1];
        } else {
            self.buf[p] = (nal[0] & 0xE0) | 28;
        }
        let chunk = self.max_payload - head;
        let count = body.len().div_ceil(chunk);
        for (i, piece) in body.chunks(chunk).enumerate() {
            let end = i + 1 == count;
            let fu = if i == 0 { 0x80 } else { 0 } | if end { 0x40 } else { 0 } | typ;
            self.buf[p + head - 1] = fu;
            self.buf[p + head..p + head + piece.len()].copy_from_slice(piece);
            self.send(head + piece.len(), end && last_nal, timestamp, out);
        }
        count
    }

    /// Writes the RTP header in front of the `len` payload bytes in the scratch buffer.
    fn send(
        &mut self,
        len: usize,
        marker: bool,
        timestamp: u32,
        out: &mut impl FnMut(&[u8]),
    ) -> usize {
        let b = &mut self.buf;
        b[0] = 0x80;
        b[1] = self.payload_type | if marker { 0x80 } else { 0 };
        b[2..4].copy_from_slice(&self.seq.to_be_bytes());
        b[4..8].copy_from_slice(&timestamp.to_be_bytes());
        b[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
        out(&b[..FIXED_HEADER + len]);
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp;

    /// Reassembles NAL units from payloads (single, STAP-A/AP, FU-A/FU).
    fn depacketize(h265: bool, pkts: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut nals = Vec::new();
        let mut fu: Vec<u8> = Vec::new();
        for pkt in pkts {
            let p = rtp::parse(pkt).unwrap().payload;
            let (typ, hl) = if h265 {
                ((p[0] >> 1) & 0x3f, 2)
            } else {
                (p[0] & 0x1f, 1)
            };
            match (h265, typ) {
                (false, 24) | (true, 48) => {
                    let mut at = hl;
                    while at < p.len() {
                        let n = u16::from_be_bytes([p[at], p[at + 1]]) as usize;
                        nals.push(p[at + 2..at + 2 + n].to_vec());
                        at += 2 + n;
                    }
                }
                (false, 28) | (true, 49) => {
                    let h = p[hl];
                    if h & 0x80 != 0 {
                        fu = if h265 {
                            vec![(p[0] & 0x81) | ((h & 0x3f) << 1), p[1]]
                        } else {
                            vec![(p[0] & 0xE0) | (h & 0x1f)]
                        };
                    }
                    fu.extend_from_slice(&p[hl + 1..]);
                    if h & 0x40 != 0 {
                        nals.push(std::mem::take(&mut fu));
                    }
                }
                _ => nals.push(p.to_vec()),
            }
        }
        nals
    }

    fn annexb(nals: &[Vec<u8>]) -> Vec<u8> {
        nals.iter()
            .flat_map(|n| [0, 0, 0, 1].iter().chain(n.iter()).copied())
            .collect()
    }

    fn roundtrip(codec: CodecName, nals: Vec<Vec<u8>>, max: usize) -> Vec<Vec<u8>> {
        let mut p = Packetizer::new(codec, 0x1234, 96, 65534, max).unwrap();
        let mut pkts = Vec::new();
        let n = p.packetize(&annexb(&nals), 9000, |b| pkts.push(b.to_vec()));
        assert_eq!(n, pkts.len());
        for (i, pkt) in pkts.iter().enumerate() {
            let v = rtp::parse(pkt).unwrap();
            assert!(v.payload.len() <= max);
            assert_eq!(v.marker, i + 1 == pkts.len());
            assert_eq!((v.timestamp, v.ssrc, v.payload_type), (9000, 0x1234, 96));
            assert_eq!(v.seq, 65534u16.wrapping_add(i as u16));
        }
        assert_eq!(depacketize(codec == CodecName::H265, &pkts), nals);
        pkts
    }

    #[test]
    fn h264_stap_single_and_fu_a() {
        let sps = vec![0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01];
        let pps = vec![0x68, 0xce, 0x3c, 0x80];
        let idr: Vec<u8> = [0x65]
            .into_iter()
            .chain((0..3000).map(|i| (i % 251) as u8 | 1))
            .collect();
        let pkts = roundtrip(CodecName::H264, vec![sps, pps, idr], DEFAULT_MAX_PAYLOAD);
        assert_eq!(pkts[0][12] & 0x1f, 24); // STAP-A
        assert_eq!(pkts.len(), 1 + 3);
        let small = roundtrip(CodecName::H264, vec![vec![0x41, 1, 2, 3]], 1200);
        assert_eq!(small[0][12..], [0x41, 1, 2, 3]);
        assert_eq!(roundtrip(CodecName::H264, vec![], 1200).len(), 0);
    }

    #[test]
    fn h265_ap_and_fu() {
        let vps = vec![0x40, 0x01, 0x0c, 0x01];
        let sps = vec![0x42, 0x01, 0x01, 0x01];
        let pps = vec![0x44, 0x01, 0xc1, 0x72];
        let idr: Vec<u8> = [0x26, 0x01]
            .into_iter()
            .chain((0..2500).map(|i| (i % 13) as u8 + 1))
            .collect();
        let pkts = roundtrip(CodecName::H265, vec![vps, sps, pps, idr], 1000);
        assert_eq!((pkts[0][12] >> 1) & 0x3f, 48);
        assert_eq!(pkts[0][13], 0x01);
        assert_eq!((pkts[1][12] >> 1) & 0x3f, 49);
        assert!(Packetizer::new(CodecName::Vp8, 1, 96, 0, 1200).is_none());
    }
}
