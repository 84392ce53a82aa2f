//! Invariant: any byte sequence, read as one camera's TCP media connection (RFC 4571 frames of
//! RTP carrying MPEG-PS), fed to the deframer and a GB28181 ingest whole and in pieces whose
//! sizes come from the input, and once more through a UDP ingest (reorder buffer, time
//! passing), never panics; the split run frames and outputs exactly what the whole run does
//! (frames, framing error, tracks, RTP packets); no RTP comes before the tracks and every
//! output packet parses (see `pms_core::gb::fuzz_check`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pms_core::gb::fuzz_check(data));
