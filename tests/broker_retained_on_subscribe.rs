//! Retained messages sent on subscribe, raced by a live message on the same topic, against
//! the real broker (two shards). A subscription can be matched on its own shard before its
//! SUBACK, and the retained messages go out after it: a live message in that window used to
//! reach the subscriber first and then be followed by the retained copy, the same message
//! again or the one it replaced. For a device reading its configuration from a retained
//! topic, that left it with the old configuration.

mod common;

use common::*;

/// The SUBSCRIBE and a PUBLISH that replaces the topic's retained message leave together
/// (both connections on one shard, so that it usually reads them in one turn). Whatever the
/// order the broker took them in, the subscriber must not get the old message after the
/// new one, nor the new one twice: per publisher and topic the order holds [MQTT-4.6.0-6],
/// and the last thing it holds is the current value.
#[test]
fn retained_on_subscribe_is_never_older_than_a_live_message() {
    let broker = Broker::start();
    for round in 0..15 {
        let topic = unique("cfg");
        let (mut p, _) = broker.v5_on_shard(0, 0);
        p.publish(&topic, b"old", QoS::AtLeastOnce, true);
        let (mut s, _) = broker.v5_on_shard(0, 0);
        let packet_id = s.next_packet_id();
        let subscribe = Subscribe {
            packet_id,
            filters: vec![SubscribeFilter {
                filter: topic.as_str().into(),
                options: SubscriptionOptions::qos(QoS::AtLeastOnce),
            }],
            ..Subscribe::default()
        };
        let mut new = Publish::new(topic.as_str(), b"new".to_vec());
        new.retain = true;
        s.send(&Packet::Subscribe(subscribe));
        p.send(&Packet::Publish(new));
        let mut got = Vec::new();
        loop {
            match s.recv(QUIET) {
                Recv::Packet(Packet::Publish(m)) => {
                    s.ack(&m);
                    got.push(String::from_utf8_lossy(&m.payload).into_owned());
                }
                Recv::Packet(Packet::SubAck(_)) => {}
                Recv::Timeout => break,
                other => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(
            got.last().map(String::as_str),
            Some("new"),
            "round {round}: the subscriber ended with {got:?}"
        );
        assert!(
            got.iter().filter(|m| *m == "new").count() == 1,
            "round {round}: the new message twice: {got:?}"
        );
        p.publish(&topic, b"", QoS::AtLeastOnce, true);
    }
}
