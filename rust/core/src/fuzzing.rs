//! Entry points for the fuzz targets (`fuzz/`) and the corpus replay test
//! (`tests/fuzz_corpus.rs`), so both run the same code. Each states its invariant; the common
//! one is that nothing reachable from the network panics, whatever the bytes.
//!
//! - [`fuzz_rtp`], [`fuzz_rtcp`]: a router with one producer (H.264 video + Opus audio) and two
//!   consumers; memory stays bounded (fixed-size retransmission buffers).
//! - [`fuzz_sdp`]: offers to [`crate::sdp`]; Ok or an `SdpError`, and an Ok answer parses.
//! - [`fuzz_stun`]: STUN to [`crate::ice`]; a re-signed well-formed request for us is accepted.
//! - [`fuzz_transport`]: datagrams to a [`WebRtcTransport`] whose ICE check already passed.

use std::io::Cursor;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rtc_sdp::description::session::SessionDescription;
use rtc_stun::attributes::{ATTR_FINGERPRINT, ATTR_MESSAGE_INTEGRITY, ATTR_USERNAME};
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::{Message, Setter, TransactionId, BINDING_REQUEST, MAGIC_COOKIE};
use rtc_stun::textattrs::TextAttribute;

use crate::cert::DtlsIdentity;
use crate::ice::{classify, stun_local_ufrag, IceLite, PacketClass, StunOutcome};
use crate::media::{
    Codec, CodecName, ConsumerTrack, HeaderExtensions, MediaKind, ProducerTrack, TransportId,
};
use crate::router::{NullSink, Router};
use crate::sdp::{answer_player, answer_publisher, AnswerContext, RemoteParams, SdpError};
use crate::transport::{TransportEvent, WebRtcTransport};

/// Producer id in [`fuzz_router`].
pub const PRODUCER: TransportId = 1;
/// Consumer ids in [`fuzz_router`].
pub const CONSUMERS: [TransportId; 2] = [2, 3];

fn codec(name: CodecName, pt: u8, rtx: Option<u8>) -> Codec {
    Codec {
        name,
        payload_type: pt,
        clock_rate: if name == CodecName::Opus {
            48000
        } else {
            90000
        },
        channels: if name == CodecName::Opus { 2 } else { 0 },
        fmtp: if name == CodecName::H264 {
            "packetization-mode=1;sprop-parameter-sets=Z0LAH9oBQBbo,aM48gA==".into()
        } else {
            String::new()
        },
        rtx_payload_type: rtx,
        rtcp_fb: vec![
            "nack".into(),
            "nack pli".into(),
            "ccm fir".into(),
            "goog-remb".into(),
        ],
    }
}

/// A router with producer [`PRODUCER`] (track 0: H.264 pt 102/rtx 103 learned by payload
/// type; track 1: Opus pt 111 ssrc 0x1111) and connected consumers [`CONSUMERS`] (ssrcs
/// 0xC0000001/2, the first with RTX and a `mid` extension).
pub fn fuzz_router(now: Instant) -> Router {
    let mut r = Router::new();
    let ext = HeaderExtensions::default();
    let producer = vec![
        ProducerTrack {
            kind: MediaKind::Video,
            mid: "0".into(),
            codec: codec(CodecName::H264, 102, Some(103)),
            ssrc: None,
            rtx_ssrc: None,
            extensions: ext,
        },
        ProducerTrack {
            kind: MediaKind::Audio,
            mid: "1".into(),
            codec: codec(CodecName::Opus, 111, None),
            ssrc: Some(0x1111),
            rtx_ssrc: None,
            extensions: ext,
        },
    ];
    r.add_producer(PRODUCER, producer, 1_000_000, now);
    for (i, id) in CONSUMERS.into_iter().enumerate() {
        let with_rtx = i == 0;
        let tracks = vec![
            ConsumerTrack {
                kind: MediaKind::Video,
                mid: "0".into(),
                codec: codec(CodecName::H264, 96, with_rtx.then_some(97)),
                ssrc: 0xC000_0001 + i as u32 * 16,
                rtx_ssrc: with_rtx.then_some(0xC000_0100),
                extensions: HeaderExtensions {
                    mid: with_rtx.then_some(4),
                    ..ext
                },
                producer_track: 0,
            },
            ConsumerTrack {
                kind: MediaKind::Audio,
                mid: "1".into(),
                codec: codec(CodecName::Opus, 111, None),
                ssrc: 0xC000_0002 + i as u32 * 16,
                rtx_ssrc: None,
                extensions: ext,
                producer_track: 1,
            },
        ];
        // Ids are fresh and track indexes valid: cannot fail.
        let _ = r.add_consumer(id, PRODUCER, tracks, now);
        r.consumer_connected(id, now, &mut NullSink);
    }
    r
}

