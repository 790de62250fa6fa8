//! Sessions against the real broker (two shards): persistence, the offline queue, Session
//! Expiry, redelivery with DUP, takeover, and Wills.

mod common;

use common::*;
use std::time::Duration;

/// [MQTT-3.1.2-4/5 (3.1.1)] / Session Expiry (5.0 §3.1.2.11.2): a persistent session keeps
/// its subscriptions and queues QoS 1/2 messages while the client is away; on reconnect the
/// CONNACK has Session Present 1 [MQTT-3.2.2-2] and the queued messages arrive in order.
/// QoS 0 messages are not queued for an offline client.
#[test]
fn offline_queue_delivered_on_reconnect_mqtt_3_1_2_5() {
    let broker = Broker::start();
    for protocol in [Protocol::V311, Protocol::V5] {
        let id = unique("offline");
        let topic = unique("offline/t");
        let connect = |clean_start: bool| connect_persistent(protocol, &id, clean_start);
        let (mut c, ack) = broker.connect(connect(true));
        assert!(!ack.session_present);
        c.sub(&topic, QoS::ExactlyOnce);
        c.disconnect();
        let mut p = broker.v5(&unique("pub"));
        p.publish(&topic, b"q1-a", QoS::AtLeastOnce, false);
        p.publish(&topic, b"q0", QoS::AtMostOnce, false);
        p.publish(&topic, b"q2", QoS::ExactlyOnce, false);
        p.publish(&topic, b"q1-b", QoS::AtLeastOnce, false);
        let (mut c, ack) = broker.connect(connect(false));
        assert!(ack.session_present, "{protocol:?}");
        let got: Vec<(Vec<u8>, QoS)> = (0..3)
            .map(|_| {
                let m = c.recv_publish();
                (m.payload.to_vec(), m.qos)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (b"q1-a".to_vec(), QoS::AtLeastOnce),
                (b"q2".to_vec(), QoS::ExactlyOnce),
                (b"q1-b".to_vec(), QoS::AtLeastOnce)
            ]
        );
        c.expect_nothing();
        // The subscription is still there.
        p.publish(&topic, b"live", QoS::AtLeastOnce, false);
        assert_eq!(&c.recv_publish().payload[..], b"live");
    }
}

/// 5.0: Session Expiry Interval 0 (or absent) ends the session with the connection
/// [MQTT-3.1.2-... §3.1.2.11.2]: Session Present 0 afterwards and nothing was queued.
#[test]
fn session_expiry_zero_ends_with_connection() {
    let broker = Broker::start();
    let id = unique("exp0");
    let topic = unique("exp0/t");
    let (mut c, _) = broker.connect(connect_v5(&id, true, 0));
    c.sub(&topic, QoS::AtLeastOnce);
    c.disconnect();
    let mut p = broker.v5(&unique("pub"));
    p.publish(&topic, b"lost", QoS::AtLeastOnce, false);
    let (mut c, ack) = broker.connect(connect_v5(&id, false, 0));
    assert!(!ack.session_present);
    c.expect_nothing();
}

/// 5.0: the session is discarded once the Session Expiry Interval has passed
/// [MQTT-4.1.0-2 context].
#[test]
fn session_expires_after_interval() {
    let broker = Broker::start();
    let id = unique("exp1");
    let (mut c, _) = broker.connect(connect_v5(&id, true, 1));
    c.sub(&unique("exp1/t"), QoS::AtLeastOnce);
    c.disconnect();
    // Still there shortly after.
    let (c, ack) = broker.connect(connect_v5(&id, false, 1));
    assert!(ack.session_present);
    c.disconnect();
    std::thread::sleep(Duration::from_millis(1700));
    let (_c, ack) = broker.connect(connect_v5(&id, false, 1));
    assert!(!ack.session_present, "session should have expired");
}

