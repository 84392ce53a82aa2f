//! Codec-specific inspection of RTP payloads: where a keyframe starts (VP8, VP9, H.264, H.265,
//! AV1), and the H.264/H.265 parameter sets (SPS/PPS, VPS/SPS/PPS) the router keeps per track
//! and re-sends before IDRs as one aggregation packet (STAP-A, or an H.265 AP).
//!
//! Reads payload bytes only; every index is bounds-checked (truncated payloads are "not a
//! keyframe", never a panic). The only allocation is in [`ParamSets`] when a parameter set
//! changes.

use crate::media::CodecName;
use base64::Engine as _;

/// What the router needs to know about one packet's payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PayloadInfo {
    /// The packet starts a keyframe (or the parameter sets that open one): a video consumer
    /// waiting for a keyframe may start with this packet.
    pub keyframe_start: bool,
    /// H.264/H.265: the packet starts an IDR/IRAP picture (not merely its parameter sets).
    pub idr_start: bool,
    /// H.264/H.265: the packet carries an SPS.
    pub has_sps: bool,
}

/// Inspects one payload (without RTP padding).
pub fn inspect(codec: CodecName, payload: &[u8]) -> PayloadInfo {
    match codec {
        CodecName::Vp8 => flag(vp8_keyframe_start(payload)),
        CodecName::Vp9 => flag(vp9_keyframe_start(payload)),
        CodecName::Av1 => flag(av1_keyframe_start(payload)),
        CodecName::H264 => h264_inspect(payload),
        CodecName::H265 => h265_inspect(payload),
        CodecName::Opus | CodecName::Pcma | CodecName::Pcmu | CodecName::Aac => {
            PayloadInfo::default()
        }
    }
}

fn flag(k: bool) -> PayloadInfo {
    PayloadInfo {
        keyframe_start: k,
        ..PayloadInfo::default()
    }
}

/// RFC 7741: S=1, PID=0, and the P bit of the VP8 payload header is 0 (key frame).
pub fn vp8_keyframe_start(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    if b0 & 0x10 == 0 || b0 & 0x07 != 0 {
        return false;
    }
    let mut at = 1;
    if b0 & 0x80 != 0 {
        let Some(&x) = p.get(at) else { return false };
        at += 1;
        if x & 0x80 != 0 {
            // PictureID: M bit selects 15 bits.
            let Some(&pid) = p.get(at) else { return false };
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            at += 1; // TID/Y/KEYIDX
        }
    }
    matches!(p.get(at), Some(h) if h & 0x01 == 0)
}

/// VP9 payload descriptor: B=1 (start of frame), P=0 (not inter-predicted), and spatial layer
/// 0 when layer indices are present.
pub fn vp9_keyframe_start(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let (i, pbit, l, b) = (
        b0 & 0x80 != 0,
        b0 & 0x40 != 0,
        b0 & 0x20 != 0,
        b0 & 0x08 != 0,
    );
    if !b || pbit {
        return false;
    }
    if !l {
        return true;
    }
    let mut at = 1;
    if i {
        let Some(&pid) = p.get(at) else { return false };
        at += if pid & 0x80 != 0 { 2 } else { 1 };
    }
    match p.get(at) {
        Some(layer) => (layer >> 1) & 0x07 == 0,
        None => false,
    }
}

/// AV1 RTP aggregation header: N=1 marks the first packet of a coded video sequence.
pub fn av1_keyframe_start(p: &[u8]) -> bool {
    matches!(p.first(), Some(h) if h & 0x08 != 0)
}

/// Calls `f(nal)` on each NAL unit of an H.264 STAP-A payload (`p[0]` is the STAP-A header).
fn for_each_aggregated(p: &[u8], start: usize, mut f: impl FnMut(&[u8])) {
    let mut at = start;
    while at + 2 <= p.len() {
        let n = u16::from_be_bytes([p[at], p[at + 1]]) as usize;
        at += 2;
        if n == 0 || at + n > p.len() {
            return;
        }
        f(&p[at..at + n]);
        at += n;
    }
}

