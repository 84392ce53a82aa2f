//! Replays the saved inputs of the `rtsp_framing` fuzz target (`fuzz/corpus/rtsp_framing/*`)
//! through `pms_core::rtsp_framing::fuzz_check`, whole and truncated at every length (a cut
//! TCP stream is itself a network input).

use std::path::Path;

#[test]
fn replay_rtsp_framing_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/rtsp_framing");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/rtsp_framing exists") {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        for cut in 0..=data.len() {
            pms_core::rtsp_framing::fuzz_check(&data[..cut]);
        }
        n += 1;
    }
    assert!(
        n >= 5,
        "the seed corpus is missing ({n} inputs in {})",
        dir.display()
    );
}
