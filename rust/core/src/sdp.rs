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
//! - A rejected m-line (data channel, no usable codec, wrong direction, no source track): port
//!   0, the offer's first format, `a=mid`, `a=inactive`, as RFC 3264 §6 says.
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

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Cursor;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use rtc_sdp::description::session::SessionDescription;

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

// ---------------------------------------------------------------------------------------------
// Offer model
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Rtpmap {
    pt: u8,
    name: String,
    clock_rate: u32,
    channels: u16,
}

#[derive(Debug, Clone, Default)]
struct OfferMedia {
    media: String,
    port: i64,
    protos: String,
    formats: Vec<String>,
    mid: Option<String>,
    direction: Option<String>,
    rtpmaps: Vec<Rtpmap>,
    fmtp: HashMap<u8, String>,
    rtcp_fb: HashMap<String, Vec<String>>,
    extmaps: Vec<(u8, String)>,
    ssrcs: Vec<u32>,
    fid: Option<(u32, u32)>,
    ice_ufrag: Option<String>,
    ice_pwd: Option<String>,
    fingerprints: Vec<(String, String)>,
    setup: Option<String>,
    rtcp_rsize: bool,
}

impl OfferMedia {
    fn kind(&self) -> Option<MediaKind> {
        match self.media.as_str() {
            "audio" => Some(MediaKind::Audio),
            "video" => Some(MediaKind::Video),
            _ => None,
        }
    }

    /// Offered codecs in the offer's order (formats order), static PTs 0/8 included.
    fn codecs(&self) -> Vec<Rtpmap> {
        let mut out = Vec::new();
        for f in &self.formats {
            let Ok(pt) = f.parse::<u8>() else { continue };
            if let Some(r) = self.rtpmaps.iter().find(|r| r.pt == pt) {
                out.push(r.clone());
            } else if pt == 0 || pt == 8 {
                let name = if pt == 0 { "PCMU" } else { "PCMA" };
                out.push(Rtpmap {
                    pt,
                    name: name.into(),
                    clock_rate: 8000,
                    channels: 1,
                });
            }
        }
        out
    }

    fn fmtp_of(&self, pt: u8) -> &str {
        self.fmtp.get(&pt).map(String::as_str).unwrap_or("")
    }

    fn rtx_for(&self, pt: u8) -> Option<u8> {
        self.rtpmaps
            .iter()
            .filter(|r| r.name.eq_ignore_ascii_case("rtx"))
            .find(|r| {
                fmtp_param(self.fmtp_of(r.pt), "apt").and_then(|v| v.parse::<u8>().ok()) == Some(pt)
            })
            .map(|r| r.pt)
    }

    fn feedback_for(&self, pt: u8) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let keys = [pt.to_string(), "*".to_string()];
        for k in &keys {
            for fb in self.rtcp_fb.get(k).into_iter().flatten() {
                let fb = fb.split_whitespace().collect::<Vec<_>>().join(" ");
                if OUR_RTCP_FB.contains(&fb.as_str()) && !out.contains(&fb) {
                    out.push(fb);
                }
            }
        }
        out
    }

    fn ext_id(&self, uri: &str) -> Option<u8> {
        self.extmaps
            .iter()
            .find(|(_, u)| u == uri)
            .map(|(id, _)| *id)
    }

    fn describe_offered(&self) -> String {
        let names: Vec<String> = self
            .codecs()
            .iter()
            .filter(|r| !is_aux_codec(&r.name))
            .map(|r| format!("{}/{}", self.media, r.name))
            .collect();
        names.join(", ")
    }
}

fn is_aux_codec(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "rtx" | "red" | "ulpfec" | "flexfec-03" | "telephone-event" | "cn"
    )
}

/// The value of `key` in an fmtp string `a=1;b=2`.
fn fmtp_param<'a>(fmtp: &'a str, key: &str) -> Option<&'a str> {
    fmtp.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim())
    })
}

#[derive(Debug, Default)]
struct Offer {
    media: Vec<OfferMedia>,
    bundle: Option<Vec<String>>,
    ice_ufrag: Option<String>,
    ice_pwd: Option<String>,
    fingerprints: Vec<(String, String)>,
    setup: Option<String>,
}

