//! The media plane as the control plane sees it: [`Engine`] with typed, non-blocking commands
//! (`create_publisher`, `create_player`, `set_muted`, `close_transport`, RTSP and GB28181...),
//! its configuration and its errors. It owns the worker threads and the shared registry.
//!
//! This is the one place that names kinds of peer: each command builds its peer
//! (`crate::peers`) on the caller's thread (SDP work, microseconds) and hands it to its worker
//! as [`Command::Add`], or messages it by id. It never touches a packet. Files: this one (the
//! engine and what all kinds share), [`webrtc`], [`rtsp`], [`gb`], [`record`],
//! [`transcode`].

mod gb;
mod record;
mod rtsp;
mod transcode;
mod webrtc;

pub use transcode::TranscodedTrack;

use std::any::Any;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use pms_core::cert::DtlsIdentity;
use pms_core::media::{ProducerTrack, TransportId};
use pms_core::sdp::SdpError;
use rand::distributions::Alphanumeric;
use rand::Rng;

use crate::events::EventQueue;
use crate::media_stats::{self, StreamStats};
use crate::ports;
use crate::registry::{self, StreamEntry, TransportInfo};
use crate::stats::STAT_NAMES;
use crate::worker::{self, Command, Peer, PeerInfo, Shared, Worker, WorkerHandle};

/// How the media plane is set up.
pub struct EngineConfig {
    /// Worker threads; 0 means one per CPU.
    pub workers: usize,
    pub listen_ip: IpAddr,
    /// Addresses for ICE candidates (already resolved by
    /// [`candidate_ips`](crate::candidate_ips) or given).
    pub announced_ips: Vec<IpAddr>,
    pub min_port: u16,
    pub max_port: u16,
    pub identity: DtlsIdentity,
    /// A transport whose ICE and DTLS do not complete in this time is closed.
    pub connect_timeout: Duration,
}

/// A command the media plane refused. `code()` follows the signaling error codes.
#[derive(Debug)]
#[non_exhaustive]
pub enum EngineError {
    NotFound(String),
    Conflict(String),
    /// A malformed command argument (RTSP track index, channels, addresses).
    BadRequest(String),
    /// No track with a codec we forward.
    Unsupported(String),
    Sdp(SdpError),
    Internal(String),
}

impl EngineError {
    pub fn code(&self) -> u16 {
        match self {
            EngineError::BadRequest(_) => 400,
            EngineError::NotFound(_) => 404,
            EngineError::Conflict(_) => 409,
            EngineError::Unsupported(_) => 415,
            EngineError::Sdp(SdpError::NoCommonCodec(_)) => 415,
            EngineError::Sdp(_) => 422,
            EngineError::Internal(_) => 500,
        }
    }
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::NotFound(m)
            | EngineError::Conflict(m)
            | EngineError::Internal(m)
            | EngineError::BadRequest(m)
            | EngineError::Unsupported(m) => f.write_str(m),
            EngineError::Sdp(SdpError::NoCommonCodec(m))
            | EngineError::Sdp(SdpError::Unusable(m)) => f.write_str(m),
            #[allow(unreachable_patterns)]
            EngineError::Sdp(e) => write!(f, "{e:?}"),
        }
    }
}

impl std::error::Error for EngineError {}

/// One track of an RTSP ANNOUNCE, as the control plane parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspTrackSpec {
    pub kind: String,
    pub codec: String,
    pub payload_type: u8,
    pub clock_rate: u32,
    pub channels: u16,
    pub fmtp: String,
}

/// What one RTSP SETUP gives back: for players the SSRC and the first sequence number and RTP
/// timestamp (`RTP-Info`); for UDP the server's port pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtspTrackSetup {
    pub ssrc: Option<u32>,
    pub seq: Option<u16>,
    pub rtptime: Option<u32>,
    pub server_port: Option<(u16, u16)>,
}

