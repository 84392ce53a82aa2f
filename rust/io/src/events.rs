//! Events from the media workers to the control plane, and the wakeup socket that announces them.
//!
//! Workers push small records onto one queue; when the queue goes from empty to non-empty they
//! write one byte to a socket pair. The control plane waits until the read end is readable, then
//! drains the queue (and the socket) without blocking. The queue lock is taken once per event,
//! never per packet.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use pms_core::media::TransportId;

/// What the control plane hears from the media plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// ICE and DTLS completed: media can flow.
    TransportConnected { id: TransportId },
    /// The transport is gone, with the reason (`closed`, `ice-timeout`, `dtls-failed`,
    /// `connect-timeout`, `peer-closed`, `producer-closed`; RTSP: `eof`, `stalled`,
    /// `protocol-error`; GB28181 ingests: `media-timeout`, `eof`, `connect-failed`,
    /// `protocol-error`).
    TransportClosed {
        id: TransportId,
        reason: &'static str,
    },
    /// An RTSP text message read on a connection the core owns (after PLAY/RECORD over TCP):
    /// headers, empty line and body, as received.
    RtspMessage { id: TransportId, data: Vec<u8> },
    /// A pull's connection to its origin broke (`eof`, `stalled`, `protocol-error`): the
    /// transport and its players stay, waiting for [`Engine::rtsp_resume`] with a new
    /// connection, or for its close.
    ///
    /// [`Engine::rtsp_resume`]: crate::engine::Engine::rtsp_resume
    RtspDisconnected {
        id: TransportId,
        reason: &'static str,
    },
    /// The core read something from an RTSP peer (interleaved frames or text on a TCP connection
    /// it owns, a datagram from the client on a UDP pair): the session is alive. At most one per
    /// peer every two seconds.
    RtspAlive { id: TransportId },
    /// A producer track's H.264 (`[SPS, PPS]`) or H.265 (`[VPS, SPS, PPS]`) parameter sets
    /// changed; `codec` is `H264` or `H265`.
    ParameterSets {
        stream: String,
        codec: String,
        nals: Vec<Vec<u8>>,
    },
    /// The first media packet of a published stream arrived.
    ProducerStarted { stream: String, codecs: Vec<String> },
    /// A player of a GB28181 stream waits for a keyframe that the cache does not have (at most
    /// one per 2 s, `peers::gb::KEYFRAME_EVENT_INTERVAL`, per stream): the control plane may
    /// ask the camera for an IDR (DeviceControl `IFameCmd`).
    KeyframeWanted { stream: String },
    /// A recorder opened a file (its first one, or the next segment).
    RecordingFileStarted { id: TransportId, path: String },
    /// A recorder finished a file: complete (`error` empty; sizes, duration and index written)
    /// or given up on (`error` says why; what was written before stays playable).
    RecordingFile {
        id: TransportId,
        path: String,
        bytes: u64,
        /// Media time in the file, milliseconds.
        duration_ms: u64,
        error: String,
    },
    /// A recorder ended (`stopped`, `producer-closed`, `no-media`, `write-failed`,
    /// `shutdown`...); every file it opened was reported before.
    RecordingEnded {
        id: TransportId,
        reason: &'static str,
    },
    /// A log record of the core that passed the configured level and tags.
    Log {
        level: log::Level,
        tag: &'static str,
        message: String,
    },
}

/// A multi-producer queue with a wakeup fd.
pub struct EventQueue {
    queue: Mutex<VecDeque<Event>>,
    tx: UnixStream,
    rx: UnixStream,
}

/// Events kept at most before new ones are dropped (a control plane that stopped draining must
/// not make the media plane grow without bound).
const MAX_QUEUED: usize = 100_000;

impl EventQueue {
    pub fn new() -> std::io::Result<EventQueue> {
        let (tx, rx) = UnixStream::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        Ok(EventQueue {
            queue: Mutex::new(VecDeque::new()),
            tx,
            rx,
        })
    }

    /// Queues one event; wakes the reader when the queue was empty.
    pub fn push(&self, event: Event) {
        let was_empty = {
            let mut q = match self.queue.lock() {
                Ok(q) => q,
                Err(poisoned) => poisoned.into_inner(),
            };
            if q.len() >= MAX_QUEUED {
                return;
            }
            q.push_back(event);
            q.len() == 1
        };
        if was_empty {
            // A full socket buffer means a wakeup is already pending: nothing is lost.
            let _ = (&self.tx).write(&[1u8]);
        }
    }

    /// Takes every queued event and clears the wakeup fd.
    pub fn drain(&self) -> Vec<Event> {
        let mut buf = [0u8; 256];
        while let Ok(n) = (&self.rx).read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        let mut q = match self.queue.lock() {
            Ok(q) => q,
            Err(poisoned) => poisoned.into_inner(),
        };
        q.drain(..).collect()
    }

    /// The fd to wait on for readability.
    pub fn fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_once_and_drains_all() {
        let q = EventQueue::new().unwrap();
        q.push(Event::TransportConnected { id: 1 });
        q.push(Event::TransportConnected { id: 2 });
        let got = q.drain();
        assert_eq!(got.len(), 2);
        // The wakeup bytes were consumed too.
        let mut b = [0u8; 1];
        assert!((&q.rx).read(&mut b).is_err());
        assert!(q.drain().is_empty());
    }
}
