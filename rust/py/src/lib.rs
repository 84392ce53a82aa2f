//! `pms_trio._core`: the Python binding of the media plane.
//!
//! A thin layer: argument conversion, `CoreError` (a typed `code` and `message`) for refused
//! commands, events as frozen records (`events`). It holds no state of its own beyond the
//! [`pms_io::Engine`] and its event queue. Every method returns at once; the slow part of
//! start-up (binding sockets, making the certificate) runs with the GIL released.

mod events;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use pms_core::cert::DtlsIdentity;
use pms_io::{candidate_ips, logger, Engine, EngineConfig, EngineError, EventQueue, RtspTrackSpec};
use pyo3::exceptions::{PyException, PyKeyError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// `CoreError`, defined in Python so that it is a plain `Exception` subclass with a typed
/// constructor (`CoreError(code, message)`; pyo3 cannot subclass native types under abi3).
const CORE_ERROR: &std::ffi::CStr = c"
class CoreError(Exception):
    \"\"\"A command the media core refused. ``code`` follows the signaling error codes (400, 404,
    409, 415, 422, 500); ``message`` says why.\"\"\"

    def __init__(self, code, message):
        super().__init__(message)
        self.code = int(code)
        self.message = str(message)

    def __reduce__(self):
        return (type(self), (self.code, self.message))
";

fn core_error(py: Python<'_>, e: EngineError) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let cls = py.import("pms_trio._core")?.getattr("CoreError")?;
        Ok(PyErr::from_value(cls.call1((e.code(), e.to_string()))?))
    };
    build().unwrap_or_else(|err| err)
}

fn parse_ip(s: &str, what: &str) -> PyResult<IpAddr> {
    s.parse()
        .map_err(|_| PyValueError::new_err(format!("{what}: not an IP address: {s:?}")))
}

/// The media core: worker threads, sockets, transports and routers.
#[pyclass(module = "pms_trio._core", frozen)]
struct Core {
    engine: Engine,
    events: Arc<EventQueue>,
}

