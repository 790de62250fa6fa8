//! `$SYS` topics: the broker's counters, published as retained messages for operators.
//!
//! Every `sys_interval_secs`, shard 0 asks every shard for its counters over the mesh
//! (`StatsQuery`), sums the answers, and publishes them retained under `$SYS/broker/`, as
//! mosquitto does: `version`, `uptime`, `shards`, `clients/connected`,
//! `messages/received`, `messages/sent`, and every counter of [`Metrics`] under
//! `counters/<name>`. A subscriber to `$SYS/#` gets the latest values at once (retained)
//! and then, every interval, the values that changed (as mosquitto does): an idle broker
//! sends its dashboards `uptime` alone. `#` does not match them [MQTT-4.7.2-1]. Clients may not publish to
//! `$SYS` themselves (see [`is_sys_topic`]).

use std::sync::Arc;

use bytes::Bytes;

use super::mesh::MeshMsg;
use super::metrics::Metrics;
use super::Shard;
use crate::codec::{MqttStr, QoS};
use crate::session::Message;

/// A gathering of counters in progress (shard 0 only).
#[derive(Debug, Default)]
pub(super) struct SysState {
    /// When the broker started, on the shard's clock (the first tick).
    started_ms: Option<u64>,
    /// When the next gathering starts.
    next_ms: u64,
    /// Token of the gathering in progress, with the shards that answered and their sum.
    gathering: Option<(u64, usize, Metrics)>,
    /// The value last published under each name: unchanged ones are not sent again.
    published: ahash::AHashMap<String, String>,
}

/// True for `$SYS` and the topics below it: only the broker publishes there.
pub fn is_sys_topic(topic: &str) -> bool {
    topic == "$SYS" || topic.starts_with("$SYS/")
}

impl Shard {
    /// Timer: shard 0 starts a gathering when one is due.
    pub(super) fn sys_tick(&mut self, now_ms: u64) {
        let interval_secs = self.config.sys_interval_secs;
        if self.id != 0 || interval_secs == 0 || self.shutting_down {
            return;
        }
        let sys = &mut self.sys;
        sys.started_ms.get_or_insert(now_ms);
        if now_ms < sys.next_ms || sys.gathering.is_some() {
            return;
        }
        sys.next_ms = now_ms + interval_secs as u64 * 1000;
        let token = self.token();
        self.sys.gathering = Some((token, 0, Metrics::default()));
        for to in 0..self.shards {
            self.send(to, MeshMsg::StatsQuery { token });
        }
    }

    /// One shard's counters arrived; once all have, the sum is published.
    pub(super) fn on_stats(&mut self, token: u64, metrics: Metrics, now_ms: u64) {
        let Some((expected, answered, sum)) = &mut self.sys.gathering else {
            return;
        };
        if *expected != token {
            return;
        }
        sum.add(&metrics);
        *answered += 1;
        if *answered < self.shards {
            return;
        }
        let sum = *sum;
        self.sys.gathering = None;
        self.publish_sys(&sum, now_ms);
    }

    fn publish_sys(&mut self, sum: &Metrics, now_ms: u64) {
        let uptime_secs = now_ms.saturating_sub(self.sys.started_ms.unwrap_or(now_ms)) / 1000;
        let mut values = vec![
            (
                "version".to_string(),
                format!("shardmq {}", env!("CARGO_PKG_VERSION")),
            ),
            ("uptime".to_string(), format!("{uptime_secs} seconds")),
            ("shards".to_string(), self.shards.to_string()),
            (
                "clients/connected".to_string(),
                sum.clients_connected.to_string(),
            ),
            (
                "messages/received".to_string(),
                sum.publishes_received.to_string(),
            ),
            ("messages/sent".to_string(), sum.publishes_sent.to_string()),
        ];
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(sum) {
            for (name, value) in fields {
                values.push((format!("counters/{name}"), value.to_string()));
            }
        }
        for (name, value) in values {
            if self.sys.published.get(&name) == Some(&value) {
                continue; // still the retained value every subscriber got
            }
            self.sys.published.insert(name.clone(), value.clone());
            let message = Arc::new(Message {
                topic: MqttStr::from(format!("$SYS/broker/{name}")),
                payload: Bytes::from(value),
                qos: QoS::AtMostOnce,
                retain: true,
                properties: None,
                expires_at_ms: None,
            });
            self.publish_message(message, None, now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sys_and_below_is_reserved() {
        assert!(is_sys_topic("$SYS"));
        assert!(is_sys_topic("$SYS/broker/uptime"));
        assert!(!is_sys_topic("$SYSTEM"));
        assert!(!is_sys_topic("$sys/x"));
        assert!(!is_sys_topic("a/$SYS"));
    }
}
