//! Arbitrary bytes → `Packet::decode` for every protocol version: must never panic, must
//! either make progress or report an incomplete frame without touching the buffer; and the
//! borrowed decoder (`PacketView`) must agree with it on every frame.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use shardmq::codec::{Packet, PacketView, Protocol, MAX_FRAME_BYTES};

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
            let view = PacketView::decode(&buf, protocol, max)
                .map(|v| v.map(|(v, len)| (matches!(v, PacketView::Other), len)));
            let owned = Packet::decode(&mut buf, protocol, max);
            match (&view, &owned) {
                (Ok(None), Ok(None)) | (Ok(Some((true, _))), _) => {}
                (Ok(Some((false, len))), Ok(Some(_))) => assert_eq!(*len, before - buf.len()),
                (Err(a), Err(b)) => assert_eq!(a, b),
                _ => panic!("view {view:?} and owned {owned:?} disagree"),
            }
            match owned {
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
