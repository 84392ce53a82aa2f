//! The SDP target: [`fuzz_sdp`] hands any text to the publisher and player answerers; Ok or an
//! `SdpError`, never a panic, and an Ok answer parses and yields a usable transport.

use std::io::Cursor;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtc_sdp::description::session::SessionDescription;

use super::{codec, fuzz_identity, ICE_PWD, ICE_UFRAG};
use crate::media::{CodecName, HeaderExtensions, MediaKind, ProducerTrack};
use crate::sdp::{answer_player, answer_publisher, AnswerContext, RemoteParams, SdpError};
use crate::transport::WebRtcTransport;

/// Our side of every fuzzed answer.
const SDP_FINGERPRINT: &str = "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99";

/// The stream a fuzzed player asks for: Opus audio, VP8 video, H.264 (mode 1) video.
pub fn fuzz_source_tracks() -> Vec<ProducerTrack> {
    let ext = HeaderExtensions::default();
    [
        (MediaKind::Audio, codec(CodecName::Opus, 111, None)),
        (MediaKind::Video, codec(CodecName::Vp8, 96, Some(97))),
        (MediaKind::Video, codec(CodecName::H264, 102, Some(103))),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (kind, codec))| ProducerTrack {
        kind,
        mid: i.to_string(),
        codec,
        ssrc: Some(0x1000 + i as u32),
        rtx_ssrc: None,
        extensions: ext,
    })
    .collect()
}

/// Invariant: `data` as (lossy UTF-8) text is answered by [`answer_publisher`] and
/// [`answer_player`] (source [`fuzz_source_tracks`]) with Ok or an [`SdpError`] (status 415 or
/// 422), never a panic. An Ok answer parses with `rtc-sdp`, keeps one m-line per offered
/// m-line with exactly one accepted (port != 0) per returned track, and its `RemoteParams` are
/// usable credentials that [`WebRtcTransport::new`] takes without panicking.
pub fn fuzz_sdp(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let candidates: [SocketAddr; 2] = [
        SocketAddr::from(([192, 0, 2, 1], 20000)),
        SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 20000)),
    ];
    let ctx = AnswerContext {
        ice_ufrag: "srvU",
        ice_pwd: "serverpassword0123456789ab",
        fingerprint: SDP_FINGERPRINT,
        candidates: &candidates,
        max_bitrate: 1_500_000,
    };
    match answer_publisher(&text, &ctx) {
        Ok((answer, tracks, remote)) => {
            let mids: Vec<&str> = tracks.iter().map(|t| t.mid.as_str()).collect();
            check_answer(&answer, &mids, &remote);
        }
        Err(e) => check_sdp_error(&e),
    }
    let source = fuzz_source_tracks();
    let mut next_ssrc = 0xA000_0000u32;
    let mut new_ssrc = || {
        next_ssrc += 1;
        next_ssrc
    };
    match answer_player(&text, &source, &ctx, &mut new_ssrc) {
        Ok((answer, tracks, remote)) => {
            for t in &tracks {
                let src = &source[t.producer_track];
                assert_eq!((t.kind, t.codec.name), (src.kind, src.codec.name));
            }
            let mut used: Vec<usize> = tracks.iter().map(|t| t.producer_track).collect();
            used.sort_unstable();
            used.dedup();
            assert_eq!(used.len(), tracks.len(), "a source track used twice");
            let mids: Vec<&str> = tracks.iter().map(|t| t.mid.as_str()).collect();
            check_answer(&answer, &mids, &remote);
        }
        Err(e) => check_sdp_error(&e),
    }
}

fn check_sdp_error(e: &SdpError) {
    assert!(matches!(e.status(), 415 | 422));
    let _ = e.to_string();
}

fn check_answer(answer: &str, mids: &[&str], remote: &RemoteParams) {
    let sd = match SessionDescription::unmarshal(&mut Cursor::new(answer.as_bytes())) {
        Ok(sd) => sd,
        Err(e) => panic!("our answer does not parse ({e}):\n{answer}"),
    };
    let accepted: Vec<&str> = sd
        .media_descriptions
        .iter()
        .filter(|m| m.media_name.port.value != 0)
        .map(|m| {
            m.attributes
                .iter()
                .find(|a| a.key == "mid")
                .and_then(|a| a.value.as_deref())
                .unwrap_or("")
        })
        .collect();
    assert_eq!(
        accepted.len(),
        mids.len(),
        "accepted m-lines vs tracks:\n{answer}"
    );
    for (got, want) in accepted.iter().zip(mids) {
        // A track without a=mid gets its m-line index as mid; the answer then has none.
        assert!(
            got.is_empty() || got == want,
            "mid {got:?} != {want:?}:\n{answer}"
        );
    }
    assert!(!remote.ice_ufrag.is_empty() && !remote.ice_ufrag.contains(':'));
    assert!(!remote.ice_pwd.is_empty());
    assert_eq!(remote.fingerprint_algorithm, "sha-256");
    // Whatever the offer's fingerprint text, building the transport is Ok or Err, no panic.
    let _ = WebRtcTransport::new(
        1,
        ICE_UFRAG.into(),
        ICE_PWD.into(),
        remote.clone(),
        fuzz_identity(),
        Instant::now(),
        Duration::from_secs(10),
    );
}
