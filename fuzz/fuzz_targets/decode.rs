//! Arbitrary bytes → `Packet::decode` for every protocol version: must never panic, must
//! either make progress or report an incomplete frame without touching the buffer.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use shardmq::codec::{Packet, Protocol, MAX_FRAME_BYTES};

fuzz_target!(|data: &[u8]| {
    // The first byte picks a maximum packet size some of the time.
    let max = match data.first() {
        Some(&b) if b & 0x80 != 0 => (b & 0x7F) as usize,
        _ => MAX_FRAME_BYTES,
    };
    for protocol in [Protocol::V31, Protocol::V311, Protocol::V5] {
        let mut buf = BytesMut::from(data);
        loop {
            let before = buf.len();
            match Packet::decode(&mut buf, protocol, max) {
                Ok(Some(_)) => assert!(buf.len() < before),
                Ok(None) => {
                    assert_eq!(buf.len(), before);
                    break;
                }
                Err(e) => {
                    let _ = e.reason_code();
                    break;
                }
            }
        }
    }
});
