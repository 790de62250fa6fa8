//! Redelivery on reconnect under the new connection's limits, against the real broker (two
//! shards): the unacknowledged messages go out again in order, with DUP and their original
//! identifiers [MQTT-4.4.0-1], but never more at once than the client's new Receive Maximum
//! [MQTT-3.3.4-9], and one that no longer fits its Maximum Packet Size does not hold a
//! place in the window for good [MQTT-3.1.2-25].

mod common;

use common::*;
use std::time::Duration;

fn persistent(id: &str, clean_start: bool) -> Connect {
    connect_v5(id, clean_start, 300)
}

/// Six QoS 1 messages left unacknowledged; the client comes back with Receive Maximum 2.
/// The broker resends two, then one more per PUBACK, each with DUP and its old identifier,
/// in the original order, and the live messages follow them.
#[test]
fn resend_on_reconnect_honours_the_new_receive_maximum_mqtt_3_3_4_9() {
    let broker = Broker::start();
    let id = unique("rm-resend");
    let topic = unique("rm-resend/t");
    let (mut c, _) = broker.connect(persistent(&id, true));
    c.sub(&topic, QoS::AtLeastOnce);
    let mut p = broker.v5(&unique("pub"));
    for i in 0..6u8 {
        p.publish(&topic, &[i], QoS::AtLeastOnce, false);
    }
    let first: Vec<Publish> = (0..6).map(|_| c.expect_publish()).collect();
    assert_eq!(
        first.iter().map(|m| m.payload[0]).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5]
    );
    c.drop_connection();
    std::thread::sleep(Duration::from_millis(100));

    let mut again = persistent(&id, false);
    again.properties.receive_maximum = Some(2);
    let (mut c, ack) = broker.connect(again);
    assert!(ack.session_present);
    let mut resent = vec![c.expect_publish(), c.expect_publish()];
    c.expect_nothing_for(Duration::from_millis(300));
    p.publish(&topic, b"live", QoS::AtLeastOnce, false);
    for k in 0..6 {
        let m = resent[k].clone();
        assert!(m.dup, "a resent PUBLISH has DUP set [MQTT-3.3.1-1]");
        assert_eq!(m.packet_id, first[k].packet_id, "its original identifier");
        assert_eq!(m.payload[0], k as u8, "in the original order");
        c.send(&Packet::PubAck(PubResponse::new(m.packet_id)));
        if k + 2 < 6 {
            resent.push(c.expect_publish());
        }
    }
    let live = c.expect_publish();
    assert_eq!(&live.payload[..], b"live");
    assert!(!live.dup);
    c.send(&Packet::PubAck(PubResponse::new(live.packet_id)));
    c.expect_nothing();
}

/// A QoS 1 message left unacknowledged; the client comes back with a Maximum Packet Size it
/// no longer fits and a Receive Maximum of 1. It is dropped as if delivered, and the next
/// message still arrives (it used to wait behind the dropped one for good).
#[test]
fn unacknowledged_message_too_large_for_the_new_connection_is_dropped() {
    let broker = Broker::start();
    let id = unique("mps-resend");
    let topic = unique("mps-resend/t");
    let (mut c, _) = broker.connect(persistent(&id, true));
    c.sub(&topic, QoS::AtLeastOnce);
    let mut p = broker.v5(&unique("pub"));
    p.publish(&topic, &[7u8; 300], QoS::AtLeastOnce, false);
    assert_eq!(c.expect_publish().payload.len(), 300);
    c.drop_connection();
    std::thread::sleep(Duration::from_millis(100));

    let mut again = persistent(&id, false);
    again.properties.receive_maximum = Some(1);
    again.properties.maximum_packet_size = Some(100);
    let (mut c, ack) = broker.connect(again);
    assert!(ack.session_present);
    p.publish(&topic, b"small", QoS::AtLeastOnce, false);
    let got = c.recv_publish();
    assert_eq!(&got.payload[..], b"small");
    c.expect_nothing();
}
