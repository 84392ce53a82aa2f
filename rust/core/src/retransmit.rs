//! The retransmission buffer of one producer track: the last N packets, one copy per packet per
//! track (shared by every consumer of the track), indexed by extended sequence number.
//!
//! Slots keep their `Vec` between uses, so after warm-up an insert copies bytes and allocates
//! nothing. Memory is bounded: `slots x MAX_STORED` bytes at most. The router also reads its
//! keyframe cache from here (a range of extended sequence numbers).

/// Packets larger than this are forwarded but not kept (they cannot be retransmitted).
pub const MAX_STORED: usize = 4096;

#[derive(Debug, Default)]
struct Slot {
    /// Extended sequence number held, `None` when empty.
    ext_seq: Option<u64>,
    timestamp: u32,
    marker: bool,
    padding: u8,
    csrc_len: u8,
    /// CSRC bytes followed by the payload (no padding).
    data: Vec<u8>,
}

/// One stored packet, as the rewrite needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored<'a> {
    pub ext_seq: u64,
    pub timestamp: u32,
    pub marker: bool,
    pub padding: u8,
    pub csrcs: &'a [u8],
    pub payload: &'a [u8],
}

impl Stored<'_> {
    /// The 16-bit sequence number.
    pub fn seq(&self) -> u16 {
        self.ext_seq as u16
    }
}

/// A ring of `2^k` slots indexed by `ext_seq & mask`.
#[derive(Debug)]
pub struct RetransmitBuffer {
    slots: Vec<Slot>,
    mask: u64,
}

impl RetransmitBuffer {
    /// A buffer of `capacity` slots, rounded up to a power of two (at least 16).
    pub fn new(capacity: usize) -> Self {
        let n = capacity.max(16).next_power_of_two();
        RetransmitBuffer {
            slots: (0..n).map(|_| Slot::default()).collect(),
            mask: n as u64 - 1,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Stores a packet. Returns `false` (and stores nothing) when that sequence number is
    /// already held (a duplicate) or the packet is too large.
    pub fn insert(
        &mut self,
        ext_seq: u64,
        timestamp: u32,
        marker: bool,
        csrcs: &[u8],
        payload: &[u8],
        padding: u8,
    ) -> bool {
        let slot = &mut self.slots[(ext_seq & self.mask) as usize];
        if slot.ext_seq == Some(ext_seq) {
            return false;
        }
        // Do not let a late packet evict a newer one that shares its slot.
        if slot.ext_seq.is_some_and(|s| s > ext_seq) {
            return true;
        }
        if csrcs.len() + payload.len() > MAX_STORED || csrcs.len() > 60 {
            slot.ext_seq = None;
            return true;
        }
        slot.ext_seq = Some(ext_seq);
        slot.timestamp = timestamp;
        slot.marker = marker;
        slot.padding = padding;
        slot.csrc_len = csrcs.len() as u8;
        slot.data.clear();
        slot.data.extend_from_slice(csrcs);
        slot.data.extend_from_slice(payload);
        true
    }

    /// Whether `ext_seq` is held.
    pub fn contains(&self, ext_seq: u64) -> bool {
        self.slots[(ext_seq & self.mask) as usize].ext_seq == Some(ext_seq)
    }

    /// The packet with this extended sequence number, if still held.
    pub fn get(&self, ext_seq: u64) -> Option<Stored<'_>> {
        let slot = &self.slots[(ext_seq & self.mask) as usize];
        if slot.ext_seq != Some(ext_seq) {
            return None;
        }
        let (csrcs, payload) = slot.data.split_at(slot.csrc_len as usize);
        Some(Stored {
            ext_seq,
            timestamp: slot.timestamp,
            marker: slot.marker,
            padding: slot.padding,
            csrcs,
            payload,
        })
    }

    /// The packet whose 16-bit sequence number is `seq`, if held (whatever its cycle).
    pub fn get_seq(&self, seq: u16) -> Option<Stored<'_>> {
        // Slots are indexed by the low bits, and capacity <= 65536, so the slot is unique.
        let idx = (seq as u64 & self.mask) as usize;
        let ext = self.slots[idx].ext_seq?;
        if ext as u16 != seq {
            return None;
        }
        self.get(ext)
    }

    /// Forgets everything (keeps the allocations).
    pub fn clear(&mut self) {
        for s in &mut self.slots {
            s.ext_seq = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring() {
        let mut b = RetransmitBuffer::new(16);
        assert!(b.insert(65536 + 65535, 10, true, &[0, 0, 0, 1], b"abc", 0));
        assert!(
            !b.insert(65536 + 65535, 10, true, &[], b"abc", 0),
            "duplicate"
        );
        let s = b.get_seq(65535).unwrap();
        assert_eq!(
            (s.timestamp, s.marker, s.csrcs, s.payload),
            (10, true, &[0u8, 0, 0, 1][..], &b"abc"[..])
        );
        assert!(b.get_seq(65535 - 16).is_none());
        for e in 0..40u64 {
            b.insert(131072 + e, 0, false, &[], &[e as u8], 0);
        }
        assert!(b.get(131072 + 39).is_some());
        assert!(b.get(131072 + 20).is_none(), "evicted");
        // A late old packet does not evict the newer one in its slot.
        b.insert(131072 + 39 - 16, 0, false, &[], b"old", 0);
        assert!(b.get(131072 + 39).is_some());
        assert!(b.insert(7, 0, false, &[], &[0; MAX_STORED + 1], 0));
        assert!(b.get(7).is_none());
    }
}
