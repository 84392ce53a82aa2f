//! H.264/H.265 Annex B byte streams (ITU-T H.264 Annex B, H.265 Annex B): NAL units separated
//! by start codes `00 00 01` / `00 00 00 01`.
//!
//! Used by the PS demuxer (keyframe and codec detection on demuxed access units) and by the RTP
//! packetizer ([`crate::packetize`]). Reads bytes only; allocates nothing. The per-payload
//! inspection of RTP packets lives in [`crate::codec`].

use memchr::memmem;

/// Iterates over the NAL units of an Annex B buffer, without their start codes and without
/// trailing zero bytes (the `00` of a following 4-byte start code, `trailing_zero_8bits`).
/// Bytes before the first start code are skipped; empty NAL units are not returned.
pub fn nal_units(data: &[u8]) -> NalUnits<'_> {
    let at = memmem::find(data, &[0, 0, 1]).map_or(data.len(), |i| i + 3);
    NalUnits { data, at }
}

/// See [`nal_units`].
#[derive(Debug, Clone)]
pub struct NalUnits<'a> {
    data: &'a [u8],
    /// Start of the next NAL unit (just past its start code).
    at: usize,
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let rest = self.data.get(self.at..)?;
            if rest.is_empty() {
                return None;
            }
            let (mut end, next) = match memmem::find(rest, &[0, 0, 1]) {
                Some(i) => (i, self.at + i + 3),
                None => (rest.len(), self.data.len()),
            };
            while end > 0 && rest[end - 1] == 0 {
                end -= 1;
            }
            self.at = next;
            if end > 0 {
                return Some(&rest[..end]);
            }
        }
    }
}

/// Iterates over where each NAL unit of an Annex B buffer starts: the slice from its header
/// byte to the end of `data`. Unlike [`nal_units`] it never looks for a NAL unit's end, so
/// stopping at the first slice costs nothing for the slice's bytes.
pub fn nal_starts(data: &[u8]) -> NalStarts<'_> {
    NalStarts { data, at: 0 }
}

/// See [`nal_starts`].
#[derive(Debug, Clone)]
pub struct NalStarts<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Iterator for NalStarts<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let rest = self.data.get(self.at..)?;
            let i = memmem::find(rest, &[0, 0, 1])?;
            self.at += i + 3;
            let nal = self.data.get(self.at..)?;
            // `00 00 01 00 ...` is a start code followed by zero bytes, not a NAL unit.
            if nal.first().is_some_and(|&b| b != 0) {
                return Some(nal);
            }
        }
    }
}

/// H.264 `nal_unit_type` (5 bits).
pub fn h264_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// H.265 `nal_unit_type` (6 bits of the 2-byte header).
pub fn h265_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| (b >> 1) & 0x3f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let d = [
            9, 9, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 4, 0, 0,
        ];
        let n: Vec<&[u8]> = nal_units(&d).collect();
        assert_eq!(n, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4]]);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
        assert_eq!(nal_units(&[1, 2, 3]).count(), 0);
        assert_eq!(
            nal_units(&[0, 0, 1, 0, 0, 1, 5]).collect::<Vec<_>>(),
            vec![&[5][..]]
        );
        let starts: Vec<u8> = nal_starts(&d).map(|n| n[0]).collect();
        assert_eq!(starts, vec![0x67, 0x68, 0x65]);
    }
}
