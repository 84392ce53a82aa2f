//! The worker's dispatch through the `Peer` trait, with a test kind ([`Probe`]) that records
//! every call: readiness of a socket it registered, datagrams of the shared socket routed by a
//! claimed address, datagrams forwarded by another peer, deadlines, messages by id, the
//! router's output by id, flushes, close, and a panic closing only the peer that panicked.

use std::net::SocketAddr;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use pms_core::media::{
    Codec, CodecName, ConsumerTrack, HeaderExtensions, MediaKind, ProducerTrack,
};

use super::*;
use crate::events::{Event, EventQueue};

type Log = Arc<Mutex<Vec<String>>>;

fn lines(l: &Log) -> Vec<String> {
    l.lock().unwrap().clone()
}

/// What a probe does at start.
#[derive(Default)]
struct Setup {
    /// Register this socket (its datagrams are read and logged).
    socket: Option<std::net::UdpSocket>,
    /// Claim datagrams of the worker's shared socket from this address.
    claim: Option<SocketAddr>,
    /// Set a deadline this far ahead.
    deadline: Option<Duration>,
    /// Join the router as a producer with this track.
    produce: Option<ProducerTrack>,
    /// Join the router as a consumer of this producer, with this track, connected.
    consume: Option<(PeerId, ConsumerTrack)>,
}

/// Messages a probe understands.
enum Do {
    Forward(PeerId, Vec<u8>),
    Route(Vec<u8>),
    Rearm(Duration),
    CloseOther(PeerId),
    Panic,
}

struct Probe {
    name: &'static str,
    log: Log,
    setup: Setup,
    socket: Option<(mio::net::UdpSocket, Token)>,
}

impl Probe {
    fn new(name: &'static str, log: &Log, setup: Setup) -> Box<Probe> {
        Box::new(Probe {
            name,
            log: log.clone(),
            setup,
            socket: None,
        })
    }

    fn note(&self, what: String) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{} {what}", self.name));
    }
}

impl MediaSink for Probe {
    fn send_media(&mut self, out: &mut MediaOut<'_>, pkt: &[u8], rtcp: bool) {
        if !rtcp {
            self.note(format!("media to {} len {}", out.id(), pkt.len()));
            out.flush_later();
        }
    }
}

impl Peer for Probe {
    fn start(&mut self, ctx: &mut PeerCtx<'_>) -> Result<(), &'static str> {
        let (id, now) = (ctx.id(), ctx.now());
        if let Some(s) = self.setup.socket.take() {
            s.set_nonblocking(true).unwrap();
            let mut s = mio::net::UdpSocket::from_std(s);
            let t = ctx.register(&mut s, Interest::READABLE).unwrap();
            self.socket = Some((s, t));
        }
        if let Some(a) = self.setup.claim {
            ctx.claim_addr(a);
        }
        if let Some(d) = self.setup.deadline {
            ctx.set_deadline(Some(now + d));
        }
        if let Some(t) = self.setup.produce.take() {
            ctx.router().add_producer(id, vec![t], 0, now);
        }
        if let Some((producer, t)) = self.setup.consume.take() {
            if ctx
                .router()
                .add_consumer(id, producer, vec![t], now)
                .is_err()
            {
                return Err("producer-closed");
            }
            ctx.with_router(self, |r, out| r.consumer_connected(id, now, out));
        }
        self.note("start".into());
        Ok(())
    }

    fn on_ready(&mut self, ctx: &mut PeerCtx<'_>, token: Token, ready: Readiness) {
        let Some((s, t)) = self.socket.as_ref() else {
            return;
        };
        assert_eq!(*t, token);
        assert!(ready.readable);
        let mut buf = ctx.take_read_buffer();
        while let Ok((n, _)) = s.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            self.note(format!("ready {text}"));
        }
        ctx.put_read_buffer(buf);
    }

