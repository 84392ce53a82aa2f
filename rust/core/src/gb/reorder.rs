//! A small reorder buffer for RTP over UDP, by sequence number.
//!
//! Cameras on a LAN rarely reorder, but a Wi-Fi or 4G hop does, and the PS demuxer must see its
//! bytes in order (a payload pushed out of order corrupts two frames). So packets that arrive
//! ahead of the next expected sequence number wait here, in a fixed ring of [`SLOTS`] buffers
//! that are allocated once and reused (no allocation per packet after warm-up).
//!
//! Decisions, for a 2 Mbit/s camera (~180 packets/s):
//! - a gap is waited for at most [`MAX_DELAY`] (about 18 packets at that rate): then the
//!   missing packets are given up ([`Ordered::Lost`]) and the held ones go on in order;
//! - a packet [`SLOTS`] or more ahead gives up the gap at once (the ring cannot hold the
//!   distance); a packet behind the expected one is late or a duplicate and dropped, unless it
//!   is more than [`RESTART_DISTANCE`] behind, which reads as a sender restart (new sequence
//!   space) and resynchronises on it;
//! - start-up: the first packet to arrive is not necessarily the first one sent, and losing
//!   the first one would lose the first pack header and PSM (so the whole first GOP). So the
//!   first [`STARTUP_PACKETS`] packets (or what came within [`MAX_DELAY`]) are held and the
//!   stream starts at the lowest sequence number among them.

use std::time::{Duration, Instant};

/// Packets held at most.
pub const SLOTS: usize = 32;
/// Longest wait for a missing packet.
pub const MAX_DELAY: Duration = Duration::from_millis(100);
/// A packet this far behind the expected one starts a new sequence space.
pub const RESTART_DISTANCE: i16 = 1000;
/// Packets held at start-up to find the first one.
pub const STARTUP_PACKETS: usize = 4;

/// What the buffer hands on, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordered<'a> {
    /// The next in-order payload (what was stored with its sequence number).
    Packet(&'a [u8]),
    /// One or more packets before the next [`Ordered::Packet`] will never come.
    Lost,
}

#[derive(Debug, Default)]
struct Slot {
    used: bool,
    seq: u16,
    at: Option<Instant>,
    data: Vec<u8>,
}

/// Counters since creation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReorderStats {
    /// Packets that waited in the buffer.
    pub reordered: u64,
    /// Late packets and duplicates dropped.
    pub late: u64,
    /// Gaps given up.
    pub gaps: u64,
}

/// The reorder buffer of one RTP stream.
#[derive(Debug)]
pub struct Reorder {
    slots: Vec<Slot>,
    expected: Option<u16>,
    held: usize,
    /// Packets taken so far while starting up (0: started).
    starting: usize,
    stats: ReorderStats,
}

impl Default for Reorder {
    fn default() -> Self {
        Reorder::new()
    }
}

impl Reorder {
    pub fn new() -> Reorder {
        Reorder {
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
            expected: None,
            held: 0,
            starting: 0,
            stats: ReorderStats::default(),
        }
    }

    pub fn stats(&self) -> ReorderStats {
        self.stats
    }

    /// Packets waiting.
    pub fn held(&self) -> usize {
        self.held
    }

