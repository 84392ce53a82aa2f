//! SDP answers for real offers (aiortc 1.16 and a Chrome-style offer in `tests/data/`).
//! The answers are also written to `$TMPDIR/pms-sdp-answers/` so `tests/data/check_answers.py`
//! can feed them to aiortc's `setRemoteDescription`.

use std::net::SocketAddr;

use pms_core::media::{CodecName, MediaKind, ProducerTrack};
use pms_core::sdp::{answer_player, answer_publisher, AnswerContext, SdpError};

fn data(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn dump(name: &str, text: &str) {
    let dir = std::env::temp_dir().join("pms-sdp-answers");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(name), text);
}

const FP: &str = "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99";

fn ctx<'a>(cands: &'a [SocketAddr], max_bitrate: u32) -> AnswerContext<'a> {
    AnswerContext {
        ice_ufrag: "srvU",
        ice_pwd: "serverpassword0123456789ab",
        fingerprint: FP,
        candidates: cands,
        max_bitrate,
    }
}

fn cands() -> Vec<SocketAddr> {
    vec![
        "127.0.0.1:20000".parse().unwrap(),
        "[::1]:20000".parse().unwrap(),
    ]
}

fn m_sections(answer: &str) -> Vec<&str> {
    answer.split("\r\nm=").skip(1).collect()
}

#[test]
fn aiortc_publisher_av() {
    let c = cands();
    let (answer, tracks, remote) =
        answer_publisher(&data("aiortc_publish_av.sdp"), &ctx(&c, 1_500_000)).unwrap();
    dump("aiortc_publish_av.answer.sdp", &answer);
    assert_eq!(remote.fingerprint_algorithm, "sha-256");
    assert!(remote.fingerprint.starts_with("42:E4:61"));
    assert_eq!(remote.ice_ufrag, "Kti4");
    assert_eq!(tracks.len(), 2);
    let (a, v) = (&tracks[0], &tracks[1]);
    assert_eq!(
        (
            a.kind,
            a.codec.name,
            a.codec.payload_type,
            a.codec.clock_rate,
            a.codec.channels
        ),
        (MediaKind::Audio, CodecName::Opus, 96, 48000, 2)
    );
    assert_eq!(a.ssrc, Some(127876360));
    assert_eq!(a.extensions.mid, Some(1));
    assert_eq!(a.extensions.audio_level, Some(2));
    assert_eq!(
        (
            v.kind,
            v.codec.name,
            v.codec.payload_type,
            v.codec.rtx_payload_type
        ),
        (MediaKind::Video, CodecName::Vp8, 97, Some(98))
    );
    assert_eq!((v.ssrc, v.rtx_ssrc), (Some(1142776756), Some(1310014020)));
    assert_eq!(v.codec.rtcp_fb, vec!["nack", "nack pli", "goog-remb"]);
    assert_eq!(v.extensions.abs_send_time, Some(3));
    assert_eq!(v.mid, "1");

    assert!(answer.contains("\r\na=ice-lite\r\n"));
    assert!(answer.contains("\r\na=group:BUNDLE 0 1\r\n"));
    let ms = m_sections(&answer);
    assert_eq!(ms.len(), 2);
    assert!(ms[0].starts_with("audio 20000 UDP/TLS/RTP/SAVPF 96\r\n"));
    assert!(ms[1].starts_with("video 20000 UDP/TLS/RTP/SAVPF 97 98\r\n"));
    for m in &ms {
        assert!(m.contains("a=recvonly\r\n"));
        assert!(m.contains("a=setup:passive\r\n"));
        assert!(m.contains(&format!("a=fingerprint:sha-256 {FP}\r\n")));
        assert!(m.contains("a=ice-ufrag:srvU\r\n"));
        assert!(m.contains("c=IN IP4 127.0.0.1\r\n"));
        assert!(m.contains("a=candidate:1 1 udp 2130706431 127.0.0.1 20000 typ host\r\n"));
        assert!(m.contains(" ::1 20000 typ host\r\n"));
        assert!(m.contains("a=end-of-candidates"));
        assert!(m.contains("a=rtcp-mux\r\n"));
    }
    assert!(!ms[0].contains("b=AS"));
    assert!(ms[1].contains("b=AS:1500\r\nb=TIAS:1500000\r\n"));
    assert!(ms[1].contains("a=rtpmap:98 rtx/90000\r\na=fmtp:98 apt=97\r\n"));
    assert!(!ms[1].contains("H264"));
}

