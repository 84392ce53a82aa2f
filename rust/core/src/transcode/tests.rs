//! The transcoder on real AAC (FFmpeg's encoder, 440 Hz sine) and on G.711 made here: the Opus
//! it makes is decoded with libopus and its pitch, timing and sender reports are checked.

use super::*;
use crate::gb::audio::Adts;

const STEREO_44K: &[u8] = include_bytes!("../../tests/data/sine440_44k_stereo.aac");
const MONO_16K: &[u8] = include_bytes!("../../tests/data/sine440_16k_mono.aac");

/// ADTS stream to raw AUs and the fmtp (AudioSpecificConfig from the first header).
fn adts_frames(mut b: &[u8]) -> (Vec<Vec<u8>>, String, u32) {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let mut frames = Vec::new();
    let mut cfg = None;
    while let Some(h) = Adts::parse(b) {
        cfg.get_or_insert((h.object_type, h.rate_index, h.channels));
        frames.push(b[h.header_len..h.frame_len].to_vec());
        b = &b[h.frame_len..];
    }
    let (ot, ri, ch) = cfg.expect("ADTS");
    let asc = (u16::from(ot) << 11) | (u16::from(ri) << 7) | (u16::from(ch) << 3);
    let fmtp = format!(
        "streamtype=5;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config={asc:04x}"
    );
    (frames, fmtp, RATES[ri as usize])
}

fn rfc3640(seq: u16, ts: u32, au: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 97];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x5555u32.to_be_bytes());
    p.extend_from_slice(&[0x00, 0x10]);
    p.extend_from_slice(&((au.len() as u16) << 3).to_be_bytes());
    p.extend_from_slice(au);
    p
}

const OPUS: OpusSpec = OpusSpec {
    ssrc: 0xABCD,
    payload_type: 111,
    first_seq: 65_000,
    ts_base: 4_000_000_000,
};

/// Opus RTP packets out of a transcoder: (seq, ts, payload), and its sender reports.
#[derive(Default)]
struct Collected {
    rtp: Vec<(u16, u32, Vec<u8>)>,
    srs: Vec<(u64, u32)>,
}

fn collect(t: &mut Transcoder, c: &mut Collected) {
    t.drain(|o| {
        if o.rtcp {
            if let Some(Ok(Rtcp::SenderReport {
                ntp_time, rtp_time, ..
            })) = rtcp::parse_compound(o.data).next()
            {
                c.srs.push((ntp_time, rtp_time));
            }
        } else {
            let v = rtp::parse(o.data).unwrap();
            assert_eq!((v.ssrc, v.payload_type), (OPUS.ssrc, OPUS.payload_type));
            c.rtp.push((v.seq, v.timestamp, v.payload.to_vec()));
        }
    });
}

