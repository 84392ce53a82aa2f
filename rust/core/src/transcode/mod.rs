//! # Audio for browsers: AAC and G.711 to Opus (SPEC 11)
//!
//! A [`Transcoder`] turns one source audio track, as RTP the router forwards to a consumer, into
//! an Opus track as RTP a producer sends: depacketize ([`depack`]: RFC 3640 AAC-hbr, which is
//! also what the GB28181 gateway makes of ADTS in PS; G.711), decode ([`decode`]: symphonia's
//! AAC-LC decoder, the G.711 tables), resample to 48 kHz and encode ([`encode`]: rubato's FFT
//! resampler, libopus with 20 ms frames and in-band FEC), packetize (RFC 7587: one frame per
//! packet). Sans-IO like the rest of the core: packets in, packets out, no clock.
//!
//! Timing comes from the source's RTP timestamps ([`encode`] explains runs, gaps and overlap),
//! and each sender report of the source becomes one of the Opus track with the same NTP time
//! and the mapped RTP time, so a player synchronises the Opus track with the video exactly as
//! it would have the source audio.
//!
//! Bad input never panics and never stops the track: a packet that repeats or comes after a
//! later one is dropped (audio is not worth a jitter buffer here: the router's consumer side
//! already sees packets in order unless the network reorders them); a malformed AU-headers
//! section, an AU that does not decode, or a decoder panic count as corrupt and the next frame
//! decodes afresh; a change of decoded rate or channel count rebuilds the resampler and keeps
//! the encoder (mixing to its channel count) and the Opus timeline.
//!
//! No allocation per packet except symphonia's copy of each AAC frame into its own packet type.

pub mod decode;
pub mod depack;
pub mod encode;
pub mod fuzz;

use crate::media::CodecName;
use crate::rtcp::{self, Rtcp};
use crate::rtp::{self, SeqUnwrapper};
use decode::{AudioDecoder, DecodeError, Pcm};
use depack::AuHeaders;
use encode::{Encoded, OpusPipeline};

pub use encode::EncoderError;
pub use fuzz::fuzz_check;

/// RTP clock and channels of the Opus track as SDP states them (`opus/48000/2`).
pub const OPUS_CLOCK: u32 = 48_000;
pub const OPUS_SDP_CHANNELS: u16 = 2;
/// Output packets held between two drains; more are dropped (a caller that never drains).
const MAX_QUEUED: usize = 64;

/// The source track as negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    pub codec: CodecName,
    pub clock_rate: u32,
    pub fmtp: String,
}

/// The Opus track we send: our SSRC, payload type, first sequence number and timestamp base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusSpec {
    pub ssrc: u32,
    pub payload_type: u8,
    pub first_seq: u16,
    pub ts_base: u32,
}

/// Why a transcoder cannot be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum TranscodeError {
    /// Not AAC or G.711, or an AAC config the decoder cannot take (missing, more than two
    /// channels, a rate out of range).
    Unsupported(String),
    Encoder(EncoderError),
}

impl std::fmt::Display for TranscodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TranscodeError::Unsupported(m) => f.write_str(m),
            TranscodeError::Encoder(e) => write!(f, "opus encoder: {e}"),
        }
    }
}

impl std::error::Error for TranscodeError {}

/// Whether a source codec is one the transcoder takes.
pub fn transcodable(codec: CodecName) -> bool {
    matches!(codec, CodecName::Aac | CodecName::Pcma | CodecName::Pcmu)
}

/// Counters of one transcoder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TranscodeStats {
    pub packets_in: u64,
    /// Packets dropped as repeated or late.
    pub packets_late: u64,
    pub frames_decoded: u64,
    /// Frames (or packets whose AU headers are malformed) that did not decode.
    pub frames_corrupt: u64,
    /// Of those, frames on which the decoder panicked (caught).
    pub decoder_panics: u64,
    pub packets_out: u64,
    pub sender_reports: u64,
    /// Runs after the first (gaps or restarts of the source).
    pub gaps: u64,
    /// Frames dropped for overlapping what was already sent.
    pub overlaps: u64,
    /// Changes of decoded rate or channel count.
    pub reconfigs: u64,
}

/// One output packet: RTP or RTCP (a sender report), valid until the next call.
pub struct Output<'a> {
    pub rtcp: bool,
    pub data: &'a [u8],
}

