//! The read side of an RTSP peer: interleaved frames and text on the TCP connection it owns,
//! datagrams on its UDP pairs; each read is a sign of life ([`RtspServerPeer::signal_alive`]).

use std::io::{self, Read};

use pms_core::rtsp_framing::Frame;

use super::RtspServerPeer;
use crate::events::Event;
use crate::stats;
use crate::worker::PeerCtx;

impl RtspServerPeer {
    /// Feeds bytes read on the connection to its framing reader and acts on each frame.
    pub(super) fn input(&mut self, ctx: &mut PeerCtx<'_>, data: &[u8]) {
        let id = ctx.id();
        let Some(mut reader) = self.conn.as_mut().and_then(|c| c.reader.take()) else {
            return;
        };
        let mut failed = false;
        for frame in reader.push(data) {
            match frame {
                Ok(Frame::Message(m)) => ctx.event(Event::RtspMessage {
                    id,
                    data: m.to_vec(),
                }),
                Ok(Frame::Interleaved { channel, payload }) => {
                    ctx.counters().received(payload.len() as u64 + 4);
                    let hit = self
                        .tracks
                        .iter()
                        .enumerate()
                        .find_map(|(i, t)| match t.channels {
                            Some((rtp, _)) if rtp == channel => Some((i, false)),
                            Some((_, rtcp)) if rtcp == channel => Some((i, true)),
                            _ => None,
                        });
                    self.packet(ctx, hit, payload);
                    if ctx.closing() {
                        return;
                    }
                }
                Err(e) => {
                    log::info!(target: "pms_io::rtsp", "RTSP transport {id}: {e}; closing");
                    failed = true;
                }
            }
        }
        if failed {
            self.connection_lost(ctx, "protocol-error");
            return;
        }
        if let Some(c) = self.conn.as_mut() {
            c.reader = Some(reader);
        }
    }

    /// Routes one packet that arrived for track `hit` (`(index, is_rtcp)`; `None`: no track).
    fn packet(&mut self, ctx: &mut PeerCtx<'_>, hit: Option<(usize, bool)>, pkt: &[u8]) {
        let source = hit
            .and_then(|(i, _)| self.tracks.get(i))
            .and_then(|t| t.source);
        match hit {
            Some((_, true)) if self.resumable && has_bye(pkt) => {
                // The origin's stream ended (a broken connection would not say so): no retry.
                ctx.close_me("origin-ended");
            }
            Some((_, true)) if self.started => ctx.route(self, pkt, true),
            Some((_, false)) if self.publisher && self.started && source.is_some() => {
                ctx.route(self, pkt, false)
            }
            _ => {
                // A channel never set up, a player's RTP, a track we do not forward, or media
                // before PLAY/RECORD.
                ctx.counters().add(stats::STAT_RTP_DROPPED, 1);
            }
        }
    }

    /// Reads track `i`'s RTP or RTCP socket until it would block.
    pub(super) fn read_udp(&mut self, ctx: &mut PeerCtx<'_>, i: usize, rtcp: bool) {
        let mut buf = ctx.take_read_buffer();
        loop {
            let got = {
                let Some(udp) = self.tracks.get(i).and_then(|t| t.udp.as_ref()) else {
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
            ctx.counters().received(n as u64);
            if !from_client {
                ctx.counters().add(stats::STAT_RTP_DROPPED, 1);
                continue;
            }
            self.signal_alive(ctx);
            self.packet(ctx, Some((i, rtcp)), &buf[..n]);
            if ctx.closing() {
                break;
            }
        }
        ctx.put_read_buffer(buf);
    }

    /// Reads the TCP connection until it would block.
    pub(super) fn read_tcp(&mut self, ctx: &mut PeerCtx<'_>) {
        let mut buf = ctx.take_read_buffer();
        loop {
            let read = {
                let Some(conn) = self.conn.as_mut() else {
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
                    self.connection_lost(ctx, "eof");
                    break;
                }
                Ok(n) => {
                    if self.resumable {
                        ctx.counters().add(stats::STAT_PULL_BYTES_IN, n as u64);
                    }
                    self.signal_alive(ctx);
                    self.input(ctx, &buf[..n]);
                    if ctx.closing() {
                        break;
                    }
                }
            }
        }
        ctx.put_read_buffer(buf);
    }

    /// Something was read: raise `RtspAlive` unless one was raised lately.
    fn signal_alive(&mut self, ctx: &mut PeerCtx<'_>) {
        if self.alive(ctx.now()) {
            ctx.event(Event::RtspAlive { id: ctx.id() });
        }
    }
}

/// Whether an RTCP compound packet holds a BYE (packet type 203). Walks the packets by their
/// length fields; a malformed compound is simply not a BYE.
fn has_bye(mut pkt: &[u8]) -> bool {
    while pkt.len() >= 4 {
        if pkt[0] >> 6 != 2 {
            return false;
        }
        if pkt[1] == 203 {
            return true;
        }
        let len = (usize::from(u16::from_be_bytes([pkt[2], pkt[3]])) + 1) * 4;
        let Some(rest) = pkt.get(len..) else {
            return false;
        };
        pkt = rest;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::has_bye;

    #[test]
    fn bye_is_found_in_a_compound_and_garbage_is_not_one() {
        let rr = [0x80, 201, 0, 1, 0, 0, 0, 1];
        let bye = [0x81, 203, 0, 1, 0, 0, 0, 2];
        assert!(has_bye(&bye));
        assert!(has_bye(&[&rr[..], &bye[..]].concat()));
        assert!(!has_bye(&rr));
        assert!(!has_bye(&[0x80, 201, 0xff, 0xff, 0, 0, 0, 1, 0x81, 203]));
        assert!(!has_bye(&[0x00, 203, 0, 1]));
        assert!(!has_bye(&[]));
    }
}
