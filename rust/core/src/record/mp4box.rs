//! ISO BMFF boxes (ISO/IEC 14496-12) for the fragmented MP4 writer: the box framing and the
//! initialization segment (`ftyp` + `moov` with one `trak` per track and `mvex`/`trex`), with
//! the sample entries `avc1` (+`avcC`), `hvc1` (+`hvcC`), `mp4a` (+`esds`, 14496-14) and
//! `Opus` (+`dOps`, "Encapsulation of Opus in ISO BMFF" 4.3).
//!
//! Why our own: `mp4` 0.14 (alfg/mp4-rust) writes a whole progressive file with `moov` at the
//! end (nothing playable until it finishes, not crash-safe); `mp4-atom` 0.17 (kixelated)
//! encodes single boxes and would fit, but each box is a struct of its full field set (an
//! `hvcC` wants every profile field typed out) and its 0.x API changes often; the boxes a
//! fragmented recording needs are the twenty below, plain byte layouts.

use super::container::TrackInfo;
use crate::media::{CodecName, MediaKind};

/// Appends a box: 32-bit size, type, then what `body` writes.
pub fn bx(out: &mut Vec<u8>, kind: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(kind);
    body(out);
    let size = (out.len() - at) as u32;
    out[at..at + 4].copy_from_slice(&size.to_be_bytes());
}

/// A full box: version and 24-bit flags before the body.
pub fn full(
    out: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    bx(out, kind, |o| {
        o.extend_from_slice(&((version as u32) << 24 | (flags & 0xff_ffff)).to_be_bytes());
        body(o);
    });
}

pub fn u16b(o: &mut Vec<u8>, v: u16) {
    o.extend_from_slice(&v.to_be_bytes());
}
pub fn u32b(o: &mut Vec<u8>, v: u32) {
    o.extend_from_slice(&v.to_be_bytes());
}
pub fn u64b(o: &mut Vec<u8>, v: u64) {
    o.extend_from_slice(&v.to_be_bytes());
}

const MATRIX: [u32; 9] = [0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x4000_0000];

/// Movie timescale (mvhd, mehd): ms.
pub const MOVIE_TIMESCALE: u32 = 1000;

/// The track's timescale: its RTP clock (48 kHz for Opus).
pub fn timescale(t: &TrackInfo) -> u32 {
    t.clock_rate.max(1)
}

/// A track of the init segment: its description and its edit (media time where presentation
/// starts, in its timescale; 0 for none).
#[derive(Debug, Clone)]
pub struct InitTrack {
    pub info: TrackInfo,
    pub edit: u32,
}

/// `ftyp` + `moov`. Returns the bytes and the offset of the `mehd` fragment duration (u64),
/// which the writer patches on finish.
pub fn init_segment(tracks: &[InitTrack]) -> (Vec<u8>, usize) {
    let mut o = Vec::new();
    bx(&mut o, b"ftyp", |o| {
        o.extend_from_slice(b"isom");
        u32b(o, 0x200);
        for b in [b"isom", b"iso6", b"iso2", b"avc1", b"mp41"] {
            o.extend_from_slice(b);
        }
    });
    let mut mehd_at = 0;
    bx(&mut o, b"moov", |o| {
        full(o, b"mvhd", 0, 0, |o| {
            u32b(o, 0);
            u32b(o, 0);
            u32b(o, MOVIE_TIMESCALE);
            u32b(o, 0); // duration: in mehd
            u32b(o, 0x10000);
            u16b(o, 0x100);
            o.extend_from_slice(&[0; 10]);
            MATRIX.iter().for_each(|&m| u32b(o, m));
            o.extend_from_slice(&[0; 24]);
            u32b(o, tracks.len() as u32 + 1);
        });
        for (i, t) in tracks.iter().enumerate() {
            trak(o, i as u32 + 1, &t.info, t.edit);
        }
        bx(o, b"mvex", |o| {
            full(o, b"mehd", 1, 0, |o| {
                mehd_at = o.len();
                u64b(o, 0);
            });
            for i in 0..tracks.len() {
                full(o, b"trex", 0, 0, |o| {
                    u32b(o, i as u32 + 1);
                    u32b(o, 1);
                    u32b(o, 0);
                    u32b(o, 0);
                    u32b(o, 0);
                });
            }
        });
    });
    (o, mehd_at)
}