#[test]
fn chrome_publisher_takes_first_forwardable_codec() {
    let c = cands();
    let (answer, tracks, remote) =
        answer_publisher(&data("chrome_publish_av.sdp"), &ctx(&c, 0)).unwrap();
    dump("chrome_publish_av.answer.sdp", &answer);
    assert_eq!(remote.ice_ufrag, "Fz6C");
    assert_eq!(tracks.len(), 2);
    assert_eq!(
        (tracks[0].codec.name, tracks[0].codec.payload_type),
        (CodecName::Opus, 111)
    );
    assert_eq!(tracks[0].codec.fmtp, "minptime=10;useinbandfec=1");
    assert!(
        tracks[0].codec.rtcp_fb.is_empty(),
        "transport-cc is left out"
    );
    assert_eq!(tracks[0].extensions.transport_cc, None);
    assert_eq!(tracks[0].extensions.abs_send_time, Some(2));
    assert_eq!(
        (
            tracks[1].codec.name,
            tracks[1].codec.payload_type,
            tracks[1].codec.rtx_payload_type
        ),
        (CodecName::Vp8, 96, Some(97))
    );
    assert_eq!(
        tracks[1].codec.rtcp_fb,
        vec!["goog-remb", "ccm fir", "nack", "nack pli"]
    );
    assert_eq!(
        (tracks[1].ssrc, tracks[1].rtx_ssrc),
        (Some(1510403557), Some(3313191522))
    );
    let ms = m_sections(&answer);
    assert_eq!(ms.len(), 3);
    assert!(ms[2].starts_with("application 0 UDP/DTLS/SCTP webrtc-datachannel\r\n"));
    assert!(ms[2].contains("a=mid:2\r\n"));
    assert!(answer.contains("a=group:BUNDLE 0 1\r\n"));
    assert!(ms[0].contains("a=rtcp-rsize\r\n"));
    assert!(!answer.contains("transport-wide-cc"));
    assert!(!answer.contains("toffset"));
    assert!(!answer.contains("b=AS"));
}

#[test]
fn chrome_publisher_h264_keeps_profile_and_skips_mode_0() {
    let c = cands();
    // Drop VP8 (96/97): the first forwardable video codec is then H264 102 (mode 1).
    let offer = data("chrome_publish_av.sdp")
        .replace("UDP/TLS/RTP/SAVPF 96 97 102", "UDP/TLS/RTP/SAVPF 102");
    let (_, tracks, _) = answer_publisher(&offer, &ctx(&c, 0)).unwrap();
    assert_eq!(
        (
            tracks[1].codec.name,
            tracks[1].codec.payload_type,
            tracks[1].codec.rtx_payload_type
        ),
        (CodecName::H264, 102, Some(103))
    );
    assert!(tracks[1].codec.fmtp.contains("profile-level-id=42001f"));
    // only mode-0 H264 and the High profile mode 1 later: mode 0 is skipped
    let offer = data("chrome_publish_av.sdp").replace("UDP/TLS/RTP/SAVPF 96 97 102 103 104 105 106 107 108 109 127 125 39 40 45 46 98 99 100 101 112", "UDP/TLS/RTP/SAVPF 104 105 112");
    let (answer, tracks, _) = answer_publisher(&offer, &ctx(&c, 0)).unwrap();
    assert_eq!(tracks[1].codec.payload_type, 112);
    assert!(answer.contains(
        "a=fmtp:112 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f\r\n"
    ));
}

fn publisher_tracks() -> Vec<ProducerTrack> {
    let c = cands();
    // A High-profile H264 publisher plus Opus
    let offer = data("chrome_publish_av.sdp").replace("UDP/TLS/RTP/SAVPF 96 97 102 103 104 105 106 107 108 109 127 125 39 40 45 46 98 99 100 101 112", "UDP/TLS/RTP/SAVPF 112");
    answer_publisher(&offer, &ctx(&c, 0)).unwrap().1
}

