//! The mesh's control lane against the real broker (two shards, or three): a shard under
//! delivery pressure leaves its peers' forwards unread (its publishers slow down), but
//! still takes the messages that other shards' clients wait for — interest changes and
//! their acknowledgements (the SUBACK barrier), client id claims (CONNACK), retained
//! queries — without letting a retained query overtake a retained message it must see.

mod common;

use common::*;
use std::time::Duration;

/// The number a test message carries in its first 4 bytes.
fn payload_index(p: &Publish) -> u32 {
    u32::from_be_bytes(p.payload[..4].try_into().expect("a 4-byte index"))
}

/// A shard under delivery pressure (a subscriber behind that keeps acknowledging, slowly)
/// stops taking its peers' forwards, but not their control messages: it still answers
/// another shard's interest change, which that shard's SUBACK waits for (the SUBACK
/// barrier), and the client id claims that CONNACKs wait for. Here shard 0's subscriber
/// acknowledges one message every 100 ms with about 150 queued, so shard 0 stays under
/// pressure until its queue is back under the mark (100): some 50 acknowledgements. A
/// client on shard 1 subscribes and clients whose home shard is 0 connect meanwhile; all of
/// them are answered while the subscriber is still far behind. Before the fix the mesh
/// carried both kinds of message in one FIFO channel per pair, and shard 0 left it unread
/// under pressure: the SUBACK came only after 50 acknowledgements (5 s).
#[test]
fn a_shard_under_delivery_pressure_still_answers_its_peers() {
    let broker = Broker::with_config("[limits]\nmax_queued_messages = 200\nmax_inflight = 1\n");
    let topic = unique("pressure");
    let (mut fresh, _) = broker.v5_on_shard(1, 0);
    let pressure = SlowSubscriberOnShard0::start(&broker, &topic);
    let ack = fresh.subscribe_opts(
        &format!("{topic}/fresh/#"),
        SubscriptionOptions::qos(QoS::AtLeastOnce),
        None,
    );
    assert_eq!(ack.reason_codes, vec![ReasonCode::GRANTED_QOS_1]);
    pressure.still_behind("the SUBACK");
    let mut homed = 0;
    for n in 0.. {
        let id = format!("{topic}-homed-{n}");
        if shardmq::shard::stable_hash(id.as_bytes()) % 2 != 0 {
            continue;
        }
        let (c, ack) = Client::connect(broker.addr, connect_v5(&id, true, 0));
        assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
        pressure.still_behind("a CONNACK");
        // Not `disconnect()`, which waits for the close: a DISCONNECT read by shard 0 is
        // held with the rest of that client's input until the pressure ends.
        c.drop_connection();
        homed += 1;
        if homed == 4 {
            break;
        }
    }
    pressure.stop();
}

/// A retained query overtakes forwards (it travels on the control lane) but never a
/// retained message its shard sent before it: a client that publishes a retained message
/// whose partition is on a shard under pressure, then subscribes to its topic, gets it
/// [MQTT-3.3.1-5] — the owner answers once it handled that retained message, which waits
/// behind the forwards, so here once the subscriber behind catches up.
#[test]
fn a_retained_message_is_not_overtaken_by_its_publishers_query() {
    let broker = Broker::with_config("[limits]\nmax_queued_messages = 200\nmax_inflight = 1\n");
    let topic = unique("pressure");
    let retained_topic = retained_on_shard_0(&topic);
    let (mut client, _) = broker.v5_on_shard(1, 0);
    let pressure = SlowSubscriberOnShard0::start(&broker, &topic);
    client.publish(&retained_topic, b"state", QoS::AtLeastOnce, true);
    let packet_id = subscribe_without_waiting(&mut client, &retained_topic);
    pressure.catch_up();
    client.wait_for(
        "SUBACK",
        |p| matches!(p, Packet::SubAck(a) if a.packet_id == packet_id),
    );
    let p = client.recv_publish();
    assert!(p.retain, "the retained message, sent as retained");
    assert_eq!(&p.payload[..], b"state");
    pressure.stop();
}

