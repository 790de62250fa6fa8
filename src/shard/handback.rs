//! A `$share` group's messages outlive the member they were given to: when a member's
//! session ends with some of them not acknowledged, each goes to another member of its
//! group (MQTT 5.0 §4.8.2: "If the Client's Session terminates before the Client
//! reconnects, the Server SHOULD send the Application Message to another Client that is
//! subscribed to the same Shared Subscription").

use super::mesh::GroupForward;
use super::publish::Placement;
use super::Shard;
use crate::session::{Delivery, InflightState, Session};

impl Shard {
    /// `session` has ended (its subscriptions are gone): its unacknowledged messages of
    /// shared groups go back to their groups. A QoS 2 message the client has already
    /// acknowledged with PUBREC is its own and stays with it; a QoS 0 one was never kept.
    pub(super) fn hand_back_shared(&mut self, session: &mut Session, now_ms: u64) {
        let Some(mut outbound) = session.outbound.take() else {
            return;
        };
        let unacknowledged = outbound
            .inflight
            .drain(..)
            .filter(|f| f.state != InflightState::AwaitingComp)
            .map(|f| f.delivery)
            .chain(outbound.queue.drain(..));
        let handed: Vec<Delivery> = unacknowledged.filter(|d| d.share_group.is_some()).collect();
        for delivery in handed {
            self.hand_back(delivery, now_ms);
        }
    }

    /// Gives `delivery` to another member of its group: one here that is connected, else
    /// one on another shard, else one here that is away (its session keeps it).
    fn hand_back(&mut self, delivery: Delivery, now_ms: u64) {
        let Some(group) = delivery.share_group.clone() else {
            return;
        };
        if delivery.message.is_expired(now_ms) {
            self.metrics.expired_drops += 1;
            return;
        }
        match self.place_in_group(&group.filter, &group.name, 0) {
            Placement::Member(t) => {
                self.metrics.shared_handed_back += 1;
                self.deliver_target(t, &delivery.message, now_ms);
            }
            Placement::Shard(s) => {
                self.metrics.shared_handed_back += 1;
                let forward = GroupForward {
                    filter: group.filter.clone(),
                    group: group.name.clone(),
                    visited: 1 << self.id,
                    rounds: 0,
                };
                self.forward(&delivery.message, 0, &[(s, forward)], true);
            }
            Placement::Nowhere => self.metrics.shared_undeliverable += 1,
        }
    }
}
