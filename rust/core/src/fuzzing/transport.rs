//! The transport target: [`fuzz_transport`] feeds datagrams from two addresses to a
//! `WebRtcTransport` past its ICE check (DTLS, SRTP, timers, close); plus the framing of its
//! input ([`frame_datagrams`]) for the seed corpus.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::stun::binding_request;
use super::{fuzz_identity, ICE_PWD, ICE_UFRAG};
use crate::sdp::RemoteParams;
use crate::transport::{TransportEvent, WebRtcTransport};

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
