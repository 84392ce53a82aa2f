//! Replays every saved fuzz input (`fuzz/corpus/<target>/*`) through the functions the
//! cargo-fuzz targets call, so regressions show up in `cargo test` without a fuzzer.

use std::path::Path;

#[test]
fn replay_fuzz_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut n = 0;
    for (target, run) in [
        ("rtp_router", pms_core::fuzzing::fuzz_rtp as fn(&[u8])),
        ("rtcp_router", pms_core::fuzzing::fuzz_rtcp),
    ] {
        let Ok(dir) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for entry in dir.flatten() {
            let data = std::fs::read(entry.path()).expect("readable corpus file");
            run(&data);
            n += 1;
        }
    }
    assert!(n >= 8, "corpus files found: {n}");
}
