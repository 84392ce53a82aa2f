//! `pms-fanout --ws URL --players N --seconds S [--stream NAME] [--janus ROOM] [--bind IP]`
//!
//! One synthetic publisher (H.264 ~1.5 Mbit/s + Opus) and N counting players against a pms-trio
//! server, or with `--janus ROOM` against a Janus VideoRoom (the publisher creates the room and
//! publishes in it, each player subscribes to its feed: Janus offers, the player answers). Progress goes to stderr as JSON lines with an `event` key (`publisher_ready`,
//! `players_connected`, `measure_start`, `measure_end`) so that a driver can sample the server
//! at those moments; the figures go to stdout as one JSON line.

use pms_bench_fanout::janus::JanusSession;
use pms_bench_fanout::media::{H264Source, OpusSource};
use pms_bench_fanout::sdp::{self, OfferParams, H264_PT, OPUS_PT};
use pms_bench_fanout::sdp_answer::{self, AnswerParams};
use pms_bench_fanout::signaling::{Session, Signal};
use pms_bench_fanout::transport::{random_ice_string, Identity, RemoteParams, Transport};
use pms_bench_fanout::worker::{Cmd, Peer, PlayerState, PublisherState, Role, Snapshot, Worker};
use serde_json::{json, Value};
use std::sync::mpsc::{channel, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: pms-fanout --ws URL [--players N] [--seconds S] [--stream NAME] \
[--threads T] [--warmup S] [--settle S] [--connect-timeout S] [--janus ROOM] [--bind IP]";

struct Args {
    ws: String,
    players: usize,
    seconds: f64,
    stream: String,
    threads: usize,
    warmup: f64,
    settle: f64,
    connect_timeout: f64,
    /// Janus VideoRoom room number; `None`: pms-trio's API.
    janus: Option<u64>,
    /// Local address of the UDP sockets (and of the candidate the client announces).
    bind: std::net::IpAddr,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        ws: String::new(),
        players: 10,
        seconds: 10.0,
        stream: "fanout".into(),
        threads: 1,
        warmup: 2.0,
        settle: 1.0,
        connect_timeout: 20.0,
        janus: None,
        bind: std::net::Ipv4Addr::LOCALHOST.into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "-h" || k == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let v = it
            .next()
            .ok_or_else(|| format!("{k} needs a value\n{USAGE}"))?;
        let num = |v: &str| {
            v.parse::<f64>()
                .map_err(|_| format!("{k}: not a number: {v}"))
        };
        match k.as_str() {
            "--ws" => a.ws = v,
            "--players" => a.players = num(&v)? as usize,
            "--seconds" => a.seconds = num(&v)?,
            "--stream" => a.stream = v,
            "--threads" => a.threads = (num(&v)? as usize).max(1),
            "--warmup" => a.warmup = num(&v)?,
            "--settle" => a.settle = num(&v)?,
            "--connect-timeout" => a.connect_timeout = num(&v)?,
            "--janus" => a.janus = Some(num(&v)? as u64),
            "--bind" => a.bind = v.parse().map_err(|_| format!("--bind: not an IP: {v}"))?,
            _ => return Err(format!("unknown option {k}\n{USAGE}")),
        }
    }
    if a.ws.is_empty() {
        return Err(format!("--ws is required\n{USAGE}"));
    }
    Ok(a)
}

fn event(name: &str, extra: Value) {
    let mut v = json!({ "event": name });
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    eprintln!("{v}");
}

fn nonzero_random() -> u32 {
    loop {
        let v: u32 = rand::random();
        if v != 0 {
            return v;
        }
    }
}

/// Where the peers go: a pms-trio stream, or a Janus VideoRoom room and (for players) the feed of
/// its publisher.
struct Target<'a> {
    url: &'a str,
    stream: &'a str,
    janus: Option<u64>,
    feed: Option<u64>,
    bind: std::net::IpAddr,
}

/// What signaling settled: the remote's SDP (answer, or Janus's offer to a player) and the
/// payload type of H.264 in it.
struct Negotiated {
    signal: Signal,
    remote_sdp: String,
    video_pt: Option<u8>,
    feed: Option<u64>,
}

