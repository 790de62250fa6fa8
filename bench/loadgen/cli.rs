//! The command line: global options, one subcommand per scenario, and the checks on the
//! target address (loopback unless `--allow-remote`).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use clap::{Parser, Subcommand};

use super::plan::Shape;

/// MQTT 3.1.1 / 5.0 load generator on io_uring: throughput, latency, loss and CPU per
/// message of shardmq or any other broker (loopback unless --allow-remote).
#[derive(Debug, Parser)]
#[command(name = "shardmq-bench", version)]
pub struct Cli {
    /// Broker host (loopback only unless --allow-remote).
    #[arg(long, default_value = "127.0.0.1", global = true)]
    pub host: String,
    /// Broker port.
    #[arg(long, default_value_t = 1883, global = true)]
    pub port: u16,
    /// Permit a non-loopback --host.
    #[arg(long, global = true)]
    pub allow_remote: bool,
    /// Worker threads (one io_uring each, pinned to consecutive cores).
    #[arg(long, default_value_t = 1, global = true)]
    pub threads: usize,
    /// First core to pin workers to.
    #[arg(long, default_value_t = 0, global = true)]
    pub first_core: usize,
    /// Do not pin worker threads.
    #[arg(long, global = true)]
    pub no_pin: bool,
    /// MQTT version: 3 (3.1.1) or 5. Nothing else: 4 (3.1.1's protocol level) was taken
    /// and silently run as 3.1.1, so a typo or a guess could mislabel a report.
    #[arg(long, default_value_t = 5, global = true, value_parser = mqtt_version())]
    pub mqtt: u8,
    /// QoS of publishes and subscriptions.
    #[arg(long, default_value_t = 0, global = true, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Payload bytes (at least 20: publisher id, sequence number, timestamp).
    #[arg(long, default_value_t = 64, global = true)]
    pub size: usize,
    /// Publishing (or holding) time, seconds.
    #[arg(long, default_value_t = 10.0, global = true)]
    pub secs: f64,
    /// Messages per second per publisher (0: as fast as the broker accepts); for `conn` and
    /// `reconnect-storm`: connects per second (default: unlimited).
    #[arg(long, global = true)]
    pub rate: Option<f64>,
    /// QoS 1/2 publish window per publisher (capped by the broker's Receive Maximum).
    /// Only that: it used to cap the connects in flight as well, so a small window also
    /// slowed the connect phase and the connects/s it reports (see --connect-inflight).
    #[arg(long, default_value_t = 64, global = true)]
    pub inflight: usize,
    /// Connection attempts in flight (socket connect to CONNACK), all threads together,
    /// in every scenario (the connect phase; `conn`; `reconnect-storm`).
    #[arg(long, default_value_t = 64, global = true)]
    pub connect_inflight: usize,
    /// QoS 0 at --rate 0: a publisher pauses while this many bytes are unsent.
    #[arg(long, default_value_t = 65536, global = true)]
    pub max_unsent: usize,
    /// Receive buffer per socket, bytes (default: 65536, 1024 for idle connections).
    #[arg(long, global = true)]
    pub rbuf: Option<usize>,
    /// Broker process id: report its RSS and CPU.
    #[arg(long, global = true)]
    pub broker_pid: Option<u32>,
    /// Print the summary as one JSON object on the last stdout line.
    #[arg(long, global = true)]
    pub json: bool,
    /// Label copied into the summary (e.g. the broker's name).
    #[arg(long, default_value = "", global = true)]
    pub label: String,
    /// Source addresses 127.0.0.1..K for client sockets (0: one per 25,000 connections);
    /// an IPv4 loopback target only, ignored for others.
    #[arg(long, default_value_t = 0, global = true)]
    pub src_addrs: usize,
    /// MQTT keep alive, seconds.
    #[arg(long, default_value_t = 60, global = true)]
    pub keepalive: u16,
    /// User name sent in every CONNECT (for a broker with a password file).
    #[arg(long, global = true)]
    pub username: Option<String>,
    /// Password sent with --username.
    #[arg(long, global = true, requires = "username")]
    pub password: Option<String>,
    /// Connect with TLS, trusting the certificate authorities in this PEM file (the broker's
    /// TLS port goes in --port).
    #[arg(long, global = true)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Connect over WebSocket (`ws://`, subprotocol mqtt; the broker's WebSocket port goes
    /// in --port); with --tls-ca, over `wss://` (its `websocket.tls_port`).
    #[arg(long, global = true)]
    pub ws: bool,
    /// Client certificate chain (PEM) for mutual TLS, with --tls-key.
    #[arg(long, global = true, requires_all = ["tls_ca", "tls_key"])]
    pub tls_cert: Option<std::path::PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, global = true, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Longest wait for late deliveries after the window, seconds: the drain ends when
    /// every expected message is in or after this long; what has not arrived is `lost`.
    #[arg(long, default_value_t = 5.0, global = true)]
    pub drain_secs: f64,
    /// Longest wait for connecting and subscribing, seconds.
    #[arg(long, default_value_t = 60.0, global = true)]
    pub setup_secs: f64,
    /// Completion batching window, µs (default: 0 at a constant rate, 100 at --rate 0).
    /// Skipped for a turn after a receive filled its buffer.
    #[arg(long, global = true)]
    pub batch_us: Option<u32>,
    /// Round publishers' send times up to multiples of this many µs (0: exact), the way a
    /// generator on a millisecond timer wheel (tokio, Erlang) paces: what falls due within
    /// one tick leaves together. Latency is measured from the rounded time.
    #[arg(long, default_value_t = 0, global = true)]
    pub tick_us: u64,
    /// No progress lines on stderr.
    #[arg(long, global = true)]
    pub quiet: bool,
    /// Scenario.
    #[command(subcommand)]
    pub cmd: Scenario,
}

