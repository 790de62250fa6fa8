//! Every setting and every limit in one place.
//!
//! A TOML file (`--config`) and the command line fill one [`Config`]; every flag has a key.
//! Unknown keys and out-of-range values stop startup with a message that names the key.
//! Each limit documents its policy: what happens when it is hit, and which metric counts it.

use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

use crate::acl::AclRules;
use crate::auth::Credentials;

mod limits;
pub use limits::{Limits, MeshConfig, SlowConsumerPolicy};

/// A configuration problem, worded for the operator.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path given with --config.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key / wrong type.
    #[error("config file {path}: {message}")]
    Parse {
        /// The path given with --config.
        path: String,
        /// What the TOML parser said, naming the key.
        message: String,
    },
    /// A file named by `auth.password_file` or `auth.acl_file` could not be read or has a
    /// bad line.
    #[error("{key} {path}: {problem}")]
    AuthFile {
        /// The dotted key.
        key: &'static str,
        /// The file, as resolved.
        path: String,
        /// The OS error, or the line and what is wrong with it.
        problem: String,
    },
    /// A file named in `[tls]` could not be read or used.
    #[error("{key} {path}: {problem}")]
    TlsFile {
        /// The dotted key.
        key: &'static str,
        /// The file, as resolved.
        path: String,
        /// The OS error, or what is wrong with its contents.
        problem: String,
    },
    /// A value out of its allowed range.
    #[error("config key `{key}`: {problem}")]
    Invalid {
        /// The dotted key.
        key: &'static str,
        /// What is wrong and what is allowed.
        problem: String,
    },
}

/// The broker's whole configuration. Field names are the TOML keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`--bind`).
    pub bind: IpAddr,
    /// TCP port (`--port`); 0 picks a free port, logged at start.
    pub port: u16,
    /// Number of shards (`--shards`); 0 means one per available core.
    pub shards: usize,
    /// Listen backlog of each shard's socket.
    pub listen_backlog: u32,
    /// Microseconds a shard that went to sleep keeps gathering I/O before it wakes (io_uring
    /// min-wait with deferred task work): fewer wake-ups and system calls per message at
    /// moderate rates, for up to this much added latency per shard a message passes. 0 (the
    /// default) wakes at the first event.
    pub batch_window_us: u32,
    /// KiB each shard keeps for receiving (its io_uring buffer pool), all resident from
    /// startup; a power of two from 1,024 to 65,536. Absent: 2,048 where the
    /// kernel consumes the pool's buffers incrementally (6.12+), 8,192 before, where each
    /// receive takes a whole 16 KiB buffer until the shard's turn ends.
    pub receive_pool_kib: Option<u32>,
    /// Log filter (`--log`), in `tracing` env-filter syntax.
    pub log: String,
    /// Seconds between publications of the broker's counters under `$SYS/broker/`
    /// (retained); 0 publishes none.
    pub sys_interval_secs: u32,
    /// Limits and their policies.
    pub limits: Limits,
    /// Cross-shard mesh sizing.
    pub mesh: MeshConfig,
    /// Who may connect.
    pub auth: AuthConfig,
    /// Whether the plain-TCP listener (`bind`:`port`) runs; `false` with a `[tls]`
    /// section gives a TLS-only broker.
    pub listen_plain: bool,
    /// A TLS listener on `bind`:`tls.port` beside the plain one; absent: no TLS.
    pub tls: Option<TlsConfig>,
    /// An MQTT-over-WebSocket listener (`ws://`, MQTT 5.0 §6) on `bind`:`websocket.port`;
    /// absent: none.
    pub websocket: Option<WebSocketConfig>,
}

/// The WebSocket listeners (see [`crate::ws`]): browsers and web dashboards reach the
/// broker this way, `ws://` on `port` and, with `tls_port`, `wss://` (the `[tls]` section's
/// certificate): a page served over HTTPS may only open `wss://`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketConfig {
    /// TCP port of the `ws://` listener; 0 picks a free port, printed at start as
    /// `listening ws ADDR`.
    #[serde(default = "default_websocket_port")]
    pub port: u16,
    /// Whether the `ws://` listener runs; `false` (with `tls_port`) leaves only `wss://`.
    #[serde(default = "default_true")]
    pub listen_plain: bool,
    /// TCP port of a `wss://` listener (needs `[tls]`); 0 picks a free port, printed at
    /// start as `listening wss ADDR`. Absent: no `wss://`.
    #[serde(default)]
    pub tls_port: Option<u16>,
}

fn default_true() -> bool {
    true
}

impl WebSocketConfig {
    /// The `ws://` port, when that listener runs.
    pub fn plain_port(&self) -> Option<u16> {
        self.listen_plain.then_some(self.port)
    }
}

fn default_websocket_port() -> u16 {
    8083
}

