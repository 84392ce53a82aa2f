//! The GB28181 media port as a peer (a service of its worker, not a transport): the TCP
//! listener and the UDP socket every camera sends to, the accepted connections (RFC 4571
//! framing), and the [`Matcher`] that names each packet's ingest. It forwards every packet to
//! its ingest by id and never feeds the router itself; it closes an ingest whose connection
//! failed. Ingests register and leave with a [`PortMessage`]. A connection matched to an
//! ingest on another worker is handed to it ([`IngestMessage::Adopt`]) and forgotten here.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Interest, Token};
use pms_core::gb::{Deframer, Matcher};
use pms_core::media::TransportId;

use super::{rtp_ssrc, IngestMessage, PortMessage, MEDIA_TIMEOUT};
use crate::stats;
use crate::worker::{MediaOut, MediaSink, Message, Peer, PeerCtx, Readiness};

/// Bytes read per UDP datagram at most (RTP over UDP stays under the MTU; 64 KiB is the limit).
const UDP_BUFFER: usize = 65536;

struct Conn {
    stream: TcpStream,
    deframer: Deframer,
    peer: SocketAddr,
    ingest: Option<TransportId>,
    since: Instant,
    /// Matched to an ingest on another worker: that worker, and the packets to hand over
    /// with the socket once the current read is done.
    handover: Option<(usize, Vec<Vec<u8>>)>,
}

pub(crate) struct GbPort {
    listener: TcpListener,
    udp: UdpSocket,
    listener_token: Option<Token>,
    udp_token: Option<Token>,
    conns: HashMap<Token, Conn>,
    /// Ingest → its connection.
    bound: HashMap<TransportId, Token>,
    matcher: Matcher,
    /// Each registered ingest's worker.
    workers: HashMap<TransportId, usize>,
    udp_buf: Vec<u8>,
}

impl GbPort {
    pub(crate) fn new(listener: std::net::TcpListener, udp: std::net::UdpSocket) -> GbPort {
        GbPort {
            listener: TcpListener::from_std(listener),
            udp: UdpSocket::from_std(udp),
            listener_token: None,
            udp_token: None,
            conns: HashMap::new(),
            bound: HashMap::new(),
            matcher: Matcher::new(),
            workers: HashMap::new(),
            udp_buf: vec![0; UDP_BUFFER],
        }
    }

    fn close_conn(&mut self, ctx: &mut PeerCtx<'_>, token: Token) {
        if let Some(mut c) = self.conns.remove(&token) {
            ctx.deregister(&mut c.stream, token);
            ctx.counters().sub(stats::STAT_GB_TCP_CONNECTIONS, 1);
            if let Some(id) = c.ingest {
                if self.bound.get(&id) == Some(&token) {
                    self.bound.remove(&id);
                }
            }
        }
    }

    /// Closes a connection; its ingest (if any) ends with `reason`.
    fn conn_failed(&mut self, ctx: &mut PeerCtx<'_>, token: Token, reason: &'static str) {
        if let Some(id) = self.conns.get(&token).and_then(|c| c.ingest) {
            match self.workers.get(&id) {
                Some(&w) if w != ctx.worker_index() => {
                    ctx.message_on(w, id, Box::new(IngestMessage::Failed { reason }));
                }
                _ => ctx.close(id, reason),
            }
        }
        self.close_conn(ctx, token);
    }

    fn accept(&mut self, ctx: &mut PeerCtx<'_>) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let Ok(token) = ctx.register(&mut stream, Interest::READABLE) else {
                        continue;
                    };
                    ctx.counters().add(stats::STAT_GB_TCP_CONNECTIONS, 1);
                    self.conns.insert(
                        token,
                        Conn {
                            stream,
                            deframer: Deframer::new(),
                            peer,
                            ingest: None,
                            since: ctx.now(),
                            handover: None,
                        },
                    );
                    if ctx.deadline().is_none() {
                        ctx.set_deadline(Some(ctx.now() + MEDIA_TIMEOUT));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock, or out of fds (EMFILE): try again at the next readiness.
                Err(_) => return,
            }
        }
    }

    fn read_udp(&mut self, ctx: &mut PeerCtx<'_>) {
        let mut buf = std::mem::take(&mut self.udp_buf);
        loop {
            let (n, from) = match self.udp.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => continue,
            };
            ctx.counters().add(stats::STAT_GB_BYTES_IN, n as u64);
            let pkt = &buf[..n];
            let Some(ssrc) = rtp_ssrc(pkt) else { continue };
            match self.matcher.find(ssrc, from.ip()) {
                Some(m) => {
                    ctx.forward(m.id(), from, pkt);
                }
                None => ctx.counters().add(stats::STAT_GB_UNKNOWN_SSRC, 1),
            }
        }
        self.udp_buf = buf;
    }

    fn read_tcp(&mut self, ctx: &mut PeerCtx<'_>, token: Token) {
        let mut buf = ctx.take_read_buffer();
        while let Some(c) = self.conns.get_mut(&token) {
            let n = match c.stream.read(&mut buf) {
                Ok(0) => {
                    self.conn_failed(ctx, token, "eof");
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.conn_failed(ctx, token, "eof");
                    break;
                }
            };
            ctx.counters().add(stats::STAT_GB_BYTES_IN, n as u64);
            let mut deframer = std::mem::take(&mut c.deframer);
            let r = deframer.push(&buf[..n], |pkt| self.tcp_packet(ctx, token, pkt));
            match self.conns.get_mut(&token) {
                Some(c) => c.deframer = deframer,
                None => break, // closed while handling a packet
            }
            if r.is_ok() && self.conns.get(&token).is_some_and(|c| c.handover.is_some()) {
                self.hand_over(ctx, token);
                break;
            }
            if let Err(e) = r {
                let peer = self.conns.get(&token).map(|c| c.peer);
                log::info!(target: "pms_io::gb", "media connection from {peer:?}: {e}; closing it");
                self.conn_failed(ctx, token, "protocol-error");
                break;
            }
        }
        ctx.put_read_buffer(buf);
    }

    /// One packet of connection `token`: bind the connection on its first packet, then forward.
    fn tcp_packet(&mut self, ctx: &mut PeerCtx<'_>, token: Token, pkt: &[u8]) {
        let Some(c) = self.conns.get_mut(&token) else {
            return;
        };
        let id = match c.ingest {
            Some(_) if c.handover.is_some() => {
                if let Some((_, pending)) = c.handover.as_mut() {
                    pending.push(pkt.to_vec());
                }
                return;
            }
            Some(id) => id,
            None => {
                let Some(ssrc) = rtp_ssrc(pkt) else { return };
                let Some(m) = self.matcher.find(ssrc, c.peer.ip()) else {
                    ctx.counters().add(stats::STAT_GB_UNKNOWN_SSRC, 1);
                    return;
                };
                let id = m.id();
                c.ingest = Some(id);
                let here = ctx.worker_index();
                match self.workers.get(&id) {
                    Some(&w) if w != here => {
                        c.handover = Some((w, vec![pkt.to_vec()]));
                        return;
                    }
                    _ => {}
                }
                if let Some(old) = self.bound.insert(id, token).filter(|o| *o != token) {
                    // A camera that reconnects: the new connection replaces the old one.
                    if let Some(mut o) = self.conns.remove(&old) {
                        ctx.deregister(&mut o.stream, old);
                        ctx.counters().sub(stats::STAT_GB_TCP_CONNECTIONS, 1);
                    }
                }
                id
            }
        };
        let from = self.conns.get(&token).map(|c| c.peer);
        if let Some(from) = from {
            ctx.forward(id, from, pkt);
        }
    }
}