/// `--mqtt`: exactly the documented values, so clap's error names the flag and lists them.
fn mqtt_version() -> impl clap::builder::TypedValueParser<Value = u8> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["3", "5"])
        .map(|v| v.parse::<u8>().expect("a possible value is a number"))
}

/// Scenarios.
#[derive(Debug, Clone, Subcommand)]
pub enum Scenario {
    /// Open N idle connections, hold them for --secs.
    Conn {
        /// Connections.
        #[arg(long, default_value_t = 1000)]
        conns: usize,
        /// Each connection subscribes to a topic of its own (`.../dev/{i}/cmd`), as a device
        /// waiting for commands does: measures what a subscription adds per connection.
        #[arg(long)]
        subscribe: bool,
    },
    /// N publishers → 1 subscriber (or a $share group of K).
    Fanin {
        /// Publishers.
        #[arg(long, default_value_t = 8)]
        pubs: usize,
        /// Shared-subscription group size (0: one plain subscriber).
        #[arg(long, default_value_t = 0)]
        share: usize,
    },
    /// 1 publisher → N subscribers.
    Fanout {
        /// Subscribers.
        #[arg(long, default_value_t = 10)]
        subs: usize,
    },
    /// N publisher/subscriber pairs, one topic each.
    P2p {
        /// Pairs.
        #[arg(long, default_value_t = 10)]
        pairs: usize,
    },
    /// Publishers on distinct topics, subscribers with + and # filters.
    Wildcard {
        /// Subscribers.
        #[arg(long, default_value_t = 100)]
        subs: usize,
        /// Publishers.
        #[arg(long, default_value_t = 10)]
        pubs: usize,
    },
    /// Publish R retained topics, then subscribers fetch them with one wildcard.
    Retained {
        /// Retained topics.
        #[arg(long, default_value_t = 1000)]
        topics: usize,
        /// Late subscribers.
        #[arg(long, default_value_t = 1)]
        subs: usize,
    },
    /// N clients disconnecting and reconnecting for --secs.
    ReconnectStorm {
        /// Clients.
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// Time each connection stays up, ms.
        #[arg(long, default_value_t = 0)]
        hold_ms: u64,
    },
}

impl Scenario {
    /// The scenario's name in reports.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Scenario::Conn { .. } => "conn",
            Scenario::Fanin { .. } => "fanin",
            Scenario::Fanout { .. } => "fanout",
            Scenario::P2p { .. } => "p2p",
            Scenario::Wildcard { .. } => "wildcard",
            Scenario::Retained { .. } => "retained",
            Scenario::ReconnectStorm { .. } => "reconnect-storm",
        }
    }

    /// Who connects and what they subscribe to and publish.
    pub(super) fn shape(&self) -> Shape {
        match *self {
            Scenario::Conn { conns, subscribe } => Shape::Conn { conns, subscribe },
            Scenario::Fanin { pubs, share } => Shape::Fanin { pubs, share },
            Scenario::Fanout { subs } => Shape::Fanout { subs },
            Scenario::P2p { pairs } => Shape::P2p { pairs },
            Scenario::Wildcard { subs, pubs } => Shape::Wildcard { subs, pubs },
            Scenario::Retained { topics, subs } => Shape::Retained { topics, subs },
            Scenario::ReconnectStorm { clients, .. } => Shape::Storm { clients },
        }
    }
}

