//! Offer/answer for publishers and players (RFC 3264, RFC 8829 as browsers and aiortc do it).
//!
//! Offers are parsed with `rtc-sdp` (under `catch_unwind`); answers are written here as text,
//! which keeps them exact. What an answer says:
//!
//! - Session: `a=ice-lite`, `a=group:BUNDLE` with the accepted mids (only when the offer had a
//!   BUNDLE group).
//! - Each accepted m-line: port = the first candidate's port, `c=` its address, our
//!   `a=ice-ufrag/pwd`, `a=fingerprint:sha-256`, `a=setup:passive` (we are the DTLS server; an
//!   ICE-lite answerer must not be the DTLS client), `a=rtcp-mux`, `a=rtcp-rsize` when offered,
//!   one `a=candidate` (host, UDP) per candidate and `a=end-of-candidates`.
//! - A player's audio/video m-line with nothing to send on it, inside the offer's BUNDLE: kept
//!   bundled as `a=inactive` with its first codec we can name (see `idle_section`).
//! - A rejected m-line (data channel, no usable codec, wrong direction, no source track): port
//!   0, the offer's first format, `a=mid`, `a=inactive`, as RFC 3264 §6 says, plus the same
//!   ICE credentials and fingerprint (aiortc refuses an answer with any section lacking them).
//!
//! One transport per peer: every usable m-line must share the offer's ICE credentials, and when
//! more than one m-line is usable they must all be in the offer's BUNDLE group (a non-bundled
//! offer would open one ICE/DTLS session per m-line, which a single transport cannot serve).
//!
//! Publisher: exactly one codec per m-line, the first of the offer's order that we forward
//! (Opus, PCMA, PCMU, VP8, VP9, H.264 with packetization-mode=1, H.265, AV1) plus its RTX.
//! Player: the player's own payload type and fmtp for the codec the source sends (H.264: mode 1
//! on both sides, profile ignored; VP9: equal profile-id when both state one).
//!
//! Errors: [`SdpError::Unusable`] (signaling 422) for offers we cannot use at all,
//! [`SdpError::NoCommonCodec`] (415) when no m-line has a codec in common. Never panics.

use std::net::SocketAddr;

use crate::media::{Codec, CodecName, ConsumerTrack, HeaderExtensions, MediaKind, ProducerTrack};

/// URIs of the header extensions we negotiate.
pub const EXT_MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
pub const EXT_ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
pub const EXT_AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// RTCP feedback we implement.
const OUR_RTCP_FB: [&str; 4] = ["nack", "nack pli", "ccm fir", "goog-remb"];

/// What an answer needs from the transport.
#[derive(Debug, Clone, Copy)]
pub struct AnswerContext<'a> {
    /// Our ICE credentials (the transport's `local_ufrag`/`local_pwd`).
    pub ice_ufrag: &'a str,
    pub ice_pwd: &'a str,
    /// Our certificate fingerprint, [`crate::cert::DtlsIdentity::fingerprint`].
    pub fingerprint: &'a str,
    /// The announced host candidates (at least one; the first gives `c=` and the m= port).
    pub candidates: &'a [SocketAddr],
    /// Publisher cap in bit/s (0: none): `b=AS`/`b=TIAS` on the video m-line.
    pub max_bitrate: u32,
}

/// The peer's transport parameters, from the offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteParams {
    pub ice_ufrag: String,
    pub ice_pwd: String,
    /// Always "sha-256" for now.
    pub fingerprint_algorithm: String,
    /// As written in the offer (hex with colons).
    pub fingerprint: String,
}

/// Why an offer cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdpError {
    /// Not SDP we can use (garbage, no ICE credentials or fingerprint, no m-lines, not
    /// bundled...). Signaling error 422.
    Unusable(String),
    /// No m-line has a codec in common; the text names the codecs in words a user can act on.
    /// Signaling error 415.
    NoCommonCodec(String),
}

impl std::fmt::Display for SdpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SdpError::Unusable(m) => write!(f, "unusable SDP: {m}"),
            SdpError::NoCommonCodec(m) => write!(f, "no common codec: {m}"),
        }
    }
}