    fn on_datagram(&mut self, _ctx: &mut PeerCtx<'_>, _from: SocketAddr, data: &[u8]) {
        self.note(format!("datagram {}", String::from_utf8_lossy(data)));
    }

    fn on_deadline(&mut self, ctx: &mut PeerCtx<'_>) {
        assert_eq!(ctx.deadline(), None, "a deadline is one-shot");
        self.note("deadline".into());
    }

    fn on_message(&mut self, ctx: &mut PeerCtx<'_>, msg: Message) {
        let Ok(msg) = msg.downcast::<Do>() else {
            self.note("message of another kind".into());
            return;
        };
        match *msg {
            Do::Forward(to, data) => {
                let from = "127.0.0.1:9".parse().unwrap();
                let ok = ctx.forward(to, from, &data);
                self.note(format!("forwarded {ok}"));
            }
            Do::Route(pkt) => ctx.route(self, &pkt, false),
            Do::Rearm(d) => {
                let at = ctx.now() + d;
                ctx.set_deadline(Some(at));
            }
            Do::CloseOther(id) => ctx.close(id, "closed-by-peer"),
            Do::Panic => panic!("probe asked to panic"),
        }
    }

    fn on_flush(&mut self, _ctx: &mut PeerCtx<'_>) {
        self.note("flush".into());
    }

    fn close(&mut self, ctx: &mut PeerCtx<'_>, reason: &'static str) {
        if let Some((mut s, t)) = self.socket.take() {
            ctx.deregister(&mut s, t);
        }
        self.note(format!("close {reason}"));
    }
}

struct Harness {
    worker: Worker,
    tx: Sender<Command>,
    events: Arc<EventQueue>,
    poll_events: Events,
    buf: Vec<u8>,
    ready: Vec<(Token, Readiness)>,
}

impl Harness {
    fn new() -> Harness {
        let events = Arc::new(EventQueue::new().unwrap());
        let shared = Arc::new(Shared::new(1, events.clone()));
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let (tx, rx) = channel();
        let worker = Worker::new(0, Poll::new().unwrap(), socket, rx, shared).unwrap();
        Harness {
            worker,
            tx,
            events,
            poll_events: Events::with_capacity(64),
            buf: vec![0; RECV_BUFFER],
            ready: Vec::new(),
        }
    }

    fn send(&self, cmd: Command) {
        self.tx.send(cmd).unwrap();
    }

    fn add(&mut self, id: PeerId, peer: Box<dyn Peer>) {
        self.send(Command::Add {
            id,
            info: PeerInfo::transport("s", false),
            peer,
        });
        self.step();
    }

    fn message(&mut self, id: PeerId, what: Do) {
        self.send(Command::Message {
            id,
            msg: Box::new(what),
        });
        self.step();
    }

    fn step(&mut self) -> bool {
        self.worker.iterate(
            &mut self.poll_events,
            &mut self.buf,
            &mut self.ready,
            Some(Duration::from_millis(5)),
        )
    }

    /// Steps until `log` has `line` (at most 2 s).
    fn until(&mut self, log: &Log, line: &str) {
        let end = Instant::now() + Duration::from_secs(2);
        while !log.lock().unwrap().iter().any(|l| l == line) {
            assert!(Instant::now() < end, "no {line:?} in {:?}", lines(log));
            self.step();
        }
    }

