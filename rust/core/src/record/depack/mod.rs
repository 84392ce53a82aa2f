//! RTP depacketizers for recording: RTP packets of one track in, whole frames (access units)
//! out, in the form the containers store them.
//!
//! - H.264 / H.265: NAL units with 4-byte big-endian length prefixes (the `avcC`/`hvcC`
//!   sample format of Matroska and MP4), parameter sets learnt on the way ([`h26x`]).
//! - VP8 / VP9: the payload descriptors stripped, the frame's bytes concatenated ([`vpx`]).
//! - AV1: OBU elements to low-overhead OBUs with size fields ([`av1`]).
//! - Opus, G.711: one packet is one frame; AAC (RFC 3640 AAC-hbr): each AU of a packet is one
//!   frame ([`audio`]).
//!
//! ## Loss and garbage
//! Packets are taken in arrival order (the recorder sits behind the router, which forwards in
//! arrival order). A sequence gap marks the frame of the packet after it as broken; a broken
//! frame is dropped, never written, and a video track then drops everything up to its next
//! keyframe. A late or duplicate packet (older sequence number) is ignored. A payload that does
//! not parse breaks its frame the same way. A frame larger than [`MAX_FRAME`] is dropped. No
//! input panics: every index is bounds-checked.
//!
//! ## Why not the depacketizers of `rtc-rtp` 0.21
//! `rtc-rtp` 0.21 has `codec::{h264,h265,vp8,vp9,opus}` depacketizers, but they do not fit a
//! writer that must never write a corrupt frame or panic: the H.264 one indexes past the end of
//! a STAP-A whose last NAL size field is cut to one byte (a panic on hostile input) and has no
//! notion of loss inside an FU-A (a lost middle fragment is glued over); the H.265 one parses
//! one packet into an enum and does not reassemble fragmentation units; the VP8 one keeps the
//! I/L/T/K bits of the previous packet when the X bit is clear. Each returns a fresh `Bytes`
//! per packet in Annex B form, which we would convert again. Our own are short, allocate into
//! one buffer per frame and share the loss rule above.

pub mod assembly;
pub mod audio;
pub mod av1;
pub mod h26x;
pub mod vpx;

use crate::media::CodecName;
use crate::rtp::RtpView;
use assembly::VideoAssembler;
pub use assembly::{Frame, MAX_FRAME};

/// A depacketizer for one track's codec.
#[derive(Debug)]
pub struct Depacketizer(Inner);

#[derive(Debug)]
enum Inner {
    H26x(VideoAssembler<h26x::H26x>),
    Vp8(VideoAssembler<vpx::Vp8>),
    Vp9(VideoAssembler<vpx::Vp9>),
    Av1(VideoAssembler<av1::Av1>),
    Audio(audio::AudioDepacketizer),
}

impl Depacketizer {
    /// `None` for a codec we cannot record (none today). `fmtp` carries H.264/H.265
    /// `sprop-*` parameter sets and the AAC-hbr field sizes.
    pub fn new(codec: CodecName, fmtp: &str) -> Option<Depacketizer> {
        Some(Depacketizer(match codec {
            CodecName::H264 | CodecName::H265 => {
                Inner::H26x(VideoAssembler::new(h26x::H26x::new(codec, fmtp)?))
            }
            CodecName::Vp8 => Inner::Vp8(VideoAssembler::new(vpx::Vp8::default())),
            CodecName::Vp9 => Inner::Vp9(VideoAssembler::new(vpx::Vp9::default())),
            CodecName::Opus | CodecName::Pcma | CodecName::Pcmu | CodecName::Aac => {
                Inner::Audio(audio::AudioDepacketizer::new(codec, fmtp))
            }
            CodecName::Av1 => Inner::Av1(VideoAssembler::new(av1::Av1::default())),
        }))
    }

    /// Adds one packet; complete frames are appended to `out`.
    pub fn push(&mut self, pkt: &RtpView<'_>, out: &mut Vec<Frame>) {
        match &mut self.0 {
            Inner::H26x(a) => a.push(pkt, out),
            Inner::Vp8(a) => a.push(pkt, out),
            Inner::Vp9(a) => a.push(pkt, out),
            Inner::Av1(a) => a.push(pkt, out),
            Inner::Audio(a) => a.push(pkt, out),
        }
    }

    /// Frames dropped so far (broken, or waiting for a keyframe).
    pub fn dropped(&self) -> u64 {
        match &self.0 {
            Inner::H26x(a) => a.dropped(),
            Inner::Vp8(a) => a.dropped(),
            Inner::Vp9(a) => a.dropped(),
            Inner::Av1(a) => a.dropped(),
            Inner::Audio(a) => a.dropped(),
        }
    }

    /// H.264/H.265: the parameter sets seen so far (fmtp and in-band).
    pub fn param_sets(&self) -> Option<&crate::codec::ParamSets> {
        match &self.0 {
            Inner::H26x(a) => Some(a.format().params()),
            _ => None,
        }
    }

    /// AV1: the latest sequence header OBU.
    pub fn av1_seq_header(&self) -> Option<&[u8]> {
        match &self.0 {
            Inner::Av1(a) => a.format().seq_header(),
            _ => None,
        }
    }

    /// VP8/VP9: the picture size seen in the bitstream or payload descriptor.
    pub fn vpx_size(&self) -> Option<(u16, u16)> {
        match &self.0 {
            Inner::Vp8(a) => a.format().size(),
            Inner::Vp9(a) => a.format().size(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
