//! Router forwarding: header rewrite across a sequence wrap, mute and unmute, producer removal.

use std::time::Duration;

use pms_core::media::CodecName;
use pms_core::router::RouterEvent;
use pms_core::rtp;

mod common;

use common::*;

#[test]
fn rewrite_and_seq_wrap() {
    let mut s = setup(CodecName::Vp8, "", FB, true, 0);
    s.r.consumer_connected(C1, s.t0, &mut s.sink);
    assert_eq!(s.r.poll_event(), None);
    let mut sent = Vec::new();
    for (i, seq) in [65534u16, 65535, 0, 1].into_iter().enumerate() {
        let mut p = rtp_pkt(
            102,
            VSSRC,
            seq,
            1000 + i as u32 * 3000,
            i == 3,
            if i == 0 { VP8_KEY } else { VP8_DELTA },
        );
        // A publisher header extension (abs-send-time), to be dropped, and one CSRC.
        p[0] |= 0x11;
        p.splice(12..12, [0, 0, 0, 0x42, 0xBE, 0xDE, 0, 1, 0x22, 1, 2, 3]);
        s.r.handle_rtp(s.t0, P, &p, &mut s.sink);
        sent.push(p);
    }
    assert_eq!(
        s.r.poll_event(),
        Some(RouterEvent::ProducerStarted { producer: P })
    );
    let out = s.sink.take_rtp(C1);
    assert_eq!(out.len(), 4);
    let first = rtp::parse(&out[0]).unwrap();
    for (i, o) in out.iter().enumerate() {
        let v = rtp::parse(o).unwrap();
        let src = rtp::parse(&sent[i]).unwrap();
        assert_eq!(v.ssrc, 0x5001);
        assert_eq!(v.payload_type, 96);
        assert_eq!(v.seq, first.seq.wrapping_add(i as u16));
        assert_eq!(v.timestamp.wrapping_sub(first.timestamp), i as u32 * 3000);
        assert_eq!(v.marker, i == 3);
        assert_eq!(v.payload, src.payload);
        assert_eq!(v.csrcs, &[0, 0, 0, 0x42]);
        let (profile, ext) = v.extension.unwrap();
        assert_eq!(
            (profile, &ext[..2]),
            (0xBEDE, &[0x90, b'v'][..]),
            "mid extension replaces the publisher's"
        );
    }
    let st = s.r.stats();
    assert_eq!(
        (st.packets_in, st.packets_out, st.producers, st.consumers),
        (4, 4, 1, 1)
    );
}

#[test]
fn mute_and_unmute() {
    let mut s = setup(CodecName::Vp8, "", FB, false, 0);
    s.r.consumer_connected(C1, s.t0, &mut s.sink);
    keyframe_requests(&mut s.sink);
    let mut seq = 0u16;
    let mut send = |s: &mut Setup, payload: &[u8], ssrc: u32, pt: u8| {
        seq += 1;
        s.r.handle_rtp(
            s.t0,
            P,
            &rtp_pkt(pt, ssrc, seq, seq as u32 * 100, true, payload),
            &mut s.sink,
        );
        s.sink.take_rtp(C1).len()
    };
    assert_eq!(send(&mut s, VP8_KEY, VSSRC, 102), 1);
    assert_eq!(s.r.set_muted(C1, Some(true), None), Some((true, false)));
    assert_eq!(send(&mut s, VP8_DELTA, VSSRC, 102), 0);
    assert_eq!(send(&mut s, &[1], ASSRC, 111), 1, "audio still flows");
    assert_eq!(s.r.set_muted(C1, Some(false), None), Some((false, false)));
    s.r.handle_timeout(s.t0 + Duration::from_millis(600), &mut s.sink);
    assert_eq!(
        keyframe_requests(&mut s.sink),
        vec![(1, VSSRC)],
        "unmute asks for a keyframe"
    );
    assert_eq!(
        send(&mut s, VP8_DELTA, VSSRC, 102),
        0,
        "waits for a keyframe"
    );
    assert_eq!(send(&mut s, VP8_KEY, VSSRC, 102), 1);
    // Producer-side mute stops every consumer.
    assert_eq!(s.r.set_muted(P, None, Some(true)), Some((false, true)));
    assert_eq!(send(&mut s, &[1], ASSRC, 111), 0);
    assert_eq!(s.r.set_muted(99, None, None), None);
}

#[test]
fn video_seq_contiguous_across_mute() {
    let mut s = setup(CodecName::Vp8, "", FB, false, 0);
    s.r.consumer_connected(C1, s.t0, &mut s.sink);
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 1, 0, true, VP8_KEY),
        &mut s.sink,
    );
    s.r.set_muted(C1, Some(true), None);
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 2, 0, true, VP8_DELTA),
        &mut s.sink,
    );
    s.r.set_muted(C1, Some(false), None);
    s.r.handle_rtp(
        s.t0,
        P,
        &rtp_pkt(102, VSSRC, 3, 0, true, VP8_KEY),
        &mut s.sink,
    );
    let out: Vec<_> = s
        .sink
        .take_rtp(C1)
        .iter()
        .map(|p| rtp::parse(p).unwrap().seq)
        .collect();
    assert_eq!(out.len(), 2);
    assert_eq!(out[1], out[0].wrapping_add(1));
}

#[test]
fn producer_removal_returns_consumers() {
    let mut s = setup(CodecName::Vp8, "", FB, false, 0);
    s.r.add_consumer(C2, P, consumer_tracks(2, CodecName::Vp8, false), s.t0)
        .unwrap();
    assert!(s.r.add_consumer(C2, P, vec![], s.t0).is_err());
    assert!(s.r.add_consumer(30, 999, vec![], s.t0).is_err());
    let mut bad = consumer_tracks(3, CodecName::Vp8, false);
    bad[0].producer_track = 1; // video consumer track on the audio producer track
    assert!(s.r.add_consumer(31, P, bad, s.t0).is_err());
    assert!(s.r.remove(C2).is_empty());
    let mut gone = s.r.remove(P);
    gone.sort();
    assert_eq!(gone, vec![C1]);
    assert_eq!((s.r.stats().producers, s.r.stats().consumers), (0, 0));
    assert!(s.r.remove(C1).is_empty());
    assert_eq!(s.r.poll_timeout(), None);
}