/// pms-trio: `stream.publish` / `stream.play` with the client's offer.
fn negotiate_pms(t: &Target, publisher: bool, offer: &str) -> Result<Negotiated, String> {
    let mut session = Session::connect(t.url, t.stream)?;
    let method = if publisher {
        "stream.publish"
    } else {
        "stream.play"
    };
    let answer_sdp = session.negotiate(method, offer)?;
    let answer = sdp::parse_answer(&answer_sdp).map_err(|e| format!("{method}: {e}"))?;
    Ok(Negotiated {
        signal: Signal::Pms(session),
        remote_sdp: answer_sdp,
        video_pt: answer.video_pt,
        feed: None,
    })
}

/// Janus: the publisher creates the room and publishes its offer; a player subscribes to the feed,
/// answers Janus's offer and `start`s.
fn negotiate_janus(
    t: &Target,
    room: u64,
    publisher: bool,
    offer: &str,
    local: &AnswerParams,
) -> Result<Negotiated, String> {
    let mut js = JanusSession::connect(t.url)?;
    if publisher {
        js.create_room(room)?;
        let (answer_sdp, feed) = js.publish(room, offer)?;
        return Ok(Negotiated {
            signal: Signal::Janus(js),
            remote_sdp: answer_sdp,
            video_pt: Some(H264_PT),
            feed: Some(feed),
        });
    }
    let feed = t.feed.ok_or("no publisher feed")?;
    let offer_sdp = js.subscribe(room, feed)?;
    let media = sdp_answer::parse_offer_media(&offer_sdp);
    let video_pt = media
        .iter()
        .find(|m| m.kind == "video" && !m.rejected)
        .and_then(|m| m.pt);
    let answer = sdp_answer::build_answer(&media, local);
    js.start(room, &answer)?;
    Ok(Negotiated {
        signal: Signal::Janus(js),
        remote_sdp: offer_sdp,
        video_pt,
        feed: None,
    })
}

/// Signals one peer and builds its transport; the returned peer goes to a worker. The feed id is
/// the Janus publisher's.
fn new_peer(
    identity: &Identity,
    t: &Target,
    publisher: bool,
) -> Result<(Signal, Peer, Option<u64>), String> {
    let std_sock = std::net::UdpSocket::bind((t.bind, 0)).map_err(|e| format!("udp bind: {e}"))?;
    std_sock.set_nonblocking(true).map_err(|e| e.to_string())?;
    let local = std_sock.local_addr().map_err(|e| e.to_string())?;
    let ufrag = random_ice_string(8);
    let pwd = random_ice_string(24);
    let ssrcs = publisher.then(|| (nonzero_random(), nonzero_random(), nonzero_random()));
    let cname = random_ice_string(12);
    let offer = sdp::build_offer(&OfferParams {
        publisher,
        ice_ufrag: &ufrag,
        ice_pwd: &pwd,
        fingerprint: &identity.fingerprint,
        local_addr: local,
        cname: &cname,
        ssrcs,
    });
    let sent = Instant::now();
    let n = match t.janus {
        None => negotiate_pms(t, publisher, &offer)?,
        Some(room) => {
            let params = AnswerParams {
                ice_ufrag: &ufrag,
                ice_pwd: &pwd,
                fingerprint: &identity.fingerprint,
                local_addr: local,
            };
            negotiate_janus(t, room, publisher, &offer, &params)?
        }
    };
    let remote_desc = sdp::parse_answer(&n.remote_sdp).map_err(|e| format!("remote SDP: {e}"))?;
    let remote = RemoteParams {
        addr: remote_desc.candidate.expect("checked by parse_answer"),
        ice_ufrag: remote_desc.ice_ufrag.clone(),
        ice_pwd: remote_desc.ice_pwd.clone(),
        fingerprint: remote_desc.fingerprint.clone(),
        // passive or actpass (Janus's offer) → we connect; active → the server connects to us.
        dtls_client: remote_desc.setup != "active",
        // Janus offers to its players; the offerer is controlling unless it is ICE-lite.
        ice_controlling: remote_desc.ice_lite || publisher || t.janus.is_none(),
    };
    let transport = Transport::new(Instant::now(), identity, local, ufrag, pwd, remote)
        .map_err(|e| format!("transport: {e}"))?;
    let role = if let Some((v, _rtx, a)) = ssrcs {
        Role::Publisher(Box::new(PublisherState::new(
            H264Source::new(v, H264_PT),
            OpusSource::new(a, OPUS_PT),
        )))
    } else {
        if n.video_pt.is_none() {
            return Err("the remote SDP has no H.264 video".into());
        }
        Role::Player(Box::new(PlayerState::new(sent, n.video_pt)))
    };
    Ok((
        n.signal,
        Peer {
            sock: mio::net::UdpSocket::from_std(std_sock),
            transport,
            role,
        },
        n.feed,
    ))
}

