//! The TCP side of the GB28181 media port: accepting cameras (tcp-passive), finishing our own
//! connects (tcp-active), reading RFC 4571 frames, binding a connection to its ingest on its
//! first packet, and closing a connection (alone, or with its ingest) when it fails.

use std::io::{self, Read};
use std::time::Instant;

use mio::{Interest, Token};
use pms_core::gb::{Deframer, FramingError};

use super::{rtp_ssrc, Conn};
use crate::worker::Worker;

impl Worker {
    pub(super) fn gb_close_conn(&mut self, token: Token) {
        if let Some(mut c) = self.gb.conns.remove(&token) {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }

    /// A tcp-active connect finished; false when it failed (the ingest is then gone) or is
    /// still in progress.
    pub(super) fn gb_connected(&mut self, token: Token) -> bool {
        let Some(c) = self.gb.conns.get_mut(&token) else {
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
        let ingest = c.ingest;
        if failed {
            match ingest {
                Some(id) => self.remove(id, "connect-failed"),
                None => self.gb_close_conn(token),
            }
            return false;
        }
        c.connecting = false;
        let _ = c.stream.set_nodelay(true);
        let _ = self
            .poll
            .registry()
            .reregister(&mut c.stream, token, Interest::READABLE);
        true
    }

    pub(super) fn gb_accept(&mut self, now: Instant) {
        loop {
            let Some(l) = self.gb.listener.as_ref() else {
                return;
            };
            match l.accept() {
                Ok((mut stream, peer)) => {
                    let token = Token(self.next_token);
                    self.next_token += 1;
                    let _ = stream.set_nodelay(true);
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, token, Interest::READABLE)
                        .is_err()
                    {
                        continue;
                    }
                    self.gb.conns.insert(
                        token,
                        Conn {
                            stream,
                            deframer: Deframer::new(),
                            peer,
                            ingest: None,
                            connecting: false,
                            since: now,
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock, or out of fds (EMFILE): try again at the next readiness.
                Err(_) => return,
            }
        }
    }

    pub(super) fn gb_read_tcp(&mut self, token: Token, now: Instant) {
        let mut buf = std::mem::take(&mut self.rbuf);
        loop {
            let read = {
                let Some(c) = self.gb.conns.get_mut(&token) else {
                    break;
                };
                match c.stream.read(&mut buf) {
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                }
            };
            let n = match read {
                Ok(0) | Err(_) => {
                    self.gb_conn_failed(token, "eof");
                    break;
                }
                Ok(n) => n,
            };
            self.gb.bytes_in += n as u64;
            let Some(mut deframer) = self
                .gb
                .conns
                .get_mut(&token)
                .map(|c| std::mem::take(&mut c.deframer))
            else {
                break;
            };
            let r = deframer.push(&buf[..n], |pkt| self.gb_tcp_packet(token, pkt, now));
            match self.gb.conns.get_mut(&token) {
                Some(c) => c.deframer = deframer,
                None => break, // closed while handling a packet
            }
            if let Err(e) = r {
                self.gb_protocol_error(token, e);
                break;
            }
        }
        self.rbuf = buf;
    }

    pub(super) fn gb_protocol_error(&mut self, token: Token, e: FramingError) {
        let peer = self.gb.conns.get(&token).map(|c| c.peer);
        log::info!(target: "pms_io::gb", "media connection from {peer:?}: {e}; closing it");
        self.gb_conn_failed(token, "protocol-error");
    }

    /// Closes a connection; its ingest (if any) ends with `reason`.
    pub(super) fn gb_conn_failed(&mut self, token: Token, reason: &'static str) {
        match self.gb.conns.get(&token).and_then(|c| c.ingest) {
            Some(id) => self.remove(id, reason),
            None => self.gb_close_conn(token),
        }
    }

    pub(super) fn gb_tcp_packet(&mut self, token: Token, pkt: &[u8], now: Instant) {
        let Some(c) = self.gb.conns.get_mut(&token) else {
            return;
        };
        let id = match c.ingest {
            Some(id) => id,
            None => {
                let Some(ssrc) = rtp_ssrc(pkt) else { return };
                let Some(m) = self.gb.matcher.find(ssrc, c.peer.ip()) else {
                    self.gb.unknown_ssrc += 1;
                    return;
                };
                let id = m.id();
                c.ingest = Some(id);
                let old = self
                    .gb
                    .ingests
                    .get_mut(&id)
                    .and_then(|i| i.conn.replace(token));
                if let Some(old) = old.filter(|o| *o != token) {
                    self.gb_close_conn(old);
                }
                id
            }
        };
        self.gb_deliver(id, pkt, now);
    }
}
