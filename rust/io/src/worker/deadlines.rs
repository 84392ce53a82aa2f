//! The worker's deadline heap: when each peer wants its `on_deadline`, earliest first.
//!
//! Owns a binary heap of `(when, peer, generation)` and, per peer, the generation of its one
//! live entry. Setting a peer's deadline again bumps its generation: the old entry stays in the
//! heap and is skipped when it surfaces (lazy invalidation), so setting costs O(log n) and
//! nothing scans every peer. Knows nothing of what a peer is. A deadline is one-shot: popping it
//! forgets it, and the peer sets the next one.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use pms_core::media::TransportId as PeerId;

/// Stale entries tolerated before the heap is rebuilt from the live ones.
const SLACK: usize = 64;

#[derive(Default)]
pub(crate) struct Deadlines {
    heap: BinaryHeap<Reverse<(Instant, PeerId, u64)>>,
    /// Per peer with a deadline: (generation of its live entry, when).
    live: HashMap<PeerId, (u64, Instant)>,
    next_generation: u64,
}

impl Deadlines {
    /// Sets (`Some`) or cancels (`None`) the deadline of `peer`, replacing any earlier one.
    pub(crate) fn set(&mut self, peer: PeerId, when: Option<Instant>) {
        match when {
            Some(at) => {
                if self.live.get(&peer).is_some_and(|(_, t)| *t == at) {
                    return;
                }
                self.next_generation += 1;
                let generation = self.next_generation;
                self.live.insert(peer, (generation, at));
                self.heap.push(Reverse((at, peer, generation)));
                if self.heap.len() > 2 * self.live.len() + SLACK {
                    self.compact();
                }
            }
            None => {
                self.live.remove(&peer);
            }
        }
    }

    /// The live deadline of `peer`.
    #[cfg(test)]
    pub(crate) fn get(&self, peer: PeerId) -> Option<Instant> {
        self.live.get(&peer).map(|(_, t)| *t)
    }

    /// The earliest live deadline (drops stale entries on top).
    pub(crate) fn next(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, peer, generation))) = self.heap.peek().copied() {
            if self.is_live(peer, generation) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// The next peer whose deadline is at or before `now`; its deadline is forgotten.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<PeerId> {
        while let Some(Reverse((at, peer, generation))) = self.heap.peek().copied() {
            if !self.is_live(peer, generation) {
                self.heap.pop();
                continue;
            }
            if at > now {
                return None;
            }
            self.heap.pop();
            self.live.remove(&peer);
            return Some(peer);
        }
        None
    }

    /// Entries in the heap, stale ones included.
    #[cfg(test)]
    pub(crate) fn heap_len(&self) -> usize {
        self.heap.len()
    }

    fn is_live(&self, peer: PeerId, generation: u64) -> bool {
        self.live.get(&peer).is_some_and(|(g, _)| *g == generation)
    }

    fn compact(&mut self) {
        self.heap = self
            .live
            .iter()
            .map(|(peer, (generation, at))| Reverse((*at, *peer, *generation)))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(base: Instant, n: u64) -> Instant {
        base + Duration::from_millis(n)
    }

    #[test]
    fn pops_in_time_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.set(3, Some(ms(t0, 30)));
        d.set(1, Some(ms(t0, 10)));
        d.set(2, Some(ms(t0, 20)));
        assert_eq!(d.next(), Some(ms(t0, 10)));
        assert_eq!(d.pop_due(ms(t0, 5)), None);
        assert_eq!(d.pop_due(ms(t0, 25)), Some(1));
        assert_eq!(d.pop_due(ms(t0, 25)), Some(2));
        assert_eq!(d.pop_due(ms(t0, 25)), None);
        assert_eq!(d.next(), Some(ms(t0, 30)));
        assert_eq!(d.pop_due(ms(t0, 30)), Some(3));
        assert_eq!(d.next(), None);
        // One-shot: a popped deadline is gone.
        assert_eq!(d.get(3), None);
        assert_eq!(d.pop_due(ms(t0, 1000)), None);
    }

    #[test]
    fn rearming_replaces_the_old_entry_earlier_or_later() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.set(1, Some(ms(t0, 50)));
        d.set(1, Some(ms(t0, 10))); // earlier
        assert_eq!(d.next(), Some(ms(t0, 10)));
        d.set(1, Some(ms(t0, 70))); // later: the 10 ms and 50 ms entries are stale
        assert_eq!(d.next(), Some(ms(t0, 70)));
        assert_eq!(d.pop_due(ms(t0, 60)), None);
        assert_eq!(d.pop_due(ms(t0, 70)), Some(1));
        assert_eq!(d.pop_due(ms(t0, 1000)), None, "stale entries never fire");
        // Setting the same time twice keeps one entry.
        d.set(2, Some(ms(t0, 5)));
        let len = d.heap_len();
        d.set(2, Some(ms(t0, 5)));
        assert_eq!(d.heap_len(), len);
    }

    #[test]
    fn cancelled_and_removed_peers_do_not_fire() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.set(1, Some(ms(t0, 10)));
        d.set(2, Some(ms(t0, 20)));
        d.set(1, None);
        assert_eq!(d.next(), Some(ms(t0, 20)));
        assert_eq!(d.pop_due(ms(t0, 100)), Some(2));
        assert_eq!(d.pop_due(ms(t0, 100)), None);
        // Cancelled, then set again: only the new entry counts.
        d.set(3, Some(ms(t0, 10)));
        d.set(3, None);
        d.set(3, Some(ms(t0, 40)));
        assert_eq!(d.pop_due(ms(t0, 30)), None);
        assert_eq!(d.pop_due(ms(t0, 40)), Some(3));
    }

    #[test]
    fn many_peers_stay_ordered_and_stale_entries_stay_bounded() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        let n = 10_000u64;
        // Insert in a scrambled order, then move every deadline several times.
        for round in 0..5u64 {
            for i in 0..n {
                let peer = (i * 7919) % n;
                d.set(peer, Some(ms(t0, 1 + (peer * 13 + round * 101) % 5000)));
            }
        }
        assert!(
            d.heap_len() <= 2 * n as usize + SLACK + 1,
            "heap {}",
            d.heap_len()
        );
        let mut last = t0;
        let mut seen = std::collections::HashSet::new();
        while let Some(at) = d.next() {
            assert!(at >= last);
            last = at;
            let peer = d.pop_due(at).unwrap();
            assert_eq!(d.get(peer), None);
            assert!(seen.insert(peer), "peer {peer} fired twice");
            // The deadline that fired is the last one set for that peer.
            assert_eq!(at, ms(t0, 1 + (peer * 13 + 4 * 101) % 5000));
        }
        assert_eq!(seen.len(), n as usize);
    }
}
