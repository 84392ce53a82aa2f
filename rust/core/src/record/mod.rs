//! # Recording: RTP in, WebM / Matroska / fragmented MP4 bytes out (sans-IO)
//!
//! A [`RecordWriter`] is one recording. Its owner (the recorder peer in `pms-io`, which owns
//! the file) feeds it the RTP packets of the stream's tracks and the sender reports it sees,
//! and writes what [`RecordWriter::poll_output`] returns: [`Write`]s that append, or that
//! overwrite earlier bytes at an offset (sizes and indexes filled in later). No file, no clock:
//! every packet comes with the instant it arrived.
//!
//! ```text
//! let mut w = RecordWriter::for_file_name("cam1.mkv", &tracks)?;   // 400 / 415 errors
//! loop {
//!     w.handle_rtp(now, track_index, &packet);      // or handle_sender_report(...)
//!     while let Some(write) = w.poll_output() { file.write_at(write) }
//! }
//! w.finish();                                       // then drain poll_output once more
//! ```
//!
//! Appends queue and merge until polled: a caller that polls once per batch of packets (or on
//! a short timer) makes one `write` per poll; what it has not polled and written is what a
//! crash loses. Patches (`offset: Some`) only come from closed clusters and from the finish.
//!
//! The pipeline, one module per step (the imports run one way: `writer` uses the others,
//! the containers use `container`, `sink` and `params`, nothing uses `writer` but `fuzz`):
//! - [`depack`]: RTP payloads to frames per codec, dropping what loss broke;
//! - [`timeline`]: RTP timestamps (wrapping) to one nanosecond timeline for all tracks;
//! - [`writer`]: waits until every track's configuration is known, interleaves;
//! - [`mkv`] (with [`ebml`]) and [`mp4`] (with [`mp4box`]): the containers, behind
//!   [`container::ContainerWriter`]; [`params`] builds their codec records;
//! - [`sink`]: the write queue.
//!
//! Segments (`segmentSeconds`): the caller cuts with a new writer. Once a segment is due, the
//! first video packet that starts a keyframe (`crate::codec::inspect(..).keyframe_start`,
//! which is true for the parameter-set packet the router sends ahead of an IDR) and every
//! packet after it go to a new `RecordWriter`, and the old one is finished. Each file then
//! starts at zero with a keyframe, its audio from the same instant.
//!
//! Crash safety: a Matroska file is playable after any append (unknown-size Segment and
//! Clusters, every block appended as it comes); an MP4 file after any whole fragment (at most
//! 0.5 s, plus four frames of B-frame reordering). A clean [`RecordWriter::finish`] adds the
//! index and sizes that make the file seek. The end-to-end test measures what a kill -9
//! leaves: Matroska loses the frame in progress, MP4 about 0.6 s.

pub mod container;
pub mod depack;
pub mod ebml;
pub mod fuzz;
pub mod mkv;
pub mod mp4;
pub mod mp4box;
pub mod params;
pub mod sink;
pub mod timeline;
pub mod writer;

pub use container::{Container, RecordError};
pub use fuzz::fuzz_check;
pub use sink::Write;
pub use writer::{RecordStats, RecordWriter, TrackSpec};
