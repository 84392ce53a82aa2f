//! Replays camera-like PS files through `pms_core::ps::PsDemuxer` and checks every frame
//! against what the muxer wrapped.
//!
//! The files under `tests/data/ps/` were written by `tests/gb28181/psmux.py` (libx264/libx265
//! 160x120, 25 fps, IDR every 6 frames; one pack per frame, system header + PSM on each IDR),
//! from the repository root:
//!
//! ```sh
//! P=tests/gb28181/psmux.py D=rust/core/tests/data/ps
//! python $P -o $D/h264_160x120.ps --sidecar $D/h264_160x120.txt --codec h264 --frames 12 --gop 6
//! python $P -o $D/h264_audio.ps --sidecar $D/h264_audio.txt --codec h264 --frames 12 --gop 6 --audio
//! python $P -o $D/hevc_160x120.ps --sidecar $D/hevc_160x120.txt --codec hevc --frames 12 --gop 6
//! python $P -o $D/h264_no_psm.ps --sidecar $D/h264_no_psm.txt --codec h264 --frames 12 --gop 6 --audio --no-psm
//! python $P -o $D/h264_bigidr.ps --sidecar $D/h264_bigidr.txt --codec h264 --frames 3 --gop 3 --noise --size 320x240
//! python $P -o $D/h264_aac.ps --sidecar $D/h264_aac.txt --codec h264 --frames 12 --gop 6 --audio aac
//! ```
//!
//! (`h264_aac`: AAC-LC mono 16 kHz, one ADTS frame per PES, PSM stream_type 0x0F.)
//!
//! Each `.txt` sidecar lists the wrapped access units and audio frames with their PTS, size
//! and FNV-1a 64 hash (see `psmux.sidecar`).

use pms_core::ps::{AudioCodec, PsDemuxer, PsEvent, PsStats, VideoCodec};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    video: bool,
    pts: u64,
    size: usize,
    hash: u64,
    keyframe: bool,
}

struct Sample {
    ps: Vec<u8>,
    codec: VideoCodec,
    psm: bool,
    /// The audio codec when there is audio (the sidecar says `audio aac`, else G.711 A-law).
    audio: Option<AudioCodec>,
    frames: Vec<Frame>,
}

const FILES: [&str; 6] = [
    "h264_160x120",
    "h264_audio",
    "hevc_160x120",
    "h264_no_psm",
    "h264_bigidr",
    "h264_aac",
];

fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01B3)
    })
}

fn load(name: &'static str) -> Sample {
    let dir = format!("{}/tests/data/ps", env!("CARGO_MANIFEST_DIR"));
    let ps = std::fs::read(format!("{dir}/{name}.ps")).unwrap();
    let text = std::fs::read_to_string(format!("{dir}/{name}.txt")).unwrap();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split(' ').collect();
    let codec = match head[1] {
        "h264" => VideoCodec::H264,
        _ => VideoCodec::H265,
    };
    let frames: Vec<Frame> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Frame {
                video: f[0] == "video",
                pts: f[1].parse().unwrap(),
                size: f[2].parse().unwrap(),
                hash: u64::from_str_radix(f[3], 16).unwrap(),
                keyframe: f.get(4) == Some(&"1"),
            }
        })
        .collect();
    let has_audio = frames.iter().any(|f| !f.video);
    let aac = head.get(5) == Some(&"aac");
    Sample {
        ps,
        codec,
        psm: head[3] == "1",
        audio: has_audio.then_some(if aac {
            AudioCodec::Aac
        } else {
            AudioCodec::Pcma
        }),
        frames,
    }
}

/// Demuxes `pieces` in order (with `lost()` before the pieces whose index is in `lost`).
fn demux<'a>(
    pieces: impl IntoIterator<Item = &'a [u8]>,
    lost: &[usize],
) -> (Vec<PsEvent>, PsStats) {
    let mut d = PsDemuxer::new();
    let mut ev = Vec::new();
    for (i, p) in pieces.into_iter().enumerate() {
        if lost.contains(&i) {
            d.lost();
        }
        d.push(p);
        ev.extend(std::iter::from_fn(|| d.poll()));
    }
    d.end_of_frame();
    ev.extend(std::iter::from_fn(|| d.poll()));
    (ev, d.stats())
}

fn frames_of(ev: &[PsEvent]) -> Vec<Frame> {
    ev.iter()
        .filter_map(|e| match e {
            PsEvent::Video {
                pts_90k,
                data,
                keyframe,
            } => Some(Frame {
                video: true,
                pts: *pts_90k,
                size: data.len(),
                hash: fnv1a64(data),
                keyframe: *keyframe,
            }),
            PsEvent::Audio { pts_90k, data } => Some(Frame {
                video: false,
                pts: *pts_90k,
                size: data.len(),
                hash: fnv1a64(data),
                keyframe: false,
            }),
            _ => None,
        })
        .collect()
}

/// Video then audio, each in stream order (the muxer puts audio after its frame's video, and
/// a video frame is only complete when the next one starts).
fn by_kind(mut f: Vec<Frame>) -> Vec<Frame> {
    f.sort_by_key(|f| (!f.video, f.pts));
    f
}

fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

