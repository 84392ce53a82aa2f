//! RTCP for the forwarding path: a zero-copy reader of compound packets ([`parse_compound`]) for
//! the types the router acts on (SR, RR, generic NACK, PLI, FIR, REMB), writers that append
//! those packets to a buffer, and per-source reception statistics ([`ReceiveStats`], RFC 3550
//! A.3 and A.8) for the receiver reports we send to publishers.
//!
//! The reader never allocates and never panics: a sub-packet whose length field runs past the
//! datagram ends the walk with [`RtcpError`]; the sub-packets before it are still delivered.
//! `rtc-rtcp` types are used in tests to cross-check the wire format.

use std::time::{Duration, Instant};

/// Why (part of) an RTCP compound packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtcpError {
    /// Shorter than a header, wrong version, or a length past the end of the datagram.
    Malformed,
    /// A known packet type whose body is shorter than its fixed part.
    Truncated { packet_type: u8 },
}

impl std::fmt::Display for RtcpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RtcpError::Malformed => f.write_str("malformed rtcp compound packet"),
            RtcpError::Truncated { packet_type } => {
                write!(f, "truncated rtcp packet type {packet_type}")
            }
        }
    }
}

impl std::error::Error for RtcpError {}

/// One reception report block (RFC 3550 6.4.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportBlock {
    pub ssrc: u32,
    pub fraction_lost: u8,
    /// Cumulative number of packets lost (24-bit signed on the wire).
    pub total_lost: i32,
    pub highest_seq: u32,
    pub jitter: u32,
    pub last_sr: u32,
    pub delay_since_last_sr: u32,
}

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

fn header(buf: &mut Vec<u8>, fmt: u8, pt: u8, body_words: usize) {
    buf.push(0x80 | (fmt & 0x1f));
    buf.push(pt);
    buf.extend_from_slice(&(body_words as u16).to_be_bytes());
}

fn put32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_be_bytes());
}

fn put_block(buf: &mut Vec<u8>, r: &ReportBlock) {
    put32(buf, r.ssrc);
    buf.push(r.fraction_lost);
    let lost = r.total_lost.clamp(-0x80_0000, 0x7f_ffff) as u32;
    buf.extend_from_slice(&lost.to_be_bytes()[1..]);
    put32(buf, r.highest_seq);
    put32(buf, r.jitter);
    put32(buf, r.last_sr);
    put32(buf, r.delay_since_last_sr);
}

/// Appends a sender report without report blocks.
pub fn write_sr(
    buf: &mut Vec<u8>,
    ssrc: u32,
    ntp_time: u64,
    rtp_time: u32,
    packet_count: u32,
    octet_count: u32,
) {
    header(buf, 0, 200, 6);
    put32(buf, ssrc);
    put32(buf, (ntp_time >> 32) as u32);
    put32(buf, ntp_time as u32);
    put32(buf, rtp_time);
    put32(buf, packet_count);
    put32(buf, octet_count);
}

/// Appends a receiver report with up to 31 blocks (the rest are dropped).
pub fn write_rr(buf: &mut Vec<u8>, sender_ssrc: u32, blocks: &[ReportBlock]) {
    let blocks = &blocks[..blocks.len().min(31)];
    header(buf, blocks.len() as u8, 201, 1 + 6 * blocks.len());
    put32(buf, sender_ssrc);
    for b in blocks {
        put_block(buf, b);
    }
}

/// REMB mantissa and exponent for `bitrate`, rounded down so the announced rate never
/// exceeds `bitrate`.
pub fn remb_encode(bitrate: u64) -> (u32, u8) {
    let (mut m, mut e) = (bitrate, 0u8);
    while m >= 1 << 18 {
        m >>= 1;
        e += 1;
    }
    (m as u32, e)
}

