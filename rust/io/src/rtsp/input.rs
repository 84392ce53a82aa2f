//! The read side of RTSP peers: interleaved frames and text on TCP connections the core owns,
//! datagrams on UDP pairs; each read is a sign of life ([`Worker::rtsp_alive`]).

use std::io::{self, Read};
use std::time::Instant;

use mio::Token;
use pms_core::media::TransportId;
use pms_core::rtsp_framing::Frame;

use super::SocketRole;
use crate::events::Event;
use crate::worker::Worker;

impl Worker {
    /// Feeds bytes read on `id`'s connection to its framing reader and acts on each frame.
    pub(super) fn rtsp_input(&mut self, id: TransportId, data: &[u8], now: Instant) {
        let Some(mut reader) = self
            .rtsp_peer(id)
            .and_then(|p| p.conn.as_mut())
            .and_then(|c| c.reader.take())
        else {
            return;
        };
        let mut failed = None;
        for frame in reader.push(data) {
            match frame {
                Ok(Frame::Message(m)) => self.shared.events.push(Event::RtspMessage {
                    id,
                    data: m.to_vec(),
                }),
                Ok(Frame::Interleaved { channel, payload }) => {
                    self.counters.packets_in += 1;
                    self.counters.bytes_in += payload.len() as u64 + 4;
                    let hit = self.rtsp_peer(id).and_then(|p| {
                        p.tracks
                            .iter()
                            .enumerate()
                            .find_map(|(i, t)| match t.channels {
                                Some((rtp, _)) if rtp == channel => Some((i, false)),
                                Some((_, rtcp)) if rtcp == channel => Some((i, true)),
                                _ => None,
                            })
                    });
                    if !self.rtsp_packet(id, hit, payload, now) {
                        return;
                    }
                }
                Err(e) => {
                    log::info!(target: "pms_io::rtsp", "RTSP transport {id}: {e}; closing");
                    failed = Some(e);
                }
            }
        }
        if failed.is_some() {
            self.remove(id, "protocol-error");
            return;
        }
        if let Some(c) = self.rtsp_peer(id).and_then(|p| p.conn.as_mut()) {
            c.reader = Some(reader);
        }
    }

    /// Routes one packet of peer `id` that arrived for its track `hit` (`(index, is_rtcp)`;
    /// `None`: no track). False when the peer is gone.
    fn rtsp_packet(
        &mut self,
        id: TransportId,
        hit: Option<(usize, bool)>,
        pkt: &[u8],
        now: Instant,
    ) -> bool {
        let Some(entry) = self.transports.get_mut(&id) else {
            return false;
        };
        let publisher = entry.publisher;
        let Some(p) = entry.rtsp() else { return false };
        let source = hit
            .and_then(|(i, _)| p.tracks.get(i))
            .and_then(|t| t.source);
        match hit {
            Some((_, true)) if p.started => self.feed_router(now, id, pkt, true),
            Some((_, false)) if publisher && p.started && source.is_some() => {
                self.feed_router(now, id, pkt, false)
            }
            _ => {
                // A channel never set up, a player's RTP, a track we do not forward, or media
                // before PLAY/RECORD.
                self.counters.unknown_datagrams += 1;
                true
            }
        }
    }

    /// A poll event for an RTSP socket.
    pub(crate) fn rtsp_ready(&mut self, token: Token, readable: bool, writable: bool) {
        let Some(&(id, role)) = self.tokens.get(&token) else {
            return;
        };
        let now = Instant::now();
        match role {
            SocketRole::Tcp => {
                if writable {
                    let broken = self
                        .rtsp_peer(id)
                        .and_then(|p| p.conn.as_mut())
                        .is_some_and(|c| c.flush().is_err());
                    if broken {
                        self.remove(id, "eof");
                        return;
                    }
                }
                if readable {
                    self.rtsp_read_tcp(id, now);
                }
            }
            SocketRole::UdpRtp(i) | SocketRole::UdpRtcp(i) => {
                let rtcp = matches!(role, SocketRole::UdpRtcp(_));
                let mut buf = std::mem::take(&mut self.rbuf);
                loop {
                    let got = {
                        let Some(udp) = self
                            .rtsp_peer(id)
                            .and_then(|p| p.tracks.get(i))
                            .and_then(|t| t.udp.as_ref())
                        else {
                            break;
                        };
                        let sock = if rtcp { &udp.rtcp } else { &udp.rtp };
                        match sock.recv_from(&mut buf) {
                            Ok((n, from)) => Some((n, from.ip() == udp.client_rtp.ip())),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                            Err(_) => continue,
                        }
                    };
                    let Some((n, from_client)) = got else { break };
                    self.counters.packets_in += 1;
                    self.counters.bytes_in += n as u64;
                    if !from_client {
                        self.counters.unknown_datagrams += 1;
                        continue;
                    }
                    self.rtsp_alive(id, now);
                    if !self.rtsp_packet(id, Some((i, rtcp)), &buf[..n], now) {
                        break;
                    }
                }
                self.rbuf = buf;
            }
        }
    }

    fn rtsp_read_tcp(&mut self, id: TransportId, now: Instant) {
        let mut buf = std::mem::take(&mut self.rbuf);
        loop {
            let read = {
                let Some(conn) = self.rtsp_peer(id).and_then(|p| p.conn.as_mut()) else {
                    break;
                };
                match conn.stream.read(&mut buf) {
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                }
            };
            match read {
                Ok(0) | Err(_) => {
                    self.remove(id, "eof");
                    break;
                }
                Ok(n) => {
                    self.rtsp_alive(id, now);
                    self.rtsp_input(id, &buf[..n], now);
                }
            }
        }
        self.rbuf = buf;
    }

    /// Something was read from peer `id`: raise `RtspAlive` unless one was raised lately.
    fn rtsp_alive(&mut self, id: TransportId, now: Instant) {
        if self.rtsp_peer(id).is_some_and(|p| p.alive(now)) {
            self.shared.events.push(Event::RtspAlive { id });
        }
    }
}
