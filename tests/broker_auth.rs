//! Who may connect: a mosquitto password file (`auth.password_file`) and
//! `auth.allow_anonymous`, against the real broker with two shards.

mod common;

use common::*;

/// Written by `mosquitto_passwd -c -b pw alice 's3cret pass'` and `-b pw bob hunter2`
/// (mosquitto 2.0.11).
const PASSWORD_FILE: &str = "\
# fleet users
alice:$7$101$25a6oOoXVgNT3wCK$JQyEqg4XYYR8FKro69WEKDEDguSxSIsgOiE8yqwglQGI+/E2XZaGdcfIX3HQ4vwsyf14wAM8IExivKjvNHmtmA==
bob:$7$101$3ku7LAvSZOAJ20LQ$NaCB68fyPHKImw9knfZrueBZdRtxa3mG4QaMdIn/XjTsxST6Aw0ZTq0gABGo/RUG8qpE97YqfSyudSmWpgN2MA==
";

fn password_file() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(unique("shardmq-passwd"));
    std::fs::write(&path, PASSWORD_FILE).unwrap();
    path
}

fn broker(allow_anonymous: bool) -> Broker {
    Broker::with_config(&format!(
        "[auth]\nallow_anonymous = {allow_anonymous}\npassword_file = {:?}\n",
        password_file()
    ))
}

fn with_login(mut c: Connect, user: Option<&str>, password: Option<&[u8]>) -> Connect {
    c.username = user.map(Into::into);
    c.password = password.map(|p| p.to_vec().into());
    c
}

/// The CONNACK's reason, and that the broker closed the connection after a refusal
/// [MQTT-3.2.2-7] / [MQTT-3.1.4-2].
#[track_caller]
fn attempt(broker: &Broker, connect: Connect) -> ReasonCode {
    let (mut c, ack) = broker.connect(connect);
    if ack.reason_code != ReasonCode::SUCCESS {
        assert!(
            c.expect_closed().is_empty(),
            "nothing after a refusing CONNACK"
        );
    }
    ack.reason_code
}

#[test]
fn users_of_a_mosquitto_password_file_get_in_and_nobody_else() {
    let broker = broker(false);
    let v5 = |user, pw| with_login(connect_v5(&unique("auth"), true, 0), user, pw);
    assert_eq!(
        attempt(&broker, v5(Some("alice"), Some(b"s3cret pass"))),
        ReasonCode::SUCCESS
    );
    assert_eq!(
        attempt(&broker, v5(Some("bob"), Some(b"hunter2"))),
        ReasonCode::SUCCESS
    );
    // Wrong password, unknown user, missing password: one answer for all three.
    for (user, pw) in [
        (Some("alice"), Some(&b"hunter2"[..])),
        (Some("mallory"), Some(&b"hunter2"[..])),
        (Some("bob"), None),
    ] {
        assert_eq!(
            attempt(&broker, v5(user, pw)),
            ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            "{user:?}"
        );
    }
    // No user name while anonymous clients are refused.
    assert_eq!(attempt(&broker, v5(None, None)), ReasonCode::NOT_AUTHORIZED);
}

/// MQTT 3.1.1 has its own return codes: 0x04 bad user name or password, 0x05 not
/// authorized; checked byte for byte.
#[test]
fn mqtt_3_1_1_refusals_use_its_return_codes() {
    let broker = broker(false);
    let v3 = |user, pw| with_login(connect_v311(&unique("auth3"), true), user, pw);
    for (connect, code) in [
        (v3(Some("bob"), Some(b"hunter2")), 0x00u8),
        (v3(Some("bob"), Some(b"hunter3")), 0x04),
        (v3(None, None), 0x05),
    ] {
        let mut c = broker.raw();
        c.send_raw(&encode(&Packet::Connect(Box::new(connect)), Protocol::V311));
        assert_eq!(c.read_raw(4, WAIT), [0x20, 0x02, 0x00, code]);
    }
}

