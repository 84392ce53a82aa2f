//! # pms-io: worker threads, UDP sockets and timers that drive `pms-core`
//!
//! [`Engine`] is the media plane as the control plane sees it: typed, non-blocking commands
//! (`create_publisher`, `create_player`, `set_muted`, `close_transport`, ...) and events on an
//! [`events::EventQueue`] with a wakeup fd. Behind it run `workers` threads, each with its own
//! UDP socket, transports and router (see [`worker`]).
//!
//! A stream lives on one worker: its publisher and all its players are created there, so
//! fanning a packet out never crosses threads. New streams go to the least loaded worker.
//! Commands do the SDP work on the caller's thread (microseconds) and pass the new transport to
//! its worker through a channel; the worker wakes up through a `mio::Waker`.

mod batch;
mod engine_gb;
mod engine_rtsp;
pub mod events;
mod gb;
pub mod logger;
mod ports;
mod registry;
mod rtsp;
mod webrtc;
mod worker;

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use pms_core::cert::DtlsIdentity;
use pms_core::media::{ProducerTrack, TransportId};
use pms_core::sdp::SdpError;
use rand::distributions::Alphanumeric;
use rand::Rng;

pub use events::{Event, EventQueue};
pub use pms_core::media::ProducerTrack as StreamTrack;
pub use ports::candidate_ips;
use registry::{Registry, StreamEntry, TransportInfo};
use rtsp::RtspCommand;
use worker::{Command, Worker};

/// How the media plane is set up.
pub struct EngineConfig {
    /// Worker threads; 0 means one per CPU.
    pub workers: usize,
    pub listen_ip: IpAddr,
    /// Addresses for ICE candidates (already resolved by [`candidate_ips`] or given).
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

pub(crate) const STAT_TRANSPORTS: usize = 0;
pub(crate) const STAT_PRODUCERS: usize = 1;
pub(crate) const STAT_CONSUMERS: usize = 2;
pub(crate) const STAT_PACKETS_IN: usize = 3;
pub(crate) const STAT_PACKETS_OUT: usize = 4;
pub(crate) const STAT_BYTES_IN: usize = 5;
pub(crate) const STAT_BYTES_OUT: usize = 6;
pub(crate) const STAT_NACKS: usize = 7;
pub(crate) const STAT_PLIS: usize = 8;
pub(crate) const STAT_RETRANSMITS: usize = 9;
pub(crate) const STAT_RTP_DROPPED: usize = 10;
pub(crate) const STAT_SEND_ERRORS: usize = 11;
pub(crate) const STAT_PUBLISHERS: usize = 12;
pub(crate) const STAT_RTSP_DROPPED: usize = 13;
pub(crate) const STAT_GB_INGESTS: usize = 14;
pub(crate) const STAT_GB_TCP_CONNECTIONS: usize = 15;
pub(crate) const STAT_GB_UNKNOWN_SSRC: usize = 16;
pub(crate) const STAT_GB_PS_RESYNCS: usize = 17;
pub(crate) const STAT_GB_BYTES_IN: usize = 18;
pub(crate) const STAT_GB_PACKETS_IN: usize = 19;
pub(crate) const STAT_GB_SEQ_GAPS: usize = 20;
const STAT_NAMES: [&str; 21] = [
    "transports",
    "producers",
    "consumers",
    "packets_in",
    "packets_out",
    "bytes_in",
    "bytes_out",
    "nacks",
    "plis",
    "retransmits",
    "rtp_dropped",
    "send_errors",
    "publishers",
    "rtsp_dropped",
    "gb_ingests",
    "gb_tcp_connections",
    "gb_unknown_ssrc",
    "gb_ps_resyncs",
    "gb_bytes_in",
    "gb_packets_in",
    "gb_seq_gaps",
];

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

/// A worker's command channel and waker.
pub(crate) struct WorkerHandle {
    tx: Sender<Command>,
    waker: mio::Waker,
}

impl WorkerHandle {
    pub(crate) fn send(&self, cmd: Command) {
        if self.tx.send(cmd).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// What the engine and its workers share.
pub(crate) struct Shared {
    registry: Mutex<Registry>,
    pub(crate) events: Arc<EventQueue>,
    handles: OnceLock<Vec<WorkerHandle>>,
    /// Per worker, counters the worker publishes every tick.
    pub(crate) stats: Vec<[AtomicU64; STAT_NAMES.len()]>,
}

impl Shared {
    pub(crate) fn registry(&self) -> MutexGuard<'_, Registry> {
        match self.registry.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub(crate) fn workers(&self) -> &[WorkerHandle] {
        self.handles.get().map(Vec::as_slice).unwrap_or(&[])
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
    /// The GB28181 media port once bound: (tcp, udp).
    gb_ports: Mutex<Option<(u16, u16)>>,
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
        let shared = Arc::new(Shared {
            registry: Mutex::new(Registry::default()),
            events,
            handles: OnceLock::new(),
            stats: (0..workers)
                .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
                .collect(),
        });
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
            gb_ports: Mutex::new(None),
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

    fn send(&self, worker: usize, cmd: Command) {
        if let Some(h) = self.shared.workers().get(worker) {
            h.send(cmd);
        }
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
