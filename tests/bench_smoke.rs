//! Smoke test of the load generator against the real broker: a 2-second p2p run, plain,
//! over TLS, over WebSocket and over WebSocket over TLS, must deliver messages and lose
//! none. The same run against `shardmq-floor` (the forwarder that sets the CPU floor in
//! load-test reports) must too, at QoS 0 and 1, MQTT 3.1.1 and 5.0, and through a wildcard
//! filter. Builds nothing itself; cargo provides the binaries.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the child we started.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// How the generator reaches the broker.
#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Plain,
    Tls,
    Ws,
    Wss,
}

/// Starts `shardmq --port 0` and returns it with the port from its `listening` line; with
/// TLS or WebSocket, that listener too, and the port of its `listening tls` / `ws` line.
fn start_broker(transport: Transport) -> (Broker, u16) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shardmq"));
    cmd.args(["--bind", "127.0.0.1", "--port", "0", "--shards", "2"]);
    // One file per transport: the tests of this file run at once in one process.
    let name = match transport {
        Transport::Plain => "plain",
        Transport::Tls => "tls",
        Transport::Ws => "ws",
        Transport::Wss => "wss",
    };
    let config =
        std::env::temp_dir().join(format!("shardmq-bench-{name}-{}.toml", std::process::id()));
    let text = match transport {
        Transport::Plain => None,
        Transport::Tls => Some(format!(
            "[tls]\nport = 0\ncert_file = {:?}\nkey_file = {:?}\n",
            fixture("server.pem"),
            fixture("server.key")
        )),
        Transport::Ws => Some("[websocket]\nport = 0\n".to_string()),
        Transport::Wss => Some(format!(
            "[tls]\nport = 0\ncert_file = {:?}\nkey_file = {:?}\n\
             [websocket]\nlisten_plain = false\ntls_port = 0\n",
            fixture("server.pem"),
            fixture("server.key")
        )),
    };
    if let Some(text) = text {
        std::fs::write(&config, text).unwrap();
        cmd.arg("--config").arg(&config);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start shardmq");
    let stdout = child.stdout.take().unwrap();
    let broker = Broker(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Every line goes to the test; draining keeps the broker off a full pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("shardmq printed no `listening 127.0.0.1:PORT` line within 20 s");
    if transport != Transport::Plain {
        // The listener's own line (`listening tls ADDR`, `listening wss ADDR`...).
        let prefix = format!("listening {name} ");
        while !line.starts_with(&prefix) {
            line = rx
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_else(|_| panic!("a `{prefix}` line"));
        }
        line = line.replacen(&prefix, "listening ", 1);
        let _ = std::fs::remove_file(&config);
    }
    let port = line
        .strip_prefix("listening ")
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.trim().parse::<u16>().ok())
        .unwrap_or_else(|| panic!("unexpected first line from shardmq: {line:?}"));
    assert_ne!(port, 0);
    (broker, port)
}

/// Starts `shardmq-floor --port 0` and returns it with the port from its `listening` line.
fn start_floor() -> (Broker, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardmq-floor"))
        .args(["--bind", "127.0.0.1", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start shardmq-floor");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("a `listening` line");
    let floor = Broker(child);
    let port = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("unexpected first line from shardmq-floor: {line:?}"));
    (floor, port)
}

/// A short p2p QoS 1 run (over TLS the generator trusts the test CA).
fn p2p_run(transport: Transport) {
    let (broker, port) = start_broker(transport);
    let mut args = common_args(&broker, port, "1", "2");
    match transport {
        Transport::Plain => {}
        Transport::Tls => args.extend(["--tls-ca".to_string(), fixture("ca.pem")]),
        Transport::Ws => args.push("--ws".to_string()),
        Transport::Wss => args.extend(["--ws".to_string(), "--tls-ca".into(), fixture("ca.pem")]),
    }
    args.extend(["p2p", "--pairs", "4"].map(String::from));
    let summary = bench(&args);
    assert!(summary["msgs_per_s"].as_f64().unwrap() > 0.0);
    drop(broker);
}

/// The generator's options common to every run of this file.
fn common_args(broker: &Broker, port: u16, qos: &str, secs: &str) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--broker-pid",
        &broker.0.id().to_string(),
        "--quiet",
        "--json",
        "--secs",
        secs,
        "--qos",
        qos,
        "--rate",
        "500",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Runs the generator; asserts it delivered messages without loss, duplicates or errors and
/// returns its JSON summary.
fn bench(args: &[String]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_shardmq-bench"))
        .args(args)
        .output()
        .expect("run shardmq-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "shardmq-bench failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().expect("JSON line");
    let v: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    assert!(v["error"].is_null(), "{last}");
    let delivered = v["delivered"].as_u64().unwrap();
    assert!(delivered > 0, "nothing delivered: {last}");
    assert_eq!(v["lost"].as_u64(), Some(0), "{last}");
    assert_eq!(v["dup"].as_u64(), Some(0), "{last}");
    assert_eq!(v["errors"].as_object().map(|e| e.len()), Some(0), "{last}");
    assert_eq!(
        v["connect_failures"].as_object().map(|e| e.len()),
        Some(0),
        "{last}"
    );
    v
}

/// A run that cannot connect (nothing listens on the port) still ends its output with one
/// JSON object that names what failed, and exits non-zero.
#[test]
fn a_failed_setup_still_prints_a_json_summary() {
    // A port that was free a moment ago: connections to it are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_shardmq-bench"))
        .args([
            "--port",
            &port.to_string(),
            "--quiet",
            "--json",
            "--secs",
            "1",
        ])
        .args(["--setup-secs", "5", "p2p", "--pairs", "2"])
        .output()
        .expect("run shardmq-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    let last = stdout.lines().last().expect("a JSON line");
    let v: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    let error = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {last}"));
    assert!(
        error.contains("setup failed") && error.contains("refused"),
        "{last}"
    );
    assert_eq!(v["delivered"].as_u64(), Some(0), "{last}");
    assert_eq!(v["scenario"].as_str(), Some("p2p"), "{last}");
}

#[test]
fn p2p_two_seconds_delivers_without_loss() {
    p2p_run(Transport::Plain);
}

#[test]
fn p2p_over_tls_delivers_without_loss() {
    p2p_run(Transport::Tls);
}

#[test]
fn p2p_over_websocket_delivers_without_loss() {
    p2p_run(Transport::Ws);
}

#[test]
fn p2p_over_websocket_over_tls_delivers_without_loss() {
    p2p_run(Transport::Wss);
}

#[test]
fn the_floor_forwards_p2p_and_wildcard_fan_in_without_loss() {
    let (floor, port) = start_floor();
    for (mqtt, qos, scenario) in [
        ("5", "1", ["p2p", "--pairs", "4"]),
        ("3", "0", ["p2p", "--pairs", "4"]),
        // Fan-in subscribes to `.../in/+`: the floor's wildcard path.
        ("5", "1", ["fanin", "--pubs", "4"]),
    ] {
        let mut args = common_args(&floor, port, qos, "1");
        args.extend(["--mqtt".to_string(), mqtt.to_string()]);
        args.extend(scenario.map(String::from));
        let summary = bench(&args);
        // The floor's own CPU is what load-test reports quote: it must be measured.
        assert!(
            summary["broker_cpu_us_per_msg"].as_f64().is_some(),
            "{summary}"
        );
    }
    drop(floor);
}
