//! decode → encode → decode gives the same packet, for every protocol version.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use shardmq::codec::{Packet, Protocol, MAX_FRAME_BYTES};

fuzz_target!(|data: &[u8]| {
    for protocol in [Protocol::V31, Protocol::V311, Protocol::V5] {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(packet)) = Packet::decode(&mut buf, protocol, MAX_FRAME_BYTES) {
            let mut out = BytesMut::new();
            packet
                .encode(protocol, &mut out)
                .expect("a decoded packet encodes");
            let frame = out.clone();
            let again = Packet::decode(&mut out, protocol, MAX_FRAME_BYTES)
                .expect("re-encoded packet decodes")
                .expect("re-encoded packet is complete");
            assert_eq!(again, packet);
            assert!(out.is_empty());
            // Encoding is canonical: the second encode gives the same bytes.
            let mut out2 = BytesMut::new();
            again.encode(protocol, &mut out2).unwrap();
            assert_eq!(out2, frame);
        }
    }
});