/// Appends a REMB (draft-alvestrand-rmcat-remb) for up to 255 SSRCs.
pub fn write_remb(buf: &mut Vec<u8>, sender_ssrc: u32, bitrate: u64, ssrcs: &[u32]) {
    let ssrcs = &ssrcs[..ssrcs.len().min(255)];
    header(buf, 15, 206, 4 + ssrcs.len());
    put32(buf, sender_ssrc);
    put32(buf, 0);
    buf.extend_from_slice(b"REMB");
    let (m, e) = remb_encode(bitrate);
    buf.push(ssrcs.len() as u8);
    buf.push((e << 2) | (m >> 16) as u8);
    buf.extend_from_slice(&(m as u16).to_be_bytes());
    for s in ssrcs {
        put32(buf, *s);
    }
}

/// Appends a PLI.
pub fn write_pli(buf: &mut Vec<u8>, sender_ssrc: u32, media_ssrc: u32) {
    header(buf, 1, 206, 2);
    put32(buf, sender_ssrc);
    put32(buf, media_ssrc);
}

/// Appends a FIR with one entry.
pub fn write_fir(buf: &mut Vec<u8>, sender_ssrc: u32, media_ssrc: u32, seq_nr: u8) {
    header(buf, 4, 206, 4);
    put32(buf, sender_ssrc);
    put32(buf, 0);
    put32(buf, media_ssrc);
    buf.extend_from_slice(&[seq_nr, 0, 0, 0]);
}

/// Appends a generic NACK for `seqs` (any order; packed into PID+BLP pairs, at most 64 pairs).
pub fn write_nack(buf: &mut Vec<u8>, sender_ssrc: u32, media_ssrc: u32, seqs: &[u16]) {
    let mut pairs: [(u16, u16); 64] = [(0, 0); 64];
    let mut n = 0;
    for &s in seqs {
        if let Some(p) = pairs[..n]
            .iter_mut()
            .find(|(pid, _)| s.wrapping_sub(*pid) as i16 >= 0 && s.wrapping_sub(*pid) <= 16)
        {
            let d = s.wrapping_sub(p.0);
            if d > 0 {
                p.1 |= 1 << (d - 1);
            }
        } else if n < pairs.len() {
            pairs[n] = (s, 0);
            n += 1;
        }
    }
    if n == 0 {
        return;
    }
    header(buf, 1, 205, 2 + n);
    put32(buf, sender_ssrc);
    put32(buf, media_ssrc);
    for (pid, blp) in &pairs[..n] {
        buf.extend_from_slice(&pid.to_be_bytes());
        buf.extend_from_slice(&blp.to_be_bytes());
    }
}

/// The middle 32 bits of an NTP timestamp (the LSR field).
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// Reception statistics of one incoming RTP source (RFC 3550 A.3, A.8).
#[derive(Debug, Clone)]
pub struct ReceiveStats {
    clock_rate: u32,
    base_ext: Option<u64>,
    max_ext: u64,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Interarrival jitter in timestamp units, scaled by 16 (RFC 3550 A.8 integer form).
    jitter_q4: u64,
    last_transit: Option<i64>,
    last_sr: Option<(u32, Instant)>,
}

impl ReceiveStats {
    pub fn new(clock_rate: u32) -> Self {
        ReceiveStats {
            clock_rate: clock_rate.max(1),
            base_ext: None,
            max_ext: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter_q4: 0,
            last_transit: None,
            last_sr: None,
        }
    }

    /// Records one packet. `since_epoch` is its arrival time relative to any fixed instant;
    /// `retransmission` packets count as received but not for jitter.
    pub fn on_packet(
        &mut self,
        ext_seq: u64,
        timestamp: u32,
        since_epoch: Duration,
        retransmission: bool,
    ) {
        if self.base_ext.is_none_or(|b| ext_seq < b) {
            self.base_ext = Some(ext_seq);
        }
        self.max_ext = self.max_ext.max(ext_seq);
        self.received += 1;
        if retransmission {
            return;
        }
        let arrival = (since_epoch.as_nanos() * self.clock_rate as u128 / 1_000_000_000) as i64;
        let transit = arrival.wrapping_sub(timestamp as i64);
        if let Some(last) = self.last_transit {
            let d = transit
                .wrapping_sub(last)
                .unsigned_abs()
                .min(u32::MAX as u64);
            // J += (|D| - J) / 16, in Q4.
            self.jitter_q4 = (self.jitter_q4 as i64 + d as i64 - ((self.jitter_q4 + 8) >> 4) as i64)
                .max(0) as u64;
        }
        self.last_transit = Some(transit);
    }

