//! A WebRTC transport as a peer of its worker: a publisher (a router producer) or a player (a
//! router consumer) over the worker's shared UDP socket.
//!
//! Owns one sans-IO [`WebRtcTransport`] (ICE-lite, DTLS, SRTP; `pms_core`): datagrams the worker
//! routes to it by the ICE ufrag and the address ICE selected (both claimed here) go in, what it
//! queues goes out on the shared socket, its timers are the peer's deadline. The router's
//! output is encrypted here and batched into the worker's `sendmmsg`.

use std::net::SocketAddr;

use pms_core::media::{ConsumerTrack, ProducerTrack, TransportId};
use pms_core::transport::{Received, TransportEvent, WebRtcTransport};

use crate::events::Event;
use crate::worker::{MediaOut, MediaSink, Peer, PeerCtx};

/// What the transport joins in the router at start.
enum Role {
    Publisher {
        tracks: Vec<ProducerTrack>,
        max_bitrate: u32,
    },
    Player {
        producer: TransportId,
        tracks: Vec<ConsumerTrack>,
    },
    /// Started.
    Joined { publisher: bool },
}

pub(crate) struct WebRtcPeer {
    transport: Box<WebRtcTransport>,
    role: Role,
    /// The remote address last claimed on the shared socket.
    claimed: Option<SocketAddr>,
}

impl WebRtcPeer {
    pub(crate) fn publisher(
        transport: Box<WebRtcTransport>,
        tracks: Vec<ProducerTrack>,
        max_bitrate: u32,
    ) -> WebRtcPeer {
        WebRtcPeer {
            transport,
            role: Role::Publisher {
                tracks,
                max_bitrate,
            },
            claimed: None,
        }
    }

    pub(crate) fn player(
        transport: Box<WebRtcTransport>,
        producer: TransportId,
        tracks: Vec<ConsumerTrack>,
    ) -> WebRtcPeer {
        WebRtcPeer {
            transport,
            role: Role::Player { producer, tracks },
            claimed: None,
        }
    }

    fn is_publisher(&self) -> bool {
        matches!(
            self.role,
            Role::Publisher { .. } | Role::Joined { publisher: true }
        )
    }

    /// Sends what the transport queued, follows its address and acts on its events.
    fn drive(&mut self, ctx: &mut PeerCtx<'_>) {
        let id = ctx.id();
        loop {
            let mut progressed = false;
            while let Some((to, buf)) = self.transport.poll_transmit() {
                progressed = true;
                ctx.send_to(&buf, to);
            }
            if let Some(addr) = self.transport.remote_addr() {
                if self.claimed != Some(addr) {
                    self.claimed = Some(addr);
                    ctx.claim_addr(addr);
                }
            }
            match self.transport.poll_event() {
                Some(TransportEvent::Connected) => {
                    progressed = true;
                    if !self.is_publisher() {
                        let now = ctx.now();
                        ctx.with_router(self, |r, out| r.consumer_connected(id, now, out));
                    }
                    ctx.event(Event::TransportConnected { id });
                }
                Some(TransportEvent::Closed(reason)) => {
                    ctx.close_me(reason);
                    ctx.set_deadline(None);
                    return;
                }
                None => {}
            }
            if !progressed {
                break;
            }
        }
        ctx.set_deadline(self.transport.poll_timeout());
    }
}

impl MediaSink for WebRtcPeer {
    /// Encrypts the router's packet for this transport and queues it in the worker's batch.
    fn send_media(&mut self, out: &mut MediaOut<'_>, pkt: &[u8], rtcp: bool) {
        let Some(addr) = self.transport.remote_addr() else {
            return;
        };
        let protected = if rtcp {
            self.transport.protect_rtcp(pkt)
        } else {
            self.transport.protect_rtp(pkt)
        };
        if let Some(buf) = protected {
            out.send_batched(addr, buf);
        }
    }
}

impl Peer for WebRtcPeer {
    fn start(&mut self, ctx: &mut PeerCtx<'_>) -> Result<(), &'static str> {
        let (id, now) = (ctx.id(), ctx.now());
        match std::mem::replace(&mut self.role, Role::Joined { publisher: false }) {
            Role::Publisher {
                tracks,
                max_bitrate,
            } => {
                ctx.router().add_producer(id, tracks, max_bitrate, now);
                self.role = Role::Joined { publisher: true };
            }
            Role::Player { producer, tracks } => {
                if let Err(e) = ctx.router().add_consumer(id, producer, tracks, now) {
                    // The producer went away between the answer and now.
                    log::info!(target: "pms_io::worker", "player {id}: {e}");
                    return Err("producer-closed");
                }
            }
            joined @ Role::Joined { .. } => self.role = joined,
        }
        ctx.claim_ufrag(self.transport.local_ufrag());
        ctx.set_deadline(self.transport.poll_timeout());
        Ok(())
    }

    fn on_datagram(&mut self, ctx: &mut PeerCtx<'_>, from: SocketAddr, data: &[u8]) {
        match self.transport.handle_datagram(ctx.now(), from, data) {
            Some(Received::Rtp(pkt)) => ctx.route(self, &pkt, false),
            Some(Received::Rtcp(pkt)) => ctx.route(self, &pkt, true),
            None => {}
        }
        self.drive(ctx);
    }

    fn on_deadline(&mut self, ctx: &mut PeerCtx<'_>) {
        self.transport.handle_timeout(ctx.now());
        self.drive(ctx);
    }

    /// Sends the DTLS close (when there is an association) before the worker drops it.
    fn close(&mut self, ctx: &mut PeerCtx<'_>, _reason: &'static str) {
        self.transport.close();
        while let Some((to, buf)) = self.transport.poll_transmit() {
            ctx.send_to(&buf, to);
        }
    }
}
