//! # pms-io: worker threads, sockets and timers that drive `pms-core`
//!
//! Three layers, imported one way (engine → worker and peers → shared leaf modules):
//!
//! - [`Engine`] (`engine/`) is the media plane as the control plane sees it: typed,
//!   non-blocking commands (`create_publisher`, `create_player`, `set_muted`,
//!   `close_transport`, RTSP, GB28181...) and events on an [`events::EventQueue`] with a wakeup
//!   fd. It builds each peer and hands it to a worker.
//! - `worker/`: one thread per worker with its poll, its shared UDP socket, a deadline heap, one
//!   router and a table of peers it knows only through the `Peer` trait.
//! - `peers/`: the kinds of media endpoint, one module each (WebRTC transport, RTSP server
//!   session, GB28181 media port and ingest); a kind never imports another.
//!
//! Leaf modules: `events`, `logger`, `registry` (streams and transports), `stats`, `batch`
//! (`sendmmsg`), `ports` (binding the workers' UDP sockets).
//!
//! A stream lives on one worker: its publisher and all its players are created there, so
//! fanning a packet out never crosses threads. New streams go to the least loaded worker.
//! Commands do the SDP work on the caller's thread (microseconds) and pass the new peer to its
//! worker through a channel; the worker wakes up through a `mio::Waker`.

mod batch;
mod engine;
pub mod events;
pub mod logger;
mod media_stats;
mod peers;
mod ports;
mod registry;
mod stats;
mod worker;

pub use engine::{
    Engine, EngineConfig, EngineError, RtspTrackSetup, RtspTrackSpec, TranscodedTrack,
};
pub use events::{Event, EventQueue};
pub use media_stats::StreamStats;
pub use pms_core::media::ProducerTrack as StreamTrack;
pub use pms_core::router::{JoinHistogram, KindStats, JOIN_BUCKETS_MS};
pub use ports::candidate_ips;
