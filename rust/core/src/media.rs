//! Shared nouns of the media core: what a negotiated track is, on the publishing side (a producer
//! track) and on the playing side (a consumer track).
//!
//! The SDP negotiation (`sdp`) produces these; the router (`router`) consumes them. Neither module
//! depends on the other, only on this one.

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

/// The codecs the core forwards as they come (no transcoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecName {
    Opus,
    Pcma,
    Pcmu,
    Vp8,
    Vp9,
    H264,
    H265,
    Av1,
    /// AAC (`MPEG4-GENERIC`, RFC 3640): kept for RTSP publishers and players; never offered
    /// to or accepted from WebRTC peers.
    Aac,
}

impl CodecName {
    /// Parses an SDP `a=rtpmap` encoding name, case-insensitively.
    pub fn from_encoding_name(name: &str) -> Option<CodecName> {
        let n = name.to_ascii_uppercase();
        Some(match n.as_str() {
            "OPUS" => CodecName::Opus,
            "PCMA" => CodecName::Pcma,
            "PCMU" => CodecName::Pcmu,
            "VP8" => CodecName::Vp8,
            "VP9" => CodecName::Vp9,
            "H264" => CodecName::H264,
            "H265" | "HEVC" => CodecName::H265,
            "AV1" | "AV1X" => CodecName::Av1,
            "MPEG4-GENERIC" => CodecName::Aac,
            _ => return None,
        })
    }

    /// The encoding name as written in `a=rtpmap`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            CodecName::Opus => "opus",
            CodecName::Pcma => "PCMA",
            CodecName::Pcmu => "PCMU",
            CodecName::Vp8 => "VP8",
            CodecName::Vp9 => "VP9",
            CodecName::H264 => "H264",
            CodecName::H265 => "H265",
            CodecName::Av1 => "AV1",
            CodecName::Aac => "MPEG4-GENERIC",
        }
    }

    /// Whether WebRTC peers may use this codec (everything but AAC).
    pub fn webrtc(self) -> bool {
        self != CodecName::Aac
    }

    pub fn kind(self) -> MediaKind {
        match self {
            CodecName::Opus | CodecName::Pcma | CodecName::Pcmu | CodecName::Aac => {
                MediaKind::Audio
            }
            _ => MediaKind::Video,
        }
    }
}

/// One negotiated codec on one leg (publisher or player): the payload type and fmtp are that
/// leg's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    pub name: CodecName,
    pub payload_type: u8,
    pub clock_rate: u32,
    /// Audio channels (2 for Opus), 0 for video.
    pub channels: u16,
    /// The `a=fmtp` parameters as written, without the payload type (`profile-level-id=42e01f;...`).
    pub fmtp: String,
    /// The RTX payload type bound to this codec by `apt=`, when negotiated.
    pub rtx_payload_type: Option<u8>,
    /// `a=rtcp-fb` values negotiated for this codec (`nack`, `nack pli`, `ccm fir`, `goog-remb`).
    pub rtcp_fb: Vec<String>,
}

/// RTP header extension ids negotiated on one leg (`a=extmap`). `None`: not negotiated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderExtensions {
    pub mid: Option<u8>,
    pub abs_send_time: Option<u8>,
    pub transport_cc: Option<u8>,
    pub audio_level: Option<u8>,
}

/// A track a publisher sends, as accepted in our answer: exactly one codec per track (the first
/// of the offer's codecs that we forward), so the codec is known before the first packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerTrack {
    pub kind: MediaKind,
    pub mid: String,
    pub codec: Codec,
    /// The media SSRC from `a=ssrc`/`a=ssrc-group:FID`, when the offer states it; otherwise the
    /// router learns it from the first packet with this track's payload type.
    pub ssrc: Option<u32>,
    pub rtx_ssrc: Option<u32>,
    pub extensions: HeaderExtensions,
}

/// A track we send to a player: the player's payload type, fmtp and extension ids, our own
/// SSRCs. `producer_track` indexes the source producer's track list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerTrack {
    pub kind: MediaKind,
    pub mid: String,
    pub codec: Codec,
    pub ssrc: u32,
    /// Set when the player negotiated RTX for this codec.
    pub rtx_ssrc: Option<u32>,
    pub extensions: HeaderExtensions,
    pub producer_track: usize,
}

/// Identifies one WebRTC transport (one publisher or one player session) across the core.
pub type TransportId = u64;
