//! Per-thread statistics and their merge in the main thread.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::track::{Seen, StreamTotals};

/// Latencies in nanoseconds, up to 100 s, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// Plain event counters of one thread over one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// PUBLISH packets encoded for sending.
    pub sent: u64,
    /// Of those, sent before the end of the publishing window.
    pub sent_in_window: u64,
    /// Messages a paced publisher had due in the window but never sent (its window was
    /// full until the run ended).
    pub unsent: u64,
    /// Deliveries expected from what was sent (sent × matching subscribers).
    pub expected: u64,
    /// Distinct benchmark messages received by subscribers (duplicates are not
    /// deliveries: they are counted by the stream trackers as `dup`).
    pub delivered: u64,
    /// Of those, received before the end of the publishing window.
    pub delivered_in_window: u64,
    /// PUBACK / PUBCOMP received by publishers.
    pub acked: u64,
    /// CONNACK (success) received.
    pub connects_ok: u64,
    /// Of those, during the measurement window (reconnect storm).
    pub connects_in_window: u64,
    /// Connection attempts that failed (any reason).
    pub connect_failed: u64,
    /// Retained messages received (retained scenario).
    pub retained_rx: u64,
    /// Bytes written to sockets.
    pub bytes_tx: u64,
    /// Bytes read from sockets.
    pub bytes_rx: u64,
    /// Deliveries a shared-subscription member got after a later message of the same
    /// publisher had reached that same member.
    pub member_reordered: u64,
}

impl Counters {
    /// Adds `o` field by field.
    pub fn add(&mut self, o: &Counters) {
        self.sent += o.sent;
        self.sent_in_window += o.sent_in_window;
        self.unsent += o.unsent;
        self.expected += o.expected;
        self.delivered += o.delivered;
        self.delivered_in_window += o.delivered_in_window;
        self.acked += o.acked;
        self.connects_ok += o.connects_ok;
        self.connects_in_window += o.connects_in_window;
        self.connect_failed += o.connect_failed;
        self.retained_rx += o.retained_rx;
        self.bytes_tx += o.bytes_tx;
        self.bytes_rx += o.bytes_rx;
        self.member_reordered += o.member_reordered;
    }
}

/// What a worker thread reports every interval (deltas, except the gauges).
#[derive(Debug, Clone)]
pub struct Interval {
    /// Reporting thread.
    pub thread: usize,
    /// Counter deltas.
    pub c: Counters,
    /// Gauge: connections currently open.
    pub open_conns: u64,
    /// Delivery latency, ns.
    pub lat: Histogram<u64>,
    /// Connect latency (socket connect → CONNACK), ns.
    pub conn_lat: Histogram<u64>,
    /// Errors by reason.
    pub errors: BTreeMap<String, u64>,
    /// Connection failures by reason.
    pub connect_failures: BTreeMap<String, u64>,
    /// Retained scenario: per subscriber, SUBSCRIBE → last retained message, ns.
    pub retained_done_ns: Vec<u64>,
    /// First connect attempt of the thread, if any in this interval.
    pub first_connect_ns: Option<u64>,
    /// Last successful CONNACK in this interval.
    pub last_connack_ns: Option<u64>,
    /// Gauge: past the window's end, the thread's publishers will send nothing more (its
    /// `sent` and `expected` so far are final).
    pub settled: bool,
}

impl Interval {
    /// Counts one received benchmark message sent (scheduled) at `ts_ns` and received at
    /// `now`, as the stream tracker classified it. Only a delivery (new or late) counts in
    /// `delivered` (and in the window's rate when `now <= window_end`) and is a latency
    /// sample: a duplicate counted there inflated msg/s and weighted the percentiles with
    /// a message's second copy.
    pub fn record_delivery(&mut self, seen: Seen, now: u64, ts_ns: u64, window_end: u64) {
        if !seen.is_delivery() {
            return;
        }
        self.c.delivered += 1;
        if now <= window_end {
            self.c.delivered_in_window += 1;
        }
        self.lat.saturating_record(now.saturating_sub(ts_ns).max(1));
    }

    /// An empty interval report.
    pub fn new(thread: usize) -> Interval {
        Interval {
            thread,
            c: Counters::default(),
            open_conns: 0,
            lat: new_hist(),
            conn_lat: new_hist(),
            errors: BTreeMap::new(),
            connect_failures: BTreeMap::new(),
            retained_done_ns: Vec::new(),
            first_connect_ns: None,
            last_connack_ns: None,
            settled: false,
        }
    }
}

