//! RTCP and timers: consumers' NACK/PLI/FIR/RR, producers' SR, keyframe requests with their
//! rate limit, upstream NACKs, and the periodic RR + REMB to producers.

use std::ops::Range;
use std::time::Instant;

use super::packet::{consumer_header, mid, Frame, Out};
use super::state::{ConsumerTrackState, ProducerTrackState};
use super::{
    Router, RouterStats, Sink, DEFAULT_REMB_BITRATE, KEYFRAME_REQUEST_INTERVAL,
    MAX_RETRANSMITS_PER_RTCP, REPORT_INTERVAL,
};
use crate::media::{MediaKind, TransportId};
use crate::rtcp::{self, ReportBlock, Rtcp};
use crate::rtp::Header;

/// Sends PLI (or FIR when the producer only negotiated `ccm fir`) for `track` now.
pub(super) fn send_keyframe_request(
    track: &mut ProducerTrackState,
    producer: TransportId,
    sender_ssrc: u32,
    now: Instant,
    buf: &mut Vec<u8>,
    sink: &mut impl Sink,
    stats: &mut RouterStats,
) {
    let Some(media) = track.ssrc else { return };
    buf.clear();
    if track.use_fir {
        track.fir_seq = track.fir_seq.wrapping_add(1);
        rtcp::write_fir(buf, sender_ssrc, media, track.fir_seq);
    } else {
        rtcp::write_pli(buf, sender_ssrc, media);
    }
    sink.send_rtcp(producer, buf);
    stats.plis += 1;
    track.counters.plis += 1;
    track.last_kf_request = Some(now);
    track.kf_pending = false;
}

/// Asks for a keyframe on `track`: at once if the rate limit allows, else at the end of the
/// interval (via `poll_timeout`/`handle_timeout`), or on the track's first packet when its
/// SSRC is not known yet.
pub(super) fn request_keyframe(
    track: &mut ProducerTrackState,
    producer: TransportId,
    sender_ssrc: u32,
    now: Instant,
    buf: &mut Vec<u8>,
    sink: &mut impl Sink,
    stats: &mut RouterStats,
) {
    track.kf_pending = true;
    if track.ssrc.is_none() {
        return;
    }
    if track
        .last_kf_request
        .is_none_or(|l| now >= l + KEYFRAME_REQUEST_INTERVAL)
    {
        send_keyframe_request(track, producer, sender_ssrc, now, buf, sink, stats);
    }
}

/// NACKs the missing extended sequence numbers `missing` upstream (once; no retry).
pub(super) fn nack_upstream(
    track: &ProducerTrackState,
    producer: TransportId,
    sender_ssrc: u32,
    missing: Range<u64>,
    buf: &mut Vec<u8>,
    sink: &mut impl Sink,
) {
    let Some(media) = track.ssrc else { return };
    let mut seqs = [0u16; super::MAX_UPSTREAM_NACK_GAP as usize];
    let mut n = 0;
    for e in missing.take(seqs.len()) {
        seqs[n] = e as u16;
        n += 1;
    }
    buf.clear();
    rtcp::write_nack(buf, sender_ssrc, media, &seqs[..n]);
    sink.send_rtcp(producer, buf);
}

/// Resends consumer seq `seq` of `ct` from the buffer: as RTX when negotiated, else as is.
fn retransmit<S: Sink>(
    cid: TransportId,
    ct: &mut ConsumerTrackState,
    track: &ProducerTrackState,
    seq: u16,
    out: &mut Out<'_, S>,
) -> bool {
    if ct.injected == Some(seq) {
        return false;
    }
    let Some(ts_off) = ct.ts_off else {
        return false;
    };
    let off = if seq.wrapping_sub(ct.off_since) as i16 >= 0 {
        ct.seq_off
    } else {
        ct.prev_seq_off
    };
    let Some(p) = track.buffer.get_seq(seq.wrapping_sub(off)) else {
        return false;
    };
    let f = Frame::from(p);
    let ts = f.ts.wrapping_add(ts_off);
    let hdr = match (ct.cfg.codec.rtx_payload_type, ct.cfg.rtx_ssrc) {
        (Some(pt), Some(ssrc)) => {
            ct.rtx_seq = ct.rtx_seq.wrapping_add(1);
            Header {
                ssrc,
                payload_type: pt,
                seq: ct.rtx_seq,
                timestamp: ts,
                marker: f.marker,
                mid: mid(ct),
                osn: Some(seq),
            }
        }
        _ => consumer_header(ct, seq, ts, f.marker),
    };
    out.send(cid, &hdr, &f)
}

