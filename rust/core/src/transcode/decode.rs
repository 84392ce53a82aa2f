//! Source audio to planar `f32` PCM: AAC through symphonia's pure-Rust AAC-LC decoder, G.711
//! through the RFC 3551 tables.
//!
//! AAC: the decoder is built from the `config` of the source's fmtp, by its facts (core rate,
//! channels) rather than its bytes, so that HE-AAC (object type 5/29) decodes its AAC-LC core
//! (half the bandwidth, no SBR: symphonia has none) instead of nothing. A config with more than
//! two channels, or none, is unsupported. A decoder that fails [`RETRY_AFTER`] frames in a row
//! is rebuilt with the other channel count: the commonest lie of an AudioSpecificConfig (a mono
//! config over stereo frames, or the reverse). A panic inside the decoder (it should return
//! errors, but it parses network input, and fuzzing finds index panics in its spectral data
//! decoding) is caught: the frame counts as corrupt and the decoder is rebuilt. While the
//! decoder runs, the process's panic hook is silenced on this thread (a wrapper installed once
//! around the previous hook, which still runs for every other panic), so a hostile stream cannot
//! fill the log with a panic message per frame.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use symphonia_codec_aac::AacDecoder;
use symphonia_core::audio::{AudioBufferRef, Channels, Signal};
use symphonia_core::codecs::{CodecParameters, Decoder as _, DecoderOptions, CODEC_TYPE_AAC};
use symphonia_core::formats::Packet;

use super::depack::{alaw_to_f32, ulaw_to_f32, AacConfig};

thread_local! {
    /// Set while this thread runs the AAC decoder: its panics are expected and caught.
    static IN_DECODER: Cell<bool> = const { Cell::new(false) };
}

static QUIET_HOOK: Once = Once::new();

