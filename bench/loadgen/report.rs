//! The end-of-run summary: a human table on stdout and, with `--json`, one JSON line.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

/// Everything a run reports. Field names are the JSON keys; `None` is `null`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Scenario name (`p2p`, `fanin`, ...).
    pub scenario: String,
    /// Free-form label (`--label`, e.g. the broker's name).
    pub label: String,
    /// MQTT version: 3 (3.1.1) or 5.
    pub mqtt: u8,
    /// QoS.
    pub qos: u8,
    /// Payload bytes.
    pub size: usize,
    /// Offered rate per publisher, msg/s (0: as fast as possible); `conn` and
    /// `reconnect-storm`: offered connects/s. `retained`: measured, the retained messages
    /// each publisher published per second (its publishers are not paced; 0 when they
    /// never finished).
    pub rate: f64,
    /// Publishing window, seconds.
    pub secs: f64,
    /// Generator threads.
    pub threads: usize,
    /// Clients in the plan.
    pub clients: usize,
    /// Publishing clients.
    pub publishers: usize,
    /// Subscribing clients.
    pub subscribers: usize,
    /// PUBLISH packets sent.
    pub sent: u64,
    /// Deliveries expected (sent × matching subscribers).
    pub expected: u64,
    /// Distinct deliveries received (including after the window, while draining);
    /// duplicates are not in it, they are `dup`.
    pub delivered: u64,
    /// Distinct deliveries per second during the window (duplicates excluded).
    pub msgs_per_s: f64,
    /// Sent per second during the window; `retained`: while publishing (measured).
    pub sent_per_s: f64,
    /// Latency from the scheduled send time, µs, of every delivery (a duplicate is not a
    /// sample).
    pub p50_us: f64,
    /// p90.
    pub p90_us: f64,
    /// p99.
    pub p99_us: f64,
    /// p99.9.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// Expected but never received.
    pub lost: u64,
    /// Due at a constant rate within the window but never sent: the publisher's window was
    /// full until the end (the broker fell that far behind). Not in `lost`, nor in the
    /// latencies, which understate the delay when this is not 0.
    pub unsent: u64,
    /// Copies received of a message already received: not in `delivered`, `msgs_per_s` or
    /// the latencies.
    pub dup: u64,
    /// Received after a later message of the same publisher (with a shared group: by the
    /// same member, since MQTT orders a publisher's messages per subscriber only).
    pub reordered: u64,
    /// Delivered more than 65,536 messages behind its stream's newest (past the reorder
    /// window, see `track`): counted once, as delivered and reordered, not lost nor dup.
    pub late: u64,
    /// Members of the shared-subscription group (`fanin --share`), else 0.
    pub shared_group: usize,
    /// Successful connects (CONNACK success).
    pub connects: u64,
    /// Connects per second (connect phase, or the window for the reconnect storm).
    pub connects_per_s: f64,
    /// Connect latency (socket connect → CONNACK) p50, µs.
    pub connect_p50_us: f64,
    /// Connect latency p99, µs.
    pub connect_p99_us: f64,
    /// Failed connection attempts by reason.
    pub connect_failures: BTreeMap<String, u64>,
    /// Other errors by reason.
    pub errors: BTreeMap<String, u64>,
    /// Broker RSS before connecting, KiB.
    pub broker_rss_before_kb: Option<u64>,
    /// Broker RSS at the end of the window, KiB.
    pub broker_rss_after_kb: Option<u64>,
    /// Broker RSS growth per connection, bytes.
    pub bytes_per_conn: Option<f64>,
    /// Broker CPU per delivered message, µs.
    pub broker_cpu_us_per_msg: Option<f64>,
    /// Broker CPU per connection opened during the connect phase, µs.
    pub broker_cpu_us_per_conn: Option<f64>,
    /// Broker CPU used in the window, % of one core.
    pub broker_cpu_pct: Option<f64>,
    /// This generator's CPU per delivered message, µs.
    pub gen_cpu_us_per_msg: Option<f64>,
    /// This generator's CPU used in the window, % of one core.
    pub gen_cpu_pct: f64,
    /// Retained scenario: SUBSCRIBE → all retained messages received, ms (slowest subscriber).
    pub retained_ms: Option<f64>,
    /// Retained messages received.
    pub retained_rx: u64,
    /// Connections open at the end of the window.
    pub open_conns: u64,
    /// Wall time of the measured window incl. draining, seconds.
    pub measured_s: f64,
    /// Why the run failed before measuring (setup: connections refused, the broker not
    /// running...), with every figure 0 or null; null for a run that measured.
    pub error: Option<String>,
}

