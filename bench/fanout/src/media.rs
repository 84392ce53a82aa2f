//! Synthetic H.264/Opus RTP (publisher side) and the cheap per-packet accounting of the players.

use rand::Rng;

pub const RTP_HEADER_LEN: usize = 12;
/// Largest RTP payload the publisher writes.
pub const MAX_PAYLOAD: usize = 1200;

/// Writes a 12-byte RTP header (no CSRC, no extension) followed by `payload` into `out`.
pub fn write_rtp(out: &mut Vec<u8>, pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32) {
    out.clear();
    out.push(0x80);
    out.push(pt | if marker { 0x80 } else { 0 });
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ts.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
}

/// Parsed fixed header fields plus the payload offset.
#[derive(Debug, Clone, Copy)]
pub struct RtpHeader {
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload_offset: usize,
    pub payload_end: usize,
}

pub fn parse_rtp(b: &[u8]) -> Option<RtpHeader> {
    if b.len() < RTP_HEADER_LEN || b[0] >> 6 != 2 {
        return None;
    }
    let cc = (b[0] & 0x0f) as usize;
    let mut off = RTP_HEADER_LEN + 4 * cc;
    if b[0] & 0x10 != 0 {
        if b.len() < off + 4 {
            return None;
        }
        let words = u16::from_be_bytes([b[off + 2], b[off + 3]]) as usize;
        off += 4 + 4 * words;
    }
    let mut end = b.len();
    if b[0] & 0x20 != 0 {
        let pad = *b.last()? as usize;
        end = end.checked_sub(pad)?;
    }
    if off > end {
        return None;
    }
    Some(RtpHeader {
        pt: b[1] & 0x7f,
        marker: b[1] & 0x80 != 0,
        seq: u16::from_be_bytes([b[2], b[3]]),
        ts: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        payload_offset: off,
        payload_end: end,
    })
}

/// True when an H.264 RTP payload (RFC 6184) starts a keyframe: an IDR slice (5) or an SPS (7),
/// alone, first in a STAP-A, or at the start of an FU-A.
pub fn h264_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        5 | 7 => true,
        24 => {
            // STAP-A: (u16 size, NAL)*
            let mut i = 1;
            while i + 2 < payload.len() {
                let size = u16::from_be_bytes([payload[i], payload[i + 1]]) as usize;
                let t = payload[i + 2] & 0x1f;
                if t == 5 || t == 7 {
                    return true;
                }
                i += 2 + size;
            }
            false
        }
        28 => payload
            .get(1)
            .is_some_and(|h| h & 0x80 != 0 && matches!(h & 0x1f, 5 | 7)),
        _ => false,
    }
}

/// Plausible parameter sets for Constrained Baseline level 3.1, 640x480.
pub const SPS: &[u8] = &[
    0x67, 0x42, 0xe0, 0x1f, 0x8d, 0x68, 0x14, 0x03, 0xda, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
    0x00, 0x03, 0x03, 0xc8, 0xf1, 0x83, 0x2a,
];
pub const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

/// 30 fps H.264 at about 1.5 Mbit/s: an IDR (after a STAP-A of SPS+PPS) every 2 s or on request,
/// P slices otherwise, each frame cut into FU-A packets of at most 1200 bytes of payload.
pub struct H264Source {
    pub ssrc: u32,
    pub pt: u8,
    seq: u16,
    ts: u32,
    frames_since_idr: u32,
    force_idr: bool,
    filler: Vec<u8>,
    filler_pos: usize,
    pub frames_sent: u64,
    pub idr_sent: u64,
    pub idr_forced: u64,
}

pub const FPS: u32 = 30;
pub const GOP_FRAMES: u32 = 60;
pub const IDR_BYTES: usize = 45_000;
/// Mean P frame; with the IDR every 60 frames the stream averages ~1.5 Mbit/s.
pub const P_BYTES: usize = 5_600;