    /// One packet `seq` with `data` (kept by copy if it must wait); hands on what is in order.
    pub fn push(&mut self, seq: u16, data: &[u8], now: Instant, out: &mut impl FnMut(Ordered)) {
        let Some(mut exp) = self.expected else {
            self.store(seq, data, now);
            self.expected = Some(seq);
            self.starting = 1;
            return;
        };
        let mut d = seq.wrapping_sub(exp) as i16;
        if self.starting > 0 {
            let half = (SLOTS / 2) as i16;
            if d > -half && d < half {
                if d < 0 {
                    self.expected = Some(seq);
                }
                if !self.store(seq, data, now) {
                    self.stats.late += 1;
                }
                self.starting += 1;
                if self.starting >= STARTUP_PACKETS {
                    self.starting = 0;
                    self.drain(out);
                }
                self.handle_timeout(now, out);
                return;
            }
            // Far from the first packet: start now and take this one as usual.
            self.starting = 0;
            self.drain(out);
            let Some(e) = self.expected else { return };
            exp = e;
            d = seq.wrapping_sub(exp) as i16;
        }
        if d == 0 {
            out(Ordered::Packet(data));
            self.expected = Some(seq.wrapping_add(1));
            self.drain(out);
        } else if d < 0 {
            if d > -RESTART_DISTANCE {
                self.stats.late += 1;
                return;
            }
            self.flush(out);
            self.stats.gaps += 1;
            out(Ordered::Lost);
            out(Ordered::Packet(data));
            self.expected = Some(seq.wrapping_add(1));
        } else if d as usize >= SLOTS {
            self.flush(out);
            self.stats.gaps += 1;
            out(Ordered::Lost);
            out(Ordered::Packet(data));
            self.expected = Some(seq.wrapping_add(1));
        } else if !self.store(seq, data, now) {
            self.stats.late += 1;
            return;
        }
        self.handle_timeout(now, out);
    }

    /// Keeps a packet in its slot; false when the slot is taken (only `seq` itself can sit
    /// there while the held range spans less than [`SLOTS`]: a duplicate).
    fn store(&mut self, seq: u16, data: &[u8], now: Instant) -> bool {
        let slot = &mut self.slots[seq as usize % SLOTS];
        if slot.used {
            return false;
        }
        slot.used = true;
        slot.seq = seq;
        slot.at = Some(now);
        slot.data.clear();
        slot.data.extend_from_slice(data);
        self.held += 1;
        self.stats.reordered += 1;
        true
    }