impl std::error::Error for SdpError {}

impl SdpError {
    /// The signaling error code (SPEC §3): 422 or 415.
    pub fn status(&self) -> u16 {
        match self {
            SdpError::Unusable(_) => 422,
            SdpError::NoCommonCodec(_) => 415,
        }
    }
}

// The offer model (offer.rs) and the answer writer (answer.rs) are private parts of this module.
mod answer;
mod offer;

use answer::*;
use offer::*;

// ---------------------------------------------------------------------------------------------
// Publisher
// ---------------------------------------------------------------------------------------------

/// The codec we take from a publisher's m-line: first forwardable in offer order.
fn pick_publisher_codec(m: &OfferMedia, kind: MediaKind) -> Option<Codec> {
    for r in m.codecs() {
        let Some(name) = CodecName::from_encoding_name(&r.name) else {
            continue;
        };
        if name.kind() != kind || !name.webrtc() {
            continue;
        }
        let fmtp = m.fmtp_of(r.pt);
        if name == CodecName::H264 && fmtp_param(fmtp, "packetization-mode") != Some("1") {
            continue;
        }
        let rtcp_fb = m.feedback_for(r.pt);
        return Some(Codec {
            name,
            payload_type: r.pt,
            clock_rate: if r.clock_rate == 0 {
                default_clock(name)
            } else {
                r.clock_rate
            },
            channels: if kind == MediaKind::Audio {
                r.channels.max(1)
            } else {
                0
            },
            fmtp: fmtp.to_owned(),
            rtx_payload_type: m.rtx_for(r.pt),
            rtcp_fb,
        });
    }
    None
}

fn default_clock(name: CodecName) -> u32 {
    match name {
        CodecName::Opus => 48000,
        CodecName::Pcma | CodecName::Pcmu => 8000,
        _ => 90000,
    }
}

const SUPPORTED_WORDS: &str =
    "audio/opus, audio/PCMA, audio/PCMU, video/VP8, video/VP9, video/H264 (packetization-mode=1), video/H265, video/AV1";

/// Answers a publisher's offer (sendonly/sendrecv audio and/or video). Returns the answer, the
/// accepted tracks (one per accepted m-line, in m-line order) and the peer's transport
/// parameters for [`crate::transport::WebRtcTransport::new`].
pub fn answer_publisher(
    offer: &str,
    ctx: &AnswerContext,
) -> Result<(String, Vec<ProducerTrack>, RemoteParams), SdpError> {
    let offer = parse_offer(offer)?;
    if offer.media.is_empty() {
        return Err(SdpError::Unusable(
            "the offer has no m-lines (no audio or video)".into(),
        ));
    }
    let mut answers = Vec::new();
    let mut tracks = Vec::new();
    let mut used = Vec::new();
    let video_count = offer
        .media
        .iter()
        .filter(|m| m.kind() == Some(MediaKind::Video))
        .count();
    for (i, m) in offer.media.iter().enumerate() {
        let direction_ok = matches!(
            m.direction.as_deref(),
            Some("sendonly") | Some("sendrecv") | None
        );
        let codec = match m.kind() {
            Some(kind) if m.port != 0 && direction_ok => {
                pick_publisher_codec(m, kind).map(|c| (kind, c))
            }
            _ => None,
        };
        let Some((kind, codec)) = codec else {
            answers.push(AnswerMedia { accepted: None });
            continue;
        };
        let mut ext = HeaderExtensions::default();
        let mut extmaps = Vec::new();
        for uri in [EXT_MID, EXT_ABS_SEND_TIME, EXT_AUDIO_LEVEL] {
            if let Some(id) = m.ext_id(uri) {
                extmaps.push((id, uri));
                match uri {
                    EXT_MID => ext.mid = Some(id),
                    EXT_ABS_SEND_TIME => ext.abs_send_time = Some(id),
                    _ => ext.audio_level = Some(id),
                }
            }
        }
        let (ssrc, rtx_ssrc) = match m.fid {
            Some((a, b)) => (Some(a), Some(b)),
            None => (m.ssrcs.first().copied(), None),
        };
        let rtx_ssrc = if codec.rtx_payload_type.is_some() {
            rtx_ssrc
        } else {
            None
        };
        tracks.push(ProducerTrack {
            kind,
            mid: m.mid.clone().unwrap_or_else(|| i.to_string()),
            codec: codec.clone(),
            ssrc,
            rtx_ssrc,
            extensions: ext,
        });
        let bandwidth = kind == MediaKind::Video || video_count == 0;
        answers.push(AnswerMedia {
            accepted: Some(AcceptedMedia {
                direction: "recvonly",
                codec,
                extmaps,
                bandwidth,
                ssrc: None,
                msid: None,
            }),
        });
        used.push(i);
    }
    if used.is_empty() {
        let offered: Vec<String> = offer
            .media
            .iter()
            .map(OfferMedia::describe_offered)
            .filter(|s| !s.is_empty())
            .collect();
        let offered = if offered.is_empty() {
            "nothing".to_owned()
        } else {
            offered.join(", ")
        };
        return Err(SdpError::NoCommonCodec(format!(
            "the offer sends {offered}; this server forwards {SUPPORTED_WORDS}, sent with a=sendonly or a=sendrecv"
        )));
    }
    // Only one bandwidth line set even with several video m-lines: fine (each gets the cap).
    let remote = remote_params(&offer, &used)?;
    let answer = write_answer(&offer, &answers, ctx, "pms-trio")?;
    Ok((answer, tracks, remote))
}

