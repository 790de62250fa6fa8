//! Who may connect: a mosquitto password file (`auth.password_file`) and
//! `auth.allow_anonymous`, against the real broker with two shards.

mod common;

use common::*;
use std::process::{Command, Stdio};

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
        let config = dir.join(format!("{}.toml", unique("shardmq-auth")));
        std::fs::write(&config, format!("[auth]\npassword_file = {file:?}\n")).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_shardmq"))
            .args(["--port", "0", "--shards", "1", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            out.stdout.is_empty(),
            "it must not listen: {:?}",
            out.stdout
        );
        assert!(
            stderr.contains("auth.password_file") && stderr.contains(words),
            "{stderr}"
        );
        std::fs::remove_file(&config).unwrap();
    }
    std::fs::remove_file(&passwd).unwrap();
}