impl Router {
    /// One decrypted RTCP compound packet received on transport `from` (producer or
    /// consumer). From a producer: SRs are recorded (for our RR's LSR/DLSR) and translated to
    /// every connected consumer of that track. From a consumer: NACKs are answered from the
    /// retransmission buffer (at most [`MAX_RETRANSMITS_PER_RTCP`] packets per compound), PLI
    /// and FIR go upstream under the keyframe rate limit, RRs are kept. Malformed input is
    /// counted in [`RouterStats::rtcp_dropped`]; what parsed before the fault is still used.
    pub fn handle_rtcp(
        &mut self,
        now: Instant,
        from: TransportId,
        pkt: &[u8],
        sink: &mut impl Sink,
    ) {
        self.tick(now);
        if self.producers.contains_key(&from) {
            self.rtcp_from_producer(now, from, pkt, sink);
        } else if self.consumers.contains_key(&from) {
            self.rtcp_from_consumer(now, from, pkt, sink);
        } else {
            self.stats.rtcp_dropped += 1;
        }
    }

    fn rtcp_from_producer(
        &mut self,
        now: Instant,
        from: TransportId,
        pkt: &[u8],
        sink: &mut impl Sink,
    ) {
        let Some(prod) = self.producers.get_mut(&from) else {
            return;
        };
        for item in rtcp::parse_compound(pkt) {
            let Ok(item) = item else {
                self.stats.rtcp_dropped += 1;
                continue;
            };
            let Rtcp::SenderReport {
                ssrc,
                ntp_time,
                rtp_time,
                ..
            } = item
            else {
                continue;
            };
            let Some(ti) = prod.tracks.iter().position(|t| t.ssrc == Some(ssrc)) else {
                continue;
            };
            prod.tracks[ti].stats.on_sender_report(ntp_time, now);
            for cid in &prod.consumers {
                let Some(c) = self.consumers.get_mut(cid) else {
                    continue;
                };
                if !c.connected {
                    continue;
                }
                for ct in c.tracks.iter().filter(|t| t.cfg.producer_track == ti) {
                    let Some(ts_off) = ct.ts_off else { continue };
                    self.rtcp.clear();
                    rtcp::write_sr(
                        &mut self.rtcp,
                        ct.cfg.ssrc,
                        ntp_time,
                        rtp_time.wrapping_add(ts_off),
                        ct.packets_sent,
                        ct.octets_sent,
                    );
                    sink.send_rtcp(*cid, &self.rtcp);
                }
            }
        }
    }

    fn rtcp_from_consumer(
        &mut self,
        now: Instant,
        from: TransportId,
        pkt: &[u8],
        sink: &mut impl Sink,
    ) {
        let Some(c) = self.consumers.get_mut(&from) else {
            return;
        };
        let Some(prod) = self.producers.get_mut(&c.producer) else {
            return;
        };
        let producer_id = c.producer;
        let mut budget = MAX_RETRANSMITS_PER_RTCP;
        for item in rtcp::parse_compound(pkt) {
            let item = match item {
                Ok(i) => i,
                Err(_) => {
                    self.stats.rtcp_dropped += 1;
                    continue;
                }
            };
            match item {
                Rtcp::ReceiverReport { reports, .. } | Rtcp::SenderReport { reports, .. } => {
                    for block in reports {
                        if let Some(ct) = c.tracks.iter_mut().find(|t| t.cfg.ssrc == block.ssrc) {
                            ct.last_rr = Some(block);
                        }
                    }
                }
                Rtcp::Nack {
                    media_ssrc, seqs, ..
                } => {
                    self.stats.nacks += 1;
                    let Some(ct) = c.tracks.iter_mut().find(|t| t.cfg.ssrc == media_ssrc) else {
                        continue;
                    };
                    let Some(track) = prod.tracks.get(ct.cfg.producer_track) else {
                        continue;
                    };
                    let before = (self.stats.packets_out, self.stats.bytes_out);
                    let mut out = Out {
                        scratch: &mut self.scratch,
                        sink: &mut *sink,
                        stats: &mut self.stats,
                    };
                    for seq in seqs {
                        if budget == 0 {
                            break;
                        }
                        budget -= 1;
                        if retransmit(from, ct, track, seq, &mut out) {
                            out.stats.retransmits += 1;
                        }
                    }
                    if let Some(t) = prod.tracks.get_mut(ct.cfg.producer_track) {
                        t.counters.nacks += 1;
                        t.counters.packets_out += self.stats.packets_out - before.0;
                        t.counters.bytes_out += self.stats.bytes_out - before.1;
                    }
                }
                Rtcp::Pli { media_ssrc, .. } | Rtcp::Fir { media_ssrc, .. } => {
                    let Some(ct) = c.tracks.iter().find(|t| t.cfg.ssrc == media_ssrc) else {
                        continue;
                    };
                    if ct.cfg.kind != MediaKind::Video {
                        continue;
                    }
                    if let Some(track) = prod.tracks.get_mut(ct.cfg.producer_track) {
                        request_keyframe(
                            track,
                            producer_id,
                            prod.sender_ssrc,
                            now,
                            &mut self.rtcp,
                            sink,
                            &mut self.stats,
                        );
                    }
                }
                _ => {}
            }
        }
    }

