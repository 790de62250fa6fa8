//! Messages from the broker to one client: the in-flight window and the queue behind it.
//!
//! The window is bounded by the client's Receive Maximum and the broker's `max_inflight`;
//! the queue by `max_queued_messages`. Both survive disconnection with the session, so
//! unacknowledged messages are sent again (DUP) on reconnect [MQTT-4.4.0-1].

use std::collections::VecDeque;

use super::message::Delivery;

/// Where an outgoing QoS 1/2 message is in its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflightState {
    /// PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    AwaitingAck,
    /// PUBREL sent; waiting for PUBCOMP.
    AwaitingComp,
    /// Sent on an earlier connection and not acknowledged, not yet sent again on this one:
    /// the client came back with a Receive Maximum smaller than what was in flight
    /// [MQTT-3.3.4-9]. It keeps its identifier [MQTT-4.4.0-1] and goes out (DUP) as the
    /// window frees, ahead of the queue.
    Unsent,
}

/// An unacknowledged outgoing message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inflight {
    /// Its packet identifier.
    pub packet_id: u16,
    /// What was sent.
    pub delivery: Delivery,
    /// Where the flow stands.
    pub state: InflightState,
    /// [`Outbound`]'s count of identifiers handed out when this one was: says whether the
    /// counter has come round since (see [`Outbound::next_packet_id`]).
    handed_out_at: u64,
}

/// Packet identifiers are 1..=65535.
const PACKET_IDS: u64 = u16::MAX as u64;

/// The outgoing side of a session.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outbound {
    next_packet_id: u16,
    /// Identifiers handed out so far (every candidate counts, taken ones included).
    handed_out: u64,
    /// Sent, not yet acknowledged; oldest first. Filled by [`Outbound::push_inflight`] only,
    /// so it is also in the order the identifiers were handed out.
    pub inflight: VecDeque<Inflight>,
    /// Waiting for a free slot in the window (or for the client to come back).
    pub queue: VecDeque<Delivery>,
    /// When the client last acknowledged a message, or when we began waiting for one (a
    /// send into an empty window, a connection attaching): tells slow from stalled. Counting
    /// from the last ack alone made a subscriber that had been quiet for a while, or had
    /// just connected, look stalled at its first burst, and its queue drop instead of its
    /// publishers slowing down.
    pub last_progress_ms: u64,
    /// Some entries of the window may be [`InflightState::Unsent`]: the window is searched
    /// for them before the queue moves (cleared when a search finds none).
    pub resend_pending: bool,
}

impl Outbound {
    /// An empty outbound state.
    pub const fn new() -> Outbound {
        Outbound {
            next_packet_id: 0,
            handed_out: 0,
            inflight: VecDeque::new(),
            queue: VecDeque::new(),
            last_progress_ms: 0,
            resend_pending: false,
        }
    }

    /// The oldest entry still to be sent again, and how many entries count against the
    /// window now (those sent on this connection); clears `resend_pending` when none is left.
    pub fn next_unsent(&mut self) -> Option<(usize, usize)> {
        if !self.resend_pending {
            return None;
        }
        let first = self
            .inflight
            .iter()
            .position(|f| f.state == InflightState::Unsent);
        let Some(first) = first else {
            self.resend_pending = false;
            return None;
        };
        let unsent = self
            .inflight
            .iter()
            .filter(|f| f.state == InflightState::Unsent)
            .count();
        Some((first, self.inflight.len() - unsent))
    }

    /// Allocates a packet identifier not in use by the window, in O(1) unless the counter
    /// has come round since the oldest message in flight was sent. Identifiers go out in
    /// order and the window keeps that order, so every one in use was handed out after the
    /// oldest; fewer than 65,535 handed out since then means none of them can repeat.
    /// (Scanning the window every time cost 2% of the broker at full speed with 64 in
    /// flight, and grows with `max_inflight`.)
    pub fn next_packet_id(&mut self) -> u16 {
        loop {
            self.next_packet_id = self.next_packet_id.wrapping_add(1);
            if self.next_packet_id == 0 {
                self.next_packet_id = 1;
            }
            self.handed_out += 1;
            let id = self.next_packet_id;
            let come_round = self
                .inflight
                .front()
                .is_some_and(|oldest| self.handed_out - oldest.handed_out_at >= PACKET_IDS);
            if !come_round || !self.inflight.iter().any(|f| f.packet_id == id) {
                return id;
            }
        }
    }

    /// Records a message sent under `packet_id`, the identifier [`Self::next_packet_id`]
    /// returned last.
    pub fn push_inflight(&mut self, packet_id: u16, delivery: Delivery) {
        debug_assert_eq!(packet_id, self.next_packet_id, "not the last identifier");
        self.inflight.push_back(Inflight {
            packet_id,
            delivery,
            state: InflightState::AwaitingAck,
            handed_out_at: self.handed_out,
        });
    }

