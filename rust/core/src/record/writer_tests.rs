use super::*;
use crate::record::sink::apply;
use std::time::Duration;

fn rtp(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 96 | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 9]);
    p.extend_from_slice(payload);
    p
}

const VP8_KEY: [u8; 11] = [
    0x10, 0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00,
];
const VP8_DELTA: [u8; 3] = [0x10, 0x51, 0x00];

fn specs() -> Vec<TrackSpec> {
    vec![
        TrackSpec {
            codec: CodecName::Vp8,
            clock_rate: 90_000,
            channels: 0,
            fmtp: String::new(),
        },
        TrackSpec {
            codec: CodecName::Opus,
            clock_rate: 48_000,
            channels: 2,
            fmtp: String::new(),
        },
    ]
}

fn drain(w: &mut RecordWriter, file: &mut Vec<u8>) {
    while let Some(x) = w.poll_output() {
        apply(file, &x);
    }
}

#[test]
fn the_header_waits_for_the_video_keyframe_and_keeps_the_audio_before_it() {
    let mut w = RecordWriter::new(Container::Webm, &specs()).expect("webm");
    let t0 = Instant::now();
    let mut file = Vec::new();
    // 10 Opus frames, a delta frame (dropped: no keyframe yet), then the keyframe.
    for i in 0..10u16 {
        let at = t0 + Duration::from_millis(20 * i as u64);
        w.handle_rtp(at, 1, &rtp(i, 960 * i as u32, true, &[0xfc, 1]))
            .expect("rtp");
    }
    w.handle_rtp(t0, 0, &rtp(1, 0, true, &VP8_DELTA))
        .expect("rtp");
    drain(&mut w, &mut file);
    assert!(!w.started() && file.is_empty());
    w.handle_rtp(
        t0 + Duration::from_millis(200),
        0,
        &rtp(2, 18_000, true, &VP8_KEY),
    )
    .expect("rtp");
    assert!(w.started());
    w.finish();
    drain(&mut w, &mut file);
    let st = w.stats();
    assert_eq!(st.frames_written, vec![1, 10]);
    assert_eq!(st.frames_dropped, vec![1, 0]);
    assert_eq!(st.bytes, file.len() as u64);
    assert!(file.windows(4).any(|x| x == b"webm"));
}

#[test]
fn a_track_that_never_gets_ready_is_left_out_after_the_wait() {
    let mut w = RecordWriter::new(Container::Mkv, &specs()).expect("mkv");
    let t0 = Instant::now();
    for i in 0..200u16 {
        let at = t0 + Duration::from_millis(20 * i as u64);
        w.handle_rtp(at, 1, &rtp(i, 960 * i as u32, true, &[0xfc]))
            .expect("rtp");
        if i % 2 == 0 {
            w.handle_rtp(at, 0, &rtp(i / 2, 1800 * i as u32, true, &VP8_DELTA))
                .expect("rtp");
        }
    }
    assert!(w.started());
    assert_eq!(w.kinds(), vec![MediaKind::Audio]);
    w.finish();
    let st = w.stats();
    assert_eq!(st.frames_written, vec![0, 200]);
    assert_eq!(st.frames_dropped[0], 100);
}

#[test]
fn frames_reach_the_container_in_time_order_across_tracks() {
    let mut w = RecordWriter::new(Container::Mkv, &specs()).expect("mkv");
    let t0 = Instant::now();
    w.handle_rtp(t0, 0, &rtp(0, 0, true, &VP8_KEY))
        .expect("rtp");
    w.handle_rtp(t0, 1, &rtp(0, 0, true, &[0xfc])).expect("rtp");
    // Video runs 200 ms ahead, then the audio of that time arrives in a burst.
    for i in 1..=5u16 {
        let at = t0 + Duration::from_millis(40 * i as u64);
        w.handle_rtp(at, 0, &rtp(i, 3600 * i as u32, true, &VP8_DELTA))
            .expect("rtp");
    }
    for i in 1..=10u16 {
        w.handle_rtp(
            t0 + Duration::from_millis(200),
            1,
            &rtp(i, 960 * i as u32, true, &[0xfc]),
        )
        .expect("rtp");
    }
    w.finish();
    let mut file = Vec::new();
    drain(&mut w, &mut file);
    // SimpleBlocks: A3, size, track (81/82), 16-bit relative time. One cluster: the relative
    // times must not go back.
    let mut times = Vec::new();
    let mut at = 0;
    while let Some(p) = file[at..]
        .windows(2)
        .position(|x| x[0] == 0xa3 && x[1] & 0x80 != 0)
    {
        let b = at + p;
        if matches!(file.get(b + 2), Some(0x81 | 0x82)) {
            times.push(i16::from_be_bytes([file[b + 3], file[b + 4]]));
        }
        at = b + 2;
    }
    assert_eq!(times.len(), 17, "{times:?}");
    assert!(times.windows(2).all(|x| x[0] <= x[1]), "{times:?}");
}

