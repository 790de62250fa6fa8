//! Loss, duplicate and reorder detection for one (subscriber, publisher) stream.
//!
//! A sliding bitmap over sequence numbers: everything below `base` has been seen (or was given
//! up on when the window had to slide); bit `i` of the deque is sequence `base + i`. In the
//! in-order case the deque holds one word.
//!
//! A message older than the window (below `base`) cannot be told apart from a duplicate by
//! its bit, which is gone. It is counted once, never as both lost and duplicate: as a
//! `late` delivery while the stream has given up on more sequence numbers than have come
//! back late (it may well be one of them: it is delivered, its latency recorded, and it is
//! not lost), otherwise as a duplicate (everything below `base` has then been seen).
//! Both at once, a duplicate older than the window in a stream that also gave up on a
//! message that never came, would be counted as late; that takes a broker that both loses
//! a message and repeats one over 65,536 messages old.

use std::collections::VecDeque;

/// Sequence numbers more than this many words (of 64) behind the newest are "late".
pub const WINDOW_WORDS: usize = 1024;

/// What one received sequence number was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First time within the window: a delivery.
    New,
    /// Older than the window, and the stream gave up on that many: a delivery, counted in
    /// `late` (and in `reordered`) rather than as a duplicate.
    Late,
    /// Seen before: not a delivery (no latency sample, not in the delivered counts).
    Dup,
}

impl Seen {
    /// True for a message that counts as delivered.
    pub fn is_delivery(self) -> bool {
        self != Seen::Dup
    }
}

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
    /// Distinct sequence numbers that arrived after a higher one (`late` ones included).
    pub reordered: u64,
    /// Of the distinct ones, those that arrived older than the window (see the module doc).
    pub late: u64,
    /// Sequence numbers below `base` never seen when the window slid past them.
    given_up: u64,
}

impl SeqTracker {
    /// Records one received sequence number and says what it was.
    pub fn observe(&mut self, seq: u64) -> Seen {
        if seq < self.base {
            if self.late < self.given_up {
                self.late += 1;
                self.unique += 1;
                self.reordered += 1;
                return Seen::Late;
            }
            self.dup += 1;
            return Seen::Dup;
        }
        let mut word = ((seq - self.base) / 64) as usize;
        if word >= WINDOW_WORDS {
            // Slide: give up on the oldest words (their gaps count as lost at the end,
            // unless they come back late).
            let shift = word + 1 - WINDOW_WORDS;
            let popped = shift.min(self.bits.len());
            for _ in 0..popped {
                let w = self.bits.pop_front().expect("popped <= len");
                self.given_up += w.count_zeros() as u64;
            }
            self.given_up += 64 * (shift - popped) as u64;
            self.base += 64 * shift as u64;
            word -= shift;
        }
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        let bit = 1u64 << ((seq - self.base) % 64);
        if self.bits[word] & bit != 0 {
            self.dup += 1;
            return Seen::Dup;
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
        Seen::New
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
    /// Delivered older than the reorder window (in `unique` and `reordered`, not in `dup`).
    pub late: u64,
}

impl StreamTotals {
    /// Adds one stream.
    pub fn add(&mut self, t: &SeqTracker) {
        self.unique += t.unique;
        self.dup += t.dup;
        self.reordered += t.reordered;
        self.late += t.late;
    }

    /// Adds another total.
    pub fn merge(&mut self, o: &StreamTotals) {
        self.unique += o.unique;
        self.dup += o.dup;
        self.reordered += o.reordered;
        self.late += o.late;
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
        assert_eq!(t.unique, 4, "1 was given up on: it comes back late");
        assert_eq!((t.dup, t.late), (0, 1));
        assert!(t.bits.len() <= WINDOW_WORDS);
    }

    #[test]
    fn a_message_older_than_the_window_counts_once() {
        // A publisher sends 0..n; message 5 is held back until everything else is in.
        let n = (WINDOW_WORDS as u64) * 64 * 2;
        let mut seqs: Vec<u64> = (0..n).filter(|&s| s != 5).collect();
        seqs.push(5);
        let t = run(&seqs);
        assert_eq!(t.late, 1);
        assert_eq!(t.dup, 0, "not a duplicate");
        assert_eq!(lost(n, t.unique), 0, "not lost");
        assert_eq!(t.reordered, 1);
        assert_eq!(t.gaps(), 0);
    }

    #[test]
    fn an_old_repeat_with_nothing_given_up_is_a_duplicate() {
        let n = (WINDOW_WORDS as u64) * 64 * 2;
        let mut t = run(&(0..n).collect::<Vec<_>>());
        assert_eq!(t.observe(5), Seen::Dup);
        assert_eq!((t.unique, t.dup, t.late), (n, 1, 0));
        // Given up on one (7 never came before the window slid past it): the first old
        // arrival is taken as that one, late; any more are duplicates.
        let mut seqs: Vec<u64> = (0..n).filter(|&s| s != 7).collect();
        seqs.extend([7, 7, 3]);
        let mut t = SeqTracker::default();
        let seen: Vec<Seen> = seqs.iter().map(|&s| t.observe(s)).collect();
        assert_eq!(&seen[seen.len() - 3..], [Seen::Late, Seen::Dup, Seen::Dup]);
        assert_eq!((t.unique, t.dup, t.late), (n, 2, 1));
        assert_eq!(lost(n, t.unique), 0);
    }

    #[test]
    fn observe_says_what_each_message_was() {
        let mut t = SeqTracker::default();
        assert_eq!(t.observe(0), Seen::New);
        assert_eq!(t.observe(2), Seen::New);
        assert_eq!(
            t.observe(1),
            Seen::New,
            "reordered within the window is new"
        );
        assert_eq!(t.observe(2), Seen::Dup);
        assert!(Seen::New.is_delivery() && Seen::Late.is_delivery());
        assert!(!Seen::Dup.is_delivery());
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
                reordered: 1,
                late: 0
            }
        );
    }
}
