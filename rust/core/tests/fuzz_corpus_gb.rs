//! Replays the saved inputs of the `gb_ingest` fuzz target (`fuzz/corpus/gb_ingest/*`) through
//! `pms_core::gb::fuzz_check`, whole and truncated at many points (a cut TCP stream is itself a
//! network input).
//!
//! `cargo test -p pms-core --release --test fuzz_corpus_gb -- --ignored write_gb_seed_corpus`
//! writes the seeds: the PS files of `tests/data/ps/` cut into RTP packets of at most 1400
//! bytes as cameras do, RFC 4571 framed (and variants: a sequence gap, an unknown-SSRC-free
//! RTCP frame in between, a hostile length at the end).

use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/gb_ingest")
}

#[test]
fn replay_gb_ingest_corpus() {
    let mut n = 0;
    for entry in std::fs::read_dir(corpus()).expect("fuzz/corpus/gb_ingest exists") {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        let step = (data.len() / 32).max(1);
        for cut in (0..=data.len()).step_by(step) {
            pms_core::gb::fuzz_check(&data[..cut]);
            pms_core::gb::fuzz_check(&data[cut..]);
        }
        n += 1;
    }
    assert!(n >= 5, "the seed corpus is missing ({n} inputs)");
}

/// RTP packets of `ps` (payloads of at most 1400 bytes), RFC 4571 framed; `skip` drops one.
fn framed(ps: &[u8], ssrc: u32, skip: Option<usize>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, chunk) in ps.chunks(1400).enumerate() {
        if Some(i) == skip {
            continue;
        }
        let mut p = vec![0x80, 96];
        p.extend_from_slice(&(i as u16).to_be_bytes());
        p.extend_from_slice(&(i as u32 * 3600).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(chunk);
        pms_core::gb::framing::frame(&p, &mut out).unwrap();
    }
    out
}

#[test]
#[ignore]
fn write_gb_seed_corpus() {
    let dir = corpus();
    std::fs::create_dir_all(&dir).unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ps");
    for name in [
        "h264_audio",
        "hevc_160x120",
        "h264_no_psm",
        "h264_160x120",
        "h264_aac",
    ] {
        let ps = std::fs::read(data.join(format!("{name}.ps"))).unwrap();
        std::fs::write(dir.join(format!("{name}.rtp")), framed(&ps, 7, None)).unwrap();
        std::fs::write(dir.join(format!("{name}_gap.rtp")), framed(&ps, 7, Some(1))).unwrap();
    }
    let ps = std::fs::read(data.join("h264_audio.ps")).unwrap();
    let mut rtcp = framed(&ps[..3000], 7, None);
    // An RTCP receiver report between the RTP frames, then a hostile length.
    let rr = [0x80, 201, 0, 1, 0, 0, 0, 7];
    let mut frame = vec![0, 12];
    frame.extend_from_slice(&rr);
    frame.extend_from_slice(&[0, 0, 0, 0]);
    rtcp.extend_from_slice(&frame);
    rtcp.extend_from_slice(&framed(&ps[3000..], 7, None));
    rtcp.extend_from_slice(&[0xff, 0xff, 0x80]);
    std::fs::write(dir.join("h264_audio_rtcp_truncated.rtp"), rtcp).unwrap();
}

/// The seeds are what they claim: a camera's stream that goes live with its codecs, whose
/// frames come out as RTP, and whose gap is seen.
#[test]
fn seeds_go_live_with_their_codecs() {
    use pms_core::gb::{Deframer, IngestOutput, PsIngest};
    let now = std::time::Instant::now();
    for (name, codecs, gaps) in [
        ("h264_audio.rtp", "H264 PCMA", 0),
        ("h264_audio_gap.rtp", "H264 PCMA", 1),
        ("hevc_160x120.rtp", "H265", 0),
        ("h264_no_psm.rtp", "H264 PCMA", 0), // no PSM: audio PES read as G.711 A-law
        ("h264_aac.rtp", "H264 MPEG4-GENERIC", 0),
        ("h264_aac_gap.rtp", "H264 MPEG4-GENERIC", 1),
    ] {
        let data = std::fs::read(corpus().join(name)).unwrap();
        let mut ingest = PsIngest::new(false, 1, 2);
        let (mut live, mut rtp) = (String::new(), 0);
        Deframer::new()
            .push(&data, |pkt| {
                ingest.push_rtp(pkt, now, &mut |o| match o {
                    IngestOutput::Live(t) => {
                        live = t
                            .iter()
                            .map(|t| t.codec.name.encoding_name())
                            .collect::<Vec<_>>()
                            .join(" ")
                    }
                    IngestOutput::Rtp(_) => rtp += 1,
                })
            })
            .unwrap();
        assert_eq!(live, codecs, "{name}");
        assert!(rtp > 5, "{name}: {rtp} RTP packets");
        assert_eq!(ingest.stats().gaps, gaps, "{name}");
    }
}

/// UDP: packets swapped in pairs and duplicated come out of the reorder buffer in order: the
/// same frames as the in-order TCP path, no gap; a dropped packet is one gap and costs frames,
/// never corrupt ones (the demuxer resyncs).
#[test]
fn udp_reordering_gives_the_in_order_output() {
    use pms_core::gb::{Deframer, IngestOutput, PsIngest};
    let data = std::fs::read(corpus().join("h264_audio.rtp")).unwrap();
    let mut pkts = Vec::new();
    Deframer::new()
        .push(&data, |p| pkts.push(p.to_vec()))
        .unwrap();
    let now = std::time::Instant::now();
    let run = |order: &[usize], udp: bool| {
        let mut ingest = PsIngest::new(udp, 1, 2);
        let mut sizes = Vec::new();
        for &i in order {
            ingest.push_rtp(&pkts[i], now, &mut |o| {
                if let IngestOutput::Rtp(p) = o {
                    sizes.push(p.len());
                }
            });
        }
        ingest.handle_timeout(now + std::time::Duration::from_secs(1), &mut |o| {
            if let IngestOutput::Rtp(p) = o {
                sizes.push(p.len());
            }
        });
        (sizes, ingest.stats())
    };
    let in_order: Vec<usize> = (0..pkts.len()).collect();
    let (reference, s) = run(&in_order, false);
    assert_eq!(s.gaps, 0);
    let mut shuffled = Vec::new();
    for pair in in_order.chunks(2) {
        shuffled.extend(pair.iter().rev());
        shuffled.push(pair[0]); // a duplicate
    }
    let (got, s) = run(&shuffled, true);
    assert_eq!(got, reference);
    assert_eq!((s.gaps, s.late as usize), (0, in_order.chunks(2).count()));
    let lossy: Vec<usize> = in_order.iter().copied().filter(|i| *i != 2).collect();
    let (got, s) = run(&lossy, true);
    assert_eq!(s.gaps, 1);
    assert!(got.len() < reference.len());
}
