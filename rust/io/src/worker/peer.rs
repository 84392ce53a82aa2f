//! The contract between a worker and its peers: the [`Peer`] trait every kind of media endpoint
//! implements, the handle [`PeerCtx`] it acts through, and the router's output [`Out`] that
//! reaches a peer by id through [`MediaSink`].
//!
//! The worker knows peers only through this trait; a kind (WebRTC, RTSP server, GB28181...)
//! lives in `crate::peers` and never reaches into the worker's fields: it registers sockets and
//! deadlines, sends, feeds the router and raises events through its handle.
//!
//! While one of its methods runs, a peer is taken out of the worker's table (so the handle can
//! lend the rest of the table to the router). Router output addressed to that peer meanwhile
//! goes to the `me` sink it passes to [`PeerCtx::route`] / [`PeerCtx::with_router`]; closing a
//! peer and messages between peers are queued and run after the method returns.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use mio::{Poll, Token};
use pms_core::media::TransportId as PeerId;
use pms_core::router::{Router, Sink};

use super::deadlines::Deadlines;
use super::mux::Mux;
use super::shared::Shared;
use crate::batch::SendBatch;
use crate::stats::Counters;

/// A message for one peer: a command of the engine or of another peer. The kind downcasts it.
pub(crate) type Message = Box<dyn Any + Send>;

