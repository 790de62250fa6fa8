//! Retained messages and shared subscriptions across shards, against the real broker (two
//! shards): retained topics are partitioned over the shards, and a `$share` group has members
//! on both. Clients are placed as in `broker_cross_shard.rs`.

mod common;

use common::*;
use std::collections::HashMap;

/// Retained messages across shards: retained topics are partitioned over shards; a
/// subscriber on either shard gets every retained message, for exact and wildcard filters
/// [MQTT-3.3.1-6].
#[test]
fn retained_across_shards() {
    let broker = Broker::start();
    let root = unique("xret");
    let (mut p0, _) = broker.v5_on_shard(0, 0);
    let (mut p1, _) = broker.v5_on_shard(1, 0);
    let n = 16;
    for i in 0..n {
        let p = if i % 2 == 0 { &mut p0 } else { &mut p1 };
        p.publish(
            &format!("{root}/{i}"),
            format!("{i}").as_bytes(),
            QoS::AtLeastOnce,
            true,
        );
    }
    for shard in 0..2 {
        let (mut s, _) = broker.v5_on_shard(shard, 0);
        s.sub(&format!("{root}/#"), QoS::AtLeastOnce);
        let mut got: Vec<String> = (0..n)
            .map(|_| {
                let m = s.recv_publish();
                assert!(m.retain);
                m.topic.to_string()
            })
            .collect();
        got.sort();
        let mut want: Vec<String> = (0..n).map(|i| format!("{root}/{i}")).collect();
        want.sort();
        assert_eq!(got, want, "wildcard subscriber on shard {shard}");
        s.expect_nothing();
        for i in 0..n {
            let topic = format!("{root}/{i}");
            let (mut e, _) = broker.v5_on_shard(shard, 0);
            e.sub(&topic, QoS::AtMostOnce);
            assert_eq!(
                e.recv_publish().payload,
                format!("{i}").as_bytes(),
                "exact {topic} on shard {shard}"
            );
        }
    }
    // Delete from the other shard than the one that set it.
    p1.publish(&format!("{root}/0"), b"", QoS::AtLeastOnce, true);
    p1.ping();
    let (mut s, _) = broker.v5_on_shard(0, 0);
    s.sub(&format!("{root}/0"), QoS::AtMostOnce);
    s.expect_nothing();
}