/// Everything merged so far.
#[derive(Debug, Clone)]
pub struct Totals {
    /// Summed counters.
    pub c: Counters,
    /// Latest open-connection gauge per thread.
    pub open_conns: Vec<u64>,
    /// Merged delivery latency, the whole run (the summary's percentiles).
    pub lat: Histogram<u64>,
    /// Merged delivery latency since the last progress line (its p99), see `reset_window`.
    pub win_lat: Histogram<u64>,
    /// Merged connect latency.
    pub conn_lat: Histogram<u64>,
    /// Errors by reason.
    pub errors: BTreeMap<String, u64>,
    /// Connection failures by reason.
    pub connect_failures: BTreeMap<String, u64>,
    /// Retained completion times.
    pub retained_done_ns: Vec<u64>,
    /// Earliest connect attempt.
    pub first_connect_ns: Option<u64>,
    /// Latest CONNACK.
    pub last_connack_ns: Option<u64>,
    /// Stream detector totals (from the final reports).
    pub streams: StreamTotals,
    /// Latest `settled` gauge per thread.
    pub settled: Vec<bool>,
}

impl Totals {
    /// Empty totals for `threads` workers.
    pub fn new(threads: usize) -> Totals {
        Totals {
            c: Counters::default(),
            open_conns: vec![0; threads],
            lat: new_hist(),
            win_lat: new_hist(),
            conn_lat: new_hist(),
            errors: BTreeMap::new(),
            connect_failures: BTreeMap::new(),
            retained_done_ns: Vec::new(),
            first_connect_ns: None,
            last_connack_ns: None,
            streams: StreamTotals::default(),
            settled: vec![false; threads],
        }
    }

    /// Folds one interval report in.
    pub fn merge(&mut self, iv: &Interval) {
        self.c.add(&iv.c);
        if let Some(g) = self.open_conns.get_mut(iv.thread) {
            *g = iv.open_conns;
        }
        if let Some(g) = self.settled.get_mut(iv.thread) {
            *g = iv.settled;
        }
        self.lat.add(&iv.lat).expect("same histogram bounds");
        self.win_lat.add(&iv.lat).expect("same histogram bounds");
        self.conn_lat
            .add(&iv.conn_lat)
            .expect("same histogram bounds");
        merge_map(&mut self.errors, &iv.errors);
        merge_map(&mut self.connect_failures, &iv.connect_failures);
        self.retained_done_ns
            .extend_from_slice(&iv.retained_done_ns);
        self.first_connect_ns = min_opt(self.first_connect_ns, iv.first_connect_ns);
        self.last_connack_ns = self.last_connack_ns.max(iv.last_connack_ns);
    }

    /// Starts the next progress window: its latencies begin empty (the run's stay).
    pub fn reset_window(&mut self) {
        self.win_lat.reset();
    }

    /// The progress line for the `dt` seconds since the line that saw counters `last`,
    /// `since` seconds into the run: rates over that window and the window's own p99 (the
    /// run's p99 hid a bad second among many good ones, and stayed high after one).
    pub fn progress_line(&self, last: &Counters, dt: f64, since: f64) -> String {
        let d = |a: u64, b: u64| a.saturating_sub(b) as f64 / dt.max(1e-3);
        format!(
            "[{since:6.1}s] sent {:>9.0}/s  delivered {:>9.0}/s  p99 (last {dt:.1} s) {:>9.0} µs  \
             conns {:>6}  connects {:>7.0}/s  errors {}",
            d(self.c.sent, last.sent),
            d(self.c.delivered, last.delivered),
            quantile_us(&self.win_lat, 0.99),
            self.open(),
            d(self.c.connects_ok, last.connects_ok),
            self.error_count()
        )
    }

    /// Connections open now, all threads.
    pub fn open(&self) -> u64 {
        self.open_conns.iter().sum()
    }

    /// Whether the drain has nothing left to wait for: every thread has said it will send
    /// no more (so `expected` is final), every expected delivery is in and, with
    /// `need_acks` (QoS 1/2), every publish is acknowledged. `delivered >= expected` alone
    /// ended the drain early: a thread's deliveries of messages whose sending another
    /// thread had not reported yet (or duplicates, then in `delivered`) made up for
    /// messages still on their way, which the disconnect at the end then lost.
    pub fn all_delivered(&self, need_acks: bool) -> bool {
        self.settled.iter().all(|&s| s)
            && self.c.delivered >= self.c.expected
            && (!need_acks || self.c.acked >= self.c.sent)
    }

    /// Errors of every kind.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum::<u64>() + self.connect_failures.values().sum::<u64>()
    }
}

