//! RTSP media path through a real engine: publishers and players over loopback TCP
//! (interleaved) and UDP, parameter sets from the ANNOUNCE before the first IDR, text messages
//! up to the control plane, backpressure, and a stream's end closing its players.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pms_core::cert::DtlsIdentity;
use pms_core::rtsp_framing::{Frame, InterleavedReader};
use pms_io::{Engine, EngineConfig, Event, EventQueue, RtspTrackSpec};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8];
const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

fn engine() -> (Engine, Arc<EventQueue>) {
    let events = Arc::new(EventQueue::new().unwrap());
    let config = EngineConfig {
        workers: 1,
        listen_ip: LOCAL,
        announced_ips: vec![LOCAL],
        min_port: 0,
        max_port: 0,
        identity: DtlsIdentity::generate().unwrap(),
        connect_timeout: Duration::from_secs(30),
    };
    (Engine::start(config, events.clone()).unwrap(), events)
}

fn h264_track() -> RtspTrackSpec {
    RtspTrackSpec {
        kind: "video".into(),
        codec: "H264".into(),
        payload_type: 96,
        clock_rate: 90000,
        channels: 0,
        // FFmpeg's ANNOUNCE: the sets only here, no packetization-mode.
        fmtp: "profile-level-id=42C01F;sprop-parameter-sets=Z0LAH9oBQBbo,aM48gA==".into(),
    }
}

/// A connected (client, server) pair of loopback TCP sockets.
fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind((LOCAL, 0)).unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    (c, s)
}