/// 5.0 [MQTT-3.14.2-2]: DISCONNECT may not turn Session Expiry 0 into a non-zero value
/// (protocol error 0x82); lowering it to 0 on DISCONNECT ends the session.
#[test]
fn disconnect_session_expiry_rules_mqtt_3_14_2_2() {
    let broker = Broker::start();
    let id = unique("dexp");
    let (c, _) = broker.connect(connect_v5(&id, true, 0));
    let mut c = c;
    let mut d = Disconnect::default();
    d.properties.session_expiry_interval = Some(60);
    c.send(&Packet::Disconnect(d));
    c.expect_disconnect(ReasonCode::PROTOCOL_ERROR);

    let (mut c, _) = broker.connect(connect_v5(&id, true, 60));
    c.sub(&unique("dexp/t"), QoS::AtLeastOnce);
    c.disconnect_with(ReasonCode::SUCCESS, Some(0));
    let (_c, ack) = broker.connect(connect_v5(&id, false, 60));
    assert!(
        !ack.session_present,
        "expiry 0 on DISCONNECT ends the session"
    );
}

/// [MQTT-4.4.0-1]/[MQTT-3.3.1-1]: unacknowledged QoS 1 messages are sent again on
/// reconnect with DUP 1 and their original packet id; QoS 2 messages acknowledged with
/// PUBREC get their PUBREL again.
#[test]
fn redelivery_with_dup_on_reconnect_mqtt_4_4_0_1() {
    let broker = Broker::start();
    for protocol in [Protocol::V311, Protocol::V5] {
        let id = unique("dup");
        let topic = unique("dup/t");
        let connect = |clean_start: bool| connect_persistent(protocol, &id, clean_start);
        let (mut c, _) = broker.connect(connect(true));
        c.sub(&topic, QoS::ExactlyOnce);
        let mut p = broker.v311(&unique("pub"));
        p.publish(&topic, b"q1", QoS::AtLeastOnce, false);
        p.publish(&topic, b"q2", QoS::ExactlyOnce, false);
        let first = c.expect_publish();
        let second = c.expect_publish();
        assert!(!first.dup && !second.dup);
        // Acknowledge the QoS 2 message up to PUBREC only.
        c.send(&Packet::PubRec(PubResponse::new(second.packet_id)));
        c.wait_for("PUBREL", |x| matches!(x, Packet::PubRel(_)));
        c.drop_connection();
        std::thread::sleep(Duration::from_millis(100));

        let (mut c, ack) = broker.connect(connect(false));
        assert!(ack.session_present);
        let again = c.expect_publish();
        assert!(again.dup, "{protocol:?}: redelivery must set DUP");
        assert_eq!(again.packet_id, first.packet_id);
        assert_eq!(&again.payload[..], b"q1");
        match c.expect_packet() {
            Packet::PubRel(r) => assert_eq!(r.packet_id, second.packet_id),
            other => panic!("expected PUBREL again, got {other:?}"),
        }
        c.send(&Packet::PubAck(PubResponse::new(again.packet_id)));
        c.send(&Packet::PubComp(PubResponse::new(second.packet_id)));
        c.expect_nothing();
        c.disconnect();
        let (mut c, _) = broker.connect(connect(false));
        c.expect_nothing();
    }
}

/// [MQTT-4.3.3-10 (5.0)] across a reconnect: the broker remembers a QoS 2 packet id it
/// answered with PUBREC; the client's retransmission (DUP) after reconnecting is not
/// delivered again, and its PUBREL completes.
#[test]
fn inbound_qos2_state_survives_reconnect() {
    let broker = Broker::start();
    let topic = unique("in2");
    let mut sub = broker.v5(&unique("sub"));
    sub.sub(&topic, QoS::ExactlyOnce);
    let id = unique("in2-pub");
    let (mut c, _) = broker.connect(connect_v5(&id, true, 300));
    let mut p = publish(&topic, b"once", QoS::ExactlyOnce);
    p.packet_id = 3;
    c.send(&Packet::Publish(p.clone()));
    c.wait_for("PUBREC", |x| matches!(x, Packet::PubRec(_)));
    c.drop_connection();
    assert_eq!(&sub.recv_publish().payload[..], b"once");
    std::thread::sleep(Duration::from_millis(100));
    let (mut c, ack) = broker.connect(connect_v5(&id, false, 300));
    assert!(ack.session_present);
    p.dup = true;
    c.send(&Packet::Publish(p));
    c.wait_for(
        "PUBREC",
        |x| matches!(x, Packet::PubRec(a) if a.packet_id == 3),
    );
    c.send(&Packet::PubRel(PubResponse::new(3)));
    match c.wait_for("PUBCOMP", |x| matches!(x, Packet::PubComp(_))) {
        Packet::PubComp(a) => assert_eq!(a.reason_code, ReasonCode::SUCCESS),
        _ => unreachable!(),
    }
    sub.expect_nothing();
}