fn trak(o: &mut Vec<u8>, id: u32, t: &TrackInfo, edit: u32) {
    let video = t.kind() == MediaKind::Video;
    bx(o, b"trak", |o| {
        full(o, b"tkhd", 0, 3, |o| {
            u32b(o, 0);
            u32b(o, 0);
            u32b(o, id);
            u32b(o, 0);
            u32b(o, 0); // duration
            o.extend_from_slice(&[0; 8]);
            u16b(o, 0); // layer
            u16b(o, if video { 0 } else { 1 }); // alternate group
            u16b(o, if video { 0 } else { 0x100 }); // volume
            u16b(o, 0);
            MATRIX.iter().for_each(|&m| u32b(o, m));
            u32b(o, t.width << 16);
            u32b(o, t.height << 16);
        });
        if edit > 0 {
            // Presentation starts `edit` ticks into the media (duration 0: all of it).
            bx(o, b"edts", |o| {
                full(o, b"elst", 0, 0, |o| {
                    u32b(o, 1);
                    u32b(o, 0);
                    u32b(o, edit);
                    u32b(o, 0x1_0000);
                });
            });
        }
        bx(o, b"mdia", |o| {
            full(o, b"mdhd", 0, 0, |o| {
                u32b(o, 0);
                u32b(o, 0);
                u32b(o, timescale(t));
                u32b(o, 0);
                u16b(o, 0x55c4); // "und"
                u16b(o, 0);
            });
            full(o, b"hdlr", 0, 0, |o| {
                u32b(o, 0);
                o.extend_from_slice(if video { b"vide" } else { b"soun" });
                o.extend_from_slice(&[0; 12]);
                o.extend_from_slice(if video {
                    b"VideoHandler\0"
                } else {
                    b"SoundHandler\0"
                });
            });
            bx(o, b"minf", |o| {
                if video {
                    full(o, b"vmhd", 0, 1, |o| o.extend_from_slice(&[0; 8]));
                } else {
                    full(o, b"smhd", 0, 0, |o| o.extend_from_slice(&[0; 4]));
                }
                bx(o, b"dinf", |o| {
                    full(o, b"dref", 0, 0, |o| {
                        u32b(o, 1);
                        full(o, b"url ", 0, 1, |_| {});
                    });
                });
                bx(o, b"stbl", |o| {
                    full(o, b"stsd", 0, 0, |o| {
                        u32b(o, 1);
                        sample_entry(o, t);
                    });
                    full(o, b"stts", 0, 0, |o| u32b(o, 0));
                    full(o, b"stsc", 0, 0, |o| u32b(o, 0));
                    full(o, b"stsz", 0, 0, |o| u64b(o, 0));
                    full(o, b"stco", 0, 0, |o| u32b(o, 0));
                });
            });
        });
    });
}

fn visual(o: &mut Vec<u8>, kind: &[u8; 4], t: &TrackInfo, config_box: &[u8; 4]) {
    bx(o, kind, |o| {
        o.extend_from_slice(&[0; 6]);
        u16b(o, 1); // data_reference_index
        o.extend_from_slice(&[0; 16]);
        u16b(o, t.width.min(0xffff) as u16);
        u16b(o, t.height.min(0xffff) as u16);
        u32b(o, 0x48_0000);
        u32b(o, 0x48_0000);
        u32b(o, 0);
        u16b(o, 1); // frame_count
        o.extend_from_slice(&[0; 32]); // compressorname
        u16b(o, 0x18);
        u16b(o, 0xffff);
        bx(o, config_box, |o| o.extend_from_slice(&t.config));
    });
}

fn audio(
    o: &mut Vec<u8>,
    kind: &[u8; 4],
    t: &TrackInfo,
    rate: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    bx(o, kind, |o| {
        o.extend_from_slice(&[0; 6]);
        u16b(o, 1);
        o.extend_from_slice(&[0; 8]);
        u16b(o, t.channels.max(1));
        u16b(o, 16);
        u32b(o, 0);
        u32b(o, rate.min(0xffff) << 16);
        body(o);
    });
}

/// An MPEG-4 descriptor (14496-1 8.3.3) with a one-byte length (ours are < 128 bytes).
fn descriptor(o: &mut Vec<u8>, tag: u8, body: &[u8]) {
    o.push(tag);
    o.push(body.len().min(127) as u8);
    o.extend_from_slice(&body[..body.len().min(127)]);
}

fn sample_entry(o: &mut Vec<u8>, t: &TrackInfo) {
    match t.codec {
        CodecName::H264 => visual(o, b"avc1", t, b"avcC"),
        CodecName::H265 => visual(o, b"hvc1", t, b"hvcC"),
        CodecName::Opus => audio(o, b"Opus", t, 48000, |o| {
            bx(o, b"dOps", |o| {
                o.push(0);
                o.push(t.channels.clamp(1, 2) as u8);
                u16b(o, 0); // pre-skip
                u32b(o, 48000);
                u16b(o, 0);
                o.push(0);
            });
        }),
        _ => audio(o, b"mp4a", t, t.clock_rate, |o| {
            full(o, b"esds", 0, 0, |o| {
                let mut dsi = Vec::new();
                descriptor(&mut dsi, 5, &t.config);
                let mut dcd = vec![0x40, 0x15, 0, 0, 0];
                dcd.extend_from_slice(&[0; 8]); // max / average bitrate unknown
                dcd.extend_from_slice(&dsi);
                let mut es = vec![0, 0, 0]; // ES_ID 0, no flags
                descriptor(&mut es, 4, &dcd);
                descriptor(&mut es, 6, &[2]);
                descriptor(o, 3, &es);
            });
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_sizes_and_init_segment() {
        let mut o = Vec::new();
        full(&mut o, b"test", 1, 5, |o| u32b(o, 7));
        assert_eq!(
            o,
            [0, 0, 0, 16, b't', b'e', b's', b't', 1, 0, 0, 5, 0, 0, 0, 7]
        );
        let t = TrackInfo {
            codec: CodecName::Aac,
            clock_rate: 44100,
            channels: 2,
            width: 0,
            height: 0,
            config: vec![0x12, 0x10],
        };
        let (init, mehd) = init_segment(&[InitTrack { info: t, edit: 3 }]);
        assert!(init.windows(4).any(|w| w == b"elst"));
        assert_eq!(&init[4..8], b"ftyp");
        assert_eq!(&init[mehd - 8..mehd - 4], b"mehd");
        let esds = init.windows(4).position(|w| w == b"esds").unwrap_or(0);
        assert!(esds > 0);
        assert!(init.windows(4).any(|w| w == b"mp4a"));
        // The walk of top-level boxes covers the buffer exactly.
        let mut at = 0;
        while at < init.len() {
            at += u32::from_be_bytes([init[at], init[at + 1], init[at + 2], init[at + 3]]) as usize;
        }
        assert_eq!(at, init.len());
    }
}
