//! The kinds of peer a worker runs, one module each, all behind `crate::worker::Peer`: a
//! WebRTC transport ([`webrtc`]), an RTSP server session ([`rtsp_server`]), the GB28181 media
//! port and its ingests ([`gb`]), a recorder writing a stream to a file ([`recorder`]), an audio transcoder making an Opus
//! track of a stream's AAC or G.711 ([`transcoder`]). The
//! engine builds them; the worker never names them; a kind never imports another (they meet
//! only by peer id, through their handle).

pub(crate) mod gb;
pub(crate) mod recorder;
pub(crate) mod rtsp_server;
pub(crate) mod transcoder;
pub(crate) mod webrtc;
