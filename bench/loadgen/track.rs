//! Loss, duplicate and reorder detection for one (subscriber, publisher) stream.
//!
//! A sliding bitmap over sequence numbers: everything below `base` has been seen (or was given
//! up on when the window had to slide); bit `i` of the deque is sequence `base + i`. In the
//! in-order case the deque holds one word.

use std::collections::VecDeque;

/// Sequence numbers more than this far behind the newest are treated as duplicates/late.
pub const WINDOW_WORDS: usize = 1024;

/// Per-stream detector.
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    base: u64,
    bits: VecDeque<u64>,
    highest: Option<u64>,
    /// Distinct sequence numbers received.
    pub unique: u64,
    /// Sequence numbers received again.
    pub dup: u64,
    /// Distinct sequence numbers that arrived after a higher one.
    pub reordered: u64,
}

impl SeqTracker {
    /// Records one received sequence number.
    pub fn observe(&mut self, seq: u64) {
        if seq < self.base {
            self.dup += 1;
            return;
        }
        let mut word = ((seq - self.base) / 64) as usize;
        if word >= WINDOW_WORDS {
            // Slide: give up on the oldest words (their gaps count as lost at the end).
            let shift = word + 1 - WINDOW_WORDS;
            for _ in 0..shift.min(self.bits.len()) {
                self.bits.pop_front();
            }
            self.base += 64 * shift as u64;
            word -= shift;
        }
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        let bit = 1u64 << ((seq - self.base) % 64);
        if self.bits[word] & bit != 0 {
            self.dup += 1;
            return;
        }
        self.bits[word] |= bit;
        self.unique += 1;
        match self.highest {
            Some(h) if seq < h => self.reordered += 1,
            _ => self.highest = Some(seq),
        }
        while self.bits.len() > 1 && self.bits[0] == u64::MAX {
            self.bits.pop_front();
            self.base += 64;
        }
    }

    #[cfg(test)]
    /// Missing sequence numbers below the highest one seen (gaps; final loss is computed from
    /// the publishers' counts, which also covers a lost tail).
    pub fn gaps(&self) -> u64 {
        match self.highest {
            None => 0,
            Some(h) => (h + 1).saturating_sub(self.unique),
        }
    }
}

/// Totals over many streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamTotals {
    /// Distinct messages received.
    pub unique: u64,
    /// Duplicates.
    pub dup: u64,
    /// Reordered.
    pub reordered: u64,
}

impl StreamTotals {
    /// Adds one stream.
    pub fn add(&mut self, t: &SeqTracker) {
        self.unique += t.unique;
        self.dup += t.dup;
        self.reordered += t.reordered;
    }

    /// Adds another total.
    pub fn merge(&mut self, o: &StreamTotals) {
        self.unique += o.unique;
        self.dup += o.dup;
        self.reordered += o.reordered;
    }
}

/// Messages expected but not received (never negative).
pub fn lost(expected: u64, unique: u64) -> u64 {
    expected.saturating_sub(unique)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seqs: &[u64]) -> SeqTracker {
        let mut t = SeqTracker::default();
        for &s in seqs {
            t.observe(s);
        }
        t
    }

    #[test]
    fn in_order_stream() {
        let t = run(&(0..10_000).collect::<Vec<_>>());
        assert_eq!((t.unique, t.dup, t.reordered), (10_000, 0, 0));
        assert_eq!(t.gaps(), 0);
        assert!(t.bits.len() <= 1, "window stays one word in order");
    }

    #[test]
    fn duplicates() {
        let t = run(&[0, 1, 1, 2, 0, 2, 3]);
        assert_eq!((t.unique, t.dup, t.reordered), (4, 3, 0));
    }

    #[test]
    fn reorder_is_not_loss() {
        let t = run(&[0, 2, 1, 3, 5, 4]);
        assert_eq!((t.unique, t.dup, t.reordered), (6, 0, 2));
        assert_eq!(lost(6, t.unique), 0);
    }

    #[test]
    fn loss_and_gaps() {
        let t = run(&[0, 1, 3, 4, 7]);
        assert_eq!(t.unique, 5);
        assert_eq!(t.gaps(), 3);
        // Publisher sent 10 (a lost tail 8, 9 as well).
        assert_eq!(lost(10, t.unique), 5);
        assert_eq!(t.reordered, 0);
    }

    #[test]
    fn window_slides_on_far_jump() {
        let far = (WINDOW_WORDS as u64) * 64 * 3;
        let t = run(&[0, far, far + 1, 1]);
        assert_eq!(t.unique, 3);
        assert_eq!(t.dup, 1, "too old to tell apart: counted as duplicate/late");
        assert!(t.bits.len() <= WINDOW_WORDS);
    }

    #[test]
    fn dup_after_window_advanced() {
        let mut t = run(&(0..200).collect::<Vec<_>>());
        t.observe(5);
        assert_eq!(t.dup, 1);
    }

    #[test]
    fn totals_merge() {
        let mut a = StreamTotals::default();
        a.add(&run(&[0, 0, 2, 1]));
        let mut b = StreamTotals::default();
        b.add(&run(&[0, 1]));
        a.merge(&b);
        assert_eq!(
            a,
            StreamTotals {
                unique: 5,
                dup: 1,
                reordered: 1
            }
        );
    }
}