/// H.264 (RFC 6184): IDR = NAL 5; SPS = 7. Single NAL, STAP-A (24) and FU-A (28) start.
pub fn h264_inspect(p: &[u8]) -> PayloadInfo {
    let Some(&b0) = p.first() else {
        return PayloadInfo::default();
    };
    let mut info = PayloadInfo::default();
    let see = |t: u8, info: &mut PayloadInfo| match t {
        5 => {
            info.idr_start = true;
            info.keyframe_start = true;
        }
        7 => {
            info.has_sps = true;
            info.keyframe_start = true;
        }
        _ => {}
    };
    match b0 & 0x1f {
        24 => for_each_aggregated(p, 1, |nal| see(nal[0] & 0x1f, &mut info)),
        28 => {
            if let Some(&fu) = p.get(1) {
                if fu & 0x80 != 0 {
                    see(fu & 0x1f, &mut info);
                }
            }
        }
        t => see(t, &mut info),
    }
    info
}

fn h265_type(b0: u8) -> u8 {
    (b0 >> 1) & 0x3f
}

/// H.265 (RFC 7798): IRAP = 16..=21; VPS 32, SPS 33. Single NAL, AP (48), FU (49) start.
/// Assumes `sprop-max-don-diff` = 0 (no DONL fields), as WebRTC senders do.
pub fn h265_inspect(p: &[u8]) -> PayloadInfo {
    if p.len() < 2 {
        return PayloadInfo::default();
    }
    let mut info = PayloadInfo::default();
    let see = |t: u8, info: &mut PayloadInfo| match t {
        16..=21 => {
            info.idr_start = true;
            info.keyframe_start = true;
        }
        32 | 33 => {
            info.has_sps |= t == 33;
            info.keyframe_start = true;
        }
        _ => {}
    };
    match h265_type(p[0]) {
        48 => for_each_aggregated(p, 2, |nal| see(h265_type(nal[0]), &mut info)),
        49 => {
            if let Some(&fu) = p.get(2) {
                if fu & 0x80 != 0 {
                    see(fu & 0x3f, &mut info);
                }
            }
        }
        t => see(t, &mut info),
    }
    info
}

/// Cap on one stored parameter set: real ones are tens of bytes.
const MAX_PARAM_SET: usize = 512;

/// The latest parameter sets of one H.264 or H.265 track: `[SPS, PPS]` or `[VPS, SPS, PPS]`.
#[derive(Debug, Clone, Default)]
pub struct ParamSets {
    h265: bool,
    /// Bumped whenever a stored set changes (so the router can report new sets once).
    generation: u64,
    vps: Vec<u8>,
    sps: Vec<u8>,
    pps: Vec<u8>,
}

impl ParamSets {
    /// Empty sets for `codec`; `None` for codecs without parameter sets.
    pub fn new(codec: CodecName) -> Option<ParamSets> {
        match codec {
            CodecName::H264 => Some(ParamSets::default()),
            CodecName::H265 => Some(ParamSets {
                h265: true,
                ..ParamSets::default()
            }),
            _ => None,
        }
    }

