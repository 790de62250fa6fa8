//! Bad input against the real broker: a connection that sends it is closed with the right
//! reason, and a bystander proves the others never noticed.

use super::*;

/// A bystander subscribed on a topic; `check` proves it still receives after each abuse.
pub struct Bystander {
    sub: Client,
    publ: Client,
    topic: String,
    n: u32,
}

impl Bystander {
    pub fn new(broker: &Broker) -> Bystander {
        let topic = unique("bystander");
        let mut sub = broker.v5(&unique("by-sub"));
        sub.sub(&topic, QoS::AtLeastOnce);
        let publ = broker.v311(&unique("by-pub"));
        Bystander {
            sub,
            publ,
            topic,
            n: 0,
        }
    }

    #[track_caller]
    pub fn check(&mut self) {
        self.n += 1;
        let payload = self.n.to_be_bytes();
        self.publ
            .publish(&self.topic, &payload, QoS::AtLeastOnce, false);
        assert_eq!(&self.sub.recv_publish().payload[..], &payload);
    }
}

/// Sends `bytes` on a fresh connected client of `protocol` and expects the connection to
/// close, with DISCONNECT `reason` for 5.0 (none for 3.1.1).
#[track_caller]
pub fn abuse(broker: &Broker, protocol: Protocol, bytes: &[u8], reason: ReasonCode) {
    let (mut c, ack) = broker.connect(Connect::new(protocol, unique("bad")));
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    c.send_raw(bytes);
    if protocol.is_v5() {
        c.expect_disconnect(reason);
    } else {
        let seen = c.expect_closed();
        assert!(seen.is_empty(), "3.1.1 gets no DISCONNECT: {seen:?}");
    }
}

/// A CONNECT frame built by hand: protocol name, level, flags, keep alive, client id (and,
/// for level 5, an empty property block).
pub fn raw_connect(name: &[u8], level: u8, flags: u8, client_id: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(name.len() as u16).to_be_bytes());
    body.extend_from_slice(name);
    body.push(level);
    body.push(flags);
    body.extend_from_slice(&60u16.to_be_bytes());
    if level == 5 {
        body.push(0);
    }
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id);
    let mut frame = vec![0x10, body.len() as u8];
    frame.extend(body);
    frame
}