/// Feeds `data` as a sequence of RTP packets: each chunk is preceded by a 2-byte length (the
/// remainder when it runs short); chunk bytes go to `handle_rtp` from the producer, with a
/// timeout run between chunks.
pub fn fuzz_rtp(data: &[u8]) {
    let t0 = Instant::now();
    let mut r = fuzz_router(t0);
    for (i, chunk) in chunks(data).enumerate() {
        let now = t0 + Duration::from_millis(i as u64 * 7);
        r.handle_rtp(now, PRODUCER, chunk, &mut NullSink);
        r.handle_timeout(now, &mut NullSink);
    }
}

/// Feeds `data` as RTCP: chunks alternate between producer and consumers, after a few valid
/// RTP packets so that NACKs find something to retransmit.
pub fn fuzz_rtcp(data: &[u8]) {
    let t0 = Instant::now();
    let mut r = fuzz_router(t0);
    let mut pkt = [
        0x80u8, 102, 0, 0, 0, 0, 0, 0, 0, 0, 0x22, 0x22, 0x65, 0x88, 0x80,
    ];
    for s in 0..8u16 {
        pkt[2..4].copy_from_slice(&s.to_be_bytes());
        r.handle_rtp(t0, PRODUCER, &pkt, &mut NullSink);
    }
    let ids = [PRODUCER, CONSUMERS[0], CONSUMERS[1]];
    for (i, chunk) in chunks(data).enumerate() {
        let now = t0 + Duration::from_millis(i as u64 * 7);
        r.handle_rtcp(now, ids[i % 3], chunk, &mut NullSink);
        r.handle_timeout(now, &mut NullSink);
    }
}

fn chunks(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if data.is_empty() {
            return None;
        }
        let n = match data {
            [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]) as usize).min(rest.len()),
            _ => 0,
        };
        let skip = data.len().min(2);
        let chunk = &data[skip..skip + n];
        data = &data[skip + n..];
        Some(chunk)
    })
}

// ---------------------------------------------------------------------------------------------
// SDP
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// STUN / ICE
// ---------------------------------------------------------------------------------------------

/// Our ICE credentials in [`fuzz_stun`] and [`fuzz_transport`].
pub const ICE_UFRAG: &str = "fuzzsrv";
pub const ICE_PWD: &str = "fuzz-server-password-0123";

/// A binding request as a browser sends it (USERNAME, optional USE-CANDIDATE,
/// MESSAGE-INTEGRITY keyed with `pwd`, FINGERPRINT), built with `rtc-stun`.
pub fn binding_request(username: &str, pwd: &str, use_candidate: bool, tid: [u8; 12]) -> Vec<u8> {
    let provider = crate::cert::provider().expect("the built-in crypto provider");
    let mut m = Message::new();
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(BINDING_REQUEST),
        Box::new(TransactionId(tid)),
        Box::new(TextAttribute::new(ATTR_USERNAME, username.to_owned())),
    ];
    if use_candidate {
        setters.push(Box::new(rtc_stun::attributes::RawAttribute {
            typ: rtc_stun::attributes::ATTR_USE_CANDIDATE,
            length: 0,
            value: vec![],
        }));
    }
    setters.push(Box::new(
        MessageIntegrity::new_short_term_integrity_with_provider(pwd.to_owned(), provider.crypto()),
    ));
    setters.push(Box::new(FINGERPRINT));
    m.build(&setters).expect("a well-formed binding request");
    m.raw
}

