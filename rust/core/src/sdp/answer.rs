//! Writing the answer text for the m-lines we accept or reject.

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::offer::*;
use super::*;
use crate::media::Codec;

// ---------------------------------------------------------------------------------------------
// Answer writing
// ---------------------------------------------------------------------------------------------

pub(super) struct AnswerMedia {
    /// None: rejected.
    pub(super) accepted: Option<AcceptedMedia>,
}

pub(super) struct AcceptedMedia {
    pub(super) direction: &'static str,
    pub(super) codec: Codec,
    /// (id, uri) pairs to answer.
    pub(super) extmaps: Vec<(u8, &'static str)>,
    pub(super) bandwidth: bool,
    /// Player answers: our ssrcs, msid.
    pub(super) ssrc: Option<(u32, Option<u32>)>,
    pub(super) msid: Option<String>,
}

pub(super) fn write_answer(
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
            // The format's rtpmap too: aiortc looks for a codec it knows in every audio/video
            // section, rejected or not (RFC 3264 §6 lets a rejected stream keep its formats).
            if let Some(r) = m.rtpmaps.iter().find(|r| r.pt.to_string() == fmt) {
                if r.channels > 1 {
                    let _ = write!(
                        s,
                        "a=rtpmap:{} {}/{}/{}\r\n",
                        r.pt, r.name, r.clock_rate, r.channels
                    );
                } else {
                    let _ = write!(s, "a=rtpmap:{} {}/{}\r\n", r.pt, r.name, r.clock_rate);
                }
            }
            // Credentials on a rejected section too: aiortc (and RFC 8839 parsers that read
            // every section) refuse an answer whose m-section lacks them, even at port 0.
            write_transport_attributes(&mut s, ctx);
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
        write_transport_attributes(&mut s, ctx);
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

/// ICE credentials, DTLS fingerprint and role, rtcp-mux: the same in every m-section we write.
fn write_transport_attributes(s: &mut String, ctx: &AnswerContext<'_>) {
    let _ = write!(
        s,
        "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=fingerprint:sha-256 {}\r\na=setup:passive\r\na=rtcp-mux\r\n",
        ctx.ice_ufrag, ctx.ice_pwd, ctx.fingerprint
    );
}
