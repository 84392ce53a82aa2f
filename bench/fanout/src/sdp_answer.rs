//! The answerer side, for servers that offer to their players (Janus's VideoRoom subscribers):
//! read the offer's media sections and write a receive-only answer that keeps their order and
//! `mid`s, takes H.264 (packetization-mode 1 first) and Opus, rejects anything else (port 0),
//! and says `a=setup:active` (the client is the DTLS client) with its one host candidate.

use std::net::SocketAddr;

/// One `m=` section of an offer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfferedMedia {
    pub kind: String,
    pub proto: String,
    pub mid: String,
    /// The payload type the answer takes (H.264 for video, Opus for audio), if offered.
    pub pt: Option<u8>,
    /// `a=fmtp` of that payload type.
    pub fmtp: String,
    /// Port 0 in the offer: the section is already rejected.
    pub rejected: bool,
}

/// The media sections of `sdp`, in order.
pub fn parse_offer_media(sdp: &str) -> Vec<OfferedMedia> {
    let mut out: Vec<OfferedMedia> = vec![];
    // Per section: (pt, codec name, packetization-mode 1?) candidates, fmtp by pt.
    let mut rtpmaps: Vec<Vec<(u8, String)>> = vec![];
    let mut fmtps: Vec<Vec<(u8, String)>> = vec![];
    for raw in sdp.lines() {
        let line = raw.trim();
        if let Some(v) = line.strip_prefix("m=") {
            let f: Vec<&str> = v.split_whitespace().collect();
            out.push(OfferedMedia {
                kind: f.first().unwrap_or(&"").to_string(),
                proto: f.get(2).unwrap_or(&"UDP/TLS/RTP/SAVPF").to_string(),
                rejected: f.get(1) == Some(&"0"),
                ..Default::default()
            });
            rtpmaps.push(vec![]);
            fmtps.push(vec![]);
            continue;
        }
        let (Some(m), Some(maps), Some(fm)) =
            (out.last_mut(), rtpmaps.last_mut(), fmtps.last_mut())
        else {
            continue;
        };
        if let Some(v) = line.strip_prefix("a=mid:") {
            m.mid = v.to_string();
        } else if let Some(v) = line.strip_prefix("a=rtpmap:") {
            let mut it = v.splitn(2, ' ');
            if let (Some(Ok(pt)), Some(name)) = (it.next().map(str::parse::<u8>), it.next()) {
                maps.push((pt, name.to_ascii_lowercase()));
            }
        } else if let Some(v) = line.strip_prefix("a=fmtp:") {
            let mut it = v.splitn(2, ' ');
            if let (Some(Ok(pt)), Some(p)) = (it.next().map(str::parse::<u8>), it.next()) {
                fm.push((pt, p.to_string()));
            }
        }
    }
    for ((m, maps), fm) in out.iter_mut().zip(&rtpmaps).zip(&fmtps) {
        let fmtp_of = |pt: u8| {
            fm.iter()
                .find(|(p, _)| *p == pt)
                .map(|(_, f)| f.clone())
                .unwrap_or_default()
        };
        let pick = match m.kind.as_str() {
            "video" => {
                let h264: Vec<u8> = maps
                    .iter()
                    .filter(|(_, n)| n.starts_with("h264/"))
                    .map(|(p, _)| *p)
                    .collect();
                h264.iter()
                    .copied()
                    .find(|&p| fmtp_of(p).contains("packetization-mode=1"))
                    .or_else(|| h264.first().copied())
            }
            "audio" => maps
                .iter()
                .find(|(_, n)| n.starts_with("opus/"))
                .map(|(p, _)| *p),
            _ => None,
        };
        if let Some(pt) = pick {
            m.pt = Some(pt);
            m.fmtp = fmtp_of(pt);
        }
    }
    out
}

pub struct AnswerParams<'a> {
    pub ice_ufrag: &'a str,
    pub ice_pwd: &'a str,
    /// `sha-256` fingerprint, colon separated.
    pub fingerprint: &'a str,
    pub local_addr: SocketAddr,
}

