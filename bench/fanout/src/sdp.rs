//! Offer text written by hand (what a browser would send) and the few answer fields the client
//! needs.

use std::net::SocketAddr;

pub const H264_PT: u8 = 102;
pub const RTX_PT: u8 = 103;
pub const OPUS_PT: u8 = 111;

pub struct OfferParams<'a> {
    pub publisher: bool,
    pub ice_ufrag: &'a str,
    pub ice_pwd: &'a str,
    /// `sha-256` fingerprint, colon separated.
    pub fingerprint: &'a str,
    pub local_addr: SocketAddr,
    pub cname: &'a str,
    /// Publisher: video, rtx, audio SSRCs. Players put none.
    pub ssrcs: Option<(u32, u32, u32)>,
}

pub fn build_offer(p: &OfferParams) -> String {
    let dir = if p.publisher { "sendonly" } else { "recvonly" };
    let session_id: u64 = rand::random::<u64>() >> 2;
    let ip = p.local_addr.ip();
    let port = p.local_addr.port();
    let mut s = String::with_capacity(2048);
    let l = |s: &mut String, line: &str| {
        s.push_str(line);
        s.push_str("\r\n");
    };
    l(&mut s, "v=0");
    l(&mut s, &format!("o=- {session_id} 2 IN IP4 127.0.0.1"));
    l(&mut s, "s=-");
    l(&mut s, "t=0 0");
    l(&mut s, "a=group:BUNDLE 0 1");
    l(&mut s, "a=extmap-allow-mixed");
    l(&mut s, "a=msid-semantic: WMS pms-fanout");
    let common = |s: &mut String, mid: u8| {
        l(s, "c=IN IP4 0.0.0.0");
        l(s, "a=rtcp:9 IN IP4 0.0.0.0");
        l(
            s,
            &format!("a=candidate:1 1 udp 2130706431 {ip} {port} typ host"),
        );
        l(s, "a=end-of-candidates");
        l(s, &format!("a=ice-ufrag:{}", p.ice_ufrag));
        l(s, &format!("a=ice-pwd:{}", p.ice_pwd));
        l(s, &format!("a=fingerprint:sha-256 {}", p.fingerprint));
        l(s, "a=setup:actpass");
        l(s, &format!("a=mid:{mid}"));
        l(s, &format!("a={dir}"));
        if p.publisher {
            let kind = if mid == 0 { "video" } else { "audio" };
            l(s, &format!("a=msid:pms-fanout pms-fanout-track-{kind}"));
        }
        l(s, "a=rtcp-mux");
    };
    // Video.
    l(
        &mut s,
        &format!("m=video 9 UDP/TLS/RTP/SAVPF {H264_PT} {RTX_PT}"),
    );
    common(&mut s, 0);
    l(&mut s, "a=rtcp-rsize");
    l(&mut s, &format!("a=rtpmap:{H264_PT} H264/90000"));
    for fb in ["goog-remb", "ccm fir", "nack", "nack pli"] {
        l(&mut s, &format!("a=rtcp-fb:{H264_PT} {fb}"));
    }
    l(
        &mut s,
        &format!(
            "a=fmtp:{H264_PT} level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
        ),
    );
    l(&mut s, &format!("a=rtpmap:{RTX_PT} rtx/90000"));
    l(&mut s, &format!("a=fmtp:{RTX_PT} apt={H264_PT}"));
    if let Some((v, rtx, _)) = p.ssrcs {
        l(&mut s, &format!("a=ssrc-group:FID {v} {rtx}"));
        for ssrc in [v, rtx] {
            l(&mut s, &format!("a=ssrc:{ssrc} cname:{}", p.cname));
            l(
                &mut s,
                &format!("a=ssrc:{ssrc} msid:pms-fanout pms-fanout-track-video"),
            );
        }
    }
    // Audio.
    l(&mut s, &format!("m=audio 9 UDP/TLS/RTP/SAVPF {OPUS_PT}"));
    common(&mut s, 1);
    l(&mut s, &format!("a=rtpmap:{OPUS_PT} opus/48000/2"));
    l(
        &mut s,
        &format!("a=fmtp:{OPUS_PT} minptime=10;useinbandfec=1"),
    );
    if let Some((_, _, a)) = p.ssrcs {
        l(&mut s, &format!("a=ssrc:{a} cname:{}", p.cname));
        l(
            &mut s,
            &format!("a=ssrc:{a} msid:pms-fanout pms-fanout-track-audio"),
        );
    }
    s
}

#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub ice_ufrag: String,
    pub ice_pwd: String,
    pub fingerprint: String,
    /// `a=setup` value of the first media section (or the session).
    pub setup: String,
    pub candidate: Option<SocketAddr>,
    /// First payload type of the `m=video` line, if video was accepted.
    pub video_pt: Option<u8>,
    pub audio_pt: Option<u8>,
    /// `a=ice-lite` (session level).
    pub ice_lite: bool,
}

