//! One GB28181 ingest as a peer: a camera's PS-over-RTP stream through its [`PsIngest`] into the
//! router as a producer. Its packets come from the media port ([`super::port`], by this peer's
//! id) or, for tcp-active, from its own connection to the camera. Its deadline is the reorder
//! timer and the media timeout. It may not touch the port's sockets: it registers with the port
//! and leaves it by message. On a worker other than the port's, a tcp-passive ingest is handed
//! its matched connection ([`IngestMessage::Adopt`]) and reads it itself, as tcp-active does.

use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Token};
use pms_core::gb::{Deframer, IngestOutput, PsIngest};
use pms_core::media::{ProducerTrack, TransportId};
use pms_core::rtcp::{parse_compound, Rtcp};

use super::{
    IngestMessage, IngestMode, PortMessage, GB_WORKER, KEYFRAME_EVENT_INTERVAL, MEDIA_TIMEOUT,
};
use crate::events::Event;
use crate::stats;
use crate::worker::{MediaOut, MediaSink, Message, Peer, PeerCtx, Readiness};

/// What moves an ingest's media path on: a camera packet, or its reorder deadline.
#[derive(Clone, Copy)]
enum IngestInput<'a> {
    Rtp(&'a [u8]),
    ReorderTimeout,
}

/// The ingest's sink for the router's output: a PLI or FIR means a consumer waits for a
/// keyframe (its RR/REMB have no receiver).
#[derive(Default)]
struct KeyframeNote {
    wanted: bool,
}

impl KeyframeNote {
    /// Notes a keyframe request in `pkt`; true when it is a new one.
    fn note_rtcp(&mut self, pkt: &[u8]) -> bool {
        if self.wanted {
            return false;
        }
        if parse_compound(pkt).any(|r| matches!(r, Ok(Rtcp::Pli { .. } | Rtcp::Fir { .. }))) {
            self.wanted = true;
        }
        self.wanted
    }
}

impl MediaSink for KeyframeNote {
    fn send_media(&mut self, out: &mut MediaOut<'_>, pkt: &[u8], rtcp: bool) {
        if rtcp && self.note_rtcp(pkt) {
            out.flush_later();
        }
    }
}

/// tcp-active: our connection to the camera; tcp-passive: the camera's connection, handed
/// over by the port.
struct ActiveConn {
    stream: TcpStream,
    token: Token,
    deframer: Deframer,
    /// The connect is in progress.
    connecting: bool,
}

pub(crate) struct GbIngest {
    stream: String,
    mode: IngestMode,
    ssrc: u32,
    peer_ip: Option<IpAddr>,
    /// The media port's peer id (tcp-passive and UDP).
    port: Option<TransportId>,
    media: PsIngest,
    keyframe: KeyframeNote,
    last_media: Instant,
    /// When the media timeout is looked at next (at or before `last_media + MEDIA_TIMEOUT`).
    media_check: Instant,
    last_keyframe_event: Option<Instant>,
    active: Option<ActiveConn>,
    /// PS resyncs, packets and sequence gaps already added to the worker's counters.
    reported: (u64, u64, u64),
}

impl GbIngest {
    pub(crate) fn new(
        stream: &str,
        ssrc: u32,
        mode: IngestMode,
        peer_ip: Option<IpAddr>,
        port: Option<TransportId>,
    ) -> GbIngest {
        let now = Instant::now();
        GbIngest {
            stream: stream.to_string(),
            mode,
            ssrc,
            peer_ip,
            port,
            media: PsIngest::new(mode == IngestMode::Udp, rand::random(), rand::random()),
            keyframe: KeyframeNote::default(),
            last_media: now,
            media_check: now + MEDIA_TIMEOUT,
            last_keyframe_event: None,
            active: None,
            reported: (0, 0, 0),
        }
    }