impl H264Source {
    pub fn new(ssrc: u32, pt: u8) -> Self {
        let mut rng = rand::thread_rng();
        let filler: Vec<u8> = (0..IDR_BYTES * 2)
            .map(|_| rng.r#gen::<u8>() | 0x01)
            .collect();
        Self {
            ssrc,
            pt,
            seq: rng.r#gen(),
            ts: rng.r#gen(),
            frames_since_idr: 0,
            force_idr: true,
            filler,
            filler_pos: 0,
            frames_sent: 0,
            idr_sent: 0,
            idr_forced: 0,
        }
    }

    /// A PLI or FIR arrived: the next frame is an IDR.
    pub fn request_keyframe(&mut self) {
        if !self.force_idr {
            self.idr_forced += 1;
        }
        self.force_idr = true;
    }

    fn body(&mut self, len: usize) -> &[u8] {
        // `len` is at most one packet; the filler is twice an IDR, so the slice always fits.
        let start = self.filler_pos;
        self.filler_pos = (self.filler_pos + 131) % IDR_BYTES;
        &self.filler[start..start + len]
    }

    /// Appends the plain RTP packets of the next frame to `out` (each a fresh Vec).
    pub fn next_frame(&mut self, out: &mut Vec<Vec<u8>>) {
        let idr = self.force_idr || self.frames_since_idr >= GOP_FRAMES;
        let ts = self.ts;
        self.ts = self.ts.wrapping_add(90_000 / FPS);
        self.frames_sent += 1;
        let nal_len;
        let nal_header;
        if idr {
            self.force_idr = false;
            self.frames_since_idr = 1;
            self.idr_sent += 1;
            // STAP-A with SPS and PPS.
            let mut p = Vec::with_capacity(RTP_HEADER_LEN + 8 + SPS.len() + PPS.len());
            write_rtp(&mut p, self.pt, false, self.next_seq(), ts, self.ssrc);
            p.push(0x78); // F=0, NRI=3, type 24
            for ps in [SPS, PPS] {
                p.extend_from_slice(&(ps.len() as u16).to_be_bytes());
                p.extend_from_slice(ps);
            }
            out.push(p);
            nal_len = IDR_BYTES;
            nal_header = 0x65u8; // NRI=3, type 5
        } else {
            self.frames_since_idr += 1;
            let jitter = rand::thread_rng().gen_range(0..P_BYTES / 2);
            nal_len = P_BYTES * 3 / 4 + jitter;
            nal_header = 0x41u8; // NRI=2, type 1
        }
        // FU-A over the NAL body (NAL length minus its header byte).
        let body_len = nal_len - 1;
        let chunk = MAX_PAYLOAD - 2;
        let n = body_len.div_ceil(chunk);
        let (ssrc, pt) = (self.ssrc, self.pt);
        let mut off = 0;
        for i in 0..n {
            let len = chunk.min(body_len - off);
            let last = i + 1 == n;
            let seq = self.next_seq();
            let mut p = Vec::with_capacity(RTP_HEADER_LEN + 2 + len);
            write_rtp(&mut p, pt, last, seq, ts, ssrc);
            p.push((nal_header & 0x60) | 28);
            let mut fu = nal_header & 0x1f;
            if i == 0 {
                fu |= 0x80;
            }
            if last {
                fu |= 0x40;
            }
            p.push(fu);
            p.extend_from_slice(self.body(len));
            out.push(p);
            off += len;
        }
    }

    fn next_seq(&mut self) -> u16 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        s
    }
}

/// Opus, one 20 ms packet of ~100 bytes at a time (48 kHz clock).
pub struct OpusSource {
    pub ssrc: u32,
    pub pt: u8,
    seq: u16,
    ts: u32,
    payload: Vec<u8>,
}

