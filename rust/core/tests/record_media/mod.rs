//! Real media for the recording tests: the ffmpeg-made files of `tests/data/record/` read
//! into frames, and RTP packets made from them with the project's own H.264/H.265 packetizer
//! (`pms_core::packetize`) or the small VP8/VP9/Opus/G.711/AAC payloaders here (one-byte
//! payload descriptors, as the WebRTC senders use in the simplest case).
#![allow(dead_code)]

use pms_core::annexb::nal_units;
use pms_core::gb::audio::Adts;
use pms_core::media::CodecName;
use pms_core::packetize::Packetizer;
use pms_core::record::TrackSpec;

pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/record/");

pub fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DATA}{name}")).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// One source frame: presentation time in the track clock, keyframe, bytes (Annex B for
/// H.26x).
#[derive(Debug, Clone)]
pub struct SrcFrame {
    pub pts: u64,
    pub key: bool,
    pub data: Vec<u8>,
}

/// A source track: its spec and frames in decoding order.
pub struct Source {
    pub spec: TrackSpec,
    pub frames: Vec<SrcFrame>,
}

fn first_slice(nal: &[u8], h265: bool) -> Option<bool> {
    if h265 {
        let t = (nal.first()? >> 1) & 0x3f;
        (t < 32).then(|| nal.get(2).is_some_and(|b| b & 0x80 != 0))
    } else {
        let t = nal.first()? & 0x1f;
        (1..=5)
            .contains(&t)
            .then(|| nal.get(1).is_some_and(|b| b & 0x80 != 0))
    }
}

/// Splits an Annex B stream into access units (a new one at each first slice of a picture).
pub fn access_units(data: &[u8], h265: bool) -> Vec<(bool, Vec<u8>)> {
    let mut aus: Vec<(bool, Vec<u8>)> = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut cur_has_vcl = false;
    let mut prefix: Vec<u8> = Vec::new();
    let mut key = false;
    for nal in nal_units(data) {
        let mut annexb = vec![0, 0, 0, 1];
        annexb.extend_from_slice(nal);
        match first_slice(nal, h265) {
            Some(first) => {
                if first && cur_has_vcl {
                    aus.push((key, std::mem::take(&mut cur)));
                    key = false;
                }
                cur.append(&mut prefix);
                cur.extend_from_slice(&annexb);
                cur_has_vcl = true;
                let t = if h265 {
                    (nal[0] >> 1) & 0x3f
                } else {
                    nal[0] & 0x1f
                };
                key |= if h265 { (16..=21).contains(&t) } else { t == 5 };
            }
            None => prefix.extend_from_slice(&annexb),
        }
    }
    cur.append(&mut prefix);
    if cur_has_vcl {
        aus.push((key, cur));
    }
    aus
}

pub fn h264_source() -> Source {
    let aus = access_units(&read("h264_bframes.h264"), false);
    let pts: Vec<u64> = String::from_utf8(read("h264_bframes.pts"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .collect();
    assert_eq!(aus.len(), pts.len(), "one pts per access unit");
    Source {
        spec: spec(CodecName::H264, 90_000, 0, "packetization-mode=1"),
        frames: aus
            .into_iter()
            .zip(pts)
            .map(|((key, data), ms)| SrcFrame {
                pts: ms * 90,
                key,
                data,
            })
            .collect(),
    }
}

pub fn h265_source() -> Source {
    let aus = access_units(&read("h265.hevc"), true);
    Source {
        spec: spec(CodecName::H265, 90_000, 0, ""),
        frames: aus
            .into_iter()
            .enumerate()
            .map(|(i, (key, data))| SrcFrame {
                pts: i as u64 * 3600,
                key,
                data,
            })
            .collect(),
    }
}

/// IVF frames (VP8/VP9), 25 fps.
fn ivf(name: &str, vp9: bool) -> Vec<SrcFrame> {
    let d = read(name);
    let mut at = 32;
    let mut out = Vec::new();
    while at + 12 <= d.len() {
        let n = u32::from_le_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]]) as usize;
        let idx = u64::from_le_bytes(d[at + 4..at + 12].try_into().unwrap_or_default());
        let data = d[at + 12..at + 12 + n].to_vec();
        let key = if vp9 {
            // frame_marker(2) profile(2) show_existing_frame(1) frame_type(1): 0 = key.
            data[0] & 0x0c == 0
        } else {
            data[0] & 1 == 0
        };
        out.push(SrcFrame {
            pts: idx * 3600,
            key,
            data,
        });
        at += 12 + n;
    }
    out
}

