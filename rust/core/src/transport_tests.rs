//! In-memory handshake of [`WebRtcTransport`] against a client made of `rtc-stun` requests and
//! an `rtc-dtls` client endpoint, then SRTP both ways.

use super::*;
use rand::{Rng, SeedableRng};
use rtc_dtls::config::{ConfigBuilder, ExtendedMasterSecretType};
use rtc_dtls::crypto::Certificate;

const SERVER_UFRAG: &str = "srvufrag";
const SERVER_PWD: &str = "server-password-0123456789";

fn client_addr() -> SocketAddr {
    "192.0.2.10:40000".parse().unwrap()
}
fn server_addr() -> SocketAddr {
    "192.0.2.1:20000".parse().unwrap()
}

struct Client {
    provider: Arc<dyn RTCCryptoProvider>,
    endpoint: Endpoint,
    fingerprint: String,
    config: Arc<rtc_dtls::config::HandshakeConfig>,
    srtp: Option<(SrtpContext, SrtpContext)>,
    events: Vec<&'static str>,
}

impl Client {
    fn new() -> Client {
        let provider = crate::cert::provider().unwrap();
        let cert =
            Certificate::generate_self_signed(vec!["client".into()], provider.crypto()).unwrap();
        let fingerprint =
            crate::cert::sha256_fingerprint(provider.as_ref(), cert.certificate[0].as_ref())
                .unwrap();
        let config = ConfigBuilder::default()
            .with_crypto_provider(provider.clone())
            .with_certificates(vec![cert])
            .with_srtp_protection_profiles(crate::cert::SRTP_PROFILES.to_vec())
            .with_insecure_skip_verify(true)
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            .build(true, None)
            .unwrap();
        Client {
            provider,
            endpoint: Endpoint::new(client_addr(), TransportProtocol::UDP, None),
            fingerprint,
            config: Arc::new(config),
            srtp: None,
            events: vec![],
        }
    }

    fn remote_params(&self) -> RemoteParams {
        RemoteParams {
            ice_ufrag: "cli".into(),
            ice_pwd: "client-password-012345".into(),
            fingerprint_algorithm: "sha-256".into(),
            fingerprint: self.fingerprint.to_lowercase(),
        }
    }

    fn binding_request(&self) -> Vec<u8> {
        crate::ice::tests::binding_request(
            &format!("{SERVER_UFRAG}:cli"),
            SERVER_PWD,
            true,
            self.provider.as_ref(),
        )
    }

    fn read(&mut self, now: Instant, data: BytesMut) {
        let Ok(events) = self.endpoint.read(now, server_addr(), None, data) else {
            self.events.push("error");
            return;
        };
        for e in events {
            match e {
                EndpointEvent::HandshakeComplete => {
                    let state = self.endpoint.get_connection_state(server_addr()).unwrap();
                    self.srtp = Some(srtp_contexts(state, self.provider.as_ref(), 64).unwrap());
                    self.events.push("connected");
                }
                EndpointEvent::PeerClosed => self.events.push("peer-closed"),
                _ => {}
            }
        }
    }
}

fn transport(client: &Client, identity: &DtlsIdentity, now: Instant) -> WebRtcTransport {
    WebRtcTransport::new(
        7,
        SERVER_UFRAG.into(),
        SERVER_PWD.into(),
        client.remote_params(),
        identity,
        now,
        Duration::from_secs(10),
    )
    .unwrap()
}

fn events(t: &mut WebRtcTransport) -> Vec<TransportEvent> {
    std::iter::from_fn(|| t.poll_event()).collect()
}

/// ICE check, then DTLS flights both ways until neither side has anything to send.
fn handshake(client: &mut Client, t: &mut WebRtcTransport, now: Instant) -> Vec<TransportEvent> {
    let req = client.binding_request();
    assert!(t.handle_datagram(now, client_addr(), &req).is_none());
    let (to, resp) = t.poll_transmit().expect("binding response");
    assert_eq!(to, client_addr());
    let mut m = rtc_stun::message::Message::new();
    m.unmarshal_binary(&resp).unwrap();
    assert_eq!(m.typ, rtc_stun::message::BINDING_SUCCESS);
    assert_eq!(t.remote_addr(), Some(client_addr()));

    client
        .endpoint
        .connect(now, server_addr(), client.config.clone(), None)
        .unwrap();
    let mut all = vec![];
    for _ in 0..20 {
        let mut moved = false;
        while let Some(tx) = client.endpoint.poll_transmit() {
            moved = true;
            assert!(t.handle_datagram(now, client_addr(), &tx.message).is_none());
        }
        while let Some((to, data)) = t.poll_transmit() {
            moved = true;
            assert_eq!(to, client_addr());
            client.read(now, data);
        }
        all.extend(events(t));
        if !moved {
            break;
        }
    }
    all
}

