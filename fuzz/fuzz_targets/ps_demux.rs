//! Invariant: any byte sequence, pushed into a `PsDemuxer` whole, then in pieces whose sizes
//! come from the input, then in pieces with `lost()` calls between them, never panics, keeps
//! its buffers bounded (`MAX_FRAME`, `MAX_AUDIO`, one PSM), counts consistently (every byte
//! pushed, frames <= PES), and the split run yields exactly the events of the whole run
//! (see `pms_core::ps::fuzz_check`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pms_core::ps::fuzz_check(data));
