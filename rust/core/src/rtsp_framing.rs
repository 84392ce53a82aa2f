//! Splitting an RTSP connection's byte stream into interleaved frames and text messages.
//!
//! After PLAY or RECORD over TCP the core owns the connection. What arrives is a mix of
//! interleaved binary frames (RFC 2326 §10.12: `$`, channel, 16-bit big-endian length, payload)
//! and RTSP text messages (requests such as GET_PARAMETER or TEARDOWN, headers up to an empty
//! line, then `Content-Length` bytes of body). [`InterleavedReader`] finds where each one ends;
//! it does not interpret messages (the control plane does).
//!
//! Sans-IO: [`InterleavedReader::push`] takes bytes as they were read, at any split point, and
//! yields every complete frame. Stray CR/LF between frames are skipped. A header block that
//! does not end within [`MAX_HEADER`] bytes, a body over [`MAX_BODY`] or an unreadable
//! `Content-Length` is an error, after which the reader yields nothing more (the connection is
//! to be closed).

/// Longest header block of a text message (request line included).
pub const MAX_HEADER: usize = 64 * 1024;
/// Longest body of a text message. The Python RTSP/SIP framer uses the same number (rust/py
/// exports it as `_core.RTSP_MAX_BODY`).
pub const MAX_BODY: usize = 256 * 1024;

/// One unit of an interleaved RTSP connection, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// `$` frame: an RTP or RTCP packet on an interleaved channel.
    Interleaved { channel: u8, payload: &'a [u8] },
    /// A whole RTSP text message: headers, the empty line and the body.
    Message(&'a [u8]),
}

/// Why the stream cannot be framed any further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    /// No end of headers within [`MAX_HEADER`] bytes.
    HeaderTooLong,
    /// `Content-Length` over [`MAX_BODY`].
    BodyTooLong,
    /// `Content-Length` is not a decimal number.
    BadContentLength,
}

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FramingError::HeaderTooLong => "RTSP header block over 64 KiB",
            FramingError::BodyTooLong => "RTSP body over 256 KiB",
            FramingError::BadContentLength => "unreadable Content-Length",
        })
    }
}

impl std::error::Error for FramingError {}

/// The framing state of one connection. Holds at most one incomplete frame or message (plus
/// what one `push` added).
#[derive(Debug, Default)]
pub struct InterleavedReader {
    buf: Vec<u8>,
    /// Start of the first unconsumed byte in `buf`.
    pos: usize,
    /// Index in `buf` up to which an incomplete message's header was searched for its end.
    scanned: usize,
    failed: Option<FramingError>,
}

/// Capacity kept after a burst; more is released once the buffer is nearly empty again.
const KEEP_CAPACITY: usize = 64 * 1024;

impl InterleavedReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `data` and returns the frames that are now complete. Frames not taken from the
    /// iterator stay queued for the next `push` (which may be given no data).
    pub fn push(&mut self, data: &[u8]) -> Frames<'_> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.scanned = self.scanned.saturating_sub(self.pos);
            self.pos = 0;
            if self.buf.capacity() > KEEP_CAPACITY
                && self.buf.len() + data.len() < KEEP_CAPACITY / 4
            {
                self.buf.shrink_to(KEEP_CAPACITY / 4);
            }
        }
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
        Frames {
            buf: &self.buf,
            pos: &mut self.pos,
            scanned: &mut self.scanned,
            failed: &mut self.failed,
        }
    }

    /// Bytes held that do not make a complete frame yet.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The error that stopped the reader, if any.
    pub fn error(&self) -> Option<FramingError> {
        self.failed
    }
}

/// The frames complete after one [`InterleavedReader::push`]; each borrows the reader.
pub struct Frames<'a> {
    buf: &'a [u8],
    pos: &'a mut usize,
    scanned: &'a mut usize,
    failed: &'a mut Option<FramingError>,
}