/// With anonymous clients allowed (the default), clients without a user name get in, and a
/// client that does send a user name is still checked.
#[test]
fn anonymous_clients_may_be_allowed_beside_the_password_file() {
    let broker = broker(true);
    let v5 = |user, pw| with_login(connect_v5(&unique("anon"), true, 0), user, pw);
    assert_eq!(attempt(&broker, v5(None, None)), ReasonCode::SUCCESS);
    assert_eq!(
        attempt(&broker, v5(Some("alice"), Some(b"s3cret pass"))),
        ReasonCode::SUCCESS
    );
    assert_eq!(
        attempt(&broker, v5(Some("alice"), Some(b"wrong"))),
        ReasonCode::BAD_USER_NAME_OR_PASSWORD
    );
    // A refused client's Will is not published, and its session never existed.
    let mut watcher = broker.v5(&unique("watcher"));
    let topic = unique("will");
    watcher.sub(&topic, QoS::AtLeastOnce);
    let mut bad = v5(Some("alice"), Some(b"wrong"));
    bad.will = Some(will(&topic, b"gone", QoS::AtLeastOnce));
    assert_eq!(attempt(&broker, bad), ReasonCode::BAD_USER_NAME_OR_PASSWORD);
    watcher.expect_nothing();
}

/// A password file that cannot be used stops startup with a message naming the file and
/// the line; it never starts a broker that lets everyone in.
#[test]
fn a_bad_password_file_stops_startup() {
    let dir = std::env::temp_dir();
    let passwd = dir.join(unique("shardmq-badpasswd"));
    std::fs::write(&passwd, "alice:$7$101$25a6oOoXVgNT3wCK$JQ==\nbob:hunter2\n").unwrap();
    let missing = dir.join(unique("shardmq-nopasswd"));
    for (file, words) in [(&passwd, "line 1"), (&missing, "No such file")] {
        let stderr = refused_startup(&format!("[auth]\npassword_file = {file:?}\n"));
        assert!(
            stderr.contains("auth.password_file") && stderr.contains(words),
            "{stderr}"
        );
    }
    std::fs::remove_file(&passwd).unwrap();
}

/// ACL used below: anonymous clients read `public/#` and use `anon/#`; bob reads
/// everything, writes `bob/#` and sends commands; every client writes its own telemetry, reads its own
/// commands and owns `own/<client id>/#`.
const ACL_FILE: &str = "\
topic read public/#
topic readwrite anon/#
user bob
topic read #
topic readwrite bob/#
topic write fleet/+/commands/#
pattern write fleet/%c/telemetry
pattern read fleet/%c/commands/#
pattern readwrite own/%c/#
";

fn acl_broker() -> Broker {
    let acl = std::env::temp_dir().join(unique("shardmq-acl"));
    std::fs::write(&acl, ACL_FILE).unwrap();
    Broker::with_config(&format!(
        "[auth]\npassword_file = {:?}\nacl_file = {acl:?}\n",
        password_file()
    ))
}

/// Bob, who may read every topic: what he receives is what the broker let through.
fn bob(broker: &Broker) -> Client {
    let (mut c, ack) = broker.connect(with_login(
        connect_v5(&unique("bob"), true, 0),
        Some("bob"),
        Some(b"hunter2"),
    ));
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert_eq!(
        c.subscribe("#", QoS::AtLeastOnce).reason_codes,
        [ReasonCode::GRANTED_QOS_1]
    );
    c
}

/// The acknowledgement a PUBLISH gets (PUBACK for QoS 1, PUBREC for QoS 2).
#[track_caller]
fn publish_ack(c: &mut Client, topic: &str, qos: QoS) -> ReasonCode {
    let id = c.next_packet_id();
    let mut p = publish(topic, topic.as_bytes(), qos);
    p.packet_id = id;
    c.send(&Packet::Publish(p));
    match c.wait_for(
        "acknowledgement",
        |p| matches!(p, Packet::PubAck(a) | Packet::PubRec(a) if a.packet_id == id),
    ) {
        Packet::PubAck(a) => a.reason_code,
        Packet::PubRec(a) => {
            if a.reason_code == ReasonCode::SUCCESS {
                c.send(&Packet::PubRel(PubResponse::new(id)));
                c.wait_for("PUBCOMP", |p| matches!(p, Packet::PubComp(_)));
            }
            a.reason_code
        }
        _ => unreachable!(),
    }
}