fn parse_offer(text: &str) -> Result<Offer, SdpError> {
    if text.len() > 256 * 1024 {
        return Err(SdpError::Unusable(
            "the offer is larger than 256 KiB".into(),
        ));
    }
    // rtc-sdp wants CRLF or LF lines; normalise and make sure the text ends with a newline.
    let mut normalised = text.replace("\r\n", "\n").trim().to_owned();
    normalised.push('\n');
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        SessionDescription::unmarshal(&mut Cursor::new(normalised.as_bytes()))
    }));
    let sd = match parsed {
        Ok(Ok(sd)) => sd,
        Ok(Err(e)) => {
            return Err(SdpError::Unusable(format!(
                "the offer is not valid SDP ({e})"
            )))
        }
        Err(_) => return Err(SdpError::Unusable("the offer is not valid SDP".into())),
    };
    let mut offer = Offer::default();
    for a in &sd.attributes {
        let v = a.value.as_deref().unwrap_or("");
        match a.key.as_str() {
            "group" => {
                let mut it = v.split_whitespace();
                if it.next() == Some("BUNDLE") {
                    offer.bundle = Some(it.map(str::to_owned).collect());
                }
            }
            "ice-ufrag" => offer.ice_ufrag = Some(v.trim().to_owned()),
            "ice-pwd" => offer.ice_pwd = Some(v.trim().to_owned()),
            "fingerprint" => {
                if let Some((alg, fp)) = v.trim().split_once(' ') {
                    offer
                        .fingerprints
                        .push((alg.to_ascii_lowercase(), fp.trim().to_owned()));
                }
            }
            "setup" => offer.setup = Some(v.trim().to_owned()),
            _ => {}
        }
    }
    for md in &sd.media_descriptions {
        let mut m = OfferMedia {
            media: md.media_name.media.clone(),
            port: md.media_name.port.value as i64,
            protos: md.media_name.protos.join("/"),
            formats: md.media_name.formats.clone(),
            ..Default::default()
        };
        for a in &md.attributes {
            let v = a.value.as_deref().unwrap_or("").trim();
            match a.key.as_str() {
                "mid" => m.mid = Some(v.to_owned()),
                "sendonly" | "recvonly" | "sendrecv" | "inactive" => {
                    m.direction = Some(a.key.clone())
                }
                "rtpmap" => {
                    if let Some(r) = parse_rtpmap(v) {
                        m.rtpmaps.push(r);
                    }
                }
                "fmtp" => {
                    if let Some((pt, params)) = v.split_once(' ') {
                        if let Ok(pt) = pt.parse::<u8>() {
                            m.fmtp.insert(pt, params.trim().to_owned());
                        }
                    }
                }
                "rtcp-fb" => {
                    if let Some((pt, fb)) = v.split_once(' ') {
                        m.rtcp_fb
                            .entry(pt.to_owned())
                            .or_default()
                            .push(fb.trim().to_owned());
                    }
                }
                "extmap" => {
                    if let Some((id, rest)) = v.split_once(' ') {
                        let id = id.split('/').next().unwrap_or("");
                        let uri = rest.split_whitespace().next().unwrap_or("");
                        if let Ok(id) = id.parse::<u8>() {
                            if (1..=255).contains(&id) {
                                m.extmaps.push((id, uri.to_owned()));
                            }
                        }
                    }
                }
                "ssrc" => {
                    if let Some(ssrc) = v
                        .split_whitespace()
                        .next()
                        .and_then(|s| s.parse::<u32>().ok())
                    {
                        if !m.ssrcs.contains(&ssrc) {
                            m.ssrcs.push(ssrc);
                        }
                    }
                }
                "ssrc-group" => {
                    let mut it = v.split_whitespace();
                    if it.next() == Some("FID") && m.fid.is_none() {
                        let a = it.next().and_then(|s| s.parse::<u32>().ok());
                        let b = it.next().and_then(|s| s.parse::<u32>().ok());
                        if let (Some(a), Some(b)) = (a, b) {
                            m.fid = Some((a, b));
                        }
                    }
                }
                "ice-ufrag" => m.ice_ufrag = Some(v.to_owned()),
                "ice-pwd" => m.ice_pwd = Some(v.to_owned()),
                "fingerprint" => {
                    if let Some((alg, fp)) = v.split_once(' ') {
                        m.fingerprints
                            .push((alg.to_ascii_lowercase(), fp.trim().to_owned()));
                    }
                }
                "setup" => m.setup = Some(v.to_owned()),
                "rtcp-rsize" => m.rtcp_rsize = true,
                _ => {}
            }
        }
        offer.media.push(m);
    }
    Ok(offer)
}

fn parse_rtpmap(v: &str) -> Option<Rtpmap> {
    let (pt, rest) = v.split_once(' ')?;
    let pt = pt.parse::<u8>().ok()?;
    let mut parts = rest.trim().split('/');
    let name = parts.next()?.to_owned();
    let clock_rate = parts
        .next()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(0);
    let channels = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(1);
    Some(Rtpmap {
        pt,
        name,
        clock_rate,
        channels,
    })
}

