//! The core's events as Python objects: one frozen class per kind, built here and nowhere else.
//!
//! Owns the translation of [`pms_io::Event`] into the records `pms_trio._core.poll_events()`
//! returns (declared in `_core.pyi`); Python dispatches on the class. Each class also has a
//! constructor so that tests and fakes build the same records the core does.

use pms_io::Event;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

/// ICE and DTLS are up (or an RTSP/GB transport is connected): media may flow.
#[pyclass(module = "pms_trio._core", frozen, eq, get_all)]
#[derive(Clone, PartialEq)]
pub struct TransportConnected {
    transport_id: u64,
}

#[pymethods]
impl TransportConnected {
    #[new]
    fn new(transport_id: u64) -> Self {
        Self { transport_id }
    }

    fn __repr__(&self) -> String {
        format!("TransportConnected(transport_id={})", self.transport_id)
    }
}

/// A transport is gone, with the reason (`_core.pyi` lists them).
#[pyclass(module = "pms_trio._core", frozen, eq, get_all)]
#[derive(Clone, PartialEq)]
pub struct TransportClosed {
    transport_id: u64,
    reason: String,
}

#[pymethods]
impl TransportClosed {
    #[new]
    fn new(transport_id: u64, reason: String) -> Self {
        Self {
            transport_id,
            reason,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "TransportClosed(transport_id={}, reason={:?})",
            self.transport_id, self.reason
        )
    }
}

/// The first media packet of a published stream arrived; `codecs` are `"video/H264"`-style.
#[pyclass(module = "pms_trio._core", frozen, eq)]
#[derive(Clone, PartialEq)]
pub struct ProducerStarted {
    stream: String,
    codecs: Vec<String>,
}

#[pymethods]
impl ProducerStarted {
    #[new]
    fn new(stream: String, codecs: Vec<String>) -> Self {
        Self { stream, codecs }
    }

    #[getter]
    fn stream(&self) -> &str {
        &self.stream
    }

    /// A tuple: the record stays immutable.
    #[getter]
    fn codecs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.codecs)
    }

    fn __repr__(&self) -> String {
        format!(
            "ProducerStarted(stream={:?}, codecs={:?})",
            self.stream, self.codecs
        )
    }
}

/// An RTSP text message the core read on a TCP connection it owns.
#[pyclass(module = "pms_trio._core", frozen, eq)]
#[derive(Clone, PartialEq)]
pub struct RtspMessage {
    transport_id: u64,
    data: Vec<u8>,
}

#[pymethods]
impl RtspMessage {
    #[new]
    fn new(transport_id: u64, data: Vec<u8>) -> Self {
        Self { transport_id, data }
    }

    #[getter]
    fn transport_id(&self) -> u64 {
        self.transport_id
    }

    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.data)
    }

    fn __repr__(&self) -> String {
        format!(
            "RtspMessage(transport_id={}, data=<{} bytes>)",
            self.transport_id,
            self.data.len()
        )
    }
}

/// The core read something from an RTSP peer (at most one per transport every 2 s).
#[pyclass(module = "pms_trio._core", frozen, eq, get_all)]
#[derive(Clone, PartialEq)]
pub struct RtspAlive {
    transport_id: u64,
}

#[pymethods]
impl RtspAlive {
    #[new]
    fn new(transport_id: u64) -> Self {
        Self { transport_id }
    }

    fn __repr__(&self) -> String {
        format!("RtspAlive(transport_id={})", self.transport_id)
    }
}

/// A pull's connection to its origin broke; the transport and its players wait for
/// `Core.rtsp_resume` with a new connection (or `close_transport`).
#[pyclass(module = "pms_trio._core", frozen, eq, get_all)]
#[derive(Clone, PartialEq)]
pub struct RtspDisconnected {
    transport_id: u64,
    reason: String,
}

#[pymethods]
impl RtspDisconnected {
    #[new]
    fn new(transport_id: u64, reason: String) -> Self {
        Self {
            transport_id,
            reason,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "RtspDisconnected(transport_id={}, reason={:?})",
            self.transport_id, self.reason
        )
    }
}

/// A producer track's H.264 `[SPS, PPS]` or H.265 `[VPS, SPS, PPS]` changed in band.
#[pyclass(module = "pms_trio._core", frozen, eq)]
#[derive(Clone, PartialEq)]
pub struct ParameterSets {
    stream: String,
    codec: String,
    nals: Vec<Vec<u8>>,
}

#[pymethods]
impl ParameterSets {
    #[new]
    fn new(stream: String, codec: String, nals: Vec<Vec<u8>>) -> Self {
        Self {
            stream,
            codec,
            nals,
        }
    }

    #[getter]
    fn stream(&self) -> &str {
        &self.stream
    }

    #[getter]
    fn codec(&self) -> &str {
        &self.codec
    }

    #[getter]
    fn nals<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.nals.iter().map(|n| PyBytes::new(py, n)))
    }

    fn __repr__(&self) -> String {
        format!(
            "ParameterSets(stream={:?}, codec={:?}, nals=<{} NAL units>)",
            self.stream,
            self.codec,
            self.nals.len()
        )
    }
}

/// A player of a GB28181 stream waits for a keyframe the cache lacks.
#[pyclass(module = "pms_trio._core", frozen, eq, get_all)]
#[derive(Clone, PartialEq)]
pub struct KeyframeWanted {
    stream: String,
}

#[pymethods]
impl KeyframeWanted {
    #[new]
    fn new(stream: String) -> Self {
        Self { stream }
    }

    fn __repr__(&self) -> String {
        format!("KeyframeWanted(stream={:?})", self.stream)
    }
}

