//! Audio of a GB28181 stream as RTP: G.711 (RFC 3551 4.5.14, 8 kHz) and AAC (RFC 3640
//! `mpeg4-generic`, AAC-hbr mode).
//!
//! - G.711: the PES payload is the samples; it goes straight into RTP payloads of at most
//!   [`MAX_G711_PAYLOAD`] bytes (one byte per sample), timestamps at 8 kHz from the PTS plus the
//!   samples already sent of that PES.
//! - AAC: the PES holds ADTS frames (ISO/IEC 14496-3 1.A.2.2). Each raw frame (ADTS header
//!   stripped) goes out alone with an AU-headers-length of 16 bits and one AU-header (13-bit
//!   size, 3-bit index 0): the `sizelength=13;indexlength=3;indexdeltalength=3` of the fmtp that
//!   RTSP publishers of AAC use. Timestamps at the sample rate, 1024 samples per frame. The
//!   `config` (AudioSpecificConfig) comes from the first ADTS header, so an AAC track is only
//!   described once its first frame is there. Frames that this config does not describe (their
//!   ADTS header says another rate, channel layout or object type) and ADTS frames of several
//!   raw data blocks (which an AU-header cannot split without the CRC variant's positions) are
//!   dropped, their samples still counted in the timestamps.
//! - An ADTS frame that a PES ends in the middle of (cameras cut PES by size) waits for its rest
//!   at the start of the next PES and goes out whole, at the timestamp after the previous frame;
//!   if the next PES starts a frame of its own instead, the partial one is dropped.
//! - Timestamps stay continuous: a PES whose PTS puts it within [`MAX_BEHIND`] before, or
//!   [`MAX_AHEAD_MS`] after, where the previous PES's samples ended continues right there. A
//!   90 kHz PTS cannot hold every sample boundary (a 44.1 kHz AAC frame is 2089.8 ticks, so
//!   cameras' PTS make RTP steps of 1023 and 1025), a PES without PTS gets the previous PES's
//!   (the demuxer repeats it, which would repeat RTP timestamps), and cameras' audio PTS jitter.
//!   A larger jump (audio lost, a camera that restarts its clock) is taken as it comes.

use crate::media::{Codec, CodecName, HeaderExtensions, MediaKind, ProducerTrack};
use crate::ps::{pts_to_rtp, AudioCodec};
use crate::rtp::FIXED_HEADER;

/// Largest G.711 payload per RTP packet (150 ms).
pub const MAX_G711_PAYLOAD: usize = 1200;
/// Payload type of the AAC track.
pub const AAC_PAYLOAD_TYPE: u8 = 97;
/// Samples of one AAC-LC raw data block.
pub const AAC_FRAME_SAMPLES: u32 = 1024;
/// A PES this far (in ms) after where the previous one ended still continues it: PTS jitter,
/// less than the shortest frame that can be lost (G.711 PES of 20 ms, AAC frames of >= 21 ms).
pub const MAX_AHEAD_MS: u32 = 10;
/// A PES that starts up to one second before where the previous one ended continues it (the
/// samples already sent cannot be taken back).
pub const MAX_BEHIND: std::time::Duration = std::time::Duration::from_secs(1);

const ADTS_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// One ADTS header's facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adts {
    /// Header length (7, or 9 with CRC).
    pub header_len: usize,
    /// Whole frame length, header included.
    pub frame_len: usize,
    /// MPEG-4 audio object type (profile + 1).
    pub object_type: u8,
    pub rate_index: u8,
    pub channels: u8,
    /// `number_of_raw_data_blocks_in_frame + 1`: 1024-sample blocks in the frame.
    pub blocks: u8,
}

impl Adts {
    /// Parses the ADTS header at the start of `b`; `None` when it is not one or its frame does
    /// not fit `b`.
    pub fn parse(b: &[u8]) -> Option<Adts> {
        Adts::parse_header(b).filter(|a| a.frame_len <= b.len())
    }

