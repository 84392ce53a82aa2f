//! The writers' output: what the file-owning caller writes, in order.
//!
//! A [`Write`] with `offset: None` is appended at the end of the file; one with `Some(offset)`
//! overwrites bytes already appended (a size or a placeholder filled in once known). Every
//! patch refers to bytes of an earlier append, so applying the writes in order with plain
//! `write`/`pwrite` calls is always right. Consecutive appends are merged into one write.

use std::collections::VecDeque;

/// One write the caller performs on the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// `None`: append. `Some(o)`: overwrite at byte `o` (inside what was already appended).
    pub offset: Option<u64>,
    pub bytes: Vec<u8>,
}

/// Queue of writes; tracks the file length the appends make.
#[derive(Debug, Default)]
pub struct Sink {
    queue: VecDeque<Write>,
    len: u64,
}

impl Sink {
    /// File length once every queued append is written.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn append(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if let Some(last) = self.queue.back_mut() {
            if last.offset.is_none() {
                last.bytes.extend_from_slice(bytes);
                return;
            }
        }
        self.queue.push_back(Write {
            offset: None,
            bytes: bytes.to_vec(),
        });
    }

    /// Overwrites `bytes` at `offset` (which must lie inside what was appended).
    pub fn patch(&mut self, offset: u64, bytes: Vec<u8>) {
        debug_assert!(
            offset + bytes.len() as u64 <= self.len,
            "patch past the end"
        );
        self.queue.push_back(Write {
            offset: Some(offset),
            bytes,
        });
    }

    pub fn poll(&mut self) -> Option<Write> {
        self.queue.pop_front()
    }
}

/// Applies writes to an in-memory file (for tests and for callers that buffer).
pub fn apply(file: &mut Vec<u8>, w: &Write) {
    match w.offset {
        None => file.extend_from_slice(&w.bytes),
        Some(o) => {
            let o = o as usize;
            let end = o + w.bytes.len();
            if file.len() < end {
                file.resize(end, 0);
            }
            file[o..end].copy_from_slice(&w.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_merge_and_patches_keep_order() {
        let mut s = Sink::default();
        s.append(b"abc");
        s.append(b"def");
        s.patch(1, b"X".to_vec());
        s.append(b"g");
        assert_eq!(s.len(), 7);
        let mut f = Vec::new();
        let mut n = 0;
        while let Some(w) = s.poll() {
            apply(&mut f, &w);
            n += 1;
        }
        assert_eq!(n, 3);
        assert_eq!(f, b"aXcdefg");
    }
}