fn fmt_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn fmt_us(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}

fn opt(v: Option<f64>, unit: &str, prec: usize) -> String {
    match v {
        Some(v) => format!("{v:.prec$}{unit}"),
        None => "-".into(),
    }
}

/// The human-readable table.
pub fn render_table(s: &Summary) -> String {
    let mut o = String::new();
    let rate = if s.scenario == "retained" {
        // Measured, not offered: say so.
        format!("published {}/s per publisher (measured)", fmt_rate(s.rate))
    } else if s.rate > 0.0 {
        format!("rate {}/s per publisher", fmt_rate(s.rate))
    } else {
        "rate max".into()
    };
    let label = if s.label.is_empty() {
        String::new()
    } else {
        format!(" [{}]", s.label)
    };
    let _ = writeln!(
        o,
        "== {}{label}: MQTT {}, QoS {}, {} B, {rate}, {} s, {} thread(s)",
        s.scenario, s.mqtt, s.qos, s.size, s.secs, s.threads
    );
    let mut row = |k: &str, v: String| {
        let _ = writeln!(o, "  {k:<22} {v}");
    };
    row(
        "clients",
        format!(
            "{} ({} publishers, {} subscribers), {} open at end",
            s.clients, s.publishers, s.subscribers, s.open_conns
        ),
    );
    if s.expected > 0 || s.delivered > 0 {
        row(
            "sent",
            format!("{} ({} msg/s)", s.sent, fmt_rate(s.sent_per_s)),
        );
        row(
            "delivered",
            format!(
                "{} of {} expected ({} msg/s)",
                s.delivered,
                s.expected,
                fmt_rate(s.msgs_per_s)
            ),
        );
        row(
            "latency",
            format!(
                "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                fmt_us(s.p50_us),
                fmt_us(s.p90_us),
                fmt_us(s.p99_us),
                fmt_us(s.p999_us),
                fmt_us(s.max_us)
            ),
        );
        let label = if s.shared_group > 0 {
            "lost / dup / reordered within a member"
        } else {
            "lost / dup / reordered"
        };
        row(label, format!("{} / {} / {}", s.lost, s.dup, s.reordered));
        if s.late > 0 {
            row(
                "late",
                format!(
                    "{} delivered over 65,536 messages behind (in delivered and reordered)",
                    s.late
                ),
            );
        }
        if s.unsent > 0 {
            row(
                "unsent",
                format!(
                    "{} due but never sent (publishers held back to the end): latencies understate",
                    s.unsent
                ),
            );
        }
    }
    if let Some(ms) = s.retained_ms {
        row(
            "retained",
            format!("{} received, all in {ms:.1} ms", s.retained_rx),
        );
    } else if s.scenario == "retained" {
        // Some subscriber never got them all: say how many are missing, not nothing.
        row(
            "retained",
            format!("{} received, {} lost", s.retained_rx, s.lost),
        );
    }
    row(
        "connects",
        format!(
            "{} ({}/s), latency p50 {} p99 {}",
            s.connects,
            fmt_rate(s.connects_per_s),
            fmt_us(s.connect_p50_us),
            fmt_us(s.connect_p99_us)
        ),
    );
    for (k, v) in &s.connect_failures {
        row("connect failure", format!("{v} × {k}"));
    }
    for (k, v) in &s.errors {
        row("error", format!("{v} × {k}"));
    }
    if s.broker_rss_before_kb.is_some() {
        row(
            "broker RSS",
            format!(
                "{} → {} KiB, {} per connection",
                s.broker_rss_before_kb.unwrap_or(0),
                s.broker_rss_after_kb.unwrap_or(0),
                opt(s.bytes_per_conn, " B", 0)
            ),
        );
        row(
            "broker CPU",
            format!(
                "{} per msg, {} per connect, {} of a core",
                opt(s.broker_cpu_us_per_msg, " µs", 2),
                opt(s.broker_cpu_us_per_conn, " µs", 1),
                opt(s.broker_cpu_pct, "%", 0)
            ),
        );
    }
    row(
        "generator CPU",
        format!(
            "{} per msg, {:.0}% of a core",
            opt(s.gen_cpu_us_per_msg, " µs", 3),
            s.gen_cpu_pct
        ),
    );
    if generator_saturated(s) {
        row(
            "WARNING",
            format!(
                "the generator was busy {:.0}% of its {} thread(s): it may be what limits \
                 these figures (add --threads)",
                s.gen_cpu_pct,
                s.threads.max(1)
            ),
        );
    }
    o
}