/// A client of a shard under delivery pressure that sends DISCONNECT is let go at once:
/// its input is held while the pressure lasts (it owes no acknowledgements), but input
/// that ends the connection is acted on [MQTT-3.14.4-1]. Its Will is not published
/// [MQTT-3.1.2-10], and a new connection with its client id meanwhile finds the session
/// ended, not taken over. Before the fix the DISCONNECT waited for the pressure to end (the
/// close came after 51 acknowledgements, some 5 s), and a takeover in that time would have
/// ended the connection as dropped, publishing the Will of a client that left normally.
#[test]
fn a_disconnect_is_acted_on_under_delivery_pressure() {
    let broker = Broker::with_config("[limits]\nmax_queued_messages = 200\nmax_inflight = 1\n");
    let leaver = Leaver::on_shard_0(&broker, "leaving");
    let pressure = SlowSubscriberOnShard0::start(&broker, &leaver.topic);
    leaver.client.disconnect();
    pressure.still_behind("the close after a DISCONNECT");
    reconnect_finds_it_left_normally(&broker, &leaver.id, leaver.watcher, pressure);
}

/// A client with a Will on shard 0, and a watcher of that Will on shard 1.
struct Leaver {
    client: Client,
    id: String,
    /// Its own topic, for the pressure.
    topic: String,
    watcher: Client,
}

impl Leaver {
    fn on_shard_0(broker: &Broker, prefix: &str) -> Leaver {
        let topic = unique(prefix);
        let will_topic = format!("{topic}/will");
        let (mut watcher, _) = broker.v5_on_shard(1, 0);
        watcher.sub(&will_topic, QoS::AtMostOnce);
        let mut template = Connect::new(Protocol::V5, "");
        template.will = Some(will(&will_topic, b"gone", QoS::AtMostOnce));
        let (client, id) = broker.on_shard(0, &template);
        Leaver {
            client,
            id,
            topic,
            watcher,
        }
    }
}

/// A reconnect with `id` while the pressure lasts: the session had ended (no session
/// present) and no Will went out [MQTT-3.1.2-10].
#[track_caller]
fn reconnect_finds_it_left_normally(
    broker: &Broker,
    id: &str,
    mut watcher: Client,
    pressure: SlowSubscriberOnShard0,
) {
    let (again, ack) = Client::connect(broker.addr, connect_v5(id, false, 0));
    assert!(
        !ack.session_present,
        "the session ended with its DISCONNECT"
    );
    watcher.expect_nothing_for(Duration::from_millis(500));
    pressure.still_behind("the check for a Will");
    again.drop_connection();
    pressure.stop();
}

/// The same, for a client whose connection the shard had already paused (a PINGREQ it sent
/// under the pressure is held undecoded): its DISCONNECT comes after the pause, and a
/// reconnect with the same client id right after it. The DISCONNECT is still read and acted
/// on, so the reconnect ends no live connection and no Will goes out [MQTT-3.1.2-10].
/// Before the fix it waited in the socket until the pressure lifted (here: the next
/// acknowledgement, 400 ms on), and the reconnect took the connection over as if it had
/// dropped, publishing the Will of a client that had left normally ("expected nothing, got
/// Publish ... gone").
#[test]
fn a_disconnect_sent_after_the_pause_is_acted_on_before_a_takeover() {
    use std::sync::atomic::Ordering;
    let broker = Broker::with_config("[limits]\nmax_queued_messages = 200\nmax_inflight = 1\n");
    let Leaver {
        client: mut leaving,
        id,
        topic,
        watcher,
    } = Leaver::on_shard_0(&broker, "paused");
    let pressure =
        SlowSubscriberOnShard0::acking_every(&broker, &topic, Duration::from_millis(400));
    // Just after an acknowledgement the next one is 400 ms away: a PINGREQ sent then is held
    // (no PINGRESP) and its connection paused.
    let held = (0..5).any(|_| {
        let acked = pressure.acked.load(Ordering::SeqCst);
        while pressure.acked.load(Ordering::SeqCst) == acked {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(10));
        leaving.send(&Packet::PingReq);
        match leaving.recv(Duration::from_millis(200)) {
            Recv::Timeout => true,
            Recv::Packet(Packet::PingResp) => false,
            other => panic!("waiting for a PINGRESP: {other:?}"),
        }
    });
    assert!(
        held,
        "no PINGREQ was held: the shard never paused the client"
    );
    leaving.send(&Packet::Disconnect(Disconnect::new(ReasonCode::SUCCESS)));
    std::thread::sleep(Duration::from_millis(20));
    reconnect_finds_it_left_normally(&broker, &id, watcher, pressure);
}

