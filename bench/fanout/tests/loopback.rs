//! The client's ICE/DTLS/SRTP against a second instance of the same crates acting as an ICE-lite
//! DTLS server: first over in-memory datagrams, then end to end through the `pms-fanout` binary
//! against the toy forwarding SFU in `toy/sfu.rs` (WebSocket signaling as in SPEC section 3).

#[path = "../toy/sfu.rs"]
mod toy;

use pms_bench_fanout::media::H264Source;
use pms_bench_fanout::transport::{
    random_ice_string, Identity, Incoming, RemoteParams, State, Transport,
};
use serde_json::Value;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use toy::LitePeer;

fn handshake_in_memory(
    server_is_dtls_client: bool,
    wrong_fingerprint: bool,
) -> (Transport, LitePeer) {
    let client_id = Identity::generate().unwrap();
    let server_id = Identity::generate().unwrap();
    let caddr: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    let saddr: SocketAddr = "127.0.0.1:40002".parse().unwrap();
    let mut server = LitePeer::new(
        &server_id,
        saddr,
        &client_id.fingerprint,
        server_is_dtls_client,
    );
    let fingerprint = if wrong_fingerprint {
        Identity::generate().unwrap().fingerprint
    } else {
        server_id.fingerprint.clone()
    };
    let mut now = Instant::now();
    let mut client = Transport::new(
        now,
        &client_id,
        caddr,
        random_ice_string(8),
        random_ice_string(24),
        RemoteParams {
            addr: saddr,
            ice_ufrag: server.ufrag.clone(),
            ice_pwd: server.pwd.clone(),
            fingerprint,
            dtls_client: !server_is_dtls_client,
            ice_controlling: true,
        },
    )
    .unwrap();
    for _ in 0..200 {
        while let Some(d) = client.poll_transmit() {
            server.handle(now, caddr, &d);
        }
        for d in std::mem::take(&mut server.out) {
            client.handle_datagram(now, saddr, &d);
        }
        if client.is_connected() && server.local_ctx.is_some() && client.poll_transmit().is_none() {
            break;
        }
        if client.state() == State::Failed {
            break;
        }
        now += Duration::from_millis(20);
        client.handle_timeout(now);
        server.timeout(now);
    }
    (client, server)
}

fn check_media(client: &mut Transport, server: &mut LitePeer) {
    let caddr: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    let saddr: SocketAddr = "127.0.0.1:40002".parse().unwrap();
    let now = Instant::now();
    let mut src = H264Source::new(0xabcdef, 102);
    let mut pkts = vec![];
    src.next_frame(&mut pkts);
    for p in &pkts {
        // Client → server.
        let enc = client.protect_rtp(p).unwrap();
        assert_ne!(&enc[..], &p[..]);
        match server.handle(now, caddr, &enc) {
            Some(Incoming::Rtp(dec)) => assert_eq!(&dec[..], &p[..]),
            _ => panic!("server could not decrypt the client's RTP"),
        }
        // Server → client.
        let enc = server.local_ctx.as_mut().unwrap().encrypt_rtp(p).unwrap();
        match client.handle_datagram(now, saddr, &enc) {
            Some(Incoming::Rtp(dec)) => assert_eq!(&dec[..], &p[..]),
            _ => panic!("client could not decrypt the server's RTP"),
        }
    }
    // RTCP both ways (a PLI from the server, an RR from the client).
    let pli = [0x81u8, 206, 0, 2, 0, 0, 0, 1, 0, 0xab, 0xcd, 0xef];
    let enc = server
        .local_ctx
        .as_mut()
        .unwrap()
        .encrypt_rtcp(&pli)
        .unwrap();
    match client.handle_datagram(now, saddr, &enc) {
        Some(Incoming::Rtcp(dec)) => assert_eq!(&dec[..], &pli[..]),
        _ => panic!("client could not decrypt the server's RTCP"),
    }
    let rr = pms_bench_fanout::media::receiver_report(5, &[]);
    let enc = client.protect_rtcp(&rr).unwrap();
    match server.handle(now, caddr, &enc) {
        Some(Incoming::Rtcp(dec)) => assert_eq!(&dec[..], &rr[..]),
        _ => panic!("server could not decrypt the client's RTCP"),
    }
}

