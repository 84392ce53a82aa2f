//! The transcoder's fuzz invariant (`fuzz/fuzz_targets/transcode.rs`, and the corpus replay in
//! `tests/fuzz_corpus_transcode.rs`): any byte sequence, read as RTP packets of one source
//! track (AAC with a config that may lie, G.711) and RTCP, run through the depacketizer, the
//! decoder and the encoder, never panics; every Opus packet that comes out is RTP of our SSRC
//! and payload type whose sequence numbers follow each other by one, and every sender report
//! is one of ours.
//!
//! Input layout: byte 0 picks the source; then records of `[len][flags][len bytes]`. Flags bit 0:
//! RTCP (a sender report whose RTP time is the payload's first four bytes) instead of RTP; bit 1:
//! wrap the bytes as one AU with a well-formed AU-headers section (so the decoder, not the
//! depacketizer, sees them); bits 2-3: sequence step (0..=3, 0 repeats a packet); bits 4-7:
//! timestamp step in frames (0..=15, a gap or a repeat).

use super::{OpusSpec, SourceSpec, Transcoder};
use crate::media::CodecName;
use crate::rtcp::{self, Rtcp};

const SOURCES: [(CodecName, u32, &str); 8] = [
    (
        CodecName::Aac,
        44_100,
        "sizelength=13;indexlength=3;indexdeltalength=3;config=1210",
    ),
    (
        CodecName::Aac,
        16_000,
        "sizelength=13;indexlength=3;indexdeltalength=3;config=1408",
    ),
    // Says mono; frames may be stereo.
    (
        CodecName::Aac,
        48_000,
        "sizelength=13;indexlength=3;indexdeltalength=3;config=1188",
    ),
    // HE-AAC config (the core is decoded), clock at the output rate.
    (
        CodecName::Aac,
        44_100,
        "sizelength=13;indexlength=3;indexdeltalength=3;config=2B920800",
    ),
    // Odd AU header sizes.
    (
        CodecName::Aac,
        8_000,
        "sizelength=6;indexlength=2;indexdeltalength=2;config=1588",
    ),
    (CodecName::Pcma, 8_000, ""),
    (CodecName::Pcmu, 8_000, ""),
    (CodecName::Pcma, 16_000, ""),
];

const SSRC: u32 = 0x0A0B_0C0D;
const PT: u8 = 111;

/// Runs the invariant of the module doc on `data`. Panics when it does not hold. Returns the
/// Opus packets made.
pub fn fuzz_check(data: &[u8]) -> u64 {
    let Some((&sel, mut rest)) = data.split_first() else {
        return 0;
    };
    let (codec, clock_rate, fmtp) = SOURCES[(sel & 7) as usize];
    let source = SourceSpec {
        codec,
        clock_rate,
        fmtp: fmtp.to_string(),
    };
    let opus = OpusSpec {
        ssrc: SSRC,
        payload_type: PT,
        first_seq: 65_530,
        ts_base: 0xFFFF_F000,
    };
    let Ok(mut t) = Transcoder::new(source, opus) else {
        return 0;
    };
    let mut seq: u16 = u16::from(sel) << 8;
    let mut ts: u32 = 0xFFFF_0000;
    let frame = if codec == CodecName::Aac { 1024 } else { 160 };
    let mut pkt = Vec::with_capacity(2048);
    let mut next_out: Option<u16> = None;
    let mut made = 0;
    while let [len, flags, tail @ ..] = rest {
        let n = (*len as usize).min(tail.len());
        let (body, after) = tail.split_at(n);
        rest = after;
        seq = seq.wrapping_add(u16::from((flags >> 2) & 3));
        ts = ts.wrapping_add(u32::from(flags >> 4) * frame);
        pkt.clear();
        if flags & 1 == 1 {
            let rtp_time = match body {
                [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
                _ => ts,
            };
            rtcp::write_sr(&mut pkt, 0x1234, 0xE000_0000_0000_0000, rtp_time, 1, 1);
            t.handle_rtcp(&pkt);
        } else {
            pkt.extend_from_slice(&[0x80, 97]);
            pkt.extend_from_slice(&seq.to_be_bytes());
            pkt.extend_from_slice(&ts.to_be_bytes());
            pkt.extend_from_slice(&0x1234u32.to_be_bytes());
            if flags & 2 == 2 {
                let size = (body.len() as u16) << 3;
                pkt.extend_from_slice(&[0x00, 0x10]);
                pkt.extend_from_slice(&size.to_be_bytes());
            }
            pkt.extend_from_slice(body);
            t.handle_rtp(&pkt);
        }
        t.drain(|out| {
            if out.rtcp {
                let mut items = rtcp::parse_compound(out.data);
                match items.next() {
                    Some(Ok(Rtcp::SenderReport { ssrc, .. })) => assert_eq!(ssrc, SSRC),
                    other => panic!("not a sender report: {other:?}"),
                }
                return;
            }
            let v = crate::rtp::parse(out.data).expect("our RTP parses");
            assert_eq!((v.ssrc, v.payload_type), (SSRC, PT));
            assert!(!v.payload.is_empty() && v.payload.len() <= super::encode::MAX_OPUS_PACKET);
            if let Some(want) = next_out {
                assert_eq!(v.seq, want, "sequence numbers follow each other");
            }
            next_out = Some(v.seq.wrapping_add(1));
            made += 1;
        });
    }
    made
}
