//! Manual interop check (not part of the library, which owns no sockets): answers the publish
//! offer in file ARG1 on a UDP socket at 127.0.0.1, writes the answer to ARG2, then drives one
//! `WebRtcTransport` until it has decrypted 20 RTP packets or 15 s pass. Used with
//! `tests/data/aiortc_interop.py`.
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use pms_core::cert::DtlsIdentity;
use pms_core::sdp::{answer_publisher, AnswerContext};
use pms_core::transport::{Received, TransportEvent, WebRtcTransport};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let offer = std::fs::read_to_string(&args[1]).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    let identity = DtlsIdentity::generate().unwrap();
    let ctx = AnswerContext {
        ice_ufrag: "pmsU",
        ice_pwd: "pmspassword0123456789abcd",
        fingerprint: identity.fingerprint(),
        candidates: &[local],
        max_bitrate: 0,
    };
    let (answer, tracks, remote) = answer_publisher(&offer, &ctx).unwrap();
    eprintln!("tracks: {tracks:?}");
    std::fs::write(&args[2], &answer).unwrap();
    let start = Instant::now();
    let mut t = WebRtcTransport::new(
        1,
        "pmsU".into(),
        "pmspassword0123456789abcd".into(),
        remote,
        &identity,
        start,
        Duration::from_secs(15),
    )
    .unwrap();
    let mut buf = vec![0u8; 2048];
    let (mut rtp, mut rtcp) = (0, 0);
    loop {
        let now = Instant::now();
        let wait = t
            .poll_timeout()
            .map(|d| d.saturating_duration_since(now))
            .unwrap_or(Duration::from_millis(50));
        sock.set_read_timeout(Some(
            wait.max(Duration::from_millis(1))
                .min(Duration::from_millis(50)),
        ))
        .unwrap();
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            match t.handle_datagram(Instant::now(), from, &buf[..n]) {
                Some(Received::Rtp(p)) => {
                    rtp += 1;
                    if rtp == 1 {
                        eprintln!(
                            "first RTP: pt {} ssrc {:08x} len {}",
                            p[1] & 0x7f,
                            u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
                            p.len()
                        );
                    }
                }
                Some(Received::Rtcp(_)) => rtcp += 1,
                None => {}
            }
        }
        t.handle_timeout(Instant::now());
        while let Some((to, d)) = t.poll_transmit() {
            let _ = sock.send_to(&d, to);
        }
        while let Some(e) = t.poll_event() {
            eprintln!("event: {e:?} after {:?}", start.elapsed());
            if let TransportEvent::Closed(_) = e {
                eprintln!("rtp {rtp} rtcp {rtcp}");
                std::process::exit(1);
            }
        }
        if rtp >= 20 {
            eprintln!("OK: rtp {rtp} rtcp {rtcp}");
            t.close();
            while let Some((to, d)) = t.poll_transmit() {
                let _ = sock.send_to(&d, to);
            }
            return;
        }
        if start.elapsed() > Duration::from_secs(20) {
            eprintln!("timeout: rtp {rtp} rtcp {rtcp}");
            std::process::exit(2);
        }
    }
}
