//! RFC 4571 framing of RTP over TCP as GB28181 cameras use it (GB/T 28181-2016 annex L): each
//! RTP packet is preceded by its length as a 16-bit big-endian number.
//!
//! [`Deframer::push`] takes the bytes of one connection in any split and hands every complete
//! packet to a closure. Packets that lie whole inside the pushed slice are lent straight from
//! it (no copy); only a packet cut by the end of a read is copied into the deframer's buffer
//! (at most 2 + 65535 bytes, allocated once per connection).
//!
//! Decision: a frame is *unusable framing* (the connection is closed, see
//! [`FramingError`]) when its length is below an RTP fixed header (12 bytes, which includes
//! the length 0 SRS rejects) or when its first byte is not RTP/RTCP version 2. That is checked
//! as soon as the first byte of the frame is there, so garbage costs at most 3 bytes before
//! it is refused, never a 64 KiB wait. Lengths up to 65535 are legal; ZLMediaKit's "> 10 KB
//! means a corrupt sender buffer" heuristic is not used because the version check catches a
//! desynchronised stream at the next frame anyway.

/// Why a connection's byte stream cannot be framed. The connection should be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FramingError {
    /// A frame length shorter than an RTP header; with the connection's byte offset.
    BadLength { length: usize, offset: u64 },
    /// A frame whose first byte is not RTP version 2; with the byte and the offset.
    NotRtp { first: u8, offset: u64 },
}

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FramingError::BadLength { length, offset } => {
                write!(f, "RFC 4571 frame length {length} at byte {offset}")
            }
            FramingError::NotRtp { first, offset } => {
                write!(
                    f,
                    "frame at byte {offset} is not RTP (first byte {first:#04x})"
                )
            }
        }
    }
}

impl std::error::Error for FramingError {}

/// Smallest frame: an RTP fixed header.
pub const MIN_FRAME: usize = 12;

/// The RFC 4571 reader of one TCP connection.
#[derive(Debug, Default)]
pub struct Deframer {
    /// A frame cut by the end of the last push: its 2 length bytes and what came of it.
    partial: Vec<u8>,
    /// Connection bytes consumed so far (for error context).
    offset: u64,
    failed: Option<FramingError>,
}

fn check(len_hi: u8, len_lo: u8, first: Option<u8>, offset: u64) -> Result<usize, FramingError> {
    let length = u16::from_be_bytes([len_hi, len_lo]) as usize;
    if length < MIN_FRAME {
        return Err(FramingError::BadLength { length, offset });
    }
    match first {
        Some(b) if b >> 6 != 2 => Err(FramingError::NotRtp { first: b, offset }),
        _ => Ok(length),
    }
}

impl Deframer {
    pub fn new() -> Deframer {
        Deframer::default()
    }

    /// Bytes held of a frame not complete yet.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Feeds the next bytes; calls `f` with each complete frame (an RTP or RTCP packet) in
    /// order. After an error the deframer stays failed and takes nothing more.
    pub fn push(&mut self, mut data: &[u8], mut f: impl FnMut(&[u8])) -> Result<(), FramingError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let r = self.push_inner(&mut data, &mut f);
        if let Err(e) = r {
            self.failed = Some(e);
            self.partial = Vec::new();
        }
        r
    }

    fn push_inner(
        &mut self,
        data: &mut &[u8],
        f: &mut impl FnMut(&[u8]),
    ) -> Result<(), FramingError> {
        // Finish a frame cut by the previous push.
        if !self.partial.is_empty() {
            if self.partial.len() < 3 {
                let take = (3 - self.partial.len()).min(data.len());
                self.partial.extend_from_slice(&data[..take]);
                *data = &data[take..];
                self.offset += take as u64;
                if self.partial.len() < 2 {
                    return Ok(());
                }
                let first = self.partial.get(2).copied();
                check(
                    self.partial[0],
                    self.partial[1],
                    first,
                    self.offset - self.partial.len() as u64,
                )?;
                if first.is_none() {
                    return Ok(());
                }
            }
            let length = u16::from_be_bytes([self.partial[0], self.partial[1]]) as usize;
            let take = (2 + length - self.partial.len()).min(data.len());
            self.partial.extend_from_slice(&data[..take]);
            *data = &data[take..];
            self.offset += take as u64;
            if self.partial.len() < 2 + length {
                return Ok(());
            }
            f(&self.partial[2..]);
            self.partial.clear();
        }
        // Whole frames straight from `data`.
        while data.len() >= 2 {
            let length = check(data[0], data[1], data.get(2).copied(), self.offset)?;
            if data.len() < 2 + length {
                break;
            }
            f(&data[2..2 + length]);
            *data = &data[2 + length..];
            self.offset += 2 + length as u64;
        }
        if !data.is_empty() {
            if self.partial.capacity() == 0 {
                self.partial.reserve(2 + u16::MAX as usize);
            }
            self.partial.extend_from_slice(data);
            self.offset += data.len() as u64;
        }
        Ok(())
    }
}

