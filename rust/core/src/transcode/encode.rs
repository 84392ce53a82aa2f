//! Planar PCM at the source's rate to Opus RTP at 48 kHz: rubato's FFT resampler (fixed chunks
//! of about 10 ms), a FIFO of interleaved 48 kHz samples, libopus (20 ms frames, in-band FEC),
//! and the timing that keeps the Opus track on the source's clock.
//!
//! ## Timing
//!
//! Every source sample has a place on the source's RTP clock (the frame's timestamp plus its
//! index); the Opus timestamp of a place is `base + (place - origin) * 48000 / clock`, fixed
//! from the first frame on, so lip sync with the video is the source's own. A *run* is a stretch
//! of frames that follow each other: a frame that starts where the previous one ended (within
//! [`TOLERANCE_MS`]) continues the run; one that starts later ends it (the partial Opus frame is
//! padded with silence and sent) and starts a new run at its own place: a gap in the source is
//! a gap in the Opus timestamps (the player conceals it), never a shift of what follows. One
//! that starts earlier overlaps what was sent and is dropped, unless it is more than a second
//! early (a source that restarted its clock): then a new run starts. A run's first Opus packet
//! is placed earlier by the resampler's delay and the encoder's lookahead, so a sample comes out
//! of the player's decoder at its own place. Within a run nothing is re-timed, so nothing drifts;
//! a source whose timestamps drift against its sample count is re-synchronised by the tolerance.

use std::fmt;

use opus::{Application, Bitrate, Channels, Encoder};
use rubato::{FftFixedInOut, Resampler};

use super::decode::Pcm;

/// Opus frame: 20 ms at 48 kHz.
pub const OPUS_FRAME: usize = 960;
/// A frame this close to where the previous one ended continues the run.
pub const TOLERANCE_MS: i64 = 20;
/// Bitrate per channel count (bit/s): speech and music at WebRTC's usual quality.
pub const MONO_BITRATE: i32 = 32_000;
pub const STEREO_BITRATE: i32 = 64_000;
/// libopus complexity (0-10). 5 keeps quality close to 10 at about half the CPU; see
/// bench/transcode for the figures.
pub const COMPLEXITY: i32 = 5;
/// Expected loss (%) the in-band FEC starts with: libopus adds FEC data (and keeps to its
/// SILK/hybrid modes, several times the CPU of CELT) only when this is above 0, so it follows
/// the loss players report ([`OpusPipeline::set_expected_loss`]), as libwebrtc's Opus does.
pub const FEC_LOSS_PERCENT: i32 = 0;
/// The most loss the FEC is tuned for.
pub const MAX_FEC_LOSS_PERCENT: i32 = 30;
/// Largest Opus packet we ask for (20 ms at 64 kbit/s is ~160 bytes).
pub const MAX_OPUS_PACKET: usize = 1275;

/// The encoder could not be made (libopus refused the settings: a bug, not input).
#[derive(Debug)]
pub struct EncoderError(pub String);

impl fmt::Display for EncoderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One encoded Opus frame and its RTP timestamp.
pub struct Encoded<'a> {
    pub timestamp: u32,
    pub payload: &'a [u8],
}

struct Run {
    /// Source clock place (extended) where the run started, and samples of the run so far.
    start: i64,
    samples: u64,
    /// Opus timestamp (extended) of `fifo[0]`.
    fifo_ts: i64,
}

/// PCM to Opus frames, with the timing of the module doc.
pub struct OpusPipeline {
    encoder: Encoder,
    channels: usize,
    lookahead: i64,
    clock: i64,
    /// Source place of the first frame ever and the Opus timestamp it maps to.
    origin: Option<i64>,
    base: u32,
    run: Option<Run>,
    had_run: bool,
    /// Resampler for the current input rate/channels (`None`: 48 kHz, or none yet).
    resampler: Option<FftFixedInOut<f32>>,
    input: (u32, usize),
    /// Per channel: samples waiting for a full resampler chunk, and the resampler's output.
    stage: [Vec<f32>; 2],
    resampled: [Vec<f32>; 2],
    /// Interleaved 48 kHz samples at the encoder's channel count.
    fifo: Vec<f32>,
    packet: Vec<u8>,
    /// Frames dropped because they overlapped what was already sent.
    pub overlaps: u64,
    /// Runs started after the first (gaps and restarts).
    pub gaps: u64,
    /// Resampler rebuilds for a new input rate or channel count after the first.
    pub reconfigs: u64,
}