    fn closed(&self) -> Vec<(PeerId, &'static str)> {
        self.events
            .drain()
            .into_iter()
            .filter_map(|e| match e {
                Event::TransportClosed { id, reason } => Some((id, reason)),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn readiness_datagrams_deadlines_and_messages_reach_their_peer_by_id() {
    let mut h = Harness::new();
    let log: Log = Default::default();
    let own = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let own_addr = own.local_addr().unwrap();
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let setup = Setup {
        socket: Some(own),
        claim: Some(client.local_addr().unwrap()),
        deadline: Some(Duration::from_millis(30)),
        ..Setup::default()
    };
    h.add(1, Probe::new("a", &log, setup));
    h.add(2, Probe::new("b", &log, Setup::default()));
    assert_eq!(lines(&log), ["a start", "b start"]);

    // A socket the peer registered.
    client.send_to(b"own", own_addr).unwrap();
    h.until(&log, "a ready own");
    // The worker's shared socket, routed by the claimed source address.
    let shared_addr = h.worker.parts.socket.local_addr().unwrap();
    // (DTLS-like: the mux drops what does not look like STUN, DTLS, RTP or RTCP.)
    client.send_to(b"\x16shared datagram", shared_addr).unwrap();
    h.until(&log, "a datagram \u{16}shared datagram");
    // A datagram from an address nobody claimed is counted, not delivered.
    let stranger = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger
        .send_to(b"\x16stray datagram", shared_addr)
        .unwrap();
    let end = Instant::now() + Duration::from_millis(100);
    while Instant::now() < end {
        h.step();
    }
    assert!(!lines(&log).iter().any(|l| l.contains("stray")));
    assert_eq!(
        h.worker.parts.counters.get(crate::stats::STAT_RTP_DROPPED),
        1
    );
    // The deadline set at start.
    h.until(&log, "a deadline");

    // A message by id reaches that peer only; a peer forwards a datagram to another by id.
    log.lock().unwrap().clear();
    h.message(2, Do::Forward(1, b"hi".to_vec()));
    assert_eq!(lines(&log), ["a datagram hi", "b forwarded true"]);
    log.lock().unwrap().clear();
    h.message(1, Do::Forward(77, b"lost".to_vec()));
    assert_eq!(lines(&log), ["a forwarded false"]);
    log.lock().unwrap().clear();
    h.send(Command::Message {
        id: 2,
        msg: Box::new(5u8),
    });
    h.step();
    assert_eq!(lines(&log), ["b message of another kind"]);

    // Close by id: the peer closes, its token goes, the control plane hears of it.
    log.lock().unwrap().clear();
    h.send(Command::Close { id: 1 });
    h.step();
    assert_eq!(lines(&log), ["a close closed"]);
    assert!(h.worker.parts.tokens.is_empty());
    assert_eq!(h.closed(), [(1, "closed")]);
    // Its claimed address is forgotten: a datagram from it is dropped.
    client.send_to(b"\x16late datagram", shared_addr).unwrap();
    h.step();
    h.step();
    assert!(!lines(&log).iter().any(|l| l.contains("late")));
    // A peer closes another; a command for a gone peer is dropped.
    h.add(3, Probe::new("c", &log, Setup::default()));
    h.message(2, Do::CloseOther(3));
    assert!(lines(&log).contains(&"c close closed-by-peer".to_string()));
    assert_eq!(h.closed(), [(3, "closed-by-peer")]);
    h.message(3, Do::Panic);
    assert!(h.step());
}

#[test]
fn deadlines_rearm_and_fire_in_order_across_peers() {
    let mut h = Harness::new();
    let log: Log = Default::default();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let setup = Setup {
            deadline: Some(Duration::from_millis(60 - 20 * i as u64)),
            ..Setup::default()
        };
        h.add(i as PeerId + 1, Probe::new(name, &log, setup));
    }
    // "a" moves its deadline later, past the others, before anything fires.
    h.message(1, Do::Rearm(Duration::from_millis(120)));
    h.until(&log, "a deadline");
    let fired: Vec<String> = lines(&log)
        .into_iter()
        .filter(|l| l.ends_with("deadline"))
        .collect();
    assert_eq!(fired, ["c deadline", "b deadline", "a deadline"]);
    // One-shot: nothing fires again.
    let end = Instant::now() + Duration::from_millis(50);
    while Instant::now() < end {
        h.step();
    }
    assert_eq!(
        lines(&log)
            .iter()
            .filter(|l| l.ends_with("deadline"))
            .count(),
        3
    );
    // A closed peer's deadline never fires.
    h.message(2, Do::Rearm(Duration::from_millis(10)));
    h.send(Command::Close { id: 2 });
    h.step();
    let end = Instant::now() + Duration::from_millis(50);
    while Instant::now() < end {
        h.step();
    }
    assert_eq!(
        lines(&log)
            .iter()
            .filter(|l| l.ends_with("deadline"))
            .count(),
        3
    );
    assert_eq!(h.worker.parts.deadlines.next(), None);
}

#[test]
fn router_output_reaches_consumers_by_id_and_a_panic_closes_only_its_peer() {
    let mut h = Harness::new();
    let log: Log = Default::default();
    let track = ProducerTrack {
        kind: MediaKind::Audio,
        mid: "0".into(),
        codec: Codec {
            name: CodecName::Pcma,
            payload_type: 8,
            clock_rate: 8000,
            channels: 1,
            fmtp: String::new(),
            rtx_payload_type: None,
            rtcp_fb: Vec::new(),
        },
        ssrc: None,
        rtx_ssrc: None,
        extensions: HeaderExtensions::default(),
    };
    let consumer = |ssrc: u32| ConsumerTrack {
        kind: MediaKind::Audio,
        mid: "0".into(),
        codec: track.codec.clone(),
        ssrc,
        rtx_ssrc: None,
        extensions: HeaderExtensions::default(),
        producer_track: 0,
    };
    let publisher = Setup {
        produce: Some(track.clone()),
        ..Setup::default()
    };
    h.add(1, Probe::new("pub", &log, publisher));
    for (id, name) in [(2, "p2"), (3, "p3")] {
        let player = Setup {
            consume: Some((1, consumer(id as u32 * 1000))),
            ..Setup::default()
        };
        h.add(id, Probe::new(name, &log, player));
    }
    // A player of a producer that does not exist never starts.
    let orphan = Setup {
        consume: Some((99, consumer(4000))),
        ..Setup::default()
    };
    h.add(4, Probe::new("orphan", &log, orphan));
    assert!(!lines(&log).contains(&"orphan start".to_string()));
    assert_eq!(h.closed(), [(4, "producer-closed")]);

    log.lock().unwrap().clear();
    let mut rtp = vec![0x80, 8, 0, 1, 0, 0, 0, 160, 0x11, 0x22, 0x33, 0x44];
    rtp.extend_from_slice(&[0xd5; 160]);
    h.message(1, Do::Route(rtp.clone()));
    let got = lines(&log);
    assert!(
        got.contains(&"p2 media to 2 len 172".to_string()),
        "{got:?}"
    );
    assert!(
        got.contains(&"p3 media to 3 len 172".to_string()),
        "{got:?}"
    );
    // Each consumer asked for a flush; it came at the end of the iteration.
    assert!(got.contains(&"p2 flush".to_string()) && got.contains(&"p3 flush".to_string()));

    // A panic in a player closes it alone; the worker and the others go on.
    h.message(3, Do::Panic);
    assert!(!lines(&log).contains(&"p3 close internal-error".to_string()));
    assert_eq!(h.closed(), [(3, "internal-error")]);
    log.lock().unwrap().clear();
    rtp[3] = 2;
    h.message(1, Do::Route(rtp));
    assert!(lines(&log).contains(&"p2 media to 2 len 172".to_string()));
    assert!(!lines(&log).iter().any(|l| l.starts_with("p3")));

    // The publisher leaves: its players close with it.
    log.lock().unwrap().clear();
    h.send(Command::Close { id: 1 });
    h.step();
    assert_eq!(
        lines(&log),
        ["pub close closed", "p2 close producer-closed"]
    );
    assert_eq!(h.closed(), [(1, "closed"), (2, "producer-closed")]);
    assert!(h.worker.peers.is_empty());
    // Shutdown closes what is left and ends the loop.
    h.add(5, Probe::new("last", &log, Setup::default()));
    h.send(Command::Shutdown);
    assert!(!h.step());
    assert!(lines(&log).contains(&"last close shutdown".to_string()));
}