struct Workers {
    txs: Vec<Sender<Cmd>>,
    handles: Vec<JoinHandle<()>>,
}

impl Workers {
    fn spawn(name: &str, scan_every: Duration) -> Result<(Sender<Cmd>, JoinHandle<()>), String> {
        let (tx, rx) = channel();
        let worker = Worker::new(rx, scan_every).map_err(|e| format!("poll: {e}"))?;
        let h = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || worker.run())
            .map_err(|e| e.to_string())?;
        Ok((tx, h))
    }

    fn snapshot(&self) -> Snapshot {
        let mut total = Snapshot::default();
        let mut rxs = vec![];
        for tx in &self.txs {
            let (stx, srx) = channel();
            if tx.send(Cmd::Snapshot(stx)).is_ok() {
                rxs.push(srx);
            }
        }
        for rx in rxs {
            if let Ok(s) = rx.recv_timeout(Duration::from_secs(5)) {
                total.merge(s);
            }
        }
        total
    }

    fn stop(self) {
        for tx in &self.txs {
            let _ = tx.send(Cmd::Stop);
        }
        for h in self.handles {
            let _ = h.join();
        }
    }
}

/// Keeps every session alive: a heartbeat each 5 s, replies drained.
struct Keeper {
    sessions: Vec<Signal>,
    next: Instant,
}

impl Keeper {
    fn tick(&mut self) {
        if Instant::now() >= self.next {
            for s in &mut self.sessions {
                s.heartbeat();
            }
            self.next = Instant::now() + Duration::from_secs(5);
        }
    }

    fn sleep(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.tick();
            std::thread::sleep((end - Instant::now().min(end)).min(Duration::from_millis(50)));
        }
    }

    fn closed(&self) -> usize {
        self.sessions.iter().filter(|s| s.closed()).count()
    }
}