fn pack_starts(ps: &[u8]) -> Vec<usize> {
    ps.windows(4)
        .enumerate()
        .filter(|(_, w)| *w == [0, 0, 1, 0xBA])
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn whole_files_give_the_wrapped_frames() {
    for name in FILES {
        let s = load(name);
        let (ev, stats) = demux([&s.ps[..]], &[]);
        let last_known = ev
            .iter()
            .rev()
            .find_map(|e| match e {
                PsEvent::StreamsKnown { video, audio } => Some((*video, *audio)),
                _ => None,
            })
            .unwrap();
        let audio = s.audio;
        assert_eq!(last_known, (Some(s.codec), audio), "{name}");
        if s.psm {
            // With a PSM everything is known before the first frame.
            assert_eq!(
                ev[0],
                PsEvent::StreamsKnown {
                    video: Some(s.codec),
                    audio
                },
                "{name}"
            );
        }
        assert_eq!(by_kind(frames_of(&ev)), by_kind(s.frames.clone()), "{name}");
        let video = s.frames.iter().filter(|f| f.video).count() as u64;
        assert_eq!(stats.video_frames, video, "{name}");
        assert_eq!(
            (stats.resyncs, stats.dropped, stats.skipped),
            (0, 0, 0),
            "{name}"
        );
        assert_eq!(stats.packs, video, "{name}: one pack per frame");
        assert!(s.frames[0].keyframe, "{name}: starts with an IDR");
    }
}

#[test]
fn every_split_gives_the_same_events() {
    // Every two-piece split of the small file.
    let s = load("h264_audio");
    let (whole, _) = demux([&s.ps[..]], &[]);
    for cut in 0..=s.ps.len() {
        let (ev, _) = demux([&s.ps[..cut], &s.ps[cut..]], &[]);
        assert_eq!(ev, whole, "cut at {cut}");
    }
    // Random pieces (1..=1400 bytes, as RTP payloads) over many seeds, for every file.
    for name in FILES {
        let s = load(name);
        let (whole, _) = demux([&s.ps[..]], &[]);
        for seed0 in 0..40u64 {
            let mut seed = seed0;
            let mut pieces = Vec::new();
            let mut at = 0;
            while at < s.ps.len() {
                let max = if seed0 % 2 == 0 { 1400 } else { 16 };
                let n = (1 + lcg(&mut seed) as usize % max).min(s.ps.len() - at);
                pieces.push(&s.ps[at..at + n]);
                at += n;
            }
            assert_eq!(demux(pieces, &[]).0, whole, "{name} seed {seed0}");
        }
        let (bytewise, _) = demux(s.ps.chunks(1), &[]);
        assert_eq!(bytewise, whole, "{name} one byte at a time");
    }
}

#[test]
fn garbage_between_packs_resyncs_and_keeps_the_frames() {
    for name in FILES {
        let s = load(name);
        let starts = pack_starts(&s.ps);
        let at = starts[starts.len() / 2];
        let mut seed = 99;
        let mut garbage: Vec<u8> = vec![0x47];
        garbage.extend((0..300).map(|_| lcg(&mut seed) as u8));
        garbage.extend_from_slice(&[0, 0, 1, 0xE0, 0xFF, 0xFF, 0, 0, 1, 0xBB, 0, 0, 1]);
        let mut g = s.ps[..at].to_vec();
        g.extend_from_slice(&garbage);
        g.extend_from_slice(&s.ps[at..]);
        let (ev, stats) = demux(g.chunks(1400), &[]);
        assert_eq!(by_kind(frames_of(&ev)), by_kind(s.frames.clone()), "{name}");
        assert_eq!(stats.resyncs, 1, "{name}");
        assert_eq!(stats.skipped, garbage.len() as u64, "{name}");
    }
}

#[test]
fn rtp_loss_drops_frames_never_corrupts_them() {
    for name in FILES {
        let s = load(name);
        let pieces: Vec<&[u8]> = s.ps.chunks(700).collect();
        for lost in 1..pieces.len() {
            // Piece `lost` never arrives.
            let kept: Vec<&[u8]> = pieces
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != lost)
                .map(|(_, p)| *p)
                .collect();
            let (ev, stats) = demux(kept, &[lost]);
            let got = frames_of(&ev);
            for f in &got {
                assert!(
                    s.frames.contains(f),
                    "{name}: lost piece {lost}: bad frame {f:?}"
                );
            }
            assert!(got.len() < s.frames.len() || stats.dropped == 0, "{name}");
            // Frames whose packs start after the lost piece's end come through.
            let end = (lost + 1) * 700;
            let next_pack = pack_starts(&s.ps).into_iter().find(|&p| p >= end);
            if let Some(p) = next_pack {
                let packs = pack_starts(&s.ps);
                let video: Vec<&Frame> = s.frames.iter().filter(|f| f.video).collect();
                // Without a PSM the codec is only known from the next parameter sets on.
                let first = packs
                    .iter()
                    .zip(&video)
                    .position(|(&q, f)| q >= p && (s.psm || f.keyframe))
                    .unwrap_or(packs.len());
                let later = packs.len() - first;
                let later_video = got.iter().filter(|f| f.video).count();
                assert!(
                    later_video + 1 >= later,
                    "{name}: lost {lost}: {later_video} < {later}"
                );
            }
        }
    }
}

#[test]
fn truncated_and_cut_streams_do_not_panic() {
    for name in FILES {
        let s = load(name);
        let step = (s.ps.len() / 200).max(1);
        for cut in (0..s.ps.len()).step_by(step) {
            let (ev, _) = demux([&s.ps[..cut]], &[]);
            let got = frames_of(&ev);
            let last_video = got.iter().rfind(|f| f.video).map(|f| f.pts);
            for f in &got {
                // Only the last video frame, cut short by the end of input and emitted by
                // end_of_frame(), may differ from what was wrapped.
                assert!(
                    s.frames.contains(f) || (f.video && Some(f.pts) == last_video),
                    "{name}: cut at {cut}: {f:?}"
                );
            }
            let _ = demux([&s.ps[cut..]], &[]);
            pms_core::ps::fuzz_check(&s.ps[..cut.min(4096)]);
        }
    }
}