#[test]
fn aiortc_player_gets_its_own_h264_profile() {
    let c = cands();
    let source = publisher_tracks();
    assert_eq!(source[1].codec.name, CodecName::H264);
    let mut next = 1000u32;
    let mut new_ssrc = || {
        next += 1;
        next
    };
    let (answer, tracks, remote) = answer_player(
        &data("aiortc_play_av.sdp"),
        &source,
        &ctx(&c, 0),
        &mut new_ssrc,
    )
    .unwrap();
    dump("aiortc_play_av.answer.sdp", &answer);
    assert!(!remote.ice_ufrag.is_empty());
    assert_eq!(tracks.len(), 2);
    assert_eq!(
        (
            tracks[0].codec.name,
            tracks[0].codec.payload_type,
            tracks[0].producer_track,
            tracks[0].ssrc
        ),
        (CodecName::Opus, 96, 0, 1001)
    );
    let v = &tracks[1];
    assert_eq!((v.codec.name, v.producer_track), (CodecName::H264, 1));
    // the player's first H264 with mode 1 (aiortc: 99, 42001f), its RTX 100
    assert_eq!(
        (v.codec.payload_type, v.codec.rtx_payload_type),
        (99, Some(100))
    );
    assert!(v.codec.fmtp.contains("profile-level-id=42001f"));
    assert_eq!((v.ssrc, v.rtx_ssrc), (1002, Some(1003)));
    assert_eq!(v.extensions.mid, Some(1));
    assert_eq!(v.extensions.abs_send_time, None);
    let ms = m_sections(&answer);
    assert!(ms[1].starts_with("video 20000 UDP/TLS/RTP/SAVPF 99 100\r\n"));
    assert!(ms[1].contains("a=sendonly\r\n"));
    assert!(ms[1].contains("a=ssrc-group:FID 1002 1003\r\n"));
    assert!(ms[1].contains("a=ssrc:1002 cname:"));
    assert!(ms[1].contains("a=msid:"));
    assert!(ms[1].contains("a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"));
    assert!(!ms[1].contains("abs-send-time"));
}

#[test]
fn player_without_common_codec_gets_415_naming_the_stream() {
    let c = cands();
    let source = publisher_tracks();
    // A player that only takes VP8 video and G722 audio
    let offer = data("chrome_publish_av.sdp")
        .replace("a=sendonly", "a=recvonly")
        .replace("UDP/TLS/RTP/SAVPF 96 97 102 103 104 105 106 107 108 109 127 125 39 40 45 46 98 99 100 101 112 113 116 117 118", "UDP/TLS/RTP/SAVPF 96 97")
        .replace("UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126", "UDP/TLS/RTP/SAVPF 9");
    let err = answer_player(&offer, &source, &ctx(&c, 0), &mut || 5).unwrap_err();
    assert_eq!(err.status(), 415);
    let SdpError::NoCommonCodec(msg) = err else {
        panic!()
    };
    assert!(
        msg.contains("video/H264") && msg.contains("audio/opus"),
        "{msg}"
    );
}

#[test]
fn player_partial_match_rejects_the_other_mline() {
    let c = cands();
    let source = publisher_tracks();
    let offer = data("chrome_publish_av.sdp")
        .replace("a=sendonly", "a=recvonly")
        .replace(
            "UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
            "UDP/TLS/RTP/SAVPF 9",
        );
    let (answer, tracks, _) = answer_player(&offer, &source, &ctx(&c, 0), &mut || 5).unwrap();
    dump("chrome_play_video_only.answer.sdp", &answer);
    assert_eq!(tracks.len(), 1);
    assert_eq!(tracks[0].kind, MediaKind::Video);
    assert_eq!(
        tracks[0].codec.payload_type, 102,
        "Chrome's first mode-1 H264"
    );
    let ms = m_sections(&answer);
    assert!(ms[0].starts_with("audio 0 UDP/TLS/RTP/SAVPF 9\r\n"));
    assert!(ms[0].contains("a=inactive"));
    // aiortc refuses any m-section without ICE credentials, rejected ones included.
    assert!(ms[0].contains("a=ice-ufrag:") && ms[0].contains("a=ice-pwd:"));
    assert!(ms[0].contains("a=fingerprint:sha-256 "));
    assert!(answer.contains("a=group:BUNDLE 1\r\n"));
}