impl OpusSource {
    pub fn new(ssrc: u32, pt: u8) -> Self {
        let mut rng = rand::thread_rng();
        let mut payload: Vec<u8> = (0..100).map(|_| rng.r#gen()).collect();
        payload[0] = 0xfc; // TOC: CELT fullband 20 ms, stereo, one frame
        Self {
            ssrc,
            pt,
            seq: rng.r#gen(),
            ts: rng.r#gen(),
            payload,
        }
    }

    pub fn next_packet(&mut self) -> Vec<u8> {
        let mut p = Vec::with_capacity(RTP_HEADER_LEN + self.payload.len());
        write_rtp(&mut p, self.pt, false, self.seq, self.ts, self.ssrc);
        p.extend_from_slice(&self.payload);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(960);
        p
    }
}

/// RTCP feedback the publisher acts on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Feedback {
    pub pli: u32,
    pub fir: u32,
    pub other: u32,
}

/// Walks a (decrypted) compound RTCP packet and counts PLI/FIR; everything else (RR, REMB,
/// NACK, SR, SDES) is counted as `other` and ignored.
pub fn scan_rtcp(mut b: &[u8]) -> Feedback {
    let mut f = Feedback::default();
    while b.len() >= 4 {
        let fmt = b[0] & 0x1f;
        let pt = b[1];
        let len = (u16::from_be_bytes([b[2], b[3]]) as usize + 1) * 4;
        match (pt, fmt) {
            (206, 1) => f.pli += 1,
            (206, 4) => f.fir += 1,
            _ => f.other += 1,
        }
        if len > b.len() {
            break;
        }
        b = &b[len..];
    }
    f
}

/// Per-SSRC receive accounting: unique packets, extended sequence range (loss = expected minus
/// received, the RTCP definition, so reordering costs nothing), duplicates within 128 packets.
#[derive(Debug, Clone)]
pub struct SeqTracker {
    pub ssrc: u32,
    base_ext: i64,
    max_ext: i64,
    /// Bit i set = packet `max_ext - i` received.
    window: u128,
    pub received: u64,
    pub duplicates: u64,
}

impl SeqTracker {
    pub fn new(ssrc: u32, seq: u16) -> Self {
        let ext = seq as i64 + (1 << 32);
        Self {
            ssrc,
            base_ext: ext,
            max_ext: ext,
            window: 1,
            received: 1,
            duplicates: 0,
        }
    }

    pub fn push(&mut self, seq: u16) {
        let delta = seq.wrapping_sub(self.max_ext as u16) as i16 as i64;
        let ext = self.max_ext + delta;
        if delta > 0 {
            self.window = if delta >= 128 {
                0
            } else {
                self.window << delta
            };
            self.window |= 1;
            self.max_ext = ext;
            self.received += 1;
        } else {
            let back = (-delta) as u32;
            if back < 128 {
                let bit = 1u128 << back;
                if self.window & bit != 0 {
                    self.duplicates += 1;
                    return;
                }
                self.window |= bit;
            }
            if ext < self.base_ext {
                self.base_ext = ext;
            }
            self.received += 1;
        }
    }

    pub fn expected(&self) -> u64 {
        (self.max_ext - self.base_ext + 1) as u64
    }

    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// Extended highest sequence number in RTCP form (cycles << 16 | seq).
    pub fn ext_highest(&self) -> u32 {
        (self.max_ext - (1 << 32)) as u32
    }
}

