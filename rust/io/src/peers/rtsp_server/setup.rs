//! The model of an ANNOUNCEd track and the UDP port pairs of RTSP sessions: what the engine
//! needs to build an RTSP peer's tracks and sockets on the caller's thread. No state, no poll.

use std::io;
use std::net::{IpAddr, UdpSocket};

use pms_core::media::{Codec, CodecName, HeaderExtensions, MediaKind, ProducerTrack};

/// The producer track of ANNOUNCE track `index`; `Ok(None)` for a codec we do not forward.
pub(crate) fn producer_track(
    index: usize,
    t: &crate::RtspTrackSpec,
) -> Result<Option<ProducerTrack>, String> {
    let kind = match t.kind.to_ascii_lowercase().as_str() {
        "audio" => MediaKind::Audio,
        "video" => MediaKind::Video,
        _ => return Ok(None),
    };
    let Some(name) = CodecName::from_encoding_name(&t.codec) else {
        return Ok(None);
    };
    if name.kind() != kind {
        return Ok(None);
    }
    if t.payload_type > 127 {
        return Err(format!(
            "track {index}: payload type {} out of range",
            t.payload_type
        ));
    }
    let mut fmtp = t.fmtp.trim().to_string();
    if name == CodecName::H264 && !fmtp.to_ascii_lowercase().contains("packetization-mode") {
        // RTSP senders use FU-A/STAP-A (mode 1) in practice; WebRTC players require the flag.
        fmtp = if fmtp.is_empty() {
            "packetization-mode=1".into()
        } else {
            format!("packetization-mode=1;{fmtp}")
        };
    }
    let clock_rate = match (t.clock_rate, name) {
        (0, CodecName::Opus) => 48000,
        (0, CodecName::Pcma | CodecName::Pcmu) => 8000,
        (0, _) => 90000,
        (c, _) => c,
    };
    let channels = if kind == MediaKind::Audio {
        t.channels.max(1)
    } else {
        0
    };
    Ok(Some(ProducerTrack {
        kind,
        mid: index.to_string(),
        codec: Codec {
            name,
            payload_type: t.payload_type,
            clock_rate,
            channels,
            fmtp,
            rtx_payload_type: None,
            rtcp_fb: Vec::new(),
        },
        ssrc: None,
        rtx_ssrc: None,
        extensions: HeaderExtensions::default(),
    }))
}

/// Binds an RTP/RTCP socket pair on `ip` with ports chosen by the system: an even/odd pair
/// when a few tries find one, else any two ports.
pub(crate) fn bind_pair(ip: IpAddr) -> io::Result<(UdpSocket, UdpSocket)> {
    for _ in 0..16 {
        let a = UdpSocket::bind((ip, 0))?;
        let port = a.local_addr()?.port();
        let pair = if port % 2 == 0 {
            UdpSocket::bind((ip, port.wrapping_add(1))).map(|b| (a, b))
        } else {
            UdpSocket::bind((ip, port - 1)).map(|b| (b, a))
        };
        if let Ok((rtp, rtcp)) = pair {
            rtp.set_nonblocking(true)?;
            rtcp.set_nonblocking(true)?;
            return Ok((rtp, rtcp));
        }
    }
    let (rtp, rtcp) = (UdpSocket::bind((ip, 0))?, UdpSocket::bind((ip, 0))?);
    rtp.set_nonblocking(true)?;
    rtcp.set_nonblocking(true)?;
    Ok((rtp, rtcp))
}
