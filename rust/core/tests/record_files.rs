//! End-to-end: real media (made by ffmpeg, `tests/data/record/`) cut into RTP, recorded by
//! [`RecordWriter`] into `.webm`, `.mkv` and `.mp4` files, and judged by FFmpeg.
//!
//! The files are always written and checked for their structure here; the FFmpeg checks run
//! when `ffprobe` and `ffmpeg` are on PATH (CI installs Debian's ffmpeg: run `cargo test`
//! after that step). Each container must: decode with no error (`ffmpeg -v error ... -f
//! null -`), give back every video frame the writer wrote (`ffprobe -count_frames`), seek to
//! the middle, and, cut at 70 % of its length, still decode most of its frames.

mod record_media;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pms_core::media::CodecName;
use pms_core::record::sink::apply;
use pms_core::record::{Container, RecordWriter};
use record_media::*;

fn out_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("pms-record-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Records `sources` to `name`; `lose` drops the video (track 0) packet with this index.
fn record(
    name: &str,
    sources: &[Source],
    ts_base: &[u32],
    lose: Option<usize>,
) -> (PathBuf, Vec<u64>) {
    let specs: Vec<_> = sources.iter().map(|s| s.spec.clone()).collect();
    let mut w = RecordWriter::for_file_name(name, &specs).expect("writer");
    let t0 = Instant::now();
    let mut file = Vec::new();
    let mut video_packets = 0;
    let pkts = schedule(sources, ts_base);
    let crash_at = pkts.len() * 7 / 10;
    let mut video_frames_sent = 0u64;
    for (n, (track, at, pkt)) in pkts.into_iter().enumerate() {
        if n == crash_at {
            // What a kill -9 now leaves on disk: the writes so far, no finish.
            let crash = out_dir().join(format!("crash.{name}"));
            std::fs::write(&crash, &file).expect("write crash copy");
            std::fs::write(crash.with_extension("sent"), video_frames_sent.to_string())
                .expect("write count");
        }
        if track == 0 {
            video_packets += 1;
            // The marker bit ends a video frame.
            video_frames_sent += (pkt[1] & 0x80 != 0) as u64;
            if Some(video_packets - 1) == lose {
                continue;
            }
        }
        w.handle_rtp(t0 + Duration::from_nanos(at), track, &pkt)
            .expect("rtp");
        while let Some(wr) = w.poll_output() {
            apply(&mut file, &wr);
        }
    }
    w.finish();
    while let Some(wr) = w.poll_output() {
        apply(&mut file, &wr);
    }
    let path = out_dir().join(name);
    std::fs::write(&path, &file).expect("write file");
    let st = w.stats();
    eprintln!(
        "{name}: {} bytes, frames written {:?}, dropped {:?}",
        file.len(),
        st.frames_written,
        st.frames_dropped
    );
    (path, st.frames_written)
}

fn have_ffmpeg() -> bool {
    let ok = |c: &str| {
        Command::new(c)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    ok("ffprobe") && ok("ffmpeg")
}

fn run(cmd: &str, args: &[&str]) -> (String, String) {
    let o = Command::new(cmd).args(args).output().expect("run ffmpeg");
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Decoded frames of the first stream of `kind` ("v" or "a").
fn count_frames(path: &Path, kind: &str) -> u64 {
    let p = path.to_string_lossy();
    let sel = format!("{kind}:0");
    let (out, _) = run(
        "ffprobe",
        &[
            "-v",
            "quiet",
            "-count_frames",
            "-select_streams",
            &sel,
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            &p,
        ],
    );
    out.trim().trim_end_matches(',').parse().unwrap_or(0)
}

fn check_with_ffmpeg(path: &Path, video_written: u64, has_audio: bool) {
    if !have_ffmpeg() {
        eprintln!(
            "ffprobe/ffmpeg not on PATH: FFmpeg checks of {} skipped",
            path.display()
        );
        return;
    }
    let p = path.to_string_lossy().into_owned();
    let (_, err) = run(
        "ffprobe",
        &["-v", "error", "-show_format", "-show_streams", &p],
    );
    assert!(err.trim().is_empty(), "ffprobe errors on {p}: {err}");
    let (_, err) = run("ffmpeg", &["-v", "error", "-i", &p, "-f", "null", "-"]);
    assert!(err.trim().is_empty(), "ffmpeg decode errors on {p}: {err}");
    let decoded = count_frames(path, "v");
    assert_eq!(
        decoded, video_written,
        "{p}: video frames decoded vs written"
    );
    if has_audio {
        assert!(count_frames(path, "a") > 0, "{p}: no audio decoded");
        // Audio and video were sent from the same instant: they start together.
        let start = |sel: &str| {
            let (o, _) = run(
                "ffprobe",
                &[
                    "-v",
                    "error",
                    "-select_streams",
                    sel,
                    "-show_entries",
                    "stream=start_time",
                    "-of",
                    "csv=p=0",
                    &p,
                ],
            );
            o.trim().parse::<f64>().unwrap_or(f64::NAN)
        };
        let (v, a) = (start("v:0"), start("a:0"));
        assert!(
            (v - a).abs() <= 0.05,
            "{p}: video starts at {v}, audio at {a}"
        );
    }
    let (dur, _) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            &p,
        ],
    );
    let (_, err) = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-ss",
            "1.5",
            "-i",
            &p,
            "-frames:v",
            "5",
            "-f",
            "null",
            "-",
        ],
    );
    assert!(err.trim().is_empty(), "{p}: seek errors: {err}");
    // Cut at 70 %: most frames still decode.
    let data = std::fs::read(path).expect("read back");
    let cut = path.with_extension(format!(
        "cut.{}",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&cut, &data[..data.len() * 7 / 10]).expect("write cut");
    let cut_frames = count_frames(&cut, "v");
    eprintln!(
        "FFMPEG {}: duration {}s, video frames written {video_written}, decoded {decoded}, \
         cut at 70%: {cut_frames}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or(""),
        dur.trim()
    );
    assert!(
        cut_frames * 10 >= video_written * 5,
        "{p}: cut file decodes {cut_frames} of {video_written}"
    );
    // The copy taken mid-recording (as a kill -9 leaves it) decodes all but the last second.
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let crash = path.with_file_name(format!("crash.{name}"));
    let sent: u64 = std::fs::read_to_string(crash.with_extension("sent"))
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let crash_frames = count_frames(&crash, "v");
    let (_, err) = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            &crash.to_string_lossy(),
            "-f",
            "null",
            "-",
        ],
    );
    eprintln!(
        "FFMPEG crash copy of {name}: {sent} video frames sent, {crash_frames} decoded; \
         errors: {:?}",
        err.trim()
    );
    assert!(
        crash_frames + 25 >= sent,
        "{p}: the crash copy decodes {crash_frames} of {sent} sent (more than 1 s lost)"
    );
}

