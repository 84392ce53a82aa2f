//! Replays every saved fuzz input (`fuzz/corpus/<target>/*`) through the functions the
//! cargo-fuzz targets call, so regressions show up in `cargo test` without a fuzzer. Each input
//! runs whole and truncated at several points (SDP and STUN at every length), since a cut
//! datagram or offer is itself a network input; the invariants are asserted inside
//! `pms_core::fuzzing`.
//!
//! `cargo test -p pms-core --test fuzz_corpus -- --ignored write_seed_corpus` rewrites the seed
//! inputs made here (real binding requests, a DTLS ClientHello of rtc-dtls's client, offers
//! from `tests/data/` and mutations of them); inputs found by fuzzing are kept as they are.

use std::path::{Path, PathBuf};

use pms_core::fuzzing;

type Target = (&'static str, fn(&[u8]), bool);

/// Datagrams of a `transport_datagram` input: (from the other peer, bytes).
type Datagrams<'a> = Vec<(bool, &'a [u8])>;

/// (corpus directory, entry point, replay every prefix).
const TARGETS: [Target; 5] = [
    ("rtp_router", fuzzing::fuzz_rtp, false),
    ("rtcp_router", fuzzing::fuzz_rtcp, false),
    ("sdp_offer", fuzzing::fuzz_sdp, true),
    ("stun_ice", fuzzing::fuzz_stun, true),
    ("transport_datagram", fuzzing::fuzz_transport, false),
];

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

