//! # GB28181 media ingest, sans-IO parts
//!
//! A GB28181 camera sends MPEG-PS in RTP to the platform's media port, over TCP (RFC 4571
//! framing, many cameras on one port) or UDP (GB/T 28181-2016 annex L, section 6 of the team's
//! digest). This module holds everything of that path that needs no socket, so it can be unit
//! tested and fuzzed; `pms-io`'s `gb` module owns the sockets, the timers and the router.
//!
//! - [`framing`]: the RFC 4571 deframer of one TCP connection;
//! - [`matcher`]: which ingest a packet belongs to (SSRC, else the camera's source IP);
//! - [`reorder`]: the small reorder buffer in front of a UDP ingest;
//! - [`ingest`]: one ingest's RTP → PS demuxer → producer RTP (video packetizer, [`audio`]).
//!
//! None of it panics on any input (see `fuzz_check`, built with the `fuzzing` feature); none of it allocates per packet once
//! warmed up, except the demuxer's one buffer per access unit.

pub mod audio;
pub mod framing;
pub mod ingest;
pub mod matcher;
pub mod reorder;

#[cfg(any(test, feature = "fuzzing"))]
mod fuzz;

#[cfg(any(test, feature = "fuzzing"))]
pub use fuzz::fuzz_check;

pub use framing::{Deframer, FramingError};
pub use ingest::{IngestOutput, IngestStats, PsIngest, Retimer};
pub use matcher::{Match, Matcher};
pub use reorder::{Ordered, Reorder};