/// Transport parameters and checks common to both answers.
fn remote_params(offer: &Offer, used: &[usize]) -> Result<RemoteParams, SdpError> {
    if offer.media.is_empty() {
        return Err(SdpError::Unusable(
            "the offer has no m-lines (no audio or video)".into(),
        ));
    }
    let mut creds: Option<(String, String)> = None;
    for &i in used {
        let m = &offer.media[i];
        let ufrag = m.ice_ufrag.clone().or_else(|| offer.ice_ufrag.clone());
        let pwd = m.ice_pwd.clone().or_else(|| offer.ice_pwd.clone());
        let (Some(ufrag), Some(pwd)) = (ufrag, pwd) else {
            return Err(SdpError::Unusable(
                "the offer has no a=ice-ufrag/a=ice-pwd".into(),
            ));
        };
        match &creds {
            None => creds = Some((ufrag, pwd)),
            Some((u, p)) if *u == ufrag && *p == pwd => {}
            Some(_) => {
                return Err(SdpError::Unusable(
                    "the offer's m-lines use different ICE credentials; this server needs one bundled transport (a=group:BUNDLE)".into(),
                ))
            }
        }
    }
    let Some((ice_ufrag, ice_pwd)) = creds else {
        return Err(SdpError::Unusable(
            "the offer has no a=ice-ufrag/a=ice-pwd".into(),
        ));
    };
    if ice_ufrag.is_empty() || ice_pwd.is_empty() || ice_ufrag.contains(':') {
        return Err(SdpError::Unusable(
            "the offer's ICE credentials are invalid".into(),
        ));
    }
    let first = &offer.media[used[0]];
    let all_fps: Vec<&(String, String)> = first
        .fingerprints
        .iter()
        .chain(offer.fingerprints.iter())
        .collect();
    if all_fps.is_empty() {
        return Err(SdpError::Unusable(
            "the offer has no a=fingerprint (DTLS is required)".into(),
        ));
    }
    let Some((_, fp)) = all_fps.iter().find(|(alg, _)| alg == "sha-256") else {
        return Err(SdpError::Unusable(
            "the offer has no sha-256 a=fingerprint; this server checks sha-256 only".into(),
        ));
    };
    let setup = first.setup.clone().or_else(|| offer.setup.clone());
    if setup.as_deref() == Some("passive") {
        return Err(SdpError::Unusable(
            "the offer says a=setup:passive, but this ICE-lite server is always the DTLS server; offer actpass or active".into(),
        ));
    }
    if used.len() > 1 {
        let bundled = offer.bundle.as_ref().is_some_and(|group| {
            used.iter().all(|&i| {
                offer.media[i]
                    .mid
                    .as_ref()
                    .is_some_and(|mid| group.contains(mid))
            })
        });
        if !bundled {
            return Err(SdpError::Unusable(
                "the offer's m-lines are not bundled (a=group:BUNDLE); this server uses one transport per peer".into(),
            ));
        }
    }
    Ok(RemoteParams {
        ice_ufrag,
        ice_pwd,
        fingerprint_algorithm: "sha-256".into(),
        fingerprint: fp.clone(),
    })
}

// ---------------------------------------------------------------------------------------------
// Answer writing
// ---------------------------------------------------------------------------------------------

struct AnswerMedia {
    /// None: rejected.
    accepted: Option<AcceptedMedia>,
}