/// The TLS listener (see [`crate::tls`]). Relative paths are taken from the config file's
/// folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// TCP port of the TLS listener; 0 picks a free port, printed at start as
    /// `listening tls ADDR`.
    #[serde(default = "default_tls_port")]
    pub port: u16,
    /// The server's certificate chain, PEM, leaf first.
    pub cert_file: PathBuf,
    /// The server's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// Certificate authorities, PEM: when set, every client must present a certificate
    /// that chains to one of them (mutual TLS), else the handshake fails.
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: the Common Name of a TLS client's certificate is its user
    /// name (for `auth.acl_file` rules and `%u`), and the password file is not consulted
    /// for it, as mosquitto's option of the same name. A certificate without a CN is
    /// refused: CONNACK 0x87 (3.1.1: 0x05), counted in `auth_failures`.
    #[serde(default)]
    pub use_identity_as_username: bool,
    /// The rustls configuration built from the files by [`Config::load_tls_files`].
    #[serde(skip)]
    pub server: Option<Arc<rustls::ServerConfig>>,
}

fn default_tls_port() -> u16 {
    8883
}

/// Who may connect (see [`crate::auth`] for the file format and the reason codes).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Clients without a user name are let in. Refused: CONNACK 0x87 Not authorized
    /// (3.1.1: 0x05). Metric: `auth_failures`.
    pub allow_anonymous: bool,
    /// mosquitto_passwd file of users and password hashes; a relative path is taken from
    /// the config file's folder. A client that sends a user name must then give its
    /// password, else CONNACK 0x86 (3.1.1: 0x04). Metric: `auth_failures`.
    pub password_file: Option<PathBuf>,
    /// mosquitto ACL file: which topics each client may publish to and subscribe to
    /// ([`crate::acl`]); a relative path is taken from the config file's folder. Without it
    /// every client may use every topic. Refused: PUBACK / PUBREC / SUBACK 0x87 (3.1.1:
    /// dropped / 0x80). Metric: `acl_denials`.
    pub acl_file: Option<PathBuf>,
    /// The password file's users, read at start by [`Config::load_auth_files`].
    #[serde(skip)]
    pub credentials: Option<Arc<Credentials>>,
    /// The ACL file's rules, read at start by [`Config::load_auth_files`].
    #[serde(skip)]
    pub acl: Option<Arc<AclRules>>,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            allow_anonymous: true,
            password_file: None,
            acl_file: None,
            credentials: None,
            acl: None,
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 1883,
            shards: 0,
            listen_backlog: 4096,
            batch_window_us: 0,
            receive_pool_kib: None,
            log: "info".to_string(),
            sys_interval_secs: 10,
            limits: Limits::default(),
            mesh: MeshConfig::default(),
            auth: AuthConfig::default(),
            listen_plain: true,
            tls: None,
            websocket: None,
        }
    }
}

/// Most shards one broker runs: interest masks are 64-bit.
pub const MAX_SHARDS: usize = 64;

