//! Invariant: any byte stream on an RTSP connection the core owns, pushed in any pieces, frames
//! the same way (interleaved `$` frames and text messages), never panics, and the reader's
//! buffer stays bounded; an oversized header is an error after which nothing more is framed.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pms_core::rtsp_framing::fuzz_check(data));