fn rtsp_info(
    worker: usize,
    stream: &str,
    publisher: bool,
    announce_map: Vec<Option<usize>>,
) -> TransportInfo {
    TransportInfo {
        worker,
        stream: stream.to_string(),
        publisher,
        ufrag: String::new(),
        muted: (false, false),
        rtsp: true,
        announce_map,
    }
}

/// The media plane.
pub struct Engine {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    ports: Vec<u16>,
    listen_ip: IpAddr,
    announced_ips: Vec<IpAddr>,
    identity: DtlsIdentity,
    connect_timeout: Duration,
    next_id: AtomicU64,
    /// The GB28181 media port's peer id once bound (on `peers::gb::GB_WORKER`).
    gb_port: Mutex<Option<TransportId>>,
}

fn random_string(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

impl Engine {
    /// Binds the sockets and starts the workers.
    pub fn start(config: EngineConfig, events: Arc<EventQueue>) -> io::Result<Engine> {
        let workers = if config.workers == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            config.workers
        };
        let sockets = ports::bind_worker_sockets(
            config.listen_ip,
            config.min_port,
            config.max_port,
            workers,
        )?;
        let ports = sockets
            .iter()
            .map(|s| s.local_addr().map(|a| a.port()))
            .collect::<io::Result<Vec<_>>>()?;
        let shared = Arc::new(Shared::new(workers, events));
        let mut handles = Vec::with_capacity(workers);
        let mut threads = Vec::with_capacity(workers);
        for (index, socket) in sockets.into_iter().enumerate() {
            let poll = mio::Poll::new()?;
            let waker = mio::Waker::new(poll.registry(), worker::WAKER)?;
            let (tx, rx) = channel();
            let w = Worker::new(index, poll, socket, rx, shared.clone())?;
            handles.push(WorkerHandle { tx, waker });
            threads.push(
                std::thread::Builder::new()
                    .name(format!("pms-worker-{index}"))
                    .spawn(move || w.run())?,
            );
        }
        let _ = shared.handles.set(handles);
        Ok(Engine {
            shared,
            threads: Mutex::new(threads),
            ports,
            listen_ip: config.listen_ip,
            announced_ips: config.announced_ips,
            identity: config.identity,
            connect_timeout: config.connect_timeout,
            next_id: AtomicU64::new(1),
            gb_port: Mutex::new(None),
        })
    }

    /// UDP ports the workers listen on (one per worker; repeated when shared).
    pub fn bound_ports(&self) -> Vec<u16> {
        self.ports.clone()
    }

    pub fn fingerprint(&self) -> String {
        format!("sha-256 {}", self.identity.fingerprint())
    }

    fn candidates(&self, worker: usize) -> Vec<std::net::SocketAddr> {
        let port = self.ports.get(worker).copied().unwrap_or(0);
        self.announced_ips
            .iter()
            .map(|ip| std::net::SocketAddr::new(*ip, port))
            .collect()
    }

    /// `rtsp.mergeWriteMs`: hold each RTSP TCP player's output up to `ms` milliseconds so that
    /// its frames leave in one system call (0, the default: one write per player per poll
    /// iteration). Takes effect at once for every worker.
    pub fn set_rtsp_merge_write(&self, ms: u64) {
        self.shared.rtsp_merge_write_ms.store(ms, Ordering::Relaxed);
    }

    /// `webrtc.udpGso`: whether a player's datagrams of one poll iteration may leave as one
    /// segmented send (default true; the kernel's refusal turns it off by itself). Takes effect
    /// at the next flush of every worker.
    pub fn set_udp_gso(&self, on: bool) {
        self.shared.udp_gso.store(on, Ordering::Relaxed);
    }

    /// Codec names of a live stream.
    pub fn stream_codecs(&self, stream: &str) -> Option<Vec<String>> {
        self.shared
            .registry()
            .streams
            .get(stream)
            .map(|s| registry::codec_names(&s.tracks))
    }

    /// Per producer track of a live stream: what DESCRIBE needs.
    pub fn stream_tracks(&self, stream: &str) -> Option<Vec<ProducerTrack>> {
        self.shared
            .registry()
            .streams
            .get(stream)
            .map(|s| s.tracks.as_ref().clone())
    }

    /// Sets the mute state; `None` keeps a kind. Returns `(video, audio)`, or `None` for an unknown id.
    pub fn set_muted(
        &self,
        id: TransportId,
        video: Option<bool>,
        audio: Option<bool>,
    ) -> Option<(bool, bool)> {
        let mut reg = self.shared.registry();
        let info = reg.transports.get_mut(&id)?;
        if let Some(v) = video {
            info.muted.0 = v;
        }
        if let Some(a) = audio {
            info.muted.1 = a;
        }
        let (state, worker) = (info.muted, info.worker);
        drop(reg);
        self.send(worker, Command::SetMuted { id, video, audio });
        Some(state)
    }

    /// Closes a transport; unknown ids are ignored.
    pub fn close_transport(&self, id: TransportId) {
        let worker = self.shared.registry().transports.get(&id).map(|t| t.worker);
        if let Some(worker) = worker {
            self.send(worker, Command::Close { id });
        }
    }

    /// Counters summed over the workers.
    pub fn stats(&self) -> Vec<(&'static str, u64)> {
        STAT_NAMES
            .iter()
            .enumerate()
            .map(|(i, name)| {
                (
                    *name,
                    self.shared
                        .stats
                        .iter()
                        .map(|s| s[i].load(Ordering::Relaxed))
                        .sum(),
                )
            })
            .collect()
    }

    /// Each worker's counters (as it last published them), in worker order.
    pub fn worker_stats(&self) -> Vec<Vec<(&'static str, u64)>> {
        self.shared
            .stats
            .iter()
            .map(|slot| {
                STAT_NAMES
                    .iter()
                    .zip(slot.iter())
                    .map(|(name, v)| (*name, v.load(Ordering::Relaxed)))
                    .collect()
            })
            .collect()
    }

    /// Each live stream's counters by kind, bitrate and consumers, as the workers last published
    /// them (about once a second); a stream whose worker has not published yet is left out.
    pub fn stream_stats(&self) -> Vec<StreamStats> {
        let streams: Vec<(String, TransportId)> = self
            .shared
            .registry()
            .streams
            .iter()
            .map(|(name, s)| (name.clone(), s.producer))
            .collect();
        media_stats::stream_stats(&self.shared.media, &streams)
    }

    /// The join histogram (connect to first keyframe) summed over the workers.
    pub fn join_histogram(&self) -> pms_core::router::JoinHistogram {
        media_stats::join_histogram(&self.shared.media)
    }

    fn send(&self, worker: usize, cmd: Command) {
        if let Some(h) = self.shared.workers().get(worker) {
            h.send(cmd);
        }
    }

    /// Hands a new peer to its worker (`start` runs there).
    fn add_peer(&self, worker: usize, id: TransportId, info: PeerInfo, peer: Box<dyn Peer>) {
        self.send(worker, Command::Add { id, info, peer });
    }

    /// Sends a message to peer `id` on its worker (its kind downcasts it).
    fn message(&self, worker: usize, id: TransportId, msg: impl Any + Send) {
        self.send(
            worker,
            Command::Message {
                id,
                msg: Box::new(msg),
            },
        );
    }

    /// Stops the workers (their transports are closed) and waits for them. Idempotent.
    pub fn shutdown(&self) {
        for h in self.shared.workers() {
            h.send(Command::Shutdown);
        }
        let threads: Vec<JoinHandle<()>> = match self.threads.lock() {
            Ok(mut t) => t.drain(..).collect(),
            Err(p) => p.into_inner().drain(..).collect(),
        };
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}
