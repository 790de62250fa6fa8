//! The broker process: the real binary on port 0, its log, its stop.

use super::*;

/// A running broker, stopped (SIGTERM, then wait) on drop.
pub struct Broker {
    child: Option<Child>,
    /// The address printed on the `listening` line.
    pub addr: SocketAddr,
    /// The address printed on the `listening tls` line (configs with `[tls]`).
    pub tls_addr: Option<SocketAddr>,
    /// The address printed on the `listening ws` line (configs with `[websocket]`).
    pub ws_addr: Option<SocketAddr>,
    /// The address printed on the `listening wss` line (configs with `websocket.tls_port`).
    pub wss_addr: Option<SocketAddr>,
    config_path: Option<PathBuf>,
}

impl Broker {
    /// Starts the broker with two shards and default limits.
    pub fn start() -> Broker {
        Broker::start_with(None)
    }

    /// Starts the broker with two shards and `toml` as its configuration file.
    pub fn with_config(toml: &str) -> Broker {
        Broker::start_with(Some(toml))
    }

    /// Starts the broker with `shards` shards and `toml` as its configuration file.
    pub fn with_shards(shards: usize, toml: &str) -> Broker {
        Broker::start_sharded(shards, Some(toml))
    }

    fn start_with(toml: Option<&str>) -> Broker {
        Broker::start_sharded(2, toml)
    }

    fn start_sharded(shards: usize, toml: Option<&str>) -> Broker {
        let config_path = toml.map(|text| {
            let path = std::env::temp_dir().join(format!("{}.toml", unique("shardmq-test")));
            std::fs::write(&path, text).expect("writing the test config");
            path
        });
        let log = std::env::var("SHARDMQ_TEST_LOG").unwrap_or_else(|_| "warn".to_string());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shardmq"));
        let shards = shards.to_string();
        cmd.args([
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--shards",
            &shards,
            "--log",
            &log,
        ]);
        if let Some(p) = &config_path {
            cmd.arg("--config").arg(p);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("starting shardmq");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            // Every line reaches the test; the broker never blocks on a full pipe.
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if tx.send(std::mem::take(&mut line)).is_err() {
                    line.clear();
                }
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("shardmq did not print its listening line in time");
            }
        };
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                let status = child.wait();
                panic!("unexpected first stdout line {line:?} (exit: {status:?})")
            });
        // The lines after the first, in the order the broker prints them.
        // Which listeners the configuration asks for (the harness's tests write their keys
        // one per line, `[websocket]` last when it turns its plain listener off).
        let wanted = |section: &str| toml.is_some_and(|t| t.contains(section));
        let ws_section = toml
            .and_then(|t| t.split_once("[websocket]"))
            .map(|(_, w)| w);
        let plain_ws = ws_section.is_some_and(|w| !w.contains("listen_plain = false"));
        let next_addr = |wanted: bool, prefix: &str| {
            wanted.then(|| {
                let line = rx
                    .recv_timeout(Duration::from_secs(5))
                    .unwrap_or_else(|_| panic!("a `{prefix}` line"));
                line.trim()
                    .strip_prefix(prefix)
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| panic!("unexpected stdout line {line:?}"))
            })
        };
        let tls_addr = next_addr(wanted("[tls]"), "listening tls ");
        let ws_addr = next_addr(plain_ws, "listening ws ");
        let wss_addr = next_addr(wanted("tls_port"), "listening wss ");
        Broker {
            child: Some(child),
            addr,
            tls_addr,
            ws_addr,
            wss_addr,
            config_path,
        }
    }

    /// Process id of the broker.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal to the broker.
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid() as libc::pid_t, sig);
        }
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// A raw TCP client (no CONNECT sent yet).
    pub fn raw(&self) -> Client {
        Client::tcp(self.addr)
    }

    /// An MQTT 5 client, connected with clean start and `client_id`.
    pub fn v5(&self, client_id: &str) -> Client {
        let (c, ack) = Client::connect(self.addr, Connect::new(Protocol::V5, client_id));
        assert_eq!(ack.reason_code, ReasonCode::SUCCESS, "{ack:?}");
        c
    }

    /// An MQTT 3.1.1 client, connected with clean session and `client_id`.
    pub fn v311(&self, client_id: &str) -> Client {
        let (c, ack) = Client::connect(self.addr, Connect::new(Protocol::V311, client_id));
        assert_eq!(ack.reason_code, ReasonCode::SUCCESS, "{ack:?}");
        c
    }

    /// Connects with the given CONNECT and returns the client and its CONNACK.
    pub fn connect(&self, connect: Connect) -> (Client, ConnAck) {
        Client::connect(self.addr, connect)
    }

    /// An MQTT 5 client whose connection is served by `shard`.
    ///
    /// The shard is chosen by the kernel (SO_REUSEPORT hash), so this connects with an
    /// empty client id until the Assigned Client Identifier (`shardmq-<instance>-<shard>-<n>`)
    /// names the wanted shard. Returns the client and its assigned id.
    pub fn v5_on_shard(&self, shard: usize, session_expiry: u32) -> (Client, String) {
        let mut connect = Connect::new(Protocol::V5, "");
        connect.properties.session_expiry_interval = Some(session_expiry);
        self.on_shard(shard, &connect)
    }

    /// Like [`Broker::v5_on_shard`] with a CONNECT template (its client id must be empty;
    /// a Will is discarded on the connections that are not kept).
    pub fn on_shard(&self, shard: usize, template: &Connect) -> (Client, String) {
        assert!(template.client_id.is_empty() && template.protocol.is_v5());
        for _ in 0..200 {
            let (mut c, ack) = Client::connect(self.addr, template.clone());
            assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
            let id = ack
                .properties
                .assigned_client_identifier
                .expect("assigned client id")
                .to_string();
            if shard_of_assigned(&id) == Some(shard) {
                return (c, id);
            }
            // Clean up: normal disconnect with session expiry 0 ends the session.
            c.send(&Packet::Disconnect(Disconnect {
                reason_code: ReasonCode::SUCCESS,
                properties: shardmq::codec::DisconnectProperties {
                    session_expiry_interval: Some(0),
                    ..Default::default()
                },
            }));
        }
        panic!("no connection landed on shard {shard} in 200 tries");
    }
}

