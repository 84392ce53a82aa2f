//! The RTSP commands of [`Engine`]: players and publishers whose media the core carries over
//! TCP interleaved or UDP. Builds the [`RtspServerPeer`] and messages it by id
//! ([`RtspMessage`]); the media path is the peer's.

use super::*;
use crate::peers::rtsp_server::{self, RtspMessage, RtspServerPeer};

impl Engine {
    /// An RTSP player of the live `stream` (not started; tracks come with [`rtsp_add_track`]).
    ///
    /// [`rtsp_add_track`]: Engine::rtsp_add_track
    pub fn create_rtsp_player(&self, stream: &str) -> Result<TransportId, EngineError> {
        let mut reg = self.shared.registry();
        let Some(entry) = reg.streams.get(stream) else {
            return Err(EngineError::NotFound(format!(
                "stream {stream:?} is not live"
            )));
        };
        let (worker, producer) = (entry.worker, entry.producer);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        reg.transports
            .insert(id, rtsp_info(worker, stream, false, Vec::new()));
        drop(reg);
        self.add_peer(
            worker,
            id,
            PeerInfo::transport(stream, false),
            Box::new(RtspServerPeer::player(producer)),
        );
        Ok(id)
    }

    /// An RTSP publisher of `stream` with the tracks of its ANNOUNCE; the stream is live at once.
    /// `resumable`: a cascade pull, whose broken connection raises `RtspDisconnected` and waits
    /// for [`rtsp_resume`](Engine::rtsp_resume) instead of ending the stream.
    pub fn create_rtsp_publisher(
        &self,
        stream: &str,
        tracks: &[RtspTrackSpec],
        resumable: bool,
    ) -> Result<TransportId, EngineError> {
        let mut producer_tracks = Vec::new();
        let mut announce_map = Vec::with_capacity(tracks.len());
        for (i, t) in tracks.iter().enumerate() {
            match rtsp_server::producer_track(i, t) {
                Ok(Some(pt)) => {
                    announce_map.push(Some(producer_tracks.len()));
                    producer_tracks.push(pt);
                }
                Ok(None) => announce_map.push(None),
                Err(m) => return Err(EngineError::BadRequest(m)),
            }
        }
        if producer_tracks.is_empty() {
            let offered: Vec<String> = tracks
                .iter()
                .map(|t| format!("{}/{}", t.kind, t.codec))
                .collect();
            return Err(EngineError::Unsupported(format!(
                "no track has a codec we forward (announced: {}; forwarded: {})",
                offered.join(", "),
                "opus, PCMA, PCMU, VP8, VP9, H264, H265, AV1, MPEG4-GENERIC"
            )));
        }
        let mut reg = self.shared.registry();
        if reg.name_taken(stream) {
            return Err(EngineError::Conflict(format!(
                "stream {stream:?} is already published"
            )));
        }
        let worker = reg.least_loaded(self.shared.workers().len());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        reg.streams.insert(
            stream.to_string(),
            StreamEntry::new(worker, id, producer_tracks.clone()),
        );
        reg.transports
            .insert(id, rtsp_info(worker, stream, true, announce_map));
        drop(reg);
        self.add_peer(
            worker,
            id,
            PeerInfo::transport(stream, true),
            Box::new(if resumable {
                RtspServerPeer::pull(producer_tracks)
            } else {
                RtspServerPeer::publisher(producer_tracks)
            }),
        );
        Ok(id)
    }