    /// Runs the media path on `input`: the stream goes live (router producer, then registry)
    /// when its tracks are known, and its RTP goes into the router.
    fn feed(&mut self, ctx: &mut PeerCtx<'_>, input: IngestInput<'_>) {
        let (id, now) = (ctx.id(), ctx.now());
        if let IngestInput::Rtp(_) = input {
            self.last_media = now;
        }
        let media = &mut self.media;
        let mut live: Option<Vec<ProducerTrack>> = None;
        ctx.with_router(&mut self.keyframe, |router, out| {
            let mut emit = |o: IngestOutput<'_>| match o {
                IngestOutput::Live(tracks) => {
                    router.add_producer(id, tracks.to_vec(), 0, now);
                    live = Some(tracks.to_vec());
                }
                IngestOutput::Rtp(p) => router.handle_rtp(now, id, p, out),
            };
            match input {
                IngestInput::Rtp(pkt) => media.push_rtp(pkt, now, &mut emit),
                // Packets held for reordering go on now; they may complete the first frame.
                IngestInput::ReorderTimeout => media.handle_timeout(now, &mut emit),
            }
        });
        if let Some(tracks) = live {
            let worker = ctx.worker_index();
            ctx.registry().go_live(&self.stream, id, worker, tracks);
        }
        ctx.router_events();
        self.report(ctx);
        self.arm(ctx);
    }

    /// Adds what the media path counted since the last report to the worker's counters.
    fn report(&mut self, ctx: &mut PeerCtx<'_>) {
        let s = self.media.stats();
        let now = (self.media.demux_stats().resyncs, s.packets, s.gaps);
        let (was, c) = (self.reported, ctx.counters());
        c.add(stats::STAT_GB_PS_RESYNCS, now.0.saturating_sub(was.0));
        c.add(stats::STAT_GB_PACKETS_IN, now.1.saturating_sub(was.1));
        c.add(stats::STAT_GB_SEQ_GAPS, now.2.saturating_sub(was.2));
        self.reported = now;
    }

    /// The deadline: the reorder timer, or the next look at the media timeout.
    fn arm(&mut self, ctx: &mut PeerCtx<'_>) {
        let at = match self.media.poll_timeout() {
            Some(t) => t.min(self.media_check),
            None => self.media_check,
        };
        ctx.set_deadline(Some(at));
    }

    fn connecting(&self) -> bool {
        self.active.as_ref().is_some_and(|c| c.connecting)
    }

    /// tcp-active: the connect finished; false when it failed (the ingest then closes) or is
    /// still in progress.
    fn check_connected(&mut self, ctx: &mut PeerCtx<'_>) -> bool {
        let Some(c) = self.active.as_mut() else {
            return false;
        };
        let failed = match c.stream.take_error() {
            Ok(Some(_)) | Err(_) => true,
            Ok(None) => match c.stream.peer_addr() {
                Ok(_) => false,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return false,
                Err(_) => true,
            },
        };
        if failed {
            ctx.close_me("connect-failed");
            return false;
        }
        c.connecting = false;
        let _ = c.stream.set_nodelay(true);
        let _ = ctx.reregister(&mut c.stream, c.token, Interest::READABLE);
        true
    }

    /// tcp-active: reads the connection until it would block.
    fn read_active(&mut self, ctx: &mut PeerCtx<'_>) {
        let mut buf = ctx.take_read_buffer();
        while let Some(c) = self.active.as_mut() {
            let n = match c.stream.read(&mut buf) {
                Ok(0) => {
                    ctx.close_me("eof");
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    ctx.close_me("eof");
                    break;
                }
            };
            ctx.counters().add(stats::STAT_GB_BYTES_IN, n as u64);
            let mut deframer = std::mem::take(&mut c.deframer);
            let r = deframer.push(&buf[..n], |pkt| self.feed(ctx, IngestInput::Rtp(pkt)));
            if let Some(c) = self.active.as_mut() {
                c.deframer = deframer;
            }
            if let Err(e) = r {
                let peer = self.active.as_ref().and_then(|c| c.stream.peer_addr().ok());
                log::info!(target: "pms_io::gb", "media connection from {peer:?}: {e}; closing it");
                ctx.close_me("protocol-error");
                break;
            }
        }
        ctx.put_read_buffer(buf);
    }
}

impl MediaSink for GbIngest {
    fn send_media(&mut self, out: &mut MediaOut<'_>, pkt: &[u8], rtcp: bool) {
        self.keyframe.send_media(out, pkt, rtcp);
    }
}

impl Peer for GbIngest {
    fn start(&mut self, ctx: &mut PeerCtx<'_>) -> Result<(), &'static str> {
        let id = ctx.id();
        // No media yet: the media timeout counts from now.
        self.last_media = ctx.now();
        self.media_check = self.last_media + MEDIA_TIMEOUT;
        match self.mode {
            IngestMode::TcpActive(addr) => self.connect(ctx, addr)?,
            _ => {
                if let Some(port) = self.port {
                    let register = PortMessage::Register {
                        id,
                        ssrc: self.ssrc,
                        peer_ip: self.peer_ip,
                        worker: ctx.worker_index(),
                    };
                    ctx.message_on(GB_WORKER, port, Box::new(register));
                }
            }
        }
        ctx.counters().add(stats::STAT_GB_INGESTS, 1);
        self.arm(ctx);
        Ok(())
    }

    fn on_ready(&mut self, ctx: &mut PeerCtx<'_>, _token: Token, ready: Readiness) {
        if self.connecting() && (ready.readable || ready.writable) && !self.check_connected(ctx) {
            return;
        }
        if ready.readable {
            self.read_active(ctx);
        }
    }

    /// A camera packet the media port matched to this ingest.
    fn on_datagram(&mut self, ctx: &mut PeerCtx<'_>, _from: SocketAddr, data: &[u8]) {
        self.feed(ctx, IngestInput::Rtp(data));
    }

    /// The reorder timer, then the media timeout.
    fn on_deadline(&mut self, ctx: &mut PeerCtx<'_>) {
        let now = ctx.now();
        if self.media.poll_timeout().is_some_and(|t| t <= now) {
            self.feed(ctx, IngestInput::ReorderTimeout);
        }
        if now >= self.media_check {
            if now.saturating_duration_since(self.last_media) >= MEDIA_TIMEOUT {
                let connecting = matches!(self.mode, IngestMode::TcpActive(_)) && self.connecting();
                ctx.close_me(if connecting {
                    "connect-failed"
                } else {
                    "media-timeout"
                });
                return;
            }
            self.media_check = self.last_media + MEDIA_TIMEOUT;
        }
        self.arm(ctx);
    }

    /// A consumer asked for a keyframe in this poll iteration: raise `keyframe_wanted` unless
    /// the router's cache has one or one was raised lately.
    fn on_flush(&mut self, ctx: &mut PeerCtx<'_>) {
        let (id, now) = (ctx.id(), ctx.now());
        if !std::mem::take(&mut self.keyframe.wanted) || ctx.router().keyframe_cached(id) {
            return;
        }
        if self
            .last_keyframe_event
            .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_EVENT_INTERVAL)
        {
            return;
        }
        self.last_keyframe_event = Some(now);
        ctx.event(Event::KeyframeWanted {
            stream: self.stream.clone(),
        });
    }

