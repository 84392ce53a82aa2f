use super::*;
use crate::rtp;

fn pkt(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 96 | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1]);
    p.extend_from_slice(payload);
    p
}

fn feed(d: &mut Depacketizer, pkts: &[Vec<u8>]) -> Vec<Frame> {
    let mut out = Vec::new();
    for p in pkts {
        if let Ok(v) = rtp::parse(p) {
            d.push(&v, &mut out);
        }
    }
    out
}

fn lp(nals: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for n in nals {
        v.extend_from_slice(&(n.len() as u32).to_be_bytes());
        v.extend_from_slice(n);
    }
    v
}

const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0xaa];
const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

fn stap(nals: &[&[u8]]) -> Vec<u8> {
    let mut v = vec![24];
    for n in nals {
        v.extend_from_slice(&(n.len() as u16).to_be_bytes());
        v.extend_from_slice(n);
    }
    v
}

#[test]
fn h264_stap_fu_and_single_nal_make_length_prefixed_frames() {
    let mut d = Depacketizer::new(CodecName::H264, "packetization-mode=1").expect("h264");
    let idr = [0x65u8, 1, 2, 3, 4, 5, 6];
    let out = feed(
        &mut d,
        &[
            pkt(1, 100, false, &stap(&[SPS, PPS])),
            pkt(2, 100, false, &[0x7c, 0x85, 1, 2, 3]), // FU-A start, IDR
            pkt(3, 100, false, &[0x7c, 0x05, 4]),
            pkt(4, 100, true, &[0x7c, 0x45, 5, 6]), // end
            pkt(5, 200, true, &[0x41, 9, 9]),
        ],
    );
    assert_eq!(out.len(), 2);
    assert!(out[0].keyframe && !out[1].keyframe);
    assert_eq!(out[0].data, lp(&[SPS, PPS, &idr]));
    assert_eq!((out[0].rtp_ts, out[1].rtp_ts), (100, 200));
    assert_eq!(out[1].data, lp(&[&[0x41, 9, 9]]));
    let ps = d.param_sets().expect("sets");
    assert!(ps.complete());
}

#[test]
fn loss_drops_the_frame_and_waits_for_a_keyframe() {
    let mut d = Depacketizer::new(CodecName::H264, "").expect("h264");
    let out = feed(
        &mut d,
        &[
            pkt(1, 100, true, &[0x65, 1]),
            pkt(2, 200, false, &[0x5c, 0x81, 1]), // FU-A start of a P slice
            // seq 3 lost (middle fragment)
            pkt(4, 200, true, &[0x5c, 0x41, 3]),
            pkt(5, 300, true, &[0x41, 7]), // P: no reference any more
            pkt(6, 400, true, &[0x65, 8]), // IDR: resumes
            pkt(6, 400, true, &[0x65, 8]), // duplicate: ignored
            pkt(5, 300, true, &[0x41, 7]), // late: ignored
        ],
    );
    let ts: Vec<u32> = out.iter().map(|f| f.rtp_ts).collect();
    assert_eq!(ts, vec![100, 400]);
    assert_eq!(d.dropped(), 2);
}

#[test]
fn h264_refuses_broken_payloads_without_panicking() {
    let mut d = Depacketizer::new(CodecName::H264, "").expect("h264");
    let out = feed(
        &mut d,
        &[
            pkt(1, 1, true, &[0x7c, 0x05, 4]), // FU-A continuation without a start
            pkt(2, 2, true, &[24, 0, 2, 0x65]), // STAP-A NAL past the end
            pkt(3, 3, true, &[24, 0, 1, 0x65, 0]), // STAP-A with one byte of a size
            pkt(4, 4, true, &[25, 0, 0]),      // STAP-B: not taken
            pkt(5, 5, true, &[0x7c, 0x85, 1]), // FU-A start, then the marker: unfinished
            pkt(6, 6, true, &[]),
        ],
    );
    assert!(out.is_empty());
    assert_eq!(d.dropped(), 6);
}

#[test]
fn h265_ap_and_fu() {
    let mut d = Depacketizer::new(CodecName::H265, "").expect("h265");
    let vps: &[u8] = &[0x40, 0x01, 0x0c];
    let sps: &[u8] = &[0x42, 0x01, 0x01];
    let pps: &[u8] = &[0x44, 0x01, 0xc1];
    let mut ap = vec![0x60, 0x01];
    for n in [vps, sps, pps] {
        ap.extend_from_slice(&(n.len() as u16).to_be_bytes());
        ap.extend_from_slice(n);
    }
    // FU of an IDR_W_RADL (19): FU header S | 19.
    let out = feed(
        &mut d,
        &[
            pkt(1, 9, false, &ap),
            pkt(2, 9, false, &[0x62, 0x01, 0x80 | 19, 0xaa]),
            pkt(3, 9, true, &[0x62, 0x01, 0x40 | 19, 0xbb]),
        ],
    );
    assert_eq!(out.len(), 1);
    assert!(out[0].keyframe);
    assert_eq!(out[0].data, lp(&[vps, sps, pps, &[0x26, 0x01, 0xaa, 0xbb]]));
    assert!(d.param_sets().is_some_and(|p| p.complete()));
}

