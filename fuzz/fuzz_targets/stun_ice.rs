//! Invariant: any bytes go through `ice::classify`, `ice::stun_local_ufrag` and an `IceLite`'s
//! `handle_stun` without a panic, answering at most once and only accepting requests for our
//! ufrag; re-signed with our password, a binding request for us is accepted
//! (see `pms_core::fuzzing::fuzz_stun`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pms_core::fuzzing::fuzz_stun(data));
