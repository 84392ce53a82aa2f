//! Invariant: any byte sequence, cut into length-prefixed RTCP compounds alternately from the
//! publisher and two players, is acted on or counted as dropped; never a panic, and the
//! retransmissions it triggers are bounded per compound.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pms_core::fuzzing::fuzz_rtcp(data));