/// Three shards: a publisher on shard 1, the retained partition of its topic on shard 0
/// (under pressure: it leaves its data lanes unread, so the retained message waits there),
/// a subscriber already on shard 2 that gets the new message live. A second subscriber on
/// shard 2 then subscribes: the partition would answer with the message it replaced, and
/// that client would hold the old state for good. Its SUBSCRIBE now asks the other shards
/// first, and the query waits for the retained sets they had sent by then
/// [MQTT-3.3.1-9]. Before the fix the second subscriber got `old`, while under pressure.
#[test]
fn a_subscriber_gets_the_retained_message_that_already_passed_its_shard() {
    let broker = Broker::with_shards(3, "[limits]\nmax_queued_messages = 200\nmax_inflight = 1\n");
    let topic = unique("third");
    let retained_topic = retained_on(&topic, 0, 3);
    let (mut publisher, _) = broker.v5_on_shard(1, 0);
    let (mut first, _) = broker.v5_on_shard(2, 0);
    let (mut second, _) = broker.v5_on_shard(2, 0);
    publisher.publish(&retained_topic, b"old", QoS::AtLeastOnce, true);
    let ack = first.subscribe_opts(
        &retained_topic,
        SubscriptionOptions::qos(QoS::AtLeastOnce),
        None,
    );
    assert_eq!(ack.reason_codes, vec![ReasonCode::GRANTED_QOS_1]);
    let p = first.recv_publish();
    assert_eq!((&p.payload[..], p.retain), (&b"old"[..], true));
    first.ack(&p);
    let pressure = SlowSubscriberOnShard0::start(&broker, &topic);
    publisher.publish(&retained_topic, b"new", QoS::AtLeastOnce, true);
    let p = first.recv_publish();
    assert_eq!(&p.payload[..], b"new", "the live message");
    first.ack(&p);
    let packet_id = subscribe_without_waiting(&mut second, &retained_topic);
    std::thread::sleep(Duration::from_millis(300));
    pressure.catch_up();
    second.wait_for(
        "SUBACK",
        |p| matches!(p, Packet::SubAck(a) if a.packet_id == packet_id),
    );
    let p = second.recv_publish();
    assert!(p.retain, "the retained message, sent as retained");
    assert_eq!(
        String::from_utf8_lossy(&p.payload),
        "new",
        "the retained message the first subscriber already had live"
    );
    pressure.stop();
}

/// A topic under `topic` whose retained messages shard 0 keeps (of two).
fn retained_on_shard_0(topic: &str) -> String {
    retained_on(topic, 0, 2)
}

/// A topic under `topic` whose retained messages `shard` of `shards` keeps.
fn retained_on(topic: &str, shard: u64, shards: u64) -> String {
    (0..)
        .map(|n| format!("{topic}/retained/{n}"))
        .find(|t| shardmq::shard::stable_hash(t.as_bytes()) % shards == shard)
        .expect("a topic kept by that shard")
}

/// Sends a QoS 1 SUBSCRIBE to `filter`; returns its packet id (the SUBACK is not awaited).
fn subscribe_without_waiting(client: &mut Client, filter: &str) -> u16 {
    let packet_id = client.next_packet_id();
    client.send(&Packet::Subscribe(Subscribe {
        packet_id,
        filters: vec![SubscribeFilter {
            filter: filter.into(),
            options: SubscriptionOptions::qos(QoS::AtLeastOnce),
        }],
        ..Subscribe::default()
    }));
    packet_id
}

/// Keeps shard 0 under delivery pressure: a subscriber there (receive maximum 1) behind
/// about 150 messages of a publisher on shard 1, acknowledging one every 100 ms, in order.
struct SlowSubscriberOnShard0 {
    acked: std::sync::Arc<std::sync::atomic::AtomicU32>,
    fast: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
    _publisher: Client,
}

impl SlowSubscriberOnShard0 {
    /// Needs `max_queued_messages = 200` and `max_inflight = 1`.
    fn start(broker: &Broker, topic: &str) -> SlowSubscriberOnShard0 {
        Self::acking_every(broker, topic, Duration::from_millis(100))
    }

