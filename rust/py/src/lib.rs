//! `pms_trio._core`: the Python binding of the media plane.
//!
//! A thin layer: argument conversion, `CoreError` for refused commands, events as tuples. It
//! holds no state of its own beyond the [`pms_io::Engine`] and its event queue. Every method
//! returns at once; the slow part of start-up (binding sockets, making the certificate) runs
//! with the GIL released.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use pms_core::cert::DtlsIdentity;
use pms_io::{candidate_ips, logger, Engine, EngineConfig, EngineError, Event, EventQueue};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

create_exception!(_core, CoreError, PyException, "A command the media core refused; `code` follows the signaling error codes.");

fn core_error(py: Python<'_>, e: EngineError) -> PyErr {
    let code = e.code();
    let message = e.to_string();
    let err = CoreError::new_err(message.clone());
    let value = err.value(py);
    let _ = value.setattr("code", code);
    let _ = value.setattr("message", message);
    err
}

fn parse_ip(s: &str, what: &str) -> PyResult<IpAddr> {
    s.parse().map_err(|_| PyValueError::new_err(format!("{what}: not an IP address: {s:?}")))
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
        cert_file="", key_file="", log_level="warn", log_tags=Vec::new(), connect_timeout=30.0))]
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
    ) -> PyResult<Core> {
        let listen = parse_ip(listen_ip, "listen_ip")?;
        let announced = announced_ips.iter().map(|s| parse_ip(s, "announced_ips")).collect::<PyResult<Vec<_>>>()?;
        let level = logger::parse_level(log_level)
            .ok_or_else(|| PyValueError::new_err(format!("log_level: unknown level {log_level:?}")))?;
        if !(connect_timeout.is_finite() && connect_timeout > 0.0) {
            return Err(PyValueError::new_err("connect_timeout: must be a positive number of seconds"));
        }
        let (cert_file, key_file) = (cert_file.to_string(), key_file.to_string());
        py.detach(move || -> PyResult<Core> {
            let identity = if cert_file.is_empty() && key_file.is_empty() {
                DtlsIdentity::generate().map_err(|e| PyValueError::new_err(format!("DTLS certificate: {e}")))?
            } else {
                let cert = std::fs::read_to_string(&cert_file)
                    .map_err(|e| PyValueError::new_err(format!("dtlsCertificateFile {cert_file:?}: {e}")))?;
                let key = std::fs::read_to_string(&key_file)
                    .map_err(|e| PyValueError::new_err(format!("dtlsPrivateKeyFile {key_file:?}: {e}")))?;
                DtlsIdentity::from_pem(&cert, &key)
                    .map_err(|e| PyValueError::new_err(format!("DTLS certificate {cert_file:?}: {e}")))?
            };
            let events = Arc::new(EventQueue::new().map_err(|e| PyOSError::new_err(e.to_string()))?);
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
            let engine = Engine::start(config, events.clone()).map_err(|e| PyOSError::new_err(e.to_string()))?;
            Ok(Core { engine, events })
        })
    }

    /// The read end of the wakeup socket; readable when events are queued.
    fn event_fd(&self) -> i32 {
        self.events.fd()
    }

    /// Drains every queued event. Never blocks.
    fn poll_events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for ev in self.events.drain() {
            let item = match ev {
                Event::TransportConnected { id } => PyTuple::new(py, [("transport_connected").into_pyobject(py)?.into_any(), id.into_pyobject(py)?.into_any()])?,
                Event::TransportClosed { id, reason } => PyTuple::new(
                    py,
                    [
                        "transport_closed".into_pyobject(py)?.into_any(),
                        id.into_pyobject(py)?.into_any(),
                        reason.into_pyobject(py)?.into_any(),
                    ],
                )?,
                Event::ProducerStarted { stream, codecs } => PyTuple::new(
                    py,
                    [
                        "producer_started".into_pyobject(py)?.into_any(),
                        stream.into_pyobject(py)?.into_any(),
                        PyList::new(py, codecs)?.into_any(),
                    ],
                )?,
                Event::Log { level, tag, message } => PyTuple::new(
                    py,
                    [
                        "log".into_pyobject(py)?.into_any(),
                        level.as_str().to_ascii_lowercase().into_pyobject(py)?.into_any(),
                        tag.into_pyobject(py)?.into_any(),
                        message.into_pyobject(py)?.into_any(),
                    ],
                )?,
            };
            list.append(item)?;
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
    fn create_publisher(&self, py: Python<'_>, stream: &str, offer: &str, max_bitrate: u64) -> PyResult<(u64, String)> {
        let cap = u32::try_from(max_bitrate).unwrap_or(u32::MAX);
        self.engine.create_publisher(stream, offer, cap).map_err(|e| core_error(py, e))
    }

    /// Accepts a player's offer for a live stream; returns `(transport_id, answer_sdp)`.
    fn create_player(&self, py: Python<'_>, stream: &str, offer: &str) -> PyResult<(u64, String)> {
        self.engine.create_player(stream, offer).map_err(|e| core_error(py, e))
    }

    /// The codecs of a live stream, or None.
    fn stream_codecs(&self, stream: &str) -> Option<Vec<String>> {
        self.engine.stream_codecs(stream)
    }

    /// Changes the mute state; returns `(video_muted, audio_muted)`.
    #[pyo3(signature = (transport_id, video=None, audio=None))]
    fn set_muted(&self, transport_id: u64, video: Option<bool>, audio: Option<bool>) -> PyResult<(bool, bool)> {
        self.engine
            .set_muted(transport_id, video, audio)
            .ok_or_else(|| PyKeyError::new_err(format!("no transport {transport_id}")))
    }

    /// Closes a transport; unknown ids are ignored.
    fn close_transport(&self, transport_id: u64) {
        self.engine.close_transport(transport_id);
    }

    /// Counters summed over the workers.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.engine.stats() {
            d.set_item(k, v)?;
        }
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
    m.add("CoreError", m.py().get_type::<CoreError>())?;
    Ok(())
}
