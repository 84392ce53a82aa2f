//! Router robustness: random and half-plausible RTP/RTCP from producer and consumers never
//! panics.

use std::time::Duration;

use pms_core::media::CodecName;

mod common;

use common::*;

/// xorshift64*: a fixed-seed generator, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn garbage_never_panics() {
    let mut s = setup(CodecName::H264, SPROP, FB, true, 0);
    s.r.add_consumer(C2, P, consumer_tracks(2, CodecName::H264, false), s.t0)
        .unwrap();
    s.r.consumer_connected(C1, s.t0, &mut s.sink);
    s.r.consumer_connected(C2, s.t0, &mut s.sink);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut buf = Vec::new();
    for i in 0..200_000u64 {
        let len = (rng.next() % 200) as usize;
        buf.clear();
        buf.extend((0..len).map(|_| rng.next() as u8));
        // Make half of them look like RTP/RTCP of the right version and SSRCs so they get deep.
        if i % 2 == 0 && len >= 12 {
            buf[0] = 0x80 | (buf[0] & 0x3f);
            if i % 4 == 0 {
                buf[1] = if i % 8 == 0 {
                    102 | (buf[1] & 0x80)
                } else {
                    103
                };
                buf[8..12]
                    .copy_from_slice(&(if i % 8 == 0 { VSSRC } else { VSSRC + 100 }).to_be_bytes());
            }
        }
        let now = s.t0 + Duration::from_micros(i * 50);
        match i % 4 {
            0 | 1 => s.r.handle_rtp(now, P, &buf, &mut s.sink),
            2 => {
                s.r.handle_rtcp(now, if i % 8 == 2 { P } else { C1 }, &buf, &mut s.sink)
            }
            _ => {
                if len >= 8 {
                    buf[1] = [200, 201, 205, 206][(i / 4 % 4) as usize];
                    buf[2] = 0;
                    buf[3] = ((len / 4).saturating_sub(1)) as u8;
                    buf[8..]
                        .iter_mut()
                        .take(4)
                        .zip(0x5001u32.to_be_bytes())
                        .for_each(|(b, v)| *b = v);
                }
                s.r.handle_rtcp(now, C1, &buf, &mut s.sink)
            }
        }
        s.r.handle_timeout(now, &mut s.sink);
        if i % 1000 == 0 {
            s.sink.rtp.clear();
            s.sink.rtcp.clear();
        }
    }
    assert!(s.r.stats().rtp_dropped > 0);
}