/// The offline queue is bounded by `max_queued_messages`: beyond it messages are dropped
/// (the oldest are kept, in order).
#[test]
fn offline_queue_bounded_by_max_queued_messages() {
    let broker = Broker::with_config("[limits]\nmax_queued_messages = 5\n");
    let id = unique("bound");
    let topic = unique("bound/t");
    let (mut c, _) = broker.connect(connect_v5(&id, true, 300));
    c.sub(&topic, QoS::AtLeastOnce);
    c.disconnect();
    let mut p = broker.v5(&unique("pub"));
    for i in 0..12u8 {
        p.publish(&topic, &[i], QoS::AtLeastOnce, false);
    }
    let (mut c, ack) = broker.connect(connect_v5(&id, false, 300));
    assert!(ack.session_present);
    let got: Vec<u8> = (0..5).map(|_| c.recv_publish().payload[0]).collect();
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    c.expect_nothing();
}

/// Takeover [MQTT-3.1.4-3]: a second connection with the same client id closes the first;
/// MQTT 5 sends DISCONNECT 0x8E first. With Clean Start 0 the session (subscriptions and
/// queued messages) moves to the new connection.
#[test]
fn takeover_disconnects_old_connection_mqtt_3_1_4_3() {
    let broker = Broker::start();
    let id = unique("take");
    let topic = unique("take/t");
    let (mut old, _) = broker.connect(connect_v5(&id, true, 300));
    old.sub(&topic, QoS::AtLeastOnce);
    let (mut new, ack) = broker.connect(connect_v5(&id, false, 300));
    assert!(ack.session_present);
    old.expect_disconnect(ReasonCode::SESSION_TAKEN_OVER);
    let mut p = broker.v5(&unique("pub"));
    p.publish(&topic, b"moved", QoS::AtLeastOnce, false);
    assert_eq!(&new.recv_publish().payload[..], b"moved");

    // 3.1.1: the old connection is just closed.
    let id = unique("take311");
    let (mut old, _) = broker.connect(connect_v311(&id, false));
    let (_new, ack) = broker.connect(connect_v311(&id, false));
    assert!(ack.session_present);
    assert!(old.expect_closed().is_empty());

    // Clean Start 1 on takeover: a fresh session.
    let id = unique("take-clean");
    let (mut old, _) = broker.connect(connect_v5(&id, true, 300));
    old.sub(&topic, QoS::AtLeastOnce);
    let (_new, ack) = broker.connect(connect_v5(&id, true, 300));
    assert!(!ack.session_present);
    old.expect_disconnect(ReasonCode::SESSION_TAKEN_OVER);
}