// ---------------------------------------------------------------------------------------------
// Player
// ---------------------------------------------------------------------------------------------

/// Whether the player's offered codec `r` (with fmtp) can carry what `source` sends.
fn player_codec_matches(source: &Codec, name: CodecName, player_fmtp: &str) -> bool {
    if name != source.name || !name.webrtc() {
        return false;
    }
    match name {
        CodecName::H264 => {
            fmtp_param(player_fmtp, "packetization-mode") == Some("1")
                && fmtp_param(&source.fmtp, "packetization-mode") == Some("1")
        }
        CodecName::Vp9 => match (
            fmtp_param(player_fmtp, "profile-id"),
            fmtp_param(&source.fmtp, "profile-id"),
        ) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        },
        _ => true,
    }
}

/// A player's audio/video m-line we have nothing to send on (the stream has no such track, or
/// none in a codec the line offers): kept in the BUNDLE as `a=inactive` with the line's first
/// codec we can name, so the peer's single transport covers it. Rejecting it (port 0) is what
/// RFC 3264 allows, but aiortc then gives the section a transport of its own that never
/// connects. Lines outside the BUNDLE, or with no codec we can name, are rejected.
fn idle_section(offer: &Offer, m: &OfferMedia) -> AnswerMedia {
    let bundled = offer.bundle.as_ref().is_some_and(|group| {
        m.mid
            .as_ref()
            .is_some_and(|mid| group.iter().any(|g| g == mid))
    });
    let named = m
        .codecs()
        .into_iter()
        .find_map(|r| CodecName::from_encoding_name(&r.name).map(|n| (n, r)));
    let (true, Some((name, r))) = (bundled, named) else {
        return AnswerMedia { accepted: None };
    };
    AnswerMedia {
        accepted: Some(AcceptedMedia {
            direction: "inactive",
            codec: Codec {
                name,
                payload_type: r.pt,
                clock_rate: r.clock_rate,
                channels: r.channels,
                fmtp: m.fmtp_of(r.pt).to_owned(),
                rtx_payload_type: None,
                rtcp_fb: Vec::new(),
            },
            extmaps: Vec::new(),
            bandwidth: false,
            ssrc: None,
            msid: None,
        }),
    }
}

