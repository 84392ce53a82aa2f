//! The GB28181 commands of [`Engine`]: bind the media port (a [`GbPort`] peer), create an
//! ingest (a [`GbIngest`] peer); the media path is theirs (`crate::peers::gb`).
//!
//! Decision: one TCP listener and one UDP socket (the media port, on worker [`GB_WORKER`])
//! serve all cameras. A UDP ingest lives on the port's worker (its datagrams are matched where
//! they are read: no copy between threads). A TCP ingest (tcp-passive, tcp-active) lives on the
//! least loaded worker; the port hands it its connection once matched (see
//! `crate::peers::gb`), so TCP cameras use every worker. Players of a GB stream join the
//! ingest's worker as for any stream.

use std::net::{SocketAddr, TcpListener, UdpSocket};

use super::*;
use crate::peers::gb::ingest::GbIngest;
use crate::peers::gb::port::GbPort;
use crate::peers::gb::{IngestMessage, IngestMode, GB_WORKER};

/// UDP receive buffer asked for the media port: a burst of IDR packets from many cameras.
const UDP_RECV_BUFFER: usize = 8 << 20;

impl Engine {
    /// Binds the GB28181 media port on `ip`: a TCP listener and a UDP socket. `port` 0: the
    /// system picks the TCP port and UDP takes the same number when it can. Returns
    /// `(tcp_port, udp_port)`. Once per engine.
    pub fn gb_listen(&self, ip: IpAddr, port: u16) -> io::Result<(u16, u16)> {
        let mut bound = match self.gb_port.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if bound.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the GB28181 media port is already bound",
            ));
        }
        let listener = TcpListener::bind((ip, port))?;
        let tcp_port = listener.local_addr()?.port();
        let udp = match UdpSocket::bind((ip, tcp_port)) {
            Ok(u) => u,
            Err(_) if port == 0 => UdpSocket::bind((ip, 0))?,
            Err(e) => return Err(e),
        };
        let udp_port = udp.local_addr()?.port();
        listener.set_nonblocking(true)?;
        udp.set_nonblocking(true)?;
        let _ = socket2::SockRef::from(&udp).set_recv_buffer_size(UDP_RECV_BUFFER);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let port = GbPort::new(listener, udp);
        self.add_peer(GB_WORKER, id, PeerInfo::service(), Box::new(port));
        *bound = Some(id);
        Ok((tcp_port, udp_port))
    }

    /// A playback ingest's speed: its output is re-timed so players keep a 1x clock while the
    /// device sends `scale` times faster (`pms_core::gb::Retimer`). Any call turns re-timing on
    /// (1.0: same pace, seeks continuous). Unknown or non-GB ids: `NotFound`.
    pub fn gb_set_scale(&self, id: TransportId, scale: f64) -> Result<(), EngineError> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(EngineError::BadRequest(format!(
                "scale {scale} is not a positive number"
            )));
        }
        // A GB28181 ingest: a publisher that is neither RTSP nor WebRTC (no ICE ufrag).
        let worker = self
            .shared
            .registry()
            .transports
            .get(&id)
            .filter(|t| t.publisher && !t.rtsp && t.ufrag.is_empty())
            .map(|t| t.worker);
        let Some(worker) = worker else {
            return Err(EngineError::NotFound(format!("no GB28181 ingest {id}")));
        };
        self.message(worker, id, IngestMessage::Scale(scale));
        Ok(())
    }

    /// Waits for a camera's PS-over-RTP stream with `ssrc` and publishes it as `stream` once
    /// its codecs are known. `transport`: `tcp-passive`, `udp` or `tcp-active` (then `connect`
    /// is the camera's address). `peer_ip`: the camera's IP, to match a camera that ignores
    /// the SSRC. The name is reserved at once.
    pub fn create_gb_ingest(
        &self,
        stream: &str,
        ssrc: u32,
        transport: &str,
        peer_ip: Option<IpAddr>,
        connect: Option<SocketAddr>,
    ) -> Result<TransportId, EngineError> {
        let mode = match (transport, connect) {
            ("tcp-passive", None) => IngestMode::TcpPassive,
            ("udp", None) => IngestMode::Udp,
            ("tcp-active", Some(addr)) => IngestMode::TcpActive(addr),
            ("tcp-active", None) => {
                return Err(EngineError::BadRequest(
                    "tcp-active needs connect=(ip, port)".into(),
                ))
            }
            ("tcp-passive" | "udp", Some(_)) => {
                return Err(EngineError::BadRequest(format!(
                    "connect is only for tcp-active, not {transport}"
                )))
            }
            _ => {
                return Err(EngineError::BadRequest(format!(
                    "transport {transport:?}: expected tcp-passive, udp or tcp-active"
                )))
            }
        };
        if stream.is_empty() {
            return Err(EngineError::BadRequest("empty stream name".into()));
        }
        let port = match self.gb_port.lock() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        };
        if port.is_none() && !matches!(mode, IngestMode::TcpActive(_)) {
            return Err(EngineError::BadRequest(
                "the GB28181 media port is not bound (gb_listen)".into(),
            ));
        }
        let mut reg = self.shared.registry();
        if reg.name_taken(stream) {
            return Err(EngineError::Conflict(format!(
                "stream {stream:?} is already published or reserved"
            )));
        }
        let worker = match mode {
            IngestMode::Udp => GB_WORKER,
            _ => reg.least_loaded(self.shared.workers().len()),
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        reg.reserved.insert(stream.to_string(), id);
        reg.transports.insert(
            id,
            registry::TransportInfo {
                worker,
                stream: stream.to_string(),
                publisher: true,
                ufrag: String::new(),
                muted: (false, false),
                rtsp: false,
                announce_map: Vec::new(),
            },
        );
        drop(reg);
        let ingest = GbIngest::new(stream, ssrc, mode, peer_ip, port);
        self.add_peer(
            worker,
            id,
            PeerInfo::transport(stream, true),
            Box::new(ingest),
        );
        Ok(id)
    }
}