/// Invariant: [`classify`], [`stun_local_ufrag`] and [`IceLite::handle_stun`] (credentials
/// [`ICE_UFRAG`]/[`ICE_PWD`]) take any bytes without panicking; `handle_stun` queues at most
/// one response, to the sender, and accepts only requests naming our ufrag. Then the input is
/// *re-signed* (cut before its first MESSAGE-INTEGRITY or FINGERPRINT, header length fixed,
/// both re-added with `rtc-stun`) so the fuzzer gets past the checksums: a re-signed binding
/// request whose USERNAME is `fuzzsrv[:...]` must be accepted, and `stun_local_ufrag` must
/// agree with `rtc-stun` on its USERNAME.
pub fn fuzz_stun(data: &[u8]) {
    let provider = crate::cert::provider().expect("the built-in crypto provider");
    let from = SocketAddr::from(([198, 51, 100, 7], 50000));
    let mut ice = IceLite::new(ICE_UFRAG.into(), ICE_PWD.into());
    let now = Instant::now();
    let check = |ice: &mut IceLite, msg: &[u8]| -> StunOutcome {
        let class = classify(msg);
        let ufrag = stun_local_ufrag(msg);
        if ufrag.is_some() {
            assert_eq!(class, PacketClass::Stun);
        }
        let outcome = ice.handle_stun(now, from, msg, provider.as_ref());
        let sent: Vec<_> = ice.drain_transmits().collect();
        assert!(sent.len() <= 1 && sent.iter().all(|(to, _)| *to == from));
        if let StunOutcome::Accepted { .. } = outcome {
            // rtc-stun ignores the two top bits of the type; the transport only hands over
            // datagrams classified as STUN (first byte 0..=3), which the peek then agrees with.
            if class == PacketClass::Stun {
                assert_eq!(ufrag, Some(ICE_UFRAG), "accepted a request not for us");
            }
            assert_eq!(sent.len(), 1);
            assert_eq!(ice.selected(), Some(from));
        }
        outcome
    };
    check(&mut ice, data);
    let Some((resigned, username)) = resign(data, provider.as_ref()) else {
        return;
    };
    let outcome = check(&mut ice, &resigned);
    let is_binding_request = resigned[0..2] == [0, 1];
    if is_binding_request {
        let local = username
            .as_deref()
            .map(|u| match u.iter().position(|b| *b == b':') {
                Some(i) => &u[..i],
                None => u,
            });
        let expected = local
            .and_then(|l| std::str::from_utf8(l).ok())
            .filter(|s| !s.is_empty());
        assert_eq!(
            stun_local_ufrag(&resigned),
            expected,
            "USERNAME peek vs rtc-stun"
        );
        if expected == Some(ICE_UFRAG) {
            assert!(
                matches!(outcome, StunOutcome::Accepted { .. }),
                "a re-signed request for us was rejected: {resigned:02x?}"
            );
        }
    }
}

/// `data` cut before its first MESSAGE-INTEGRITY/FINGERPRINT attribute (or its first
/// attribute that runs past the end), with the magic cookie and length fixed, then
/// MESSAGE-INTEGRITY ([`ICE_PWD`]) and FINGERPRINT added; with the first USERNAME's value.
/// None when `rtc-stun` does not decode the cut message.
fn resign(
    data: &[u8],
    provider: &dyn rtc_crypto::RTCCryptoProvider,
) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    if data.len() < 20 {
        return None;
    }
    let mut off = 20;
    while off + 4 <= data.len() {
        let typ = u16::from_be_bytes([data[off], data[off + 1]]);
        if typ == ATTR_MESSAGE_INTEGRITY.0 || typ == ATTR_FINGERPRINT.0 {
            break;
        }
        let len = u16::from_be_bytes([data[off + 2], data[off + 3]]) as usize;
        let next = off + 4 + ((len + 3) & !3);
        if next > data.len() || next - 20 > 4096 {
            break;
        }
        off = next;
    }
    let mut prefix = data[..off].to_vec();
    prefix[2..4].copy_from_slice(&((off - 20) as u16).to_be_bytes());
    prefix[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    let built = catch_unwind(AssertUnwindSafe(|| {
        let mut m = Message::new();
        m.unmarshal_binary(&prefix).ok()?;
        let username = m.get(ATTR_USERNAME).ok();
        MessageIntegrity::new_short_term_integrity_with_provider(
            ICE_PWD.to_owned(),
            provider.crypto(),
        )
        .add_to(&mut m)
        .ok()?;
        FINGERPRINT.add_to(&mut m).ok()?;
        Some((m.raw, username))
    }));
    built.ok().flatten()
}