const NEAR_WRAP: u32 = u32::MAX - 90_000; // the video clock wraps one second in

fn case(name: &str, sources: Vec<Source>) {
    let base: Vec<u32> = sources
        .iter()
        .enumerate()
        .map(|(i, _)| if i == 0 { NEAR_WRAP } else { 12345 })
        .collect();
    let video_fed = sources[0].frames.len() as u64;
    let (path, written) = record(name, &sources, &base, None);
    assert_eq!(written[0], video_fed, "{name}: every video frame written");
    assert!(
        written.len() < 2 || written[1] as usize + 2 >= sources[1].frames.len(),
        "{name}: audio frames"
    );
    check_with_ffmpeg(&path, written[0], sources.len() > 1);
}

#[test]
fn webm_vp8_opus() {
    case("vp8_opus.webm", vec![vp8_source(), opus_source()]);
}

#[test]
fn webm_vp9_opus() {
    case("vp9_opus.webm", vec![vp9_source(), opus_source()]);
}

#[test]
fn webm_av1_opus() {
    case("av1_opus.webm", vec![av1_source(), opus_source()]);
}

#[test]
fn mkv_h264_bframes_opus() {
    case("h264_opus.mkv", vec![h264_source(), opus_source()]);
}

#[test]
fn mkv_h265_pcma() {
    case("h265_pcma.mkv", vec![h265_source(), pcma_source()]);
}

#[test]
fn mkv_h264_aac() {
    case("h264_aac.mkv", vec![h264_source(), aac_source()]);
}

#[test]
fn mp4_h264_bframes_aac() {
    case("h264_aac.mp4", vec![h264_source(), aac_source()]);
}

#[test]
fn mp4_h265_opus() {
    case("h265_opus.mp4", vec![h265_source(), opus_source()]);
}

#[test]
fn mp4_h264_opus() {
    case("h264_opus.mp4", vec![h264_source(), opus_source()]);
}

#[test]
fn loss_drops_frames_until_the_next_keyframe_and_the_file_still_decodes() {
    for name in ["loss.mkv", "loss.mp4"] {
        let sources = vec![h264_source(), opus_source()];
        let fed = sources[0].frames.len() as u64;
        // Drop a packet of the first GOP, after its keyframe.
        let (path, written) = record(name, &sources, &[7, 9], Some(60));
        assert!(
            written[0] < fed && written[0] >= fed / 2,
            "{name}: {written:?} of {fed}"
        );
        check_with_ffmpeg(&path, written[0], true);
    }
}