    /// When [`handle_timeout`](Router::handle_timeout) wants to run next: the next producer
    /// report, or the end of a keyframe request's rate-limit interval. `None` with no
    /// producers. O(producers x tracks).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut take = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for p in self.producers.values() {
            take(p.next_report);
            for t in &p.tracks {
                if t.kf_pending && t.ssrc.is_some() {
                    match (t.last_kf_request, self.last_now) {
                        (Some(l), _) => take(l + KEYFRAME_REQUEST_INTERVAL),
                        (None, Some(n)) => take(n),
                        (None, None) => {}
                    }
                }
            }
        }
        next
    }

    /// Runs what is due at `now`: deferred keyframe requests and, every [`REPORT_INTERVAL`]
    /// per producer, a compound RR (one block per media SSRC that sent packets) + REMB
    /// (`max_bitrate` when set, else [`DEFAULT_REMB_BITRATE`]). Call it when `poll_timeout`
    /// says so; calling it more often is harmless.
    pub fn handle_timeout(&mut self, now: Instant, sink: &mut impl Sink) {
        self.tick(now);
        for (&id, p) in self.producers.iter_mut() {
            let sender_ssrc = p.sender_ssrc;
            for t in p.tracks.iter_mut() {
                if t.kf_pending
                    && t.ssrc.is_some()
                    && t.last_kf_request
                        .is_none_or(|l| now >= l + KEYFRAME_REQUEST_INTERVAL)
                {
                    send_keyframe_request(
                        t,
                        id,
                        sender_ssrc,
                        now,
                        &mut self.rtcp,
                        sink,
                        &mut self.stats,
                    );
                }
            }
            if now < p.next_report {
                continue;
            }
            p.next_report = if now >= p.next_report + REPORT_INTERVAL {
                now + REPORT_INTERVAL
            } else {
                p.next_report + REPORT_INTERVAL
            };
            let mut blocks: [ReportBlock; 8] = [ReportBlock::default(); 8];
            let mut ssrcs = [0u32; 8];
            let mut n = 0;
            for t in p.tracks.iter_mut() {
                let Some(ssrc) = t.ssrc else { continue };
                if !t.stats.active() || n == blocks.len() {
                    continue;
                }
                blocks[n] = t.stats.report(ssrc, now);
                ssrcs[n] = ssrc;
                n += 1;
            }
            if n == 0 {
                continue;
            }
            let bitrate = if p.max_bitrate > 0 {
                p.max_bitrate as u64
            } else {
                DEFAULT_REMB_BITRATE
            };
            self.rtcp.clear();
            rtcp::write_rr(&mut self.rtcp, sender_ssrc, &blocks[..n]);
            rtcp::write_remb(&mut self.rtcp, sender_ssrc, bitrate, &ssrcs[..n]);
            sink.send_rtcp(id, &self.rtcp);
        }
    }
}