    /// The same, acknowledging one message per `interval`: the pressure lifts for a turn
    /// at each acknowledgement (the subscriber owes none), and paused clients are read then.
    fn acking_every(broker: &Broker, topic: &str, interval: Duration) -> SlowSubscriberOnShard0 {
        use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
        use std::sync::Arc;
        const MESSAGES: u32 = 200;
        let (mut slow, _) = broker.v5_on_shard(0, 0);
        slow.sub(topic, QoS::AtLeastOnce);
        let (mut publisher, _) = broker.v5_on_shard(1, 0);
        for i in 0..MESSAGES {
            let mut packet = publish(topic, &i.to_be_bytes(), QoS::AtLeastOnce);
            packet.packet_id = publisher.next_packet_id();
            publisher.send(&Packet::Publish(packet));
        }
        let acked = Arc::new(AtomicU32::new(0));
        let fast = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (acked, fast, stop) = (acked.clone(), fast.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut next = 0;
                while !stop.load(Ordering::SeqCst) && next < MESSAGES {
                    match slow.recv(Duration::from_secs(2)) {
                        Recv::Packet(Packet::Publish(p)) => {
                            assert_eq!(payload_index(&p), next, "in order");
                            next += 1;
                            if !fast.load(Ordering::SeqCst) {
                                std::thread::sleep(interval);
                            }
                            slow.ack(&p);
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                        Recv::Packet(_) => continue,
                        other => panic!("slow subscriber after {next} messages: {other:?}"),
                    }
                }
            })
        };
        // Shard 0 takes the forwards until the queue is near its limit (150), then stops.
        std::thread::sleep(Duration::from_millis(500));
        SlowSubscriberOnShard0 {
            acked,
            fast,
            stop,
            thread,
            _publisher: publisher,
        }
    }

    /// Asserts that the subscriber is still far behind (shard 0 still under pressure).
    #[track_caller]
    fn still_behind(&self, what: &str) {
        let n = self.acked.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            n < 40,
            "{what} came after {n} acknowledgements: it waited for the pressure to end"
        );
    }

    /// The subscriber acknowledges at once from now on (the pressure ends).
    fn catch_up(&self) {
        self.fast.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().expect("slow subscriber");
    }
}

/// A connection waiting at the SUBACK barrier is not read meanwhile (its next packets wait,
/// in order), so the keep alive deadline of 1.5 × Keep Alive [MQTT-3.1.2-24] does not run
/// while it waits: its PINGREQs are answered after the SUBACK. Here the barrier lasts until
/// shard 0's subscriber behind catches up (some 5 s: the retained message the query waits
/// for is behind 200 forwards) and the client's keep alive is 1 s, with a PINGREQ every
/// 250 ms. Before the fix it was closed with 0x8D Keep Alive timeout after 1.5 s.
#[test]
fn a_client_waiting_at_the_suback_barrier_is_not_timed_out_for_keepalive() {
    let broker = Broker::with_config("[limits]\nmax_queued_messages = 200\nmax_inflight = 1\n");
    let topic = unique("barrier");
    let retained_topic = retained_on_shard_0(&topic);
    let mut template = Connect::new(Protocol::V5, "");
    template.keep_alive_secs = 1;
    let (mut client, _) = broker.on_shard(1, &template);
    let pressure = SlowSubscriberOnShard0::start(&broker, &topic);
    client.publish(&retained_topic, b"state", QoS::AtLeastOnce, true);
    let packet_id = subscribe_without_waiting(&mut client, &retained_topic);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (mut suback, mut retained, mut pings, mut pongs) = (false, false, 0, 0);
    while !(suback && retained && pongs == pings) {
        assert!(
            std::time::Instant::now() < deadline,
            "SUBACK {suback}, retained {retained}, {pongs} of {pings} PINGRESPs"
        );
        if !suback {
            client.send(&Packet::PingReq);
            pings += 1;
        }
        match client.recv(Duration::from_millis(250)) {
            Recv::Packet(Packet::SubAck(a)) if a.packet_id == packet_id => suback = true,
            Recv::Packet(Packet::Publish(p)) => {
                assert!(suback && p.retain, "the retained message, after the SUBACK");
                client.ack(&p);
                retained = true;
            }
            Recv::Packet(Packet::PingResp) => pongs += 1,
            Recv::Timeout => {}
            other => panic!("after {pings} PINGREQs, SUBACK {suback}: {other:?}"),
        }
    }
    assert!(pings > 8, "the barrier lasted {pings} PINGREQs");
    pressure.stop();
}
