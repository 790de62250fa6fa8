//! Time-driven work of one shard, swept coarsely instead of a timer per connection:
//! the CONNECT deadline and keep alive share a wheel of one-second slots (8 bytes per
//! connection); delayed Wills and session expiry use an ordered map (they are rare).

use std::collections::BTreeMap;

use super::slab::Key;
use super::Shard;
use crate::codec::ReasonCode;

/// Slots of the keep-alive wheel (seconds). Deadlines further out are re-checked each turn.
const WHEEL_SLOTS: u64 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// Publish the Will of a session whose client did not come back in time.
    WillDelay(Key, u64),
    /// End a session whose client did not come back in time.
    SessionExpiry(Key, u64),
}

/// The shard's timers.
#[derive(Debug)]
pub(super) struct Timers {
    wheel: Vec<Vec<Key>>,
    /// Next wheel second to sweep.
    wheel_second: Option<u64>,
    events: BTreeMap<(u64, u64), Event>,
    sequence: u64,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            wheel: (0..WHEEL_SLOTS).map(|_| Vec::new()).collect(),
            wheel_second: None,
            events: BTreeMap::new(),
            sequence: 0,
        }
    }
}

impl Timers {
    fn add(&mut self, at_ms: u64, event: Event) {
        self.sequence += 1;
        self.events.insert((at_ms, self.sequence), event);
    }

    pub(super) fn will_delay(&mut self, session: Key, generation: u64, at_ms: u64) {
        self.add(at_ms, Event::WillDelay(session, generation));
    }

    pub(super) fn session_expiry(&mut self, session: Key, generation: u64, at_ms: u64) {
        self.add(at_ms, Event::SessionExpiry(session, generation));
    }

    /// Files `conn` under the second of `deadline_ms`; returns that second, which the
    /// connection records so that older entries for it are recognised as stale.
    fn place(&mut self, conn: Key, deadline_ms: u64, now_ms: u64) -> u64 {
        let now_s = now_ms / 1000;
        let second = (deadline_ms / 1000).clamp(now_s + 1, now_s + WHEEL_SLOTS - 1);
        self.wheel[(second % WHEEL_SLOTS) as usize].push(conn);
        second
    }
}

/// When a connection that was last heard from at `last_ms` times out: 1.5 × keep alive
/// [MQTT-3.1.2-22 (3.1.1) / MQTT-3.1.2-22 (5.0)].
fn deadline_ms(last_ms: u64, keepalive_secs: u16) -> u64 {
    last_ms + keepalive_secs as u64 * 1500
}

impl Shard {
    pub(super) fn run_timers(&mut self, now_ms: u64) {
        self.sweep_keepalive(now_ms);
        while let Some((&(at, seq), &event)) = self.timers.events.first_key_value() {
            if at > now_ms {
                break;
            }
            self.timers.events.remove(&(at, seq));
            match event {
                Event::WillDelay(skey, generation) => {
                    let due = self.sessions.get(skey).is_some_and(|s| {
                        s.session.generation == generation && s.conn.is_none() && s.will_pending
                    });
                    if due {
                        self.publish_will(skey, now_ms);
                    }
                }
                Event::SessionExpiry(skey, generation) => {
                    let expired = self
                        .sessions
                        .get(skey)
                        .is_some_and(|s| s.session.generation == generation && s.conn.is_none());
                    if expired {
                        self.end_session(skey, now_ms);
                    }
                }
            }
        }
    }

    /// `limits.connect_timeout_secs` in ms.
    fn connect_timeout_ms(&self) -> u64 {
        self.config.limits.connect_timeout_secs as u64 * 1000
    }

    /// Watches a connection: the CONNECT deadline while it has not connected, then its
    /// keep alive (nothing when 0).
    pub(super) fn watch_connection(&mut self, conn: Key, now_ms: u64) {
        let Some(c) = self.conns.get(conn) else {
            return;
        };
        let deadline = match c.state {
            super::ConnState::AwaitingConnect => c.last_packet_ms + self.connect_timeout_ms(),
            super::ConnState::Closing => return,
            _ if c.keepalive_secs == 0 => return,
            _ => deadline_ms(c.last_packet_ms, c.keepalive_secs),
        };
        let second = self.timers.place(conn, deadline, now_ms);
        if let Some(c) = self.conns.get_mut(conn) {
            c.wheel_second = second;
        }
    }

    fn sweep_keepalive(&mut self, now_ms: u64) {
        let now_s = now_ms / 1000;
        let start = self.timers.wheel_second.unwrap_or(now_s);
        // After a long stall, one pass over the whole wheel is enough.
        let start = start.max(now_s.saturating_sub(WHEEL_SLOTS - 1));
        for second in start..=now_s {
            let slot = (second % WHEEL_SLOTS) as usize;
            let due = std::mem::take(&mut self.timers.wheel[slot]);
            for conn in due {
                let Some(c) = self.conns.get(conn) else {
                    continue;
                };
                if c.wheel_second != second || c.is_closing() {
                    continue; // Re-filed since, or finishing anyway.
                }
                match c.state {
                    super::ConnState::AwaitingConnect => {
                        if c.last_packet_ms + self.connect_timeout_ms() <= now_ms {
                            self.close(conn, None);
                            continue;
                        }
                    }
                    _ if c.keepalive_secs == 0 => continue,
                    // Not read by the broker meanwhile (backpressure, or waiting at the
                    // CONNECT or SUBACK barrier for other shards): checked again once it is.
                    _ if c.input_paused || c.blocked => {}
                    _ => {
                        if deadline_ms(c.last_packet_ms, c.keepalive_secs) <= now_ms {
                            self.metrics.keepalive_timeouts += 1;
                            self.close(conn, Some(ReasonCode::KEEP_ALIVE_TIMEOUT));
                            continue;
                        }
                    }
                }
                self.watch_connection(conn, now_ms);
            }
        }
        self.timers.wheel_second = Some(now_s + 1);
    }
}
