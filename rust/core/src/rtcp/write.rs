//! The writers: each appends one RTCP packet (SR, RR, REMB, PLI, FIR, generic NACK) to a
//! buffer, so a compound packet is built by calling several in a row.

use super::ReportBlock;

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
