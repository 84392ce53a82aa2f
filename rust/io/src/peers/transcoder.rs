//! An audio transcoder as a peer of its worker (SPEC 11): a consumer of one source audio track
//! (AAC or G.711) that is also the producer of an Opus track of the same stream.
//!
//! It joins the router twice. As a consumer, like a recorder: the router hands it the source
//! track's RTP and translated sender reports, which `pms_core::transcode::Transcoder` turns into
//! Opus RTP and sender reports. As a producer track: the Opus track sits at its own index in the
//! stream producer's tracks (`Router::set_producer_track`), and the Opus packets enter the
//! router under the producer's id at the end of the poll iteration (`on_flush`), so players
//! consume it like any Opus track: NACKs from its buffer, mute, stats, SR translation.
//!
//! Life: the engine starts it with the first WebRTC player that needs it and counts players in
//! the registry's `Transcoding` entry. Once a second it looks there; after
//! [`linger`](TranscoderSpec::linger) without players it clears the entry's peer and closes
//! (`idle`), under the registry's lock, so a player that arrives meanwhile either finds it
//! running or starts a new one. The source ending closes it (`producer-closed`). Its Opus track
//! stays in the router (silent) for the next transcoder of the stream.
//!
//! FEC: once a second the encoder's expected loss is set to the worst `fraction lost` its
//! players last reported, so in-band FEC data is added when (and as much as) they lose packets.
//!
//! CPU: the time spent in the transcoder is measured with the thread's CPU clock, per packet,
//! into the `transcode_cpu_us` counter.

use std::time::{Duration, Instant};

use pms_core::media::{ConsumerTrack, ProducerTrack, TransportId};
use pms_core::transcode::Transcoder;

use crate::stats;
use crate::worker::{MediaOut, MediaSink, Peer, PeerCtx};

/// How often the transcoder looks for players and publishes its counters.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// What the engine gives a transcoder.
pub(crate) struct TranscoderSpec {
    pub stream: String,
    pub producer: TransportId,
    /// The Opus track and its producer track index.
    pub index: usize,
    pub opus_track: ProducerTrack,
    /// Our consumer track of the source.
    pub consumer: ConsumerTrack,
    /// How long it runs on without players.
    pub linger: Duration,
}

pub(crate) struct TranscoderPeer {
    spec: TranscoderSpec,
    core: Transcoder,
    flush_asked: bool,
    idle_since: Option<Instant>,
    /// Thread CPU time not yet added to the counters (ns), and counters already added.
    cpu_ns: u64,
    corrupt_reported: u64,
    packets_reported: u64,
    /// The loss (%) the encoder's in-band FEC is tuned for now.
    fec_loss: i32,
}

/// The router's output for the transcoder while it feeds the Opus track: nothing is addressed
/// to it then (it consumes the source track, not the Opus one).
struct Nowhere;