#[test]
fn bad_packets_and_unknown_tracks_are_counted_not_fatal() {
    let mut w = RecordWriter::new(Container::Mp4, &specs()[1..]).expect("mp4 opus");
    let t0 = Instant::now();
    assert!(w.handle_rtp(t0, 0, &[1, 2, 3]).is_err());
    assert!(w.handle_rtp(t0, 7, &rtp(0, 0, true, &[1])).is_ok());
    assert_eq!(w.stats().bad_packets, 1);
    w.finish();
    w.finish();
    assert!(w.poll_output().is_none(), "never started: nothing to write");
}

#[test]
fn sender_reports_place_tracks_before_the_first_frame_is_written() {
    let mut w = RecordWriter::new(Container::Mkv, &specs()).expect("mkv");
    let t0 = Instant::now();
    // Both first packets arrive together; the reports say the audio's RTP 0 was captured
    // 100 ms after the video's RTP 0.
    let ntp = 5000u64 << 32;
    w.handle_sender_report(0, ntp, 0);
    w.handle_sender_report(1, ntp + (1u64 << 32) / 10, 0);
    w.handle_rtp(t0, 1, &rtp(0, 0, true, &[0xfc])).expect("rtp");
    w.handle_rtp(t0, 0, &rtp(0, 0, true, &VP8_KEY))
        .expect("rtp");
    w.finish();
    let mut file = Vec::new();
    drain(&mut w, &mut file);
    // The audio block (track 2) is 100 ms into the cluster.
    let at = file
        .windows(3)
        .position(|x| x == [0xa3, 0x85, 0x82])
        .expect("audio block");
    assert_eq!(i16::from_be_bytes([file[at + 3], file[at + 4]]), 100);
}

#[test]
fn a_writer_can_move_to_a_worker_thread() {
    fn send<T: Send>() {}
    send::<RecordWriter>();
}

#[test]
fn h264_parameter_sets_from_the_fmtp_describe_the_track() {
    let spec = TrackSpec {
        codec: CodecName::H264,
        clock_rate: 90_000,
        channels: 0,
        fmtp: "packetization-mode=1;sprop-parameter-sets=Z2QADazZQUH7ARAAAAMAEAAAAwMg8UKZYA==,aOvjyyLA".to_string(),
    };
    let mut w = RecordWriter::new(Container::Mp4, &[spec]).expect("mp4");
    let t0 = Instant::now();
    // IDR slices only, no SPS/PPS in band.
    w.handle_rtp(t0, 0, &rtp(0, 0, true, &[0x65, 0x88, 0x80]))
        .expect("rtp");
    assert!(w.started(), "the fmtp's sets and the IDR are enough");
    for i in 1..30u16 {
        let at = t0 + Duration::from_millis(40 * i as u64);
        w.handle_rtp(at, 0, &rtp(i, 3600 * i as u32, true, &[0x41, 0x9a, 0x02]))
            .expect("rtp");
    }
    w.finish();
    let mut file = Vec::new();
    drain(&mut w, &mut file);
    assert_eq!(w.stats().frames_written, vec![30]);
    assert_eq!(w.stats().last_frame_ns, 29 * 40_000_000);
    let avcc = file.windows(4).position(|x| x == b"avcC").expect("avcC");
    assert_eq!(&file[avcc + 4..avcc + 8], &[1, 0x64, 0x00, 0x0d]);
    assert!(file.windows(4).any(|x| x == b"mfra"));
}