/// The lengths an input of `len` bytes is replayed at.
fn cut_points(len: usize, every: bool) -> Vec<usize> {
    if every {
        return (0..=len).collect();
    }
    let mut cuts = vec![
        0,
        1,
        2,
        3,
        13,
        20,
        len / 4,
        len / 3,
        len / 2,
        2 * len / 3,
        len.saturating_sub(1),
        len,
    ];
    cuts.retain(|&c| c <= len);
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

#[test]
fn replay_fuzz_corpus() {
    let root = corpus_root();
    for (target, run, every) in TARGETS {
        let dir = root.join(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(files.len() >= 4, "{target}: {} corpus files", files.len());
        for path in files {
            let data = std::fs::read(&path).expect("readable corpus file");
            for cut in cut_points(data.len(), every) {
                let r = std::panic::catch_unwind(|| run(&data[..cut]));
                assert!(
                    r.is_ok(),
                    "{target}: {} cut at {cut} of {}",
                    path.display(),
                    data.len()
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Seed corpus
// ---------------------------------------------------------------------------------------------

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = corpus_root().join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), data).unwrap();
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The datagrams an rtc-dtls client (certificate `tests/data/ec_pkcs8_*.pem`, whose
/// fingerprint is [`fuzzing::PEER_FINGERPRINT`]) sends in a whole handshake with a
/// `WebRtcTransport` set up as in [`fuzzing::fuzz_transport`]: ClientHello, ClientHello with
/// the cookie, then Certificate/ClientKeyExchange/CertificateVerify/ChangeCipherSpec/Finished.
fn recorded_dtls_client_flights() -> Vec<Vec<u8>> {
    use pms_core::sdp::RemoteParams;
    use pms_core::transport::{TransportEvent, WebRtcTransport};
    use rtc_dtls::config::{ConfigBuilder, ExtendedMasterSecretType};
    use rtc_dtls::crypto::Certificate;
    use rtc_dtls::endpoint::Endpoint;
    use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
    use rtc_shared::TransportProtocol;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let provider = rtc_crypto::default_provider().unwrap();
    let pem = fixture("ec_pkcs8_key.pem").replace("PRIVATE KEY", "PRIVATE_KEY")
        + &fixture("ec_pkcs8_cert.pem");
    let cert = Certificate::from_pem(&pem, provider.crypto()).unwrap();
    let config = ConfigBuilder::default()
        .with_crypto_provider(provider.clone())
        .with_certificates(vec![cert])
        .with_srtp_protection_profiles(vec![
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        ])
        .with_insecure_skip_verify(true)
        .with_extended_master_secret(ExtendedMasterSecretType::Require)
        .build(true, None)
        .unwrap();
    let server_addr: std::net::SocketAddr = "192.0.2.1:20000".parse().unwrap();
    let now = Instant::now();
    let mut server = WebRtcTransport::new(
        1,
        fuzzing::ICE_UFRAG.into(),
        fuzzing::ICE_PWD.into(),
        RemoteParams {
            ice_ufrag: "peer".into(),
            ice_pwd: "peer-password-0123456789".into(),
            fingerprint_algorithm: "sha-256".into(),
            fingerprint: fuzzing::PEER_FINGERPRINT.into(),
        },
        fuzzing::fuzz_identity(),
        now,
        Duration::from_secs(10),
    )
    .unwrap();
    let req = fuzzing::binding_request(
        &format!("{}:peer", fuzzing::ICE_UFRAG),
        fuzzing::ICE_PWD,
        true,
        [7; 12],
    );
    server.handle_datagram(now, fuzzing::PEER, &req);
    while server.poll_transmit().is_some() {}
    let mut client = Endpoint::new(fuzzing::PEER, TransportProtocol::UDP, None);
    client
        .connect(now, server_addr, Arc::new(config), None)
        .unwrap();
    let mut sent = Vec::new();
    for _ in 0..20 {
        let mut moved = false;
        while let Some(tx) = client.poll_transmit() {
            moved = true;
            sent.push(tx.message.to_vec());
            server.handle_datagram(now, fuzzing::PEER, &tx.message);
        }
        while let Some((_, data)) = server.poll_transmit() {
            moved = true;
            let _ = client.read(now, server_addr, None, data);
        }
        if !moved {
            break;
        }
    }
    assert_eq!(server.poll_event(), Some(TransportEvent::Connected));
    assert!(sent.len() >= 3 && sent.iter().all(|d| d[0] == 22 || d[0] == 20));
    sent
}

#[test]
#[ignore = "rewrites the seed corpus in fuzz/corpus/"]
fn write_seed_corpus() {
    // SDP: real offers, then what a careless or hostile client sends.
    let aiortc = fixture("aiortc_publish_av.sdp");
    let chrome = fixture("chrome_publish_av.sdp");
    for name in [
        "aiortc_publish_av.sdp",
        "aiortc_publish_video.sdp",
        "aiortc_play_av.sdp",
        "chrome_publish_av.sdp",
    ] {
        write("sdp_offer", name, fixture(name).as_bytes());
    }
    let mutations: [(&str, String); 8] = [
        (
            "chrome_truncated.sdp",
            chrome[..chrome.len() / 2].to_owned(),
        ),
        (
            "aiortc_passive.sdp",
            aiortc.replace("a=setup:actpass", "a=setup:passive"),
        ),
        (
            "aiortc_no_bundle.sdp",
            aiortc.replace("a=group:BUNDLE 0 1\r\n", ""),
        ),
        ("aiortc_lf_only.sdp", aiortc.replace("\r\n", "\n")),
        (
            "aiortc_bare_cr.sdp",
            aiortc.replace("a=mid:0\r\n", "a=mid:0\rx=1\r\n"),
        ),
        (
            "chrome_recvonly.sdp",
            chrome.replace("a=sendrecv", "a=recvonly"),
        ),
        (
            "aiortc_huge_pt.sdp",
            aiortc.replace("a=rtpmap:96 opus", "a=rtpmap:300 opus"),
        ),
        (
            "minimal.sdp",
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n".to_owned(),
        ),
    ];
    for (name, text) in mutations {
        write("sdp_offer", name, text.as_bytes());
    }

    // STUN: binding requests built with rtc-stun, for us and not.
    let u = fuzzing::ICE_UFRAG;
    let pwd = fuzzing::ICE_PWD;
    let ok = fuzzing::binding_request(&format!("{u}:peer"), pwd, false, [1; 12]);
    let nominate = fuzzing::binding_request(&format!("{u}:peer"), pwd, true, [2; 12]);
    let wrong_pwd =
        fuzzing::binding_request(&format!("{u}:peer"), "not-the-password", false, [3; 12]);
    let wrong_ufrag = fuzzing::binding_request("other:peer", pwd, true, [4; 12]);
    let mut bad_fp = ok.clone();
    *bad_fp.last_mut().unwrap() ^= 1;
    let mut long_len = ok.clone();
    long_len[3] = long_len[3].wrapping_add(4);
    for (name, data) in [
        ("binding_request", &ok[..]),
        ("binding_request_use_candidate", &nominate[..]),
        ("binding_request_wrong_password", &wrong_pwd[..]),
        ("binding_request_wrong_ufrag", &wrong_ufrag[..]),
        ("binding_request_bad_fingerprint", &bad_fp[..]),
        ("binding_request_length_lies", &long_len[..]),
        ("binding_request_truncated", &ok[..ok.len() - 9]),
    ] {
        write("stun_ice", name, data);
    }

    // Transport: datagram sequences (2-byte length, bit 15 = from the other address).
    let flights = recorded_dtls_client_flights();
    let hello = flights[0].clone();
    let full: Vec<(bool, &[u8])> = flights.iter().map(|d| (false, &d[..])).collect();
    write(
        "transport_datagram",
        "dtls_full_handshake",
        &fuzzing::frame_datagrams(&full),
    );
    let mut wrong_order = full.clone();
    wrong_order.swap(0, 1);
    write(
        "transport_datagram",
        "dtls_hello_with_cookie_first",
        &fuzzing::frame_datagrams(&wrong_order),
    );
    let other_nominate = fuzzing::binding_request(&format!("{u}:peer"), pwd, true, [5; 12]);
    let rtp = [
        0x80u8, 96, 0, 1, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4,
    ];
    let rtcp = [0x80u8, 201, 0, 1, 0x11, 0x22, 0x33, 0x44];
    let alert = [21u8, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 2, 40];
    let mut flipped = hello.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    let seqs: [(&str, Datagrams); 8] = [
        ("client_hello", vec![(false, &hello)]),
        ("client_hello_twice", vec![(false, &hello), (false, &hello)]),
        ("client_hello_from_other", vec![(true, &hello)]),
        (
            "renominate_then_hello",
            vec![(true, &other_nominate), (true, &hello)],
        ),
        ("hello_truncated", vec![(false, &hello[..hello.len() / 2])]),
        (
            "hello_flipped_then_alert",
            vec![(false, &flipped), (false, &alert)],
        ),
        (
            "srtp_before_dtls",
            vec![(false, &rtp), (false, &rtcp), (false, &hello)],
        ),
        (
            "stun_mix",
            vec![
                (false, &ok),
                (false, &wrong_pwd),
                (true, &bad_fp),
                (false, &hello),
            ],
        ),
    ];
    for (name, seq) in seqs {
        write("transport_datagram", name, &fuzzing::frame_datagrams(&seq));
    }
}
