//! A toy ICE-lite SFU for testing the benchmark client without the real server: one UDP socket
//! and one thread per session; the publisher's packets are decrypted and re-encrypted for each
//! connected player; a joining player triggers a PLI to the publisher. Shared by
//! `tests/loopback.rs` and `examples/toy_sfu.rs` (which mimics `pms-trio run --ready-file`).
#![allow(dead_code)]

use bytes::BytesMut;
use pms_bench_fanout::sdp;
use pms_bench_fanout::transport::{
    dtls_config, random_ice_string, srtp_contexts, Identity, Incoming,
};
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_shared::TransportProtocol;
use rtc_srtp::context::Context;
use rtc_stun::attributes::*;
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::*;
use rtc_stun::textattrs::Username;
use rtc_stun::xoraddr::XorMappedAddress;
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The server half: ICE-lite responder, DTLS endpoint, SRTP contexts.
pub struct LitePeer {
    identity: Identity,
    pub ufrag: String,
    pub pwd: String,
    endpoint: Endpoint,
    dtls_client: Option<Arc<rtc_dtls::config::HandshakeConfig>>,
    pub remote: Option<SocketAddr>,
    pub local_ctx: Option<Context>,
    pub remote_ctx: Option<Context>,
    pub out: Vec<BytesMut>,
    pub binding_requests: u32,
}

impl LitePeer {
    /// `dtls_client`: the server takes the DTLS client role (answer `a=setup:active`).
    pub fn new(
        identity: &Identity,
        local_addr: SocketAddr,
        client_fp: &str,
        dtls_client: bool,
    ) -> Self {
        let config = dtls_config(identity, client_fp, dtls_client).unwrap();
        let (client, server) = if dtls_client {
            (Some(config), None)
        } else {
            (None, Some(config))
        };
        Self {
            identity: identity.clone(),
            ufrag: random_ice_string(6),
            pwd: random_ice_string(24),
            endpoint: Endpoint::new(local_addr, TransportProtocol::UDP, server),
            dtls_client: client,
            remote: None,
            local_ctx: None,
            remote_ctx: None,
            out: vec![],
            binding_requests: 0,
        }
    }

    pub fn handle(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Option<Incoming> {
        match data[0] {
            0..=3 => {
                let mut m = Message::new();
                m.unmarshal_binary(data).unwrap();
                assert_eq!(m.typ, BINDING_REQUEST);
                MessageIntegrity::check(&mut m, self.pwd.as_bytes(), self.identity.crypto.crypto())
                    .expect("integrity with the server's ice-pwd");
                FINGERPRINT.check(&m).expect("fingerprint");
                let user = Username::get_from_as(&m, ATTR_USERNAME).unwrap();
                assert!(
                    user.text.starts_with(&format!("{}:", self.ufrag)),
                    "{}",
                    user.text
                );
                assert!(m.contains(ATTR_ICE_CONTROLLING));
                assert!(m.contains(ATTR_PRIORITY));
                self.binding_requests += 1;
                let mut r = Message::new();
                r.build(&[
                    Box::new(BINDING_SUCCESS),
                    Box::new(m.transaction_id),
                    Box::new(XorMappedAddress {
                        ip: from.ip(),
                        port: from.port(),
                    }),
                    Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
                        self.pwd.clone(),
                        self.identity.crypto.crypto(),
                    )),
                    Box::new(FINGERPRINT),
                ])
                .unwrap();
                self.out.push(BytesMut::from(&r.raw[..]));
                if m.contains(ATTR_USE_CANDIDATE) && self.remote.is_none() {
                    self.remote = Some(from);
                    if let Some(config) = self.dtls_client.take() {
                        self.endpoint.connect(now, from, config, None).unwrap();
                        self.drain();
                    }
                }
                None
            }
            20..=63 => {
                let events = self
                    .endpoint
                    .read(now, from, None, BytesMut::from(data))
                    .unwrap();
                self.drain();
                for ev in events {
                    if let EndpointEvent::HandshakeComplete = ev {
                        let state = self.endpoint.get_connection_state(from).unwrap();
                        let (l, r, _) =
                            srtp_contexts(state, self.identity.crypto.as_ref()).unwrap();
                        self.local_ctx = Some(l);
                        self.remote_ctx = Some(r);
                    }
                }
                None
            }
            _ => {
                let ctx = self.remote_ctx.as_mut()?;
                if (192..=223).contains(&data[1]) {
                    ctx.decrypt_rtcp(data).ok().map(Incoming::Rtcp)
                } else {
                    ctx.decrypt_rtp(data).ok().map(Incoming::Rtp)
                }
            }
        }
    }

    fn drain(&mut self) {
        while let Some(t) = self.endpoint.poll_transmit() {
            self.out.push(t.message);
        }
    }

    pub fn timeout(&mut self, now: Instant) {
        if let Some(r) = self.remote {
            if self.endpoint.poll_timeout(&r).is_some_and(|t| now >= t) {
                let _ = self.endpoint.handle_timeout(r, now);
                self.drain();
            }
        }
    }
}

// and re-encrypted for each connected player; a joining player triggers a PLI to the publisher.

pub struct Sink {
    sock: Arc<UdpSocket>,
    addr: Mutex<Option<SocketAddr>>,
    ctx: Mutex<Option<Context>>,
}

