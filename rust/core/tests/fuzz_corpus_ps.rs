//! Replays the saved inputs of the `ps_demux` fuzz target (`fuzz/corpus/ps_demux/*`) through
//! `pms_core::ps::fuzz_check`, whole and truncated at many points (a cut PS stream is itself
//! a network input). Seeds: the files of `tests/data/ps/` (see `tests/ps.rs`), halves and tails
//! of them, garbage between packs, and video PES rewritten to length 0 (unbounded).

use std::path::Path;

#[test]
fn replay_ps_demux_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/ps_demux");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/ps_demux exists") {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        let step = (data.len() / 64).max(1);
        for cut in (0..=data.len()).step_by(step) {
            pms_core::ps::fuzz_check(&data[..cut]);
            pms_core::ps::fuzz_check(&data[cut..]);
        }
        n += 1;
    }
    assert!(
        n >= 10,
        "the seed corpus is missing ({n} inputs in {})",
        dir.display()
    );
}
