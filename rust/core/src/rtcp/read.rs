//! The reader of compound packets: [`parse_compound`] walks the sub-packets and yields an
//! [`Rtcp`] for each, borrowing from the datagram (report blocks and NACK sequence numbers are
//! read lazily). It never allocates and never panics.

use super::{ReportBlock, RtcpError};

/// The report blocks of an SR or RR, read lazily.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlocks<'a>(&'a [u8]);

impl<'a> Iterator for ReportBlocks<'a> {
    type Item = ReportBlock;
    fn next(&mut self) -> Option<ReportBlock> {
        if self.0.len() < 24 {
            return None;
        }
        let b = &self.0[..24];
        self.0 = &self.0[24..];
        let lost = u32::from_be_bytes([0, b[5], b[6], b[7]]);
        // Sign-extend 24 bits.
        let total_lost = ((lost << 8) as i32) >> 8;
        Some(ReportBlock {
            ssrc: be32(b, 0),
            fraction_lost: b[4],
            total_lost,
            highest_seq: be32(b, 8),
            jitter: be32(b, 12),
            last_sr: be32(b, 16),
            delay_since_last_sr: be32(b, 20),
        })
    }
}

/// The lost sequence numbers of a generic NACK (PID + BLP pairs), read lazily.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NackSeqs<'a> {
    fci: &'a [u8],
    pid: u16,
    blp: u16,
    /// Next bit to look at: 0 is PID itself, 1..=16 are BLP bits.
    bit: u8,
}

impl<'a> NackSeqs<'a> {
    fn new(fci: &'a [u8]) -> Self {
        NackSeqs {
            fci,
            pid: 0,
            blp: 0,
            bit: 17,
        }
    }
}

impl Iterator for NackSeqs<'_> {
    type Item = u16;
    fn next(&mut self) -> Option<u16> {
        loop {
            if self.bit > 16 {
                if self.fci.len() < 4 {
                    return None;
                }
                self.pid = u16::from_be_bytes([self.fci[0], self.fci[1]]);
                self.blp = u16::from_be_bytes([self.fci[2], self.fci[3]]);
                self.fci = &self.fci[4..];
                self.bit = 0;
            }
            let bit = self.bit;
            self.bit += 1;
            if bit == 0 {
                return Some(self.pid);
            }
            if self.blp & (1 << (bit - 1)) != 0 {
                return Some(self.pid.wrapping_add(bit as u16));
            }
        }
    }
}

/// One RTCP packet of a compound, as far as the router cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rtcp<'a> {
    SenderReport {
        ssrc: u32,
        ntp_time: u64,
        rtp_time: u32,
        packet_count: u32,
        octet_count: u32,
        reports: ReportBlocks<'a>,
    },
    ReceiverReport {
        ssrc: u32,
        reports: ReportBlocks<'a>,
    },
    Nack {
        sender_ssrc: u32,
        media_ssrc: u32,
        seqs: NackSeqs<'a>,
    },
    Pli {
        sender_ssrc: u32,
        media_ssrc: u32,
    },
    /// FIR: the SSRC of the first FCI entry (the media SSRC field of a FIR is 0).
    Fir {
        sender_ssrc: u32,
        media_ssrc: u32,
    },
    Remb {
        sender_ssrc: u32,
        bitrate: u64,
    },
    /// Any other packet type (SDES, BYE, XR, TWCC, ...), by RTCP packet type and FMT/count.
    Other {
        packet_type: u8,
        fmt: u8,
    },
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Walks a compound RTCP packet. Yields `Err` once and stops at the first malformed header.
pub fn parse_compound(buf: &[u8]) -> CompoundIter<'_> {
    CompoundIter { rest: buf }
}

/// Iterator returned by [`parse_compound`].
#[derive(Debug, Clone)]
pub struct CompoundIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for CompoundIter<'a> {
    type Item = Result<Rtcp<'a>, RtcpError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let b = self.rest;
        if b.len() < 4 || b[0] >> 6 != 2 {
            self.rest = &[];
            return Some(Err(RtcpError::Malformed));
        }
        let len = (u16::from_be_bytes([b[2], b[3]]) as usize + 1) * 4;
        if len > b.len() {
            self.rest = &[];
            return Some(Err(RtcpError::Malformed));
        }
        self.rest = &b[len..];
        let mut body = &b[4..len];
        if b[0] & 0x20 != 0 {
            let pad = body.last().copied().unwrap_or(0) as usize;
            if pad == 0 || pad > body.len() {
                return Some(Err(RtcpError::Malformed));
            }
            body = &body[..body.len() - pad];
        }
        Some(parse_one(b[0] & 0x1f, b[1], body))
    }
}

fn parse_one(fmt: u8, pt: u8, body: &[u8]) -> Result<Rtcp<'_>, RtcpError> {
    let need = |n: usize| {
        if body.len() < n {
            Err(RtcpError::Truncated { packet_type: pt })
        } else {
            Ok(())
        }
    };
    Ok(match (pt, fmt) {
        (200, count) => {
            need(24)?;
            let blocks = &body[24..];
            let n = (count as usize * 24).min(blocks.len() / 24 * 24);
            Rtcp::SenderReport {
                ssrc: be32(body, 0),
                ntp_time: (be32(body, 4) as u64) << 32 | be32(body, 8) as u64,
                rtp_time: be32(body, 12),
                packet_count: be32(body, 16),
                octet_count: be32(body, 20),
                reports: ReportBlocks(&blocks[..n]),
            }
        }
        (201, count) => {
            need(4)?;
            let blocks = &body[4..];
            let n = (count as usize * 24).min(blocks.len() / 24 * 24);
            Rtcp::ReceiverReport {
                ssrc: be32(body, 0),
                reports: ReportBlocks(&blocks[..n]),
            }
        }
        (205, 1) => {
            need(8)?;
            Rtcp::Nack {
                sender_ssrc: be32(body, 0),
                media_ssrc: be32(body, 4),
                seqs: NackSeqs::new(&body[8..]),
            }
        }
        (206, 1) => {
            need(8)?;
            Rtcp::Pli {
                sender_ssrc: be32(body, 0),
                media_ssrc: be32(body, 4),
            }
        }
        (206, 4) => {
            need(16)?;
            Rtcp::Fir {
                sender_ssrc: be32(body, 0),
                media_ssrc: be32(body, 8),
            }
        }
        (206, 15) if body.len() >= 16 && &body[8..12] == b"REMB" => {
            let exp = body[13] >> 2;
            let mantissa = u32::from_be_bytes([0, body[13] & 3, body[14], body[15]]) as u64;
            Rtcp::Remb {
                sender_ssrc: be32(body, 0),
                bitrate: mantissa.checked_shl(exp as u32).unwrap_or(u64::MAX),
            }
        }
        (packet_type, fmt) => Rtcp::Other { packet_type, fmt },
    })
}
