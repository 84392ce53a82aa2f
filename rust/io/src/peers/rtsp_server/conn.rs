//! The write side of an RTSP TCP connection the core owns: one buffer, written in as few
//! system calls as the configuration allows.
//!
//! Decisions:
//!
//! - Frames are never written one `write` each. The router's output queues `$` frames in the
//!   connection's buffer and asks the worker for a flush ([`MediaOut::flush_later`]); the peer
//!   writes once at the end of the poll iteration ([`RtspServerPeer::flush_queued`]). All
//!   the frames one wake-up produced for a player (a keyframe's packets, an SR next to RTP) thus
//!   leave in one `write`. This is what brought the fan-out cost down (bench/rtsp_fanout).
//! - `rtsp.mergeWriteMs` (like ZLMediaKit's `mergeWriteMS`, default 0 = off) holds a player's
//!   output up to that many milliseconds from its first queued frame, so that several packets
//!   share one system call. Latency grows by at most that much; the worker wakes up at the
//!   earliest due connection (the merge time is the peer's deadline).
//! - A connection whose last write left bytes (the socket buffer is full) is not written again
//!   until the socket says it is writable: trying would be one wasted system call per packet.
//! - Past [`FLUSH_AT`] queued bytes a connection is written at once (a publisher's burst read
//!   in one iteration must not fill a fast reader's [`WRITE_CAP`] and cost it packets).
//! - Replies of the control plane are written at once (after the frames queued before them).
//! - The buffer is reused between flushes (no allocation per packet); one that a burst (a
//!   keyframe, a merge window) made larger than [`KEEP_CAPACITY`] is freed once written, so idle
//!   memory per player stays small (bench/rtsp_fanout measures it).

use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pms_core::rtsp_framing::InterleavedReader;

use super::{RtspServerPeer, WRITE_CAP};
use crate::worker::{MediaOut, PeerCtx, READ_BUFFER};

/// Write buffer capacity kept between flushes: a few ordinary frames (a bench player at
/// 200 kbit/s queues about 1 KiB per packet). Keeping 16 KiB (a keyframe) cost ~8 KiB more RSS
/// per player in bench/rtsp_fanout; freeing a larger one costs one allocation per keyframe or
/// per merge window, not per packet.
const KEEP_CAPACITY: usize = 4 * 1024;

/// Queued bytes written at once, whatever the merge time: a write this large already costs
/// little per byte, and holding more would risk [`WRITE_CAP`] within one poll iteration.
const FLUSH_AT: usize = 64 * 1024;

pub(crate) struct TcpConn {
    pub(super) stream: mio::net::TcpStream,
    pub(super) reader: Option<InterleavedReader>,
    wbuf: Vec<u8>,
    wpos: usize,
    /// Since when queued bytes have made no progress.
    pub(super) waiting_since: Option<Instant>,
    /// A flush is asked for (end of this poll iteration).
    dirty: bool,
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
        }
    }

    fn queued(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// Queues one `$` frame whole and marks the connection dirty; false (nothing queued) when it
    /// does not fit under [`WRITE_CAP`] or is longer than a frame can be.
    pub(super) fn queue_frame(&mut self, channel: u8, pkt: &[u8], out: &mut MediaOut<'_>) -> bool {
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
            out.flush_later();
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

impl RtspServerPeer {
    /// At the end of the poll iteration that queued frames: write them (or hold them for
    /// `mergeWriteMs`, until the peer's deadline). Err: the connection is broken.
    pub(super) fn flush_queued(&mut self, ctx: &mut PeerCtx<'_>) -> Result<(), ()> {
        let merge = Duration::from_millis(ctx.shared().rtsp_merge_write_ms.load(Ordering::Relaxed));
        let Some(c) = self.conn.as_mut() else {
            return Ok(());
        };
        c.dirty = false;
        if c.waiting_since.is_some() || self.merge_due.is_some() {
            return Ok(()); // written when the socket is writable / at its merge time
        }
        if merge.is_zero() {
            c.flush().map_err(|_| ())
        } else {
            self.merge_due = Some(ctx.now() + merge);
            Ok(())
        }
    }
}