/// A refused PUBLISH gets 0x87 on MQTT 5 (PUBACK and PUBREC) and reaches nobody, retained
/// or not; an allowed one arrives. MQTT 3.1.1 gets its usual PUBACK and the message is
/// dropped all the same.
#[test]
fn publishes_outside_the_acl_are_refused_and_reach_nobody() {
    let broker = acl_broker();
    let mut watcher = bob(&broker);
    let mut dev = broker.v5("dev7");
    assert_eq!(
        publish_ack(&mut dev, "fleet/dev7/telemetry", QoS::AtLeastOnce),
        ReasonCode::SUCCESS
    );
    assert_eq!(
        watcher.recv_publish().topic.as_str(),
        "fleet/dev7/telemetry"
    );
    for (topic, qos) in [
        ("fleet/dev8/telemetry", QoS::AtLeastOnce),
        ("fleet/dev8/telemetry", QoS::ExactlyOnce),
        ("public/news", QoS::AtLeastOnce),
        ("bob/inbox", QoS::ExactlyOnce),
    ] {
        assert_eq!(
            publish_ack(&mut dev, topic, qos),
            ReasonCode::NOT_AUTHORIZED,
            "{topic} {qos:?}"
        );
    }
    let mut retained = publish("public/news", b"fake", QoS::AtMostOnce);
    retained.retain = true;
    dev.send(&Packet::Publish(retained));
    watcher.expect_nothing();
    // Nothing was retained either.
    let mut late = bob(&broker);
    late.expect_nothing();

    let (mut old, _) = broker.connect(connect_v311("dev9", true));
    assert_eq!(
        publish_ack(&mut old, "fleet/dev8/telemetry", QoS::AtLeastOnce),
        ReasonCode::SUCCESS,
        "3.1.1 has no refusal code in PUBACK"
    );
    watcher.expect_nothing();
    assert_eq!(
        publish_ack(&mut old, "fleet/dev9/telemetry", QoS::AtLeastOnce),
        ReasonCode::SUCCESS
    );
    assert_eq!(
        watcher.recv_publish().topic.as_str(),
        "fleet/dev9/telemetry"
    );
}

/// A filter is granted only when every topic it can match is readable: SUBACK 0x87 (3.1.1:
/// 0x80) otherwise, per filter; `$share/GROUP/` is checked on the filter behind it.
#[test]
fn subscriptions_outside_the_acl_are_refused_per_filter() {
    let broker = acl_broker();
    let mut dev = broker.v5("dev3");
    let s = Subscribe {
        packet_id: 1,
        filters: [
            "fleet/dev3/commands/#",
            "fleet/+/commands/#",
            "public/+",
            "#",
            "$share/g/own/dev3/+",
            "$share/g/own/dev4/+",
        ]
        .iter()
        .map(|f| SubscribeFilter {
            filter: (*f).into(),
            options: SubscriptionOptions::qos(QoS::AtLeastOnce),
        })
        .collect(),
        ..Subscribe::default()
    };
    dev.send(&Packet::Subscribe(s));
    let Packet::SubAck(ack) = dev.wait_for("SUBACK", |p| matches!(p, Packet::SubAck(_))) else {
        unreachable!()
    };
    let granted = ReasonCode::GRANTED_QOS_1;
    let denied = ReasonCode::NOT_AUTHORIZED;
    assert_eq!(
        ack.reason_codes,
        [granted, denied, granted, denied, granted, denied]
    );
    // The granted command filter works.
    let mut commander = bob(&broker);
    commander.publish(
        "fleet/dev3/commands/reboot",
        b"now",
        QoS::AtLeastOnce,
        false,
    );
    assert_eq!(
        dev.recv_publish().topic.as_str(),
        "fleet/dev3/commands/reboot"
    );
    let (mut old, _) = broker.connect(connect_v311("dev4", true));
    let codes = old
        .subscribe("fleet/dev3/commands/#", QoS::AtLeastOnce)
        .reason_codes;
    assert_eq!(codes, [ReasonCode(0x80)], "3.1.1 refusal");
}

/// A Will the client could not publish itself refuses the CONNECT (0x87; 3.1.1: 0x05).
#[test]
fn a_will_outside_the_acl_refuses_the_connect() {
    let broker = acl_broker();
    let mut c = connect_v5("dev5", true, 0);
    c.will = Some(will("fleet/dev6/telemetry", b"x", QoS::AtLeastOnce));
    assert_eq!(attempt(&broker, c), ReasonCode::NOT_AUTHORIZED);
    let mut c = connect_v5("dev5", true, 0);
    c.will = Some(will("fleet/dev5/telemetry", b"x", QoS::AtLeastOnce));
    assert_eq!(attempt(&broker, c), ReasonCode::SUCCESS);
    let mut c = connect_v311("dev5", true);
    c.will = Some(will("public/x", b"x", QoS::AtLeastOnce));
    let mut raw = broker.raw();
    raw.send_raw(&encode(&Packet::Connect(Box::new(c)), Protocol::V311));
    assert_eq!(raw.read_raw(4, WAIT), [0x20, 0x02, 0x00, 0x05]);
}