/// Takeover of a session that lasts only as long as its connection (5.0 Session Expiry 0,
/// §3.1.2.11.2; 3.1.1 Clean Session 1, [MQTT-3.1.2-6]): the takeover closes that connection,
/// so the session ends there. A new connection with Clean Start 0 gets Session Present 0
/// [MQTT-3.2.2-3], none of the old subscriptions, and the old Will goes out even with a delay.
#[test]
fn takeover_does_not_resume_a_session_without_expiry() {
    let broker = Broker::start();
    let topic = unique("take0/t");
    let will_topic = unique("take0/will");
    let mut watcher = broker.v5(&unique("watch"));
    watcher.sub(&will_topic, QoS::AtLeastOnce);
    let mut p = broker.v5(&unique("pub"));

    let id = unique("take0");
    let mut delayed = will(&will_topic, b"v5-ended", QoS::AtLeastOnce);
    delayed.properties.will_delay_interval = Some(60);
    let (mut old, _) = broker.connect(with_will(connect_v5(&id, true, 0), delayed));
    old.sub(&topic, QoS::AtLeastOnce);
    let (mut new, ack) = broker.connect(connect_v5(&id, false, 300));
    assert!(
        !ack.session_present,
        "a Session Expiry 0 session was resumed"
    );
    old.expect_disconnect(ReasonCode::SESSION_TAKEN_OVER);
    assert_eq!(&watcher.recv_publish().payload[..], b"v5-ended");
    p.publish(&topic, b"not for the new session", QoS::AtLeastOnce, false);
    new.expect_nothing();

    let id = unique("take311-clean");
    let (mut old, _) = broker.connect(connect_v311(&id, true));
    old.sub(&topic, QoS::AtLeastOnce);
    let (mut new, ack) = broker.connect(connect_v311(&id, false));
    assert!(
        !ack.session_present,
        "a Clean Session 3.1.1 session was resumed"
    );
    old.expect_closed();
    p.publish(&topic, b"not for the new session", QoS::AtLeastOnce, false);
    new.expect_nothing();
}

// ------------------------------------------------------------------------------------------
// Wills
// ------------------------------------------------------------------------------------------

fn with_will(mut c: Connect, w: Will) -> Connect {
    c.will = Some(w);
    c
}

/// [MQTT-3.1.2-8]: the Will is published when the network connection closes without
/// DISCONNECT (socket dropped), for 3.1.1 and 5.0.
#[test]
fn will_published_on_abnormal_close_mqtt_3_1_2_8() {
    let broker = Broker::start();
    for protocol in [Protocol::V311, Protocol::V5] {
        let topic = unique("will/t");
        let mut watcher = broker.v5(&unique("watch"));
        watcher.sub(&topic, QoS::AtLeastOnce);
        let (c, _) = broker.connect(with_will(
            Connect::new(protocol, unique("dies")),
            will(&topic, b"gone", QoS::AtLeastOnce),
        ));
        c.drop_connection();
        let got = watcher.recv_publish();
        assert_eq!(&got.payload[..], b"gone", "{protocol:?}");
        assert_eq!(got.qos, QoS::AtLeastOnce);
    }
}

/// [MQTT-3.1.2-10]/[MQTT-3.14.4-3]: a normal DISCONNECT (0x00) discards the Will.
#[test]
fn will_not_published_after_normal_disconnect_mqtt_3_1_2_10() {
    let broker = Broker::start();
    for protocol in [Protocol::V311, Protocol::V5] {
        let topic = unique("nowill/t");
        let mut watcher = broker.v5(&unique("watch"));
        watcher.sub(&topic, QoS::AtLeastOnce);
        let (c, _) = broker.connect(with_will(
            Connect::new(protocol, unique("polite")),
            will(&topic, b"gone", QoS::AtLeastOnce),
        ));
        c.disconnect();
        watcher.expect_nothing();
    }
}

/// 5.0 §3.14.2.1: DISCONNECT with reason 0x04 (Disconnect with Will Message) publishes the
/// Will.
#[test]
fn will_published_on_disconnect_0x04() {
    let broker = Broker::start();
    let topic = unique("will04/t");
    let mut watcher = broker.v5(&unique("watch"));
    watcher.sub(&topic, QoS::AtLeastOnce);
    let (c, _) = broker.connect(with_will(
        Connect::new(Protocol::V5, unique("w04")),
        will(&topic, b"asked", QoS::AtMostOnce),
    ));
    c.disconnect_with(ReasonCode::DISCONNECT_WITH_WILL_MESSAGE, None);
    assert_eq!(&watcher.recv_publish().payload[..], b"asked");
}

