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
pub mod events;
pub mod logger;
mod ports;
mod registry;
mod rtsp;
mod worker;

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pms_core::cert::DtlsIdentity;
use pms_core::media::{ProducerTrack, TransportId};
use pms_core::sdp::{self, AnswerContext, SdpError};
use pms_core::transport::WebRtcTransport;
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
const STAT_NAMES: [&str; 14] = [
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

    /// Accepts a publisher's offer for `stream`.
    pub fn create_publisher(
        &self,
        stream: &str,
        offer: &str,
        max_bitrate: u32,
    ) -> Result<(TransportId, String), EngineError> {
        let mut reg = self.shared.registry();
        if reg.streams.contains_key(stream) {
            return Err(EngineError::Conflict(format!(
                "stream {stream:?} is already published"
            )));
        }
        let worker = reg.least_loaded(self.shared.workers().len());
        let (ufrag, pwd) = (random_string(8), random_string(24));
        let candidates = self.candidates(worker);
        let ctx = AnswerContext {
            ice_ufrag: &ufrag,
            ice_pwd: &pwd,
            fingerprint: self.identity.fingerprint(),
            candidates: &candidates,
            max_bitrate,
        };
        let (answer, tracks, remote) =
            sdp::answer_publisher(offer, &ctx).map_err(EngineError::Sdp)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let transport = WebRtcTransport::new(
            id,
            ufrag.clone(),
            pwd,
            remote,
            &self.identity,
            Instant::now(),
            self.connect_timeout,
        )
        .map_err(|e| EngineError::Internal(format!("cannot create the transport: {e}")))?;
        reg.streams.insert(
            stream.to_string(),
            StreamEntry {
                worker,
                producer: id,
                tracks: Arc::new(tracks.clone()),
            },
        );
        reg.transports.insert(
            id,
            TransportInfo {
                worker,
                stream: stream.to_string(),
                publisher: true,
                ufrag: ufrag.clone(),
                muted: (false, false),
                rtsp: false,
                announce_map: Vec::new(),
            },
        );
        reg.ufrags.insert(ufrag, worker);
        drop(reg);
        self.send(
            worker,
            Command::AddPublisher {
                id,
                stream: stream.to_string(),
                transport: Box::new(transport),
                tracks,
                max_bitrate,
            },
        );
        Ok((id, answer))
    }

    /// Accepts a player's offer for the live `stream`.
    pub fn create_player(
        &self,
        stream: &str,
        offer: &str,
    ) -> Result<(TransportId, String), EngineError> {
        let mut reg = self.shared.registry();
        let Some(entry) = reg.streams.get(stream) else {
            return Err(EngineError::NotFound(format!(
                "stream {stream:?} is not live"
            )));
        };
        let (worker, producer, tracks) = (entry.worker, entry.producer, entry.tracks.clone());
        let (ufrag, pwd) = (random_string(8), random_string(24));
        let candidates = self.candidates(worker);
        let ctx = AnswerContext {
            ice_ufrag: &ufrag,
            ice_pwd: &pwd,
            fingerprint: self.identity.fingerprint(),
            candidates: &candidates,
            max_bitrate: 0,
        };
        let mut rng = rand::thread_rng();
        let mut new_ssrc = || rng.gen::<u32>() | 1;
        let (answer, consumer_tracks, remote) =
            sdp::answer_player(offer, &tracks, &ctx, &mut new_ssrc).map_err(EngineError::Sdp)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let transport = WebRtcTransport::new(
            id,
            ufrag.clone(),
            pwd,
            remote,
            &self.identity,
            Instant::now(),
            self.connect_timeout,
        )
        .map_err(|e| EngineError::Internal(format!("cannot create the transport: {e}")))?;
        reg.transports.insert(
            id,
            TransportInfo {
                worker,
                stream: stream.to_string(),
                publisher: false,
                ufrag: ufrag.clone(),
                muted: (false, false),
                rtsp: false,
                announce_map: Vec::new(),
            },
        );
        reg.ufrags.insert(ufrag, worker);
        drop(reg);
        self.send(
            worker,
            Command::AddPlayer {
                id,
                stream: stream.to_string(),
                producer,
                transport: Box::new(transport),
                tracks: consumer_tracks,
            },
        );
        Ok((id, answer))
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
        self.send(
            worker,
            Command::Rtsp(RtspCommand::AddPlayer {
                id,
                stream: stream.to_string(),
                producer,
            }),
        );
        Ok(id)
    }

    /// An RTSP publisher of `stream` with the tracks of its ANNOUNCE; the stream is live at once.
    pub fn create_rtsp_publisher(
        &self,
        stream: &str,
        tracks: &[RtspTrackSpec],
    ) -> Result<TransportId, EngineError> {
        let mut producer_tracks = Vec::new();
        let mut announce_map = Vec::with_capacity(tracks.len());
        for (i, t) in tracks.iter().enumerate() {
            match rtsp::producer_track(i, t) {
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
        if reg.streams.contains_key(stream) {
            return Err(EngineError::Conflict(format!(
                "stream {stream:?} is already published"
            )));
        }
        let worker = reg.least_loaded(self.shared.workers().len());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        reg.streams.insert(
            stream.to_string(),
            StreamEntry {
                worker,
                producer: id,
                tracks: Arc::new(producer_tracks.clone()),
            },
        );
        reg.transports
            .insert(id, rtsp_info(worker, stream, true, announce_map));
        drop(reg);
        self.send(
            worker,
            Command::Rtsp(RtspCommand::AddPublisher {
                id,
                stream: stream.to_string(),
                tracks: producer_tracks,
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
                let (rtp, rtcp) = rtsp::bind_pair(self.listen_ip).map_err(|e| {
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
        self.send(
            worker,
            Command::Rtsp(RtspCommand::AddTrack {
                id,
                source,
                consumer,
                channels,
                udp,
            }),
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
        }
        self.send(
            worker,
            Command::Rtsp(RtspCommand::Start {
                id,
                tcp,
                reply,
                pending,
            }),
        );
        Ok(())
    }

    /// PAUSE: stops forwarding to an RTSP player until the next [`rtsp_start`](Engine::rtsp_start).
    pub fn rtsp_pause(&self, id: TransportId) -> Result<(), EngineError> {
        let worker = self.rtsp_worker(id)?;
        self.send(worker, Command::Rtsp(RtspCommand::Pause { id }));
        Ok(())
    }

    /// Writes an RTSP message on a connection the core owns, whole, between frames.
    pub fn rtsp_send(&self, id: TransportId, data: Vec<u8>) -> Result<(), EngineError> {
        let worker = self.rtsp_worker(id)?;
        self.send(worker, Command::Rtsp(RtspCommand::Send { id, data }));
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