/// Shared subscriptions across shards (`$share/group/filter`, §4.8.2): members on both
/// shards; each message goes to exactly one member of the group [MQTT-4.8.2-... "each
/// message to one session"], every member gets some, and an ordinary subscriber gets all.
/// Two groups on one filter each get every message once.
#[test]
fn shared_subscription_each_message_once_across_shards() {
    let broker = Broker::start();
    let topic = unique("share");
    let mut members: Vec<Client> = Vec::new();
    for i in 0..4 {
        let (mut c, _) = broker.v5_on_shard(i % 2, 0);
        c.sub(&format!("$share/g1/{topic}"), QoS::AtLeastOnce);
        members.push(c);
    }
    let mut other_group: Vec<Client> = Vec::new();
    for i in 0..2 {
        let (mut c, _) = broker.v5_on_shard(i % 2, 0);
        c.sub(&format!("$share/g2/{topic}"), QoS::AtMostOnce);
        other_group.push(c);
    }
    let mut all = broker.v5(&unique("all"));
    all.sub(&topic, QoS::AtLeastOnce);
    let n = 80u32;
    let (mut p0, _) = broker.v5_on_shard(0, 0);
    let (mut p1, _) = broker.v5_on_shard(1, 0);
    for i in 0..n {
        let p = if i % 2 == 0 { &mut p0 } else { &mut p1 };
        p.publish(&topic, &i.to_be_bytes(), QoS::AtLeastOnce, false);
    }
    for _ in 0..n {
        all.recv_publish();
    }
    let mut seen: HashMap<u32, usize> = HashMap::new();
    let mut per_member = vec![0; members.len()];
    // Everything is delivered once `all` has it plus a quiet period.
    for (k, m) in members.iter_mut().enumerate() {
        loop {
            match m.recv(QUIET) {
                Recv::Packet(Packet::Publish(p)) => {
                    m.ack(&p);
                    *seen
                        .entry(u32::from_be_bytes(p.payload[..4].try_into().unwrap()))
                        .or_default() += 1;
                    per_member[k] += 1;
                }
                Recv::Timeout => break,
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(seen.len(), n as usize, "every message reached the group");
    assert!(
        seen.values().all(|&c| c == 1),
        "a message reached two members: {seen:?}"
    );
    assert!(
        per_member.iter().all(|&c| c > 0),
        "some member never got a message: {per_member:?}"
    );
    let mut g2 = 0;
    for m in &mut other_group {
        while let Recv::Packet(Packet::Publish(_)) = m.recv(QUIET) {
            g2 += 1;
        }
    }
    assert_eq!(g2, n, "second group gets each message once");
}

/// A shared subscription's retained messages are not sent on subscribe [MQTT-3.8.4-... 5.0
/// §4.8.2: "retained messages are not sent to shared subscriptions"], and a group with
/// members on one shard only still gets messages published on the other shard.
#[test]
fn shared_subscription_no_retained_and_remote_publish() {
    let broker = Broker::start();
    let topic = unique("share-ret");
    let (mut p1, _) = broker.v5_on_shard(1, 0);
    p1.publish(&topic, b"retained", QoS::AtLeastOnce, true);
    let (mut m0, _) = broker.v5_on_shard(0, 0);
    m0.sub(&format!("$share/g/{topic}"), QoS::AtLeastOnce);
    m0.expect_nothing();
    p1.publish(&topic, b"live", QoS::AtLeastOnce, false);
    assert_eq!(&m0.recv_publish().payload[..], b"live");
    // The only member leaves: the message is not delivered anywhere, and no error.
    m0.unsubscribe(&format!("$share/g/{topic}"));
    p1.publish(&topic, b"nobody", QoS::AtLeastOnce, false);
    m0.expect_nothing();
}

/// §4.8.2: a member of a group whose client is away (its session kept) does not take its
/// round-robin share while another member on its shard is connected: that one gets every
/// message, QoS 0 (which the away member would drop) and QoS 1 (which it would hold until
/// it returns). Nothing waits for the away member when it comes back.
#[test]
fn shared_subscription_prefers_connected_members() {
    let broker = Broker::start();
    let topic = unique("share-away");
    let filter = format!("$share/g/{topic}");
    let (mut away, away_id) = broker.v5_on_shard(0, 300);
    away.sub(&filter, QoS::AtLeastOnce);
    let (mut here, _) = broker.v5_on_shard(0, 0);
    here.sub(&filter, QoS::AtLeastOnce);
    away.drop_connection();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (mut p, _) = broker.v5_on_shard(0, 0);
    for i in 0..12u8 {
        let qos = if i % 3 == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        p.publish(&topic, &[i], qos, false);
    }
    let got: Vec<u8> = (0..12).map(|_| here.recv_publish().payload[0]).collect();
    assert_eq!(got, (0..12).collect::<Vec<u8>>());
    here.expect_nothing();
    let (mut back, ack) = broker.connect(connect_v5(&away_id, false, 300));
    assert!(ack.session_present);
    back.expect_nothing();
}

/// Every PUBLISH `c` receives until it has been quiet for 300 ms, acknowledged; other
/// packets are dropped.
fn drain_payloads(c: &mut Client, into: &mut Vec<u32>) {
    loop {
        match c.recv(std::time::Duration::from_millis(300)) {
            Recv::Packet(Packet::Publish(p)) => {
                c.ack(&p);
                into.push(u32::from_be_bytes(p.payload[..4].try_into().unwrap()));
            }
            Recv::Packet(_) => {}
            Recv::Timeout => return,
            Recv::Closed => panic!("subscriber closed"),
        }
    }
}

/// §4.8.2 across shards: the group's only member on shard 0 is away (session kept), the one
/// on shard 1 is connected. Shard 0 still gets its round-robin turn from publishers on
/// either shard, and passes the message on to shard 1 instead of holding it for the away
/// member; the away member finds nothing waiting when it returns.
#[test]
fn shared_subscription_prefers_connected_members_on_other_shards() {
    let broker = Broker::start();
    let topic = unique("share-away-x");
    let filter = format!("$share/g/{topic}");
    let (mut away, away_id) = broker.v5_on_shard(0, 300);
    away.sub(&filter, QoS::AtLeastOnce);
    let (mut online, _) = broker.v5_on_shard(1, 0);
    online.sub(&filter, QoS::AtLeastOnce);
    away.drop_connection();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (mut p0, _) = broker.v5_on_shard(0, 0);
    let (mut p1, _) = broker.v5_on_shard(1, 0);
    for i in 0..16u32 {
        let p = if i % 2 == 0 { &mut p0 } else { &mut p1 };
        p.publish(&topic, &i.to_be_bytes(), QoS::AtLeastOnce, false);
    }
    let mut got = Vec::new();
    drain_payloads(&mut online, &mut got);
    got.sort_unstable();
    assert_eq!(
        got,
        (0..16).collect::<Vec<u32>>(),
        "the connected member gets all"
    );
    let (mut back, ack) = broker.connect(connect_v5(&away_id, false, 300));
    assert!(ack.session_present);
    back.expect_nothing();
}

/// A group's member on shard 1 unsubscribes while shard 0 routes a burst of QoS 1 messages
/// to the group: the messages shard 0 sent to shard 1 before it learnt that shard 1 has no
/// member any more are passed back, not dropped. Over many rounds every message reaches
/// exactly one member.
#[test]
fn shared_subscription_message_outlives_its_members_leaving() {
    const ROUNDS: u32 = 20;
    const BURST: u32 = 100;
    let broker = Broker::start();
    let topic = unique("share-leave");
    let filter = format!("$share/g/{topic}");
    let (mut stays, _) = broker.v5_on_shard(0, 0);
    stays.sub(&filter, QoS::AtLeastOnce);
    let (mut leaves, _) = broker.v5_on_shard(1, 0);
    let (mut p, _) = broker.v5_on_shard(0, 0);
    let mut got = Vec::new();
    for round in 0..ROUNDS {
        leaves.sub(&filter, QoS::AtLeastOnce);
        let mut ids = Vec::new();
        for i in 0..BURST {
            let n = round * BURST + i;
            let mut packet = publish(&topic, &n.to_be_bytes(), QoS::AtLeastOnce);
            packet.packet_id = p.next_packet_id();
            ids.push(packet.packet_id);
            p.send(&Packet::Publish(packet));
            if i == BURST / 4 {
                let packet_id = leaves.next_packet_id();
                leaves.send(&Packet::Unsubscribe(Unsubscribe {
                    packet_id,
                    filters: vec![filter.as_str().into()],
                    ..Unsubscribe::default()
                }));
            }
        }
        for id in ids {
            p.wait_for(
                "PUBACK",
                |q| matches!(q, Packet::PubAck(a) if a.packet_id == id),
            );
        }
        drain_payloads(&mut stays, &mut got);
        drain_payloads(&mut leaves, &mut got);
    }
    got.sort_unstable();
    let expected: Vec<u32> = (0..ROUNDS * BURST).collect();
    let missing: Vec<u32> = expected
        .iter()
        .filter(|n| got.binary_search(n).is_err())
        .copied()
        .collect();
    assert!(missing.is_empty(), "messages no member got: {missing:?}");
    assert_eq!(got, expected, "each message once");
}

/// §4.8.2: "If the Client's Session terminates before the Client reconnects, the Server
/// SHOULD send the Application Message to another Client that is subscribed to the same
/// Shared Subscription." A member takes its share of 20 QoS 1 messages and acknowledges
/// none; when its session ends — with its connection (Session Expiry 0), or 1 s later —
/// every message it held goes to the other member, on its shard or the other. Before the
/// fix they were dropped with the session: the other member got only its own share.
#[test]
fn a_members_unacknowledged_messages_go_to_another_member_when_its_session_ends() {
    const N: u32 = 20;
    let broker = Broker::start();
    for (quits_on, keeps_on, expiry_secs) in [(0, 0, 0), (0, 1, 0), (1, 0, 1)] {
        let topic = unique("share-handback");
        let filter = format!("$share/g/{topic}");
        let (mut quits, _) = broker.v5_on_shard(quits_on, expiry_secs);
        quits.sub(&filter, QoS::AtLeastOnce);
        let (mut keeps, _) = broker.v5_on_shard(keeps_on, 0);
        keeps.sub(&filter, QoS::AtLeastOnce);
        let (mut p, _) = broker.v5_on_shard(0, 0);
        for i in 0..N {
            p.publish(&topic, &i.to_be_bytes(), QoS::AtLeastOnce, false);
        }
        let mut held = 0;
        while let Recv::Packet(packet) = quits.recv(std::time::Duration::from_millis(300)) {
            held += matches!(packet, Packet::Publish(_)) as u32;
        }
        assert!(held > 0, "the member that quits got none of the {N}");
        quits.drop_connection();
        std::thread::sleep(std::time::Duration::from_millis(
            1000 * expiry_secs as u64 + 300,
        ));
        let mut got = Vec::new();
        drain_payloads(&mut keeps, &mut got);
        got.sort_unstable();
        assert_eq!(
            got,
            (0..N).collect::<Vec<u32>>(),
            "shards {quits_on} → {keeps_on}, Session Expiry {expiry_secs}: {held} held by the \
             member that quit"
        );
    }
}

/// The same for QoS 2, where a message the member has acknowledged with PUBREC is its own
/// (it has the message; only the release is left): those stay with the session that ends,
/// and only the ones it had not acknowledged go to the other member — no message is had by
/// two members [MQTT-4.3.3].
#[test]
fn a_members_qos2_messages_it_acknowledged_are_not_handed_back() {
    const N: u32 = 20;
    let broker = Broker::start();
    let topic = unique("share-handback-2");
    let filter = format!("$share/g/{topic}");
    let (mut quits, _) = broker.v5_on_shard(0, 0);
    quits.sub(&filter, QoS::ExactlyOnce);
    let (mut keeps, _) = broker.v5_on_shard(1, 0);
    keeps.sub(&filter, QoS::ExactlyOnce);
    let (mut p, _) = broker.v5_on_shard(0, 0);
    for i in 0..N {
        p.publish(&topic, &i.to_be_bytes(), QoS::ExactlyOnce, false);
    }
    // Every other message it gets, the member that quits acknowledges with PUBREC.
    let (mut acknowledged, mut held) = (Vec::new(), Vec::new());
    while let Recv::Packet(packet) = quits.recv(std::time::Duration::from_millis(300)) {
        if let Packet::Publish(m) = packet {
            let n = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
            if (acknowledged.len() + held.len()) % 2 == 0 {
                quits.send(&Packet::PubRec(PubResponse::new(m.packet_id)));
                acknowledged.push(n);
            } else {
                held.push(n);
            }
        }
    }
    assert!(
        !held.is_empty(),
        "the member that quits got {acknowledged:?} only"
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    quits.drop_connection();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut got = Vec::new();
    drain_payloads(&mut keeps, &mut got);
    got.sort_unstable();
    let expected: Vec<u32> = (0..N).filter(|n| !acknowledged.contains(n)).collect();
    assert_eq!(
        got, expected,
        "acknowledged (PUBREC) by the member that quit: {acknowledged:?}; held: {held:?}"
    );
}

/// A session in two shared groups that both chose it for a message gets one copy per group
/// (§4.8.2), and when the session ends unacknowledged each copy goes to another member of
/// its own group. Before the fix the two were merged into one delivery that named one
/// group: the other group's copy ended with the session.
#[test]
fn a_member_of_two_groups_hands_each_group_its_own_copy_back() {
    let broker = Broker::start();
    let topic = unique("share-two-groups");
    let (first, second) = (format!("$share/g1/{topic}"), format!("$share/g2/{topic}"));
    let (mut both, _) = broker.v5_on_shard(0, 0);
    both.sub(&first, QoS::AtLeastOnce);
    both.sub(&second, QoS::AtLeastOnce);
    // On the member's shard: there both groups choose among the targets of one publish.
    let (mut p, _) = broker.v5_on_shard(0, 0);
    p.publish(&topic, b"m", QoS::AtLeastOnce, false);
    let mut copies = 0;
    while let Recv::Packet(packet) = both.recv(std::time::Duration::from_millis(300)) {
        copies += matches!(packet, Packet::Publish(_)) as u32;
    }
    assert_eq!(copies, 2, "one copy for each group");
    let (mut in_first, _) = broker.v5_on_shard(1, 0);
    in_first.sub(&first, QoS::AtLeastOnce);
    let (mut in_second, _) = broker.v5_on_shard(0, 0);
    in_second.sub(&second, QoS::AtLeastOnce);
    both.drop_connection();
    for (member, group) in [(&mut in_first, "g1"), (&mut in_second, "g2")] {
        let m = member.recv_publish();
        assert_eq!(
            &m.payload[..],
            b"m",
            "{group}'s copy went to its other member"
        );
    }
}