/// [MQTT-3.1.2-8]/keep alive [MQTT-3.1.2-24]: a client silent for 1.5 × keep alive is
/// disconnected and its Will is published.
#[test]
fn will_published_after_keepalive_timeout() {
    let broker = Broker::start();
    let topic = unique("willka/t");
    let mut watcher = broker.v311(&unique("watch"));
    watcher.sub(&topic, QoS::AtLeastOnce);
    let mut connect = with_will(
        Connect::new(Protocol::V311, unique("silent")),
        will(&topic, b"timeout", QoS::AtLeastOnce),
    );
    connect.keep_alive_secs = 1;
    let (_silent, _) = broker.connect(connect);
    let start = std::time::Instant::now();
    let got = watcher.recv_publish();
    assert_eq!(&got.payload[..], b"timeout");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(1000) && waited < Duration::from_millis(3500),
        "Will after {waited:?}, expected about 1.5 s"
    );
}

/// [MQTT-3.1.2-17 (5.0 Will Retain)]: a Will with Will Retain 1 is published as a retained
/// message.
#[test]
fn will_retain_is_stored_as_retained() {
    let broker = Broker::start();
    let topic = unique("willret/t");
    let mut w = will(&topic, b"last", QoS::AtLeastOnce);
    w.retain = true;
    let (c, _) = broker.connect(with_will(Connect::new(Protocol::V311, unique("wr")), w));
    c.drop_connection();
    std::thread::sleep(Duration::from_millis(200));
    let mut s = broker.v311(&unique("late"));
    s.sub(&topic, QoS::AtLeastOnce);
    let got = s.recv_publish();
    assert!(got.retain);
    assert_eq!(&got.payload[..], b"last");
}

/// 5.0 Will Delay Interval [MQTT-3.1.3-9]: the Will waits for the delay; a reconnect within
/// the delay cancels it; otherwise it is published after the delay. Will properties travel
/// with it.
#[test]
fn will_delay_interval_mqtt_3_1_3_9() {
    let broker = Broker::start();
    let topic = unique("wdelay/t");
    let mut watcher = broker.v5(&unique("watch"));
    watcher.sub(&topic, QoS::AtLeastOnce);

    // Reconnect within the delay: no Will.
    let id = unique("wd-back");
    let mut w = will(&topic, b"cancelled", QoS::AtLeastOnce);
    w.properties.will_delay_interval = Some(2);
    let (c, _) = broker.connect(with_will(connect_v5(&id, true, 60), w));
    c.drop_connection();
    std::thread::sleep(Duration::from_millis(300));
    let (_back, ack) = broker.connect(connect_v5(&id, false, 60));
    assert!(ack.session_present);

    // Stay away: the Will comes after about 1 s, not at once.
    let mut w = will(&topic, b"delayed", QoS::AtLeastOnce);
    w.properties.will_delay_interval = Some(1);
    w.properties.content_type = Some("text/plain".into());
    w.properties.user_properties = vec![("k".into(), "v".into())];
    let (c, _) = broker.connect(with_will(connect_v5(&unique("wd-gone"), true, 60), w));
    c.drop_connection();
    watcher.expect_nothing_for(Duration::from_millis(600));
    let got = watcher.recv_publish();
    assert_eq!(&got.payload[..], b"delayed");
    assert_eq!(got.properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        got.properties.user_properties,
        vec![("k".into(), "v".into())]
    );
    watcher.expect_nothing_for(Duration::from_millis(2000));
}

/// [MQTT-3.1.3-9 context]: when the session ends before the Will Delay Interval (session
/// expiry 0), the Will is published at once.
#[test]
fn will_published_when_session_ends_before_delay() {
    let broker = Broker::start();
    let topic = unique("wend/t");
    let mut watcher = broker.v5(&unique("watch"));
    watcher.sub(&topic, QoS::AtLeastOnce);
    let mut w = will(&topic, b"now", QoS::AtLeastOnce);
    w.properties.will_delay_interval = Some(30);
    let (c, _) = broker.connect(with_will(connect_v5(&unique("wend"), true, 0), w));
    c.drop_connection();
    assert_eq!(&watcher.recv_publish().payload[..], b"now");
}