impl OpusPipeline {
    /// An encoder of `channels` (1 or 2) for a source whose RTP clock is `clock` Hz; Opus
    /// timestamps start at `base`.
    pub fn new(channels: usize, clock: u32, base: u32) -> Result<Self, EncoderError> {
        let channels = channels.clamp(1, 2);
        let err = |e: opus::Error| EncoderError(e.to_string());
        let ch = if channels == 2 {
            Channels::Stereo
        } else {
            Channels::Mono
        };
        let mut encoder = Encoder::new(48_000, ch, Application::Audio).map_err(err)?;
        let bitrate = if channels == 2 {
            STEREO_BITRATE
        } else {
            MONO_BITRATE
        };
        encoder.set_bitrate(Bitrate::Bits(bitrate)).map_err(err)?;
        encoder.set_inband_fec(true).map_err(err)?;
        encoder
            .set_packet_loss_perc(FEC_LOSS_PERCENT)
            .map_err(err)?;
        encoder.set_complexity(COMPLEXITY).map_err(err)?;
        let lookahead = encoder.get_lookahead().map_err(err)? as i64;
        Ok(OpusPipeline {
            encoder,
            channels,
            lookahead,
            clock: i64::from(clock.max(1)),
            origin: None,
            base,
            run: None,
            had_run: false,
            resampler: None,
            input: (0, 0),
            stage: [Vec::with_capacity(4096), Vec::with_capacity(4096)],
            resampled: [vec![0.0; 4096], vec![0.0; 4096]],
            fifo: Vec::with_capacity(8 * OPUS_FRAME * 2),
            packet: vec![0; MAX_OPUS_PACKET],
            overlaps: 0,
            gaps: 0,
            reconfigs: 0,
        })
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The loss (%) the in-band FEC is tuned for (the players' worst report), capped at
    /// [`MAX_FEC_LOSS_PERCENT`].
    pub fn set_expected_loss(&mut self, percent: i32) -> bool {
        let p = percent.clamp(0, MAX_FEC_LOSS_PERCENT);
        self.encoder.set_packet_loss_perc(p).is_ok()
    }

    /// libopus complexity 0-10 (benchmarks; [`COMPLEXITY`] by default).
    pub fn set_complexity(&mut self, complexity: i32) -> bool {
        self.encoder.set_complexity(complexity.clamp(0, 10)).is_ok()
    }

    /// The Opus timestamp (extended) of source place `place`.
    fn map(&self, place: i64) -> i64 {
        let origin = self.origin.unwrap_or(place);
        let d = i128::from(place - origin) * 48_000;
        i64::from(self.base) + d.div_euclid(i128::from(self.clock)) as i64
    }

    /// The Opus RTP timestamp of a source place (for sender reports).
    pub fn opus_timestamp(&self, place: i64) -> Option<u32> {
        self.origin.map(|_| self.map(place) as u32)
    }

    /// Whether a frame was ever placed (the mapping exists).
    pub fn started(&self) -> bool {
        self.origin.is_some()
    }

    /// Feeds one decoded frame that starts at source place `place` (extended source RTP
    /// timestamp); `emit` gets each Opus frame it completes.
    pub fn push(&mut self, place: i64, pcm: &Pcm, emit: &mut dyn FnMut(Encoded<'_>)) {
        if pcm.frames == 0 || pcm.rate == 0 {
            return;
        }
        self.origin.get_or_insert(place);
        if self.input != (pcm.rate, pcm.channels) {
            if self.input != (0, 0) {
                self.reconfigs += 1;
            }
            self.end_run(emit);
            self.input = (pcm.rate, pcm.channels);
            self.resampler = None;
        }
        if let Some(run) = &self.run {
            let expected = run.start
                + (i128::from(run.samples) * i128::from(self.clock) / i128::from(pcm.rate)) as i64;
            let tol = self.clock * TOLERANCE_MS / 1000;
            let d = place - expected;
            if d > tol || d < -self.clock {
                self.end_run(emit);
            } else if d < -tol {
                self.overlaps += 1;
                return;
            }
        }
        if self.run.is_none() {
            self.start_run(place, pcm);
        }
        if let Some(run) = self.run.as_mut() {
            run.samples += pcm.frames as u64;
        }
        if self.resampler.is_none() {
            append(
                &mut self.fifo,
                self.channels,
                pcm.planes.each_ref().map(|p| &p[..]),
                pcm.channels,
                pcm.frames,
            );
        } else {
            self.resample(pcm);
        }
        self.encode_ready(emit);
    }

    fn start_run(&mut self, place: i64, pcm: &Pcm) {
        if self.had_run {
            self.gaps += 1;
        }
        let delay = if pcm.rate == 48_000 {
            self.resampler = None;
            0
        } else {
            let chunk_in = (pcm.rate as usize / 100).max(1);
            match FftFixedInOut::<f32>::new(pcm.rate as usize, 48_000, chunk_in, pcm.channels) {
                Ok(r) => {
                    let d = r.output_delay() as i64;
                    let out_max = r.output_frames_max();
                    for p in &mut self.resampled {
                        if p.len() < out_max {
                            p.resize(out_max, 0.0);
                        }
                    }
                    self.resampler = Some(r);
                    d
                }
                Err(_) => 0,
            }
        };
        for s in &mut self.stage {
            s.clear();
        }
        self.fifo.clear();
        self.run = Some(Run {
            start: place,
            samples: 0,
            fifo_ts: self.map(place) - delay - self.lookahead,
        });
        self.had_run = true;
    }

    /// Ends the current run: its partial Opus frame goes out padded with silence.
    fn end_run(&mut self, emit: &mut dyn FnMut(Encoded<'_>)) {
        if self.run.is_none() {
            return;
        }
        let have = self.fifo.len() / self.channels;
        if have > 0 {
            self.fifo.resize(OPUS_FRAME * self.channels, 0.0);
            self.encode_ready(emit);
        }
        self.fifo.clear();
        self.run = None;
    }

    fn resample(&mut self, pcm: &Pcm) {
        let Some(r) = self.resampler.as_mut() else {
            return;
        };
        let chunk = r.input_frames_next();
        let mut at = 0;
        while at < pcm.frames {
            let want = chunk - self.stage[0].len();
            let take = want.min(pcm.frames - at);
            for c in 0..pcm.channels {
                let plane = &pcm.planes[c];
                let end = (at + take).min(plane.len());
                self.stage[c].extend_from_slice(&plane[at.min(end)..end]);
            }
            at += take;
            if self.stage[0].len() < chunk {
                break;
            }
            let Some(r) = self.resampler.as_mut() else {
                return;
            };
            let (stage, out) = (
                &self.stage[..pcm.channels],
                &mut self.resampled[..pcm.channels],
            );
            let produced = match r.process_into_buffer(stage, out, None) {
                Ok((_, n)) => n,
                Err(_) => 0,
            };
            for s in &mut self.stage {
                s.clear();
            }
            let [a, b] = &self.resampled;
            let planes = [&a[..produced], &b[..produced.min(b.len())]];
            append(
                &mut self.fifo,
                self.channels,
                planes,
                pcm.channels,
                produced,
            );
        }
    }

    fn encode_ready(&mut self, emit: &mut dyn FnMut(Encoded<'_>)) {
        let n = OPUS_FRAME * self.channels;
        let mut at = 0;
        while self.fifo.len() - at >= n {
            let Some(run) = self.run.as_mut() else {
                break;
            };
            let ts = run.fifo_ts as u32;
            run.fifo_ts += OPUS_FRAME as i64;
            let frame = &self.fifo[at..at + n];
            at += n;
            if let Ok(len) = self.encoder.encode_float(frame, &mut self.packet) {
                emit(Encoded {
                    timestamp: ts,
                    payload: &self.packet[..len],
                });
            }
        }
        self.fifo.drain(..at);
    }
}

/// Appends `frames` samples of `channels` planes to `fifo` (interleaved), mixed to `out`
/// channels.
fn append(fifo: &mut Vec<f32>, out: usize, planes: [&[f32]; 2], channels: usize, frames: usize) {
    let frames = frames.min(planes[0].len());
    match (channels, out) {
        (2, 2) if planes[1].len() >= frames => {
            for (l, r) in planes[0][..frames].iter().zip(&planes[1][..frames]) {
                fifo.push(*l);
                fifo.push(*r);
            }
        }
        (2, 1) if planes[1].len() >= frames => {
            for (l, r) in planes[0][..frames].iter().zip(&planes[1][..frames]) {
                fifo.push(0.5 * (l + r));
            }
        }
        (_, 2) => {
            for s in &planes[0][..frames] {
                fifo.push(*s);
                fifo.push(*s);
            }
        }
        _ => fifo.extend_from_slice(&planes[0][..frames]),
    }
}