struct AcceptedMedia {
    direction: &'static str,
    codec: Codec,
    /// (id, uri) pairs to answer.
    extmaps: Vec<(u8, &'static str)>,
    bandwidth: bool,
    /// Player answers: our ssrcs, msid.
    ssrc: Option<(u32, Option<u32>)>,
    msid: Option<String>,
}

fn write_answer(
    offer: &Offer,
    answers: &[AnswerMedia],
    ctx: &AnswerContext,
    cname: &str,
) -> Result<String, SdpError> {
    let Some(first) = ctx.candidates.first() else {
        return Err(SdpError::Unusable(
            "the server has no candidate address".into(),
        ));
    };
    let (net, addr) = match first {
        SocketAddr::V4(a) => ("IP4", a.ip().to_string()),
        SocketAddr::V6(a) => ("IP6", a.ip().to_string()),
    };
    let session_id: u64 = ctx.ice_ufrag.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    }) >> 2;
    let mut s = String::with_capacity(2048);
    let _ = write!(
        s,
        "v=0\r\no=- {session_id} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=ice-lite\r\n"
    );
    if let Some(group) = &offer.bundle {
        let mids: Vec<&str> = offer
            .media
            .iter()
            .zip(answers)
            .filter(|(_, a)| a.accepted.is_some())
            .filter_map(|(m, _)| m.mid.as_deref())
            .filter(|mid| group.iter().any(|g| g == mid))
            .collect();
        if !mids.is_empty() {
            let _ = write!(s, "a=group:BUNDLE {}\r\n", mids.join(" "));
        }
    }
    let _ = write!(s, "a=msid-semantic: WMS pms\r\n");
    for (m, a) in offer.media.iter().zip(answers) {
        let Some(acc) = &a.accepted else {
            let fmt = m.formats.first().map(String::as_str).unwrap_or("0");
            let proto = if m.protos.is_empty() {
                "UDP/TLS/RTP/SAVPF"
            } else {
                m.protos.as_str()
            };
            let _ = write!(
                s,
                "m={} 0 {} {}\r\nc=IN IP4 0.0.0.0\r\n",
                m.media, proto, fmt
            );
            if let Some(mid) = &m.mid {
                let _ = write!(s, "a=mid:{mid}\r\n");
            }
            s.push_str("a=inactive\r\n");
            continue;
        };
        let c = &acc.codec;
        let mut pts = c.payload_type.to_string();
        if let Some(rtx) = c.rtx_payload_type {
            let _ = write!(pts, " {rtx}");
        }
        let _ = write!(
            s,
            "m={} {} UDP/TLS/RTP/SAVPF {}\r\nc=IN {net} {addr}\r\n",
            m.media,
            first.port(),
            pts
        );
        if acc.bandwidth && ctx.max_bitrate > 0 {
            let _ = write!(
                s,
                "b=AS:{}\r\nb=TIAS:{}\r\n",
                ctx.max_bitrate.div_ceil(1000),
                ctx.max_bitrate
            );
        }
        if let Some(mid) = &m.mid {
            let _ = write!(s, "a=mid:{mid}\r\n");
        }
        let _ = write!(s, "a={}\r\n", acc.direction);
        let _ = write!(
            s,
            "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=fingerprint:sha-256 {}\r\na=setup:passive\r\na=rtcp-mux\r\n",
            ctx.ice_ufrag, ctx.ice_pwd, ctx.fingerprint
        );
        if m.rtcp_rsize {
            s.push_str("a=rtcp-rsize\r\n");
        }
        for (id, uri) in &acc.extmaps {
            let _ = write!(s, "a=extmap:{id} {uri}\r\n");
        }
        let enc = m
            .rtpmaps
            .iter()
            .find(|r| r.pt == c.payload_type)
            .map(|r| r.name.clone())
            .unwrap_or_else(|| c.name.encoding_name().to_owned());
        if c.channels > 1 {
            let _ = write!(
                s,
                "a=rtpmap:{} {}/{}/{}\r\n",
                c.payload_type, enc, c.clock_rate, c.channels
            );
        } else {
            let _ = write!(
                s,
                "a=rtpmap:{} {}/{}\r\n",
                c.payload_type, enc, c.clock_rate
            );
        }
        for fb in &c.rtcp_fb {
            let _ = write!(s, "a=rtcp-fb:{} {fb}\r\n", c.payload_type);
        }
        if !c.fmtp.is_empty() {
            let _ = write!(s, "a=fmtp:{} {}\r\n", c.payload_type, c.fmtp);
        }
        if let Some(rtx) = c.rtx_payload_type {
            let _ = write!(
                s,
                "a=rtpmap:{rtx} rtx/{}\r\na=fmtp:{rtx} apt={}\r\n",
                c.clock_rate, c.payload_type
            );
        }
        if let Some(msid) = &acc.msid {
            let _ = write!(s, "a=msid:{msid}\r\n");
        }
        if let Some((ssrc, rtx)) = acc.ssrc {
            if let Some(rtx) = rtx {
                let _ = write!(s, "a=ssrc-group:FID {ssrc} {rtx}\r\n");
            }
            let _ = write!(s, "a=ssrc:{ssrc} cname:{cname}\r\n");
            if let Some(rtx) = rtx {
                let _ = write!(s, "a=ssrc:{rtx} cname:{cname}\r\n");
            }
        }
        for (i, cand) in ctx.candidates.iter().enumerate() {
            // RFC 8445 §5.1.2.1: type preference 126 (host), local preference by order.
            let priority: u32 = (126 << 24) | ((65535 - i as u32) << 8) | 255;
            let _ = write!(
                s,
                "a=candidate:{} 1 udp {} {} {} typ host\r\n",
                i + 1,
                priority,
                cand.ip(),
                cand.port()
            );
        }
        s.push_str("a=end-of-candidates\r\n");
    }
    Ok(s)
}

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
            answers.push(AnswerMedia { accepted: None });
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
