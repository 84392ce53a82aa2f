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
//!   described once its first frame is there.

use crate::media::{Codec, CodecName, HeaderExtensions, MediaKind, ProducerTrack};
use crate::ps::{pts_to_rtp, AudioCodec};
use crate::rtp::FIXED_HEADER;

/// Largest G.711 payload per RTP packet (150 ms).
pub const MAX_G711_PAYLOAD: usize = 1200;
/// Payload type of the AAC track.
pub const AAC_PAYLOAD_TYPE: u8 = 97;

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
}

impl Adts {
    /// Parses the ADTS header at the start of `b`; `None` when it is not one or its frame does
    /// not fit `b`.
    pub fn parse(b: &[u8]) -> Option<Adts> {
        if b.len() < 7 || b[0] != 0xFF || b[1] & 0xF6 != 0xF0 {
            return None;
        }
        let header_len = if b[1] & 1 == 1 { 7 } else { 9 };
        let frame_len =
            (((b[3] & 3) as usize) << 11) | ((b[4] as usize) << 3) | ((b[5] >> 5) as usize);
        let rate_index = (b[2] >> 2) & 0x0F;
        if frame_len <= header_len || frame_len > b.len() || rate_index as usize >= ADTS_RATES.len()
        {
            return None;
        }
        Some(Adts {
            header_len,
            frame_len,
            object_type: (b[2] >> 6) + 1,
            rate_index,
            channels: ((b[2] & 1) << 2) | (b[3] >> 6),
        })
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

/// Writes the RTP packets of audio PES payloads into one scratch buffer.
#[derive(Debug)]
pub struct AudioPacketizer {
    aac: bool,
    payload_type: u8,
    clock_rate: u32,
    ssrc: u32,
    seq: u16,
    buf: Vec<u8>,
}

impl AudioPacketizer {
    pub fn new(track: &ProducerTrack, first_seq: u16) -> AudioPacketizer {
        AudioPacketizer {
            aac: track.codec.name == CodecName::Aac,
            payload_type: track.codec.payload_type,
            clock_rate: track.codec.clock_rate.max(1),
            ssrc: track.ssrc.unwrap_or(0),
            seq: first_seq,
            buf: Vec::with_capacity(FIXED_HEADER + 8192),
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
        let base = pts_to_rtp(pts_90k, self.clock_rate);
        let mut sent = 0;
        if !self.aac {
            for (i, chunk) in data.chunks(MAX_G711_PAYLOAD).enumerate() {
                let ts = base.wrapping_add((i * MAX_G711_PAYLOAD) as u32);
                self.header(ts, i == 0);
                self.buf.extend_from_slice(chunk);
                out(&self.buf);
                sent += 1;
            }
            return sent;
        }
        let mut rest = data;
        let mut frame = 0u32;
        while let Some(a) = Adts::parse(rest) {
            let raw = &rest[a.header_len..a.frame_len];
            // 13-bit AU size: a raw frame is at most 8191 - 7 bytes by ADTS's own 13-bit length.
            let size = (raw.len() as u16) << 3;
            self.header(base.wrapping_add(frame * 1024), true);
            self.buf.extend_from_slice(&[0x00, 0x10]);
            self.buf.extend_from_slice(&size.to_be_bytes());
            self.buf.extend_from_slice(raw);
            out(&self.buf);
            sent += 1;
            frame += 1;
            rest = &rest[a.frame_len..];
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adts_frame(payload: usize) -> Vec<u8> {
        // AAC LC (profile 1), 44.1 kHz (index 4), 2 channels, no CRC.
        let len = payload + 7;
        let mut f = vec![
            0xFF,
            0xF1,
            (1 << 6) | (4 << 2),
            (2 << 6) | ((len >> 11) as u8 & 3),
            (len >> 3) as u8,
            ((len as u8 & 7) << 5) | 0x1F,
            0xFC,
        ];
        f.extend((0..payload).map(|i| i as u8));
        f
    }

    #[test]
    fn g711_straight_into_rtp_at_8khz() {
        let t = audio_track(AudioCodec::Pcma, None, 0x1234).unwrap();
        assert_eq!((t.codec.payload_type, t.codec.clock_rate), (8, 8000));
        let mut p = AudioPacketizer::new(&t, 65535);
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
        let mut p = AudioPacketizer::new(&t, 0);
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