impl Config {
    /// Reads and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Config::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })?;
        let tls_files = config.tls.as_mut().map(|t| {
            [
                Some(&mut t.cert_file),
                Some(&mut t.key_file),
                t.client_ca_file.as_mut(),
            ]
        });
        for file in [
            config.auth.password_file.as_mut(),
            config.auth.acl_file.as_mut(),
        ]
        .into_iter()
        .chain(tls_files.into_iter().flatten())
        .flatten()
        {
            if let (true, Some(dir)) = (file.is_relative(), path.parent()) {
                *file = dir.join(&*file);
            }
        }
        Ok(config)
    }

    /// Reads `auth.password_file` and `auth.acl_file` (when set) into `auth.credentials`
    /// and `auth.acl`. Called once at start, after the file and flags are merged; a missing
    /// file or a bad line stops startup.
    pub fn load_auth_files(&mut self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, path: &Path, problem: String| ConfigError::AuthFile {
            key,
            path: path.display().to_string(),
            problem,
        };
        let read = |key, path: &Path| {
            std::fs::read_to_string(path).map_err(|e| bad(key, path, e.to_string()))
        };
        if let Some(path) = &self.auth.password_file {
            let key = "auth.password_file";
            let credentials =
                Credentials::parse(&read(key, path)?).map_err(|e| bad(key, path, e.to_string()))?;
            if credentials.is_empty() {
                tracing::warn!(file = %path.display(), "auth.password_file lists no users");
            }
            self.auth.credentials = Some(Arc::new(credentials));
        }
        if let Some(path) = &self.auth.acl_file {
            let key = "auth.acl_file";
            let rules =
                AclRules::parse(&read(key, path)?).map_err(|e| bad(key, path, e.to_string()))?;
            self.auth.acl = Some(Arc::new(rules));
        }
        Ok(())
    }

    /// Reads the files of `[tls]` (when present) into `tls.server`. Called once at start;
    /// a missing file, bad PEM or a key that does not fit the certificate stops startup.
    pub fn load_tls_files(&mut self) -> Result<(), ConfigError> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(());
        };
        const KEYS: [&str; 3] = ["tls.cert_file", "tls.key_file", "tls.client_ca_file"];
        let paths = [
            tls.cert_file.clone(),
            tls.key_file.clone(),
            tls.client_ca_file.clone().unwrap_or_default(),
        ];
        let bad = |which: usize, problem: String| ConfigError::TlsFile {
            key: KEYS[which],
            path: paths[which].display().to_string(),
            problem,
        };
        let read =
            |which: usize| std::fs::read(&paths[which]).map_err(|e| bad(which, e.to_string()));
        let chain = read(0)?;
        let key = read(1)?;
        let client_ca = match tls.client_ca_file {
            Some(_) => Some(read(2)?),
            None => None,
        };
        let server = crate::tls::server_config(&chain, &key, client_ca.as_deref())
            .map_err(|(which, e)| bad(which, e.to_string()))?;
        tls.server = Some(server);
        Ok(())
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: String::new(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every range; called after file and flags are merged.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(key: &'static str, problem: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError::Invalid {
                key,
                problem: problem.into(),
            })
        }
        let l = &self.limits;
        if !self.listen_plain && self.tls.is_none() && self.websocket.is_none() {
            return bad(
                "listen_plain",
                "false needs a [tls] or [websocket] section: the broker would listen on no port",
            );
        }
        if let Some(ws) = &self.websocket {
            if ws.tls_port.is_some() && self.tls.is_none() {
                return bad(
                    "websocket.tls_port",
                    "needs a [tls] section: wss:// uses its certificate and key",
                );
            }
            if !ws.listen_plain && ws.tls_port.is_none() {
                return bad(
                    "websocket.listen_plain",
                    "false needs websocket.tls_port: the [websocket] section would listen on no port",
                );
            }
            let taken = [
                ("port", self.listen_plain.then_some(self.port)),
                ("tls.port", self.tls.as_ref().map(|t| t.port)),
                ("websocket.port", ws.plain_port()),
            ];
            for (key, port) in [
                ("websocket.port", ws.plain_port()),
                ("websocket.tls_port", ws.tls_port),
            ] {
                let Some(port) = port.filter(|&p| p != 0) else {
                    continue;
                };
                let clash = taken
                    .iter()
                    .find(|(other, p)| *other != key && *p == Some(port));
                if let Some((other, _)) = clash {
                    return bad(key, format!("{port} is also the port of `{other}`"));
                }
            }
        }
        if let Some(tls) = &self.tls {
            if tls.use_identity_as_username && tls.client_ca_file.is_none() {
                return bad(
                    "tls.use_identity_as_username",
                    "needs tls.client_ca_file: without client certificates there is no identity",
                );
            }
            if self.listen_plain && tls.port == self.port && tls.port != 0 {
                return bad(
                    "tls.port",
                    format!("{} is also the plain listener's `port`", tls.port),
                );
            }
        }
        if self.batch_window_us > 100_000 {
            return bad(
                "batch_window_us",
                format!("{} is more than 100000 (100 ms)", self.batch_window_us),
            );
        }
        if let Some(kib) = self.receive_pool_kib {
            if !kib.is_power_of_two() || !(1024..=65_536).contains(&kib) {
                return bad(
                    "receive_pool_kib",
                    format!("{kib} is not a power of two from 1024 to 65536"),
                );
            }
        }
        if self.sys_interval_secs > 86_400 {
            return bad(
                "sys_interval_secs",
                format!("{} is more than 86400 (a day)", self.sys_interval_secs),
            );
        }
        if self.shards > MAX_SHARDS {
            return bad(
                "shards",
                format!("{} is more than {MAX_SHARDS}", self.shards),
            );
        }
        if l.max_packet_bytes < 64 || l.max_packet_bytes > 268_435_460 {
            return bad(
                "limits.max_packet_bytes",
                "must be between 64 and 268435460",
            );
        }
        if l.max_inflight == 0 {
            return bad("limits.max_inflight", "must be at least 1");
        }
        if l.max_outgoing_bytes < 4096 {
            return bad("limits.max_outgoing_bytes", "must be at least 4096");
        }
        if l.max_topic_bytes == 0 || l.max_topic_bytes > 65535 {
            return bad("limits.max_topic_bytes", "must be between 1 and 65535");
        }
        if l.max_topic_levels == 0 {
            return bad("limits.max_topic_levels", "must be at least 1");
        }
        if l.connect_timeout_secs == 0 {
            return bad("limits.connect_timeout_secs", "must be at least 1");
        }
        if l.close_timeout_secs == 0 {
            return bad("limits.close_timeout_secs", "must be at least 1");
        }
        if self.mesh.channel_batches == 0 {
            return bad("mesh.channel_batches", "must be at least 1");
        }
        if self.mesh.channel_messages == 0 {
            return bad("mesh.channel_messages", "must be at least 1");
        }
        if self.mesh.outbox_high_water == 0 {
            return bad("mesh.outbox_high_water", "must be at least 1");
        }
        if !self.auth.allow_anonymous && self.auth.password_file.is_none() {
            return bad(
                "auth.allow_anonymous",
                "false needs auth.password_file: without it no client could connect",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
