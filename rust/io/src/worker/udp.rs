//! The worker's shared UDP socket: read every datagram and hand it to the peer that claimed it
//! (STUN by the local ICE ufrag, everything else by source address; see [`super::mux`]), or to
//! the worker that owns that peer (several workers sharing one port). What a datagram means is
//! the peer's business.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use pms_core::ice::{classify, stun_local_ufrag, PacketClass};

use super::{Command, Worker, SEND_EVERY};
use crate::stats;

impl Worker {
    pub(super) fn read_socket(&mut self, buf: &mut [u8]) {
        let mut since_send = 0;
        loop {
            match self.parts.socket.recv_from(buf) {
                Ok((n, from)) => {
                    let now = Instant::now();
                    self.parts.counters.received(n as u64);
                    self.handle_datagram(now, from, &buf[..n]);
                    // A long read (a burst, a handshake storm) must not hold media back: the
                    // batch leaves every SEND_EVERY datagrams, enough for a frame to group.
                    since_send += 1;
                    if since_send >= SEND_EVERY {
                        since_send = 0;
                        self.send_batch();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors surface as ECONNREFUSED on some systems: nothing to do.
                Err(_) => continue,
            }
        }
    }

    pub(super) fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let mux = &self.parts.mux;
        let id = match classify(data) {
            PacketClass::Stun => match stun_local_ufrag(data) {
                Some(ufrag) => match mux.by_ufrag(ufrag) {
                    Some(id) => Some(id),
                    None => {
                        let owner = self.parts.shared.registry().ufrags.get(ufrag).copied();
                        if let Some(w) = owner.filter(|w| *w != self.parts.index) {
                            self.foreign.insert(from, w);
                            self.hand_over(w, from, data);
                        } else {
                            self.parts.counters.add(stats::STAT_RTP_DROPPED, 1);
                        }
                        return;
                    }
                },
                None => mux.by_addr(&from),
            },
            PacketClass::Other => None,
            _ => mux.by_addr(&from),
        };
        let Some(id) = id else {
            if let Some(w) = self.foreign.get(&from).copied() {
                self.hand_over(w, from, data);
            } else {
                self.parts.counters.add(stats::STAT_RTP_DROPPED, 1);
            }
            return;
        };
        self.dispatch(id, now, |p, ctx| p.on_datagram(ctx, from, data));
    }

    fn hand_over(&mut self, worker: usize, from: SocketAddr, data: &[u8]) {
        if let Some(handle) = self.parts.shared.workers().get(worker) {
            handle.send(Command::Foreign {
                from,
                data: data.to_vec(),
            });
        }
    }
}
