//! A camera's H.264 + AAC stream through the whole sans-IO ingest (`pms_core::gb::PsIngest`):
//! `tests/data/ps/h264_aac.ps` (see `tests/ps.rs` for how it was written: AAC-LC mono 16 kHz,
//! one ADTS frame per PES, PSM stream_type 0x0F) cut into RTP packets of at most 1400 bytes as
//! cameras send it, over TCP (in order) and UDP (pairs swapped).
//!
//! What a player needs: an `MPEG4-GENERIC` track at the sample rate with the AudioSpecificConfig
//! of the ADTS headers, one RFC 3640 AU (AU-headers-length 16, 13-bit size, index 0) per ADTS
//! frame holding exactly the raw frame, RTP timestamps 1024 apart from the PTS at 16 kHz.

use pms_core::gb::{IngestOutput, PsIngest};
use pms_core::media::{CodecName, ProducerTrack};

const VIDEO_SSRC: u32 = 1;
const AUDIO_SSRC: u32 = 2;

fn file() -> Vec<u8> {
    let path = format!("{}/tests/data/ps/h264_aac.ps", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(path).unwrap()
}

/// The ADTS frames of the file, in order (its audio PES payloads).
fn adts_frames(ps: &[u8]) -> Vec<Vec<u8>> {
    let mut d = pms_core::ps::PsDemuxer::new();
    d.push(ps);
    d.end_of_frame();
    std::iter::from_fn(|| d.poll())
        .filter_map(|e| match e {
            pms_core::ps::PsEvent::Audio { data, .. } => Some(data.to_vec()),
            _ => None,
        })
        .collect()
}

fn rtp(ps: &[u8]) -> Vec<Vec<u8>> {
    ps.chunks(1400)
        .enumerate()
        .map(|(i, chunk)| {
            let mut p = vec![0x80, 96];
            p.extend_from_slice(&(i as u16).to_be_bytes());
            p.extend_from_slice(&(i as u32 * 3600).to_be_bytes());
            p.extend_from_slice(&0x0200_0001u32.to_be_bytes());
            p.extend_from_slice(chunk);
            p
        })
        .collect()
}

fn run(packets: &[Vec<u8>], udp: bool) -> (Vec<ProducerTrack>, Vec<Vec<u8>>) {
    let now = std::time::Instant::now();
    let mut ingest = PsIngest::new(udp, VIDEO_SSRC, AUDIO_SSRC);
    let mut tracks = Vec::new();
    let mut audio = Vec::new();
    let mut out = |o: IngestOutput| match o {
        IngestOutput::Live(t) => tracks = t.to_vec(),
        IngestOutput::Rtp(p) => {
            if pms_core::rtp::parse(p).unwrap().ssrc == AUDIO_SSRC {
                audio.push(p.to_vec());
            }
        }
    };
    for p in packets {
        ingest.push_rtp(p, now, &mut out);
    }
    ingest.handle_timeout(now + std::time::Duration::from_secs(1), &mut out);
    let stats = ingest.stats();
    assert_eq!(
        (stats.gaps, stats.codec_changes, stats.audio_dropped),
        (0, 0, 0)
    );
    (tracks, audio)
}

#[test]
fn aac_camera_stream_becomes_rfc3640_rtp() {
    let ps = file();
    let frames = adts_frames(&ps);
    assert_eq!(frames.len(), 8);
    let packets = rtp(&ps);
    let (tracks, audio) = run(&packets, false);

    let names: Vec<CodecName> = tracks.iter().map(|t| t.codec.name).collect();
    assert_eq!(names, [CodecName::H264, CodecName::Aac]);
    let a = &tracks[1].codec;
    assert_eq!((a.clock_rate, a.channels, a.payload_type), (16_000, 1, 97));
    // AAC-LC (2), 16 kHz (index 8), mono: 00010 1000 0001 000 = 0x1408.
    for p in [
        "mode=AAC-hbr",
        "sizelength=13",
        "indexlength=3",
        "indexdeltalength=3",
        "config=1408",
    ] {
        assert!(a.fmtp.split(';').any(|x| x == p), "{p} in {}", a.fmtp);
    }

    assert_eq!(audio.len(), frames.len());
    for (k, (pkt, adts)) in audio.iter().zip(&frames).enumerate() {
        let v = pms_core::rtp::parse(pkt).unwrap();
        // The muxer's first PTS is 90000 (1 s): 16000 at 16 kHz, then 1024 per frame.
        assert_eq!(v.timestamp, 16_000 + 1024 * k as u32, "frame {k}");
        assert_eq!((v.payload_type, v.marker), (97, true));
        let raw = &adts[7..];
        assert_eq!(&v.payload[..2], &[0x00, 0x10]);
        assert_eq!(
            u16::from_be_bytes([v.payload[2], v.payload[3]]),
            (raw.len() as u16) << 3
        );
        assert_eq!(&v.payload[4..], raw, "frame {k}");
    }

    // UDP with every pair of packets swapped: the same audio out of the reorder buffer.
    let mut swapped = Vec::new();
    for pair in packets.chunks(2) {
        swapped.extend(pair.iter().rev().cloned());
    }
    let (udp_tracks, udp_audio) = run(&swapped, true);
    assert_eq!(udp_tracks[1].codec, tracks[1].codec);
    let payloads = |a: &[Vec<u8>]| -> Vec<(u32, Vec<u8>)> {
        a.iter()
            .map(|p| {
                let v = pms_core::rtp::parse(p).unwrap();
                (v.timestamp, v.payload.to_vec())
            })
            .collect()
    };
    assert_eq!(payloads(&udp_audio), payloads(&audio));
}
