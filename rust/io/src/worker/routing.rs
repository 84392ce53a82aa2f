//! The worker's router: its output [`Out`] (encrypt for a WebRTC transport and batch the
//! datagram, queue a frame for an RTSP connection, note a camera's keyframe request), plain
//! RTP/RTCP fed into it, and its events turned into control-plane events.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use pms_core::media::{ProducerTrack, TransportId};
use pms_core::router::{Router, RouterEvent, Sink};

use super::{Counters, Entry, Peer, Worker};
use crate::batch::SendBatch;
use crate::events::Event;

/// The router's output: encrypt for the target transport and send.
pub(crate) struct Out<'a> {
    pub transports: &'a mut HashMap<TransportId, Entry>,
    pub socket: &'a mio::net::UdpSocket,
    pub counters: &'a mut Counters,
    /// WebRTC datagrams wait here and leave in one `sendmmsg` when `Out` is dropped (or the
    /// batch is full): one system call per fan-out instead of one per player.
    pub batch: &'a mut SendBatch,
    /// RTSP TCP frames are queued per connection and written by [`Worker::rtsp_flush`].
    pub rtsp: &'a mut crate::rtsp::RtspOut,
}

impl Out<'_> {
    fn flush(&mut self) {
        let done = self.batch.flush(self.socket);
        self.counters.packets_out += done.packets;
        self.counters.bytes_out += done.bytes;
        self.counters.send_errors += done.errors;
    }
}

impl Drop for Out<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Out<'_> {
    fn send(&mut self, to: TransportId, pkt: &[u8], rtcp: bool) {
        let Some(entry) = self.transports.get_mut(&to) else {
            return;
        };
        let transport = match &mut entry.peer {
            Peer::WebRtc(t) => t,
            Peer::Rtsp(p) => {
                p.send_packet(to, pkt, rtcp, self.counters, self.rtsp);
                return;
            }
            Peer::Gb(g) => {
                // The router's keyframe request (PLI/FIR) for a camera: noted, raised as an
                // event by the GB housekeeping (rate-limited). Its RR/REMB have no receiver.
                if rtcp {
                    g.note_rtcp(pkt);
                }
                return;
            }
        };
        let Some(addr) = transport.remote_addr() else {
            return;
        };
        let protected = if rtcp {
            transport.protect_rtcp(pkt)
        } else {
            transport.protect_rtp(pkt)
        };
        let Some(buf) = protected else { return };
        self.batch.push(addr, buf);
        if self.batch.is_full() {
            self.flush();
        }
    }
}

impl Sink for Out<'_> {
    fn send_rtp(&mut self, to: TransportId, pkt: &[u8]) {
        self.send(to, pkt, false);
    }
    fn send_rtcp(&mut self, to: TransportId, pkt: &[u8]) {
        self.send(to, pkt, true);
    }
}

impl Worker {
    /// Hands a plain RTP or RTCP packet of transport `id` to the router. False when the router
    /// panicked (the transport is then closed).
    pub(crate) fn feed_router(
        &mut self,
        now: Instant,
        id: TransportId,
        pkt: &[u8],
        rtcp: bool,
    ) -> bool {
        // `with_router` drops the output before it returns: that sends the batch.
        let result = self.with_router(|router, out| {
            catch_unwind(AssertUnwindSafe(|| {
                if rtcp {
                    router.handle_rtcp(now, id, pkt, out)
                } else {
                    router.handle_rtp(now, id, pkt, out)
                }
            }))
        });
        if result.is_err() {
            let what = if rtcp { "RTCP" } else { "RTP" };
            log::error!(target: "pms_io::worker", "router panicked on {what} of transport {id}; closing it");
            self.remove(id, "internal-error");
            return false;
        }
        if !rtcp {
            self.router_events();
        }
        true
    }

    /// Runs `f` with the router and its output (the sink) borrowed together. The output is
    /// dropped when `f` returns, which sends the batch.
    pub(crate) fn with_router<R>(&mut self, f: impl FnOnce(&mut Router, &mut Out<'_>) -> R) -> R {
        let mut out = Out {
            transports: &mut self.transports,
            socket: &self.socket,
            counters: &mut self.counters,
            batch: &mut self.batch,
            rtsp: &mut self.rtsp_out,
        };
        f(&mut self.router, &mut out)
    }

    /// Turns the router's events into control-plane events (a producer started, its parameter
    /// sets).
    pub(crate) fn router_events(&mut self) {
        while let Some(ev) = self.router.poll_event() {
            match ev {
                RouterEvent::ProducerStarted { producer } => {
                    let Some((stream, tracks)) = self.producer_stream(producer) else {
                        continue;
                    };
                    let codecs = tracks
                        .map(|t| crate::registry::codec_names(&t))
                        .unwrap_or_default();
                    self.shared
                        .events
                        .push(Event::ProducerStarted { stream, codecs });
                }
                RouterEvent::ParameterSets {
                    producer,
                    track,
                    nals,
                } => {
                    let Some((stream, tracks)) = self.producer_stream(producer) else {
                        continue;
                    };
                    let codec = tracks
                        .and_then(|t| {
                            t.get(track)
                                .map(|t| t.codec.name.encoding_name().to_string())
                        })
                        .unwrap_or_default();
                    self.shared.events.push(Event::ParameterSets {
                        stream,
                        codec,
                        nals,
                    });
                }
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
    }

    /// The stream name of transport `producer` and, once the stream is live in the registry,
    /// its tracks. `None` for a transport this worker does not have.
    fn producer_stream(
        &self,
        producer: TransportId,
    ) -> Option<(String, Option<Arc<Vec<ProducerTrack>>>)> {
        let entry = self.transports.get(&producer)?;
        let tracks = self
            .shared
            .registry()
            .streams
            .get(&entry.stream)
            .map(|s| Arc::clone(&s.tracks));
        Some((entry.stream.clone(), tracks))
    }
}
