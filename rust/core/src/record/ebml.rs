//! EBML (RFC 8794) element encoding for the Matroska writer: IDs as their bytes, sizes as
//! variable-length integers, unsigned/float/string payloads, `Void` filler, and the 8-byte
//! "unknown size" that lets a Segment or Cluster be written before its length is known.
//!
//! Why our own: the crates for EBML (`ebml-iterable`/`webm-iterable` 0.7, `matroska`,
//! `mkv-element`) are readers first; `webm-iterable`'s writer owns a `std::io::Write` (no
//! offsets for the later patches) and brings a tag enum of the whole Matroska schema. What the
//! writer needs is this file: forty lines of encoding.

/// Size field meaning "unknown" (all value bits set), 8 bytes long.
pub const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

/// Appends an element ID (given with its marker bits, as the specification lists it).
pub fn id(out: &mut Vec<u8>, id: u32) {
    let b = id.to_be_bytes();
    let skip = b.iter().take_while(|&&x| x == 0).count().min(3);
    out.extend_from_slice(&b[skip..]);
}

/// Appends `n` as the shortest EBML size (values with all bits set are avoided: they mean
/// "unknown").
pub fn size(out: &mut Vec<u8>, n: u64) {
    let mut len = 1;
    while len < 8 && n >= (1u64 << (7 * len)) - 1 {
        len += 1;
    }
    out.extend_from_slice(&size_fixed(n, len));
}

/// `n` as an EBML size of exactly `len` (1..=8) bytes.
pub fn size_fixed(n: u64, len: usize) -> Vec<u8> {
    let len = len.clamp(1, 8);
    let v = n | (1u64 << (7 * len));
    v.to_be_bytes()[8 - len..].to_vec()
}

/// A whole element: ID, size, payload.
pub fn elem(out: &mut Vec<u8>, eid: u32, payload: &[u8]) {
    id(out, eid);
    size(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// An unsigned integer element, in the fewest bytes (at least one).
pub fn uint(out: &mut Vec<u8>, eid: u32, v: u64) {
    let b = v.to_be_bytes();
    let skip = b.iter().take_while(|&&x| x == 0).count().min(7);
    elem(out, eid, &b[skip..]);
}

pub fn float(out: &mut Vec<u8>, eid: u32, v: f64) {
    elem(out, eid, &v.to_be_bytes());
}

pub fn string(out: &mut Vec<u8>, eid: u32, s: &str) {
    elem(out, eid, s.as_bytes());
}

/// A `Void` element exactly `total` bytes long (`total` >= 2).
pub fn void(out: &mut Vec<u8>, total: usize) {
    let total = total.max(2);
    out.push(0xec);
    if total <= 9 {
        out.extend_from_slice(&size_fixed(total as u64 - 2, 1));
        out.resize(out.len() + total - 2, 0);
    } else {
        out.extend_from_slice(&size_fixed(total as u64 - 9, 8));
        out.resize(out.len() + total - 9, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_ids_sizes_and_values() {
        let mut v = Vec::new();
        id(&mut v, 0x1A45DFA3);
        id(&mut v, 0xA3);
        assert_eq!(v, [0x1a, 0x45, 0xdf, 0xa3, 0xa3]);
        let mut v = Vec::new();
        size(&mut v, 5);
        size(&mut v, 127); // 0x7f alone would mean unknown
        size(&mut v, 300);
        assert_eq!(v, [0x85, 0x40, 0x7f, 0x41, 0x2c]);
        let mut v = Vec::new();
        uint(&mut v, 0x2AD7B1, 1_000_000);
        assert_eq!(v, [0x2a, 0xd7, 0xb1, 0x83, 0x0f, 0x42, 0x40]);
        let mut v = Vec::new();
        uint(&mut v, 0x9c, 0);
        assert_eq!(v, [0x9c, 0x81, 0x00]);
        assert_eq!(size_fixed(1, 8), [1, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn void_fills_exactly() {
        for n in [2usize, 9, 10, 11, 100] {
            let mut v = Vec::new();
            void(&mut v, n);
            assert_eq!(v.len(), n, "{n}");
        }
    }
}