/// See the module doc.
pub struct Transcoder {
    source: SourceSpec,
    opus: OpusSpec,
    decoder: AudioDecoder,
    au: Option<AuHeaders>,
    pipeline: OpusPipeline,
    pcm: Pcm,
    seq_in: SeqUnwrapper,
    /// Extended source timestamp of the newest packet (`ts` unwrapped around it).
    last_ts: Option<(u32, i64)>,
    next_seq: u16,
    octets_sent: u32,
    packets_out: u64,
    /// Source clock ticks of one AAC frame (as the last decoded one lasted).
    frame_ticks: i64,
    /// Output packets (reused buffers) and how many of them are ready.
    queue: Vec<(bool, Vec<u8>)>,
    ready: usize,
    stats: TranscodeStats,
}

impl Transcoder {
    pub fn new(source: SourceSpec, opus: OpusSpec) -> Result<Transcoder, TranscodeError> {
        let decoder =
            AudioDecoder::new(source.codec, source.clock_rate, &source.fmtp).ok_or_else(|| {
                TranscodeError::Unsupported(format!(
                    "cannot decode {} ({}; {})",
                    source.codec.encoding_name(),
                    source.clock_rate,
                    source.fmtp
                ))
            })?;
        let au = if source.codec == CodecName::Aac {
            Some(AuHeaders::from_fmtp(&source.fmtp).ok_or_else(|| {
                TranscodeError::Unsupported(format!("bad AU header sizes in {:?}", source.fmtp))
            })?)
        } else {
            None
        };
        let pipeline = OpusPipeline::new(decoder.channels(), source.clock_rate, opus.ts_base)
            .map_err(TranscodeError::Encoder)?;
        Ok(Transcoder {
            decoder,
            au,
            pipeline,
            pcm: Pcm::default(),
            seq_in: SeqUnwrapper::default(),
            last_ts: None,
            next_seq: opus.first_seq,
            octets_sent: 0,
            packets_out: 0,
            frame_ticks: i64::from(depack::AAC_FRAME),
            queue: Vec::new(),
            ready: 0,
            stats: TranscodeStats::default(),
            source,
            opus,
        })
    }

    /// Channels the Opus encoder codes (1 or 2; SDP says 2 either way).
    pub fn channels(&self) -> usize {
        self.pipeline.channels()
    }

    /// The loss (%) the in-band FEC is tuned for: the worst the players report.
    pub fn set_expected_loss(&mut self, percent: i32) -> bool {
        self.pipeline.set_expected_loss(percent)
    }

    /// libopus complexity 0-10 (benchmarks; `encode::COMPLEXITY` by default).
    pub fn set_complexity(&mut self, complexity: i32) -> bool {
        self.pipeline.set_complexity(complexity)
    }

    pub fn source(&self) -> &SourceSpec {
        &self.source
    }

    pub fn stats(&self) -> TranscodeStats {
        TranscodeStats {
            gaps: self.pipeline.gaps,
            overlaps: self.pipeline.overlaps,
            reconfigs: self.pipeline.reconfigs,
            packets_out: self.packets_out,
            ..self.stats
        }
    }

    /// The extended form of source timestamp `ts`, around the newest one seen.
    fn extend(&self, ts: u32) -> i64 {
        match self.last_ts {
            None => i64::from(ts),
            Some((last, ext)) => ext + i64::from(ts.wrapping_sub(last) as i32),
        }
    }