// ---------------------------------------------------------------------------------------------
// Transport
// ---------------------------------------------------------------------------------------------

/// The DTLS identity of every fuzzed transport (generated once per process).
pub fn fuzz_identity() -> &'static DtlsIdentity {
    static IDENTITY: OnceLock<DtlsIdentity> = OnceLock::new();
    IDENTITY.get_or_init(|| DtlsIdentity::generate().expect("a DTLS identity"))
}

/// The peer's address in [`fuzz_transport`] (ICE selected it before the fuzzed datagrams).
pub const PEER: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(192, 0, 2, 10),
    40000,
));
/// The other source address of [`fuzz_transport`] (datagrams flagged with bit 15).
pub const OTHER_PEER: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(192, 0, 2, 11),
    40001,
));

/// The certificate the peer of [`fuzz_transport`] must present: SHA-256 of
/// `rust/core/tests/data/ec_pkcs8_cert.pem`, so a seed recorded from a client with that
/// certificate gets past the fingerprint check.
pub const PEER_FINGERPRINT: &str = "90:A9:4A:19:E1:E1:C7:10:5F:53:DA:93:9C:88:85:41:E7:5D:C3:E9:B5:35:19:10:CB:F8:3D:3C:D5:FF:B0:03";

/// Invariant: a fresh [`WebRtcTransport`] (identity [`fuzz_identity`], ICE already selected
/// [`PEER`] by a valid binding request) fed `data` as datagrams never panics: each datagram is
/// a 2-byte big-endian header, bit 15 = sent from [`OTHER_PEER`] instead of [`PEER`], bits
/// 0-14 = length (the remainder when it runs short); `now` advances 100 ms per datagram with
/// `handle_timeout` after each, then 31 s more, then `close`. Transmits go to one of the two
/// peers and drain (at most 64 per step); nothing decrypts before `Connected`; events come
/// in order (`Connected` at most once, then exactly one `Closed`, last).
///
/// The cookie of the last DTLS HelloVerifyRequest sent is spliced into later ClientHellos
/// whose cookie has the same length, so recorded client flights get past the (random) cookie
/// exchange and reach the server's parsing of Certificate, ClientKeyExchange and the rest.
pub fn fuzz_transport(data: &[u8]) {
    let t0 = Instant::now();
    let remote = RemoteParams {
        ice_ufrag: "peer".into(),
        ice_pwd: "peer-password-0123456789".into(),
        fingerprint_algorithm: "sha-256".into(),
        fingerprint: PEER_FINGERPRINT.into(),
    };
    let mut t = WebRtcTransport::new(
        1,
        ICE_UFRAG.into(),
        ICE_PWD.into(),
        remote,
        fuzz_identity(),
        t0,
        Duration::from_secs(10),
    )
    .expect("a transport");
    let mut events = Vec::new();
    let mut cookie = Vec::new();
    let req = binding_request(&format!("{ICE_UFRAG}:peer"), ICE_PWD, true, [7; 12]);
    assert!(t.handle_datagram(t0, PEER, &req).is_none());
    assert_eq!(
        drain(&mut t, &mut events, &mut cookie),
        1,
        "the binding response"
    );
    assert_eq!(t.remote_addr(), Some(PEER));
    let mut now = t0;
    let mut buf = Vec::new();
    for (other, datagram) in datagrams(data) {
        now += Duration::from_millis(100);
        let from = if other { OTHER_PEER } else { PEER };
        buf.clear();
        buf.extend_from_slice(datagram);
        splice_cookie(&mut buf, &cookie);
        let connected = t.is_connected();
        let got = t.handle_datagram(now, from, &buf);
        assert!(got.is_none() || connected, "decrypted before Connected");
        drain(&mut t, &mut events, &mut cookie);
        if t.poll_timeout().is_some_and(|d| d <= now) {
            t.handle_timeout(now);
        }
        drain(&mut t, &mut events, &mut cookie);
    }
    t.handle_timeout(now + Duration::from_secs(31));
    drain(&mut t, &mut events, &mut cookie);
    t.close();
    drain(&mut t, &mut events, &mut cookie);
    assert!(t.is_closed() && t.poll_timeout().is_none());
    let closed = events
        .iter()
        .filter(|e| matches!(e, TransportEvent::Closed(_)))
        .count();
    let connected = events
        .iter()
        .filter(|e| **e == TransportEvent::Connected)
        .count();
    assert!(closed == 1 && connected <= 1, "events {events:?}");
    assert!(matches!(events.last(), Some(TransportEvent::Closed(_))));
    // Closed is final: a datagram now does nothing.
    assert!(t.handle_datagram(now, PEER, &req).is_none());
    assert_eq!(drain(&mut t, &mut events, &mut cookie), 0);
}