/// Takeover [MQTT-3.1.4-3] with a Will: the Will of the old connection is published (5.0:
/// unless the session continues and the Will has a delay).
#[test]
fn will_on_takeover_v311() {
    let broker = Broker::start();
    let topic = unique("wtake/t");
    let mut watcher = broker.v311(&unique("watch"));
    watcher.sub(&topic, QoS::AtLeastOnce);
    let id = unique("wtake");
    let (mut old, _) = broker.connect(with_will(
        connect_v311(&id, true),
        will(&topic, b"taken", QoS::AtLeastOnce),
    ));
    let (_new, _) = broker.connect(connect_v311(&id, true));
    old.expect_closed();
    assert_eq!(&watcher.recv_publish().payload[..], b"taken");
}

/// [MQTT-4.4.0-1] after a normal DISCONNECT: a QoS 1 message sent but not acknowledged
/// before the client disconnected is sent again (DUP, same packet id) ahead of the messages
/// queued while it was away.
#[test]
fn unacknowledged_before_disconnect_redelivered_before_queue() {
    let broker = Broker::start();
    for protocol in [Protocol::V311, Protocol::V5] {
        let id = unique("undis");
        let topic = unique("undis/t");
        let connect = |clean_start: bool| connect_persistent(protocol, &id, clean_start);
        let (mut c, _) = broker.connect(connect(true));
        c.sub(&topic, QoS::AtLeastOnce);
        let mut p = broker.v311(&unique("pub"));
        p.publish(&topic, b"0", QoS::AtLeastOnce, false);
        let first = c.expect_publish();
        c.disconnect();
        std::thread::sleep(Duration::from_millis(100));
        for i in 1..5u8 {
            p.publish(&topic, &[b'0' + i], QoS::AtLeastOnce, false);
        }
        let (mut c, ack) = broker.connect(connect(false));
        assert!(ack.session_present);
        let again = c.expect_publish();
        assert!(again.dup, "{protocol:?}: redelivery must set DUP");
        assert_eq!(again.packet_id, first.packet_id);
        assert_eq!(&again.payload[..], b"0");
        for i in 1..5u8 {
            let m = c.expect_publish();
            assert_eq!(&m.payload[..], &[b'0' + i]);
            c.ack(&m);
        }
        c.ack(&again);
        c.expect_nothing();
    }
}

/// [MQTT-4.4.0-1] / [MQTT-3.1.2-5]: QoS 1 messages routed to a session while its connection
/// is closing (DISCONNECT read, earlier output still being flushed to a client that does not
/// read) stay in the session and arrive on the next connection. They used to be dropped: the
/// packet id was taken but nothing was sent or kept (seen in paho interop as 1 of 5).
#[test]
fn qos1_arriving_while_connection_closes_is_kept() {
    let broker = Broker::start();
    for protocol in [Protocol::V311, Protocol::V5] {
        let id = unique("closing");
        let topic = unique("closing/t");
        let connect = |clean_start: bool| connect_persistent(protocol, &id, clean_start);
        let (mut c, _) = broker.connect(connect(true));
        c.sub(&topic, QoS::AtLeastOnce);
        let mut p = broker.v311(&unique("pub"));
        // The subscriber reads nothing: its socket and the broker's output back up.
        back_up_output(&mut p, &topic);
        c.send(&Packet::Disconnect(Disconnect::new(ReasonCode::SUCCESS)));
        std::thread::sleep(Duration::from_millis(200));
        for i in 0..5u8 {
            p.publish(&topic, &[b'0' + i], QoS::AtLeastOnce, false);
        }
        c.drop_connection();
        std::thread::sleep(Duration::from_millis(200));

        let (mut c, ack) = broker.connect(connect(false));
        assert!(ack.session_present);
        for i in 0..5u8 {
            let m = c.recv_publish();
            assert_eq!(m.qos, QoS::AtLeastOnce);
            assert_eq!(&m.payload[..], &[b'0' + i], "{protocol:?}: message {i}");
        }
        c.expect_nothing();
        c.disconnect();
    }
}