#[pymethods]
impl Core {
    #[new]
    #[pyo3(signature = (*, workers=0, listen_ip="0.0.0.0", announced_ips=Vec::new(), min_port=20000, max_port=30000,
        cert_file="", key_file="", log_level="warn", log_tags=Vec::new(), connect_timeout=30.0,
        rtsp_merge_write_ms=0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        workers: usize,
        listen_ip: &str,
        announced_ips: Vec<String>,
        min_port: u16,
        max_port: u16,
        cert_file: &str,
        key_file: &str,
        log_level: &str,
        log_tags: Vec<String>,
        connect_timeout: f64,
        rtsp_merge_write_ms: u64,
    ) -> PyResult<Core> {
        let listen = parse_ip(listen_ip, "listen_ip")?;
        let announced = announced_ips
            .iter()
            .map(|s| parse_ip(s, "announced_ips"))
            .collect::<PyResult<Vec<_>>>()?;
        let level = logger::parse_level(log_level).ok_or_else(|| {
            PyValueError::new_err(format!("log_level: unknown level {log_level:?}"))
        })?;
        if !(connect_timeout.is_finite() && connect_timeout > 0.0) {
            return Err(PyValueError::new_err(
                "connect_timeout: must be a positive number of seconds",
            ));
        }
        let (cert_file, key_file) = (cert_file.to_string(), key_file.to_string());
        py.detach(move || -> PyResult<Core> {
            let identity = if cert_file.is_empty() && key_file.is_empty() {
                DtlsIdentity::generate()
                    .map_err(|e| PyValueError::new_err(format!("DTLS certificate: {e}")))?
            } else {
                let cert = std::fs::read_to_string(&cert_file).map_err(|e| {
                    PyValueError::new_err(format!("dtlsCertificateFile {cert_file:?}: {e}"))
                })?;
                let key = std::fs::read_to_string(&key_file).map_err(|e| {
                    PyValueError::new_err(format!("dtlsPrivateKeyFile {key_file:?}: {e}"))
                })?;
                DtlsIdentity::from_pem(&cert, &key).map_err(|e| {
                    PyValueError::new_err(format!("DTLS certificate {cert_file:?}: {e}"))
                })?
            };
            let events =
                Arc::new(EventQueue::new().map_err(|e| PyOSError::new_err(e.to_string()))?);
            logger::install(level, log_tags, events.clone());
            let config = EngineConfig {
                workers,
                listen_ip: listen,
                announced_ips: candidate_ips(listen, &announced),
                min_port,
                max_port,
                identity,
                connect_timeout: Duration::from_secs_f64(connect_timeout),
            };
            let engine = Engine::start(config, events.clone())
                .map_err(|e| PyOSError::new_err(e.to_string()))?;
            engine.set_rtsp_merge_write(rtsp_merge_write_ms);
            Ok(Core { engine, events })
        })
    }

    /// The read end of the wakeup socket; readable when events are queued.
    fn event_fd(&self) -> i32 {
        self.events.fd()
    }

    /// Drains every queued event (records of `events`). Never blocks.
    fn poll_events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for ev in self.events.drain() {
            list.append(events::to_python(py, ev)?)?;
        }
        Ok(list)
    }

    /// UDP ports the workers listen on.
    fn bound_ports(&self) -> Vec<u16> {
        self.engine.bound_ports()
    }

    /// `sha-256 AB:CD:...` of the DTLS certificate.
    fn fingerprint(&self) -> String {
        self.engine.fingerprint()
    }

    /// Accepts a publisher's offer; returns `(transport_id, answer_sdp)`.
    #[pyo3(signature = (stream, offer, max_bitrate=0))]
    fn create_publisher(
        &self,
        py: Python<'_>,
        stream: &str,
        offer: &str,
        max_bitrate: u64,
    ) -> PyResult<(u64, String)> {
        let cap = u32::try_from(max_bitrate).unwrap_or(u32::MAX);
        self.engine
            .create_publisher(stream, offer, cap)
            .map_err(|e| core_error(py, e))
    }

    /// Accepts a player's offer for a live stream; returns `(transport_id, answer_sdp)`.
    fn create_player(&self, py: Python<'_>, stream: &str, offer: &str) -> PyResult<(u64, String)> {
        self.engine
            .create_player(stream, offer)
            .map_err(|e| core_error(py, e))
    }

    /// `webrtc.transcodeAudio` (SPEC 11), how long (ms) a transcoder runs on after its last
    /// player, and the libopus complexity (0-10) of new transcoders. Takes effect for the next
    /// player.
    #[pyo3(signature = (enabled, linger_ms, complexity=5))]
    fn set_transcode_audio(&self, enabled: bool, linger_ms: u64, complexity: u8) {
        self.engine
            .set_transcode_audio(enabled, linger_ms, complexity);
    }

    /// The transcoded tracks of a live stream: `[(source, codec, players, running)]`, e.g.
    /// `("audio/MPEG4-GENERIC", "audio/opus", 2, True)`; empty when none (or not live).
    fn stream_transcodes(&self, stream: &str) -> Vec<(String, String, usize, bool)> {
        self.engine
            .stream_transcodes(stream)
            .into_iter()
            .map(|t| (t.source, t.codec, t.players, t.running))
            .collect()
    }

    /// The codecs of a live stream, or None.
    fn stream_codecs(&self, stream: &str) -> Option<Vec<String>> {
        self.engine.stream_codecs(stream)
    }

    /// Per producer track of a live stream, what DESCRIBE needs; None when not live.
    fn stream_tracks<'py>(
        &self,
        py: Python<'py>,
        stream: &str,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        let Some(tracks) = self.engine.stream_tracks(stream) else {
            return Ok(None);
        };
        let list = PyList::empty(py);
        for (i, t) in tracks.iter().enumerate() {
            let d = PyDict::new(py);
            d.set_item("index", i)?;
            d.set_item("kind", t.kind.as_str())?;
            d.set_item("codec", t.codec.name.encoding_name())?;
            d.set_item("payload_type", t.codec.payload_type)?;
            d.set_item("clock_rate", t.codec.clock_rate)?;
            d.set_item("channels", t.codec.channels)?;
            d.set_item("fmtp", &t.codec.fmtp)?;
            list.append(d)?;
        }
        Ok(Some(list))
    }

    /// An RTSP player of a live stream (not started); returns its transport id.
    fn create_rtsp_player(&self, py: Python<'_>, stream: &str) -> PyResult<u64> {
        self.engine
            .create_rtsp_player(stream)
            .map_err(|e| core_error(py, e))
    }

    /// An RTSP publisher with the tracks of its ANNOUNCE; the stream is live at once.
    /// `resumable`: a cascade pull (a broken connection raises `RtspDisconnected` and waits
    /// for `rtsp_resume`).
    #[pyo3(signature = (stream, tracks, *, resumable=false))]
    fn create_rtsp_publisher(
        &self,
        py: Python<'_>,
        stream: &str,
        tracks: Vec<Bound<'_, PyDict>>,
        resumable: bool,
    ) -> PyResult<u64> {
        let mut specs = Vec::with_capacity(tracks.len());
        for (i, d) in tracks.iter().enumerate() {
            let get = |k: &str| -> PyResult<Option<Bound<'_, PyAny>>> { d.get_item(k) };
            let need = |k: &str| -> PyResult<Bound<'_, PyAny>> {
                get(k)?.ok_or_else(|| PyValueError::new_err(format!("tracks[{i}]: missing {k:?}")))
            };
            specs.push(RtspTrackSpec {
                kind: need("kind")?.extract()?,
                codec: need("codec")?.extract()?,
                payload_type: need("payload_type")?.extract()?,
                clock_rate: get("clock_rate")?
                    .map(|v| v.extract())
                    .transpose()?
                    .unwrap_or(0),
                channels: get("channels")?
                    .map(|v| v.extract())
                    .transpose()?
                    .unwrap_or(0),
                fmtp: get("fmtp")?
                    .map(|v| v.extract())
                    .transpose()?
                    .unwrap_or_default(),
            });
        }
        self.engine
            .create_rtsp_publisher(stream, &specs, resumable)
            .map_err(|e| core_error(py, e))
    }

    /// One SETUP: `channels=(rtp, rtcp)` for TCP interleaved or `client=(ip, rtp_port,
    /// rtcp_port)` for UDP.
    #[pyo3(signature = (transport_id, track, *, channels=None, client=None))]
    fn rtsp_add_track<'py>(
        &self,
        py: Python<'py>,
        transport_id: u64,
        track: usize,
        channels: Option<(u8, u8)>,
        client: Option<(String, u16, u16)>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let client = match client {
            Some((ip, rtp, rtcp)) => Some((parse_ip(&ip, "client")?, rtp, rtcp)),
            None => None,
        };
        let setup = self
            .engine
            .rtsp_add_track(transport_id, track, channels, client)
            .map_err(|e| core_error(py, e))?;
        let d = PyDict::new(py);
        if let (Some(ssrc), Some(seq), Some(ts)) = (setup.ssrc, setup.seq, setup.rtptime) {
            d.set_item("ssrc", ssrc)?;
            d.set_item("seq", seq)?;
            d.set_item("rtptime", ts)?;
        }
        if let Some(ports) = setup.server_port {
            d.set_item("server_port", ports)?;
        }
        Ok(d)
    }

    /// PLAY or RECORD; with `fd >= 0` the core takes the connected TCP socket (closed on error).
    #[pyo3(signature = (transport_id, *, fd=-1, reply=b"".to_vec(), pending=b"".to_vec()))]
    fn rtsp_start(
        &self,
        py: Python<'_>,
        transport_id: u64,
        fd: i32,
        reply: Vec<u8>,
        pending: Vec<u8>,
    ) -> PyResult<()> {
        let tcp = if fd >= 0 {
            use std::os::fd::{FromRawFd, OwnedFd};
            // SAFETY: the caller detached the socket and hands us its only reference.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            Some(std::net::TcpStream::from(owned))
        } else {
            None
        };
        self.engine
            .rtsp_start(transport_id, tcp, reply, pending)
            .map_err(|e| core_error(py, e))
    }

    /// A pull's new connection after `RtspDisconnected`: the core takes `fd` (closed on
    /// error); `channels` per track as the new SETUPs answered; `pending` read past PLAY's reply.
    #[pyo3(signature = (transport_id, *, fd, channels, pending=b"".to_vec()))]
    fn rtsp_resume(
        &self,
        py: Python<'_>,
        transport_id: u64,
        fd: i32,
        channels: Vec<(u8, u8)>,
        pending: Vec<u8>,
    ) -> PyResult<()> {
        if fd < 0 {
            return Err(PyValueError::new_err("fd must be a connected TCP socket"));
        }
        use std::os::fd::{FromRawFd, OwnedFd};
        // SAFETY: the caller detached the socket and hands us its only reference.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        self.engine
            .rtsp_resume(
                transport_id,
                std::net::TcpStream::from(owned),
                channels,
                pending,
            )
            .map_err(|e| core_error(py, e))
    }

    /// PAUSE: stop forwarding to an RTSP player until the next `rtsp_start`.
    fn rtsp_pause(&self, py: Python<'_>, transport_id: u64) -> PyResult<()> {
        self.engine
            .rtsp_pause(transport_id)
            .map_err(|e| core_error(py, e))
    }

    /// Write an RTSP message whole on a connection the core owns.
    fn rtsp_send(&self, py: Python<'_>, transport_id: u64, data: Vec<u8>) -> PyResult<()> {
        self.engine
            .rtsp_send(transport_id, data)
            .map_err(|e| core_error(py, e))
    }

    /// Binds the GB28181 media port (TCP RFC 4571 listener + UDP socket) on `ip`; returns
    /// `(tcp_port, udp_port)`. Port 0: the system picks, UDP takes the TCP number when it can.
    fn gb_listen(&self, py: Python<'_>, ip: &str, port: u16) -> PyResult<(u16, u16)> {
        let ip = parse_ip(ip, "ip")?;
        py.detach(|| self.engine.gb_listen(ip, port))
            .map_err(|e| PyOSError::new_err(e.to_string()))
    }

    /// Waits for a camera's PS-over-RTP stream with `ssrc` and publishes it as `stream`;
    /// returns the transport id.
    #[pyo3(signature = (stream, ssrc, *, transport="tcp-passive", peer_ip="", connect=None))]
    fn create_gb_ingest(
        &self,
        py: Python<'_>,
        stream: &str,
        ssrc: u32,
        transport: &str,
        peer_ip: &str,
        connect: Option<(String, u16)>,
    ) -> PyResult<u64> {
        let bad = |m: String| core_error(py, EngineError::BadRequest(m));
        let peer = if peer_ip.is_empty() {
            None
        } else {
            Some(
                peer_ip
                    .parse::<IpAddr>()
                    .map_err(|_| bad(format!("peer_ip: not an IP address: {peer_ip:?}")))?,
            )
        };
        let connect = match connect {
            Some((ip, port)) => {
                let ip = ip
                    .parse::<IpAddr>()
                    .map_err(|_| bad(format!("connect: not an IP address: {ip:?}")))?;
                if port == 0 {
                    return Err(bad("connect: port 0".into()));
                }
                Some(std::net::SocketAddr::new(ip, port))
            }
            None => None,
        };
        self.engine
            .create_gb_ingest(stream, ssrc, transport, peer, connect)
            .map_err(|e| core_error(py, e))
    }

    /// A GB28181 playback ingest's speed: its output is re-timed so players keep a 1x clock
    /// while the device sends `scale` times faster; any call turns re-timing on.
    fn gb_set_scale(&self, py: Python<'_>, transport_id: u64, scale: f64) -> PyResult<()> {
        self.engine
            .gb_set_scale(transport_id, scale)
            .map_err(|e| core_error(py, e))
    }

    /// Records the live `stream` into `folder` as `container` (`webm`, `mkv`, `mp4`), in files
    /// named by the `strftime` `pattern`; `segment_seconds` > 0 cuts a new file at the first
    /// keyframe after that long. Returns the recorder's transport id.
    #[pyo3(signature = (stream, folder, pattern, *, container, segment_seconds=0.0))]
    fn create_recorder(
        &self,
        py: Python<'_>,
        stream: &str,
        folder: &str,
        pattern: &str,
        container: &str,
        segment_seconds: f64,
    ) -> PyResult<u64> {
        self.engine
            .create_recorder(stream, folder, pattern, container, segment_seconds)
            .map_err(|e| core_error(py, e))
    }

    /// Changes the mute state; returns `(video_muted, audio_muted)`.
    #[pyo3(signature = (transport_id, video=None, audio=None))]
    fn set_muted(
        &self,
        transport_id: u64,
        video: Option<bool>,
        audio: Option<bool>,
    ) -> PyResult<(bool, bool)> {
        self.engine
            .set_muted(transport_id, video, audio)
            .ok_or_else(|| PyKeyError::new_err(format!("no transport {transport_id}")))
    }

    /// Closes a transport; unknown ids are ignored.
    fn close_transport(&self, transport_id: u64) {
        self.engine.close_transport(transport_id);
    }

    /// `webrtc.udpGso`: a player's datagrams of one poll iteration may leave as one segmented
    /// send (default on; a kernel that refuses it turns it off by itself).
    fn set_udp_gso(&self, on: bool) {
        self.engine.set_udp_gso(on);
    }

    /// Counters summed over the workers.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.engine.stats() {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// Per worker, in order: its counters as `stats()` names them (`cpu_us`: the worker
    /// thread's CPU time).
    fn worker_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for worker in self.engine.worker_stats() {
            let d = PyDict::new(py);
            for (k, v) in worker {
                d.set_item(k, v)?;
            }
            list.append(d)?;
        }
        Ok(list)
    }

    /// Per live stream: `{name: {"consumers": n, "video": {...}, "audio": {...}}}`, each kind
    /// with `bytes_in`, `packets_in`, `bytes_out`, `packets_out`, `lost`, `nacks`, `plis`,
    /// `bitrate_bps` (published by the workers about once a second).
    fn stream_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for s in self.engine.stream_stats() {
            let entry = PyDict::new(py);
            entry.set_item("consumers", s.consumers)?;
            for (name, k, bps) in [
                ("video", &s.video, s.bitrate_bps[0]),
                ("audio", &s.audio, s.bitrate_bps[1]),
            ] {
                let kd = PyDict::new(py);
                kd.set_item("bytes_in", k.bytes_in)?;
                kd.set_item("packets_in", k.packets_in)?;
                kd.set_item("bytes_out", k.bytes_out)?;
                kd.set_item("packets_out", k.packets_out)?;
                kd.set_item("lost", k.lost)?;
                kd.set_item("nacks", k.nacks)?;
                kd.set_item("plis", k.plis)?;
                kd.set_item("bitrate_bps", bps)?;
                entry.set_item(name, kd)?;
            }
            d.set_item(s.name, entry)?;
        }
        Ok(d)
    }

    /// Connect-to-first-keyframe times of players: `{"bounds": [seconds...], "buckets":
    /// [cumulative counts...], "count": n, "sum": seconds}`.
    fn join_histogram<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let h = self.engine.join_histogram();
        let d = PyDict::new(py);
        let bounds: Vec<f64> = pms_io::JOIN_BUCKETS_MS
            .iter()
            .map(|&ms| ms as f64 / 1000.0)
            .collect();
        d.set_item("bounds", bounds)?;
        d.set_item("buckets", h.buckets.to_vec())?;
        d.set_item("count", h.count)?;
        d.set_item("sum", h.sum_micros as f64 / 1e6)?;
        Ok(d)
    }

    /// Stops the workers and closes every socket. Idempotent.
    fn shutdown(&self, py: Python<'_>) {
        py.detach(|| self.engine.shutdown());
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Core>()?;
    let globals = PyDict::new(m.py());
    globals.set_item("__name__", "pms_trio._core")?;
    m.py().run(CORE_ERROR, Some(&globals), None)?;
    m.add(
        "CoreError",
        globals
            .get_item("CoreError")?
            .ok_or_else(|| PyException::new_err("CoreError was not defined"))?,
    )?;
    events::register(m)?;
    m.add("RTSP_MAX_HEADER", pms_core::rtsp_framing::MAX_HEADER)?;
    m.add("RTSP_MAX_BODY", pms_core::rtsp_framing::MAX_BODY)?;
    Ok(())
}