/// Reads a LEB128 value.
fn leb(b: &[u8], at: &mut usize) -> usize {
    let mut v = 0usize;
    for i in 0..8 {
        let x = b[*at];
        *at += 1;
        v |= ((x & 0x7f) as usize) << (7 * i);
        if x & 0x80 == 0 {
            break;
        }
    }
    v
}

/// AV1 temporal units from IVF; keyframe = the unit carries a sequence header.
pub fn av1_source() -> Source {
    let mut frames = ivf("av1.ivf", false);
    for f in &mut frames {
        f.key = av1_obus(&f.data).iter().any(|o| (o[0] >> 3) & 15 == 1);
    }
    Source {
        spec: spec(CodecName::Av1, 90_000, 0, ""),
        frames,
    }
}

/// The OBUs of a temporal unit without their size fields (as RTP carries them), temporal
/// delimiters left out.
fn av1_obus(tu: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < tu.len() {
        let h = tu[at];
        let ext = (h >> 2) & 1 == 1;
        let mut p = at + 1 + ext as usize;
        let n = if h & 2 != 0 {
            leb(tu, &mut p)
        } else {
            tu.len() - p
        };
        if (h >> 3) & 15 != 2 {
            let mut obu = vec![h & !2];
            if ext {
                obu.push(tu[at + 1]);
            }
            obu.extend_from_slice(&tu[p..p + n]);
            out.push(obu);
        }
        at = p + n;
    }
    out
}

pub fn vp8_source() -> Source {
    Source {
        spec: spec(CodecName::Vp8, 90_000, 0, ""),
        frames: ivf("vp8.ivf", false),
    }
}

pub fn vp9_source() -> Source {
    Source {
        spec: spec(CodecName::Vp9, 90_000, 0, ""),
        frames: ivf("vp9.ivf", true),
    }
}

/// Opus packets of an Ogg file (after OpusHead and OpusTags), 20 ms each.
pub fn opus_source() -> Source {
    let d = read("opus.ogg");
    let mut packets = Vec::new();
    let mut cur = Vec::new();
    let mut at = 0;
    while at + 27 <= d.len() && &d[at..at + 4] == b"OggS" {
        let nseg = d[at + 26] as usize;
        let table = &d[at + 27..at + 27 + nseg];
        let mut p = at + 27 + nseg;
        for &s in table {
            cur.extend_from_slice(&d[p..p + s as usize]);
            p += s as usize;
            if s < 255 {
                packets.push(std::mem::take(&mut cur));
            }
        }
        at = p;
    }
    Source {
        spec: spec(CodecName::Opus, 48_000, 2, "minptime=10;useinbandfec=1"),
        frames: packets
            .into_iter()
            .skip(2)
            .enumerate()
            .map(|(i, data)| SrcFrame {
                pts: i as u64 * 960,
                key: true,
                data,
            })
            .collect(),
    }
}

pub fn aac_source() -> Source {
    let d = read("aac.adts");
    let mut frames = Vec::new();
    let mut at = 0;
    let mut config = String::new();
    while let Some(h) = Adts::parse(&d[at..]) {
        config = h.config_hex();
        frames.push(SrcFrame {
            pts: frames.len() as u64 * 1024,
            key: true,
            data: d[at + h.header_len..at + h.frame_len].to_vec(),
        });
        at += h.frame_len;
    }
    let fmtp = format!(
        "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;\
         indexdeltalength=3;config={config}"
    );
    Source {
        spec: spec(CodecName::Aac, 44_100, 2, &fmtp),
        frames,
    }
}

pub fn pcma_source() -> Source {
    let d = read("g711a.raw");
    Source {
        spec: spec(CodecName::Pcma, 8000, 1, ""),
        frames: d
            .chunks(160)
            .enumerate()
            .map(|(i, c)| SrcFrame {
                pts: i as u64 * 160,
                key: true,
                data: c.to_vec(),
            })
            .collect(),
    }
}

pub fn spec(codec: CodecName, clock_rate: u32, channels: u16, fmtp: &str) -> TrackSpec {
    TrackSpec {
        codec,
        clock_rate,
        channels,
        fmtp: fmtp.to_string(),
    }
}

