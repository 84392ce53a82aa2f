//! The RTP hot path: identify a producer packet, keep it, fan it out rewritten; and the replay
//! of the keyframe cache to a consumer that connects. Calls `feedback` (statically) for the
//! keyframe requests and upstream NACKs a packet triggers; `feedback` never calls back here.

use std::time::Instant;

use super::feedback;
use super::packet::{consumer_header, Frame, Out};
use super::state::{ConsumerTrackState, ProducerTrackState};
use super::{Router, RouterEvent, Sink, KEYFRAME_CACHE_MAX_PACKETS, MAX_UPSTREAM_NACK_GAP};
use crate::codec::{self, PayloadInfo};
use crate::media::{MediaKind, TransportId};
use crate::rtp;

/// Forwards one producer frame to one consumer track: starts the track at a keyframe (video)
/// or any packet (audio), injects parameter sets before an IDR when needed, rewrites, sends.
pub(super) fn deliver<S: Sink>(
    cid: TransportId,
    ct: &mut ConsumerTrackState,
    track: &ProducerTrackState,
    f: &Frame<'_>,
    info: PayloadInfo,
    out: &mut Out<'_, S>,
) {
    let mut starting = false;
    if !ct.started {
        if ct.cfg.kind == MediaKind::Video && !info.keyframe_start {
            return;
        }
        let new_off = ct.next_seq.wrapping_sub(f.seq());
        if new_off != ct.seq_off {
            ct.prev_seq_off = ct.seq_off;
            ct.seq_off = new_off;
            ct.off_since = ct.next_seq;
        }
        ct.start_ext = f.ext;
        ct.started = true;
        starting = true;
        if ct.ts_off.is_none() {
            ct.ts_off = Some(ct.ts_base.wrapping_sub(f.ts));
        }
    } else if f.ext < ct.start_ext {
        return;
    }
    let ts = f.ts.wrapping_add(ct.ts_off.unwrap_or(0));
    if info.idr_start && !info.has_sps && (starting || track.params_ts != Some(f.ts)) {
        if let Some(ps) = track.params.as_ref() {
            inject_params(cid, ct, ps, f, ts, out);
        }
    }
    let seq = f.seq().wrapping_add(ct.seq_off);
    let hdr = consumer_header(ct, seq, ts, f.marker);
    if out.send(cid, &hdr, f) {
        if seq.wrapping_sub(ct.next_seq) as i16 >= 0 {
            ct.next_seq = seq.wrapping_add(1);
        }
        ct.packets_sent = ct.packets_sent.wrapping_add(1);
        ct.octets_sent = ct.octets_sent.wrapping_add(f.payload.len() as u32);
    }
}

/// Sends SPS/PPS (VPS) as one aggregation packet just before the IDR `f`, and shifts the
/// track's sequence offset by one so the IDR follows it.
fn inject_params<S: Sink>(
    cid: TransportId,
    ct: &mut ConsumerTrackState,
    ps: &codec::ParamSets,
    f: &Frame<'_>,
    ts: u32,
    out: &mut Out<'_, S>,
) {
    // The aggregate goes at the end of the scratch buffer, the packet at its start.
    let split = out.scratch.len() / 2;
    let (head, tail) = out.scratch.split_at_mut(split);
    let Some(n) = ps.write_aggregate(tail) else {
        return;
    };
    let seq = f.seq().wrapping_add(ct.seq_off);
    let hdr = consumer_header(ct, seq, ts, false);
    let Some(len) = rtp::write_packet(head, &hdr, f.csrcs, &tail[..n], 0) else {
        return;
    };
    out.sink.send_rtp(cid, &head[..len]);
    out.stats.packets_out += 1;
    out.stats.bytes_out += len as u64;
    ct.packets_sent = ct.packets_sent.wrapping_add(1);
    ct.octets_sent = ct.octets_sent.wrapping_add(n as u32);
    ct.prev_seq_off = ct.seq_off;
    ct.seq_off = ct.seq_off.wrapping_add(1);
    ct.off_since = seq.wrapping_add(1);
    ct.injected = Some(seq);
    if seq.wrapping_sub(ct.next_seq) as i16 >= 0 {
        ct.next_seq = seq.wrapping_add(1);
    }
}

/// The restarted source's first media packet (`seq`, `ts` as sent): the shifts that make it
/// follow the track's last packet, one sequence number and the time between them later.
fn rebase(track: &mut ProducerTrackState, seq: u16, ts: u32, now: Instant) {
    track.rebase = false;
    let next_seq = track
        .seq
        .highest()
        .map_or(seq, |h| (h as u16).wrapping_add(1));
    track.seq_shift = next_seq.wrapping_sub(seq);
    let next_ts = match track.last_ts {
        Some((last, at)) => {
            let gap = now.saturating_duration_since(at).as_nanos();
            let ticks = gap * u128::from(track.cfg.codec.clock_rate.max(1)) / 1_000_000_000;
            last.wrapping_add(ticks.max(1) as u32)
        }
        None => ts,
    };
    track.ts_shift = next_ts.wrapping_sub(ts);
}