    /// One source RTP packet. Opus packets it completes wait for [`drain`](Self::drain).
    pub fn handle_rtp(&mut self, pkt: &[u8]) {
        let Ok(v) = rtp::parse(pkt) else {
            self.stats.frames_corrupt += 1;
            return;
        };
        self.stats.packets_in += 1;
        let prev = self.seq_in.highest();
        let ext_seq = self.seq_in.unwrap(v.seq);
        if prev.is_some_and(|h| ext_seq <= h) {
            self.stats.packets_late += 1;
            return;
        }
        let place = self.extend(v.timestamp);
        self.last_ts = Some((v.timestamp, place));
        let Self {
            decoder,
            au,
            pipeline,
            pcm,
            stats,
            queue,
            ready,
            next_seq,
            octets_sent,
            packets_out,
            frame_ticks,
            opus,
            source,
            ..
        } = self;
        let mut emit = |e: Encoded<'_>| {
            push_rtp(queue, ready, opus, next_seq, octets_sent, packets_out, &e);
        };
        // Decodes one frame at `place`; gives its duration in source clock ticks.
        let clock = i64::from(source.clock_rate.max(1));
        let mut one = |place: i64, frame: &[u8]| -> Option<i64> {
            match decoder.decode(frame, pcm) {
                Ok(()) => {
                    stats.frames_decoded += 1;
                    pipeline.push(place, pcm, &mut emit);
                    Some(pcm.frames as i64 * clock / i64::from(pcm.rate.max(1)))
                }
                Err(e) => {
                    stats.frames_corrupt += 1;
                    if e == DecodeError::Panicked {
                        stats.decoder_panics += 1;
                    }
                    None
                }
            }
        };
        match au {
            None => {
                one(place, v.payload);
            }
            Some(h) => {
                // AUs after the first are `offset` frames later; a frame's length is known once
                // one decoded (AAC-LC: 1024 samples at the core rate).
                let r = h.for_each_au(v.payload, |offset, frame| {
                    if let Some(t) = one(place + i64::from(offset) * *frame_ticks, frame) {
                        *frame_ticks = t;
                    }
                });
                if r.is_err() {
                    self.stats.frames_corrupt += 1;
                }
            }
        }
    }

    /// RTCP of the source (as the consumer got it): each sender report becomes one of the Opus
    /// track, queued for [`drain`](Self::drain).
    pub fn handle_rtcp(&mut self, pkt: &[u8]) {
        for item in rtcp::parse_compound(pkt) {
            let Ok(Rtcp::SenderReport {
                ntp_time, rtp_time, ..
            }) = item
            else {
                continue;
            };
            if self.last_ts.is_none() {
                continue;
            }
            let place = self.extend(rtp_time);
            let Some(ts) = self.pipeline.opus_timestamp(place) else {
                continue;
            };
            let (ssrc, packets, octets) =
                (self.opus.ssrc, self.packets_out as u32, self.octets_sent);
            if let Some(buf) = next_slot(&mut self.queue, &mut self.ready, true) {
                rtcp::write_sr(buf, ssrc, ntp_time, ts, packets, octets);
                self.stats.sender_reports += 1;
            }
        }
    }

    /// Hands each queued output packet to `f`, oldest first, and empties the queue.
    pub fn drain(&mut self, mut f: impl FnMut(Output<'_>)) {
        for (rtcp, data) in &self.queue[..self.ready] {
            f(Output { rtcp: *rtcp, data });
        }
        self.ready = 0;
    }

    /// Whether output waits for [`drain`](Self::drain).
    pub fn has_output(&self) -> bool {
        self.ready > 0
    }
}

/// The next free output buffer, cleared (`None`: the queue is full).
fn next_slot<'a>(
    queue: &'a mut Vec<(bool, Vec<u8>)>,
    ready: &mut usize,
    rtcp: bool,
) -> Option<&'a mut Vec<u8>> {
    if *ready >= MAX_QUEUED {
        return None;
    }
    if queue.len() <= *ready {
        queue.push((rtcp, Vec::with_capacity(256)));
    }
    let slot = &mut queue[*ready];
    *ready += 1;
    slot.0 = rtcp;
    slot.1.clear();
    Some(&mut slot.1)
}

fn push_rtp(
    queue: &mut Vec<(bool, Vec<u8>)>,
    ready: &mut usize,
    opus: &OpusSpec,
    next_seq: &mut u16,
    octets: &mut u32,
    packets: &mut u64,
    e: &Encoded<'_>,
) {
    let Some(buf) = next_slot(queue, ready, false) else {
        return;
    };
    buf.extend_from_slice(&[0x80, opus.payload_type & 0x7F]);
    buf.extend_from_slice(&next_seq.to_be_bytes());
    buf.extend_from_slice(&e.timestamp.to_be_bytes());
    buf.extend_from_slice(&opus.ssrc.to_be_bytes());
    buf.extend_from_slice(e.payload);
    *next_seq = next_seq.wrapping_add(1);
    *octets = octets.wrapping_add(e.payload.len() as u32);
    *packets += 1;
}

#[cfg(test)]
mod tests;