    /// Parses the ADTS header at the start of `b`, whether or not its frame fits `b` (a frame
    /// that goes on in the next PES).
    pub fn parse_header(b: &[u8]) -> Option<Adts> {
        if b.len() < 7 || b[0] != 0xFF || b[1] & 0xF6 != 0xF0 {
            return None;
        }
        let header_len = if b[1] & 1 == 1 { 7 } else { 9 };
        let frame_len =
            (((b[3] & 3) as usize) << 11) | ((b[4] as usize) << 3) | ((b[5] >> 5) as usize);
        let rate_index = (b[2] >> 2) & 0x0F;
        if frame_len <= header_len || rate_index as usize >= ADTS_RATES.len() {
            return None;
        }
        Some(Adts {
            header_len,
            frame_len,
            object_type: (b[2] >> 6) + 1,
            rate_index,
            channels: ((b[2] & 1) << 2) | (b[3] >> 6),
            blocks: (b[6] & 3) + 1,
        })
    }

    /// Whether a frame with this header decodes with `self`'s AudioSpecificConfig.
    pub fn same_config(&self, other: &Adts) -> bool {
        (self.object_type, self.rate_index, self.channels)
            == (other.object_type, other.rate_index, other.channels)
    }

    pub fn sample_rate(&self) -> u32 {
        ADTS_RATES[self.rate_index as usize]
    }

    /// The `config=` of the fmtp: AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1) as hex.
    pub fn config_hex(&self) -> String {
        let asc: u16 = ((self.object_type as u16) << 11)
            | ((self.rate_index as u16) << 7)
            | ((self.channels as u16 & 0x0F) << 3);
        format!("{asc:04x}")
    }
}

/// The producer track of an audio codec; `adts` is needed for AAC (else `None`).
pub fn audio_track(codec: AudioCodec, adts: Option<Adts>, ssrc: u32) -> Option<ProducerTrack> {
    let (name, pt, rate, channels, fmtp) = match codec {
        AudioCodec::Pcma => (CodecName::Pcma, 8, 8000, 1, String::new()),
        AudioCodec::Pcmu => (CodecName::Pcmu, 0, 8000, 1, String::new()),
        AudioCodec::Aac => {
            let a = adts?;
            (
                CodecName::Aac,
                AAC_PAYLOAD_TYPE,
                a.sample_rate(),
                a.channels.max(1) as u16,
                format!(
                    "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config={}",
                    a.config_hex()
                ),
            )
        }
    };
    Some(ProducerTrack {
        kind: MediaKind::Audio,
        mid: "1".into(),
        codec: Codec {
            name,
            payload_type: pt,
            clock_rate: rate,
            channels,
            fmtp,
            rtx_payload_type: None,
            rtcp_fb: Vec::new(),
        },
        ssrc: Some(ssrc),
        rtx_ssrc: None,
        extensions: HeaderExtensions::default(),
    })
}

#[derive(Debug, Clone, Copy)]
enum Payload {
    G711,
    /// AAC described by this ADTS header's config.
    Aac(Adts),
    /// AAC without a config (a bug of the caller): nothing a player could decode is sent.
    Undescribed,
}

/// Writes the RTP packets of audio PES payloads into one scratch buffer.
#[derive(Debug)]
pub struct AudioPacketizer {
    payload: Payload,
    payload_type: u8,
    clock_rate: u32,
    ssrc: u32,
    seq: u16,
    /// Where the previous PES's samples ended (RTP timestamp), once one was packetized.
    next_ts: Option<u32>,
    /// AAC frames dropped (another config, several raw data blocks).
    dropped: u64,
    buf: Vec<u8>,
    /// The start of an ADTS frame that goes on in the next PES, and its RTP timestamp.
    carry: Vec<u8>,
    carry_ts: u32,
}

