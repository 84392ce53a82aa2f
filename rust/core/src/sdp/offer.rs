//! The offer model: what we read from a peer's SDP offer (parsed with `rtc-sdp`).

use std::collections::HashMap;
use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use rtc_sdp::description::session::SessionDescription;

use super::*;
use crate::media::MediaKind;

// ---------------------------------------------------------------------------------------------
// Offer model
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub(super) struct Rtpmap {
    pub(super) pt: u8,
    pub(super) name: String,
    pub(super) clock_rate: u32,
    pub(super) channels: u16,
}

#[derive(Debug, Clone, Default)]
pub(super) struct OfferMedia {
    pub(super) media: String,
    pub(super) port: i64,
    pub(super) protos: String,
    pub(super) formats: Vec<String>,
    pub(super) mid: Option<String>,
    pub(super) direction: Option<String>,
    pub(super) rtpmaps: Vec<Rtpmap>,
    pub(super) fmtp: HashMap<u8, String>,
    pub(super) rtcp_fb: HashMap<String, Vec<String>>,
    pub(super) extmaps: Vec<(u8, String)>,
    pub(super) ssrcs: Vec<u32>,
    pub(super) fid: Option<(u32, u32)>,
    pub(super) ice_ufrag: Option<String>,
    pub(super) ice_pwd: Option<String>,
    pub(super) fingerprints: Vec<(String, String)>,
    pub(super) setup: Option<String>,
    pub(super) rtcp_rsize: bool,
}

impl OfferMedia {
    pub(super) fn kind(&self) -> Option<MediaKind> {
        match self.media.as_str() {
            "audio" => Some(MediaKind::Audio),
            "video" => Some(MediaKind::Video),
            _ => None,
        }
    }

    /// Offered codecs in the offer's order (formats order), static PTs 0/8 included.
    pub(super) fn codecs(&self) -> Vec<Rtpmap> {
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

    pub(super) fn fmtp_of(&self, pt: u8) -> &str {
        self.fmtp.get(&pt).map(String::as_str).unwrap_or("")
    }

    pub(super) fn rtx_for(&self, pt: u8) -> Option<u8> {
        self.rtpmaps
            .iter()
            .filter(|r| r.name.eq_ignore_ascii_case("rtx"))
            .find(|r| {
                fmtp_param(self.fmtp_of(r.pt), "apt").and_then(|v| v.parse::<u8>().ok()) == Some(pt)
            })
            .map(|r| r.pt)
    }

    pub(super) fn feedback_for(&self, pt: u8) -> Vec<String> {
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

    pub(super) fn ext_id(&self, uri: &str) -> Option<u8> {
        self.extmaps
            .iter()
            .find(|(_, u)| u == uri)
            .map(|(id, _)| *id)
    }

    pub(super) fn describe_offered(&self) -> String {
        let names: Vec<String> = self
            .codecs()
            .iter()
            .filter(|r| !is_aux_codec(&r.name))
            .map(|r| format!("{}/{}", self.media, r.name))
            .collect();
        names.join(", ")
    }
}

pub(super) fn is_aux_codec(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "rtx" | "red" | "ulpfec" | "flexfec-03" | "telephone-event" | "cn"
    )
}

/// The value of `key` in an fmtp string `a=1;b=2`.
pub(super) fn fmtp_param<'a>(fmtp: &'a str, key: &str) -> Option<&'a str> {
    fmtp.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim())
    })
}

#[derive(Debug, Default)]
pub(super) struct Offer {
    pub(super) media: Vec<OfferMedia>,
    pub(super) bundle: Option<Vec<String>>,
    pub(super) ice_ufrag: Option<String>,
    pub(super) ice_pwd: Option<String>,
    pub(super) fingerprints: Vec<(String, String)>,
    pub(super) setup: Option<String>,
}

pub(super) fn parse_offer(text: &str) -> Result<Offer, SdpError> {
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

pub(super) fn parse_rtpmap(v: &str) -> Option<Rtpmap> {
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
pub(super) fn remote_params(offer: &Offer, used: &[usize]) -> Result<RemoteParams, SdpError> {
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