/// RFC 4571 framing of one packet (for tests and load generators). `None` for a packet longer
/// than 65535 bytes.
pub fn frame(pkt: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let len = u16::try_from(pkt.len()).ok()?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(pkt);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16, len: usize) -> Vec<u8> {
        let mut p = vec![0x80, 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.resize(len, seq as u8);
        p
    }

    fn collect(d: &mut Deframer, data: &[u8]) -> (Vec<Vec<u8>>, Result<(), FramingError>) {
        let mut got = Vec::new();
        let r = d.push(data, |p| got.push(p.to_vec()));
        (got, r)
    }

    #[test]
    fn whole_and_every_split_give_the_same_frames() {
        let pkts = [rtp(1, 12), rtp(2, 1400), rtp(3, 300), rtp(4, 65535)];
        let mut stream = Vec::new();
        for p in &pkts {
            frame(p, &mut stream).unwrap();
        }
        let (whole, r) = collect(&mut Deframer::new(), &stream);
        r.unwrap();
        assert_eq!(whole, pkts);
        for cut in [1, 2, 3, 13, 14, 15, 1416, stream.len() - 1] {
            let mut d = Deframer::new();
            let (mut a, r1) = collect(&mut d, &stream[..cut]);
            let (b, r2) = collect(&mut d, &stream[cut..]);
            r1.unwrap();
            r2.unwrap();
            a.extend(b);
            assert_eq!(a, pkts, "cut at {cut}");
        }
        let mut d = Deframer::new();
        let mut got = Vec::new();
        for b in &stream {
            d.push(std::slice::from_ref(b), |p| got.push(p.to_vec()))
                .unwrap();
        }
        assert_eq!(got, pkts);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn refuses_short_lengths_and_non_rtp() {
        let (got, r) = collect(&mut Deframer::new(), &[0, 0, 0x80]);
        assert!(got.is_empty());
        assert_eq!(
            r,
            Err(FramingError::BadLength {
                length: 0,
                offset: 0
            })
        );
        let (_, r) = collect(&mut Deframer::new(), &[0, 11]);
        assert!(matches!(r, Err(FramingError::BadLength { length: 11, .. })));
        // HTTP, or a desynchronised stream: refused on its first byte, not after 64 KiB.
        let (_, r) = collect(&mut Deframer::new(), b"GET / HTTP/1.1\r\n");
        assert!(matches!(r, Err(FramingError::NotRtp { first: b'T', .. })));
        // Valid frame, then garbage: the frame is delivered, then the error (with its offset).
        let mut s = Vec::new();
        frame(&rtp(7, 20), &mut s).unwrap();
        s.extend_from_slice(&[0xff, 0xff, 0x00]);
        let mut d = Deframer::new();
        let (got, r) = collect(&mut d, &s);
        assert_eq!(got.len(), 1);
        assert_eq!(
            r,
            Err(FramingError::NotRtp {
                first: 0,
                offset: 22
            })
        );
        // Failed stays failed.
        assert!(collect(&mut d, &s[..22]).1.is_err());
    }

    #[test]
    fn hostile_length_split_at_every_byte() {
        // 0x4000 bytes announced, version byte fine, then truncated: waits, never panics.
        let mut d = Deframer::new();
        let (got, r) = collect(&mut d, &[0x40, 0x00, 0x80, 0x60]);
        r.unwrap();
        assert!(got.is_empty());
        assert_eq!(d.pending(), 4);
        // Split inside the length field with a non-RTP first byte.
        let mut d = Deframer::new();
        assert!(collect(&mut d, &[0x00]).1.is_ok());
        assert!(collect(&mut d, &[0x20]).1.is_ok());
        assert!(matches!(
            collect(&mut d, &[0x00]).1,
            Err(FramingError::NotRtp { offset: 0, .. })
        ));
    }
}