fn rtp_packet(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&1234u32.to_be_bytes());
    p.extend_from_slice(&0xdead_beefu32.to_be_bytes());
    p.extend_from_slice(b"payload bytes of a video frame");
    p
}

fn rtcp_rr() -> Vec<u8> {
    // RR with no report blocks: V=2, PT=201, length 1, sender ssrc
    vec![0x80, 201, 0, 1, 0x11, 0x22, 0x33, 0x44]
}

#[test]
fn handshake_then_srtp_both_ways() {
    let identity = DtlsIdentity::generate().unwrap();
    let now = Instant::now();
    let mut client = Client::new();
    let mut t = transport(&client, &identity, now);
    assert!(
        t.protect_rtp(&rtp_packet(1)).is_none(),
        "no SRTP before DTLS"
    );
    let evs = handshake(&mut client, &mut t, now);
    assert_eq!(evs, vec![TransportEvent::Connected]);
    assert!(
        client.events.contains(&"connected"),
        "client events {:?}",
        client.events
    );
    assert!(t.is_connected());

    let (client_local, client_remote) = client.srtp.as_mut().unwrap();
    // server -> client
    for seq in 1..5u16 {
        let plain = rtp_packet(seq);
        let enc = t.protect_rtp(&plain).unwrap();
        assert_ne!(&enc[..], &plain[..]);
        let dec = client_remote.decrypt_rtp(&enc).unwrap();
        assert_eq!(&dec[..], &plain[..]);
    }
    let enc = t.protect_rtcp(&rtcp_rr()).unwrap();
    assert_eq!(
        &client_remote.decrypt_rtcp(&enc).unwrap()[..],
        &rtcp_rr()[..]
    );
    // client -> server
    for seq in 10..15u16 {
        let plain = rtp_packet(seq);
        let enc = client_local.encrypt_rtp(&plain).unwrap();
        assert_eq!(
            t.handle_datagram(now, client_addr(), &enc),
            Some(Received::Rtp(BytesMut::from(&plain[..])))
        );
        // a replay is dropped
        assert_eq!(t.handle_datagram(now, client_addr(), &enc), None);
        // the same packet from another address is dropped
        let enc2 = client_local.encrypt_rtp(&rtp_packet(seq + 100)).unwrap();
        assert_eq!(
            t.handle_datagram(now, "192.0.2.99:1".parse().unwrap(), &enc2),
            None
        );
    }
    let enc = client_local.encrypt_rtcp(&rtcp_rr()).unwrap();
    assert_eq!(
        t.handle_datagram(now, client_addr(), &enc),
        Some(Received::Rtcp(BytesMut::from(&rtcp_rr()[..])))
    );

    // consent: refreshed by a binding request, expires 30 s after the last one
    let later = now + Duration::from_secs(20);
    t.handle_datagram(later, client_addr(), &client.binding_request());
    assert!(t.poll_transmit().is_some());
    assert_eq!(t.poll_timeout(), Some(later + Duration::from_secs(30)));
    t.handle_timeout(later + Duration::from_secs(29));
    assert!(events(&mut t).is_empty());
    t.handle_timeout(later + Duration::from_secs(30));
    assert_eq!(events(&mut t), vec![TransportEvent::Closed("ice-timeout")]);
    assert!(t.protect_rtp(&rtp_packet(1)).is_none());
}

#[test]
fn close_sends_close_notify_and_peer_close_is_reported() {
    let identity = DtlsIdentity::generate().unwrap();
    let now = Instant::now();
    let mut client = Client::new();
    let mut t = transport(&client, &identity, now);
    handshake(&mut client, &mut t, now);
    t.close();
    assert_eq!(events(&mut t), vec![TransportEvent::Closed("closed")]);
    let (to, alert) = t.poll_transmit().expect("close_notify");
    assert_eq!(to, client_addr());
    client.read(now, alert);
    assert!(
        client.events.contains(&"peer-closed"),
        "{:?}",
        client.events
    );

    // the other direction
    let mut client = Client::new();
    let mut t = transport(&client, &identity, now);
    handshake(&mut client, &mut t, now);
    client.endpoint.close(now).unwrap();
    while let Some(tx) = client.endpoint.poll_transmit() {
        t.handle_datagram(now, client_addr(), &tx.message);
    }
    assert_eq!(events(&mut t), vec![TransportEvent::Closed("peer-closed")]);
    assert!(t.is_closed());
}

