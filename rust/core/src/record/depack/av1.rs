//! AV1 RTP payloads ("RTP Payload Format For AV1", AOM, section 4) to a temporal unit in the
//! low-overhead bitstream format Matroska's `V_AV1` stores (every OBU with its size field;
//! temporal delimiters, tile lists and padding left out).
//!
//! Aggregation header: Z (the first OBU element continues one of the previous packet), Y (the
//! last element continues in the next packet), W (element count, 0 = every element has a
//! LEB128 length; else all but the last do), N (first packet of a coded video sequence: the
//! keyframe mark). An OBU split over packets is gathered whole before it is written; a
//! continuation without its start breaks the frame (the assembler drops it).

use super::assembly::{Assembly, VideoFormat};

const OBU_SEQUENCE_HEADER: u8 = 1;
const OBU_TEMPORAL_DELIMITER: u8 = 2;
const OBU_TILE_LIST: u8 = 8;
const OBU_PADDING: u8 = 15;
/// Largest sequence header kept (real ones are about a dozen bytes).
const MAX_SEQ_HEADER: usize = 512;

/// Reads a LEB128 value (at most 8 bytes) at `*at`.
pub fn leb128(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..8 {
        let x = *b.get(*at)?;
        *at += 1;
        v |= ((x & 0x7f) as u64) << (7 * i);
        if x & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

pub fn push_leb128(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

#[derive(Debug, Default)]
pub struct Av1 {
    /// The OBU being gathered over packets.
    partial: Option<Vec<u8>>,
    /// The latest sequence header OBU (low-overhead form, with its size field).
    seq_header: Option<Vec<u8>>,
}

impl Av1 {
    pub fn seq_header(&self) -> Option<&[u8]> {
        self.seq_header.as_deref()
    }

    /// Writes one whole OBU (as carried in RTP, with or without its size field).
    fn obu(&mut self, obu: &[u8], frame: &mut Assembly) -> Result<(), ()> {
        let h = *obu.first().ok_or(())?;
        if h & 0x80 != 0 {
            return Err(()); // forbidden bit
        }
        let kind = (h >> 3) & 0x0f;
        let ext = (h >> 2) & 1 == 1;
        let mut at = 1 + ext as usize;
        let header = obu.get(..at).ok_or(())?;
        let payload = if h & 0x02 != 0 {
            let n = leb128(obu, &mut at).ok_or(())?;
            let end = at
                .checked_add(usize::try_from(n).map_err(|_| ())?)
                .ok_or(())?;
            obu.get(at..end).ok_or(())?
        } else {
            obu.get(at..).ok_or(())?
        };
        if matches!(kind, OBU_TEMPORAL_DELIMITER | OBU_TILE_LIST | OBU_PADDING) {
            return Ok(());
        }
        let start = frame.data.len();
        frame.data.push(header[0] | 0x02);
        frame.data.extend_from_slice(&header[1..]);
        push_leb128(&mut frame.data, payload.len() as u64);
        frame.data.extend_from_slice(payload);
        if kind == OBU_SEQUENCE_HEADER && frame.data.len() - start <= MAX_SEQ_HEADER {
            self.seq_header = Some(frame.data[start..].to_vec());
        }
        Ok(())
    }
}

impl VideoFormat for Av1 {
    fn add(&mut self, p: &[u8], first: bool, frame: &mut Assembly) -> Result<(), ()> {
        let agg = *p.first().ok_or(())?;
        let (z, y, w, n) = (
            agg & 0x80 != 0,
            agg & 0x40 != 0,
            (agg >> 4) & 3,
            agg & 0x08 != 0,
        );
        if first {
            if z {
                return Err(()); // the frame's first OBU started in a lost packet
            }
            self.partial = None;
            frame.keyframe = n;
        }
        let mut at = 1;
        let mut index = 0u8;
        while at < p.len() {
            index += 1;
            let last = w != 0 && index == w;
            let len = if last {
                p.len() - at
            } else {
                let n = leb128(p, &mut at).ok_or(())?;
                usize::try_from(n).map_err(|_| ())?
            };
            let end = at.checked_add(len).ok_or(())?;
            let element = p.get(at..end).ok_or(())?;
            at = end;
            let continues = at >= p.len() && y;
            if index == 1 && z {
                let mut obu = self.partial.take().ok_or(())?;
                obu.extend_from_slice(element);
                if continues {
                    self.partial = Some(obu);
                } else {
                    self.obu(&obu, frame)?;
                }
            } else if continues {
                self.partial = Some(element.to_vec());
            } else {
                self.obu(element, frame)?;
            }
            if last {
                break;
            }
        }
        if !y && self.partial.is_some() {
            return Err(());
        }
        Ok(())
    }

    fn finish(&mut self, _frame: &mut Assembly) -> Result<(), ()> {
        match self.partial.take() {
            Some(_) => Err(()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_round_trip_and_limits() {
        for v in [0u64, 1, 127, 128, 300, 1 << 40] {
            let mut b = Vec::new();
            push_leb128(&mut b, v);
            let mut at = 0;
            assert_eq!(leb128(&b, &mut at), Some(v));
            assert_eq!(at, b.len());
        }
        let mut at = 0;
        assert_eq!(leb128(&[0x80; 9], &mut at), None);
        assert_eq!(leb128(&[0x80], &mut 0), None);
    }

    #[test]
    fn gathers_an_obu_split_over_packets_and_drops_delimiters() {
        let mut a = Av1::default();
        let mut f = Assembly::default();
        // Packet 1: W=0, N=1, Y=1: a temporal delimiter (len 1), a sequence header (len 3),
        // then the first half of a frame OBU (type 6).
        let p1 = [0x48, 1, 0x10, 3, 0x08, 0xaa, 0xbb, 3, 0x30, 1, 2];
        // Packet 2: Z=1, W=1: the rest.
        let p2 = [0x90, 3, 4];
        a.add(&p1, true, &mut f).expect("p1");
        a.add(&p2, false, &mut f).expect("p2");
        a.finish(&mut f).expect("whole");
        assert!(f.keyframe);
        assert_eq!(f.data, vec![0x0a, 2, 0xaa, 0xbb, 0x32, 4, 1, 2, 3, 4]);
        assert_eq!(a.seq_header(), Some(&[0x0a, 2, 0xaa, 0xbb][..]));
        // A continuation as the first packet of a frame is refused.
        let mut g = Assembly::default();
        assert!(a.add(&p2, true, &mut g).is_err());
        assert!(
            a.add(&[0x00, 5, 0x30], true, &mut g).is_err(),
            "element past the end"
        );
    }
}
