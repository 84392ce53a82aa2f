//! The socket loop: one thread drives many peers (one UDP socket each) with mio.

use crate::media::{
    h264_starts_keyframe, parse_rtp, receiver_report, scan_rtcp, H264Source, OpusSource, SeqTracker,
};
use crate::transport::{Incoming, State, Transport};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

pub struct PublisherState {
    pub video: H264Source,
    pub audio: OpusSource,
    next_video: Instant,
    next_audio: Instant,
    started: bool,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub send_errors: u64,
    pub pli: u64,
    pub fir: u64,
    scratch: Vec<Vec<u8>>,
}

impl PublisherState {
    pub fn new(video: H264Source, audio: OpusSource) -> Self {
        let now = Instant::now();
        Self {
            video,
            audio,
            next_video: now,
            next_audio: now,
            started: false,
            packets_sent: 0,
            bytes_sent: 0,
            send_errors: 0,
            pli: 0,
            fir: 0,
            scratch: Vec::new(),
        }
    }
}

pub struct PlayerState {
    pub play_sent: Instant,
    pub video_pt: Option<u8>,
    rr_ssrc: u32,
    next_rr: Instant,
    pub packets: u64,
    pub bytes: u64,
    pub trackers: Vec<SeqTracker>,
    pub first_packet: Option<Duration>,
    pub first_keyframe: Option<Duration>,
}

impl PlayerState {
    pub fn new(play_sent: Instant, video_pt: Option<u8>) -> Self {
        Self {
            play_sent,
            video_pt,
            rr_ssrc: rand::random(),
            next_rr: play_sent + Duration::from_secs(1),
            packets: 0,
            bytes: 0,
            trackers: Vec::with_capacity(2),
            first_packet: None,
            first_keyframe: None,
        }
    }

    /// The per-packet work of a player: header parse, counters, sequence tracking.
    #[inline]
    fn on_rtp(&mut self, now: Instant, pkt: &[u8]) {
        let Some(h) = parse_rtp(pkt) else { return };
        self.packets += 1;
        self.bytes += pkt.len() as u64;
        if self.first_packet.is_none() {
            self.first_packet = Some(now - self.play_sent);
        }
        match self.trackers.iter_mut().find(|t| t.ssrc == h.ssrc) {
            Some(t) => t.push(h.seq),
            None => self.trackers.push(SeqTracker::new(h.ssrc, h.seq)),
        }
        if self.first_keyframe.is_none()
            && Some(h.pt) == self.video_pt
            && h264_starts_keyframe(&pkt[h.payload_offset..h.payload_end])
        {
            self.first_keyframe = Some(now - self.play_sent);
        }
    }
}

pub enum Role {
    Publisher(Box<PublisherState>),
    Player(Box<PlayerState>),
}

pub struct Peer {
    pub sock: UdpSocket,
    pub transport: Transport,
    pub role: Role,
}

impl Peer {
    fn flush(&mut self) {
        let remote = self.transport.remote.addr;
        while let Some(d) = self.transport.poll_transmit() {
            let _ = self.sock.send_to(&d, remote);
        }
    }

    fn on_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        match self.transport.handle_datagram(now, from, data) {
            Some(Incoming::Rtp(pkt)) => {
                if let Role::Player(p) = &mut self.role {
                    p.on_rtp(now, &pkt);
                }
            }
            Some(Incoming::Rtcp(pkt)) => {
                if let Role::Publisher(p) = &mut self.role {
                    let f = scan_rtcp(&pkt);
                    p.pli += f.pli as u64;
                    p.fir += f.fir as u64;
                    if f.pli + f.fir > 0 {
                        p.video.request_keyframe();
                    }
                }
            }
            None => {}
        }
    }

    fn tick(&mut self, now: Instant) {
        if self.transport.poll_timeout().is_some_and(|t| now >= t) {
            self.transport.handle_timeout(now);
        }
        if !self.transport.is_connected() {
            self.flush();
            return;
        }
        match &mut self.role {
            Role::Publisher(p) => {
                if !p.started {
                    p.started = true;
                    p.next_video = now;
                    p.next_audio = now;
                }
                let frame = Duration::from_nanos(1_000_000_000 / crate::media::FPS as u64);
                if now.duration_since(p.next_video) > Duration::from_secs(1) {
                    p.next_video = now; // stalled: skip ahead instead of bursting
                }
                if now.duration_since(p.next_audio) > Duration::from_secs(1) {
                    p.next_audio = now;
                }
                let mut pkts = std::mem::take(&mut p.scratch);
                while now >= p.next_video {
                    p.video.next_frame(&mut pkts);
                    p.next_video += frame;
                }
                while now >= p.next_audio {
                    pkts.push(p.audio.next_packet());
                    p.next_audio += Duration::from_millis(20);
                }
                let (mut sent, mut bytes, mut errors) = (0u64, 0u64, 0u64);
                for pkt in pkts.drain(..) {
                    bytes += pkt.len() as u64;
                    let Some(enc) = self.transport.protect_rtp(&pkt) else {
                        errors += 1;
                        continue;
                    };
                    match self.sock.send_to(&enc, self.transport.remote.addr) {
                        Ok(_) => sent += 1,
                        Err(_) => errors += 1,
                    }
                }
                if let Role::Publisher(p) = &mut self.role {
                    p.packets_sent += sent;
                    p.bytes_sent += bytes;
                    p.send_errors += errors;
                    p.scratch = pkts;
                }
            }
            Role::Player(p) => {
                if now >= p.next_rr {
                    p.next_rr = now + Duration::from_secs(1);
                    let rr = receiver_report(p.rr_ssrc, &p.trackers);
                    if let Some(enc) = self.transport.protect_rtcp(&rr) {
                        let _ = self.sock.send_to(&enc, self.transport.remote.addr);
                    }
                }
            }
        }
        self.flush();
    }
}