    /// Reads `sprop-parameter-sets` (H.264) or `sprop-vps`/`sprop-sps`/`sprop-pps` (H.265)
    /// from an fmtp line. Bad base64 is ignored.
    pub fn load_fmtp(&mut self, fmtp: &str) {
        for kv in fmtp.split(';') {
            let Some((k, v)) = kv.trim().split_once('=') else {
                continue;
            };
            let k = k.trim().to_ascii_lowercase();
            let wanted = matches!(
                (self.h265, k.as_str()),
                (false, "sprop-parameter-sets") | (true, "sprop-vps" | "sprop-sps" | "sprop-pps")
            );
            if !wanted {
                continue;
            }
            for b64 in v.trim().split(',') {
                if let Ok(nal) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
                    self.offer_nal(&nal);
                }
            }
        }
    }

    /// Stores `nal` if it is a parameter set of this codec. Returns whether it was one.
    pub fn offer_nal(&mut self, nal: &[u8]) -> bool {
        let Some(&b0) = nal.first() else { return false };
        if nal.len() > MAX_PARAM_SET {
            return false;
        }
        let slot = if self.h265 {
            match h265_type(b0) {
                32 => &mut self.vps,
                33 => &mut self.sps,
                34 => &mut self.pps,
                _ => return false,
            }
        } else {
            match b0 & 0x1f {
                7 => &mut self.sps,
                8 => &mut self.pps,
                _ => return false,
            }
        };
        if slot.as_slice() != nal {
            slot.clear();
            slot.extend_from_slice(nal);
            self.generation += 1;
        }
        true
    }

    /// Learns parameter sets carried by one RTP payload (single NAL or aggregation packet).
    pub fn update_from_payload(&mut self, p: &[u8]) {
        let Some(&b0) = p.first() else { return };
        if self.h265 {
            match h265_type(b0) {
                48 => for_each_aggregated(p, 2, |nal| {
                    self.offer_nal(nal);
                }),
                32..=34 => {
                    self.offer_nal(p);
                }
                _ => {}
            }
        } else {
            match b0 & 0x1f {
                24 => for_each_aggregated(p, 1, |nal| {
                    self.offer_nal(nal);
                }),
                7 | 8 => {
                    self.offer_nal(p);
                }
                _ => {}
            }
        }
    }

    /// Changes so far (each stored set that differed from the previous one counts one).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The known sets, in decoding order: `[SPS, PPS]` or `[VPS, SPS, PPS]` (empty ones left out).
    pub fn nals(&self) -> Vec<Vec<u8>> {
        [&self.vps, &self.sps, &self.pps]
            .into_iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect()
    }

    /// True when every set needed to decode is known.
    pub fn complete(&self) -> bool {
        !self.sps.is_empty() && !self.pps.is_empty() && (!self.h265 || !self.vps.is_empty())
    }

    /// Writes the sets as one aggregation payload (H.264 STAP-A, H.265 AP) into `out`.
    /// Returns its length, or `None` when incomplete or `out` is too small.
    pub fn write_aggregate(&self, out: &mut [u8]) -> Option<usize> {
        if !self.complete() {
            return None;
        }
        let sets: [&[u8]; 3] = if self.h265 {
            [&self.vps, &self.sps, &self.pps]
        } else {
            [&self.sps, &self.pps, &[]]
        };
        let hdr_len = if self.h265 { 2 } else { 1 };
        let total = hdr_len
            + sets
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| 2 + s.len())
                .sum::<usize>();
        if out.len() < total {
            return None;
        }
        if self.h265 {
            // Type 48, layer 0, TID 1.
            out[0] = 48 << 1;
            out[1] = 1;
        } else {
            // STAP-A with the highest NRI of its NAL units.
            let nri = sets
                .iter()
                .filter_map(|s| s.first())
                .map(|b| b & 0x60)
                .max()
                .unwrap_or(0x60);
            out[0] = nri | 24;
        }
        let mut at = hdr_len;
        for s in sets.iter().filter(|s| !s.is_empty()) {
            out[at..at + 2].copy_from_slice(&(s.len() as u16).to_be_bytes());
            out[at + 2..at + 2 + s.len()].copy_from_slice(s);
            at += 2 + s.len();
        }
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Chrome-like VP8: X=1, I=1 (15-bit picture id), S=1.
    const VP8_KEY: &[u8] = &[0x90, 0x80, 0x81, 0x23, 0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a];
    const VP8_DELTA: &[u8] = &[0x90, 0x80, 0x81, 0x24, 0x51, 0x42, 0x00];
    const VP8_CONT: &[u8] = &[0x80, 0x80, 0x81, 0x23, 0x00, 0x00];

    #[test]
    fn vp8() {
        assert!(vp8_keyframe_start(VP8_KEY));
        assert!(!vp8_keyframe_start(VP8_DELTA));
        assert!(!vp8_keyframe_start(VP8_CONT));
        assert!(vp8_keyframe_start(&[0x10, 0x50])); // no extension
        assert!(!vp8_keyframe_start(&[0x90, 0x80, 0x81])); // truncated
    }

    #[test]
    fn vp9() {
        // I=1 (15-bit pid), B=1, E=0, V=1.
        assert!(vp9_keyframe_start(&[0x8a, 0x80, 0x01, 0x00]));
        // P=1: inter frame.
        assert!(!vp9_keyframe_start(&[0xca, 0x80, 0x02]));
        // L=1 with SID=1: not the base layer.
        assert!(!vp9_keyframe_start(&[0xa8, 0x05, 0x02, 0x00]));
        assert!(vp9_keyframe_start(&[0xa8, 0x05, 0x00, 0x00]));
        assert!(!vp9_keyframe_start(&[0xa8, 0x85]));
    }

    #[test]
    fn av1() {
        assert!(av1_keyframe_start(&[0x18, 0x0a]));
        assert!(!av1_keyframe_start(&[0x10, 0x32]));
        assert!(!av1_keyframe_start(&[]));
    }

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    #[test]
    fn h264() {
        assert!(h264_inspect(&[0x65, 0x88, 0x84]).idr_start);
        assert!(!h264_inspect(&[0x41, 0x9a]).keyframe_start);
        let sps = h264_inspect(SPS);
        assert!(sps.keyframe_start && sps.has_sps && !sps.idr_start);
        // FU-A start of an IDR, and a middle fragment.
        assert!(h264_inspect(&[0x7c, 0x85, 0x88]).idr_start);
        assert!(!h264_inspect(&[0x7c, 0x05, 0x88]).keyframe_start);
        // STAP-A with SPS + PPS.
        let mut stap = vec![0x78];
        for n in [SPS, PPS] {
            stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
            stap.extend_from_slice(n);
        }
        let i = h264_inspect(&stap);
        assert!(i.keyframe_start && i.has_sps);
        let mut ps = ParamSets::new(CodecName::H264).unwrap();
        ps.update_from_payload(&stap);
        assert!(ps.complete());
        let mut out = [0u8; 64];
        let n = ps.write_aggregate(&mut out).unwrap();
        assert_eq!(&out[..n], &stap[..]);
        // A STAP-A whose length field lies.
        assert_eq!(
            h264_inspect(&[0x78, 0x00, 0x40, 0x67]),
            PayloadInfo::default()
        );
    }

    #[test]
    fn h264_sprop() {
        let mut ps = ParamSets::new(CodecName::H264).unwrap();
        ps.load_fmtp("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f;sprop-parameter-sets=Z0LAH9oBQBbo,aM48gA==");
        assert!(ps.complete());
        assert_eq!(ps.sps, SPS);
        assert_eq!(ps.pps, PPS);
        let mut bad = ParamSets::new(CodecName::H264).unwrap();
        bad.load_fmtp("sprop-parameter-sets=!!!,");
        assert!(!bad.complete());
    }

    #[test]
    fn h265() {
        // IDR_W_RADL (19): 0x26 0x01.
        assert!(h265_inspect(&[0x26, 0x01, 0xaf]).idr_start);
        // TRAIL_R (1).
        assert!(!h265_inspect(&[0x02, 0x01, 0xd0]).keyframe_start);
        // FU (49) start with type 19.
        assert!(h265_inspect(&[0x62, 0x01, 0x93, 0xaf]).idr_start);
        assert!(!h265_inspect(&[0x62, 0x01, 0x13, 0xaf]).keyframe_start);
        let vps = [0x40, 0x01, 0x0c];
        let sps = [0x42, 0x01, 0x01];
        let pps = [0x44, 0x01, 0xc1];
        let mut ap = vec![0x60, 0x01];
        for n in [&vps[..], &sps, &pps] {
            ap.extend_from_slice(&(n.len() as u16).to_be_bytes());
            ap.extend_from_slice(n);
        }
        assert!(h265_inspect(&ap).has_sps);
        let mut ps = ParamSets::new(CodecName::H265).unwrap();
        ps.update_from_payload(&ap);
        let mut out = [0u8; 64];
        let n = ps.write_aggregate(&mut out).unwrap();
        assert_eq!(&out[..n], &ap[..]);
    }
}
