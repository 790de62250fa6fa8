//! Flow control against the real broker (two shards): a subscriber that falls behind slows
//! its publishers (delivery backpressure) instead of losing their QoS 1 messages, and the
//! slow-consumer policies for QoS 0 do what the configuration says, and a subscription
//! receives every retained message it matches, whatever the queue limit.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::time::Duration;

/// `slow_consumer = "disconnect"`: a subscriber that stops reading while QoS 0 messages
/// pile up beyond `max_outgoing_bytes` is disconnected with 0x97 Quota exceeded; the
/// publisher is not affected. With the default policy (drop) it stays connected.
#[test]
fn slow_consumer_policies() {
    for (policy, disconnects) in [("disconnect", true), ("drop", false)] {
        let broker = Broker::with_config(&format!(
            "[limits]\nmax_outgoing_bytes = 4096\nslow_consumer = \"{policy}\"\n"
        ));
        let topic = unique("slow");
        let mut slow = broker.v5(&unique("slow"));
        slow.sub(&topic, QoS::AtMostOnce);
        let mut p = broker.v5(&unique("flood"));
        let frame = encode(
            &Packet::Publish(publish(&topic, &[0x55; 4000], QoS::AtMostOnce)),
            Protocol::V5,
        );
        let burst: Vec<u8> = frame
            .iter()
            .copied()
            .cycle()
            .take(frame.len() * 500)
            .collect();
        // 20 MB in total, far more than the kernel buffers between broker and subscriber.
        for _ in 0..10 {
            p.send_raw(&burst);
        }
        p.ping();
        if disconnects {
            slow.expect_disconnect(ReasonCode::QUOTA_EXCEEDED);
        } else {
            // Drain what was buffered, then the connection still works.
            while let Recv::Packet(_) = slow.recv(std::time::Duration::from_millis(300)) {}
            slow.ping();
        }
        p.ping();
    }
}

/// A subscriber that has been quiet for a while is not "stalled" at its next burst: the
/// clock of the 1 s stall rule starts when the broker begins waiting for its first ack. So a
/// burst bigger than `max_queued_messages` slows the publisher (delivery backpressure) and
/// arrives whole, instead of overflowing the queue (`queue_drops`). Before the fix the rule
/// counted from the last ack ever received (none here): the queue overflowed and the
/// subscriber never saw the rest of the burst.
#[test]
fn quiet_subscriber_burst_slows_publisher_instead_of_dropping() {
    let broker = Broker::with_config("[limits]\nmax_queued_messages = 10\nmax_inflight = 2\n");
    let topic = unique("burst");
    let mut sub = broker.v5(&unique("quiet"));
    sub.sub(&topic, QoS::AtLeastOnce);
    // Older than the stall limit, as a real subscriber between bursts is.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let mut publ = broker.v5(&unique("burster"));
    let burst_topic = topic.clone();
    let publisher = std::thread::spawn(move || {
        for i in 0u32..60 {
            publ.publish(&burst_topic, &i.to_be_bytes(), QoS::AtLeastOnce, false);
        }
        publ
    });
    // The subscriber only starts reading (and acknowledging) after the burst began.
    std::thread::sleep(std::time::Duration::from_millis(300));
    for i in 0u32..60 {
        let p = sub.recv_publish();
        assert_eq!(&p.payload[..], &i.to_be_bytes(), "message {i} of the burst");
    }
    sub.expect_nothing();
    publisher.join().expect("publisher finished").ping();
}

/// Many publishers each with one message in flight, into a subscriber that is behind (but
/// not stalled): the queue must not overflow, whether the publishers are on the subscriber's
/// shard or on the other one. Each idle publisher has a receive armed before the shard comes
/// under pressure, so their messages arrive after it; they are held undecoded until the
/// subscriber catches up. Likewise a batch of forwards is delivered only up to the pressure,
/// the rest held. Before the fix every armed publisher added its message to the full queue:
/// with 60 local publishers and `max_queued_messages = 20`, 38 were dropped (`queue_drops`)
/// — 465 of 120,000 in `shardmq-bench --qos 1 --rate 20 fanin --pubs 1000` against
/// `--shards 1`.
#[test]
fn many_publishers_into_a_subscriber_behind_lose_nothing() {
    let broker = Broker::with_config("[limits]\nmax_queued_messages = 20\nmax_inflight = 2\n");
    for publishers_shard in [0, 1] {
        fill_a_subscriber_behind(&broker, publishers_shard);
    }
}