/// The rules follow a client whose connection moved to its session's shard: a persistent
/// session is reconnected ten times, over both shards, and each connection is held to the
/// same rules.
#[test]
fn acl_rules_hold_on_connections_that_moved_shards() {
    let broker = acl_broker();
    let (first, id) = broker.v5_on_shard(0, 300);
    drop(first);
    for round in 0..10 {
        let (mut c, ack) = broker.connect(connect_v5(&id, false, 300));
        assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
        let own = format!("own/{id}/r{round}");
        assert_eq!(
            publish_ack(&mut c, &own, QoS::AtLeastOnce),
            ReasonCode::SUCCESS
        );
        assert_eq!(
            publish_ack(&mut c, "own/someone-else/x", QoS::AtLeastOnce),
            ReasonCode::NOT_AUTHORIZED,
            "round {round}"
        );
        c.disconnect();
    }
}

/// An ACL file that cannot be used stops startup, naming the line.
#[test]
fn a_bad_acl_file_stops_startup() {
    let acl = std::env::temp_dir().join(unique("shardmq-badacl"));
    std::fs::write(&acl, "topic read a/#\ntopic deny a/secret\n").unwrap();
    let stderr = refused_startup(&format!("[auth]\nacl_file = {acl:?}\n"));
    assert!(
        stderr.contains("auth.acl_file") && stderr.contains("line 2") && stderr.contains("deny"),
        "{stderr}"
    );
    std::fs::remove_file(&acl).unwrap();
}

/// A session belongs to its client id, so another user may resume it (as in mosquitto).
/// What that user may not read goes before anything is delivered: the subscriptions it could
/// not have made and the queued messages on topics it may not read. Bob's persistent session
/// reads `#` and `anon/#`; an anonymous client resumes it and keeps only `anon/#` and the
/// queued `anon/` message, never bob's.
#[test]
fn a_resumed_session_keeps_only_what_its_new_user_may_read() {
    let broker = acl_broker();
    let id = unique("shared-id");
    let login = |c: Connect| with_login(c, Some("bob"), Some(b"hunter2"));
    let (mut owner, ack) = broker.connect(login(connect_v5(&id, true, 300)));
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    for filter in ["#", "anon/#"] {
        assert_eq!(
            owner.subscribe(filter, QoS::AtLeastOnce).reason_codes,
            [ReasonCode::GRANTED_QOS_1]
        );
    }
    owner.disconnect();
    // Queued for the offline session: one message each user may read, one only bob may.
    let (mut bob_pub, _) = broker.connect(login(connect_v5(&unique("bob-pub"), true, 0)));
    assert_eq!(
        publish_ack(&mut bob_pub, "bob/secret", QoS::AtLeastOnce),
        ReasonCode::SUCCESS
    );
    let mut anon_pub = broker.v5(&unique("anon-pub"));
    assert_eq!(
        publish_ack(&mut anon_pub, "anon/hello", QoS::AtLeastOnce),
        ReasonCode::SUCCESS
    );

    let (mut taker, ack) = broker.connect(connect_v5(&id, false, 300));
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert!(ack.session_present, "the session is resumed");
    let first = taker.recv_publish();
    assert_eq!(first.topic.as_str(), "anon/hello");
    taker.ack(&first);
    taker.expect_nothing();
    // `#` is gone, `anon/#` stays.
    assert_eq!(
        publish_ack(&mut bob_pub, "bob/secret2", QoS::AtLeastOnce),
        ReasonCode::SUCCESS
    );
    assert_eq!(
        publish_ack(&mut anon_pub, "anon/again", QoS::AtLeastOnce),
        ReasonCode::SUCCESS
    );
    let next = taker.recv_publish();
    assert_eq!(next.topic.as_str(), "anon/again");
    taker.ack(&next);
    taker.expect_nothing();
    let codes = taker.unsubscribe("#").reason_codes;
    assert_eq!(codes, [ReasonCode::NO_SUBSCRIPTION_EXISTED]);
}
