//! VP8 (RFC 7741) and VP9 (RFC 9628) payload descriptors stripped; the frame is the
//! concatenation of its packets' payloads. A frame must begin with a packet that says so (VP8
//! S=1 with partition 0, VP9 B=1); otherwise its start was lost and the frame is dropped.
//!
//! VP9 with several spatial layers would need a superframe index to be one Matroska block; the
//! WebRTC senders we record send one spatial layer, and a frame with several is dropped (E=1
//! before the marker).

use super::assembly::{Assembly, VideoFormat};

/// Skips a VP8 payload descriptor; returns `(start_of_partition_0, payload offset)`.
fn vp8_descriptor(p: &[u8]) -> Option<(bool, usize)> {
    let b0 = *p.first()?;
    let start = b0 & 0x10 != 0 && b0 & 0x07 == 0;
    let mut at = 1;
    if b0 & 0x80 != 0 {
        let x = *p.get(at)?;
        at += 1;
        if x & 0x80 != 0 {
            let pid = *p.get(at)?;
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            at += 1;
        }
        if x & 0x30 != 0 {
            at += 1;
        }
    }
    (at < p.len()).then_some((start, at))
}

#[derive(Debug, Default)]
pub struct Vp8 {
    size: Option<(u16, u16)>,
}

impl Vp8 {
    pub fn size(&self) -> Option<(u16, u16)> {
        self.size
    }
}

impl VideoFormat for Vp8 {
    fn add(&mut self, p: &[u8], first: bool, frame: &mut Assembly) -> Result<(), ()> {
        let (start, at) = vp8_descriptor(p).ok_or(())?;
        if first != start {
            return Err(());
        }
        let body = &p[at..];
        if first {
            // VP8 frame tag: P bit 0 = key frame; then start code 9d 01 2a and 14-bit sizes.
            frame.keyframe = body[0] & 1 == 0;
            if frame.keyframe {
                if let Some(b) = body.get(3..10) {
                    if b[0..3] == [0x9d, 0x01, 0x2a] {
                        let w = u16::from_le_bytes([b[3], b[4]]) & 0x3fff;
                        let h = u16::from_le_bytes([b[5], b[6]]) & 0x3fff;
                        self.size = Some((w, h));
                    }
                }
            }
        }
        frame.data.extend_from_slice(body);
        Ok(())
    }

    fn finish(&mut self, _frame: &mut Assembly) -> Result<(), ()> {
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct Vp9 {
    size: Option<(u16, u16)>,
    /// The E (end of frame) bit of the last packet added.
    ended: bool,
}

impl Vp9 {
    pub fn size(&self) -> Option<(u16, u16)> {
        self.size
    }

    /// Skips the descriptor; returns `(begin, end, keyframe, payload offset)`.
    fn descriptor(&mut self, p: &[u8]) -> Option<(bool, bool, bool, usize)> {
        let b0 = *p.first()?;
        let (i, pb, l, f, b, e, v) = (
            b0 & 0x80 != 0,
            b0 & 0x40 != 0,
            b0 & 0x20 != 0,
            b0 & 0x10 != 0,
            b0 & 0x08 != 0,
            b0 & 0x04 != 0,
            b0 & 0x02 != 0,
        );
        let mut at = 1;
        if i {
            let pid = *p.get(at)?;
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        let mut spatial = 0;
        if l {
            spatial = (*p.get(at)? >> 1) & 0x07;
            at += if f { 1 } else { 2 };
        }
        if f && pb {
            // Up to three P_DIFF bytes, each with N = more follow.
            for _ in 0..3 {
                let d = *p.get(at)?;
                at += 1;
                if d & 0x01 == 0 {
                    break;
                }
            }
        }
        if v {
            let ss = *p.get(at)?;
            at += 1;
            let layers = (ss >> 5) as usize + 1;
            if ss & 0x10 != 0 {
                let w = u16::from_be_bytes([*p.get(at)?, *p.get(at + 1)?]);
                let h = u16::from_be_bytes([*p.get(at + 2)?, *p.get(at + 3)?]);
                self.size = Some((w, h));
                at += 4 * layers;
            }
            if ss & 0x08 != 0 {
                let groups = *p.get(at)? as usize;
                at += 1;
                for _ in 0..groups {
                    let g = *p.get(at)?;
                    at += 1 + ((g >> 2) & 0x03) as usize;
                }
            }
        }
        (at < p.len()).then_some((b, e, b && !pb && spatial == 0, at))
    }
}

impl VideoFormat for Vp9 {
    fn add(&mut self, p: &[u8], first: bool, frame: &mut Assembly) -> Result<(), ()> {
        let (begin, end, key, at) = self.descriptor(p).ok_or(())?;
        if first != begin || (!first && self.ended) {
            return Err(());
        }
        if first {
            frame.keyframe = key;
        }
        self.ended = end;
        frame.data.extend_from_slice(&p[at..]);
        Ok(())
    }

    fn finish(&mut self, _frame: &mut Assembly) -> Result<(), ()> {
        if std::mem::take(&mut self.ended) {
            Ok(())
        } else {
            Err(())
        }
    }
}