impl MediaSink for Nowhere {
    fn send_media(&mut self, _: &mut MediaOut<'_>, _: &[u8], _: bool) {}
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own; the clock id is a constant.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if r != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

impl TranscoderPeer {
    pub(crate) fn new(spec: TranscoderSpec, core: Transcoder) -> TranscoderPeer {
        TranscoderPeer {
            spec,
            core,
            flush_asked: false,
            idle_since: None,
            cpu_ns: 0,
            corrupt_reported: 0,
            packets_reported: 0,
            fec_loss: 0,
        }
    }

    fn publish_counters(&mut self, ctx: &mut PeerCtx<'_>) {
        let s = self.core.stats();
        let us = self.cpu_ns / 1000;
        self.cpu_ns -= us * 1000;
        let c = ctx.counters();
        c.add(stats::STAT_TRANSCODE_CPU_US, us);
        c.add(
            stats::STAT_TRANSCODE_CORRUPT,
            s.frames_corrupt - self.corrupt_reported,
        );
        c.add(
            stats::STAT_TRANSCODE_PACKETS,
            s.packets_out - self.packets_reported,
        );
        self.corrupt_reported = s.frames_corrupt;
        self.packets_reported = s.packets_out;
    }

    /// Whether players still need the Opus track (the registry's count); clears our entry's
    /// peer when we are to stop. Under the registry's lock.
    fn still_needed(&mut self, ctx: &mut PeerCtx<'_>, now: Instant) -> bool {
        let me = ctx.id();
        let mut reg = ctx.registry();
        let Some(t) = reg
            .streams
            .get_mut(&self.spec.stream)
            .filter(|s| s.producer == self.spec.producer)
            .and_then(|s| s.transcoded.iter_mut().find(|t| t.index == self.spec.index))
            .filter(|t| t.peer == Some(me))
        else {
            return false;
        };
        if !t.players.is_empty() {
            self.idle_since = None;
            return true;
        }
        let since = *self.idle_since.get_or_insert(now);
        if now.saturating_duration_since(since) < self.spec.linger {
            return true;
        }
        t.peer = None;
        false
    }
}

/// Clears this transcoder from its stream's registry entry (the next player starts a new one).
fn forget(ctx: &mut PeerCtx<'_>, stream: &str) {
    let id = ctx.id();
    let mut reg = ctx.registry();
    if let Some(s) = reg.streams.get_mut(stream) {
        for t in &mut s.transcoded {
            if t.peer == Some(id) {
                t.peer = None;
            }
        }
    }
}

impl MediaSink for TranscoderPeer {
    fn send_media(&mut self, out: &mut MediaOut<'_>, pkt: &[u8], rtcp: bool) {
        let t0 = thread_cpu_ns();
        if rtcp {
            self.core.handle_rtcp(pkt);
        } else {
            self.core.handle_rtp(pkt);
        }
        self.cpu_ns += thread_cpu_ns().saturating_sub(t0);
        if self.core.has_output() && !self.flush_asked {
            self.flush_asked = true;
            out.flush_later();
        }
    }
}

impl Peer for TranscoderPeer {
    fn start(&mut self, ctx: &mut PeerCtx<'_>) -> Result<(), &'static str> {
        let (id, now) = (ctx.id(), ctx.now());
        let s = &self.spec;
        let router = ctx.router();
        let joined = router
            .set_producer_track(s.producer, s.index, s.opus_track.clone())
            .and_then(|()| router.add_consumer(id, s.producer, vec![s.consumer.clone()], now));
        if let Err(e) = joined {
            log::info!(target: "pms_io::transcode", "transcoder {id} of {}: {e}", s.stream);
            forget(ctx, &self.spec.stream);
            return Err("producer-closed");
        }
        ctx.with_router(self, |r, out| r.consumer_connected(id, now, out));
        ctx.counters().add(stats::STAT_TRANSCODERS, 1);
        ctx.set_deadline(Some(now + CHECK_EVERY));
        log::info!(
            target: "pms_io::transcode",
            "transcoder {id}: {} {} -> opus ({} channel(s)), track {}",
            self.spec.stream,
            self.core.source().codec.encoding_name(),
            self.core.channels(),
            self.spec.index
        );
        Ok(())
    }

    fn on_flush(&mut self, ctx: &mut PeerCtx<'_>) {
        self.flush_asked = false;
        let (now, producer) = (ctx.now(), self.spec.producer);
        let t0 = thread_cpu_ns();
        let core = &mut self.core;
        ctx.with_router(&mut Nowhere, |r, out| {
            core.drain(|o| {
                if o.rtcp {
                    r.handle_rtcp(now, producer, o.data, out);
                } else {
                    r.handle_rtp(now, producer, o.data, out);
                }
            })
        });
        self.cpu_ns += thread_cpu_ns().saturating_sub(t0);
    }

    fn on_deadline(&mut self, ctx: &mut PeerCtx<'_>) {
        let now = ctx.now();
        self.publish_counters(ctx);
        // In-band FEC for the loss the players report (the worst of their last RRs).
        let loss = ctx.router().track_loss(self.spec.producer, self.spec.index);
        let percent = loss.map_or(0, |f| (i32::from(f) * 100 + 255) / 256);
        if percent != self.fec_loss {
            self.fec_loss = percent;
            self.core.set_expected_loss(percent);
        }
        if !self.still_needed(ctx, now) {
            ctx.close_me("idle");
            return;
        }
        ctx.set_deadline(Some(now + CHECK_EVERY));
    }

    fn close(&mut self, ctx: &mut PeerCtx<'_>, reason: &'static str) {
        let id = ctx.id();
        self.publish_counters(ctx);
        ctx.counters().sub(stats::STAT_TRANSCODERS, 1);
        forget(ctx, &self.spec.stream);
        log::info!(
            target: "pms_io::transcode",
            "transcoder {id} of {} ends ({reason}): {:?}",
            self.spec.stream,
            self.core.stats()
        );
    }
}
