//! Entry points for the fuzz targets (`fuzz/`) and the corpus replay test
//! (`tests/fuzz_corpus.rs`), so both run the same code. Each states its invariant; the common
//! one is that nothing reachable from the network panics, whatever the bytes.
//!
//! - [`fuzz_rtp`], [`fuzz_rtcp`]: a router with one producer (H.264 video + Opus audio) and two
//!   consumers; memory stays bounded (fixed-size retransmission buffers).
//! - [`fuzz_sdp`]: offers to [`crate::sdp`]; Ok or an `SdpError`, and an Ok answer parses.
//! - [`fuzz_stun`]: STUN to [`crate::ice`]; a re-signed well-formed request for us is accepted.
//! - [`fuzz_transport`]: datagrams to a `WebRtcTransport` whose ICE check already passed.
//!
//! Behind the `fuzzing` cargo feature (off by default): these entry points read the clock
//! (`Instant::now`), which the library proper never does. The fuzz crate and the corpus replay
//! tests enable it.

mod router;
mod sdp;
mod stun;
mod transport;

use std::sync::OnceLock;

use crate::cert::DtlsIdentity;
use crate::media::{Codec, CodecName};

pub use router::{fuzz_router, fuzz_rtcp, fuzz_rtp, CONSUMERS, PRODUCER};
pub use sdp::{fuzz_sdp, fuzz_source_tracks};
pub use stun::{binding_request, fuzz_stun};
pub use transport::{frame_datagrams, fuzz_transport, OTHER_PEER, PEER, PEER_FINGERPRINT};

/// Our ICE credentials in [`fuzz_stun`] and [`fuzz_transport`].
pub const ICE_UFRAG: &str = "fuzzsrv";
pub const ICE_PWD: &str = "fuzz-server-password-0123";

/// The DTLS identity of every fuzzed transport (generated once per process).
pub fn fuzz_identity() -> &'static DtlsIdentity {
    static IDENTITY: OnceLock<DtlsIdentity> = OnceLock::new();
    IDENTITY.get_or_init(|| DtlsIdentity::generate().expect("a DTLS identity"))
}

/// A codec as the fuzzed SDP and router set-ups declare it (H.264 with parameter sets in its
/// `fmtp`, every feedback type).
fn codec(name: CodecName, pt: u8, rtx: Option<u8>) -> Codec {
    Codec {
        name,
        payload_type: pt,
        clock_rate: if name == CodecName::Opus {
            48000
        } else {
            90000
        },
        channels: if name == CodecName::Opus { 2 } else { 0 },
        fmtp: if name == CodecName::H264 {
            "packetization-mode=1;sprop-parameter-sets=Z0LAH9oBQBbo,aM48gA==".into()
        } else {
            String::new()
        },
        rtx_payload_type: rtx,
        rtcp_fb: vec![
            "nack".into(),
            "nack pli".into(),
            "ccm fir".into(),
            "goog-remb".into(),
        ],
    }
}