/// Decodes Opus packets to mono 48 kHz, with silence for timestamp gaps.
fn decode(rtp: &[(u16, u32, Vec<u8>)]) -> Vec<f32> {
    let mut d = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0f32; 5760];
    for (_, _, p) in rtp {
        let n = d.decode_float(p, &mut buf, false).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Frequency by zero crossings, skipping the first 100 ms.
fn frequency(pcm: &[f32]) -> f64 {
    let s = &pcm[4800.min(pcm.len())..];
    let crossings = s.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
    crossings as f64 * 48_000.0 / s.len() as f64
}

fn run_aac(data: &[u8], skip: std::ops::Range<usize>) -> (Transcoder, Collected, u32) {
    let (frames, fmtp, rate) = adts_frames(data);
    let source = SourceSpec {
        codec: CodecName::Aac,
        clock_rate: rate,
        fmtp,
    };
    let mut t = Transcoder::new(source, OPUS).unwrap();
    let mut c = Collected::default();
    let ts0 = 0xFFFF_F000u32; // wraps
    for (i, au) in frames.iter().enumerate() {
        if skip.contains(&i) {
            continue;
        }
        let ts = ts0.wrapping_add(1024 * i as u32);
        t.handle_rtp(&rfc3640(i as u16, ts, au));
        collect(&mut t, &mut c);
    }
    (t, c, rate)
}

#[test]
fn aac_44k_stereo_becomes_440_hz_opus_on_the_source_clock() {
    let (t, c, _) = run_aac(STEREO_44K, 0..0);
    assert_eq!(t.channels(), 2);
    let s = t.stats();
    assert_eq!(s.frames_corrupt, 0, "{s:?}");
    assert!(s.frames_decoded >= 43, "{s:?}");
    // ~1 s of audio: about 50 packets of 20 ms, consecutive seq and ts.
    assert!(c.rtp.len() >= 45, "{}", c.rtp.len());
    for w in c.rtp.windows(2) {
        assert_eq!(w[1].0, w[0].0.wrapping_add(1));
        assert_eq!(w[1].1, w[0].1.wrapping_add(960));
    }
    assert_eq!(c.rtp[0].0, OPUS.first_seq);
    // The first packet sits the resampler delay and the encoder lookahead before the base.
    let lead = OPUS.ts_base.wrapping_sub(c.rtp[0].1);
    assert!((100..1200).contains(&lead), "lead {lead}");
    let f = frequency(&decode(&c.rtp));
    assert!((f - 440.0).abs() < 440.0 * 0.02, "{f} Hz");
}

#[test]
fn aac_16k_mono_becomes_440_hz_opus() {
    let (t, c, rate) = run_aac(MONO_16K, 0..0);
    assert_eq!((t.channels(), rate), (1, 16_000));
    let f = frequency(&decode(&c.rtp));
    assert!((f - 440.0).abs() < 440.0 * 0.02, "{f} Hz");
}

#[test]
fn a_gap_in_the_source_is_a_gap_in_opus_time_not_a_shift() {
    let (t, c, rate) = run_aac(STEREO_44K, 10..20);
    assert_eq!(t.stats().gaps, 1);
    let jump = c
        .rtp
        .windows(2)
        .map(|w| w[1].1.wrapping_sub(w[0].1))
        .find(|d| *d != 960)
        .expect("a jump");
    // 10 frames of 1024 at 44.1 kHz = 232 ms = 11146 ticks at 48 kHz, less what the padded
    // last packet before the gap already covered.
    let missing = 10 * 1024 * 48_000 / rate;
    assert!(jump > missing - 960 && jump <= missing + 960, "jump {jump}");
    // After the gap the packets sit where the source says: the last packet's place is the
    // same as without the gap (modulo one frame of resampler/lookahead alignment).
    let (_, c_full, _) = run_aac(STEREO_44K, 0..0);
    let last = c.rtp.last().unwrap().1;
    let last_full = c_full.rtp.last().unwrap().1;
    assert!(
        (last.wrapping_sub(last_full) as i32).abs() <= 960,
        "{last} vs {last_full}"
    );
}

#[test]
fn sender_reports_map_to_the_opus_clock() {
    let (frames, fmtp, rate) = adts_frames(STEREO_44K);
    let mut t = Transcoder::new(
        SourceSpec {
            codec: CodecName::Aac,
            clock_rate: rate,
            fmtp,
        },
        OPUS,
    )
    .unwrap();
    let mut c = Collected::default();
    let mut sr = Vec::new();
    t.handle_rtcp(&{
        rtcp::write_sr(&mut sr, 1, 7, 0, 0, 0);
        sr.clone()
    });
    collect(&mut t, &mut c);
    assert!(c.srs.is_empty(), "no mapping before the first packet");
    for (i, au) in frames.iter().take(5).enumerate() {
        t.handle_rtp(&rfc3640(i as u16, 1000 + 1024 * i as u32, au));
    }
    sr.clear();
    rtcp::write_sr(&mut sr, 1, 0x1122_3344_5566_7788, 1000 + 44_100, 5, 100);
    t.handle_rtcp(&sr);
    collect(&mut t, &mut c);
    assert_eq!(
        c.srs,
        vec![(0x1122_3344_5566_7788, OPUS.ts_base.wrapping_add(48_000))]
    );
}

fn alaw_sine(n: usize, rate: f64) -> Vec<u8> {
    // A-law encode by searching the decode table (test only).
    let table: Vec<f32> = (0..=255u8).map(depack::alaw_to_f32).collect();
    (0..n)
        .map(|i| {
            let x = 0.5 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / rate).sin() as f32;
            (0..=255u8)
                .min_by(|a, b| {
                    (table[*a as usize] - x)
                        .abs()
                        .total_cmp(&(table[*b as usize] - x).abs())
                })
                .unwrap()
        })
        .collect()
}

#[test]
fn g711a_becomes_440_hz_mono_opus() {
    let samples = alaw_sine(8000, 8000.0);
    let mut t = Transcoder::new(
        SourceSpec {
            codec: CodecName::Pcma,
            clock_rate: 8000,
            fmtp: String::new(),
        },
        OPUS,
    )
    .unwrap();
    let mut c = Collected::default();
    for (i, chunk) in samples.chunks(160).enumerate() {
        let mut p = vec![0x80, 8];
        p.extend_from_slice(&(i as u16).to_be_bytes());
        p.extend_from_slice(&(160 * i as u32).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 9]);
        p.extend_from_slice(chunk);
        t.handle_rtp(&p);
        collect(&mut t, &mut c);
    }
    assert_eq!(t.channels(), 1);
    assert!(c.rtp.len() >= 48, "{}", c.rtp.len());
    let f = frequency(&decode(&c.rtp));
    assert!((f - 440.0).abs() < 440.0 * 0.02, "{f} Hz");
}

