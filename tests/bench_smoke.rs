//! Smoke test of the load generator against the real broker: a 2-second p2p run must deliver
//! messages and lose none. Builds nothing itself; cargo provides both binaries.

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

/// Starts `shardmq --port 0` and returns it with the port from its `listening` line.
fn start_broker() -> (Broker, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardmq"))
        .args(["--bind", "127.0.0.1", "--port", "0", "--shards", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start shardmq");
    let stdout = child.stdout.take().unwrap();
    let broker = Broker(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        // Keep draining so the broker never blocks on a full pipe.
        for _ in lines {}
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("shardmq printed no `listening 127.0.0.1:PORT` line within 20 s");
    let port = line
        .strip_prefix("listening ")
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.trim().parse::<u16>().ok())
        .unwrap_or_else(|| panic!("unexpected first line from shardmq: {line:?}"));
    assert_ne!(port, 0);
    (broker, port)
}

#[test]
fn p2p_two_seconds_delivers_without_loss() {
    let (broker, port) = start_broker();
    let out = Command::new(env!("CARGO_BIN_EXE_shardmq-bench"))
        .args([
            "--port",
            &port.to_string(),
            "--broker-pid",
            &broker.0.id().to_string(),
            "--quiet",
            "--json",
            "--secs",
            "2",
            "--qos",
            "1",
            "--rate",
            "500",
            "p2p",
            "--pairs",
            "4",
        ])
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
    let delivered = v["delivered"].as_u64().unwrap();
    assert!(delivered > 0, "nothing delivered: {last}");
    assert_eq!(v["lost"].as_u64(), Some(0), "{last}");
    assert_eq!(v["dup"].as_u64(), Some(0), "{last}");
    assert!(v["msgs_per_s"].as_f64().unwrap() > 0.0);
    drop(broker);
}