fn stats(mut v: Vec<f64>, total: u64) -> Value {
    if v.is_empty() {
        return json!({ "count": 0, "missing": total, "p50": null, "p95": null, "max": null });
    }
    v.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        let idx = ((p / 100.0) * v.len() as f64).ceil() as usize;
        (v[idx.clamp(1, v.len()) - 1] * 10.0).round() / 10.0
    };
    json!({
        "count": v.len(), "missing": total.saturating_sub(v.len() as u64),
        "p50": pct(50.0), "p95": pct(95.0), "max": pct(100.0),
    })
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let identity = Identity::generate().map_err(|e| format!("certificate: {e}"))?;

    let (pub_tx, pub_h) = Workers::spawn("fanout-publisher", Duration::from_millis(1))?;
    let mut workers = Workers {
        txs: vec![pub_tx.clone()],
        handles: vec![pub_h],
    };
    let mut player_txs = vec![];
    for i in 0..args.threads {
        let (tx, h) = Workers::spawn(&format!("fanout-players-{i}"), Duration::from_millis(10))?;
        workers.txs.push(tx.clone());
        workers.handles.push(h);
        player_txs.push(tx);
    }
    let mut keeper = Keeper {
        sessions: vec![],
        next: Instant::now() + Duration::from_secs(5),
    };

    // Publisher.
    let t_pub = Instant::now();
    let mut target = Target {
        url: &args.ws,
        stream: &args.stream,
        janus: args.janus,
        feed: None,
        bind: args.bind,
    };
    let (session, peer, feed) = new_peer(&identity, &target, true)?;
    target.feed = feed;
    keeper.sessions.push(session);
    pub_tx
        .send(Cmd::Add(Box::new(peer)))
        .map_err(|_| "publisher worker gone")?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.connect_timeout);
    loop {
        let s = workers.snapshot();
        if s.publisher.as_ref().is_some_and(|p| p.connected) {
            break;
        }
        if Instant::now() > deadline {
            let why = s
                .errors
                .first()
                .cloned()
                .unwrap_or_else(|| "timeout".into());
            workers.stop();
            return Err(format!("publisher did not connect: {why}"));
        }
        keeper.sleep(Duration::from_millis(20));
    }
    event(
        "publisher_ready",
        json!({ "ms": (t_pub.elapsed().as_secs_f64() * 1e3).round() }),
    );
    keeper.sleep(Duration::from_secs_f64(args.settle));

    // Players.
    event("players_joining", json!({ "players": args.players }));
    let t_join = Instant::now();
    let mut signaling_errors: Vec<String> = vec![];
    // Players whose ICE role is controlled (a full-ICE server offered to them).
    let mut ice_controlled = 0usize;
    for i in 0..args.players {
        keeper.tick();
        match new_peer(&identity, &target, false) {
            Ok((session, peer, _)) => {
                ice_controlled += usize::from(!peer.transport.remote.ice_controlling);
                keeper.sessions.push(session);
                let tx = &player_txs[i % player_txs.len()];
                tx.send(Cmd::Add(Box::new(peer)))
                    .map_err(|_| "player worker gone")?;
            }
            Err(e) => {
                if signaling_errors.len() < 5 {
                    eprintln!("pms-fanout: player {i}: {e}");
                }
                signaling_errors.push(e);
            }
        }
    }
    let joined = args.players - signaling_errors.len();
    let join_seconds = t_join.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs_f64(args.connect_timeout);
    let mut s;
    loop {
        s = workers.snapshot();
        if s.receiving as usize + s.failed as usize >= joined || Instant::now() > deadline {
            break;
        }
        keeper.sleep(Duration::from_millis(50));
    }
    event(
        "players_connected",
        json!({ "players": args.players, "connected": s.connected, "receiving": s.receiving,
                "join_seconds": (join_seconds * 1e3).round() / 1e3 }),
    );

    keeper.sleep(Duration::from_secs_f64(args.warmup));
    let a = workers.snapshot();
    event("measure_start", json!({}));
    keeper.sleep(Duration::from_secs_f64(args.seconds));
    let b = workers.snapshot();
    event("measure_end", json!({}));

    let window = match (a.at, b.at) {
        (Some(x), Some(y)) => (y - x).as_secs_f64(),
        _ => args.seconds,
    };
    let packets = b.packets - a.packets;
    let expected = b.expected.saturating_sub(a.expected);
    let lost = b.lost.saturating_sub(a.lost);
    let mut errors = signaling_errors;
    errors.extend(b.errors.iter().cloned());
    errors.truncate(5);
    let publisher = b.publisher.clone().unwrap_or_default();
    let pa = a.publisher.clone().unwrap_or_default();
    let out = json!({
        "players": args.players,
        "connected": b.connected,
        "receiving": b.receiving,
        "failed": b.failed as usize + (args.players - joined),
        "join_seconds": (join_seconds * 1e3).round() / 1e3,
        "seconds": (window * 1e3).round() / 1e3,
        "packets_received": packets,
        "packets_per_second": (packets as f64 / window).round(),
        "bytes_per_second": ((b.bytes - a.bytes) as f64 / window).round(),
        "loss_packets": lost,
        "loss_ratio": if expected > 0 { lost as f64 / expected as f64 } else { 0.0 },
        "duplicates": b.duplicates - a.duplicates,
        "loss_packets_total": b.lost,
        "first_keyframe_ms": stats(b.keyframe_ms.clone(), args.players as u64),
        "first_packet_ms": stats(b.first_packet_ms.clone(), args.players as u64),
        "connect_ms": stats(b.connect_ms.clone(), args.players as u64),
        "publisher": {
            "packets_per_second": ((publisher.packets_sent - pa.packets_sent) as f64 / window).round(),
            "bitrate_bps": ((publisher.bytes_sent - pa.bytes_sent) as f64 * 8.0 / window).round(),
            "packets_sent": publisher.packets_sent,
            "send_errors": publisher.send_errors,
            "frames": publisher.frames,
            "idr_sent": publisher.idr_sent,
            "idr_forced": publisher.idr_forced,
            "pli_received": publisher.pli,
            "fir_received": publisher.fir,
        },
        "websockets_closed_by_server": keeper.closed(),
        "players_ice_controlled": ice_controlled,
        "errors": errors,
    });
    println!("{out}");

    for s in keeper.sessions.iter_mut().rev() {
        s.close();
    }
    workers.stop();
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("pms-fanout: {e}");
        std::process::exit(1);
    }
}
