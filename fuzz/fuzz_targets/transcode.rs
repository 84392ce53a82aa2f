//! Invariant: any byte sequence, read as RTP packets and sender reports of one AAC (RFC 3640,
//! with configs that may lie) or G.711 source track and run through the transcoder's
//! depacketizer, decoder, resampler and Opus encoder, never panics; the Opus packets that come
//! out are RTP of our SSRC and payload type with consecutive sequence numbers (see
//! `pms_core::transcode::fuzz_check`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pms_core::transcode::fuzz_check(data);
});