/// Wraps the panic hook once: panics inside the AAC decoder (caught, counted) print nothing.
fn install_quiet_hook() {
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_DECODER.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Runs `f` (the AAC decoder) with its panics caught and unprinted.
fn quietly<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    install_quiet_hook();
    IN_DECODER.with(|d| d.set(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    IN_DECODER.with(|d| d.set(false));
    r
}

/// Consecutive failed frames after which the AAC decoder is rebuilt with the other channel count.
pub const RETRY_AFTER: u32 = 8;

/// Decoded samples of one frame, planar, reused from frame to frame.
#[derive(Debug, Default)]
pub struct Pcm {
    pub rate: u32,
    pub channels: usize,
    pub frames: usize,
    pub planes: [Vec<f32>; 2],
}

impl Pcm {
    fn clear(&mut self, rate: u32, channels: usize) {
        self.rate = rate;
        self.channels = channels.clamp(1, 2);
        self.frames = 0;
        for p in &mut self.planes {
            p.clear();
        }
    }
}

/// Why a frame gave no samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame does not decode (counted as corrupt; the next one may).
    Corrupt,
    /// The decoder panicked on the frame (counted as corrupt; rebuilt).
    Panicked,
}

pub enum AudioDecoder {
    Aac(Box<AacState>),
    Alaw { rate: u32 },
    Ulaw { rate: u32 },
}

pub struct AacState {
    decoder: Option<AacDecoder>,
    rate: u32,
    channels: u32,
    failures: u32,
    /// Decoders built (1 + rebuilds).
    pub builds: u32,
}

fn build_aac(rate: u32, channels: u32) -> Option<AacDecoder> {
    let layout = match channels {
        1 => Channels::FRONT_LEFT,
        2 => Channels::FRONT_LEFT | Channels::FRONT_RIGHT,
        _ => return None,
    };
    let mut params = CodecParameters::new();
    params
        .for_codec(CODEC_TYPE_AAC)
        .with_sample_rate(rate)
        .with_channels(layout);
    quietly(|| AacDecoder::try_new(&params, &DecoderOptions::default()).ok())
        .ok()
        .flatten()
}

impl AudioDecoder {
    /// A decoder for `codec` with the source track's clock rate and fmtp. `None`: AAC whose
    /// config is missing, unreadable or beyond the decoder (more than two channels, a rate of
    /// 0 or above 96 kHz); a codec that is not transcoded.
    pub fn new(codec: crate::media::CodecName, clock_rate: u32, fmtp: &str) -> Option<Self> {
        use crate::media::CodecName;
        let rate = clock_rate.clamp(1000, 192_000);
        match codec {
            CodecName::Pcma => Some(AudioDecoder::Alaw { rate }),
            CodecName::Pcmu => Some(AudioDecoder::Ulaw { rate }),
            CodecName::Aac => {
                let cfg = AacConfig::from_fmtp(fmtp)?;
                if !(1..=2).contains(&cfg.channels) || !(7350..=96_000).contains(&cfg.core_rate) {
                    return None;
                }
                let decoder = build_aac(cfg.core_rate, cfg.channels)?;
                Some(AudioDecoder::Aac(Box::new(AacState {
                    decoder: Some(decoder),
                    rate: cfg.core_rate,
                    channels: cfg.channels,
                    failures: 0,
                    builds: 1,
                })))
            }
            _ => None,
        }
    }

    /// Channels the source says it has (the Opus encoder's, 1 or 2).
    pub fn channels(&self) -> usize {
        match self {
            AudioDecoder::Aac(s) => s.channels as usize,
            _ => 1,
        }
    }

    /// Decodes one frame (an AAC access unit, or a G.711 payload) into `pcm`.
    pub fn decode(&mut self, frame: &[u8], pcm: &mut Pcm) -> Result<(), DecodeError> {
        match self {
            AudioDecoder::Alaw { rate } => {
                pcm.clear(*rate, 1);
                pcm.planes[0].extend(frame.iter().map(|b| alaw_to_f32(*b)));
                pcm.frames = frame.len();
                Ok(())
            }
            AudioDecoder::Ulaw { rate } => {
                pcm.clear(*rate, 1);
                pcm.planes[0].extend(frame.iter().map(|b| ulaw_to_f32(*b)));
                pcm.frames = frame.len();
                Ok(())
            }
            AudioDecoder::Aac(s) => s.decode(frame, pcm),
        }
    }
}

impl AacState {
    fn decode(&mut self, frame: &[u8], pcm: &mut Pcm) -> Result<(), DecodeError> {
        let result = match self.decoder.as_mut() {
            None => Err(DecodeError::Corrupt),
            Some(dec) => {
                // symphonia's packets own their bytes: one small copy per frame.
                let packet = Packet::new_from_slice(0, 0, 1024, frame);
                match quietly(|| copy_out(dec.decode(&packet), pcm)) {
                    Ok(r) => r,
                    Err(_) => {
                        self.decoder = None;
                        Err(DecodeError::Panicked)
                    }
                }
            }
        };
        match result {
            Ok(()) => self.failures = 0,
            Err(_) => {
                self.failures += 1;
                if self.decoder.is_none() || self.failures >= RETRY_AFTER {
                    if self.failures >= RETRY_AFTER {
                        self.channels = 3 - self.channels;
                        self.failures = 0;
                    }
                    self.decoder = build_aac(self.rate, self.channels);
                    self.builds += 1;
                }
            }
        }
        result
    }
}

fn copy_out(
    decoded: symphonia_core::errors::Result<AudioBufferRef<'_>>,
    pcm: &mut Pcm,
) -> Result<(), DecodeError> {
    let Ok(AudioBufferRef::F32(buf)) = decoded else {
        return Err(DecodeError::Corrupt);
    };
    let spec = buf.spec();
    let channels = spec.channels.count();
    if channels == 0 || buf.frames() == 0 {
        return Err(DecodeError::Corrupt);
    }
    pcm.clear(spec.rate, channels);
    for c in 0..pcm.channels {
        pcm.planes[c].extend_from_slice(buf.chan(c));
    }
    pcm.frames = buf.frames();
    Ok(())
}
