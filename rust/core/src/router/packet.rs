//! What the forward and feedback paths both write with: a packet in producer terms
//! ([`Frame`]), the output it is written to ([`Out`]: scratch buffer, sink, counters) and a
//! consumer track's RTP header. Imports neither path, so they do not import each other.

use super::state::ConsumerTrackState;
use super::{RouterStats, Sink};
use crate::media::TransportId;
use crate::rtp::{self, Header};

/// One packet in producer terms, from the wire or from the retransmission buffer.
#[derive(Clone, Copy)]
pub(super) struct Frame<'a> {
    pub ext: u64,
    pub ts: u32,
    pub marker: bool,
    pub csrcs: &'a [u8],
    pub payload: &'a [u8],
    pub padding: u8,
}

impl Frame<'_> {
    #[inline]
    pub fn seq(&self) -> u16 {
        self.ext as u16
    }
}

impl<'a> From<crate::retransmit::Stored<'a>> for Frame<'a> {
    fn from(s: crate::retransmit::Stored<'a>) -> Self {
        Frame {
            ext: s.ext_seq,
            ts: s.timestamp,
            marker: s.marker,
            csrcs: s.csrcs,
            payload: s.payload,
            padding: s.padding,
        }
    }
}

/// Where rewritten packets go: the scratch buffer, the sink and the counters.
pub(super) struct Out<'a, S: Sink> {
    pub scratch: &'a mut [u8],
    pub sink: &'a mut S,
    pub stats: &'a mut RouterStats,
}

impl<S: Sink> Out<'_, S> {
    /// Writes one packet for consumer `to` and sends it. Returns false if it did not fit.
    pub fn send(&mut self, to: TransportId, hdr: &Header<'_>, f: &Frame<'_>) -> bool {
        match rtp::write_packet(self.scratch, hdr, f.csrcs, f.payload, f.padding) {
            Some(n) => {
                self.sink.send_rtp(to, &self.scratch[..n]);
                self.stats.packets_out += 1;
                self.stats.bytes_out += n as u64;
                true
            }
            None => false,
        }
    }
}

/// The `mid` header extension of consumer track `ct` (id, value), when negotiated.
#[inline]
pub(super) fn mid(ct: &ConsumerTrackState) -> Option<(u8, &[u8])> {
    ct.cfg.extensions.mid.map(|id| (id, ct.cfg.mid.as_bytes()))
}

/// The header of a packet of consumer track `ct` (its SSRC, payload type and mid) as sent
/// first; a retransmission as RTX has its own (see `feedback::retransmit`). `#[inline]` like
/// the two helpers above: called per packet per consumer, and its caller may sit in another
/// codegen unit now that it lives apart from the forward path.
#[inline]
pub(super) fn consumer_header(
    ct: &ConsumerTrackState,
    seq: u16,
    timestamp: u32,
    marker: bool,
) -> Header<'_> {
    Header {
        ssrc: ct.cfg.ssrc,
        payload_type: ct.cfg.codec.payload_type,
        seq,
        timestamp,
        marker,
        mid: mid(ct),
        osn: None,
    }
}