/// A receiver report for the given sources (fraction lost left at 0: the server ignores it).
pub fn receiver_report(sender_ssrc: u32, sources: &[SeqTracker]) -> Vec<u8> {
    use rtcp::receiver_report::ReceiverReport;
    use rtcp::reception_report::ReceptionReport;
    use shared::marshal::Marshal;
    let rr = ReceiverReport {
        ssrc: sender_ssrc,
        reports: sources
            .iter()
            .take(31)
            .map(|s| ReceptionReport {
                ssrc: s.ssrc,
                fraction_lost: 0,
                total_lost: s.lost().min(0x7f_ffff) as u32,
                last_sequence_number: s.ext_highest(),
                jitter: 0,
                last_sender_report: 0,
                delay: 0,
            })
            .collect(),
        profile_extensions: Default::default(),
    };
    rr.marshal().map(|b| b.to_vec()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h264_frames_are_well_formed() {
        let mut src = H264Source::new(0x1234, 102);
        let mut pkts = vec![];
        src.next_frame(&mut pkts); // forced IDR first
        let h0 = parse_rtp(&pkts[0]).unwrap();
        let p0 = &pkts[0][h0.payload_offset..];
        assert_eq!(p0[0] & 0x1f, 24, "STAP-A first");
        assert!(h264_starts_keyframe(p0));
        let h1 = parse_rtp(&pkts[1]).unwrap();
        let p1 = &pkts[1][h1.payload_offset..];
        assert_eq!(p1[0] & 0x1f, 28);
        assert_eq!(p1[1], 0x80 | 5);
        assert!(h264_starts_keyframe(p1));
        let last = parse_rtp(pkts.last().unwrap()).unwrap();
        assert!(last.marker);
        assert_eq!(pkts.last().unwrap()[last.payload_offset + 1], 0x40 | 5);
        let total: usize = pkts[1..].iter().map(|p| p.len() - RTP_HEADER_LEN - 2).sum();
        assert_eq!(total, IDR_BYTES - 1);
        for w in pkts.windows(2) {
            let (a, b) = (parse_rtp(&w[0]).unwrap(), parse_rtp(&w[1]).unwrap());
            assert_eq!(b.seq, a.seq.wrapping_add(1));
            assert_eq!(a.ts, b.ts);
            assert!(w[0].len() - a.payload_offset <= MAX_PAYLOAD);
        }
        // Then P frames, 3000 ticks apart, not keyframes.
        let mut bytes = pkts.iter().map(|p| p.len() - 12).sum::<usize>();
        let mut p = vec![];
        src.next_frame(&mut p);
        let hp = parse_rtp(&p[0]).unwrap();
        assert_eq!(hp.ts, h0.ts.wrapping_add(3000));
        assert!(!h264_starts_keyframe(&p[0][hp.payload_offset..]));
        assert_eq!(p[0][hp.payload_offset + 1], 0x80 | 1);
        // ~1.5 Mbit/s over a GOP.
        bytes += p.iter().map(|p| p.len() - 12).sum::<usize>();
        for _ in 2..GOP_FRAMES {
            let mut q = vec![];
            src.next_frame(&mut q);
            bytes += q.iter().map(|p| p.len() - 12).sum::<usize>();
        }
        let bps = bytes as f64 * 8.0 / 2.0;
        assert!((1.3e6..1.7e6).contains(&bps), "{bps}");
        assert_eq!(src.idr_sent, 1);
        src.request_keyframe();
        let mut q = vec![];
        src.next_frame(&mut q);
        assert_eq!(src.idr_sent, 2);
    }

    #[test]
    fn seq_tracker_counts_loss_and_reordering() {
        let mut t = SeqTracker::new(1, 65530);
        for s in [65531u16, 65533, 65532, 65535, 0, 1, 1, 3] {
            t.push(s);
        }
        // 65530..=3 is 10 numbers; 65534 and 2 missing; one duplicate.
        assert_eq!(t.expected(), 10);
        assert_eq!(t.received, 8);
        assert_eq!(t.lost(), 2);
        assert_eq!(t.duplicates, 1);
        assert_eq!(t.ext_highest(), (1 << 16) | 3);
        t.push(65529); // late packet from before the first one
        assert_eq!(t.expected(), 11);
        assert_eq!(t.lost(), 2);
    }

    #[test]
    fn rtcp_scan_and_rr() {
        // PLI (PT 206 FMT 1, length 2) after an RR.
        let rr = receiver_report(7, &[SeqTracker::new(9, 100)]);
        let mut b = rr.clone();
        b.extend_from_slice(&[0x81, 206, 0, 2, 0, 0, 0, 7, 0, 0, 0, 9]);
        b.extend_from_slice(&[
            0x84, 206, 0, 4, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 9, 1, 0, 0, 0,
        ]);
        let f = scan_rtcp(&b);
        assert_eq!(
            f,
            Feedback {
                pli: 1,
                fir: 1,
                other: 1
            }
        );
    }
}