    fn position(&self, packet_id: u16) -> Option<usize> {
        // Acknowledgements come back mostly in order: the front is the usual hit.
        match self.inflight.front() {
            Some(f) if f.packet_id == packet_id => Some(0),
            _ => self.inflight.iter().position(|f| f.packet_id == packet_id),
        }
    }

    /// PUBACK: ends a QoS 1 flow and hands back what was sent (None: unknown identifier),
    /// for the caller to release when it suits it (see [`super::message::Retired`]).
    pub fn on_puback(&mut self, packet_id: u16) -> Option<Delivery> {
        match self.position(packet_id) {
            Some(i) if self.inflight[i].state != InflightState::AwaitingComp => {
                self.inflight.remove(i).map(|f| f.delivery)
            }
            _ => None,
        }
    }

    /// PUBREC: the QoS 2 message arrived; PUBREL is to be sent. False if unknown.
    pub fn on_pubrec(&mut self, packet_id: u16) -> bool {
        match self.position(packet_id) {
            Some(i) => {
                self.inflight[i].state = InflightState::AwaitingComp;
                true
            }
            None => false,
        }
    }

    /// PUBREC with an error reason: the flow ends without PUBREL [MQTT-4.3.3-4... 5.0 §4.3.3].
    pub fn abandon(&mut self, packet_id: u16) {
        if let Some(i) = self.position(packet_id) {
            self.inflight.remove(i);
        }
    }

    /// PUBCOMP: ends a QoS 2 flow and hands back what was sent (None: unknown).
    pub fn on_pubcomp(&mut self, packet_id: u16) -> Option<Delivery> {
        match self.position(packet_id) {
            Some(i) if self.inflight[i].state == InflightState::AwaitingComp => {
                self.inflight.remove(i).map(|f| f.delivery)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::QoS;
    use crate::session::message::Message;
    use std::sync::Arc;

    fn delivery() -> Delivery {
        Delivery {
            message: Arc::new(Message {
                topic: "t".into(),
                payload: Default::default(),
                qos: QoS::ExactlyOnce,
                retain: false,
                properties: None,
                expires_at_ms: None,
            }),
            qos: QoS::ExactlyOnce,
            retain: false,
            subscription_ids: Vec::new(),
            share_group: None,
        }
    }

    #[test]
    fn packet_ids_skip_zero_and_ids_in_use() {
        let mut o = Outbound::default();
        assert_eq!(o.next_packet_id(), 1);
        assert_eq!(o.next_packet_id(), 2);
        o.push_inflight(2, delivery());
        // Round the counter: 3..=65535, then 1, and 2 is still in flight.
        for _ in 0..PACKET_IDS - 2 {
            o.next_packet_id();
        }
        assert_eq!(o.next_packet_id(), 1);
        assert_eq!(o.next_packet_id(), 3, "2 is still in flight");
        o.next_packet_id = u16::MAX;
        assert_eq!(o.next_packet_id(), 1);
    }

    /// The O(1) allocation against the plain scan, over random sends and acknowledgements
    /// (out of order, with messages left unacknowledged for several rounds of the counter).
    #[test]
    fn packet_ids_match_a_full_scan() {
        let mut o = Outbound::default();
        let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut skipped, mut previous) = (0u64, 0u16);
        for step in 0..1_000_000u32 {
            let r = next();
            if o.inflight.len() < 200 && r % 3 != 0 {
                // What the scan alone would hand out next.
                let mut expected = o.next_packet_id;
                loop {
                    expected = expected.wrapping_add(1).max(1);
                    if !o.inflight.iter().any(|f| f.packet_id == expected) {
                        break;
                    }
                }
                let id = o.next_packet_id();
                assert_eq!(id, expected, "step {step}");
                skipped += u64::from(id != previous.wrapping_add(1).max(1));
                previous = id;
                o.push_inflight(id, delivery());
            } else if !o.inflight.is_empty() {
                // The three oldest stay for several rounds of the counter; of the rest,
                // mostly the oldest, now and then one from the middle.
                let len = o.inflight.len();
                let i = if len <= 3 || (r >> 20) % 150_000 == 0 {
                    0
                } else if r % 7 == 0 {
                    3 + (r >> 8) as usize % (len - 3)
                } else {
                    3
                };
                let id = o.inflight[i].packet_id;
                assert!(o.on_puback(id).is_some());
            }
        }
        assert!(
            skipped > 10,
            "the counter came round onto ids in flight {skipped} times"
        );
    }

    #[test]
    fn qos2_flow() {
        let mut o = Outbound {
            next_packet_id: 6,
            ..Default::default()
        };
        let id = o.next_packet_id();
        o.push_inflight(id, delivery());
        assert!(
            o.on_pubcomp(7).is_none(),
            "PUBCOMP before PUBREC is not accepted"
        );
        assert!(o.on_pubrec(7));
        assert!(o.on_puback(7).is_none());
        assert!(o.on_pubcomp(7).is_some());
        assert!(o.inflight.is_empty());
    }
}