#[test]
fn wrong_fingerprint_fails_dtls() {
    let identity = DtlsIdentity::generate().unwrap();
    let now = Instant::now();
    let mut client = Client::new();
    let mut params = client.remote_params();
    params.fingerprint = identity.fingerprint().to_owned(); // not the client's
    let mut t = WebRtcTransport::new(
        1,
        SERVER_UFRAG.into(),
        SERVER_PWD.into(),
        params,
        &identity,
        now,
        Duration::from_secs(10),
    )
    .unwrap();
    let evs = handshake(&mut client, &mut t, now);
    assert_eq!(evs, vec![TransportEvent::Closed("dtls-failed")]);
    assert!(t.protect_rtp(&rtp_packet(1)).is_none());
    assert!(client.srtp.is_none());
}

#[test]
fn connect_timeout_without_handshake() {
    let identity = DtlsIdentity::generate().unwrap();
    let now = Instant::now();
    let client = Client::new();
    let mut t = transport(&client, &identity, now);
    assert_eq!(t.poll_timeout(), Some(now + Duration::from_secs(10)));
    t.handle_timeout(now + Duration::from_secs(9));
    assert!(events(&mut t).is_empty());
    t.handle_timeout(now + Duration::from_secs(10));
    assert_eq!(
        events(&mut t),
        vec![TransportEvent::Closed("connect-timeout")]
    );
    assert_eq!(t.poll_timeout(), None);
    // ICE done but no DTLS: still a connect timeout
    let mut t = transport(&client, &identity, now);
    t.handle_datagram(now, client_addr(), &client.binding_request());
    t.handle_timeout(now + Duration::from_secs(11));
    assert_eq!(
        events(&mut t),
        vec![TransportEvent::Closed("connect-timeout")]
    );
}

#[test]
fn dtls_before_ice_is_dropped() {
    let identity = DtlsIdentity::generate().unwrap();
    let now = Instant::now();
    let mut client = Client::new();
    let mut t = transport(&client, &identity, now);
    client
        .endpoint
        .connect(now, server_addr(), client.config.clone(), None)
        .unwrap();
    while let Some(tx) = client.endpoint.poll_transmit() {
        t.handle_datagram(now, client_addr(), &tx.message);
    }
    assert!(t.poll_transmit().is_none());
    assert!(events(&mut t).is_empty());
}

#[test]
fn garbage_datagrams_do_nothing() {
    let identity = DtlsIdentity::generate().unwrap();
    let now = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut client = Client::new();
    let mut fresh = transport(&client, &identity, now);
    let mut connected = transport(&client, &identity, now);
    handshake(&mut client, &mut connected, now);
    let firsts = [0u8, 1, 20, 22, 23, 63, 128, 129, 200, 255];
    for i in 0..20_000 {
        let len = rng.gen_range(0..1500);
        let mut d: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if let Some(b) = d.first_mut() {
            *b = firsts[i % firsts.len()];
        }
        if d.len() > 8 && i % 3 == 0 {
            d[4..8].copy_from_slice(&0x2112A442u32.to_be_bytes()); // STUN magic cookie
        }
        for t in [&mut fresh, &mut connected] {
            assert!(t.handle_datagram(now, client_addr(), &d).is_none());
        }
    }
    // no transmits other than (possibly) STUN error responses, and no state change
    while let Some((_, d)) = fresh.poll_transmit() {
        assert!(d.len() >= 20 && d[0] < 4, "only STUN error responses");
    }
    assert!(events(&mut fresh).is_empty());
    assert!(events(&mut connected).is_empty());
    assert!(connected.is_connected());
    // the connected transport still works
    let (client_local, _) = client.srtp.as_mut().unwrap();
    let enc = client_local.encrypt_rtp(&rtp_packet(500)).unwrap();
    assert!(matches!(
        connected.handle_datagram(now, client_addr(), &enc),
        Some(Received::Rtp(_))
    ));
}