/// The shard named by an assigned client id `shardmq-<instance>-<shard>-<n>`.
pub fn shard_of_assigned(id: &str) -> Option<usize> {
    let mut parts = id.split('-');
    if parts.next()? != "shardmq" {
        return None;
    }
    parts.next()?;
    parts.next()?.parse().ok()
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // SAFETY: kill(2) on our own child.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        if let Some(p) = &self.config_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Starts the broker with `config` as its file and expects it to refuse: exit status 2,
/// nothing listening; returns what it printed on stderr.
#[track_caller]
pub fn refused_startup(config: &str) -> String {
    let path = std::env::temp_dir().join(format!("{}.toml", unique("shardmq-refused")));
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shardmq"))
        .args(["--port", "0", "--shards", "1", "--config"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "it must not listen: {:?}",
        out.stdout
    );
    stderr
}

/// Waits for `$SYS/broker/counters/NAME` of `broker` (configured with a short
/// `sys_interval_secs`) to reach at least `min`; returns the last value seen.
pub fn wait_counter(broker: &Broker, name: &str, min: u64) -> u64 {
    let mut c = broker.v5(&unique("sys"));
    c.sub(&format!("$SYS/broker/counters/{name}"), QoS::AtMostOnce);
    let deadline = Instant::now() + WAIT;
    loop {
        let p = c.recv_publish();
        let v: u64 = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
        if v >= min || Instant::now() > deadline {
            return v;
        }
    }
}

/// One client id reconnecting sixteen times through `connect` (any transport): each round
/// resumes the session (`session_present` from the second), publishes, subscribes and
/// receives; every other round the next connection takes over the open one, which gets
/// DISCONNECT 0x8E [MQTT-3.1.4-3]. Some connection must have moved to its session's shard
/// with its transport state (all sixteen on one shard: odds of 2^-15).
pub fn roam_between_shards(broker: &Broker, mut connect: impl FnMut(Connect) -> (Client, ConnAck)) {
    let id = unique("roamer");
    let mut watcher = broker.v5(&unique("watcher"));
    watcher.sub(&format!("roam/{id}/#"), QoS::AtLeastOnce);
    let mut previous: Option<Client> = None;
    for round in 0..16 {
        let (mut c, ack) = connect(connect_v5(&id, false, 300));
        assert_eq!(ack.reason_code, ReasonCode::SUCCESS, "round {round}");
        assert_eq!(ack.session_present, round > 0, "round {round}");
        if let Some(mut old) = previous.take() {
            old.expect_disconnect(ReasonCode::SESSION_TAKEN_OVER);
        }
        let topic = format!("roam/{id}/{round}");
        c.publish(&topic, b"hi", QoS::AtLeastOnce, false);
        let got = watcher.recv_publish();
        assert_eq!(got.topic.as_str(), topic);
        watcher.ack(&got);
        c.sub(&format!("back/{id}"), QoS::AtLeastOnce);
        watcher.publish(&format!("back/{id}"), b"reply", QoS::AtLeastOnce, false);
        let got = c.recv_publish();
        assert_eq!(&got.payload[..], b"reply", "round {round}");
        c.ack(&got);
        if round % 2 == 0 {
            previous = Some(c); // taken over while open
        } else {
            c.disconnect();
        }
    }
    assert!(
        wait_counter(broker, "handovers", 1) >= 1,
        "some connection moved shards"
    );
}