/// Answers a player's offer (recvonly/sendrecv m-lines) for a stream whose tracks are
/// `source`. For each offered audio/video m-line the first unused source track of that kind
/// is taken, with the player's payload type, fmtp and RTX; `new_ssrc` gives our SSRCs.
/// `ConsumerTrack::producer_track` indexes `source`.
pub fn answer_player(
    offer: &str,
    source: &[ProducerTrack],
    ctx: &AnswerContext,
    new_ssrc: &mut dyn FnMut() -> u32,
) -> Result<(String, Vec<ConsumerTrack>, RemoteParams), SdpError> {
    let offer = parse_offer(offer)?;
    if offer.media.is_empty() {
        return Err(SdpError::Unusable(
            "the offer has no m-lines (no audio or video)".into(),
        ));
    }
    let mut answers = Vec::new();
    let mut tracks = Vec::new();
    let mut used = Vec::new();
    let mut taken = vec![false; source.len()];
    for (i, m) in offer.media.iter().enumerate() {
        let direction_ok = matches!(
            m.direction.as_deref(),
            Some("recvonly") | Some("sendrecv") | None
        );
        let Some(kind) = m.kind().filter(|_| m.port != 0 && direction_ok) else {
            answers.push(AnswerMedia { accepted: None });
            continue;
        };
        let mut chosen = None;
        for (si, src) in source.iter().enumerate() {
            if taken[si] || src.kind != kind {
                continue;
            }
            let found = m.codecs().into_iter().find(|r| {
                CodecName::from_encoding_name(&r.name)
                    .is_some_and(|n| player_codec_matches(&src.codec, n, m.fmtp_of(r.pt)))
            });
            if let Some(r) = found {
                chosen = Some((si, r));
            }
            // Only the first unused track of this kind is a candidate for this m-line.
            break;
        }
        let Some((si, r)) = chosen else {
            answers.push(idle_section(&offer, m));
            continue;
        };
        taken[si] = true;
        let src = &source[si];
        let rtx_pt = m.rtx_for(r.pt);
        let codec = Codec {
            name: src.codec.name,
            payload_type: r.pt,
            clock_rate: src.codec.clock_rate,
            channels: src.codec.channels,
            fmtp: m.fmtp_of(r.pt).to_owned(),
            rtx_payload_type: rtx_pt,
            rtcp_fb: m.feedback_for(r.pt),
        };
        let ssrc = new_ssrc();
        let rtx_ssrc = rtx_pt.map(|_| new_ssrc());
        let mid_id = m.ext_id(EXT_MID);
        let extensions = HeaderExtensions {
            mid: mid_id,
            ..Default::default()
        };
        let mid = m.mid.clone().unwrap_or_else(|| i.to_string());
        tracks.push(ConsumerTrack {
            kind,
            mid: mid.clone(),
            codec: codec.clone(),
            ssrc,
            rtx_ssrc,
            extensions,
            producer_track: si,
        });
        answers.push(AnswerMedia {
            accepted: Some(AcceptedMedia {
                direction: "sendonly",
                codec,
                extmaps: mid_id.map(|id| vec![(id, EXT_MID)]).unwrap_or_default(),
                bandwidth: false,
                ssrc: Some((ssrc, rtx_ssrc)),
                msid: Some(format!("pms {}-{}", kind.as_str(), mid)),
            }),
        });
        used.push(i);
    }
    if used.is_empty() {
        let sends: Vec<String> = source
            .iter()
            .map(|t| format!("{}/{}", t.kind.as_str(), t.codec.name.encoding_name()))
            .collect();
        let msg = if sends.is_empty() {
            "the stream has no tracks".to_owned()
        } else {
            format!(
                "the stream sends {}; the offer accepts none of them (offer a=recvonly m-lines with these codecs{})",
                sends.join(", "),
                if source.iter().any(|t| t.codec.name == CodecName::H264) {
                    ", H264 with packetization-mode=1"
                } else {
                    ""
                }
            )
        };
        return Err(SdpError::NoCommonCodec(msg));
    }
    let remote = remote_params(&offer, &used)?;
    let cname = format!("pms-{:08x}", tracks.first().map(|t| t.ssrc).unwrap_or(0));
    let answer = write_answer(&offer, &answers, ctx, &cname)?;
    Ok((answer, tracks, remote))
}