#[test]
fn player_line_without_a_source_track_stays_bundled_and_inactive() {
    let c = cands();
    let source: Vec<_> = publisher_tracks()
        .into_iter()
        .filter(|t| t.kind == MediaKind::Video)
        .collect();
    let offer = data("chrome_publish_av.sdp").replace("a=sendonly", "a=recvonly");
    let (answer, tracks, _) = answer_player(&offer, &source, &ctx(&c, 0), &mut || 5).unwrap();
    assert_eq!(tracks.len(), 1);
    assert_eq!(tracks[0].kind, MediaKind::Video);
    let ms = m_sections(&answer);
    assert!(!ms[0].starts_with("audio 0 "), "{}", ms[0]);
    assert!(ms[0].contains("a=inactive") && !ms[0].contains("a=ssrc:"));
    assert!(ms[0].contains("a=rtpmap:111 opus/48000/2"), "{}", ms[0]);
    assert!(answer.contains("a=group:BUNDLE 0 1\r\n"), "{answer}");
}

#[test]
fn publisher_errors() {
    let c = cands();
    let cx = ctx(&c, 0);
    let unusable = |offer: &str| match answer_publisher(offer, &cx) {
        Err(SdpError::Unusable(m)) => m,
        other => panic!("expected Unusable, got {other:?}"),
    };
    unusable("");
    unusable("garbage\r\n\0\u{7f}");
    unusable("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n");
    let av = data("aiortc_publish_av.sdp");
    let no_fp: String = av
        .lines()
        .filter(|l| !l.starts_with("a=fingerprint"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    assert!(unusable(&no_fp).contains("fingerprint"));
    let no_ice: String = av
        .lines()
        .filter(|l| !l.starts_with("a=ice-"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    assert!(unusable(&no_ice).contains("ice-ufrag"));
    let no_bundle: String = av
        .lines()
        .filter(|l| !l.starts_with("a=group:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    assert!(unusable(&no_bundle).contains("BUNDLE"));
    let passive = av.replace("a=setup:actpass", "a=setup:passive");
    assert!(unusable(&passive).contains("passive"));
    // a single non-bundled m-line is fine
    let video: String = data("aiortc_publish_video.sdp")
        .lines()
        .filter(|l| !l.starts_with("a=group:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    answer_publisher(&video, &cx).unwrap();
    // only G722: 415 listing what was offered
    let g722 = av
        .replace("UDP/TLS/RTP/SAVPF 96 9 0 8", "UDP/TLS/RTP/SAVPF 9")
        .replace(
            "UDP/TLS/RTP/SAVPF 97 98 99 100 101 102",
            "UDP/TLS/RTP/SAVPF 98",
        );
    match answer_publisher(&g722, &cx) {
        Err(SdpError::NoCommonCodec(m)) => assert!(m.contains("audio/G722"), "{m}"),
        other => panic!("{other:?}"),
    }
    // a recvonly offer is not a publish
    assert!(matches!(
        answer_publisher(&data("aiortc_play_av.sdp"), &cx),
        Err(SdpError::NoCommonCodec(_))
    ));
}

#[test]
fn garbage_offers_never_panic() {
    let c = cands();
    let cx = ctx(&c, 1000);
    let source = publisher_tracks();
    let base = data("chrome_publish_av.sdp");
    let bytes = base.as_bytes();
    let mut x: u64 = 0x1234_5678;
    for i in 0..3000usize {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let cut = (x as usize) % bytes.len();
        let mut v = bytes[..cut].to_vec();
        if i % 2 == 0 && !v.is_empty() {
            let j = (x >> 20) as usize % v.len();
            v[j] = (x >> 40) as u8;
        }
        let s = String::from_utf8_lossy(&v);
        let _ = answer_publisher(&s, &cx);
        let _ = answer_player(&s.replace("sendonly", "recvonly"), &source, &cx, &mut || 1);
    }
}
