//! Finding start codes (`00 00 01 xx`) in a byte stream that arrives in arbitrary pieces.
//!
//! [`Tail`] keeps the last three bytes already consumed, so a start code cut by a `push`
//! boundary (`00 00 | 01 BA`) is still found: [`find_start`] reports it as beginning inside the
//! tail ([`Hit::Tail`]) and the caller takes back those bytes.

use memchr::memmem;

/// The last (up to) three bytes consumed by a scan.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tail {
    b: [u8; 3],
    n: usize,
}

impl Tail {
    pub fn clear(&mut self) {
        self.n = 0;
    }

    /// Appends `s`, keeping the last three bytes.
    pub fn push(&mut self, s: &[u8]) {
        if s.len() >= 3 {
            self.b.copy_from_slice(&s[s.len() - 3..]);
            self.n = 3;
            return;
        }
        for &x in s {
            if self.n == 3 {
                self.b = [self.b[1], self.b[2], x];
            } else {
                self.b[self.n] = x;
                self.n += 1;
            }
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.b[..self.n]
    }
}

/// Where the first start code `00 00 01 x` with `want(x)` begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    /// Its first `k` bytes (1..=3) are the last `k` bytes of the tail; the rest starts `data`.
    Tail(usize),
    /// At this index of `data`.
    Data(usize),
    /// Not in `tail + data` (a start code may still begin in the last three bytes of `data`).
    None,
}

const PREFIX: [u8; 3] = [0, 0, 1];

/// Looks for the first start code `00 00 01 x` with `want(x)` in `tail ++ data`.
pub fn find_start(tail: &Tail, data: &[u8], want: impl Fn(u8) -> bool) -> Hit {
    let t = tail.as_slice();
    for k in (1..=t.len()).rev() {
        if t[t.len() - k..] != PREFIX[..k] {
            continue;
        }
        // The rest of the prefix, then the id byte, must begin `data`.
        let rest = &PREFIX[k..];
        if data.len() > rest.len() && data[..rest.len()] == *rest && want(data[rest.len()]) {
            return Hit::Tail(k);
        }
    }
    let mut from = 0;
    while let Some(i) = memmem::find(&data[from..], &PREFIX) {
        let at = from + i;
        match data.get(at + 3) {
            Some(&x) if want(x) => return Hit::Data(at),
            Some(_) => from = at + 1,
            None => return Hit::None,
        }
    }
    Hit::None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_pack(x: u8) -> bool {
        x == 0xBA
    }

    #[test]
    fn finds_across_pieces() {
        let mut t = Tail::default();
        assert_eq!(find_start(&t, &[5, 0, 0, 1, 0xBA], is_pack), Hit::Data(1));
        assert_eq!(
            find_start(&t, &[0, 0, 1, 0xE0, 0, 0, 1], is_pack),
            Hit::None
        );
        t.push(&[9, 9, 0, 0]);
        assert_eq!(t.as_slice(), &[9, 0, 0]);
        assert_eq!(find_start(&t, &[1, 0xBA], is_pack), Hit::Tail(2));
        assert_eq!(find_start(&t, &[1], is_pack), Hit::None);
        t.push(&[1]);
        assert_eq!(find_start(&t, &[0xBA], is_pack), Hit::Tail(3));
        t.clear();
        t.push(&[0]);
        assert_eq!(find_start(&t, &[0, 1, 0xBA], is_pack), Hit::Tail(1));
        assert_eq!(find_start(&t, &[0, 1, 0xBB], |x| x >= 0xBA), Hit::Tail(1));
        assert_eq!(find_start(&t, &[0, 1, 0x67], |x| x >= 0xBA), Hit::None);
    }
}