    /// Records a sender report of this source received at `now`.
    pub fn on_sender_report(&mut self, ntp_time: u64, now: Instant) {
        self.last_sr = Some((ntp_middle(ntp_time), now));
    }

    /// Whether any packet was received.
    pub fn active(&self) -> bool {
        self.base_ext.is_some()
    }

    /// Makes the report block for `ssrc` and starts a new interval.
    pub fn report(&mut self, ssrc: u32, now: Instant) -> ReportBlock {
        let base = self.base_ext.unwrap_or(self.max_ext);
        let expected = self.max_ext - base + 1;
        let lost = expected as i64 - self.received as i64;
        let expected_interval = expected - self.expected_prior.min(expected);
        let received_interval = self.received - self.received_prior.min(self.received);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => {
                let d = now.saturating_duration_since(at);
                (lsr, (d.as_secs_f64() * 65536.0).min(u32::MAX as f64) as u32)
            }
            None => (0, 0),
        };
        ReportBlock {
            ssrc,
            fraction_lost,
            total_lost: lost.clamp(-0x80_0000, 0x7f_ffff) as i32,
            highest_seq: self.max_ext as u32,
            jitter: (self.jitter_q4 >> 4).min(u32::MAX as u64) as u32,
            last_sr,
            delay_since_last_sr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc_rtcp::packet::unmarshal;

    fn decode(buf: &[u8]) -> Vec<Box<dyn rtc_rtcp::packet::Packet>> {
        let mut b = bytes::Bytes::copy_from_slice(buf);
        unmarshal(&mut b).expect("rtc-rtcp parses our output")
    }

    #[test]
    fn writers_match_rtc_rtcp() {
        use rtc_rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate as Remb;
        use rtc_rtcp::receiver_report::ReceiverReport;
        let mut buf = Vec::new();
        let block = ReportBlock {
            ssrc: 5,
            fraction_lost: 12,
            total_lost: 300,
            highest_seq: 70000,
            jitter: 9,
            last_sr: 77,
            delay_since_last_sr: 65536,
        };
        write_rr(&mut buf, 1, &[block]);
        write_remb(&mut buf, 1, 33_554_431, &[5, 6]);
        let pkts = decode(&buf);
        let rr = pkts[0].as_any().downcast_ref::<ReceiverReport>().unwrap();
        assert_eq!(rr.ssrc, 1);
        assert_eq!(
            (
                rr.reports[0].ssrc,
                rr.reports[0].fraction_lost,
                rr.reports[0].total_lost
            ),
            (5, 12, 300)
        );
        assert_eq!(
            (
                rr.reports[0].last_sequence_number,
                rr.reports[0].last_sender_report
            ),
            (70000, 77)
        );
        let remb = pkts[1].as_any().downcast_ref::<Remb>().unwrap();
        assert!(
            remb.bitrate <= 33_554_431.0 && remb.bitrate > 33_000_000.0,
            "{}",
            remb.bitrate
        );
        assert_eq!(remb.ssrcs, vec![5, 6]);
        // Our own reader agrees.
        let ours: Vec<_> = parse_compound(&buf).collect::<Result<_, _>>().unwrap();
        match ours[1] {
            Rtcp::Remb { bitrate, .. } => assert!(bitrate <= 33_554_431),
            ref o => panic!("{o:?}"),
        }
        match ours[0] {
            Rtcp::ReceiverReport { mut reports, .. } => assert_eq!(reports.next(), Some(block)),
            ref o => panic!("{o:?}"),
        }
    }

    #[test]
    fn read_rtc_rtcp_output() {
        use rtc_rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
        use rtc_rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
        use rtc_rtcp::sender_report::SenderReport;
        use rtc_rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
        use rtc_shared::marshal::Marshal;
        let mut buf = Vec::new();
        let sr = SenderReport {
            ssrc: 9,
            ntp_time: 0x1122334455667788,
            rtp_time: 1000,
            packet_count: 3,
            octet_count: 300,
            ..Default::default()
        };
        buf.extend_from_slice(&sr.marshal().unwrap());
        let nack = TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: 2,
            nacks: vec![NackPair {
                packet_id: 65534,
                lost_packets: 0b101,
            }],
        };
        buf.extend_from_slice(&nack.marshal().unwrap());
        buf.extend_from_slice(
            &PictureLossIndication {
                sender_ssrc: 1,
                media_ssrc: 2,
            }
            .marshal()
            .unwrap(),
        );
        let fir = FullIntraRequest {
            sender_ssrc: 1,
            media_ssrc: 0,
            fir: vec![FirEntry {
                ssrc: 2,
                sequence_number: 1,
            }],
        };
        buf.extend_from_slice(&fir.marshal().unwrap());
        let got: Vec<_> = parse_compound(&buf).collect::<Result<_, _>>().unwrap();
        assert!(matches!(
            got[0],
            Rtcp::SenderReport {
                ssrc: 9,
                ntp_time: 0x1122334455667788,
                rtp_time: 1000,
                packet_count: 3,
                octet_count: 300,
                ..
            }
        ));
        match got[1] {
            Rtcp::Nack {
                media_ssrc: 2,
                seqs,
                ..
            } => assert_eq!(seqs.collect::<Vec<_>>(), vec![65534, 65535, 1]),
            ref o => panic!("{o:?}"),
        }
        assert_eq!(
            got[2],
            Rtcp::Pli {
                sender_ssrc: 1,
                media_ssrc: 2
            }
        );
        assert_eq!(
            got[3],
            Rtcp::Fir {
                sender_ssrc: 1,
                media_ssrc: 2
            }
        );
    }

