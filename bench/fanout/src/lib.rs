//! pms-fanout: a packet-counting WebRTC load client for the pms-trio fan-out benchmark.
//!
//! Built on the webrtc-rs sans-IO crates only (no code shared with the server), so that hundreds
//! of players fit in one process: per received packet a player does one SRTP decrypt and a header
//! parse.

extern crate rtc_crypto as crypto;
extern crate rtc_dtls as dtls;
extern crate rtc_rtcp as rtcp;
extern crate rtc_shared as shared;
extern crate rtc_srtp as srtp;
extern crate rtc_stun as stun;

pub mod janus;
pub mod media;
pub mod sdp;
pub mod sdp_answer;
pub mod signaling;
pub mod transport;
pub mod worker;