impl AudioPacketizer {
    /// `adts`: the header the AAC track was described from (`None` for G.711; an AAC track
    /// without it sends nothing).
    pub fn new(track: &ProducerTrack, adts: Option<Adts>, first_seq: u16) -> AudioPacketizer {
        let payload = match (track.codec.name, adts) {
            (CodecName::Aac, Some(a)) => Payload::Aac(a),
            (CodecName::Aac, None) => Payload::Undescribed,
            _ => Payload::G711,
        };
        AudioPacketizer {
            payload,
            payload_type: track.codec.payload_type,
            clock_rate: track.codec.clock_rate.max(1),
            ssrc: track.ssrc.unwrap_or(0),
            seq: first_seq,
            next_ts: None,
            dropped: 0,
            buf: Vec::with_capacity(FIXED_HEADER + 8192),
            carry: Vec::new(),
            carry_ts: 0,
        }
    }

    /// AAC frames dropped so far (see the module documentation).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The RTP timestamp of a PES at `pts_90k`, continuing the previous PES when the PTS is
    /// close to where it ended (module documentation).
    fn start_ts(&self, pts_90k: u64) -> u32 {
        let ts = pts_to_rtp(pts_90k, self.clock_rate);
        let Some(next) = self.next_ts else {
            return ts;
        };
        let ahead = ts.wrapping_sub(next);
        let behind = next.wrapping_sub(ts);
        let max_behind = (MAX_BEHIND.as_millis() as u64 * self.clock_rate as u64 / 1000) as u32;
        if ahead <= self.clock_rate / 1000 * MAX_AHEAD_MS || behind <= max_behind {
            next
        } else {
            ts
        }
    }