impl GbPort {
    /// Gives connection `token` (matched to an ingest on another worker) to that ingest.
    fn hand_over(&mut self, ctx: &mut PeerCtx<'_>, token: Token) {
        let Some(mut c) = self.conns.remove(&token) else {
            return;
        };
        ctx.deregister(&mut c.stream, token);
        ctx.counters().sub(stats::STAT_GB_TCP_CONNECTIONS, 1);
        let (Some(id), Some((worker, pending))) = (c.ingest, c.handover) else {
            return;
        };
        let adopt = IngestMessage::Adopt {
            stream: c.stream,
            deframer: c.deframer,
            peer: c.peer,
            pending,
        };
        ctx.message_on(worker, id, Box::new(adopt));
    }
}

impl MediaSink for GbPort {
    /// The port is no router peer: nothing is addressed to it.
    fn send_media(&mut self, _: &mut MediaOut<'_>, _: &[u8], _: bool) {}
}

impl Peer for GbPort {
    fn start(&mut self, ctx: &mut PeerCtx<'_>) -> Result<(), &'static str> {
        let l = ctx.register(&mut self.listener, Interest::READABLE);
        let u = ctx.register(&mut self.udp, Interest::READABLE);
        match (l, u) {
            (Ok(l), Ok(u)) => {
                self.listener_token = Some(l);
                self.udp_token = Some(u);
                Ok(())
            }
            (Err(e), _) | (_, Err(e)) => {
                log::error!(target: "pms_io::gb", "cannot poll the media port: {e}");
                Err("internal-error")
            }
        }
    }

    fn on_ready(&mut self, ctx: &mut PeerCtx<'_>, token: Token, ready: Readiness) {
        if Some(token) == self.listener_token {
            self.accept(ctx);
        } else if Some(token) == self.udp_token {
            self.read_udp(ctx);
        } else if ready.readable {
            self.read_tcp(ctx, token);
        }
    }

    fn on_message(&mut self, ctx: &mut PeerCtx<'_>, msg: Message) {
        let Ok(msg) = msg.downcast::<PortMessage>() else {
            return;
        };
        match *msg {
            PortMessage::Register {
                id,
                ssrc,
                peer_ip,
                worker,
            } => {
                self.matcher.add(id, ssrc, peer_ip);
                self.workers.insert(id, worker);
            }
            PortMessage::Forget { id } => {
                self.matcher.remove(id);
                self.workers.remove(&id);
                if let Some(token) = self.bound.remove(&id) {
                    self.close_conn(ctx, token);
                }
            }
        }
    }

    /// Closes connections still bound to no ingest after [`MEDIA_TIMEOUT`].
    fn on_deadline(&mut self, ctx: &mut PeerCtx<'_>) {
        let now = ctx.now();
        let stale: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.ingest.is_none() && now.saturating_duration_since(c.since) >= MEDIA_TIMEOUT
            })
            .map(|(t, _)| *t)
            .collect();
        for t in stale {
            self.close_conn(ctx, t);
        }
        let next = self
            .conns
            .values()
            .filter(|c| c.ingest.is_none())
            .map(|c| c.since + MEDIA_TIMEOUT)
            .min();
        ctx.set_deadline(next);
    }

    fn close(&mut self, ctx: &mut PeerCtx<'_>, _reason: &'static str) {
        let tokens: Vec<Token> = self.conns.keys().copied().collect();
        for t in tokens {
            self.close_conn(ctx, t);
        }
        if let Some(t) = self.listener_token.take() {
            ctx.deregister(&mut self.listener, t);
        }
        if let Some(t) = self.udp_token.take() {
            ctx.deregister(&mut self.udp, t);
        }
    }
}