fn rtp(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// RTP packets of one frame (`seq` advances).
pub fn packetize(codec: CodecName, f: &SrcFrame, ts: u32, seq: &mut u16) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    match codec {
        CodecName::H264 | CodecName::H265 => {
            let Some(mut p) = Packetizer::new(codec, 1, 96, *seq, 1200) else {
                return out;
            };
            p.packetize(&f.data, ts, |pkt| out.push(pkt.to_vec()));
            *seq = p.next_seq();
        }
        CodecName::Vp8 | CodecName::Vp9 => {
            let chunks: Vec<&[u8]> = f.data.chunks(1100).collect();
            for (i, c) in chunks.iter().enumerate() {
                let (first, last) = (i == 0, i + 1 == chunks.len());
                let mut payload = if codec == CodecName::Vp8 {
                    vec![if first { 0x10 } else { 0 }]
                } else {
                    let mut b0 = if f.key { 0 } else { 0x40 };
                    b0 |= if first { 0x08 } else { 0 } | if last { 0x04 } else { 0 };
                    if first && f.key {
                        // V: scalability structure with the picture size (one layer).
                        vec![b0 | 0x02, 0x10, 0x01, 0x40, 0x00, 0xf0]
                    } else {
                        vec![b0]
                    }
                };
                payload.extend_from_slice(c);
                out.push(rtp(96, last, *seq, ts, 1, &payload));
                *seq = seq.wrapping_add(1);
            }
        }
        CodecName::Av1 => {
            // One OBU per packet run (W=1), cut at 1100 bytes with Z/Y; N on a keyframe.
            let obus = av1_obus(&f.data);
            let mut pkts: Vec<Vec<u8>> = Vec::new();
            for obu in &obus {
                let parts: Vec<&[u8]> = obu.chunks(1100).collect();
                for (i, c) in parts.iter().enumerate() {
                    let mut agg = 0x10u8;
                    if i > 0 {
                        agg |= 0x80;
                    }
                    if i + 1 < parts.len() {
                        agg |= 0x40;
                    }
                    let mut payload = vec![agg];
                    payload.extend_from_slice(c);
                    pkts.push(payload);
                }
            }
            if f.key {
                if let Some(first) = pkts.first_mut() {
                    first[0] |= 0x08;
                }
            }
            let n = pkts.len();
            for (i, payload) in pkts.into_iter().enumerate() {
                out.push(rtp(96, i + 1 == n, *seq, ts, 1, &payload));
                *seq = seq.wrapping_add(1);
            }
        }
        CodecName::Aac => {
            let n = f.data.len() as u16;
            let mut payload = vec![0, 16];
            payload.extend_from_slice(&(n << 3).to_be_bytes());
            payload.extend_from_slice(&f.data);
            out.push(rtp(97, true, *seq, ts, 2, &payload));
            *seq = seq.wrapping_add(1);
        }
        _ => {
            out.push(rtp(111, true, *seq, ts, 2, &f.data));
            *seq = seq.wrapping_add(1);
        }
    }
    out
}

/// Packets of several sources, interleaved by presentation time as a sender would send them:
/// `(track, arrival time in ns, packet)`. `ts_base` starts each track's RTP clock (choose one
/// near 2^32 to cross the wrap).
pub fn schedule(sources: &[Source], ts_base: &[u32]) -> Vec<(usize, u64, Vec<u8>)> {
    let mut all = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        let mut seq = 1000u16.wrapping_mul(i as u16 + 1);
        let rate = s.spec.clock_rate as u64;
        // Decoding order is sending order: send each frame at its decode slot (index-based
        // for video, the pts for audio).
        let step = s.frames.get(1).map_or(1, |f| f.pts.max(1));
        let video = s.spec.codec.kind() == pms_core::media::MediaKind::Video;
        for (n, f) in s.frames.iter().enumerate() {
            let send_ticks = if video {
                n as u64 * step.min(3600)
            } else {
                f.pts
            };
            let at_ns = send_ticks * 1_000_000_000 / rate;
            let ts = ts_base[i].wrapping_add(f.pts as u32);
            for p in packetize(s.spec.codec, f, ts, &mut seq) {
                all.push((i, at_ns, p));
            }
        }
    }
    all.sort_by_key(|(_, at, _)| *at);
    all
}