    /// One RTSP SETUP: `channels` (TCP interleaved) or `client` (UDP: ip, rtp port, rtcp port).
    pub fn rtsp_add_track(
        &self,
        id: TransportId,
        track: usize,
        channels: Option<(u8, u8)>,
        client: Option<(IpAddr, u16, u16)>,
    ) -> Result<RtspTrackSetup, EngineError> {
        if channels.is_some() == client.is_some() {
            return Err(EngineError::BadRequest(
                "give either channels (TCP) or client (UDP)".into(),
            ));
        }
        let reg = self.shared.registry();
        let Some(info) = reg.transports.get(&id).filter(|t| t.rtsp) else {
            return Err(EngineError::NotFound(format!("no RTSP transport {id}")));
        };
        let worker = info.worker;
        let tracks = reg
            .streams
            .get(&info.stream)
            .map(|s| s.tracks.clone())
            .unwrap_or_default();
        let (source, consumer) = if info.publisher {
            let Some(source) = info.announce_map.get(track).copied() else {
                return Err(EngineError::BadRequest(format!(
                    "no announced track {track}"
                )));
            };
            (source, None)
        } else {
            let Some(src) = tracks.get(track) else {
                return Err(EngineError::BadRequest(format!(
                    "the stream has no track {track}"
                )));
            };
            let mut rng = rand::thread_rng();
            let (ssrc, seq, ts) = (rng.gen::<u32>(), rng.gen::<u16>(), rng.gen::<u32>());
            let codec = pms_core::media::Codec {
                rtx_payload_type: None,
                rtcp_fb: Vec::new(),
                ..src.codec.clone()
            };
            let ct = pms_core::media::ConsumerTrack {
                kind: src.kind,
                mid: track.to_string(),
                codec,
                ssrc,
                rtx_ssrc: None,
                extensions: Default::default(),
                producer_track: track,
            };
            (Some(track), Some((ct, seq, ts)))
        };
        drop(reg);
        let mut setup = RtspTrackSetup {
            ssrc: None,
            seq: None,
            rtptime: None,
            server_port: None,
        };
        if let Some((ct, seq, ts)) = &consumer {
            setup.ssrc = Some(ct.ssrc);
            setup.seq = Some(*seq);
            setup.rtptime = Some(*ts);
        }
        let udp = match client {
            Some((ip, rtp_port, rtcp_port)) => {
                let (rtp, rtcp) = rtsp_server::bind_pair(self.listen_ip).map_err(|e| {
                    EngineError::Internal(format!("cannot bind an RTSP UDP pair: {e}"))
                })?;
                let ports = (
                    rtp.local_addr()
                        .map_err(|e| EngineError::Internal(e.to_string()))?
                        .port(),
                    rtcp.local_addr()
                        .map_err(|e| EngineError::Internal(e.to_string()))?
                        .port(),
                );
                setup.server_port = Some(ports);
                Some((
                    rtp,
                    rtcp,
                    std::net::SocketAddr::new(ip, rtp_port),
                    std::net::SocketAddr::new(ip, rtcp_port),
                ))
            }
            None => None,
        };
        self.message(
            worker,
            id,
            RtspMessage::AddTrack {
                source,
                consumer,
                channels,
                udp,
            },
        );
        Ok(setup)
    }

    /// PLAY or RECORD. `tcp`: the connection the core takes over (interleaved), with the reply
    /// to write first and bytes already read past the request.
    pub fn rtsp_start(
        &self,
        id: TransportId,
        tcp: Option<std::net::TcpStream>,
        reply: Vec<u8>,
        pending: Vec<u8>,
    ) -> Result<(), EngineError> {
        let worker = self.rtsp_worker(id)?;
        if let Some(s) = &tcp {
            check_tcp(s)?;
        }
        self.message(
            worker,
            id,
            RtspMessage::Start {
                tcp,
                reply,
                pending,
            },
        );
        Ok(())
    }

    /// A pull's new connection after `RtspDisconnected`: `channels` per track (in SETUP order)
    /// as the new SETUPs answered, `pending` the bytes read past the PLAY reply. The producer's
    /// source restarts (see `Router::restart_producer`); its players stay.
    pub fn rtsp_resume(
        &self,
        id: TransportId,
        tcp: std::net::TcpStream,
        channels: Vec<(u8, u8)>,
        pending: Vec<u8>,
    ) -> Result<(), EngineError> {
        let worker = self.rtsp_worker(id)?;
        check_tcp(&tcp)?;
        self.message(
            worker,
            id,
            RtspMessage::Resume {
                tcp,
                channels,
                pending,
            },
        );
        Ok(())
    }

    /// PAUSE: stops forwarding to an RTSP player until the next [`rtsp_start`](Engine::rtsp_start).
    pub fn rtsp_pause(&self, id: TransportId) -> Result<(), EngineError> {
        let worker = self.rtsp_worker(id)?;
        self.message(worker, id, RtspMessage::Pause);
        Ok(())
    }

    /// Writes an RTSP message on a connection the core owns, whole, between frames.
    pub fn rtsp_send(&self, id: TransportId, data: Vec<u8>) -> Result<(), EngineError> {
        let worker = self.rtsp_worker(id)?;
        self.message(worker, id, RtspMessage::Send { data });
        Ok(())
    }

    fn rtsp_worker(&self, id: TransportId) -> Result<usize, EngineError> {
        self.shared
            .registry()
            .transports
            .get(&id)
            .filter(|t| t.rtsp)
            .map(|t| t.worker)
            .ok_or_else(|| EngineError::NotFound(format!("no RTSP transport {id}")))
    }
}

/// A socket handed in for RTSP media: a connected TCP stream, made non-blocking.
fn check_tcp(s: &std::net::TcpStream) -> Result<(), EngineError> {
    let sock = socket2::SockRef::from(s);
    let tcp_ok = matches!(sock.r#type(), Ok(t) if t == socket2::Type::STREAM)
        && matches!(sock.domain(), Ok(d) if d == socket2::Domain::IPV4 || d == socket2::Domain::IPV6)
        && sock.peer_addr().is_ok();
    if !tcp_ok {
        return Err(EngineError::BadRequest(
            "fd is not a connected TCP socket".into(),
        ));
    }
    s.set_nonblocking(true)
        .map_err(|e| EngineError::BadRequest(format!("not a usable socket: {e}")))?;
    let _ = s.set_nodelay(true);
    Ok(())
}