    /// When a gap will be given up, if packets wait.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter(|s| s.used)
            .filter_map(|s| s.at)
            .min()
            .map(|t| t + MAX_DELAY)
    }

    /// Gives up gaps whose oldest waiting packet has waited [`MAX_DELAY`].
    pub fn handle_timeout(&mut self, now: Instant, out: &mut impl FnMut(Ordered)) {
        while self.poll_timeout().is_some_and(|t| t <= now) {
            if self.starting > 0 {
                self.starting = 0;
                self.drain(out);
                continue;
            }
            self.skip_gap(out);
        }
    }

    /// Hands on everything held (with `Lost` at each gap) and forgets the expected number.
    pub fn flush(&mut self, out: &mut impl FnMut(Ordered)) {
        self.starting = 0;
        self.drain(out);
        while self.held > 0 {
            self.skip_gap(out);
        }
    }

    /// Declares the packets before the first held one lost and drains from there.
    fn skip_gap(&mut self, out: &mut impl FnMut(Ordered)) {
        let Some(exp) = self.expected else { return };
        let next = (1..SLOTS as u16).map(|k| exp.wrapping_add(k)).find(|s| {
            let slot = &self.slots[*s as usize % SLOTS];
            slot.used && slot.seq == *s
        });
        let Some(next) = next else {
            // Nothing held ahead of `exp` (cannot happen while held > 0); reset the ring.
            for s in &mut self.slots {
                s.used = false;
            }
            self.held = 0;
            return;
        };
        self.stats.gaps += 1;
        out(Ordered::Lost);
        self.expected = Some(next);
        self.drain(out);
    }

    fn drain(&mut self, out: &mut impl FnMut(Ordered)) {
        while let Some(exp) = self.expected {
            let slot = &mut self.slots[exp as usize % SLOTS];
            if !(slot.used && slot.seq == exp) {
                return;
            }
            slot.used = false;
            self.held -= 1;
            out(Ordered::Packet(&slot.data));
            self.expected = Some(exp.wrapping_add(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum O {
        P(u8),
        L,
    }

    fn run(r: &mut Reorder, seqs: &[u16], now: Instant) -> Vec<O> {
        let mut got = Vec::new();
        for s in seqs {
            r.push(*s, &[*s as u8], now, &mut |o| {
                got.push(match o {
                    Ordered::Packet(p) => O::P(p[0]),
                    Ordered::Lost => O::L,
                })
            });
        }
        got
    }

    #[test]
    fn reorders_within_the_window() {
        let t = Instant::now();
        let mut r = Reorder::new();
        let got = run(&mut r, &[10, 12, 13, 11, 14], t);
        assert_eq!(got, [O::P(10), O::P(11), O::P(12), O::P(13), O::P(14)]);
        assert_eq!(r.held(), 0);
        // Duplicate and late packets are dropped.
        assert!(run(&mut r, &[14, 12], t).is_empty());
        assert_eq!(r.stats().late, 2);
    }

    #[test]
    fn wraps_around() {
        let t = Instant::now();
        let mut r = Reorder::new();
        let got = run(&mut r, &[65534, 0, 65535, 1], t);
        assert_eq!(got, [O::P(254), O::P(255), O::P(0), O::P(1)]);
    }

    #[test]
    fn gives_up_a_gap_after_the_delay() {
        let t = Instant::now();
        let mut r = Reorder::new();
        // Still starting (3 packets): held until the delay.
        assert_eq!(run(&mut r, &[1, 3, 4], t), []);
        assert_eq!(r.poll_timeout(), Some(t + MAX_DELAY));
        let mut got = Vec::new();
        r.handle_timeout(t + MAX_DELAY, &mut |o| {
            got.push(match o {
                Ordered::Packet(p) => O::P(p[0]),
                Ordered::Lost => O::L,
            })
        });
        assert_eq!(got, [O::P(1), O::L, O::P(3), O::P(4)]);
        assert_eq!(r.poll_timeout(), None);
        // A later packet also gives up an expired gap without a timer call.
        let got = run(&mut r, &[6], t + MAX_DELAY);
        assert!(got.is_empty());
        let got = run(&mut r, &[7], t + MAX_DELAY * 3);
        assert_eq!(got, [O::L, O::P(6), O::P(7)]);
    }

    #[test]
    fn far_jumps_and_restarts_resync() {
        let t = Instant::now();
        let mut r = Reorder::new();
        assert_eq!(run(&mut r, &[100, 102], t), []);
        let got = run(&mut r, &[100 + SLOTS as u16 + 5], t);
        assert_eq!(got, [O::P(100), O::L, O::P(102), O::L, O::P(137)]);
        let got = run(&mut r, &[5000, 5001], t);
        assert_eq!(got, [O::L, O::P(136), O::P(137)]);
        // Far behind: a restarted sender.
        let got = run(&mut r, &[3000, 3001], t);
        assert_eq!(got, [O::L, O::P(184), O::P(185)]);
    }

    #[test]
    fn starts_at_the_lowest_of_the_first_packets() {
        let t = Instant::now();
        let mut r = Reorder::new();
        assert_eq!(run(&mut r, &[11, 10, 13], t), []);
        assert_eq!(
            run(&mut r, &[12, 14], t),
            [O::P(10), O::P(11), O::P(12), O::P(13), O::P(14)]
        );
        assert_eq!(r.stats().late, 0);
        // Duplicates while starting are late, not stored twice.
        let mut r = Reorder::new();
        assert_eq!(run(&mut r, &[5, 5, 5, 5], t), [O::P(5)]);
        assert_eq!(r.stats().late, 3);
    }

    #[test]
    fn never_holds_more_than_the_ring() {
        let t = Instant::now();
        let mut r = Reorder::new();
        run(&mut r, &[0], t);
        // Every seq from 2 to 40 (gap at 1), in reverse: bounded, no panic.
        let seqs: Vec<u16> = (2..40).rev().collect();
        run(&mut r, &seqs, t);
        assert!(r.held() < SLOTS);
    }
}
