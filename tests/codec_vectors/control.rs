//! PINGREQ / PINGRESP (§3.12, §3.13), DISCONNECT (§3.14) and AUTH (§3.15, MQTT 5 only).

use super::*;

#[test]
fn ping() {
    for p in [Protocol::V31, Protocol::V311, Protocol::V5] {
        both_ways(&[0xC0, 0x00], p, Packet::PingReq);
        both_ways(&[0xD0, 0x00], p, Packet::PingResp);
    }
}

#[test]
fn disconnect_v311() {
    both_ways_v3(&[0xE0, 0x00], Packet::Disconnect(Disconnect::default()));
}

#[test]
fn disconnect_v5() {
    both_ways(
        &[0xE0, 0x00],
        Protocol::V5,
        Packet::Disconnect(Disconnect::default()),
    );
    // [MQTT-3.14.2.1]: Normal disconnection may be written out explicitly.
    assert_eq!(
        decode_all(&[0xE0, 0x01, 0x00], Protocol::V5),
        Packet::Disconnect(Disconnect::default())
    );
    both_ways(
        &[0xE0, 0x01, 0x04],
        Protocol::V5,
        Packet::Disconnect(Disconnect::new(ReasonCode::DISCONNECT_WITH_WILL_MESSAGE)),
    );
    let bytes = cat(&[
        &[0xE0, 0x0B, 0x8E, 0x09],
        &[0x11, 0x00, 0x00, 0x00, 0x00],
        &[0x1C, 0x00, 0x01, b's'],
    ]);
    both_ways(
        &bytes,
        Protocol::V5,
        Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::SESSION_TAKEN_OVER,
            properties: DisconnectProperties {
                session_expiry_interval: Some(0),
                server_reference: Some(s("s")),
                ..Default::default()
            },
        }),
    );
}

#[test]
fn auth_v5() {
    both_ways(&[0xF0, 0x00], Protocol::V5, Packet::Auth(Auth::default()));
    let bytes = cat(&[
        &[0xF0, 0x0F, 0x18, 0x0D],
        &[0x15, 0x00, 0x05],
        b"SCRAM",
        &[0x16, 0x00, 0x02, 0x01, 0x02],
    ]);
    both_ways(
        &bytes,
        Protocol::V5,
        Packet::Auth(Auth {
            reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
            properties: AuthProperties {
                authentication_method: Some(s("SCRAM")),
                authentication_data: Some(Bytes::from_static(&[1, 2])),
                ..Default::default()
            },
        }),
    );
}

#[test]
fn auth_does_not_encode_before_v5() {
    let mut out = BytesMut::new();
    assert_eq!(
        Packet::Auth(Auth::default()).encode(Protocol::V311, &mut out),
        Err(EncodeError::NotInProtocol(AUTH))
    );
    assert!(out.is_empty());
}