fn fill_a_subscriber_behind(broker: &Broker, publishers_shard: usize) {
    const PUBLISHERS: u32 = 60;
    let topic = unique("behind");
    let (mut sub, _) = broker.v5_on_shard(0, 0);
    sub.sub(&topic, QoS::AtLeastOnce);
    let mut publishers: Vec<Client> = (0..PUBLISHERS)
        .map(|_| broker.v5_on_shard(publishers_shard, 0).0)
        .collect();
    let mut ids = Vec::new();
    for (i, p) in publishers.iter_mut().enumerate() {
        let mut packet = publish(&topic, &(i as u32).to_be_bytes(), QoS::AtLeastOnce);
        packet.packet_id = p.next_packet_id();
        ids.push(packet.packet_id);
        // Sent, not waited for: the PUBACK comes when the broker reads it.
        p.send(&Packet::Publish(packet));
    }
    // Behind, not stalled (the stall rule waits 1 s for an acknowledgement).
    std::thread::sleep(Duration::from_millis(200));
    let mut seen = BTreeSet::new();
    for p in receive_publishes(&mut sub, PUBLISHERS as usize) {
        let index = payload_index(&p);
        assert!(seen.insert(index), "publisher {index} delivered twice");
    }
    let missing: Vec<u32> = (0..PUBLISHERS).filter(|i| !seen.contains(i)).collect();
    assert!(
        missing.is_empty(),
        "publishers on shard {publishers_shard}: lost the messages of publishers {missing:?}"
    );
    sub.expect_nothing();
    for (p, id) in publishers.iter_mut().zip(ids) {
        p.wait_for(
            "PUBACK",
            |q| matches!(q, Packet::PubAck(a) if a.packet_id == id),
        );
    }
}

/// A subscription's retained messages are the current state of every topic it matches: all
/// of them arrive, even beyond `max_queued_messages` [MQTT-3.3.1-6]. They were gathered for
/// the SUBACK already, so queueing them whole holds no more memory. Before the fix the queue
/// limit dropped the rest: 22 of 100 arrived here (a window of 2 and a queue of 20), and
/// `shardmq-bench --qos 1 retained --topics 5000` counted `queue_drops: 3936`.
#[test]
fn retained_beyond_the_queue_limit_all_arrive() {
    const TOPICS: usize = 100;
    let broker = Broker::with_config("[limits]\nmax_queued_messages = 20\nmax_inflight = 2\n");
    let root = unique("state");
    let mut publ = broker.v5(&unique("devices"));
    for i in 0..TOPICS {
        publ.publish(
            &format!("{root}/{i}"),
            &(i as u32).to_be_bytes(),
            QoS::AtLeastOnce,
            true,
        );
    }
    let mut sub = broker.v5(&unique("dashboard"));
    sub.sub(&format!("{root}/#"), QoS::AtLeastOnce);
    let mut seen = BTreeSet::new();
    for p in receive_publishes(&mut sub, TOPICS) {
        assert!(
            p.retain,
            "sent because of the subscription: RETAIN set [MQTT-3.3.1-9]"
        );
        assert!(seen.insert(p.topic.to_string()), "{} twice", p.topic);
    }
    assert_eq!(seen.len(), TOPICS, "retained messages that arrived");
    sub.expect_nothing();
}

/// The number a test message carries in its first 4 bytes.
fn payload_index(p: &Publish) -> u32 {
    u32::from_be_bytes(p.payload[..4].try_into().expect("4-byte payload"))
}

/// Up to `n` PUBLISH packets, each acknowledged, until 3 s pass without one.
fn receive_publishes(sub: &mut Client, n: usize) -> Vec<Publish> {
    let mut received = Vec::new();
    while received.len() < n {
        match sub.recv(Duration::from_secs(3)) {
            Recv::Packet(Packet::Publish(p)) => {
                sub.ack(&p);
                received.push(p);
            }
            Recv::Packet(_) => continue,
            _ => break,
        }
    }
    received
}

