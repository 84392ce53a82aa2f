//! GB28181 media on a worker, as two kinds of peer: the media port ([`port::GbPort`]: the TCP
//! listener, the UDP socket, accepted connections, matching packets to ingests by SSRC) and
//! one ingest per camera stream ([`ingest::GbIngest`]: a [`PsIngest`] from `pms_core::gb`
//! (reorder, PS demux, packetizers) feeding the router as a producer, its timers, and for
//! tcp-active its own connection to the camera). They talk by peer id only: the port forwards
//! a camera's packets to its ingest and closes it when its connection fails; the ingest
//! registers with the port and leaves it through a [`PortMessage`]. What they may not do:
//! parse SIP or decide when to BYE (the control plane does, on the events below).
//!
//! - **Matching.** A connection is unbound until its first RTP packet; the packet's SSRC (or
//!   the camera's IP, see [`Matcher`]) names the ingest, and every later packet of that
//!   connection goes to it without a lookup. A UDP packet is matched on each arrival by SSRC
//!   (one hash lookup). A packet nobody matches is dropped and counted (`gb_unknown_ssrc`); an
//!   unbound connection is closed after [`MEDIA_TIMEOUT`]. A new connection bound to an ingest
//!   that has one replaces it (a camera that reconnects).
//! - **Workers.** The port lives on [`GB_WORKER`] with every UDP ingest (a datagram is
//!   matched where it is read). A TCP ingest (tcp-passive or tcp-active) lives on the least
//!   loaded worker: tcp-active connects from there; for tcp-passive the port accepts the
//!   connection, matches its first packet, then hands the socket, its deframer and the rest of
//!   that read to the ingest's worker ([`IngestMessage::Adopt`]), which reads it from then on
//!   without the port. So TCP cameras spread over every worker, and a packet never crosses a
//!   thread. A camera that reconnects is matched and handed over again; the ingest drops its
//!   old connection.
//! - **Ending.** An ingest ends by itself with `transport_closed(id, reason)`:
//!   `media-timeout` (no RTP for [`MEDIA_TIMEOUT`], counted from its creation too), `eof` (its
//!   connection closed or failed), `protocol-error` (unusable framing on its connection:
//!   [`pms_core::gb::FramingError`]), `connect-failed` (tcp-active could not connect within
//!   the timeout). A connection with bad framing that is bound to no ingest is closed alone.
//! - **Going live.** When the ingest knows its tracks, the reservation in the registry becomes
//!   a live stream (registry lock, once) and the router gets a producer; the first RTP packet
//!   then raises `producer_started` through the router as for any publisher.
//! - **Keyframes.** The router asks producers for keyframes with PLI (player joins, player
//!   PLI). For an ingest that request is noted by its sink; at the end of that poll iteration
//!   the ingest raises `keyframe_wanted` when the router's cache has no keyframe to give, at
//!   most once per [`KEYFRAME_EVENT_INTERVAL`] per stream.
//! - **Hot path.** Read into the worker's buffer, deframe in place, demux, packetize into
//!   scratch buffers, route: no lock and no allocation per packet (the demuxer allocates once
//!   per access unit). Timers are each peer's deadline (reorder, media timeout, stale
//!   connections): nothing scans every ingest.
//!
//! [`PsIngest`]: pms_core::gb::PsIngest
//! [`Matcher`]: pms_core::gb::Matcher

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use pms_core::media::TransportId;

pub(crate) mod ingest;
pub(crate) mod port;

/// The worker that owns the media port and the UDP ingests.
pub(crate) const GB_WORKER: usize = 0;
/// No RTP for this long ends an ingest (`media-timeout`), and closes an unbound connection.
pub(crate) const MEDIA_TIMEOUT: Duration = Duration::from_secs(10);
/// Minimum spacing of `keyframe_wanted` events for one stream.
pub(crate) const KEYFRAME_EVENT_INTERVAL: Duration = Duration::from_secs(2);

/// How the camera's media reaches us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IngestMode {
    TcpPassive,
    Udp,
    /// We connect to the camera at this address.
    TcpActive(SocketAddr),
}

/// What an ingest tells the media port (a message by the port's peer id).
pub(crate) enum PortMessage {
    /// Packets with `ssrc` (or from `peer_ip`, see the matcher) are for ingest `id`.
    Register {
        id: TransportId,
        ssrc: u32,
        peer_ip: Option<IpAddr>,
        /// The ingest's worker: not the port's means a matched connection is handed over.
        worker: usize,
    },
    /// Ingest `id` ended: forget it and close its connection.
    Forget { id: TransportId },
}

/// A message for one ingest: from the engine (a playback's speed) or from the media port on
/// another worker (a matched connection, or its failure).
pub(crate) enum IngestMessage {
    /// A playback's speed: re-time the output (`pms_core::gb::Retimer`).
    Scale(f64),
    /// A tcp-passive connection matched to this ingest: read it from now on. `pending`: the
    /// packets of the port's last read from the match on (in order; at most one read buffer).
    Adopt {
        stream: mio::net::TcpStream,
        deframer: pms_core::gb::Deframer,
        peer: SocketAddr,
        pending: Vec<Vec<u8>>,
    },
    /// Its connection failed before the hand-over: end with this reason.
    Failed { reason: &'static str },
}

/// The SSRC of an RTP packet; `None` for RTCP (PT 200..=204) and packets too short.
fn rtp_ssrc(pkt: &[u8]) -> Option<u32> {
    if pkt.len() < 12 || pkt[0] >> 6 != 2 || (200..=204).contains(&pkt[1]) {
        return None;
    }
    Some(u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssrc_of_rtp_only() {
        let mut rtp = vec![0x80, 96, 0, 1, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
        assert_eq!(rtp_ssrc(&rtp), Some(0x1234_5678));
        rtp[1] = 200; // an RTCP sender report
        assert_eq!(rtp_ssrc(&rtp), None);
        rtp[1] = 96;
        rtp[0] = 0x40; // version 1
        assert_eq!(rtp_ssrc(&rtp), None);
        assert_eq!(rtp_ssrc(&[0x80; 11]), None);
    }
}