/// A receive-only answer to `media`.
pub fn build_answer(media: &[OfferedMedia], p: &AnswerParams) -> String {
    let session_id: u64 = rand::random::<u64>() >> 2;
    let ip = p.local_addr.ip();
    let port = p.local_addr.port();
    let mut s = String::with_capacity(1500);
    let mut l = |line: &str| {
        s.push_str(line);
        s.push_str("\r\n");
    };
    l("v=0");
    l(&format!("o=- {session_id} 2 IN IP4 {ip}"));
    l("s=-");
    l("t=0 0");
    let bundle: Vec<&str> = media
        .iter()
        .filter(|m| !m.rejected && m.pt.is_some())
        .map(|m| m.mid.as_str())
        .collect();
    if !bundle.is_empty() {
        l(&format!("a=group:BUNDLE {}", bundle.join(" ")));
    }
    l("a=msid-semantic: WMS");
    for m in media {
        let Some(pt) = m.pt.filter(|_| !m.rejected) else {
            // Rejected: port 0, the first format the offer could have had is irrelevant.
            let kind = if m.kind.is_empty() {
                "application"
            } else {
                &m.kind
            };
            l(&format!("m={kind} 0 {} 0", m.proto));
            l("c=IN IP4 0.0.0.0");
            if !m.mid.is_empty() {
                l(&format!("a=mid:{}", m.mid));
            }
            l("a=inactive");
            continue;
        };
        l(&format!("m={} 9 {} {pt}", m.kind, m.proto));
        l("c=IN IP4 0.0.0.0");
        l("a=rtcp:9 IN IP4 0.0.0.0");
        l(&format!(
            "a=candidate:1 1 udp 2130706431 {ip} {port} typ host"
        ));
        l("a=end-of-candidates");
        l(&format!("a=ice-ufrag:{}", p.ice_ufrag));
        l(&format!("a=ice-pwd:{}", p.ice_pwd));
        l(&format!("a=fingerprint:sha-256 {}", p.fingerprint));
        l("a=setup:active");
        l(&format!("a=mid:{}", m.mid));
        l("a=recvonly");
        l("a=rtcp-mux");
        if m.kind == "video" {
            l("a=rtcp-rsize");
            l(&format!("a=rtpmap:{pt} H264/90000"));
            for fb in ["ccm fir", "nack", "nack pli"] {
                l(&format!("a=rtcp-fb:{pt} {fb}"));
            }
        } else {
            l(&format!("a=rtpmap:{pt} opus/48000/2"));
        }
        if !m.fmtp.is_empty() {
            l(&format!("a=fmtp:{pt} {}", m.fmtp));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shape of a Janus 1.1 VideoRoom subscriber offer (video first, as the publisher had it).
    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=VideoRoom 1\r\nt=0 0\r\n\
        a=group:BUNDLE 0 1\r\na=ice-lite\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\nc=IN IP4 10.0.0.1\r\na=sendonly\r\na=mid:0\r\n\
        a=rtcp-mux\r\na=ice-ufrag:J1\r\na=ice-pwd:JJJJJJJJJJJJJJJJJJJJJJ\r\n\
        a=ice-options:trickle\r\na=fingerprint:sha-256 AA:BB\r\na=setup:actpass\r\n\
        a=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\n\
        a=fmtp:102 profile-level-id=42e01f;packetization-mode=1\r\n\
        a=candidate:1 1 udp 2015363327 10.0.0.1 20000 typ host\r\na=end-of-candidates\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 10.0.0.1\r\na=sendonly\r\na=mid:1\r\n\
        a=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\n\
        m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n";

    #[test]
    fn offer_media_are_read_in_order() {
        let m = parse_offer_media(OFFER);
        assert_eq!(m.len(), 3);
        assert_eq!(
            (m[0].kind.as_str(), m[0].mid.as_str(), m[0].pt),
            ("video", "0", Some(102))
        );
        assert!(m[0].fmtp.contains("packetization-mode=1"));
        assert_eq!(
            (m[1].kind.as_str(), m[1].mid.as_str(), m[1].pt),
            ("audio", "1", Some(111))
        );
        assert!(m[2].rejected && m[2].pt.is_none());
    }

    #[test]
    fn answer_parses_and_mirrors_the_offer() {
        let media = parse_offer_media(OFFER);
        let text = build_answer(
            &media,
            &AnswerParams {
                ice_ufrag: "abcd",
                ice_pwd: "0123456789abcdef0123",
                fingerprint: "CC:DD",
                local_addr: "10.0.0.2:5000".parse().unwrap(),
            },
        );
        let mut cur = std::io::Cursor::new(text.as_bytes());
        let sd = rtc_sdp::description::session::SessionDescription::unmarshal(&mut cur)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(sd.media_descriptions.len(), 3);
        let v = &sd.media_descriptions[0];
        assert_eq!(v.media_name.formats, vec!["102"]);
        assert!(v.attribute("recvonly").is_some());
        assert_eq!(v.attribute("setup").flatten(), Some("active"));
        assert_eq!(v.attribute("mid").flatten(), Some("0"));
        assert_eq!(sd.media_descriptions[1].media_name.formats, vec!["111"]);
        assert_eq!(sd.media_descriptions[2].media_name.port.value, 0);
        assert!(text.contains("a=group:BUNDLE 0 1\r\n"), "{text}");
        assert!(text.contains("a=candidate:1 1 udp 2130706431 10.0.0.2 5000 typ host"));
    }
}
