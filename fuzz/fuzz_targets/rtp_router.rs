//! Invariant: any byte sequence, cut into length-prefixed RTP packets from a publisher, is
//! forwarded or counted as dropped; the router never panics and its memory stays bounded.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pms_core::fuzzing::fuzz_rtp(data));
