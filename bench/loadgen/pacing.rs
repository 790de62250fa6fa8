//! Constant-rate schedule: message `k` of a publisher is due at `start + k / rate`.
//!
//! The schedule never slips: when the sender falls behind (window full, broker slow), the
//! messages it sends late still carry their scheduled time, so the delay shows up as latency
//! instead of silently lowering the offered rate.

/// One publisher's schedule.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    start_ns: u64,
    /// Nanoseconds between messages, as a float so rates like 3 msg/s stay exact on average.
    interval_ns: f64,
    /// Due times are rounded up to a multiple of this (0: exact), see [`Pacer::with_tick`].
    tick_ns: u64,
}

impl Pacer {
    /// `rate` messages per second starting at `start_ns`, shifted by `phase` (0..1) of one
    /// interval so that many publishers do not fire in lock step.
    pub fn new(start_ns: u64, rate: f64, phase: f64) -> Pacer {
        assert!(rate > 0.0, "a pacer needs a positive rate");
        let interval_ns = 1e9 / rate;
        Pacer {
            start_ns: start_ns + (interval_ns * phase.clamp(0.0, 1.0)) as u64,
            interval_ns,
            tick_ns: 0,
        }
    }

    /// Rounds every due time up to a multiple of `tick_ns` on the clock all publishers share
    /// (0: exact),
    /// as a generator on a millisecond timer wheel (tokio, Erlang) sends: what falls due in
    /// one tick leaves together. The rate stays the same; arrivals come in clusters.
    pub fn with_tick(mut self, tick_ns: u64) -> Pacer {
        self.tick_ns = tick_ns;
        self
    }

    /// Scheduled send time of message `k`.
    #[inline]
    pub fn due(&self, k: u64) -> u64 {
        let exact = self.start_ns + (k as f64 * self.interval_ns) as u64;
        if self.tick_ns == 0 {
            exact
        } else {
            exact.div_ceil(self.tick_ns) * self.tick_ns
        }
    }

    /// How many messages are due before `end` (messages `0..n` have `due < end`): what a
    /// publisher owes for a window that ends at `end`, late or not.
    pub fn due_before(&self, end: u64) -> u64 {
        if end == 0 {
            0
        } else {
            self.due_count(end - 1)
        }
    }

    /// How many messages are due by `now` (messages `0..n` have `due <= now`).
    pub fn due_count(&self, now: u64) -> u64 {
        if now < self.start_ns {
            return 0;
        }
        let mut n = ((now - self.start_ns) as f64 / self.interval_ns) as u64 + 1;
        // Float rounding: make `due(n-1) <= now < due(n)` exact.
        while n > 0 && self.due(n - 1) > now {
            n -= 1;
        }
        while self.due(n) <= now {
            n += 1;
        }
        n
    }
}

/// Spreads `count` events per second over time for a token-bucket-free limiter (connects/s).
#[derive(Debug, Clone, Copy)]
pub struct RateLimiter {
    pacer: Option<Pacer>,
    issued: u64,
}

impl RateLimiter {
    /// `rate` events per second from `start_ns`; 0 = unlimited.
    pub fn new(start_ns: u64, rate: f64) -> RateLimiter {
        RateLimiter {
            pacer: (rate > 0.0).then(|| Pacer::new(start_ns, rate, 0.0)),
            issued: 0,
        }
    }

    /// Takes one permit if the schedule allows one at `now`.
    pub fn try_take(&mut self, now: u64) -> bool {
        match &self.pacer {
            None => true,
            Some(p) if p.due(self.issued) <= now => {
                self.issued += 1;
                true
            }
            Some(_) => false,
        }
    }

    /// When the next permit becomes available (`None`: always).
    pub fn next_at(&self) -> Option<u64> {
        self.pacer.map(|p| p.due(self.issued))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_exact_and_does_not_drift() {
        let p = Pacer::new(1_000, 3.0, 0.0);
        assert_eq!(p.due(0), 1_000);
        assert_eq!(p.due(3), 1_000 + 1_000_000_000);
        // Three million messages at 3/s (a million seconds): no cumulative drift beyond float precision.
        let d = p.due(3_000_000);
        assert!((d as i64 - (1_000 + 1_000_000_000_000_000)).abs() < 2_000);
    }

    #[test]
    fn due_count_matches_due() {
        let p = Pacer::new(500, 1234.5, 0.37);
        for now in [0u64, 499, 500, 1_000_000, 123_456_789, 2_000_000_000] {
            let n = p.due_count(now);
            if n > 0 {
                assert!(p.due(n - 1) <= now);
            }
            assert!(p.due(n) > now);
        }
    }

    #[test]
    fn a_tick_clusters_due_times_without_changing_the_rate() {
        let tick = 1_000_000;
        let a = Pacer::new(0, 2000.0, 0.1).with_tick(tick);
        let b = Pacer::new(0, 2000.0, 0.7).with_tick(tick);
        // Both publishers' first messages (50 µs and 350 µs) leave at the 1 ms tick.
        assert_eq!(a.due(0), tick);
        assert_eq!(b.due(0), tick);
        for k in 0..10_000 {
            assert_eq!(a.due(k) % tick, 0);
            let exact = Pacer::new(0, 2000.0, 0.1).due(k);
            assert!(a.due(k) >= exact && a.due(k) - exact < tick);
        }
        // Still 2000 per second.
        assert_eq!(
            (0..).take_while(|&k| a.due(k) <= 1_000_000_000).count(),
            2000
        );
    }

    #[test]
    fn due_before_the_end_of_a_window() {
        let p = Pacer::new(0, 1000.0, 0.0);
        // Due at 0, 1 ms, ... 999 ms: a window ending at 1 s owes 1000, one ending just
        // after 1 s owes the 1001st as well.
        assert_eq!(p.due_before(1_000_000_000), 1000);
        assert_eq!(p.due_before(1_000_000_001), 1001);
        assert_eq!(p.due_before(0), 0);
        assert_eq!(p.due_before(1), 1);
        let q = Pacer::new(500, 10.0, 0.0);
        assert_eq!(q.due_before(500), 0);
        for end in [501u64, 100_000_499, 100_000_500, 100_000_501, 2_000_000_000] {
            let n = q.due_before(end);
            assert!(n == 0 || q.due(n - 1) < end);
            assert!(q.due(n) >= end);
        }
    }

    #[test]
    fn phase_offsets_publishers() {
        let a = Pacer::new(0, 1000.0, 0.0);
        let b = Pacer::new(0, 1000.0, 0.5);
        assert_eq!(a.due(0), 0);
        assert_eq!(b.due(0), 500_000);
        assert_eq!(b.due(1) - b.due(0), 1_000_000);
    }

    #[test]
    fn rate_over_one_second() {
        // 1000 msg/s: exactly 1000 messages are due in [0, 1 s).
        let p = Pacer::new(0, 1000.0, 0.0);
        assert_eq!(p.due_count(999_999_999), 1000);
    }

    #[test]
    fn limiter() {
        let mut l = RateLimiter::new(0, 10.0);
        assert!(l.try_take(0));
        assert!(!l.try_take(1));
        assert_eq!(l.next_at(), Some(100_000_000));
        assert!(l.try_take(100_000_000));
        let mut u = RateLimiter::new(0, 0.0);
        assert!((0..1000).all(|_| u.try_take(0)));
        assert_eq!(u.next_at(), None);
    }
}