/// Which producer track a packet belongs to, and whether it is RTX.
fn identify(tracks: &mut [ProducerTrackState], ssrc: u32, pt: u8) -> Option<(usize, bool)> {
    for (i, t) in tracks.iter().enumerate() {
        if t.ssrc == Some(ssrc) {
            return Some((i, false));
        }
        if t.rtx_ssrc == Some(ssrc) {
            return Some((i, true));
        }
    }
    for (i, t) in tracks.iter_mut().enumerate() {
        if t.ssrc.is_none() && t.cfg.codec.payload_type == pt {
            t.ssrc = Some(ssrc);
            return Some((i, false));
        }
        if t.rtx_ssrc.is_none() && t.cfg.codec.rtx_payload_type == Some(pt) && t.ssrc != Some(ssrc)
        {
            t.rtx_ssrc = Some(ssrc);
            return Some((i, true));
        }
    }
    None
}

impl Router {
    /// Hot path. `pkt` is one decrypted RTP packet received on transport `from` (a producer).
    /// Malformed packets, unknown SSRCs/payload types and unknown transports are counted in
    /// [`RouterStats::rtp_dropped`]; duplicates (RTX of a packet already held) are ignored.
    pub fn handle_rtp(
        &mut self,
        now: Instant,
        from: TransportId,
        pkt: &[u8],
        sink: &mut impl Sink,
    ) {
        self.tick(now);
        let Some(prod) = self.producers.get_mut(&from) else {
            self.stats.rtp_dropped += 1;
            return;
        };
        let Ok(v) = rtp::parse(pkt) else {
            self.stats.rtp_dropped += 1;
            return;
        };
        let Some((ti, is_rtx)) = identify(&mut prod.tracks, v.ssrc, v.payload_type) else {
            self.stats.rtp_dropped += 1;
            return;
        };
        let (seq, payload) = if is_rtx {
            // RFC 4588: the original sequence number leads the payload. Shorter ones are
            // padding-only probes: not media, not an error.
            match v.payload {
                [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]), rest),
                _ => return,
            }
        } else {
            (v.seq, v.payload)
        };
        self.stats.packets_in += 1;
        self.stats.bytes_in += pkt.len() as u64;
        let counters = &mut prod.tracks[ti].counters;
        counters.packets_in += 1;
        counters.bytes_in += pkt.len() as u64;
        if !prod.started {
            prod.started = true;
            self.events
                .push_back(RouterEvent::ProducerStarted { producer: from });
        }
        let sender_ssrc = prod.sender_ssrc;
        let track = &mut prod.tracks[ti];
        if track.rebase {
            if is_rtx {
                return; // the old source's retransmission, or the new one's before its media
            }
            rebase(track, seq, v.timestamp, now);
        }
        let seq = seq.wrapping_add(track.seq_shift);
        let ts = v.timestamp.wrapping_add(track.ts_shift);
        if !is_rtx {
            track.last_ts = Some((ts, now));
        }
        let prev_highest = track.seq.highest();
        let ext = track.seq.unwrap(seq);
        if !track
            .buffer
            .insert(ext, ts, v.marker, v.csrcs, payload, v.padding)
        {
            return; // duplicate
        }
        let since_epoch = now.saturating_duration_since(self.epoch.unwrap_or(now));
        track.stats.on_packet(ext, ts, since_epoch, is_rtx);
        if track.kf_pending && track.ssrc.is_some() && track.last_kf_request.is_none() {
            // First packet of a track someone already asked a keyframe of.
            feedback::send_keyframe_request(
                track,
                from,
                sender_ssrc,
                now,
                &mut self.rtcp,
                sink,
                &mut self.stats,
            );
        }
        if let (Some(h), true) = (prev_highest, track.nack_upstream && !is_rtx) {
            if ext > h + 1 && ext - h - 1 <= MAX_UPSTREAM_NACK_GAP {
                feedback::nack_upstream(track, from, sender_ssrc, h + 1..ext, &mut self.rtcp, sink);
            }
        }
        let info = codec::inspect(track.codec(), payload);
        if let Some(ps) = track.params.as_mut() {
            let before = ps.generation();
            ps.update_from_payload(payload);
            if info.has_sps {
                track.params_ts = Some(ts);
            }
            if ps.generation() != before && ps.complete() {
                self.events.push_back(RouterEvent::ParameterSets {
                    producer: from,
                    track: ti,
                    nals: ps.nals(),
                });
            }
        }
        if info.keyframe_start {
            // A multi-packet keyframe starts at its first keyframe-start packet: keep that one.
            let same_frame = track
                .last_keyframe
                .and_then(|k| track.buffer.get(k))
                .is_some_and(|k| k.timestamp == ts);
            if !same_frame {
                track.last_keyframe = Some(ext);
            }
        }
        let kind_muted = match track.cfg.kind {
            MediaKind::Video => prod.video_muted,
            MediaKind::Audio => prod.audio_muted,
        };
        let frame = Frame {
            ext,
            ts,
            marker: v.marker,
            csrcs: v.csrcs,
            payload,
            padding: v.padding,
        };
        let track = &prod.tracks[ti];
        let before = (self.stats.packets_out, self.stats.bytes_out);
        if !kind_muted {
            let mut out = Out {
                scratch: &mut self.scratch,
                sink: &mut *sink,
                stats: &mut self.stats,
            };
            for cid in &prod.consumers {
                let Some(c) = self.consumers.get_mut(cid) else {
                    continue;
                };
                if !c.connected {
                    continue;
                }
                let muted = match track.cfg.kind {
                    MediaKind::Video => c.video_muted,
                    MediaKind::Audio => c.audio_muted,
                };
                if muted {
                    continue;
                }
                for ct in c.tracks.iter_mut().filter(|t| t.cfg.producer_track == ti) {
                    let was_started = ct.started;
                    deliver(*cid, ct, track, &frame, info, &mut out);
                    if !was_started && ct.started && ct.cfg.kind == MediaKind::Video {
                        self.join.joined(&mut c.join_from, &mut c.joined, now);
                    }
                }
            }
        }
        let track = &mut prod.tracks[ti];
        // Deliveries counted once per incoming packet, not per consumer.
        track.counters.packets_out += self.stats.packets_out - before.0;
        track.counters.bytes_out += self.stats.bytes_out - before.1;
        if info.idr_start && track.params.as_ref().is_some_and(|p| p.complete()) {
            // Every consumer that needed parameter sets for this frame got them.
            track.params_ts = Some(ts);
        }
    }

    /// The consumer's transport is connected (DTLS done): start sending. Each video track gets
    /// the cached keyframe (and what followed it) at once when the cache is usable, and a
    /// keyframe request goes to the producer in any case (rate-limited, deferred if needed).
    pub fn consumer_connected(&mut self, id: TransportId, now: Instant, sink: &mut impl Sink) {
        self.tick(now);
        let Some(c) = self.consumers.get_mut(&id) else {
            return;
        };
        c.connected = true;
        if !c.joined && c.join_from.is_none() {
            c.join_from = Some(now);
        }
        let Some(prod) = self.producers.get_mut(&c.producer) else {
            return;
        };
        let producer_id = c.producer;
        let mut out = Out {
            scratch: &mut self.scratch,
            sink: &mut *sink,
            stats: &mut self.stats,
        };
        let mut wants_keyframe = Vec::new();
        for ct in c.tracks.iter_mut() {
            let ti = ct.cfg.producer_track;
            let Some(track) = prod.tracks.get(ti) else {
                continue;
            };
            if ct.cfg.kind != MediaKind::Video {
                continue;
            }
            wants_keyframe.push(ti);
            let muted = prod.video_muted || c.video_muted;
            if !muted && !ct.started {
                let before = (out.stats.packets_out, out.stats.bytes_out);
                replay_cache(id, ct, track, &mut out);
                let sent = (
                    out.stats.packets_out - before.0,
                    out.stats.bytes_out - before.1,
                );
                if ct.started {
                    self.join.joined(&mut c.join_from, &mut c.joined, now);
                }
                if let Some(t) = prod.tracks.get_mut(ti) {
                    t.counters.packets_out += sent.0;
                    t.counters.bytes_out += sent.1;
                }
            }
        }
        let sender_ssrc = prod.sender_ssrc;
        for ti in wants_keyframe {
            if let Some(track) = prod.tracks.get_mut(ti) {
                feedback::request_keyframe(
                    track,
                    producer_id,
                    sender_ssrc,
                    now,
                    &mut self.rtcp,
                    sink,
                    &mut self.stats,
                );
            }
        }
    }
}

/// Sends the producer's last keyframe and every packet after it to a consumer track that is
/// waiting for one, if the cache is usable: the keyframe's packets (start to marker) are all
/// held and the whole run is at most [`KEYFRAME_CACHE_MAX_PACKETS`]. Otherwise nothing.
fn replay_cache<S: Sink>(
    cid: TransportId,
    ct: &mut ConsumerTrackState,
    track: &ProducerTrackState,
    out: &mut Out<'_, S>,
) {
    let (Some(k), Some(h)) = (track.last_keyframe, track.seq.highest()) else {
        return;
    };
    if h < k || h - k >= KEYFRAME_CACHE_MAX_PACKETS || h - k >= track.buffer.capacity() as u64 {
        return;
    }
    // The keyframe itself must be complete.
    let mut e = k;
    loop {
        match track.buffer.get(e) {
            Some(p) if p.marker => break,
            Some(_) if e < h => e += 1,
            _ => return,
        }
    }
    for e in k..=h {
        if let Some(p) = track.buffer.get(e) {
            let f = Frame::from(p);
            let info = codec::inspect(track.codec(), f.payload);
            deliver(cid, ct, track, &f, info, out);
        }
    }
}