impl Cli {
    /// The in-flight window of a QoS 1/2 publisher (`--inflight`, 1..=65,535).
    pub fn publish_window(&self) -> u32 {
        self.inflight.clamp(1, 65_535) as u32
    }

    /// Connects in flight per worker thread (`--connect-inflight` shared by `threads`).
    pub fn connects_in_flight_per_thread(&self, threads: usize) -> usize {
        (self.connect_inflight / threads.max(1)).max(1)
    }
}

/// Resolves `--host`/`--port` and enforces the loopback rule.
pub fn resolve_target(host: &str, port: u16, allow_remote: bool) -> Result<SocketAddr, String> {
    let addr = if let Ok(ip) = host.parse::<IpAddr>() {
        SocketAddr::new(ip, port)
    } else {
        (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host} has no address"))?
    };
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(format!(
            "{host} ({}) is not a loopback address; pass --allow-remote to load it anyway",
            addr.ip()
        ));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only_by_default() {
        assert!(resolve_target("127.0.0.1", 1883, false).is_ok());
        assert!(resolve_target("127.0.0.9", 1883, false).is_ok());
        assert!(resolve_target("::1", 1883, false).is_ok());
        assert!(resolve_target("localhost", 1883, false).is_ok());
        let e = resolve_target("10.1.2.3", 1883, false).unwrap_err();
        assert!(e.contains("--allow-remote"));
        assert!(resolve_target("10.1.2.3", 1883, true).is_ok());
    }

    #[test]
    fn cli_parses_the_documented_example() {
        let cli = Cli::try_parse_from([
            "shardmq-bench",
            "--port",
            "1883",
            "fanin",
            "--pubs",
            "8",
            "--qos",
            "1",
            "--size",
            "64",
            "--rate",
            "5000",
            "--secs",
            "10",
            "--json",
        ])
        .unwrap();
        assert_eq!(cli.qos, 1);
        assert_eq!(cli.rate, Some(5000.0));
        assert!(cli.json);
        assert!(matches!(cli.cmd, Scenario::Fanin { pubs: 8, share: 0 }));
        assert!(Cli::try_parse_from(["shardmq-bench", "--qos", "3", "p2p"]).is_err());
    }

    #[test]
    fn the_publish_window_does_not_limit_connects() {
        let cli = Cli::try_parse_from(["shardmq-bench", "--inflight", "1", "p2p"]).unwrap();
        assert_eq!(cli.publish_window(), 1);
        assert_eq!(
            cli.connects_in_flight_per_thread(1),
            64,
            "default, not --inflight"
        );
        let cli = Cli::try_parse_from([
            "shardmq-bench",
            "--connect-inflight",
            "8",
            "--threads",
            "2",
            "conn",
        ])
        .unwrap();
        assert_eq!(
            cli.publish_window(),
            64,
            "--connect-inflight leaves the window"
        );
        assert_eq!(cli.connects_in_flight_per_thread(2), 4);
        assert_eq!(
            cli.connects_in_flight_per_thread(16),
            1,
            "at least one per thread"
        );
        let cli = Cli::try_parse_from(["shardmq-bench", "--inflight", "100000", "p2p"]).unwrap();
        assert_eq!(cli.publish_window(), 65_535);
    }

    #[test]
    fn mqtt_accepts_only_3_and_5() {
        for (arg, v) in [("3", 3), ("5", 5)] {
            let cli = Cli::try_parse_from(["shardmq-bench", "--mqtt", arg, "p2p"]).unwrap();
            assert_eq!(cli.mqtt, v);
        }
        assert_eq!(
            Cli::try_parse_from(["shardmq-bench", "p2p"]).unwrap().mqtt,
            5
        );
        for bad in ["4", "0", "6", "3.1.1", "v5"] {
            let e = Cli::try_parse_from(["shardmq-bench", "--mqtt", bad, "p2p"]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::InvalidValue, "{bad}");
            let text = e.to_string();
            assert!(
                text.contains("--mqtt") && text.contains("[possible values: 3, 5]"),
                "{text}"
            );
        }
    }
}