/// Where the router's output for one peer goes: plain RTP/RTCP, valid during the call. A
/// consumer forwards it (encrypt and batch, queue a frame); a producer receives feedback (RR,
/// REMB, PLI, NACK). Must not block and should not allocate per packet.
pub(crate) trait MediaSink {
    fn send_media(&mut self, out: &mut MediaOut<'_>, pkt: &[u8], rtcp: bool);
}

/// One media endpoint of a worker. Every method has the peer's handle; each runs under
/// `catch_unwind`: a panic closes this peer (`internal-error`), never the worker.
pub(crate) trait Peer: MediaSink + Send {
    /// Runs once on the worker when the peer is added: join the router, register sockets,
    /// claim keys, set a deadline. `Err(reason)`: the peer is dropped (without
    /// [`close`](Peer::close)) and `transport_closed(id, reason)` raised.
    fn start(&mut self, ctx: &mut PeerCtx<'_>) -> Result<(), &'static str>;

    /// A socket this peer registered through [`PeerCtx::register`] is ready.
    fn on_ready(&mut self, _ctx: &mut PeerCtx<'_>, _token: Token, _ready: Readiness) {}

    /// A datagram routed to this peer: read on the worker's shared UDP socket (by a key the
    /// peer claimed) or forwarded by another peer ([`PeerCtx::forward`]).
    fn on_datagram(&mut self, _ctx: &mut PeerCtx<'_>, _from: SocketAddr, _data: &[u8]) {}

    /// The deadline set through [`PeerCtx::set_deadline`] has come (it is now cleared).
    fn on_deadline(&mut self, _ctx: &mut PeerCtx<'_>) {}

    /// A message sent to this peer by id ([`Message`]).
    fn on_message(&mut self, _ctx: &mut PeerCtx<'_>, _msg: Message) {}

    /// End of the poll iteration, asked for with [`MediaOut::flush_later`] while the router
    /// wrote to the peer (once per request: a peer dedupes its own requests).
    fn on_flush(&mut self, _ctx: &mut PeerCtx<'_>) {}

    /// The peer leaves the worker (`reason` as in `transport_closed`, or `shutdown`): say
    /// goodbye, deregister sockets. The worker then forgets its tokens, keys, deadline and
    /// router entry, and drops it.
    fn close(&mut self, _ctx: &mut PeerCtx<'_>, _reason: &'static str) {}
}

/// What a poll event says about a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Readiness {
    /// Readable, read-closed or failed: reading tells which.
    pub readable: bool,
    pub writable: bool,
}

/// What the worker knows of a peer besides the peer itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerInfo {
    /// The stream of a transport (publisher or player); `None` for a service of the worker
    /// (the GB28181 media port): not a transport, no `transport_closed` event.
    pub stream: Option<String>,
    pub publisher: bool,
}

impl PeerInfo {
    pub(crate) fn transport(stream: &str, publisher: bool) -> PeerInfo {
        PeerInfo {
            stream: Some(stream.to_string()),
            publisher,
        }
    }

    pub(crate) fn service() -> PeerInfo {
        PeerInfo {
            stream: None,
            publisher: false,
        }
    }
}

/// One entry of the worker's table.
pub(crate) struct Slot {
    /// `None` while one of its methods runs (or after it panicked).
    pub(crate) peer: Option<Box<dyn Peer>>,
    pub(crate) info: PeerInfo,
    /// The deadline as the heap has it.
    pub(crate) deadline: Option<Instant>,
    /// Poll tokens the peer registered.
    pub(crate) tokens: Vec<Token>,
}

pub(crate) type Table = HashMap<PeerId, Slot>;

/// The worker's parts a peer's handle lends out (everything but the table of peers).
pub(crate) struct Parts {
    pub(crate) index: usize,
    pub(crate) poll: Poll,
    /// The worker's shared UDP socket (WebRTC).
    pub(crate) socket: mio::net::UdpSocket,
    pub(crate) shared: Arc<Shared>,
    pub(crate) router: Router,
    pub(crate) counters: Counters,
    /// Outgoing datagrams of the current input on `socket` (see [`Out`]).
    pub(crate) batch: SendBatch,
    pub(crate) mux: Mux,
    pub(crate) deadlines: Deadlines,
    /// Poll token → peer.
    pub(crate) tokens: HashMap<Token, PeerId>,
    pub(crate) next_token: usize,
    /// Read buffer lent to peers for their sockets.
    pub(crate) rbuf: Vec<u8>,
    /// Peers that asked for `on_flush` at the end of this poll iteration.
    pub(crate) flush: Vec<PeerId>,
    /// Peers to close once the running method returns.
    pub(crate) closing: Vec<(PeerId, &'static str)>,
    /// Messages between peers, run once the running method returns.
    pub(crate) messages: VecDeque<(PeerId, Message)>,
}

/// A peer's handle: the worker's parts, lent for one call of a [`Peer`] method. Its methods
/// are in `handle.rs`.
pub(crate) struct PeerCtx<'a> {
    pub(super) id: PeerId,
    pub(super) now: Instant,
    /// The peer's deadline; the worker updates its heap when the call changed it.
    pub(super) deadline: Option<Instant>,
    pub(super) peers: &'a mut Table,
    pub(super) parts: &'a mut Parts,
}

/// What a [`MediaSink`] may use while the router writes to it.
pub(crate) struct MediaOut<'a> {
    pub(super) to: PeerId,
    pub(super) socket: &'a mio::net::UdpSocket,
    pub(super) batch: &'a mut SendBatch,
    pub(super) counters: &'a mut Counters,
    pub(super) flush: &'a mut Vec<PeerId>,
    /// `webrtc.udpGso`, as read when the output was made.
    pub(super) shared_gso: bool,
}

impl MediaOut<'_> {
    /// The peer the packet is for.
    pub(crate) fn id(&self) -> PeerId {
        self.to
    }

    pub(crate) fn counters(&mut self) -> &mut Counters {
        self.counters
    }

    /// Queues a datagram on the worker's shared socket; the batch leaves at the end of the
    /// poll iteration (or when it is full).
    pub(crate) fn send_batched(&mut self, to: SocketAddr, data: BytesMut) {
        self.batch.push(to, data);
        if self.batch.is_full() {
            self.flush_batch();
        }
    }

    /// Asks for the peer's `on_flush` at the end of this poll iteration.
    pub(crate) fn flush_later(&mut self) {
        self.flush.push(self.to);
    }

    fn flush_batch(&mut self) {
        let gso = self.shared_gso;
        let done = self.batch.flush(self.socket, gso);
        self.counters
            .add(crate::stats::STAT_PACKETS_OUT, done.packets);
        self.counters.add(crate::stats::STAT_BYTES_OUT, done.bytes);
        self.counters
            .add(crate::stats::STAT_SEND_ERRORS, done.errors);
        self.counters
            .add(crate::stats::STAT_GSO_SENDS, done.gso_messages);
    }
}

/// The router's output: each packet to its peer's [`MediaSink`] by id (one table lookup and
/// one virtual call per packet per consumer). The batched datagrams leave at the end of the
/// worker's poll iteration.
pub(crate) struct Out<'a> {
    pub(super) peers: &'a mut Table,
    /// The peer whose method is running (out of the table) and its sink.
    pub(super) me: Option<(PeerId, &'a mut dyn MediaSink)>,
    pub(super) media: MediaOut<'a>,
}

impl Out<'_> {
    fn send(&mut self, to: PeerId, pkt: &[u8], rtcp: bool) {
        self.media.to = to;
        if let Some((id, me)) = self.me.as_mut() {
            if *id == to {
                me.send_media(&mut self.media, pkt, rtcp);
                return;
            }
        }
        if let Some(peer) = self.peers.get_mut(&to).and_then(|s| s.peer.as_deref_mut()) {
            peer.send_media(&mut self.media, pkt, rtcp);
        }
    }
}

impl Sink for Out<'_> {
    fn send_rtp(&mut self, to: PeerId, pkt: &[u8]) {
        self.send(to, pkt, false);
    }
    fn send_rtcp(&mut self, to: PeerId, pkt: &[u8]) {
        self.send(to, pkt, true);
    }
}