/// The end of the header block in `rest` (index just past the empty line), searching from
/// `from`: `\n\n` or `\n\r\n`.
fn header_end(rest: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 1 < rest.len() {
        if rest[i] == b'\n' {
            match rest[i + 1] {
                b'\n' => return Some(i + 2),
                b'\r' if i + 2 < rest.len() && rest[i + 2] == b'\n' => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// The `Content-Length` of a header block (0 when absent).
fn content_length(headers: &[u8]) -> Result<usize, FramingError> {
    for line in headers.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        if !line[..colon]
            .trim_ascii()
            .eq_ignore_ascii_case(b"content-length")
        {
            continue;
        }
        let v = line[colon + 1..].trim_ascii();
        if v.is_empty() || v.len() > 10 || !v.iter().all(u8::is_ascii_digit) {
            return Err(FramingError::BadContentLength);
        }
        let n = v.iter().fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
        if n > MAX_BODY {
            return Err(FramingError::BodyTooLong);
        }
        return Ok(n);
    }
    Ok(0)
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, FramingError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed.is_some() {
            return None;
        }
        loop {
            let start = *self.pos;
            let rest = &self.buf[start..];
            let first = *rest.first()?;
            if first == b'$' {
                if rest.len() < 4 {
                    return None;
                }
                let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
                if rest.len() < 4 + len {
                    return None;
                }
                *self.pos = start + 4 + len;
                *self.scanned = *self.pos;
                return Some(Ok(Frame::Interleaved {
                    channel: rest[1],
                    payload: &self.buf[start + 4..start + 4 + len],
                }));
            }
            if first == b'\r' || first == b'\n' {
                *self.pos = start + 1;
                *self.scanned = (*self.scanned).max(*self.pos);
                continue;
            }
            let from = self.scanned.saturating_sub(start).saturating_sub(2);
            let Some(end) = header_end(rest, from) else {
                if rest.len() > MAX_HEADER {
                    *self.failed = Some(FramingError::HeaderTooLong);
                    return Some(Err(FramingError::HeaderTooLong));
                }
                *self.scanned = self.buf.len();
                return None;
            };
            if end > MAX_HEADER {
                *self.failed = Some(FramingError::HeaderTooLong);
                return Some(Err(FramingError::HeaderTooLong));
            }
            let body = match content_length(&rest[..end]) {
                Ok(n) => n,
                Err(e) => {
                    *self.failed = Some(e);
                    return Some(Err(e));
                }
            };
            if rest.len() < end + body {
                return None;
            }
            *self.pos = start + end + body;
            *self.scanned = *self.pos;
            return Some(Ok(Frame::Message(&self.buf[start..start + end + body])));
        }
    }
}

/// An owned copy of a frame, for comparisons in tests and fuzzing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedFrame {
    Interleaved(u8, Vec<u8>),
    Message(Vec<u8>),
    Error(FramingError),
}

impl From<Result<Frame<'_>, FramingError>> for OwnedFrame {
    fn from(r: Result<Frame<'_>, FramingError>) -> Self {
        match r {
            Ok(Frame::Interleaved { channel, payload }) => {
                OwnedFrame::Interleaved(channel, payload.to_vec())
            }
            Ok(Frame::Message(m)) => OwnedFrame::Message(m.to_vec()),
            Err(e) => OwnedFrame::Error(e),
        }
    }
}

/// Frames `data` pushed in pieces of the given sizes (cycled; the rest in one piece).
pub fn frame_in_pieces(data: &[u8], sizes: &[usize]) -> Vec<OwnedFrame> {
    let mut r = InterleavedReader::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < data.len() {
        let n = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(data.len())
            .max(1);
        let end = (at + n).min(data.len());
        out.extend(r.push(&data[at..end]).map(OwnedFrame::from));
        at = end;
        i += 1;
    }
    out.extend(r.push(&[]).map(OwnedFrame::from));
    out
}

