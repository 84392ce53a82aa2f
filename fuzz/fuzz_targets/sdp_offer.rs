//! Invariant: any bytes, as UTF-8-lossy text, are answered by `sdp::answer_publisher` and
//! `sdp::answer_player` with Ok or an `SdpError`, never a panic; an Ok answer parses with
//! rtc-sdp and has one accepted m-line per returned track (see `pms_core::fuzzing::fuzz_sdp`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pms_core::fuzzing::fuzz_sdp(data));
