//! # pms-core: the sans-IO media library of pms-trio
//!
//! Everything here is pure state machines over bytes and instants: no sockets, no threads, no
//! clock reads, no Python. `pms-io` owns the sockets and worker threads and drives these types;
//! `pms-py` exposes the result to Python. The router draws its random numbers from a source
//! its owner gives it ([`router::Router::new`]); the fuzz entry points, which read the clock,
//! are built only with the `fuzzing` cargo feature (the fuzz crate and the corpus tests).
//!
//! ## Theory of operation
//!
//! A *transport* ([`transport::WebRtcTransport`]) is one peer: ICE-lite (our own STUN responder
//! on `rtc-stun` messages), DTLS as server (`rtc-dtls`'s `DTLSConn`), SRTP/SRTCP (`rtc-srtp`).
//! Its offer/answer is [`sdp`]: a publisher's answer accepts exactly one codec per track (so the
//! codec is known at answer time), a player's answer takes the player's own payload types.
//!
//! The [`router`] fans each producer track out to its consumers. Per packet it rewrites SSRC,
//! sequence number, timestamp and payload type into a scratch buffer it owns, and hands the bytes
//! to a sink (the I/O layer, which encrypts them with the consumer's SRTP context and sends
//! them). It answers NACKs from a per-track retransmission buffer shared by every consumer,
//! forwards PLI/FIR upstream rate-limited, makes REMB and receiver reports for publishers, and
//! sender reports for consumers.
//!
//! ## Why our own forwarding path instead of `rtc`'s `RTCPeerConnection`
//!
//! The peer connection of webrtc-rs `rtc` 0.21 runs its interceptor chain per peer: the NACK
//! responder keeps a copy of every sent packet per subscriber, `write_rtp` scans transceivers and
//! clones the track id per packet, and inbound RTCP is not delivered to the application by
//! default. An SFU needs one retransmission buffer per *published* track shared by its players,
//! rewriting without allocation, and RTCP it can route. So we use the lower crates directly
//! (`rtc-stun`, `rtc-dtls`, `rtc-srtp`, `rtc-sdp`, `rtc-rtcp`) and keep the engine behind the
//! narrow surface of [`transport`] and [`sdp`], which another sans-IO stack (str0m) could
//! replace.

pub mod annexb;
pub mod cert;
pub mod codec;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod gb;
pub mod ice;
pub mod media;
pub mod packetize;
pub mod ps;
pub mod record;
pub mod retransmit;
pub mod router;
pub mod rtcp;
pub mod rtp;
pub mod rtsp_framing;
pub mod sdp;
pub mod transcode;
pub mod transport;