#[test]
fn containers_refuse_what_they_cannot_hold() {
    let vp8 = vec![vp8_source().spec];
    let h264 = vec![h264_source().spec];
    let e = RecordWriter::for_file_name("a.mp4", &vp8)
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.status(), 415);
    let e = RecordWriter::for_file_name("a.webm", &h264)
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.status(), 415);
    let e = RecordWriter::for_file_name("a.mp4", &[pcma_source().spec])
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.status(), 415);
    let e = RecordWriter::for_file_name("a.avi", &h264)
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.status(), 400);
    let e = RecordWriter::new(Container::Mkv, &[])
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.status(), 400);
    let av1 = spec(CodecName::Av1, 90_000, 0, "");
    let e = RecordWriter::new(Container::Mp4, std::slice::from_ref(&av1))
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.status(), 415);
    assert!(RecordWriter::new(Container::Webm, &[av1]).is_ok());
    assert!(RecordWriter::new(Container::Mkv, &[pcma_source().spec, h264_source().spec]).is_ok());
}

type MakeSources = fn() -> Vec<Source>;

/// Loss, duplicates and reordering applied to real streams: the files still decode without a
/// single FFmpeg error (what is written is never a broken frame); byte flips on top never
/// panic the writer.
#[test]
fn damaged_real_streams_never_make_corrupt_files() {
    let mut seed = 0x2545_f491u32;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let cases: Vec<(&str, MakeSources)> = vec![
        ("dmg_h264_aac.mkv", || vec![h264_source(), aac_source()]),
        ("dmg_h264_aac.mp4", || vec![h264_source(), aac_source()]),
        ("dmg_h265_opus.mp4", || vec![h265_source(), opus_source()]),
        ("dmg_vp8_opus.webm", || vec![vp8_source(), opus_source()]),
        ("dmg_vp9_opus.webm", || vec![vp9_source(), opus_source()]),
        ("dmg_av1_pcma.mkv", || vec![av1_source(), pcma_source()]),
    ];
    for (name, make) in cases {
        // PMS_RECORD_DAMAGE_ROUNDS=50 repeats the byte-flip run with other damage.
        let rounds = std::env::var("PMS_RECORD_DAMAGE_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1usize);
        let runs = std::iter::once(false).chain(std::iter::repeat_n(true, rounds));
        for flip in runs {
            let sources = make();
            let specs: Vec<_> = sources.iter().map(|s| s.spec.clone()).collect();
            let mut pkts = schedule(&sources, &[0, 0]);
            // 2 % lost, 1 % duplicated, 1 % swapped with the next one.
            let mut damaged = Vec::new();
            let mut i = 0;
            while i < pkts.len() {
                let r = rnd() % 100;
                if r < 2 {
                    i += 1;
                    continue;
                }
                if r < 3 {
                    damaged.push(pkts[i].clone());
                }
                if r < 4 && i + 1 < pkts.len() {
                    pkts.swap(i, i + 1);
                }
                let mut p = pkts[i].clone();
                if flip && rnd() % 20 == 0 {
                    let at = rnd() as usize % p.2.len();
                    p.2[at] ^= 1 << (rnd() % 8);
                }
                damaged.push(p);
                i += 1;
            }
            let mut w = RecordWriter::for_file_name(name, &specs).expect("writer");
            let t0 = Instant::now();
            let mut file = Vec::new();
            for (track, at, pkt) in damaged {
                let _ = w.handle_rtp(t0 + Duration::from_nanos(at), track, &pkt);
                while let Some(x) = w.poll_output() {
                    apply(&mut file, &x);
                }
            }
            w.finish();
            while let Some(x) = w.poll_output() {
                apply(&mut file, &x);
            }
            if flip || !have_ffmpeg() {
                continue;
            }
            let path = out_dir().join(name);
            std::fs::write(&path, &file).expect("write");
            let p = path.to_string_lossy().into_owned();
            let (_, err) = run("ffmpeg", &["-v", "error", "-i", &p, "-f", "null", "-"]);
            let st = w.stats();
            eprintln!(
                "DAMAGED {name}: written {:?}, dropped {:?}",
                st.frames_written, st.frames_dropped
            );
            assert!(err.trim().is_empty(), "{p}: {err}");
            assert_eq!(count_frames(&path, "v"), st.frames_written[0], "{p}");
        }
    }
}