#[test]
fn vp8_frames_need_their_first_packet() {
    let mut d = Depacketizer::new(CodecName::Vp8, "").expect("vp8");
    // Key frame: tag P=0, start code, 320x240.
    let key = [
        0x10u8, 0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00,
    ];
    let out = feed(
        &mut d,
        &[
            pkt(1, 10, false, &key),
            pkt(2, 10, true, &[0x00, 0xee]),
            pkt(3, 20, true, &[0x00, 0x01]), // no S bit: its start is missing
            pkt(4, 30, true, &[0x10, 0x01, 0x02]),
        ],
    );
    assert_eq!(out.len(), 1);
    assert!(out[0].keyframe);
    assert_eq!(out[0].data.len(), key.len() - 1 + 1);
    assert_eq!(d.vpx_size(), Some((320, 240)));
}

#[test]
fn vp9_begin_and_end_bits() {
    let mut d = Depacketizer::new(CodecName::Vp9, "").expect("vp9");
    let out = feed(
        &mut d,
        &[
            pkt(
                1,
                10,
                false,
                &[0x08 | 0x02, 0x10, 0x01, 0x40, 0x00, 0xf0, 0x82],
            ),
            pkt(2, 10, true, &[0x04, 0x49]),
            pkt(3, 20, true, &[0x48, 0x86]), // B without E before the marker: dropped
            pkt(4, 30, true, &[0x4c, 0x86]),
        ],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].data, vec![0x82, 0x49]);
    assert_eq!(d.vpx_size(), Some((320, 240)));
}

#[test]
fn audio_frames_and_aac_hbr() {
    let mut d = Depacketizer::new(CodecName::Opus, "").expect("opus");
    let out = feed(
        &mut d,
        &[pkt(1, 0, true, &[1, 2]), pkt(3, 960 * 2, true, &[3])],
    );
    assert_eq!(out.len(), 2);

    let mut d = Depacketizer::new(
        CodecName::Aac,
        "sizelength=13;indexlength=3;indexdeltalength=3",
    )
    .expect("aac");
    // Two AU headers (32 bits): sizes 2 and 3.
    let mut p = vec![0, 32];
    p.extend_from_slice(&(2u16 << 3).to_be_bytes());
    p.extend_from_slice(&(3u16 << 3).to_be_bytes());
    p.extend_from_slice(&[0xa, 0xb, 0xc, 0xd, 0xe]);
    let out = feed(
        &mut d,
        &[
            pkt(1, 5000, true, &p),
            pkt(2, 7048, true, &[0, 16, 0xff, 0xf8]),
        ],
    );
    assert_eq!(
        out.len(),
        2,
        "the second packet's AU is larger than the packet"
    );
    assert_eq!((out[0].rtp_ts, out[1].rtp_ts), (5000, 6024));
    assert_eq!(out[1].data, vec![0xc, 0xd, 0xe]);
    assert_eq!(d.dropped(), 1);
}

#[test]
fn garbage_never_panics() {
    let mut seed = 0x1234_5678u32;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    for codec in [
        CodecName::H264,
        CodecName::H265,
        CodecName::Vp8,
        CodecName::Vp9,
        CodecName::Opus,
        CodecName::Aac,
    ] {
        let mut d = Depacketizer::new(codec, "").expect("codec");
        let mut out = Vec::new();
        for i in 0..20_000u32 {
            let len = (rnd() % 40) as usize;
            let payload: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
            let p = pkt((i % 7) as u16 * 3, rnd() % 4, rnd() % 3 == 0, &payload);
            if let Ok(v) = rtp::parse(&p) {
                d.push(&v, &mut out);
            }
        }
        assert!(out.iter().all(|f| f.data.len() <= MAX_FRAME));
    }
}

#[test]
fn vp8_extended_descriptors_as_browsers_send_them() {
    let mut d = Depacketizer::new(CodecName::Vp8, "").expect("vp8");
    // X=1 S=1; I=1 L=1 T=1; 15-bit picture id; TL0PICIDX; TID/KEYIDX; then the key frame.
    let mut first = vec![0x90, 0xe0, 0x81, 0x23, 0x05, 0x40];
    first.extend_from_slice(&[0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]);
    let mut second = vec![0x80, 0xe0, 0x81, 0x23, 0x05, 0x40];
    second.extend_from_slice(&[0xde, 0xad]);
    let out = feed(
        &mut d,
        &[pkt(7, 3000, false, &first), pkt(8, 3000, true, &second)],
    );
    assert_eq!(out.len(), 1);
    assert!(out[0].keyframe);
    assert_eq!(out[0].data.len(), 10 + 2);
    assert_eq!(d.vpx_size(), Some((640, 360)));
}