    /// From the engine (a playback's speed) or from the media port on another worker (a
    /// matched connection, or its failure).
    fn on_message(&mut self, ctx: &mut PeerCtx<'_>, msg: Message) {
        let Ok(msg) = msg.downcast::<IngestMessage>() else {
            return;
        };
        match *msg {
            IngestMessage::Scale(scale) => self.media.set_scale(scale),
            IngestMessage::Failed { reason } => ctx.close_me(reason),
            IngestMessage::Adopt {
                stream,
                deframer,
                peer,
                pending,
            } => self.adopt(ctx, stream, deframer, peer, pending),
        }
    }

    fn close(&mut self, ctx: &mut PeerCtx<'_>, _reason: &'static str) {
        let id = ctx.id();
        if let Some(port) = self.port {
            ctx.message_on(GB_WORKER, port, Box::new(PortMessage::Forget { id }));
        }
        if let Some(mut c) = self.active.take() {
            ctx.deregister(&mut c.stream, c.token);
            ctx.counters().sub(stats::STAT_GB_TCP_CONNECTIONS, 1);
        }
        ctx.counters().sub(stats::STAT_GB_INGESTS, 1);
        self.report(ctx);
    }
}

impl GbIngest {
    /// tcp-passive on another worker than the port's: takes the camera's connection (a newer
    /// one replaces the old: a camera that reconnects), plays the packets the port read, then
    /// reads the socket.
    fn adopt(
        &mut self,
        ctx: &mut PeerCtx<'_>,
        mut stream: TcpStream,
        deframer: Deframer,
        peer: SocketAddr,
        pending: Vec<Vec<u8>>,
    ) {
        if let Some(mut old) = self.active.take() {
            ctx.deregister(&mut old.stream, old.token);
            ctx.counters().sub(stats::STAT_GB_TCP_CONNECTIONS, 1);
        }
        let Ok(token) = ctx.register(&mut stream, Interest::READABLE) else {
            log::warn!(target: "pms_io::gb", "cannot poll the media connection from {peer}");
            ctx.close_me("internal-error");
            return;
        };
        ctx.counters().add(stats::STAT_GB_TCP_CONNECTIONS, 1);
        self.active = Some(ActiveConn {
            stream,
            token,
            deframer,
            connecting: false,
        });
        for pkt in &pending {
            if ctx.closing() {
                return;
            }
            self.feed(ctx, IngestInput::Rtp(pkt));
        }
        // Bytes that arrived between the port's last read and the registration.
        self.read_active(ctx);
    }

    /// tcp-active: starts connecting to the camera.
    fn connect(&mut self, ctx: &mut PeerCtx<'_>, addr: SocketAddr) -> Result<(), &'static str> {
        let Ok(mut stream) = TcpStream::connect(addr) else {
            return Err("connect-failed");
        };
        let interest = Interest::READABLE | Interest::WRITABLE;
        let Ok(token) = ctx.register(&mut stream, interest) else {
            return Err("connect-failed");
        };
        ctx.counters().add(stats::STAT_GB_TCP_CONNECTIONS, 1);
        self.active = Some(ActiveConn {
            stream,
            token,
            deframer: Deframer::new(),
            connecting: true,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_requests_are_noted_from_pli_and_fir_only() {
        let mut note = KeyframeNote::default();
        let mut rr = Vec::new();
        pms_core::rtcp::write_rr(&mut rr, 1, &[]);
        note.note_rtcp(&rr);
        assert!(!note.wanted);
        note.note_rtcp(&[0xff; 3]);
        assert!(!note.wanted);
        let mut pli = Vec::new();
        pms_core::rtcp::write_pli(&mut pli, 1, 2);
        note.note_rtcp(&pli);
        assert!(note.wanted);
    }
}