#[test]
fn ice_dtls_srtp_in_memory_client_role() {
    let (mut client, mut server) = handshake_in_memory(false, false);
    assert_eq!(client.state(), State::Connected, "{:?}", client.failure);
    assert!(server.binding_requests >= 1);
    check_media(&mut client, &mut server);
}

#[test]
fn ice_dtls_srtp_in_memory_server_role() {
    let (mut client, mut server) = handshake_in_memory(true, false);
    assert_eq!(client.state(), State::Connected, "{:?}", client.failure);
    check_media(&mut client, &mut server);
}

#[test]
fn wrong_fingerprint_fails() {
    let (client, _server) = handshake_in_memory(false, true);
    assert_ne!(client.state(), State::Connected);
}

#[test]
fn binary_against_toy_sfu() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let sfu = toy::spawn(listener, Identity::generate().unwrap());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pms-fanout"))
        .args([
            "--ws",
            &url,
            "--players",
            "4",
            "--seconds",
            "2",
            "--warmup",
            "1",
            "--settle",
            "0.2",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for ev in [
        "publisher_ready",
        "players_connected",
        "measure_start",
        "measure_end",
    ] {
        assert!(stderr.contains(&format!("\"event\":\"{ev}\"")), "{stderr}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let r: Value = serde_json::from_str(stdout.trim()).unwrap();
    eprintln!("{r:#}");
    assert_eq!(r["players"], 4);
    assert_eq!(r["connected"], 4, "{r}");
    assert_eq!(r["receiving"], 4, "{r}");
    assert_eq!(r["loss_packets"], 0, "{r}");
    assert_eq!(r["first_keyframe_ms"]["count"], 4, "{r}");
    assert!(r["publisher"]["pli_received"].as_u64().unwrap() >= 1, "{r}");
    // ~217 packets/s per player (H.264 ~167 + Opus 50).
    let pps = r["packets_per_second"].as_f64().unwrap();
    assert!((4.0 * 150.0..4.0 * 300.0).contains(&pps), "{r}");
    let bitrate = r["publisher"]["bitrate_bps"].as_f64().unwrap();
    assert!((1.2e6..2.2e6).contains(&bitrate), "{r}");
    assert_eq!(sfu.plays.load(Ordering::SeqCst), 4);
    assert!(sfu.forwarded.load(Ordering::Relaxed) > 0);
}

/// The ICE role decides the attributes of the client's checks: controlling (against an ICE-lite
/// server, or when it offered) nominates with USE-CANDIDATE; controlled (a full-ICE server offered,
/// as Janus does to its subscribers without `ice_lite`) says ICE-CONTROLLED and does not nominate.
#[test]
fn ice_role_sets_check_attributes() {
    use rtc_stun::attributes::{ATTR_ICE_CONTROLLED, ATTR_ICE_CONTROLLING, ATTR_USE_CANDIDATE};
    let id = Identity::generate().unwrap();
    for controlling in [true, false] {
        let mut t = Transport::new(
            Instant::now(),
            &id,
            "127.0.0.1:40011".parse().unwrap(),
            random_ice_string(8),
            random_ice_string(24),
            RemoteParams {
                addr: "127.0.0.1:40012".parse().unwrap(),
                ice_ufrag: "srv".into(),
                ice_pwd: random_ice_string(24),
                fingerprint: String::new(),
                dtls_client: true,
                ice_controlling: controlling,
            },
        )
        .unwrap();
        let first = t.poll_transmit().expect("a check is sent at once");
        let mut msg = rtc_stun::message::Message::new();
        msg.unmarshal_binary(&first).unwrap();
        assert_eq!(msg.contains(ATTR_USE_CANDIDATE), controlling);
        assert_eq!(msg.contains(ATTR_ICE_CONTROLLING), controlling);
        assert_eq!(msg.contains(ATTR_ICE_CONTROLLED), !controlling);
    }
}
