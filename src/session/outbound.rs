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
}

/// The outgoing side of a session.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outbound {
    next_packet_id: u16,
    /// Sent, not yet acknowledged; oldest first.
    pub inflight: VecDeque<Inflight>,
    /// Waiting for a free slot in the window (or for the client to come back).
    pub queue: VecDeque<Delivery>,
    /// When the client last acknowledged a message, or when we began waiting for one (a
    /// send into an empty window, a connection attaching): tells slow from stalled. Counting
    /// from the last ack alone made a subscriber that had been quiet for a while, or had
    /// just connected, look stalled at its first burst, and its queue drop instead of its
    /// publishers slowing down.
    pub last_progress_ms: u64,
}

impl Outbound {
    /// An empty outbound state.
    pub const fn new() -> Outbound {
        Outbound {
            next_packet_id: 0,
            inflight: VecDeque::new(),
            queue: VecDeque::new(),
            last_progress_ms: 0,
        }
    }

    /// Allocates a packet identifier not in use by the window.
    pub fn next_packet_id(&mut self) -> u16 {
        loop {
            self.next_packet_id = self.next_packet_id.wrapping_add(1);
            if self.next_packet_id == 0 {
                self.next_packet_id = 1;
            }
            let id = self.next_packet_id;
            if !self.inflight.iter().any(|f| f.packet_id == id) {
                return id;
            }
        }
    }

    fn position(&self, packet_id: u16) -> Option<usize> {
        // Acknowledgements come back mostly in order: the front is the usual hit.
        match self.inflight.front() {
            Some(f) if f.packet_id == packet_id => Some(0),
            _ => self.inflight.iter().position(|f| f.packet_id == packet_id),
        }
    }

    /// PUBACK: ends a QoS 1 flow. False if the identifier is unknown.
    pub fn on_puback(&mut self, packet_id: u16) -> bool {
        match self.position(packet_id) {
            Some(i) if self.inflight[i].state == InflightState::AwaitingAck => {
                self.inflight.remove(i);
                true
            }
            _ => false,
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

    /// PUBCOMP: ends a QoS 2 flow. False if unknown.
    pub fn on_pubcomp(&mut self, packet_id: u16) -> bool {
        match self.position(packet_id) {
            Some(i) if self.inflight[i].state == InflightState::AwaitingComp => {
                self.inflight.remove(i);
                true
            }
            _ => false,
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
        }
    }

    #[test]
    fn packet_ids_skip_zero_and_ids_in_use() {
        let mut o = Outbound::default();
        let first = o.next_packet_id();
        assert_eq!(first, 1);
        o.inflight.push_back(Inflight {
            packet_id: 2,
            delivery: delivery(),
            state: InflightState::AwaitingAck,
        });
        assert_eq!(o.next_packet_id(), 3);
        o.next_packet_id = u16::MAX;
        assert_eq!(o.next_packet_id(), 1);
    }

    #[test]
    fn qos2_flow() {
        let mut o = Outbound::default();
        o.inflight.push_back(Inflight {
            packet_id: 7,
            delivery: delivery(),
            state: InflightState::AwaitingAck,
        });
        assert!(!o.on_pubcomp(7), "PUBCOMP before PUBREC is not accepted");
        assert!(o.on_pubrec(7));
        assert!(!o.on_puback(7));
        assert!(o.on_pubcomp(7));
        assert!(o.inflight.is_empty());
    }
}