fn merge_map(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Histogram value at quantile `q`, in µs (0 when empty).
pub fn quantile_us(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    h.value_at_quantile(q) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_histograms_and_counters() {
        let mut t = Totals::new(2);
        let mut a = Interval::new(0);
        let mut b = Interval::new(1);
        for v in 1..=1000u64 {
            a.lat.record(v * 1000).unwrap();
        }
        for _ in 0..1000 {
            b.lat.record(1_000_000).unwrap();
        }
        a.c.delivered = 1000;
        b.c.delivered = 1000;
        a.open_conns = 3;
        b.open_conns = 4;
        a.errors.insert("x".into(), 2);
        b.errors.insert("x".into(), 1);
        b.connect_failures.insert("refused".into(), 5);
        a.first_connect_ns = Some(50);
        b.first_connect_ns = Some(40);
        b.last_connack_ns = Some(90);
        t.merge(&a);
        t.merge(&b);
        assert_eq!(t.c.delivered, 2000);
        assert_eq!(t.lat.len(), 2000);
        assert_eq!(t.open(), 7);
        assert_eq!(t.errors["x"], 3);
        assert_eq!(t.error_count(), 8);
        assert_eq!(t.first_connect_ns, Some(40));
        assert_eq!(t.last_connack_ns, Some(90));
        // Half the samples are 1..1000 µs, half 1000 µs: p25 is ~500 µs, p99 1000 µs.
        let p25 = quantile_us(&t.lat, 0.25);
        assert!((495.0..=505.0).contains(&p25), "{p25}");
        assert!((quantile_us(&t.lat, 0.99) - 1000.0).abs() < 1.0);
        // A later interval replaces the gauge and adds the rest.
        let mut a2 = Interval::new(0);
        a2.open_conns = 1;
        a2.c.delivered = 5;
        t.merge(&a2);
        assert_eq!(t.open(), 5);
        assert_eq!(t.c.delivered, 2005);
    }

    #[test]
    fn the_progress_p99_is_the_windows_own() {
        let mut t = Totals::new(1);
        let mut slow = Interval::new(0);
        for _ in 0..1000 {
            slow.lat.record(50_000_000).unwrap(); // 50 ms
        }
        slow.c.delivered = 1000;
        t.merge(&slow);
        let line = t.progress_line(&Counters::default(), 1.0, 1.0);
        assert!(line.contains("p99 (last 1.0 s)     50004 µs"), "{line}");
        let last = t.c;
        t.reset_window();
        let mut fast = Interval::new(0);
        for _ in 0..1000 {
            fast.lat.record(100_000).unwrap(); // 100 µs
        }
        fast.c.delivered = 500;
        t.merge(&fast);
        let line = t.progress_line(&last, 1.0, 2.0);
        assert!(line.contains("p99 (last 1.0 s)       100 µs"), "{line}");
        assert!(line.contains("delivered       500/s"), "{line}");
        // The run's histogram keeps both seconds.
        assert_eq!(t.lat.len(), 2000);
        assert!((quantile_us(&t.lat, 0.99) - 50_004.0).abs() < 100.0);
    }

    #[test]
    fn the_drain_waits_for_every_thread_to_stop_sending() {
        // Thread 1 publishes; thread 0 subscribes and has already received 20 messages
        // thread 1 sent after its last report, while 20 others are still on their way.
        let mut t = Totals::new(2);
        let mut publ = Interval::new(1);
        (publ.c.sent, publ.c.expected) = (100, 100);
        t.merge(&publ);
        let mut sub = Interval::new(0);
        sub.c.delivered = 100;
        sub.settled = true;
        t.merge(&sub);
        assert!(t.c.delivered >= t.c.expected, "the old test said: done");
        assert!(!t.all_delivered(false), "thread 1 has not said it stopped");
        let mut publ = Interval::new(1);
        (publ.c.sent, publ.c.expected, publ.settled) = (20, 20, true);
        t.merge(&publ);
        assert!(!t.all_delivered(false), "20 on their way");
        let mut sub = Interval::new(0);
        (sub.c.delivered, sub.settled) = (20, true);
        t.merge(&sub);
        assert!(t.all_delivered(false));
        assert!(!t.all_delivered(true), "QoS 1/2: not acknowledged yet");
        let mut publ = Interval::new(1);
        (publ.c.acked, publ.settled) = (120, true);
        t.merge(&publ);
        assert!(t.all_delivered(true));
        // A thread that reports it may send more again (a held-back backlog) reopens it.
        let mut publ = Interval::new(1);
        publ.settled = false;
        t.merge(&publ);
        assert!(!t.all_delivered(true));
    }

    #[test]
    fn a_duplicate_is_neither_delivered_nor_a_latency_sample() {
        let mut iv = Interval::new(0);
        let end = 10_000_000;
        iv.record_delivery(Seen::New, 1_000_000, 900_000, end);
        iv.record_delivery(Seen::Dup, 5_000_000, 900_000, end);
        iv.record_delivery(Seen::Late, 20_000_000, 1_000_000, end);
        assert_eq!(iv.c.delivered, 2, "the new and the late one");
        assert_eq!(
            iv.c.delivered_in_window, 1,
            "the late one came after the window"
        );
        assert_eq!(iv.lat.len(), 2);
        assert_eq!(iv.lat.max(), iv.lat.highest_equivalent(19_000_000));
        assert!(
            iv.lat.min() <= 100_000,
            "no 4.1 ms sample from the duplicate"
        );
        assert_eq!(iv.lat.count_between(4_000_000, 5_000_000), 0);
    }

    #[test]
    fn empty_quantile() {
        assert_eq!(quantile_us(&new_hist(), 0.99), 0.0);
    }
}