/// A publisher that the broker stopped reading (delivery backpressure) is not blamed for the
/// silence: its PINGREQs wait unread in the socket, so the keep alive deadline of 1.5 × Keep
/// Alive [MQTT-3.1.2-24] must not run while the broker holds it back. Here the publisher's
/// keep alive is 1 s and the subscriber takes about 3 s to bring its queue back under the
/// mark. Before the fix the broker disconnected the publisher with 0x8D Keep Alive timeout
/// after 1.5 s, although it had sent a PINGREQ every 250 ms.
#[test]
fn a_publisher_held_back_is_not_timed_out_for_keepalive() {
    const MESSAGES: u32 = 100;
    let broker = Broker::with_config("[limits]\nmax_queued_messages = 100\nmax_inflight = 1\n");
    let topic = unique("held");
    let (mut sub, _) = broker.v5_on_shard(0, 0);
    sub.sub(&topic, QoS::AtLeastOnce);
    let mut template = Connect::new(Protocol::V5, "");
    template.keep_alive_secs = 1;
    let (mut publ, _) = broker.on_shard(0, &template);
    for i in 0..MESSAGES {
        let mut packet = publish(&topic, &i.to_be_bytes(), QoS::AtLeastOnce);
        packet.packet_id = publ.next_packet_id();
        publ.send(&Packet::Publish(packet));
    }
    // Slow but steady (never stalled): one acknowledgement every 60 ms, so the queue stays
    // over its mark (half of 100) for about 3 s.
    let subscriber = std::thread::spawn(move || {
        let mut received = Vec::new();
        while received.len() < MESSAGES as usize {
            match sub.recv(Duration::from_secs(3)) {
                Recv::Packet(Packet::Publish(p)) => {
                    std::thread::sleep(Duration::from_millis(60));
                    sub.ack(&p);
                    received.push(payload_index(&p));
                }
                Recv::Packet(_) => continue,
                _ => break,
            }
        }
        received
    });
    let (mut pubacks, mut pingresps) = (0, 0);
    for _ in 0..24 {
        publ.send(&Packet::PingReq);
        let until = std::time::Instant::now() + Duration::from_millis(250);
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match publ.recv(left) {
                Recv::Packet(Packet::PubAck(_)) => pubacks += 1,
                Recv::Packet(Packet::PingResp) => pingresps += 1,
                Recv::Timeout => break,
                other => {
                    panic!("publisher after {pubacks} PUBACKs and {pingresps} PINGRESPs: {other:?}")
                }
            }
        }
    }
    let received = subscriber.join().expect("subscriber finished");
    assert_eq!(received, (0..MESSAGES).collect::<Vec<_>>(), "all, in order");
    while pubacks < MESSAGES || pingresps < 24 {
        match publ.recv(Duration::from_secs(3)) {
            Recv::Packet(Packet::PubAck(_)) => pubacks += 1,
            Recv::Packet(Packet::PingResp) => pingresps += 1,
            other => {
                panic!("publisher after {pubacks} PUBACKs and {pingresps} PINGRESPs: {other:?}")
            }
        }
    }
}