#[derive(Default)]
pub struct Sfu {
    players: Mutex<Vec<Arc<Sink>>>,
    pli_wanted: AtomicBool,
    pub forwarded: AtomicU64,
    pub plays: AtomicU64,
}

fn answer_sdp(ufrag: &str, pwd: &str, fp: &str, addr: SocketAddr) -> String {
    let mut s = String::from(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=ice-lite\r\na=group:BUNDLE 0 1\r\n",
    );
    for (mid, m) in [
        ("0", "video 9 UDP/TLS/RTP/SAVPF 102"),
        ("1", "audio 9 UDP/TLS/RTP/SAVPF 111"),
    ] {
        s += &format!(
            "m={m}\r\nc=IN IP4 127.0.0.1\r\na=mid:{mid}\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n\
             a=fingerprint:sha-256 {fp}\r\na=setup:passive\r\na=rtcp-mux\r\n\
             a=candidate:1 1 udp 2130706431 {} {} typ host\r\n",
            addr.ip(),
            addr.port()
        );
    }
    s
}

fn session_media(sfu: Arc<Sfu>, mut lite: LitePeer, sock: Arc<UdpSocket>, sink: Option<Arc<Sink>>) {
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let mut buf = vec![0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(3600);
    let publisher = sink.is_none();
    while Instant::now() < deadline {
        let now = Instant::now();
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let got = lite.handle(now, from, &buf[..n]);
            if let (Some(Incoming::Rtp(pkt)), true) = (got, publisher) {
                for p in sfu.players.lock().unwrap().iter() {
                    let addr = *p.addr.lock().unwrap();
                    if let (Some(addr), Some(ctx)) = (addr, p.ctx.lock().unwrap().as_mut()) {
                        let enc = ctx.encrypt_rtp(&pkt).unwrap();
                        let _ = p.sock.send_to(&enc, addr);
                        sfu.forwarded.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        lite.timeout(Instant::now());
        let remote = lite.remote;
        for d in std::mem::take(&mut lite.out) {
            let _ = sock.send_to(&d, remote.unwrap());
        }
        if let Some(sink) = &sink {
            if lite.local_ctx.is_some() && sink.ctx.lock().unwrap().is_none() {
                *sink.addr.lock().unwrap() = lite.remote;
                *sink.ctx.lock().unwrap() = lite.local_ctx.take();
                sfu.pli_wanted.store(true, Ordering::SeqCst);
            }
        } else if let (Some(ctx), Some(r)) = (lite.local_ctx.as_mut(), lite.remote) {
            if sfu.pli_wanted.swap(false, Ordering::SeqCst) {
                let pli = [0x81u8, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0];
                let _ = sock.send_to(&ctx.encrypt_rtcp(&pli).unwrap(), r);
            }
        }
    }
}

fn serve_ws(sfu: Arc<Sfu>, identity: Identity, tcp: std::net::TcpStream) {
    let mut ws = tungstenite::accept(tcp).unwrap();
    let session = random_ice_string(10);
    loop {
        let msg = match ws.read() {
            Ok(tungstenite::Message::Text(t)) => t,
            Ok(tungstenite::Message::Close(_)) | Err(_) => return,
            Ok(_) => continue,
        };
        let req: Value = serde_json::from_str(msg.as_str()).unwrap();
        let method = req["method"].as_str().unwrap().to_string();
        assert_eq!(req["version"], "1.0");
        assert!(req["stream"].is_string());
        let mut data = json!({});
        if method == "stream.publish" || method == "stream.play" {
            let offer = req["data"]["sdp"].as_str().unwrap();
            let publisher = method == "stream.publish";
            assert_eq!(offer.contains("a=sendonly"), publisher);
            assert_eq!(offer.contains("a=recvonly"), !publisher);
            let client_fp = sdp::parse_answer(offer).unwrap().fingerprint;
            let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
            let addr = sock.local_addr().unwrap();
            let lite = LitePeer::new(&identity, addr, &client_fp, false);
            data =
                json!({ "sdp": answer_sdp(&lite.ufrag, &lite.pwd, &identity.fingerprint, addr) });
            let sink = (!publisher).then(|| {
                sfu.plays.fetch_add(1, Ordering::SeqCst);
                let s = Arc::new(Sink {
                    sock: sock.clone(),
                    addr: Mutex::new(None),
                    ctx: Mutex::new(None),
                });
                sfu.players.lock().unwrap().push(s.clone());
                s
            });
            let sfu = sfu.clone();
            std::thread::spawn(move || session_media(sfu, lite, sock, sink));
        }
        let reply = json!({ "version": "1.0", "err": 0, "err_msg": "success", "method": method,
                            "session": session, "data": data });
        if ws
            .send(tungstenite::Message::text(reply.to_string()))
            .is_err()
        {
            return;
        }
    }
}

/// Serves WebSocket signaling on `listener` in background threads.
pub fn spawn(listener: TcpListener, identity: Identity) -> Arc<Sfu> {
    let sfu = Arc::new(Sfu::default());
    let s = sfu.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let (sfu, id) = (s.clone(), identity.clone());
            std::thread::spawn(move || serve_ws(sfu, id, tcp));
        }
    });
    sfu
}
