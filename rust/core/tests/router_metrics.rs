//! Router metrics: per-producer counters by kind (in, out once per delivery, lost, NACKs,
//! keyframe requests) and the join histogram (connect to first keyframe sent).

use std::time::Duration;

use pms_core::media::CodecName;
use pms_core::router::{JoinHistogram, ProducerStats, JOIN_BUCKETS_MS};
use pms_core::rtcp;

mod common;

use common::*;

const C3: u64 = 22;

fn stats_of(s: &Setup) -> ProducerStats {
    let mut v = Vec::new();
    s.r.producer_stats(&mut v);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].0, P);
    v[0].1
}

#[test]
fn producer_counters_by_kind() {
    let mut s = setup(CodecName::Vp8, "", FB, false, 0);
    s.r.add_consumer(C2, P, consumer_tracks(2, CodecName::Vp8, false), s.t0)
        .unwrap();
    s.r.consumer_connected(C1, s.t0, &mut s.sink);
    s.r.consumer_connected(C2, s.t0, &mut s.sink);
    let plis_on_connect = stats_of(&s).video.plis;
    assert!(
        plis_on_connect >= 1,
        "a join asks the publisher for a keyframe"
    );
    let t = s.t0 + Duration::from_millis(10);
    let key = rtp_pkt(102, VSSRC, 1, 3000, true, VP8_KEY);
    let delta = rtp_pkt(102, VSSRC, 2, 6000, true, VP8_DELTA);
    // seq 3 and 4 lost.
    let delta2 = rtp_pkt(102, VSSRC, 5, 9000, true, VP8_DELTA);
    let audio = rtp_pkt(111, ASSRC, 7, 960, false, &[0xfc, 1, 2, 3]);
    for p in [&key, &delta, &delta2, &audio] {
        s.r.handle_rtp(t, P, p, &mut s.sink);
    }
    let st = stats_of(&s);
    assert_eq!(st.consumers, 2);
    assert_eq!(st.video.packets_in, 3);
    assert_eq!(
        st.video.bytes_in,
        (key.len() + delta.len() + delta2.len()) as u64
    );
    assert_eq!(st.audio.packets_in, 1);
    assert_eq!(st.audio.bytes_in, audio.len() as u64);
    assert_eq!(st.video.packets_out, 6, "3 packets x 2 consumers");
    assert_eq!(st.audio.packets_out, 2);
    let out_c1: u64 = s.sink.take_rtp(C1).iter().map(|p| p.len() as u64).sum();
    let out_c2: u64 = s.sink.take_rtp(C2).iter().map(|p| p.len() as u64).sum();
    assert_eq!(st.video.bytes_out + st.audio.bytes_out, out_c1 + out_c2);
    assert_eq!(st.video.lost, 2);
    assert_eq!(st.audio.lost, 0);
    assert_eq!((st.video.nacks, st.audio.nacks), (0, 0));
    // A NACK from C1 about its video track: counted there, answered from the buffer.
    let mut nack = Vec::new();
    rtcp::write_nack(&mut nack, 0x1234, 0x5001, &[0]);
    s.r.handle_rtcp(t, C1, &nack, &mut s.sink);
    let st2 = stats_of(&s);
    assert_eq!(st2.video.nacks, 1);
    assert_eq!(st2.audio.nacks, 0);
    // The sum over producers matches the router's global counters.
    let g = s.r.stats();
    assert_eq!(g.nacks, 1);
    assert_eq!(
        st2.video.packets_out + st2.audio.packets_out,
        g.packets_out,
        "every packet out belongs to a producer"
    );
    assert_eq!(st2.video.packets_in + st2.audio.packets_in, g.packets_in);
    assert_eq!(st2.video.plis + st2.audio.plis, g.plis);
}

#[test]
fn join_histogram_connect_to_keyframe() {
    let mut s = setup(CodecName::Vp8, "", FB, false, 0);
    s.r.add_consumer(C2, P, consumer_tracks(2, CodecName::Vp8, false), s.t0)
        .unwrap();
    s.r.consumer_connected(C1, s.t0, &mut s.sink);
    s.r.consumer_connected(C2, s.t0 + Duration::from_millis(200), &mut s.sink);
    // Audio and delta frames do not end a join.
    s.r.handle_rtp(
        s.t0 + Duration::from_millis(250),
        P,
        &rtp_pkt(111, ASSRC, 1, 960, false, &[0xfc, 1]),
        &mut s.sink,
    );
    s.r.handle_rtp(
        s.t0 + Duration::from_millis(260),
        P,
        &rtp_pkt(102, VSSRC, 1, 3000, true, VP8_DELTA),
        &mut s.sink,
    );
    assert_eq!(s.r.join_histogram(), JoinHistogram::default());
    let tk = s.t0 + Duration::from_millis(300);
    s.r.handle_rtp(
        tk,
        P,
        &rtp_pkt(102, VSSRC, 2, 6000, true, VP8_KEY),
        &mut s.sink,
    );
    let h = s.r.join_histogram();
    assert_eq!(h.count, 2);
    assert_eq!(h.sum_micros, 300_000 + 100_000);
    // Cumulative: 100 ms (C2) in le=0.1 onwards; 300 ms (C1) in le=0.5 onwards.
    let expect: Vec<u64> = JOIN_BUCKETS_MS
        .iter()
        .map(|&b| (b >= 100) as u64 + (b >= 300) as u64)
        .collect();
    assert_eq!(h.buckets.to_vec(), expect);
    // A player joining with the keyframe in the cache gets it on connect: 0 s.
    s.r.add_consumer(C3, P, consumer_tracks(3, CodecName::Vp8, false), tk)
        .unwrap();
    s.r.consumer_connected(C3, tk + Duration::from_millis(5), &mut s.sink);
    let h = s.r.join_histogram();
    assert_eq!(h.count, 3);
    assert_eq!(
        h.buckets[0], 1,
        "the replayed join (0 s) is the only one in le=0.05"
    );
    // A reconnect after a pause is not a new join.
    s.r.pause_consumer(C1);
    s.r.consumer_connected(C1, tk + Duration::from_millis(50), &mut s.sink);
    s.r.handle_rtp(
        tk + Duration::from_millis(60),
        P,
        &rtp_pkt(102, VSSRC, 3, 9000, true, VP8_KEY),
        &mut s.sink,
    );
    assert_eq!(s.r.join_histogram().count, 3);
}
