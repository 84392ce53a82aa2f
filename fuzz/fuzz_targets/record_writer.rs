//! Invariant: any byte sequence, read as RTP packets (with gaps, duplicates, reordering,
//! sender reports and garbage) of a two-track stream and recorded into `.webm`, `.mkv` and
//! `.mp4` by `RecordWriter`, never panics; every write either appends or lands inside what
//! was appended; a started file begins with its container's magic and is as long as the
//! writer says (see `pms_core::record::fuzz_check`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pms_core::record::fuzz_check(data);
});