/// The retained scenario's publishing rates, (per publisher, all together) msg/s, from the
/// `sent` messages of `publishers` that published for `publish_ns` (None: they never all
/// finished, nothing measured: zeros). It printed `--rate` (1,000 by default) instead,
/// which its publishers never follow, and `sent_per_s` over `--secs`, which they do not
/// publish for.
pub fn retained_publish_rates(sent: u64, publishers: usize, publish_ns: Option<u64>) -> (f64, f64) {
    match publish_ns {
        Some(ns) if sent > 0 => {
            let total = sent as f64 / (ns.max(1) as f64 / 1e9);
            (total / publishers.max(1) as f64, total)
        }
        _ => (0.0, 0.0),
    }
}

/// True when the generator's threads were busy nearly all the time: then the broker may
/// have been waiting for the generator rather than the other way round.
pub fn generator_saturated(s: &Summary) -> bool {
    s.gen_cpu_pct > 90.0 * s.threads.max(1) as f64
}

/// The JSON line.
pub fn render_json(s: &Summary) -> String {
    serde_json::to_string(s).expect("summary serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Summary {
        let mut s = Summary {
            scenario: "p2p".into(),
            label: "mosquitto".into(),
            mqtt: 5,
            qos: 1,
            size: 64,
            rate: 1000.0,
            secs: 2.0,
            sent: 2000,
            expected: 2000,
            delivered: 1999,
            msgs_per_s: 999.5,
            p50_us: 42.0,
            p99_us: 12_345.0,
            lost: 1,
            gen_cpu_us_per_msg: Some(0.25),
            ..Summary::default()
        };
        s.errors.insert("closed by broker".into(), 1);
        s
    }

    #[test]
    fn messages_never_sent_are_named_in_the_table() {
        assert!(!render_table(&sample()).contains("unsent"));
        let s = Summary {
            unsent: 1234,
            ..sample()
        };
        assert!(render_table(&s).contains("unsent                 1234 due but never sent"));
        assert!(render_json(&s).contains("\"unsent\":1234"));
    }

    #[test]
    fn late_deliveries_are_named_in_the_table() {
        assert!(!render_table(&sample()).contains("\n  late "));
        let s = Summary {
            late: 3,
            ..sample()
        };
        assert!(render_table(&s).contains("late                   3 delivered over 65,536"));
        assert!(render_json(&s).contains("\"late\":3"));
    }

    #[test]
    fn json_shape() {
        let v: serde_json::Value = serde_json::from_str(&render_json(&sample())).unwrap();
        let o = v.as_object().unwrap();
        for k in [
            "msgs_per_s",
            "p50_us",
            "p99_us",
            "p999_us",
            "max_us",
            "lost",
            "dup",
            "reordered",
            "late",
            "connects_per_s",
            "bytes_per_conn",
            "broker_cpu_us_per_msg",
            "gen_cpu_us_per_msg",
            "delivered",
            "scenario",
            "label",
            "error",
        ] {
            assert!(o.contains_key(k), "missing {k}");
        }
        assert_eq!(o["delivered"], 1999);
        assert_eq!(o["lost"], 1);
        assert!(o["bytes_per_conn"].is_null());
        assert!(o["error"].is_null(), "a run that measured");
        assert_eq!(o["gen_cpu_us_per_msg"], 0.25);
        assert!(!render_json(&sample()).contains('\n'), "one line");
    }

    #[test]
    fn table_mentions_the_essentials() {
        let t = render_table(&sample());
        assert!(t.contains("== p2p [mosquitto]: MQTT 5, QoS 1, 64 B"));
        assert!(t.contains("1999 of 2000 expected"));
        assert!(t.contains("p99 12.3 ms"));
        assert!(t.contains("lost / dup / reordered 1 / 0 / 0"));
        assert!(t.contains("1 × closed by broker"));
        assert!(t.contains("0.250 µs per msg"));
        assert!(!t.contains("broker RSS"), "no broker pid, no broker rows");
        assert!(!t.contains("WARNING"), "an idle generator is not saturated");
    }

    #[test]
    fn a_shared_group_counts_reordering_within_a_member() {
        let mut s = sample();
        s.shared_group = 3;
        let t = render_table(&s);
        assert!(t.contains("lost / dup / reordered within a member 1 / 0 / 0"));
        assert!(render_json(&s).contains("\"shared_group\":3"));
    }

    #[test]
    fn a_saturated_generator_is_flagged() {
        let mut s = sample();
        s.threads = 2;
        s.gen_cpu_pct = 150.0;
        assert!(!render_table(&s).contains("WARNING"), "75% of two threads");
        s.gen_cpu_pct = 195.0;
        assert!(render_table(&s).contains("busy 195% of its 2 thread(s)"));
    }

    #[test]
    fn a_retained_fetch_that_lost_messages_says_so() {
        let s = Summary {
            scenario: "retained".into(),
            retained_rx: 1064,
            lost: 3936,
            ..Summary::default()
        };
        assert!(render_table(&s).contains("retained               1064 received, 3936 lost"));
        let done = Summary {
            retained_ms: Some(6.1),
            retained_rx: 5000,
            ..s
        };
        assert!(render_table(&done).contains("5000 received, all in 6.1 ms"));
    }

    #[test]
    fn the_retained_scenario_reports_its_measured_publishing_rate() {
        // 2 publishers, 1,000 retained messages each, in 4 ms: 250k/s each, 500k/s in all.
        assert_eq!(
            retained_publish_rates(2000, 2, Some(4_000_000)),
            (250_000.0, 500_000.0)
        );
        assert_eq!(retained_publish_rates(2000, 2, None), (0.0, 0.0));
        assert_eq!(retained_publish_rates(0, 2, Some(0)), (0.0, 0.0));
        let s = Summary {
            scenario: "retained".into(),
            rate: 250_000.0,
            retained_ms: Some(3.0),
            retained_rx: 4000,
            ..Summary::default()
        };
        let t = render_table(&s);
        assert!(
            t.contains("published 250.0k/s per publisher (measured)"),
            "{t}"
        );
        assert!(!t.contains("rate "), "no offered rate: {t}");
        assert!(render_table(&sample()).contains("rate 1000/s per publisher"));
    }

    #[test]
    fn number_formats() {
        assert_eq!(fmt_rate(1_234_567.0), "1.23M");
        assert_eq!(fmt_rate(54_321.0), "54.3k");
        assert_eq!(fmt_rate(999.0), "999");
        assert_eq!(fmt_us(999.4), "999 µs");
        assert_eq!(fmt_us(25_000.0), "25.0 ms");
    }
}