#[test]
fn corrupt_and_repeated_packets_are_counted_and_skipped() {
    let (frames, fmtp, rate) = adts_frames(STEREO_44K);
    let source = SourceSpec {
        codec: CodecName::Aac,
        clock_rate: rate,
        fmtp,
    };
    let mut t = Transcoder::new(source, OPUS).unwrap();
    let mut c = Collected::default();
    for (i, au) in frames.iter().enumerate() {
        let ts = 1024 * i as u32;
        if i % 5 == 2 {
            let junk: Vec<u8> = au.iter().map(|b| b.wrapping_mul(31) ^ 0xA5).collect();
            t.handle_rtp(&rfc3640(i as u16, ts, &junk));
        } else if i % 7 == 3 {
            t.handle_rtp(&[
                0x80, 97, 0, i as u8, 0, 0, 0, 0, 0, 0, 0, 1, 0x00, 0x10, 0xFF,
            ]);
        } else {
            t.handle_rtp(&rfc3640(i as u16, ts, au));
        }
        t.handle_rtp(&rfc3640(i as u16, ts, au)); // a repeat
        collect(&mut t, &mut c);
    }
    let s = t.stats();
    assert!(s.frames_corrupt >= 5, "{s:?}");
    assert_eq!(s.packets_late as usize, frames.len());
    assert!(c.rtp.len() >= 30);
    for w in c.rtp.windows(2) {
        assert_eq!(w[1].0, w[0].0.wrapping_add(1));
    }
}

#[test]
fn a_lying_config_and_unsupported_ones() {
    // Says mono 48 kHz; the frames are stereo 44.1 kHz: they fail, the decoder is rebuilt with
    // two channels and decodes (at the wrong rate: no panic, the track keeps going).
    let (frames, _, _) = adts_frames(STEREO_44K);
    let source = SourceSpec {
        codec: CodecName::Aac,
        clock_rate: 48_000,
        fmtp: "sizelength=13;indexlength=3;indexdeltalength=3;config=1188".into(),
    };
    let mut t = Transcoder::new(source, OPUS).unwrap();
    let mut c = Collected::default();
    for (i, au) in frames.iter().enumerate() {
        t.handle_rtp(&rfc3640(i as u16, 1024 * i as u32, au));
        collect(&mut t, &mut c);
    }
    let s = t.stats();
    assert!(s.frames_decoded > 20, "{s:?}");
    assert!(!c.rtp.is_empty());
    for bad in [
        "config=",
        "config=1218",
        "config=17",
        "sizelength=0;config=1210",
    ] {
        let source = SourceSpec {
            codec: CodecName::Aac,
            clock_rate: 44_100,
            fmtp: bad.into(),
        };
        assert!(Transcoder::new(source, OPUS).is_err(), "{bad}");
    }
}

#[test]
fn a_change_of_rate_and_channels_keeps_one_opus_timeline() {
    let mut p = encode::OpusPipeline::new(2, 48_000, 0).unwrap();
    let mut pcm = decode::Pcm {
        rate: 48_000,
        channels: 2,
        frames: 960,
        planes: [vec![0.1; 960], vec![0.1; 960]],
    };
    let mut ts = Vec::new();
    let mut emit = |e: encode::Encoded<'_>| ts.push(e.timestamp);
    for i in 0..10 {
        p.push(960 * i, &pcm, &mut emit);
    }
    pcm = decode::Pcm {
        rate: 16_000,
        channels: 1,
        frames: 320,
        planes: [vec![0.1; 320], Vec::new()],
    };
    for i in 0..30 {
        p.push(9600 + 960 * i, &pcm, &mut emit);
    }
    assert_eq!(p.reconfigs, 1);
    assert!(ts.len() >= 35, "{}", ts.len());
    for w in ts.windows(2) {
        let d = w[1].wrapping_sub(w[0]) as i32;
        assert!(d > 0 && d <= 2 * 960, "{d}");
    }
}

#[test]
fn fuzz_check_runs_on_a_few_inputs() {
    let (frames, _, _) = adts_frames(STEREO_44K);
    for sel in 0..8u8 {
        let mut data = vec![sel];
        for (i, f) in frames.iter().take(12).enumerate() {
            let n = f.len().min(255);
            data.push(n as u8);
            data.push(if i == 5 { 1 } else { 0x16 });
            data.extend_from_slice(&f[..n]);
        }
        fuzz_check(&data);
        fuzz_check(&data[..data.len() / 2]);
    }
}

#[test]
fn in_band_fec_follows_the_loss_players_report() {
    // Opus TOC config 0-15: SILK or hybrid (where in-band FEC lives); 16-31: CELT only.
    let modes = |loss: Option<i32>| {
        let (frames, fmtp, rate) = adts_frames(STEREO_44K);
        let mut t = Transcoder::new(
            SourceSpec {
                codec: CodecName::Aac,
                clock_rate: rate,
                fmtp,
            },
            OPUS,
        )
        .unwrap();
        if let Some(l) = loss {
            assert!(t.set_expected_loss(l));
        }
        let mut c = Collected::default();
        for (i, au) in frames.iter().enumerate() {
            t.handle_rtp(&rfc3640(i as u16, 1024 * i as u32, au));
            collect(&mut t, &mut c);
        }
        let silk = c.rtp.iter().filter(|(_, _, p)| p[0] >> 3 < 16).count();
        (silk, c.rtp.len())
    };
    let (silk, n) = modes(None);
    assert_eq!(silk, 0, "no loss reported: CELT only ({silk} of {n})");
    let (silk, n) = modes(Some(20));
    assert!(
        silk > n / 2,
        "20% loss: SILK/hybrid with FEC ({silk} of {n})"
    );
}