/// A subscriber reading a long backlog slowly (a slow link) while it sends a PINGREQ every
/// 250 ms is heard from: the broker writes to it before decoding its input again, but
/// still takes in what it sends, so its keep alive (1 s: closed after 1.5 s of silence)
/// does not run out while its output is over `max_outgoing_bytes` [MQTT-3.1.2-24]. Every
/// PINGREQ is answered once the backlog is read. Before the fix the broker left its
/// PINGREQs in the socket until the output drained, and closed it with 0x8D.
#[test]
fn a_subscriber_reading_a_backlog_slowly_is_not_timed_out_for_keepalive() {
    use std::io::Read;
    let broker = Broker::with_config("[limits]\nmax_outgoing_bytes = 65536\n");
    let topic = unique("backlog");
    let mut connect = Connect::new(Protocol::V5, unique("backlog-sub").as_str());
    connect.keep_alive_secs = 1;
    let (mut sub, _) = Client::tcp_with_recv_buffer(broker.addr, 4096).handshake(connect);
    sub.sub(&topic, QoS::AtMostOnce);
    let mut publ = broker.v5(&unique("backlog-pub"));
    let bulk = vec![b'x'; 64 * 1024];
    for _ in 0..64 {
        publ.publish(&topic, &bulk, QoS::AtMostOnce, false);
    }
    publ.ping();
    // About 200 KB/s for 3 s: the broker's socket buffer stays full, its output over the
    // mark, the whole time.
    let mut stream = bytes::BytesMut::new();
    let mut chunk = [0u8; 4096];
    let mut pings = 0;
    let started = std::time::Instant::now();
    sub.stream
        .tcp()
        .set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    while started.elapsed() < Duration::from_secs(3) {
        if started.elapsed() >= Duration::from_millis(250) * pings {
            sub.send_raw(&[0xC0, 0]);
            pings += 1;
        }
        if let Ok(n) = sub.stream.tcp().read(&mut chunk) {
            assert!(n > 0, "closed after {:?}", started.elapsed());
            stream.extend_from_slice(&chunk[..n]);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Then as fast as its small window allows (about 1 MB/s), still pinging, to the answers
    // of the PINGREQs above.
    let slow_pings = pings;
    let (mut pingresps, mut publishes, mut total) = (0, 0, stream.len());
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while pingresps < slow_pings {
        assert!(
            std::time::Instant::now() < deadline,
            "{pingresps} of {slow_pings} PINGRESPs; {publishes} PUBLISHes, {total} bytes, {} left",
            stream.len()
        );
        if started.elapsed() >= Duration::from_millis(250) * pings {
            sub.send_raw(&[0xC0, 0]);
            pings += 1;
        }
        loop {
            match Packet::decode(&mut stream, Protocol::V5, shardmq::codec::MAX_FRAME_BYTES) {
                Ok(Some(Packet::PingResp)) => pingresps += 1,
                Ok(Some(Packet::Publish(_))) => publishes += 1,
                Ok(Some(other)) => panic!("after {pingresps} PINGRESPs: {other:?}"),
                Ok(None) => break,
                Err(e) => panic!("undecodable: {e}"),
            }
        }
        if let Ok(n) = sub.stream.tcp().read(&mut chunk) {
            assert!(n > 0, "closed after {pingresps} PINGRESPs");
            stream.extend_from_slice(&chunk[..n]);
            total += n;
        }
    }
}

/// A client whose output is backed up publishes a QoS 1 message and then closes its socket
/// without DISCONNECT (unread data in its socket: a reset): the broker read the PUBLISH
/// before the close, so it is routed like any packet that arrived before the end of the
/// stream. Before the fix the bytes kept while the output was backed up were dropped with
/// the connection.
#[test]
fn what_a_backed_up_client_sent_before_closing_is_routed() {
    let broker = Broker::with_config("[limits]\nmax_outgoing_bytes = 65536\n");
    let (backlog, news) = (unique("backlog-a"), unique("backlog-b"));
    let mut watcher = broker.v5(&unique("watcher"));
    watcher.sub(&news, QoS::AtLeastOnce);
    let connect = Connect::new(Protocol::V5, unique("leaves").as_str());
    let (mut leaves, _) = Client::tcp_with_recv_buffer(broker.addr, 4096).handshake(connect);
    leaves.sub(&backlog, QoS::AtMostOnce);
    let mut publ = broker.v5(&unique("backlog-pub"));
    back_up_output(&mut publ, &backlog);
    let mut last_words = publish(&news, b"sent before the close", QoS::AtLeastOnce);
    last_words.packet_id = leaves.next_packet_id();
    leaves.send(&Packet::Publish(last_words));
    std::thread::sleep(Duration::from_millis(200));
    leaves.drop_connection();
    let got = watcher.recv_publish();
    assert_eq!(&got.payload[..], b"sent before the close");
}

/// One subscriber far behind, acknowledging a message every 500 ms, matches everything that
/// a publisher sends to a subscriber that keeps up: the one behind loses messages by policy
/// (`max_queued_messages`) and the other receives every message at the publisher's pace.
/// Waiting for the one behind would hold every receiver of the shard back to its pace; a
/// fan-in, where the subscriber behind is the only receiver, is still slowed instead
/// (`many_publishers_into_a_subscriber_behind_lose_nothing`). Before the fix, the publisher
/// waited for its PUBACKs at the slow subscriber's pace (and `shardmq-bench p2p --pairs 10`
/// at 1,000 msg/s per publisher delivered 320 msg/s beside a slow `#` subscriber, 9,864 without).
/// Every placement: all on one shard, the slow subscriber alone on the other, and the
/// publisher alone on the other.
#[test]
fn a_subscriber_behind_does_not_hold_back_the_others() {
    let broker = Broker::with_config("[limits]\nmax_queued_messages = 20\n");
    for (slow_shard, publisher_shard) in [(0, 0), (1, 0), (0, 1)] {
        behind_beside_one_keeping_up(&broker, slow_shard, publisher_shard);
    }
}

fn behind_beside_one_keeping_up(broker: &Broker, slow_shard: usize, publisher_shard: usize) {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::Arc;
    const MESSAGES: u32 = 1000;
    let root = unique("fleet");
    let topic = format!("{root}/t");
    let mut slow_template = Connect::new(Protocol::V5, "");
    slow_template.properties.receive_maximum = Some(1);
    let (mut slow, _) = broker.on_shard(slow_shard, &slow_template);
    slow.sub(&format!("{root}/#"), QoS::AtLeastOnce);
    let (mut fast, _) = broker.v5_on_shard(0, 0);
    fast.sub(&topic, QoS::AtLeastOnce);
    let (mut publ, _) = broker.v5_on_shard(publisher_shard, 0);
    let done = Arc::new(AtomicBool::new(false));
    let slow_done = done.clone();
    let slow_reader = std::thread::spawn(move || {
        let mut received = 0;
        while !slow_done.load(Ordering::Relaxed) {
            if let Recv::Packet(Packet::Publish(p)) = slow.recv(Duration::from_millis(500)) {
                std::thread::sleep(Duration::from_millis(500));
                slow.ack(&p);
                received += 1;
            }
        }
        received
    });
    let fast_received = Arc::new(AtomicU32::new(0));
    let counter = fast_received.clone();
    let fast_reader = std::thread::spawn(move || {
        let mut payloads = Vec::new();
        while payloads.len() < MESSAGES as usize {
            match fast.recv(Duration::from_secs(5)) {
                Recv::Packet(Packet::Publish(p)) => {
                    fast.ack(&p);
                    payloads.push(payload_index(&p));
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Recv::Packet(_) => continue,
                _ => break,
            }
        }
        payloads
    });
    let started = std::time::Instant::now();
    for i in 0..MESSAGES {
        // The receiver that keeps up is never more than 32 behind: nothing waits in its
        // queue, so only the slow one can be the reason to wait. (About 50 ms in all here;
        // at the slow one's pace it would take 500 s.)
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "slow subscriber on shard {slow_shard}, publisher on shard {publisher_shard}: \
                 {i} of {MESSAGES} published, {} received by the one that keeps up, in 10 s",
                fast_received.load(Ordering::Relaxed)
            );
            if i < fast_received.load(Ordering::Relaxed) + 32 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // Waits for the PUBACK (5 s at most): the publisher is not slowed to the slow pace.
        publ.publish(&topic, &i.to_be_bytes(), QoS::AtLeastOnce, false);
    }
    let payloads = fast_reader.join().expect("fast subscriber");
    done.store(true, Ordering::Relaxed);
    assert_eq!(
        payloads,
        (0..MESSAGES).collect::<Vec<_>>(),
        "slow subscriber on shard {slow_shard}, publisher on shard {publisher_shard}: \
         every message, in order, to the receiver that keeps up"
    );
    let slow_received = slow_reader.join().expect("slow subscriber");
    assert!(
        slow_received < MESSAGES,
        "the slow one cannot have had them all"
    );
}

/// Subscribers that stopped acknowledging (stalled) are not waited for, and neither are
/// their queues counted against `backpressure_queued_messages`: pausing publishers would not
/// drain them. Here four clients subscribe to `#` and never acknowledge; their queues
/// together pass the limit. Before the fix the shard stopped reading every publisher for
/// good: a publisher beside them got no PUBACK any more (twelve such clients stopped
/// `shardmq-bench p2p` at 0 msg/s).
#[test]
fn subscribers_that_never_acknowledge_do_not_stop_the_shard() {
    const MESSAGES: u32 = 300;
    let broker = Broker::with_config(
        "[limits]\nmax_queued_messages = 50\nbackpressure_queued_messages = 100\nmax_inflight = 2\n",
    );
    let root = unique("stalled");
    let topic = format!("{root}/t");
    let mut stalled: Vec<Client> = (0..4)
        .map(|_| {
            let (mut c, _) = broker.v5_on_shard(0, 0);
            c.sub(&format!("{root}/#"), QoS::AtLeastOnce);
            c
        })
        .collect();
    let (mut sub, _) = broker.v5_on_shard(0, 0);
    sub.sub(&topic, QoS::AtLeastOnce);
    let (mut publ, _) = broker.v5_on_shard(0, 0);
    let reader = std::thread::spawn(move || receive_publishes(&mut sub, MESSAGES as usize));
    for i in 0..MESSAGES {
        publ.publish(&topic, &i.to_be_bytes(), QoS::AtLeastOnce, false);
    }
    let received: Vec<u32> = reader
        .join()
        .expect("subscriber")
        .iter()
        .map(payload_index)
        .collect();
    assert_eq!(received, (0..MESSAGES).collect::<Vec<_>>());
    // They are still connected, and still get what their window allows.
    for c in &mut stalled {
        c.expect_publish();
    }
}

/// `receive_pool_kib` at its smallest (1 MiB per shard: four 256 KiB buffers where the
/// kernel consumes them incrementally, else 64 of 16 KiB): receives that find the pool
/// used up are armed again, and nothing is lost or reordered. 2,000 QoS 1 messages of 1 KB,
/// sent without waiting, go from a publisher on one shard to a subscriber on the other.
#[test]
fn a_small_receive_pool_still_carries_every_message() {
    const N: u32 = 2000;
    let broker = Broker::with_config("receive_pool_kib = 1024\n");
    let topic = unique("small-pool");
    let (mut subscriber, _) = broker.v5_on_shard(1, 0);
    subscriber.sub(&topic, QoS::AtLeastOnce);
    let (mut publisher, _) = broker.v5_on_shard(0, 0);
    let mut payload = vec![0u8; 1024];
    for i in 0..N {
        payload[..4].copy_from_slice(&i.to_be_bytes());
        let mut packet = publish(&topic, &payload, QoS::AtLeastOnce);
        packet.packet_id = publisher.next_packet_id();
        publisher.send(&Packet::Publish(packet));
    }
    for i in 0..N {
        let p = subscriber.recv_publish();
        assert_eq!(
            u32::from_be_bytes(p.payload[..4].try_into().unwrap()),
            i,
            "in order"
        );
        assert_eq!(p.payload.len(), 1024);
        subscriber.ack(&p);
    }
}

/// A receive pool that is not a power of two, or out of range, stops startup with a
/// message naming the key.
#[test]
fn a_bad_receive_pool_size_stops_startup() {
    for bad in ["1000", "512", "131072"] {
        let e = refused_startup(&format!("receive_pool_kib = {bad}\n"));
        assert!(
            e.contains("receive_pool_kib") && e.contains("power of two from 1024 to 65536"),
            "{bad}: {e}"
        );
    }
}

/// The keep alive counts Control Packets [MQTT-3.1.2-24], not bytes: a client whose output
/// is backed up (the broker keeps what it sends until it has read its output) and that
/// trickles in a packet that never ends, one byte every 200 ms, is closed 1.5 × its 1 s
/// keep alive after its last whole packet; as it reads nothing, the close gives up on its
/// output after `close_timeout_secs` (1 s here), and its Will goes out. Before the fix
/// every byte kept for it counted as hearing from it: it lived as long as it trickled.
#[test]
fn bytes_trickled_into_a_packet_that_never_ends_keep_no_client_alive() {
    let broker =
        Broker::with_config("[limits]\nmax_outgoing_bytes = 65536\nclose_timeout_secs = 1\n");
    let topic = unique("trickle");
    let will_topic = unique("trickle/will");
    let mut watcher = broker.v5(&unique("trickle-watcher"));
    watcher.sub(&will_topic, QoS::AtMostOnce);
    let mut connect = Connect::new(Protocol::V5, unique("trickler").as_str());
    connect.keep_alive_secs = 1;
    connect.will = Some(will(&will_topic, b"gone", QoS::AtMostOnce));
    let (mut trickler, _) = Client::tcp_with_recv_buffer(broker.addr, 4096).handshake(connect);
    trickler.sub(&topic, QoS::AtMostOnce);
    let mut publ = broker.v5(&unique("trickle-pub"));
    let bulk = vec![b'x'; 64 * 1024];
    for _ in 0..64 {
        publ.publish(&topic, &bulk, QoS::AtMostOnce, false);
    }
    publ.ping();
    // A PUBLISH of 127 bytes, of which 30 arrive in 6 s.
    trickler.send_raw(&[0x30, 0x7F]);
    let started = std::time::Instant::now();
    let mut will_after = None;
    while started.elapsed() < Duration::from_secs(6) {
        let _ = trickler.try_send_raw(&[0]);
        if let Recv::Packet(Packet::Publish(p)) = watcher.recv(Duration::from_millis(200)) {
            assert_eq!(p.topic.as_str(), will_topic);
            will_after = Some(started.elapsed());
            break;
        }
    }
    let will_after = will_after.expect("the trickler's Will: it was never timed out");
    assert!(
        will_after < Duration::from_millis(4500),
        "closed only after {will_after:?}"
    );
}