    fn header(&mut self, ts: u32, marker: bool) {
        self.buf.clear();
        self.buf.push(0x80);
        self.buf
            .push((self.payload_type & 0x7f) | if marker { 0x80 } else { 0 });
        self.buf.extend_from_slice(&self.seq.to_be_bytes());
        self.buf.extend_from_slice(&ts.to_be_bytes());
        self.buf.extend_from_slice(&self.ssrc.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
    }

    /// Packets of one audio PES payload with its 90 kHz PTS. Returns the number of packets.
    pub fn packetize(&mut self, pts_90k: u64, data: &[u8], mut out: impl FnMut(&[u8])) -> usize {
        let base = self.start_ts(pts_90k);
        let mut sent = 0;
        let config = match self.payload {
            Payload::Aac(config) => config,
            Payload::Undescribed => return 0,
            Payload::G711 => {
                for (i, chunk) in data.chunks(MAX_G711_PAYLOAD).enumerate() {
                    let ts = base.wrapping_add((i * MAX_G711_PAYLOAD) as u32);
                    self.header(ts, i == 0);
                    self.buf.extend_from_slice(chunk);
                    out(&self.buf);
                    sent += 1;
                }
                self.next_ts = Some(base.wrapping_add(data.len() as u32));
                return sent;
            }
        };
        let mut rest = data;
        let mut rebased = false;
        if !self.carry.is_empty() {
            // The frame the previous PES began goes on here, unless this PES starts a frame of
            // its own (the rest was lost): then the carried start is dropped.
            let carried = std::mem::take(&mut self.carry);
            let need = Adts::parse_header(&carried)
                .map_or(0, |a| a.frame_len.saturating_sub(carried.len()));
            if need > 0 && Adts::parse_header(rest).is_none() && rest.len() >= need {
                let mut whole = carried;
                whole.extend_from_slice(&rest[..need]);
                rest = &rest[need..];
                if let Some(a) = Adts::parse(&whole) {
                    let ts = self.carry_ts;
                    sent += self.aac_frame(a, &whole, ts, &config, &mut out);
                    self.next_ts = Some(ts.wrapping_add(a.blocks as u32 * AAC_FRAME_SAMPLES));
                    rebased = true;
                }
                whole.clear();
                self.carry = whole; // keeps its capacity
            } else if need > 0 && Adts::parse_header(rest).is_none() {
                let mut more = carried;
                more.extend_from_slice(rest); // still not whole: wait for the next PES
                self.carry = more;
                return sent;
            } else {
                self.dropped += 1;
                let mut empty = carried;
                empty.clear();
                self.carry = empty;
            }
        }
        // After the carried frame, this PES continues where it ended.
        let base = if rebased {
            self.start_ts(pts_90k)
        } else {
            base
        };
        let mut samples = 0u32;
        while let Some(a) = Adts::parse(rest) {
            let ts = base.wrapping_add(samples);
            samples = samples.wrapping_add(a.blocks as u32 * AAC_FRAME_SAMPLES);
            sent += self.aac_frame(a, rest, ts, &config, &mut out);
            rest = &rest[a.frame_len..];
        }
        if samples > 0 {
            self.next_ts = Some(base.wrapping_add(samples));
        }
        if let Some(a) = Adts::parse_header(rest) {
            if a.frame_len > rest.len() && rest.len() < 8192 {
                self.carry.extend_from_slice(rest);
                self.carry_ts = base.wrapping_add(samples);
            }
        }
        sent
    }

    /// One ADTS frame (`frame` starts with its header) as one RTP packet; 0 when dropped.
    fn aac_frame(
        &mut self,
        a: Adts,
        frame: &[u8],
        ts: u32,
        config: &Adts,
        out: &mut impl FnMut(&[u8]),
    ) -> usize {
        if a.blocks != 1 || !a.same_config(config) {
            self.dropped += 1;
            return 0;
        }
        let raw = &frame[a.header_len..a.frame_len];
        // 13-bit AU size: a raw frame is at most 8191 - 7 bytes by ADTS's own 13-bit length.
        let size = (raw.len() as u16) << 3;
        self.header(ts, true);
        self.buf.extend_from_slice(&[0x00, 0x10]);
        self.buf.extend_from_slice(&size.to_be_bytes());
        self.buf.extend_from_slice(raw);
        out(&self.buf);
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adts_frame(payload: usize) -> Vec<u8> {
        // AAC LC (profile 1), 44.1 kHz (index 4), 2 channels, no CRC.
        adts(payload, 4, 2)
    }

    /// An AAC-LC ADTS frame without CRC, one raw data block of `payload` bytes.
    fn adts(payload: usize, rate_index: u8, channels: u8) -> Vec<u8> {
        let len = payload + 7;
        let mut f = vec![
            0xFF,
            0xF1,
            (1 << 6) | (rate_index << 2) | (channels >> 2),
            ((channels & 3) << 6) | ((len >> 11) as u8 & 3),
            (len >> 3) as u8,
            ((len as u8 & 7) << 5) | 0x1F,
            0xFC,
        ];
        f.extend((0..payload).map(|i| i as u8));
        f
    }

    /// The RTP timestamps of the packets of PES `(pts, payload)` in turn.
    fn stamps(p: &mut AudioPacketizer, pes: &[(u64, Vec<u8>)]) -> Vec<u32> {
        let mut got = Vec::new();
        for (pts, data) in pes {
            p.packetize(*pts, data, |pkt| {
                got.push(crate::rtp::parse(pkt).unwrap().timestamp)
            });
        }
        got
    }

    #[test]
    fn an_adts_frame_split_across_pes_is_sent_once_whole() {
        let f = adts(40, 4, 1);
        let a = Adts::parse(&f).unwrap();
        let t = audio_track(AudioCodec::Aac, Some(a), 7).unwrap();
        let mut p = AudioPacketizer::new(&t, Some(a), 0);
        // PES 1: frame 0 whole and the first 10 bytes of frame 1; PES 2: the rest of frame 1
        // and frame 2 (its PTS is frame 2's, the first frame that starts in it).
        let pes1 = [f.clone(), f[..10].to_vec()].concat();
        let pes2 = [f[10..].to_vec(), f.clone()].concat();
        let pts = |k: u64| 90_000 + k * 1024 * 90_000 / 44_100;
        let mut got = Vec::new();
        for (pts, data) in [(pts(0), &pes1), (pts(2), &pes2)] {
            p.packetize(pts, data, |pkt| {
                let v = crate::rtp::parse(pkt).unwrap();
                got.push((v.timestamp, v.payload.len()));
            });
        }
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got.iter().all(|(_, n)| *n == 4 + 40));
        assert_eq!(
            steps(&got.iter().map(|g| g.0).collect::<Vec<_>>()),
            vec![1024, 1024]
        );
        // A carried start whose rest never comes (the next PES starts a frame): dropped.
        let mut p = AudioPacketizer::new(&t, Some(a), 0);
        let mut n = 0;
        p.packetize(pts(0), &pes1, |_| n += 1);
        p.packetize(pts(2), &f, |_| n += 1);
        assert_eq!((n, p.dropped()), (2, 1));
    }

    fn steps(ts: &[u32]) -> Vec<u32> {
        ts.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect()
    }

    #[test]
    fn aac_timestamps_count_samples_across_pes() {
        // 44.1 kHz: frame k at PTS floor(k * 1024 * 90000 / 44100), as a muxer writes it.
        let f = adts(30, 4, 1);
        let a = Adts::parse(&f).unwrap();
        let t = audio_track(AudioCodec::Aac, Some(a), 7).unwrap();
        assert_eq!((t.codec.clock_rate, t.codec.channels), (44_100, 1));
        let mut p = AudioPacketizer::new(&t, Some(a), 0);
        let pes: Vec<(u64, Vec<u8>)> = (0..50u64)
            .map(|k| (90_000 + k * 1024 * 90_000 / 44_100, f.clone()))
            .collect();
        let ts = stamps(&mut p, &pes);
        assert_eq!(ts[0], 44_100);
        assert_eq!(steps(&ts), vec![1024; 49]);

        // 16 kHz, PTS with 1 ms resolution (+-16 samples), two frames per PES, and PES
        // without PTS (the demuxer repeats the previous one): 1024 apart all the same.
        let f = adts(20, 8, 1);
        let a = Adts::parse(&f).unwrap();
        let t = audio_track(AudioCodec::Aac, Some(a), 7).unwrap();
        let mut p = AudioPacketizer::new(&t, Some(a), 0);
        let two = [f.clone(), f.clone()].concat();
        let pes: Vec<(u64, Vec<u8>)> = (0..20u64)
            .map(|k| {
                let ms = if k % 3 == 2 { (k - 1) * 128 } else { k * 128 };
                (90_000 + ms * 90, two.clone())
            })
            .collect();
        let ts = stamps(&mut p, &pes);
        assert_eq!(ts[0], 16_000);
        assert_eq!(steps(&ts), vec![1024; 39]);

        // Audio lost (two PES missing) and a camera restarting its clock: taken as
        // they come.
        let ts = stamps(
            &mut p,
            &[
                (90_000 + 22 * 128 * 90, two.clone()),
                (90_000 + 23 * 128 * 90, f.clone()),
                (5 * 90_000, f.clone()),
                (5 * 90_000 + 5760, f.clone()),
            ],
        );
        // PES 20 and 21 (2048 samples each) never came.
        let pes22 = 16_000 + 22 * 2048;
        assert_eq!(ts, vec![pes22, pes22 + 1024, pes22 + 2048, 80_000, 81_024]);
    }

    #[test]
    fn g711_timestamps_continue_over_pes_without_pts() {
        let t = audio_track(AudioCodec::Pcma, None, 1).unwrap();
        let mut p = AudioPacketizer::new(&t, None, 0);
        // 40 ms PES; the third has no PTS of its own (repeats the second's).
        let pes = [
            (90_000, vec![0xD5; 320]),
            (93_600, vec![0xD5; 320]),
            (93_600, vec![0xD5; 320]),
            (100_800, vec![0xD5; 320]),
        ];
        assert_eq!(stamps(&mut p, &pes), vec![8000, 8320, 8640, 8960]);
    }

    #[test]
    fn aac_frames_the_config_does_not_describe_are_dropped() {
        let f = adts(20, 8, 1); // 16 kHz mono
        let a = Adts::parse(&f).unwrap();
        let t = audio_track(AudioCodec::Aac, Some(a), 7).unwrap();
        assert!(t.codec.fmtp.contains("config=1408"), "{}", t.codec.fmtp);
        let mut p = AudioPacketizer::new(&t, Some(a), 0);
        let mut blocks = adts(20, 8, 1);
        blocks[6] |= 1; // two raw data blocks: 2048 samples
        let pes = [f.clone(), adts(20, 3, 1), blocks, adts(20, 8, 2), f.clone()].concat();
        let ts = stamps(&mut p, &[(90_000, pes)]);
        assert_eq!(ts, vec![16_000, 16_000 + 5 * 1024]);
        assert_eq!(p.dropped(), 3);
        // An AAC track without its config sends nothing.
        let mut p = AudioPacketizer::new(&t, None, 0);
        assert_eq!(p.packetize(90_000, &f, |_| panic!("sent")), 0);
    }

    #[test]
    fn g711_straight_into_rtp_at_8khz() {
        let t = audio_track(AudioCodec::Pcma, None, 0x1234).unwrap();
        assert_eq!((t.codec.payload_type, t.codec.clock_rate), (8, 8000));
        let mut p = AudioPacketizer::new(&t, None, 65535);
        let mut got = Vec::new();
        let n = p.packetize(90_000, &[0xD5; 2500], |pkt| got.push(pkt.to_vec()));
        assert_eq!(n, 3);
        let v = crate::rtp::parse(&got[1]).unwrap();
        assert_eq!((v.seq, v.timestamp, v.ssrc), (0, 8000 + 1200, 0x1234));
        assert_eq!(v.payload.len(), 1200);
        assert_eq!(crate::rtp::parse(&got[2]).unwrap().payload.len(), 100);
        let pcmu = audio_track(AudioCodec::Pcmu, None, 1).unwrap();
        assert_eq!(pcmu.codec.payload_type, 0);
    }

    #[test]
    fn aac_as_rfc3640_au_headers() {
        let a = Adts::parse(&adts_frame(10)).unwrap();
        assert_eq!((a.sample_rate(), a.channels, a.object_type), (44100, 2, 2));
        // AAC LC 44.1 kHz stereo: AudioSpecificConfig 0x1210.
        assert_eq!(a.config_hex(), "1210");
        assert!(audio_track(AudioCodec::Aac, None, 1).is_none());
        let t = audio_track(AudioCodec::Aac, Some(a), 7).unwrap();
        assert!(t.codec.fmtp.contains("config=1210"));
        assert_eq!(t.codec.clock_rate, 44100);
        let mut pes = adts_frame(10);
        pes.extend(adts_frame(20));
        pes.extend([0xFF, 0xF1, 0]); // truncated trailer: ignored
        let mut p = AudioPacketizer::new(&t, Some(a), 0);
        let mut got = Vec::new();
        p.packetize(90_000, &pes, |pkt| got.push(pkt.to_vec()));
        assert_eq!(got.len(), 2);
        let v = crate::rtp::parse(&got[1]).unwrap();
        assert_eq!(v.timestamp, 44100 + 1024);
        assert_eq!(&v.payload[..4], &[0x00, 0x10, 0x00, 20 << 3]);
        assert_eq!(&v.payload[4..], &adts_frame(20)[7..]);
    }

    #[test]
    fn adts_rejects_garbage() {
        assert!(Adts::parse(&[0xFF, 0xF1, 0x50]).is_none());
        let mut f = adts_frame(10);
        f.truncate(12);
        assert!(Adts::parse(&f).is_none());
        let mut f = adts_frame(10);
        f[2] = (1 << 6) | (15 << 2); // rate index 15
        assert!(Adts::parse(&f).is_none());
    }
}
