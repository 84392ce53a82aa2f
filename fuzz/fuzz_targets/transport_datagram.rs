//! Invariant: any bytes, cut into length-prefixed datagrams from two source addresses, fed to a
//! `WebRtcTransport` past its ICE check with `now` advancing and timeouts run, never panic;
//! transmits and events drain and the transport ends closed exactly once
//! (see `pms_core::fuzzing::fuzz_transport`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pms_core::fuzzing::fuzz_transport(data));