/// Reads the fields the client needs from an answer. The first value of each wins.
pub fn parse_answer(sdp: &str) -> Result<Answer, String> {
    let mut a = Answer::default();
    for raw in sdp.lines() {
        let line = raw.trim();
        if line == "a=ice-lite" {
            a.ice_lite = true;
        } else if let Some(v) = line.strip_prefix("a=ice-ufrag:") {
            if a.ice_ufrag.is_empty() {
                a.ice_ufrag = v.to_string();
            }
        } else if let Some(v) = line.strip_prefix("a=ice-pwd:") {
            if a.ice_pwd.is_empty() {
                a.ice_pwd = v.to_string();
            }
        } else if let Some(v) = line.strip_prefix("a=fingerprint:") {
            if a.fingerprint.is_empty() {
                let mut it = v.split_whitespace();
                if it
                    .next()
                    .is_some_and(|alg| alg.eq_ignore_ascii_case("sha-256"))
                {
                    a.fingerprint = it.next().unwrap_or("").to_string();
                }
            }
        } else if let Some(v) = line.strip_prefix("a=setup:") {
            if a.setup.is_empty() {
                a.setup = v.to_string();
            }
        } else if let Some(v) = line.strip_prefix("a=candidate:") {
            // foundation component transport priority address port typ type ...
            let f: Vec<&str> = v.split_whitespace().collect();
            if a.candidate.is_none() && f.len() >= 6 && f[2].eq_ignore_ascii_case("udp") {
                if let (Ok(ip), Ok(port)) = (f[4].parse(), f[5].parse()) {
                    a.candidate = Some(SocketAddr::new(ip, port));
                }
            }
        } else if let Some(v) = line.strip_prefix("m=") {
            let f: Vec<&str> = v.split_whitespace().collect();
            if f.len() >= 4 && f[1] != "0" {
                let pt = f[3].parse().ok();
                match f[0] {
                    "video" if a.video_pt.is_none() => a.video_pt = pt,
                    "audio" if a.audio_pt.is_none() => a.audio_pt = pt,
                    _ => {}
                }
            }
        }
    }
    if a.ice_ufrag.is_empty() || a.ice_pwd.is_empty() {
        return Err("answer has no a=ice-ufrag/a=ice-pwd".into());
    }
    if a.candidate.is_none() {
        return Err("answer has no UDP a=candidate".into());
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(publisher: bool) -> String {
        build_offer(&OfferParams {
            publisher,
            ice_ufrag: "abcd",
            ice_pwd: "0123456789abcdef0123",
            fingerprint: "AA:BB",
            local_addr: "127.0.0.1:5000".parse().unwrap(),
            cname: "cname1",
            ssrcs: if publisher { Some((1, 2, 3)) } else { None },
        })
    }

    #[test]
    fn offers_parse_with_rtc_sdp() {
        for publisher in [true, false] {
            let text = params(publisher);
            let mut cur = std::io::Cursor::new(text.as_bytes());
            let sd = rtc_sdp::description::session::SessionDescription::unmarshal(&mut cur)
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(sd.media_descriptions.len(), 2);
            let v = &sd.media_descriptions[0];
            assert_eq!(v.media_name.media, "video");
            assert_eq!(v.media_name.formats, vec!["102", "103"]);
            let dir = if publisher { "sendonly" } else { "recvonly" };
            assert!(v.attribute(dir).is_some(), "{text}");
            assert_eq!(
                v.attribute("fmtp").flatten().map(|s| s.to_string()),
                Some(
                    "102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
                        .into()
                )
            );
            let a = &sd.media_descriptions[1];
            assert_eq!(a.media_name.media, "audio");
            assert_eq!(a.media_name.formats, vec!["111"]);
            assert!(text.contains("a=ssrc:1 cname:cname1") == publisher);
            assert!(text.contains("a=msid:pms-fanout pms-fanout-track-audio\r\n") == publisher);
        }
    }

    #[test]
    fn answer_fields() {
        let ans = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-lite\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=ice-ufrag:srv1\r\na=ice-pwd:pppppppppppppppppppppp\r\n\
            a=fingerprint:sha-256 AB:CD\r\na=setup:passive\r\n\
            a=candidate:0 1 udp 2130706431 127.0.0.1 40000 typ host\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
        let a = parse_answer(ans).unwrap();
        assert_eq!(a.ice_ufrag, "srv1");
        assert_eq!(a.setup, "passive");
        assert_eq!(a.fingerprint, "AB:CD");
        assert_eq!(a.candidate, Some("127.0.0.1:40000".parse().unwrap()));
        assert_eq!(a.video_pt, Some(102));
        assert_eq!(a.audio_pt, Some(111));
        assert!(a.ice_lite);
        assert!(
            !parse_answer(&ans.replace("a=ice-lite\r\n", ""))
                .unwrap()
                .ice_lite
        );
    }
}