/// The fuzz target's invariant: whatever the bytes, framing never panics, every frame lies
/// within the input, and the result does not depend on how the input was split (the first
/// byte picks the piece sizes). The buffer stays bounded by the largest unit plus one push.
/// Built with the `fuzzing` feature (or for unit tests).
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_check(data: &[u8]) {
    let Some((&pick, data)) = data.split_first() else {
        return;
    };
    let whole = frame_in_pieces(data, &[data.len()]);
    let sizes: Vec<usize> = [1, 2, 3, 5, 7, 64, 1000]
        .iter()
        .enumerate()
        .filter(|(i, _)| pick & (1 << i) != 0)
        .map(|(_, s)| *s)
        .collect();
    let sizes = if sizes.is_empty() { vec![1] } else { sizes };
    let split = frame_in_pieces(data, &sizes);
    assert_eq!(whole, split, "framing depends on the split");
    let total: usize = whole
        .iter()
        .map(|f| match f {
            OwnedFrame::Interleaved(_, p) => p.len() + 4,
            OwnedFrame::Message(m) => m.len(),
            OwnedFrame::Error(_) => 0,
        })
        .sum();
    assert!(total <= data.len());
    if whole.iter().any(|f| matches!(f, OwnedFrame::Error(_))) {
        assert!(
            matches!(whole.last(), Some(OwnedFrame::Error(_))),
            "frames after an error"
        );
    }
    let mut r = InterleavedReader::new();
    for chunk in data.chunks(4096) {
        for _ in r.push(chunk) {}
        assert!(r.buffered() <= MAX_HEADER + MAX_BODY + 4096 + 4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OwnedFrame::*;

    fn stream() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(b"$\x00\x00\x03abc");
        s.extend_from_slice(b"GET_PARAMETER rtsp://h/x RTSP/1.0\r\nCSeq: 5\r\nSession: 1\r\n\r\n");
        s.extend_from_slice(b"$\x01\x00\x00");
        s.extend_from_slice(b"\r\n");
        s.extend_from_slice(
            b"SET_PARAMETER rtsp://h/x RTSP/1.0\r\ncontent-LENGTH : 4\r\n\r\n$\x00ab",
        );
        s.extend_from_slice(b"$\x02\x00\x02xy");
        s
    }

    fn expected() -> Vec<OwnedFrame> {
        vec![
            Interleaved(0, b"abc".to_vec()),
            Message(b"GET_PARAMETER rtsp://h/x RTSP/1.0\r\nCSeq: 5\r\nSession: 1\r\n\r\n".to_vec()),
            Interleaved(1, vec![]),
            Message(
                b"SET_PARAMETER rtsp://h/x RTSP/1.0\r\ncontent-LENGTH : 4\r\n\r\n$\x00ab".to_vec(),
            ),
            Interleaved(2, b"xy".to_vec()),
        ]
    }

    #[test]
    fn whole() {
        assert_eq!(frame_in_pieces(&stream(), &[10_000]), expected());
    }

    #[test]
    fn every_split_point() {
        let s = stream();
        for cut in 0..=s.len() {
            let mut r = InterleavedReader::new();
            let mut got: Vec<OwnedFrame> = r.push(&s[..cut]).map(OwnedFrame::from).collect();
            got.extend(r.push(&s[cut..]).map(OwnedFrame::from));
            assert_eq!(got, expected(), "cut at {cut}");
            assert_eq!(r.buffered(), 0);
        }
        for cut1 in 0..=s.len() {
            for cut2 in cut1..=s.len() {
                let mut r = InterleavedReader::new();
                let mut got: Vec<OwnedFrame> = r.push(&s[..cut1]).map(OwnedFrame::from).collect();
                got.extend(r.push(&s[cut1..cut2]).map(OwnedFrame::from));
                got.extend(r.push(&s[cut2..]).map(OwnedFrame::from));
                assert_eq!(got, expected(), "cuts at {cut1} {cut2}");
            }
        }
        assert_eq!(frame_in_pieces(&s, &[1]), expected());
    }

    #[test]
    fn frames_left_in_the_iterator_stay_queued() {
        let s = stream();
        let mut r = InterleavedReader::new();
        let first: Vec<OwnedFrame> = r.push(&s).take(1).map(OwnedFrame::from).collect();
        assert_eq!(first, expected()[..1]);
        let rest: Vec<OwnedFrame> = r.push(&[]).map(OwnedFrame::from).collect();
        assert_eq!(rest, expected()[1..]);
    }

    #[test]
    fn bare_lf_messages() {
        let got = frame_in_pieces(b"OPTIONS * RTSP/1.0\nCSeq: 1\n\n$\x00\x00\x01z", &[3]);
        assert_eq!(
            got,
            vec![
                Message(b"OPTIONS * RTSP/1.0\nCSeq: 1\n\n".to_vec()),
                Interleaved(0, b"z".to_vec())
            ]
        );
    }

    #[test]
    fn oversized_header_is_an_error_once() {
        let mut junk = b"X".repeat(MAX_HEADER + 10);
        junk.extend_from_slice(b"\r\n\r\n$\x00\x00\x00");
        for piece in [1000, 70_000] {
            let got = frame_in_pieces(&junk, &[piece]);
            assert_eq!(got, vec![Error(FramingError::HeaderTooLong)]);
        }
        let mut r = InterleavedReader::new();
        assert_eq!(r.push(&junk).count(), 1);
        assert_eq!(r.push(b"$\x00\x00\x00").count(), 0);
        assert_eq!(r.error(), Some(FramingError::HeaderTooLong));
    }

    #[test]
    fn bad_content_length() {
        assert_eq!(
            frame_in_pieces(b"A\r\nContent-Length: -1\r\n\r\n", &[100]),
            vec![Error(FramingError::BadContentLength)]
        );
        assert_eq!(
            frame_in_pieces(b"A\r\nContent-Length: 99999999\r\n\r\n", &[100]),
            vec![Error(FramingError::BodyTooLong)]
        );
        // A body still arriving is not an error.
        assert_eq!(
            frame_in_pieces(b"A\r\nContent-Length: 10\r\n\r\nabc", &[1]),
            vec![]
        );
    }

    #[test]
    fn garbage_never_panics_and_does_not_depend_on_splits() {
        let mut seed = 0x1234_5678u32;
        for _ in 0..300 {
            let len = (seed % 700) as usize;
            let mut data = Vec::with_capacity(len + 1);
            for _ in 0..=len {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                // Skew towards framing bytes.
                let b = match seed % 8 {
                    0 => b'$',
                    1 => b'\r',
                    2 => b'\n',
                    3 => 0,
                    _ => (seed >> 8) as u8,
                };
                data.push(b);
            }
            fuzz_check(&data);
        }
    }
}
