//! The write side of an RTSP TCP connection the core owns: one buffer, written in as few
//! system calls as the configuration allows.
//!
//! Decisions:
//!
//! - Frames are never written one `write` each. The router's output queues `$` frames in the
//!   connection's buffer and marks the connection dirty ([`RtspOut::dirty`]); the worker writes
//!   every dirty connection once at the end of its poll iteration ([`Worker::rtsp_flush`]). All
//!   the frames one wake-up produced for a player (a keyframe's packets, an SR next to RTP) thus
//!   leave in one `write`. This is what brought the fan-out cost down (bench/rtsp_fanout).
//! - `rtsp.mergeWriteMs` (like ZLMediaKit's `mergeWriteMS`, default 0 = off) holds a player's
//!   output up to that many milliseconds from its first queued frame, so that several packets
//!   share one system call. Latency grows by at most that much; the worker wakes up at the
//!   earliest due connection ([`Worker::rtsp_next_flush`]).
//! - A connection whose last write left bytes (the socket buffer is full) is not written again
//!   until the socket says it is writable: trying would be one wasted system call per packet.
//! - Past [`FLUSH_AT`] queued bytes a connection is written at once (a publisher's burst read
//!   in one iteration must not fill a fast reader's [`WRITE_CAP`] and cost it packets).
//! - Replies of the control plane are written at once (after the frames queued before them).
//! - The buffer is reused between flushes (no allocation per packet); one that a burst (a
//!   keyframe, a merge window) made larger than [`KEEP_CAPACITY`] is freed once written, so idle
//!   memory per player stays small (bench/rtsp_fanout measures it).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pms_core::media::TransportId;
use pms_core::rtsp_framing::InterleavedReader;

use super::{READ_BUFFER, WRITE_CAP};
use crate::worker::Worker;

/// Write buffer capacity kept between flushes: a few ordinary frames (a bench player at
/// 200 kbit/s queues about 1 KiB per packet). Keeping 16 KiB (a keyframe) cost ~8 KiB more RSS
/// per player in bench/rtsp_fanout; freeing a larger one costs one allocation per keyframe or
/// per merge window, not per packet.
const KEEP_CAPACITY: usize = 4 * 1024;

/// Queued bytes written at once, whatever the merge time: a write this large already costs
/// little per byte, and holding more would risk [`WRITE_CAP`] within one poll iteration.
const FLUSH_AT: usize = 64 * 1024;

/// Connections with output waiting for the end of the poll iteration or for their merge time.
#[derive(Default)]
pub(crate) struct RtspOut {
    /// Connections that queued frames since the last [`Worker::rtsp_flush`].
    pub(crate) dirty: Vec<TransportId>,
    /// Connections holding frames for `mergeWriteMs`: (due, id), oldest first (the merge time is
    /// the same for all, so pushing at the back keeps the order).
    pub(crate) merging: VecDeque<(Instant, TransportId)>,
}

pub(crate) struct TcpConn {
    pub(super) stream: mio::net::TcpStream,
    pub(super) reader: Option<InterleavedReader>,
    wbuf: Vec<u8>,
    wpos: usize,
    /// Since when queued bytes have made no progress.
    pub(super) waiting_since: Option<Instant>,
    /// In [`RtspOut::dirty`].
    dirty: bool,
    /// In [`RtspOut::merging`].
    merging: bool,
}

impl TcpConn {
    pub(super) fn new(stream: mio::net::TcpStream) -> TcpConn {
        TcpConn {
            stream,
            reader: Some(InterleavedReader::new()),
            wbuf: Vec::new(),
            wpos: 0,
            waiting_since: None,
            dirty: false,
            merging: false,
        }
    }

    fn queued(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// Queues one `$` frame whole and marks the connection dirty; false (nothing queued) when it
    /// does not fit under [`WRITE_CAP`] or is longer than a frame can be.
    pub(super) fn queue_frame(
        &mut self,
        id: TransportId,
        channel: u8,
        pkt: &[u8],
        out: &mut RtspOut,
    ) -> bool {
        let Ok(len) = u16::try_from(pkt.len()) else {
            return false;
        };
        if self.queued() + 4 + pkt.len() > WRITE_CAP {
            return false;
        }
        let [hi, lo] = len.to_be_bytes();
        self.wbuf.extend_from_slice(&[b'$', channel, hi, lo]);
        self.wbuf.extend_from_slice(pkt);
        if !self.dirty {
            self.dirty = true;
            out.dirty.push(id);
        }
        if self.queued() >= FLUSH_AT && self.waiting_since.is_none() {
            // A large burst in one iteration (a fast publisher, a big keyframe): write now
            // rather than fill WRITE_CAP. An error shows again at the next flush, which closes.
            let _ = self.flush();
        }
        true
    }

    /// Queues a whole text message and writes what the socket takes. Err: broken.
    pub(super) fn send_text(&mut self, data: &[u8]) -> io::Result<()> {
        self.wbuf.extend_from_slice(data);
        self.flush()
    }

    /// Writes what the socket takes. Err: the connection is broken.
    pub(super) fn flush(&mut self) -> io::Result<()> {
        let mut progressed = false;
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.wpos += n;
                    progressed = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
            self.waiting_since = None;
            if self.wbuf.capacity() > KEEP_CAPACITY {
                // A keyframe or a merge window made it large: give it back rather than keep
                // 2x the largest burst per player (the next frames allocate what they need).
                self.wbuf = Vec::new();
            }
        } else {
            if progressed || self.waiting_since.is_none() {
                self.waiting_since = Some(Instant::now());
            }
            if self.wpos >= READ_BUFFER {
                self.wbuf.drain(..self.wpos);
                self.wpos = 0;
            }
        }
        Ok(())
    }
}

impl Worker {
    /// Writes the connections that queued frames in this poll iteration (or schedules them for
    /// `mergeWriteMs`), then those whose merge time has come.
    pub(crate) fn rtsp_flush(&mut self, now: Instant) {
        if self.rtsp_out.dirty.is_empty() && self.rtsp_out.merging.is_empty() {
            return;
        }
        let merge = Duration::from_millis(self.shared.rtsp_merge_write_ms.load(Ordering::Relaxed));
        let mut dirty = std::mem::take(&mut self.rtsp_out.dirty);
        for id in dirty.drain(..) {
            let Some(p) = self.rtsp_peer(id) else {
                continue;
            };
            let Some(c) = p.conn.as_mut() else { continue };
            c.dirty = false;
            if c.waiting_since.is_some() || c.merging {
                continue; // written when the socket is writable / at its merge time
            }
            if merge.is_zero() {
                if c.flush().is_err() {
                    p.closing = Some("eof");
                }
            } else {
                c.merging = true;
                self.rtsp_out.merging.push_back((now + merge, id));
            }
        }
        self.rtsp_out.dirty = dirty; // keeps its capacity
        while let Some(&(due, id)) = self.rtsp_out.merging.front() {
            if due > now {
                break;
            }
            self.rtsp_out.merging.pop_front();
            let Some(p) = self.rtsp_peer(id) else {
                continue;
            };
            let Some(c) = p.conn.as_mut() else { continue };
            c.merging = false;
            if c.waiting_since.is_none() && c.flush().is_err() {
                p.closing = Some("eof");
            }
        }
    }

    /// When the worker must wake up for [`Worker::rtsp_flush`] at the latest (`None`: no
    /// connection holds output for `mergeWriteMs`).
    pub(crate) fn rtsp_next_flush(&self) -> Option<Instant> {
        self.rtsp_out.merging.front().map(|(due, _)| *due)
    }
}
