//! Test harness for the integration tests: starts the real `shardmq` binary on port 0 with
//! two shards, and drives it with a small blocking MQTT client built on `std::net` and the
//! crate's own codec (encode what we send, decode what we get, and raw bytes where a test
//! checks the wire byte for byte).
//!
//! Every test file includes this module with `mod common;`; not every file uses every
//! helper.
#![allow(dead_code)]

mod abuse;
mod broker;
mod client;
mod tls;
mod ws;

#[allow(unused_imports)] // only the files that send bad input use it
pub use abuse::*;
pub use broker::*;
pub use client::*;
#[allow(unused_imports)] // only the TLS test files use it
pub use tls::*;
pub use ws::*;

use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use shardmq::codec::{
    ConnAck, Connect, Disconnect, Packet, Protocol, PubResponse, Publish, QoS, ReasonCode,
    RetainHandling, SubAck, Subscribe, SubscribeFilter, SubscriptionOptions, UnsubAck, Unsubscribe,
    Will, WillProperties,
};

/// How long a test waits for a packet it expects.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long a test waits to be sure that nothing arrives.
pub const QUIET: Duration = Duration::from_millis(300);

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A process-unique suffix for client ids, topics and temp files.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

// ------------------------------------------------------------------------------------------
// Packet builders
// ------------------------------------------------------------------------------------------

/// A CONNECT whose session outlives the connection: MQTT 5 with Session Expiry 300 s and
/// Clean Start as given; 3.1.1 with Clean Session 0 every time (1 would end the session on
/// disconnect).
pub fn connect_persistent(protocol: Protocol, client_id: &str, clean_start: bool) -> Connect {
    match protocol {
        Protocol::V5 => connect_v5(client_id, clean_start, 300),
        _ => connect_v311(client_id, false),
    }
}

/// Publishes 16 MiB of QoS 0 to `topic` through `publisher`, then a PINGREQ round trip: a
/// subscriber to `topic` that reads nothing has its socket full and the broker's output for
/// it backed up (what is over `max_outgoing_bytes` is dropped).
pub fn back_up_output(publisher: &mut Client, topic: &str) {
    let bulk = vec![b'x'; 64 * 1024];
    for _ in 0..256 {
        publisher.publish(topic, &bulk, QoS::AtMostOnce, false);
    }
    publisher.ping();
}

/// A CONNECT for MQTT 5 with a Session Expiry Interval and Clean Start as given.
pub fn connect_v5(client_id: &str, clean_start: bool, session_expiry: u32) -> Connect {
    let mut c = Connect::new(Protocol::V5, client_id);
    c.clean_start = clean_start;
    c.properties.session_expiry_interval = Some(session_expiry);
    c
}

/// A CONNECT for MQTT 3.1.1 with Clean Session as given.
pub fn connect_v311(client_id: &str, clean_session: bool) -> Connect {
    let mut c = Connect::new(Protocol::V311, client_id);
    c.clean_start = clean_session;
    c
}

/// A Will on `topic`.
pub fn will(topic: &str, payload: &[u8], qos: QoS) -> Will {
    Will {
        topic: topic.into(),
        payload: Bytes::copy_from_slice(payload),
        qos,
        retain: false,
        properties: WillProperties::default(),
    }
}

/// A PUBLISH packet value.
pub fn publish(topic: &str, payload: &[u8], qos: QoS) -> Publish {
    Publish {
        qos,
        topic: topic.into(),
        payload: Bytes::copy_from_slice(payload),
        ..Publish::default()
    }
}

/// Subscription options with everything given.
pub fn sub_opts(
    qos: QoS,
    no_local: bool,
    retain_as_published: bool,
    retain_handling: RetainHandling,
) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        no_local,
        retain_as_published,
        retain_handling,
    }
}

/// Encodes a packet for `protocol` (for byte-level tests).
pub fn encode(packet: &Packet, protocol: Protocol) -> Vec<u8> {
    let mut out = BytesMut::new();
    packet.encode(protocol, &mut out).expect("encoding");
    out.to_vec()
}