/// A recorder opened a file (its first, or the next segment).
#[pyclass(module = "pms_trio._core", frozen, eq, get_all)]
#[derive(Clone, PartialEq)]
pub struct RecordingFileStarted {
    transport_id: u64,
    path: String,
}

#[pymethods]
impl RecordingFileStarted {
    #[new]
    fn new(transport_id: u64, path: String) -> Self {
        Self { transport_id, path }
    }

    fn __repr__(&self) -> String {
        format!(
            "RecordingFileStarted(transport_id={}, path={:?})",
            self.transport_id, self.path
        )
    }
}

/// A recorder finished a file: complete when `error` is empty, else given up on (what was
/// written stays playable). `duration` in seconds of media.
#[pyclass(module = "pms_trio._core", frozen, eq, get_all)]
#[derive(Clone, PartialEq)]
pub struct RecordingFile {
    transport_id: u64,
    path: String,
    bytes: u64,
    duration: f64,
    error: String,
}

#[pymethods]
impl RecordingFile {
    #[new]
    #[pyo3(signature = (transport_id, path, bytes, duration, error = String::new()))]
    fn new(transport_id: u64, path: String, bytes: u64, duration: f64, error: String) -> Self {
        Self {
            transport_id,
            path,
            bytes,
            duration,
            error,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "RecordingFile(transport_id={}, path={:?}, bytes={}, duration={}, error={:?})",
            self.transport_id, self.path, self.bytes, self.duration, self.error
        )
    }
}

/// A recorder ended; every file it opened was reported before.
#[pyclass(module = "pms_trio._core", frozen, eq, get_all)]
#[derive(Clone, PartialEq)]
pub struct RecordingEnded {
    transport_id: u64,
    reason: String,
}

#[pymethods]
impl RecordingEnded {
    #[new]
    fn new(transport_id: u64, reason: String) -> Self {
        Self {
            transport_id,
            reason,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "RecordingEnded(transport_id={}, reason={:?})",
            self.transport_id, self.reason
        )
    }
}

/// A core log record; `level` is `"debug" | "info" | "warn" | "error"`.
#[pyclass(module = "pms_trio._core", frozen, eq, get_all)]
#[derive(Clone, PartialEq)]
pub struct LogRecord {
    level: String,
    tag: String,
    message: String,
}

#[pymethods]
impl LogRecord {
    #[new]
    fn new(level: String, tag: String, message: String) -> Self {
        Self {
            level,
            tag,
            message,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "LogRecord(level={:?}, tag={:?}, message={:?})",
            self.level, self.tag, self.message
        )
    }
}

/// The one place where a core event becomes a Python object.
pub fn to_python(py: Python<'_>, event: Event) -> PyResult<Bound<'_, PyAny>> {
    Ok(match event {
        Event::TransportConnected { id } => {
            Bound::new(py, TransportConnected { transport_id: id })?.into_any()
        }
        Event::TransportClosed { id, reason } => Bound::new(
            py,
            TransportClosed {
                transport_id: id,
                reason: reason.to_string(),
            },
        )?
        .into_any(),
        Event::ProducerStarted { stream, codecs } => {
            Bound::new(py, ProducerStarted { stream, codecs })?.into_any()
        }
        Event::RtspMessage { id, data } => Bound::new(
            py,
            RtspMessage {
                transport_id: id,
                data,
            },
        )?
        .into_any(),
        Event::RtspAlive { id } => Bound::new(py, RtspAlive { transport_id: id })?.into_any(),
        Event::RtspDisconnected { id, reason } => Bound::new(
            py,
            RtspDisconnected {
                transport_id: id,
                reason: reason.to_string(),
            },
        )?
        .into_any(),
        Event::ParameterSets {
            stream,
            codec,
            nals,
        } => Bound::new(
            py,
            ParameterSets {
                stream,
                codec,
                nals,
            },
        )?
        .into_any(),
        Event::KeyframeWanted { stream } => Bound::new(py, KeyframeWanted { stream })?.into_any(),
        Event::RecordingFileStarted { id, path } => Bound::new(
            py,
            RecordingFileStarted {
                transport_id: id,
                path,
            },
        )?
        .into_any(),
        Event::RecordingFile {
            id,
            path,
            bytes,
            duration_ms,
            error,
        } => Bound::new(
            py,
            RecordingFile {
                transport_id: id,
                path,
                bytes,
                duration: duration_ms as f64 / 1000.0,
                error,
            },
        )?
        .into_any(),
        Event::RecordingEnded { id, reason } => Bound::new(
            py,
            RecordingEnded {
                transport_id: id,
                reason: reason.to_string(),
            },
        )?
        .into_any(),
        Event::Log {
            level,
            tag,
            message,
        } => Bound::new(
            py,
            LogRecord {
                level: level.as_str().to_ascii_lowercase(),
                tag: tag.to_string(),
                message,
            },
        )?
        .into_any(),
    })
}

/// Adds every event class to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<TransportConnected>()?;
    m.add_class::<TransportClosed>()?;
    m.add_class::<ProducerStarted>()?;
    m.add_class::<RtspMessage>()?;
    m.add_class::<RtspAlive>()?;
    m.add_class::<RtspDisconnected>()?;
    m.add_class::<ParameterSets>()?;
    m.add_class::<KeyframeWanted>()?;
    m.add_class::<RecordingFileStarted>()?;
    m.add_class::<RecordingFile>()?;
    m.add_class::<RecordingEnded>()?;
    m.add_class::<LogRecord>()?;
    Ok(())
}