/// Drains transmits (returns how many; keeps the cookie of a HelloVerifyRequest) and events.
fn drain(t: &mut WebRtcTransport, events: &mut Vec<TransportEvent>, cookie: &mut Vec<u8>) -> usize {
    let mut n = 0;
    while let Some((to, d)) = t.poll_transmit() {
        assert!(to == PEER || to == OTHER_PEER, "transmit to {to}");
        // DTLS record (13 bytes), handshake header (12, type 3), version (2), cookie.
        if d.len() > 28 && d[0] == 22 && d[13] == 3 {
            if let Some(c) = d.get(28..28 + d[27] as usize) {
                *cookie = c.to_vec();
            }
        }
        n += 1;
        assert!(n <= 64, "poll_transmit does not drain");
    }
    let mut m = 0;
    while let Some(e) = t.poll_event() {
        events.push(e);
        m += 1;
        assert!(m <= 2, "poll_event does not drain");
    }
    n
}

/// Overwrites the cookie of a ClientHello at the start of `d` with `cookie` when the lengths
/// match: record (13), handshake header (12, type 1), version (2), random (32), session id.
fn splice_cookie(d: &mut [u8], cookie: &[u8]) {
    if cookie.is_empty() || d.len() < 60 || d[0] != 22 || d[13] != 1 {
        return;
    }
    let at = 60 + d[59] as usize;
    if d.get(at) == Some(&(cookie.len() as u8)) {
        if let Some(dst) = d.get_mut(at + 1..at + 1 + cookie.len()) {
            dst.copy_from_slice(cookie);
        }
    }
}

/// The datagrams of [`fuzz_transport`]: (from the other peer, bytes).
fn datagrams(mut data: &[u8]) -> impl Iterator<Item = (bool, &[u8])> {
    std::iter::from_fn(move || {
        if data.is_empty() {
            return None;
        }
        let (other, n) = match data {
            [a, b, rest @ ..] => {
                let h = u16::from_be_bytes([*a, *b]);
                (h & 0x8000 != 0, ((h & 0x7fff) as usize).min(rest.len()))
            }
            _ => (false, 0),
        };
        let skip = data.len().min(2);
        let datagram = &data[skip..skip + n];
        data = &data[skip + n..];
        Some((other, datagram))
    })
}

/// Frames `datagrams` for [`fuzz_transport`] (to write corpus files).
pub fn frame_datagrams(datagrams: &[(bool, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (other, d) in datagrams {
        let len = d.len().min(0x7fff) as u16;
        out.extend_from_slice(&(len | if *other { 0x8000 } else { 0 }).to_be_bytes());
        out.extend_from_slice(&d[..len as usize]);
    }
    out
}
