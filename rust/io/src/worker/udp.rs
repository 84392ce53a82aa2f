//! The UDP socket's WebRTC path: read every datagram, find its transport (STUN by the local
//! ICE ufrag, everything else by the source address ICE selected), or hand it to the worker
//! that owns the transport; feed the transport, and send what it queues and act on its events.

use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use pms_core::ice::{classify, stun_local_ufrag, PacketClass};
use pms_core::media::TransportId;
use pms_core::transport::{Received, TransportEvent};

use super::{Command, Entry, Worker};
use crate::events::Event;

impl Worker {
    pub(super) fn read_socket(&mut self, buf: &mut [u8]) {
        loop {
            match self.socket.recv_from(buf) {
                Ok((n, from)) => {
                    let now = Instant::now();
                    self.counters.packets_in += 1;
                    self.counters.bytes_in += n as u64;
                    self.handle_datagram(now, from, &buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors surface as ECONNREFUSED on some systems: nothing to do.
                Err(_) => continue,
            }
        }
    }

    pub(super) fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let id = match classify(data) {
            PacketClass::Stun => match stun_local_ufrag(data) {
                Some(ufrag) => match self.by_ufrag.get(ufrag) {
                    Some(id) => Some(*id),
                    None => {
                        let owner = self.shared.registry().ufrags.get(ufrag).copied();
                        if let Some(w) = owner.filter(|w| *w != self.index) {
                            self.foreign.insert(from, w);
                            self.hand_over(w, from, data);
                        } else {
                            self.counters.unknown_datagrams += 1;
                        }
                        return;
                    }
                },
                None => self.by_addr.get(&from).copied(),
            },
            PacketClass::Other => None,
            _ => self.by_addr.get(&from).copied(),
        };
        let Some(id) = id else {
            if let Some(w) = self.foreign.get(&from).copied() {
                self.hand_over(w, from, data);
            } else {
                self.counters.unknown_datagrams += 1;
            }
            return;
        };
        let result = {
            let Some(t) = self.transports.get_mut(&id).and_then(Entry::webrtc) else {
                return;
            };
            catch_unwind(AssertUnwindSafe(|| t.handle_datagram(now, from, data)))
        };
        match result {
            Ok(Some(Received::Rtp(pkt))) => {
                if !self.feed_router(now, id, &pkt, false) {
                    return;
                }
            }
            Ok(Some(Received::Rtcp(pkt))) => {
                if !self.feed_router(now, id, &pkt, true) {
                    return;
                }
            }
            Ok(None) => {}
            Err(_) => {
                log::error!(target: "pms_io::worker", "transport {id} panicked on a datagram from {from}; closing it");
                self.remove(id, "internal-error");
                return;
            }
        }
        self.drive(id, now);
    }

    fn hand_over(&mut self, worker: usize, from: SocketAddr, data: &[u8]) {
        if let Some(handle) = self.shared.workers().get(worker) {
            handle.send(Command::Foreign {
                from,
                data: data.to_vec(),
            });
        }
    }

    /// Sends what the transport queued and acts on its events.
    pub(super) fn drive(&mut self, id: TransportId, now: Instant) {
        loop {
            let Some(entry) = self.transports.get_mut(&id) else {
                return;
            };
            let publisher = entry.publisher;
            let Some(transport) = entry.webrtc() else {
                return;
            };
            let mut progressed = false;
            while let Some((to, buf)) = transport.poll_transmit() {
                progressed = true;
                match self.socket.send_to(&buf, to) {
                    Ok(n) => {
                        self.counters.packets_out += 1;
                        self.counters.bytes_out += n as u64;
                    }
                    Err(_) => self.counters.send_errors += 1,
                }
            }
            if let Some(addr) = transport.remote_addr() {
                if self.by_addr.get(&addr) != Some(&id) {
                    self.by_addr.retain(|_, v| *v != id);
                    self.by_addr.insert(addr, id);
                }
            }
            match transport.poll_event() {
                Some(TransportEvent::Connected) => {
                    progressed = true;
                    if !publisher {
                        self.with_router(|r, out| r.consumer_connected(id, now, out));
                    }
                    self.shared.events.push(Event::TransportConnected { id });
                }
                Some(TransportEvent::Closed(reason)) => {
                    self.remove(id, reason);
                    return;
                }
                None => {}
            }
            if !progressed {
                return;
            }
        }
    }
}
