//! The media plane's counters: their names as the control plane reads them, and the plain
//! per-worker array the worker and its peers add to (published to atomics by the worker).
//!
//! A leaf module: it knows no worker, peer or engine.

/// Counter indexes (positions in [`STAT_NAMES`]).
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
/// The router's drops plus datagrams no peer took (the worker adds the two).
pub(crate) const STAT_RTP_DROPPED: usize = 10;
pub(crate) const STAT_SEND_ERRORS: usize = 11;
pub(crate) const STAT_PUBLISHERS: usize = 12;
/// Packets not queued for a slow RTSP TCP reader (its write buffer was full).
pub(crate) const STAT_RTSP_DROPPED: usize = 13;
pub(crate) const STAT_GB_INGESTS: usize = 14;
pub(crate) const STAT_GB_TCP_CONNECTIONS: usize = 15;
pub(crate) const STAT_GB_UNKNOWN_SSRC: usize = 16;
pub(crate) const STAT_GB_PS_RESYNCS: usize = 17;
pub(crate) const STAT_GB_BYTES_IN: usize = 18;
pub(crate) const STAT_GB_PACKETS_IN: usize = 19;
pub(crate) const STAT_GB_SEQ_GAPS: usize = 20;
/// Recorders running now (gauge).
pub(crate) const STAT_RECORDINGS: usize = 21;
/// Bytes written to recording files.
pub(crate) const STAT_RECORD_BYTES: usize = 22;
/// Recording files finished complete / given up on (write error, folder gone).
pub(crate) const STAT_RECORD_FILES: usize = 23;
pub(crate) const STAT_RECORD_FAILURES: usize = 24;
/// Frames a recorder could not write (loss broke them, or a track was left out).
pub(crate) const STAT_RECORD_FRAMES_DROPPED: usize = 25;
/// Bytes read from origins by cascade pulls (their TCP connections, media and replies).
pub(crate) const STAT_PULL_BYTES_IN: usize = 26;
/// CPU time the worker thread used, in microseconds (as of its last publish).
pub(crate) const STAT_CPU_US: usize = 27;
/// Segmented (UDP GSO) sends, each carrying several of a player's datagrams.
pub(crate) const STAT_GSO_SENDS: usize = 28;

/// Audio transcoders running now (gauge; SPEC 11).
pub(crate) const STAT_TRANSCODERS: usize = 29;
/// Microseconds of thread CPU time the transcoders spent decoding, resampling and encoding.
pub(crate) const STAT_TRANSCODE_CPU_US: usize = 30;
/// Source audio frames the transcoders could not decode (skipped).
pub(crate) const STAT_TRANSCODE_CORRUPT: usize = 31;
/// Opus packets the transcoders made.
pub(crate) const STAT_TRANSCODE_PACKETS: usize = 32;

pub(crate) const STAT_NAMES: [&str; 33] = [
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
    "recordings",
    "record_bytes",
    "record_files",
    "record_failures",
    "record_frames_dropped",
    "pull_bytes_in",
    "cpu_us",
    "gso_sends",
    "transcoders",
    "transcode_cpu_us",
    "transcode_frames_corrupt",
    "transcode_packets",
];

/// The calling thread's CPU time in microseconds (0 where the clock is missing).
pub(crate) fn thread_cpu_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if r != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000) + (ts.tv_nsec as u64) / 1_000
}

/// One worker's counters (worker thread only; no atomics on the hot path). Gauges such as
/// `gb_ingests` go up and down; the rest only grow.
#[derive(Debug, Clone)]
pub(crate) struct Counters {
    values: [u64; STAT_NAMES.len()],
}

impl Default for Counters {
    // Arrays of more than 32 elements have no derived `Default`.
    fn default() -> Self {
        Counters {
            values: [0; STAT_NAMES.len()],
        }
    }
}

impl Counters {
    #[inline]
    pub(crate) fn add(&mut self, index: usize, n: u64) {
        if let Some(v) = self.values.get_mut(index) {
            *v = v.wrapping_add(n);
        }
    }

    /// Lowers a gauge (never below zero).
    #[inline]
    pub(crate) fn sub(&mut self, index: usize, n: u64) {
        if let Some(v) = self.values.get_mut(index) {
            *v = v.saturating_sub(n);
        }
    }

    pub(crate) fn get(&self, index: usize) -> u64 {
        self.values.get(index).copied().unwrap_or(0)
    }

    /// One packet of `bytes` sent.
    #[inline]
    pub(crate) fn sent(&mut self, bytes: u64) {
        self.add(STAT_PACKETS_OUT, 1);
        self.add(STAT_BYTES_OUT, bytes);
    }

    /// One packet of `bytes` received.
    #[inline]
    pub(crate) fn received(&mut self, bytes: u64) {
        self.add(STAT_PACKETS_IN, 1);
        self.add(STAT_BYTES_IN, bytes);
    }
}