pub enum Cmd {
    Add(Box<Peer>),
    Snapshot(Sender<Snapshot>),
    Stop,
}

#[derive(Debug, Clone, Default)]
pub struct PublisherSnapshot {
    pub connected: bool,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub send_errors: u64,
    pub frames: u64,
    pub idr_sent: u64,
    pub idr_forced: u64,
    pub pli: u64,
    pub fir: u64,
}

/// Cumulative counters of one worker (or the sum of several).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub at: Option<Instant>,
    pub players: u64,
    pub connected: u64,
    pub failed: u64,
    pub receiving: u64,
    pub packets: u64,
    pub bytes: u64,
    pub expected: u64,
    pub unique: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub keyframe_ms: Vec<f64>,
    pub first_packet_ms: Vec<f64>,
    pub connect_ms: Vec<f64>,
    pub errors: Vec<String>,
    pub publisher: Option<PublisherSnapshot>,
}

impl Snapshot {
    pub fn merge(&mut self, o: Snapshot) {
        self.at = self.at.max(o.at);
        self.players += o.players;
        self.connected += o.connected;
        self.failed += o.failed;
        self.receiving += o.receiving;
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.expected += o.expected;
        self.unique += o.unique;
        self.lost += o.lost;
        self.duplicates += o.duplicates;
        self.keyframe_ms.extend(o.keyframe_ms);
        self.first_packet_ms.extend(o.first_packet_ms);
        self.connect_ms.extend(o.connect_ms);
        self.errors.extend(o.errors);
        if o.publisher.is_some() {
            self.publisher = o.publisher;
        }
    }
}

pub struct Worker {
    poll: Poll,
    peers: Vec<Peer>,
    rx: Receiver<Cmd>,
    scan_every: Duration,
}

impl Worker {
    pub fn new(rx: Receiver<Cmd>, scan_every: Duration) -> std::io::Result<Self> {
        Ok(Self {
            poll: Poll::new()?,
            peers: Vec::new(),
            rx,
            scan_every,
        })
    }

    fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot {
            at: Some(Instant::now()),
            ..Default::default()
        };
        for peer in &self.peers {
            let t = &peer.transport;
            if t.state() == State::Failed && s.errors.len() < 5 {
                s.errors.push(t.failure.clone().unwrap_or_default());
            }
            match &peer.role {
                Role::Publisher(p) => {
                    s.publisher = Some(PublisherSnapshot {
                        connected: t.is_connected(),
                        packets_sent: p.packets_sent,
                        bytes_sent: p.bytes_sent,
                        send_errors: p.send_errors,
                        frames: p.video.frames_sent,
                        idr_sent: p.video.idr_sent,
                        idr_forced: p.video.idr_forced,
                        pli: p.pli,
                        fir: p.fir,
                    });
                }
                Role::Player(p) => {
                    s.players += 1;
                    s.connected += t.is_connected() as u64;
                    s.failed += (t.state() == State::Failed) as u64;
                    s.receiving += (p.packets > 0) as u64;
                    s.packets += p.packets;
                    s.bytes += p.bytes;
                    for tr in &p.trackers {
                        s.expected += tr.expected();
                        s.unique += tr.received;
                        s.lost += tr.lost();
                        s.duplicates += tr.duplicates;
                    }
                    if let Some(d) = p.first_keyframe {
                        s.keyframe_ms.push(d.as_secs_f64() * 1e3);
                    }
                    if let Some(d) = p.first_packet {
                        s.first_packet_ms.push(d.as_secs_f64() * 1e3);
                    }
                    if let Some(c) = t.connected_at {
                        s.connect_ms.push((c - p.play_sent).as_secs_f64() * 1e3);
                    }
                }
            }
        }
        s
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; 2048];
        let mut next_scan = Instant::now();
        loop {
            loop {
                match self.rx.try_recv() {
                    Ok(Cmd::Add(mut peer)) => {
                        let token = Token(self.peers.len());
                        if self
                            .poll
                            .registry()
                            .register(&mut peer.sock, token, Interest::READABLE)
                            .is_ok()
                        {
                            peer.flush();
                            self.peers.push(*peer);
                        }
                    }
                    Ok(Cmd::Snapshot(tx)) => {
                        let _ = tx.send(self.snapshot());
                    }
                    Ok(Cmd::Stop) | Err(TryRecvError::Disconnected) => return,
                    Err(TryRecvError::Empty) => break,
                }
            }
            let now = Instant::now();
            let wait = next_scan
                .saturating_duration_since(now)
                .min(Duration::from_millis(5));
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != ErrorKind::Interrupted {
                    eprintln!("pms-fanout: poll: {e}");
                    return;
                }
            }
            let now = Instant::now();
            for ev in events.iter() {
                let Some(peer) = self.peers.get_mut(ev.token().0) else {
                    continue;
                };
                loop {
                    match peer.sock.recv_from(&mut buf) {
                        Ok((n, from)) => peer.on_datagram(now, from, &buf[..n]),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        // ICMP port unreachable and the like: the next read works again.
                        Err(_) => break,
                    }
                }
                peer.flush();
            }
            if now >= next_scan {
                for peer in &mut self.peers {
                    peer.tick(now);
                }
                next_scan = now + self.scan_every;
            }
        }
    }
}

#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: Send>() {}
    is_send::<Peer>();
}