fn rtp(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 96 | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn interleaved(channel: u8, pkt: &[u8]) -> Vec<u8> {
    let mut f = vec![b'$', channel];
    f.extend_from_slice(&(pkt.len() as u16).to_be_bytes());
    f.extend_from_slice(pkt);
    f
}

/// What a client read on its connection: RTP packets (by channel) and text messages.
#[derive(Default)]
struct Received {
    reader: InterleavedReader,
    rtp: Vec<(u8, Vec<u8>)>,
    messages: Vec<Vec<u8>>,
    eof: bool,
}

impl Received {
    fn pump(&mut self, s: &mut TcpStream) {
        let mut buf = [0u8; 65536];
        match s.read(&mut buf) {
            Ok(0) => self.eof = true,
            Ok(n) => {
                for f in self.reader.push(&buf[..n]) {
                    match f.unwrap() {
                        Frame::Interleaved { channel, payload } => {
                            self.rtp.push((channel, payload.to_vec()))
                        }
                        Frame::Message(m) => self.messages.push(m.to_vec()),
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => self.eof = true,
        }
    }

    fn until(&mut self, s: &mut TcpStream, what: &str, done: impl Fn(&Received) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            self.pump(s);
        }
    }

    /// RTP packets on channel 0.
    fn media(&self) -> Vec<&Vec<u8>> {
        self.rtp
            .iter()
            .filter(|(c, _)| *c == 0)
            .map(|(_, p)| p)
            .collect()
    }
}

fn wait_event(
    q: &EventQueue,
    seen: &mut Vec<Event>,
    what: &str,
    f: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        seen.extend(q.drain());
        if let Some(i) = seen.iter().position(&f) {
            return seen.remove(i);
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; seen {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn stat(e: &Engine, name: &str) -> u64 {
    e.stats()
        .into_iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .unwrap()
}

fn u16_at(p: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([p[i], p[i + 1]])
}
fn u32_at(p: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]])
}

#[test]
fn tcp_publish_and_play() {
    let (engine, q) = engine();
    let mut seen = Vec::new();
    let p = engine
        .create_rtsp_publisher("cam", &[h264_track()], false)
        .unwrap();
    assert_eq!(
        engine
            .create_rtsp_publisher("cam", &[h264_track()], false)
            .unwrap_err()
            .code(),
        409
    );
    let tracks = engine.stream_tracks("cam").unwrap();
    assert!(tracks[0].codec.fmtp.starts_with("packetization-mode=1;"));
    let setup = engine.rtsp_add_track(p, 0, Some((0, 1)), None).unwrap();
    assert_eq!(setup.server_port, None);
    let (mut pub_c, pub_s) = tcp_pair();
    engine
        .rtsp_start(
            p,
            Some(pub_s),
            b"RTSP/1.0 200 OK\r\nCSeq: 5\r\n\r\n".to_vec(),
            Vec::new(),
        )
        .unwrap();
    let mut pub_rx = Received::default();
    pub_rx.until(&mut pub_c, "RECORD reply", |r| !r.messages.is_empty());

    let c = engine.create_rtsp_player("cam").unwrap();
    let setup = engine.rtsp_add_track(c, 0, Some((0, 1)), None).unwrap();
    let (seq0, ts0, ssrc) = (
        setup.seq.unwrap(),
        setup.rtptime.unwrap(),
        setup.ssrc.unwrap(),
    );
    let (mut play_c, play_s) = tcp_pair();
    // Python read a GET_PARAMETER past the PLAY request: it is pending data.
    let pending = b"GET_PARAMETER rtsp://h/cam RTSP/1.0\r\nCSeq: 6\r\n\r\n".to_vec();
    engine
        .rtsp_start(
            c,
            Some(play_s),
            b"RTSP/1.0 200 OK\r\nCSeq: 5\r\n\r\n".to_vec(),
            pending,
        )
        .unwrap();
    let ev = wait_event(&q, &mut seen, "rtsp_message", |e| {
        matches!(e, Event::RtspMessage { .. })
    });
    assert_eq!(
        ev,
        Event::RtspMessage {
            id: c,
            data: b"GET_PARAMETER rtsp://h/cam RTSP/1.0\r\nCSeq: 6\r\n\r\n".to_vec()
        }
    );

    // A delta frame first (not forwarded: players start at a keyframe), then an IDR, a delta,
    // a frame on a channel never set up, all in one write.
    let mut burst = interleaved(0, &rtp(100, 1000, true, &[0x41, 0x9a, 1, 2]));
    burst.extend(interleaved(
        0,
        &rtp(101, 4000, true, &[0x65, 0x88, 0x84, 7]),
    ));
    burst.extend(interleaved(7, b"junk"));
    burst.extend(interleaved(0, &rtp(102, 7000, true, &[0x41, 0x9a, 3, 4])));
    pub_c.write_all(&burst).unwrap();

    let mut play_rx = Received::default();
    play_rx.until(&mut play_c, "3 packets", |r| r.media().len() >= 3);
    assert_eq!(play_rx.messages[0], b"RTSP/1.0 200 OK\r\nCSeq: 5\r\n\r\n");
    let m = play_rx.media();
    // STAP-A with the ANNOUNCE's SPS/PPS, then the IDR, then the delta; contiguous from RTP-Info.
    let mut stap = vec![0x78];
    for n in [SPS, PPS] {
        stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
        stap.extend_from_slice(n);
    }
    assert_eq!(&m[0][12..], &stap[..]);
    assert_eq!(&m[1][12..], &[0x65, 0x88, 0x84, 7]);
    assert_eq!(&m[2][12..], &[0x41, 0x9a, 3, 4]);
    for (i, pkt) in m.iter().enumerate() {
        assert_eq!(u16_at(pkt, 2), seq0.wrapping_add(i as u16));
        assert_eq!(u32_at(pkt, 8), ssrc);
        assert_eq!(pkt[1] & 0x7f, 96);
    }
    assert_eq!(u32_at(m[0], 4), ts0);
    assert_eq!(u32_at(m[2], 4), ts0.wrapping_add(3000));

    // Python answers the GET_PARAMETER through the core.
    engine
        .rtsp_send(c, b"RTSP/1.0 200 OK\r\nCSeq: 6\r\n\r\n".to_vec())
        .unwrap();
    play_rx.until(&mut play_c, "GET_PARAMETER reply", |r| {
        r.messages.len() >= 2
    });
    // The junk frame was counted.
    let deadline = Instant::now() + Duration::from_secs(2);
    while stat(&engine, "rtp_dropped") == 0 {
        assert!(Instant::now() < deadline, "junk channel not counted");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(stat(&engine, "publishers") == 1 && stat(&engine, "consumers") == 1);

    // PAUSE stops forwarding; PLAY resumes at a keyframe, sequence numbers contiguous.
    engine.rtsp_pause(c).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    pub_c
        .write_all(&interleaved(0, &rtp(103, 10000, true, &[0x41, 0x9a, 5])))
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    engine
        .rtsp_start(
            c,
            None,
            b"RTSP/1.0 200 OK\r\nCSeq: 8\r\n\r\n".to_vec(),
            Vec::new(),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    pub_c
        .write_all(&interleaved(0, &rtp(104, 13000, true, &[0x41, 0x9a, 6])))
        .unwrap();
    pub_c
        .write_all(&interleaved(
            0,
            &rtp(105, 16000, true, &[0x65, 0x88, 0x84, 8]),
        ))
        .unwrap();
    // Resuming replays the cached keyframe and what followed it (parameter sets first), then
    // the live packets.
    play_rx.until(&mut play_c, "resumed IDR", |r| r.media().len() >= 10);
    let m = play_rx.media();
    let payloads: Vec<&[u8]> = m[3..].iter().map(|p| &p[12..]).collect();
    let expect: [&[u8]; 7] = [
        &stap,
        &[0x65, 0x88, 0x84, 7],
        &[0x41, 0x9a, 3, 4],
        &[0x41, 0x9a, 5],
        &[0x41, 0x9a, 6],
        &stap,
        &[0x65, 0x88, 0x84, 8],
    ];
    assert_eq!(payloads, expect);
    for (i, pkt) in m.iter().enumerate() {
        assert_eq!(
            u16_at(pkt, 2),
            seq0.wrapping_add(i as u16),
            "contiguous across PAUSE"
        );
    }

    // The publisher hangs up: it closes with "eof", its player with "producer-closed".
    drop(pub_c);
    wait_event(&q, &mut seen, "publisher eof", |e| {
        *e == Event::TransportClosed {
            id: p,
            reason: "eof",
        }
    });
    wait_event(&q, &mut seen, "player closed", |e| {
        *e == Event::TransportClosed {
            id: c,
            reason: "producer-closed",
        }
    });
    play_rx.until(&mut play_c, "player EOF", |r| r.eof);
    assert!(engine.stream_tracks("cam").is_none());
    assert_eq!(engine.create_rtsp_player("cam").unwrap_err().code(), 404);
    engine.shutdown();
}

#[test]
fn udp_publish_and_play() {
    let (engine, q) = engine();
    let mut seen = Vec::new();
    let aac = RtspTrackSpec {
        kind: "audio".into(),
        codec: "MPEG4-GENERIC".into(),
        payload_type: 97,
        clock_rate: 44100,
        channels: 2,
        fmtp: "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1210".into(),
    };
    let unknown = RtspTrackSpec {
        kind: "application".into(),
        codec: "X-DATA".into(),
        payload_type: 98,
        clock_rate: 1000,
        channels: 0,
        fmtp: String::new(),
    };
    assert_eq!(
        engine
            .create_rtsp_publisher("mic", std::slice::from_ref(&unknown), false)
            .unwrap_err()
            .code(),
        415
    );
    let p = engine
        .create_rtsp_publisher("mic", &[unknown, aac], false)
        .unwrap();
    let tracks = engine.stream_tracks("mic").unwrap();
    assert_eq!(tracks.len(), 1);
    let pub_rtp = UdpSocket::bind((LOCAL, 0)).unwrap();
    let pub_rtcp = UdpSocket::bind((LOCAL, 0)).unwrap();
    let setup = engine
        .rtsp_add_track(
            p,
            1,
            None,
            Some((
                LOCAL,
                pub_rtp.local_addr().unwrap().port(),
                pub_rtcp.local_addr().unwrap().port(),
            )),
        )
        .unwrap();
    let (srv_rtp, srv_rtcp) = setup.server_port.unwrap();
    assert_ne!(srv_rtp, srv_rtcp);
    engine.rtsp_start(p, None, Vec::new(), Vec::new()).unwrap();

    let c = engine.create_rtsp_player("mic").unwrap();
    let play_rtp = UdpSocket::bind((LOCAL, 0)).unwrap();
    let play_rtcp = UdpSocket::bind((LOCAL, 0)).unwrap();
    play_rtp
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let setup = engine
        .rtsp_add_track(
            c,
            0,
            None,
            Some((
                LOCAL,
                play_rtp.local_addr().unwrap().port(),
                play_rtcp.local_addr().unwrap().port(),
            )),
        )
        .unwrap();
    let play_server = setup.server_port.unwrap();
    engine.rtsp_start(c, None, Vec::new(), Vec::new()).unwrap();
    std::thread::sleep(Duration::from_millis(50));

    let to = SocketAddr::new(LOCAL, srv_rtp);
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seq = 500u16;
    while got.len() < 3 {
        assert!(Instant::now() < deadline, "no media over UDP");
        let mut pkt = rtp(
            seq,
            seq as u32 * 1024,
            true,
            &[0x00, 0x10, 0x0a, 0xb0, seq as u8],
        );
        pkt[1] = 0x80 | 97;
        pub_rtp.send_to(&pkt, to).unwrap();
        seq += 1;
        if let Ok((n, from)) = play_rtp.recv_from(&mut buf) {
            assert_eq!(
                from.port(),
                play_server.0,
                "sent from the server's RTP port"
            );
            got.push(buf[..n].to_vec());
        }
    }
    assert_eq!(got[0][1] & 0x7f, 97);
    assert_eq!(u16_at(&got[0], 2), setup.seq.unwrap());
    assert_eq!(u32_at(&got[0], 4), setup.rtptime.unwrap());
    assert_eq!(u32_at(&got[0], 8), setup.ssrc.unwrap());
    // Datagrams from another IP than the client's are not media.
    engine.close_transport(p);
    wait_event(&q, &mut seen, "player closed", |e| {
        *e == Event::TransportClosed {
            id: c,
            reason: "producer-closed",
        }
    });
    wait_event(&q, &mut seen, "publisher closed", |e| {
        *e == Event::TransportClosed {
            id: p,
            reason: "closed",
        }
    });
    engine.shutdown();
}

#[test]
fn slow_tcp_reader_loses_packets_then_is_dropped() {
    let (engine, q) = engine();
    let mut seen = Vec::new();
    let p = engine
        .create_rtsp_publisher("big", &[h264_track()], false)
        .unwrap();
    engine.rtsp_add_track(p, 0, Some((0, 1)), None).unwrap();
    let (mut pub_c, pub_s) = tcp_pair();
    engine
        .rtsp_start(p, Some(pub_s), Vec::new(), Vec::new())
        .unwrap();
    // A player that never reads, and one that does.
    let slow = engine.create_rtsp_player("big").unwrap();
    engine.rtsp_add_track(slow, 0, Some((0, 1)), None).unwrap();
    let (slow_c, slow_s) = tcp_pair();
    engine
        .rtsp_start(slow, Some(slow_s), Vec::new(), Vec::new())
        .unwrap();
    let fast = engine.create_rtsp_player("big").unwrap();
    engine.rtsp_add_track(fast, 0, Some((0, 1)), None).unwrap();
    let (mut fast_c, fast_s) = tcp_pair();
    engine
        .rtsp_start(fast, Some(fast_s), Vec::new(), Vec::new())
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));

    let payload = vec![0x41u8; 1400];
    let mut idr = payload.clone();
    idr[0] = 0x65;
    pub_c
        .write_all(&interleaved(0, &rtp(0, 0, true, &idr)))
        .unwrap();
    let mut fast_rx = Received::default();
    let total = 6000u16;
    let reader = std::thread::spawn(move || {
        fast_rx.until(&mut fast_c, "every packet at the fast player", |r| {
            r.media().len() >= total as usize
        });
        (fast_rx.media().len(), fast_c)
    });
    for seq in 1..total {
        pub_c
            .write_all(&interleaved(
                0,
                &rtp(seq, seq as u32 * 3000, true, &payload),
            ))
            .unwrap();
    }
    let (n, _fast_c) = reader.join().unwrap();
    assert!(n >= total as usize);
    let deadline = Instant::now() + Duration::from_secs(2);
    while stat(&engine, "rtsp_dropped") == 0 {
        assert!(
            Instant::now() < deadline,
            "nothing dropped for the slow reader"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    wait_event(&q, &mut seen, "slow player stalled", |e| {
        *e == Event::TransportClosed {
            id: slow,
            reason: "stalled",
        }
    });
    seen.extend(q.drain());
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, Event::TransportClosed { id, .. } if *id == fast || *id == p)),
        "{seen:?}"
    );
    drop(slow_c);
    engine.shutdown();
}

/// `set_rtsp_merge_write`: a player's frames are held (here 300 ms) and leave together; every
/// read from a peer is a sign of life, reported at most once per 2 s.
#[test]
fn merged_writes_and_signs_of_life() {
    let (engine, q) = engine();
    engine.set_rtsp_merge_write(300);
    let mut seen = Vec::new();
    let p = engine
        .create_rtsp_publisher("cam", &[h264_track()], false)
        .unwrap();
    engine.rtsp_add_track(p, 0, Some((0, 1)), None).unwrap();
    let (mut pub_c, pub_s) = tcp_pair();
    engine
        .rtsp_start(p, Some(pub_s), Vec::new(), Vec::new())
        .unwrap();

    // The publisher's first frame: one sign of life; more within 2 s: none.
    pub_c
        .write_all(&interleaved(0, &rtp(1, 1000, true, &[0x65, 0x88, 0x84, 7])))
        .unwrap();
    wait_event(&q, &mut seen, "rtsp_alive", |e| {
        *e == Event::RtspAlive { id: p }
    });

    let c = engine.create_rtsp_player("cam").unwrap();
    engine.rtsp_add_track(c, 0, Some((0, 1)), None).unwrap();
    let (mut play_c, play_s) = tcp_pair();
    engine
        .rtsp_start(c, Some(play_s), Vec::new(), Vec::new())
        .unwrap();
    let mut play_rx = Received::default();
    // The cached keyframe (with the parameter sets before it) is the player's start.
    play_rx.until(&mut play_c, "the cached keyframe", |r| r.media().len() >= 2);

    // Five packets written at once arrive no sooner than the merge time, all together.
    let sent = Instant::now();
    let mut burst = Vec::new();
    for i in 0..5u16 {
        burst.extend(interleaved(
            0,
            &rtp(2 + i, 4000 + u32::from(i), true, &[0x41, 0x9a, 1, 2]),
        ));
    }
    pub_c.write_all(&burst).unwrap();
    play_rx.until(&mut play_c, "the 5 packets", |r| r.media().len() >= 3);
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "the first packet came {waited:?} after it was sent (merge: 300 ms)"
    );
    play_rx.until(&mut play_c, "the 5 packets", |r| r.media().len() >= 7);
    assert!(sent.elapsed() < waited + Duration::from_millis(100));

    // The player's RTCP receiver report: its first sign of life.
    let rr = [
        0x81, 201, 0, 7, 0, 0, 0, 1, 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0,
    ];
    play_c.write_all(&interleaved(1, &rr)).unwrap();
    wait_event(&q, &mut seen, "rtsp_alive of the player", |e| {
        *e == Event::RtspAlive { id: c }
    });
    // Within 2 s of the publisher's first, its later frames raised no second event.
    seen.extend(q.drain());
    let from_publisher = seen
        .iter()
        .filter(|e| **e == Event::RtspAlive { id: p })
        .count();
    assert_eq!(from_publisher, 0, "{seen:?}");
    drop(engine);
}