    #[test]
    fn nack_writer_packs() {
        let mut buf = Vec::new();
        write_nack(&mut buf, 1, 2, &[65535, 0, 3, 40]);
        let got: Vec<_> = parse_compound(&buf).collect::<Result<_, _>>().unwrap();
        match got[0] {
            Rtcp::Nack { seqs, .. } => assert_eq!(seqs.collect::<Vec<_>>(), vec![65535, 0, 3, 40]),
            ref o => panic!("{o:?}"),
        }
    }

    #[test]
    fn garbage_stops() {
        let mut it = parse_compound(&[0x80, 201, 0, 9, 0, 0]);
        assert_eq!(it.next(), Some(Err(RtcpError::Malformed)));
        assert_eq!(it.next(), None);
        assert_eq!(
            parse_compound(&[0x81, 205, 0, 1, 0, 0, 0, 0]).next(),
            Some(Err(RtcpError::Truncated { packet_type: 205 }))
        );
        assert_eq!(remb_encode(10_000_000), (156_250, 6));
    }

    #[test]
    fn stats_loss_and_jitter() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(90000);
        for i in 0..10u64 {
            if i == 4 {
                continue;
            }
            s.on_packet(
                65536 + i,
                (i * 3000) as u32,
                Duration::from_millis(i * 33),
                false,
            );
        }
        s.on_sender_report(0x0000_1234_5678_0000, t0);
        let r = s.report(7, t0 + Duration::from_millis(500));
        assert_eq!(r.total_lost, 1);
        assert_eq!(r.fraction_lost, 25); // 1/10 * 256
        assert_eq!(r.highest_seq, 65536 + 9);
        assert_eq!(r.last_sr, 0x1234_5678);
        assert_eq!(r.delay_since_last_sr, 32768);
        assert!(r.jitter < 100, "{}", r.jitter);
        let r2 = s.report(7, t0);
        assert_eq!(r2.fraction_lost, 0);
    }
}
