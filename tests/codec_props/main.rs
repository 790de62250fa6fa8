//! Property tests over generated valid packets (every packet type, both protocol versions,
//! every property), frame splitting at every byte offset, and a seeded random-bytes /
//! mutated-frame run that must never panic.

mod strategies;

use bytes::BytesMut;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use shardmq::codec::*;

const MAX: usize = MAX_FRAME_BYTES;

use strategies::*;

// ---------------------------------------------------------------- helpers

fn encode(packet: &Packet, protocol: Protocol) -> BytesMut {
    let mut out = BytesMut::new();
    packet
        .encode(protocol, &mut out)
        .expect("valid packet encodes");
    out
}

fn decode_one(frame: &[u8], protocol: Protocol) -> Packet {
    let mut buf = BytesMut::from(frame);
    let p = Packet::decode(&mut buf, protocol, MAX)
        .unwrap_or_else(|e| panic!("{frame:02x?}: {e:?}"))
        .expect("complete");
    assert!(buf.is_empty());
    p
}

/// The borrowed decoder must agree with the owned one on the same bytes: same `None`, same
/// error, same fields, same frame length.
fn assert_view_agrees(buf: &[u8], protocol: Protocol, max: usize) {
    let owned = Packet::decode(&mut BytesMut::from(buf), protocol, max);
    let view = PacketView::decode(buf, protocol, max);
    match (view, owned) {
        (Ok(None), Ok(None)) => {}
        (Err(a), Err(b)) => assert_eq!(a, b, "errors differ on {buf:02x?}"),
        (Ok(Some((PacketView::Other, len))), owned) => {
            let ty = buf[0] >> 4;
            assert!(
                !(3..=7).contains(&ty),
                "{buf:02x?}: view says Other for type {ty}"
            );
            assert!(len <= buf.len());
            if let Ok(Some(p)) = owned {
                assert_eq!(p.packet_type(), ty);
            }
        }
        (Ok(Some((PacketView::Publish(v), len))), Ok(Some(Packet::Publish(p)))) => {
            assert_eq!((v.dup, v.qos, v.retain), (p.dup, p.qos, p.retain));
            assert_eq!(v.topic, p.topic.as_str());
            assert_eq!(v.packet_id, p.packet_id);
            assert_eq!(v.decode_properties().unwrap(), p.properties);
            assert_eq!(v.payload, &p.payload[..]);
            assert_eq!(len, frame_len_of(buf));
        }
        (Ok(Some((PacketView::Ack(v), len))), Ok(Some(p))) => {
            let a = match &p {
                Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => a,
                other => panic!("{buf:02x?}: view Ack, owned {other:?}"),
            };
            assert_eq!(v.packet_type, p.packet_type());
            assert_eq!((v.packet_id, v.reason_code), (a.packet_id, a.reason_code));
            assert_eq!(v.decode_properties().unwrap(), a.properties);
            assert_eq!(len, frame_len_of(buf));
        }
        (view, owned) => panic!("{buf:02x?}: view {view:?}, owned {owned:?}"),
    }
}

fn frame_len_of(buf: &[u8]) -> usize {
    parse_frame_header(buf, usize::MAX)
        .unwrap()
        .unwrap()
        .frame_len()
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(Config { cases: 3000, failure_persistence: None, ..Config::default() })]

    /// encode → decode gives the packet back, and encode is deterministic and canonical.
    #[test]
    fn roundtrip((protocol, p) in packet_any_protocol()) {
        let frame = encode(&p, protocol);
        if let Packet::Publish(publish) = &p {
            prop_assert_eq!(publish.encoded_len(protocol).unwrap(), frame.len());
            let shared = publish.encode_shared(protocol).unwrap();
            let mut out = BytesMut::new();
            shared.write(publish.packet_id, publish.dup, &mut out);
            prop_assert_eq!(&out[..], &frame[..], "encode_shared differs from encode");
        }
        let header = parse_frame_header(&frame, MAX).unwrap().unwrap();
        prop_assert_eq!(header.frame_len(), frame.len());
        let back = decode_one(&frame, protocol);
        assert_view_agrees(&frame, protocol, MAX);
        prop_assert_eq!(&back, &p);
        prop_assert_eq!(&encode(&back, protocol)[..], &frame[..]);
    }

    /// Every valid frame split at every byte offset: the prefix is `Ok(None)` and stays in
    /// the buffer untouched; the rest completes the same packet.
    #[test]
    fn split_at_every_offset((protocol, p) in packet_any_protocol()) {
        let frame = encode(&p, protocol);
        // Long frames: every offset of the header and the first 64 bytes, then a stride.
        let offsets = (0..frame.len()).filter(|&i| i < 64 || i % 17 == 0 || i + 3 > frame.len());
        for at in offsets {
            let mut buf = BytesMut::with_capacity(frame.len());
            buf.extend_from_slice(&frame[..at]);
            let ptr = buf.as_ptr();
            prop_assert_eq!(Packet::decode(&mut buf, protocol, MAX), Ok(None), "split at {}", at);
            prop_assert_eq!(&buf[..], &frame[..at]);
            prop_assert_eq!(buf.as_ptr(), ptr);
            buf.extend_from_slice(&frame[at..]);
            prop_assert_eq!(Packet::decode(&mut buf, protocol, MAX), Ok(Some(p.clone())));
            prop_assert!(buf.is_empty());
        }
    }

    /// `BarePublish` (the broker's send path for messages without properties) writes the
    /// same bytes as `Publish::encode` with an empty property block.
    #[test]
    fn bare_publish_matches_publish(
        protocol in protocol(),
        (dup, qos, retain) in (any::<bool>(), qos(), any::<bool>()),
        topic in topic_name(),
        id in packet_id(),
        body in payload(),
    ) {
        let packet_id = if qos == QoS::AtMostOnce { 0 } else { id };
        let dup = dup && qos != QoS::AtMostOnce;
        let full = Publish {
            dup, qos, retain, topic: topic.clone(), packet_id,
            properties: PublishProperties::default(), payload: body.clone(),
        };
        let bare = BarePublish { dup, qos, retain, topic: topic.as_str(), packet_id, payload: &body };
        let mut out = BytesMut::new();
        bare.encode(protocol, &mut out).unwrap();
        prop_assert_eq!(&out[..], &encode(&Packet::Publish(full), protocol)[..]);
    }

    /// Two frames back to back decode one after the other.
    #[test]
    fn back_to_back((protocol, a, b) in protocol().prop_flat_map(|p| (Just(p), packet(p), packet(p)))) {
        let mut buf = encode(&a, protocol);
        buf.extend_from_slice(&encode(&b, protocol));
        prop_assert_eq!(Packet::decode(&mut buf, protocol, MAX), Ok(Some(a)));
        prop_assert_eq!(Packet::decode(&mut buf, protocol, MAX), Ok(Some(b)));
        prop_assert!(buf.is_empty());
    }
}

#[test]
fn every_vector_split_at_every_offset() {
    // The full split check (every offset, no stride) on a large generated sample.
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = packet_any_protocol();
    for _ in 0..300 {
        let (protocol, p) = strategy.new_tree(&mut runner).unwrap().current();
        let frame = encode(&p, protocol);
        for at in 0..frame.len() {
            let mut buf = BytesMut::from(&frame[..at]);
            assert_eq!(Packet::decode(&mut buf, protocol, MAX), Ok(None));
            assert_eq!(&buf[..], &frame[..at]);
            buf.extend_from_slice(&frame[at..]);
            assert_eq!(Packet::decode(&mut buf, protocol, MAX), Ok(Some(p.clone())));
        }
    }
}

// ---------------------------------------------------------------- random bytes

/// SplitMix64: small, seedable, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Decodes everything in `input` with every protocol; whatever decodes must re-encode and
/// decode to the same packet. Returns how many packets decoded.
fn decode_stream(input: &[u8], max: usize) -> usize {
    let mut decoded = 0;
    for protocol in [Protocol::V31, Protocol::V311, Protocol::V5] {
        let mut buf = BytesMut::from(input);
        loop {
            let before = buf.len();
            assert_view_agrees(&buf, protocol, max);
            match Packet::decode(&mut buf, protocol, max) {
                Ok(Some(p)) => {
                    decoded += 1;
                    assert!(buf.len() < before, "decode made no progress");
                    let mut again = BytesMut::new();
                    // CONNECT re-encodes with its own protocol.
                    p.encode(protocol, &mut again)
                        .unwrap_or_else(|e| panic!("{input:02x?}: {p:?} does not encode: {e}"));
                    let back = Packet::decode(&mut again, protocol, MAX);
                    assert_eq!(back, Ok(Some(p)), "input {input:02x?}");
                    assert!(again.is_empty());
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before);
                    break;
                }
                Err(_) => break,
            }
        }
    }
    decoded
}

#[test]
fn random_and_mutated_frames_never_panic() {
    let seed: u64 = std::env::var("CODEC_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_C0DE_2024);
    let iterations: usize = std::env::var("CODEC_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    println!(
        "random decode: seed {seed} ({iterations} iterations); rerun with CODEC_FUZZ_SEED={seed}"
    );
    let mut rng = Rng(seed);

    // A corpus of valid frames from the proptest strategies, seeded from the same seed.
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let strategy = packet_any_protocol();
    let corpus: Vec<Vec<u8>> = (0..500)
        .map(|_| {
            let (protocol, p) = strategy.new_tree(&mut runner).unwrap().current();
            encode(&p, protocol).to_vec()
        })
        .collect();

    let mut decoded = 0;
    let mut input = Vec::with_capacity(512);
    for i in 0..iterations {
        input.clear();
        match i % 4 {
            // Pure random bytes, with a plausible first byte half of the time.
            0 => {
                let n = rng.below(48);
                input.extend((0..n).map(|_| rng.byte()));
                if !input.is_empty() && rng.next() & 1 == 0 {
                    input[0] = (input[0] & 0xF0) | [0, 0, 2, 0][rng.below(4)];
                    if input.len() > 1 {
                        input[1] = (input.len() - 2).min(127) as u8;
                    }
                }
            }
            // A valid frame with a few bytes changed.
            1 | 2 => {
                input.extend_from_slice(&corpus[rng.below(corpus.len())]);
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(input.len());
                    match rng.below(4) {
                        0 => input[at] = rng.byte(),
                        1 => input[at] ^= 1 << rng.below(8),
                        2 => input[at] = [0x00, 0x7F, 0x80, 0xFF, b'+', b'#'][rng.below(6)],
                        _ => input[at] = input[at].wrapping_add(1),
                    }
                }
            }
            // Two valid frames spliced, truncated or extended.
            _ => {
                let a = &corpus[rng.below(corpus.len())];
                let b = &corpus[rng.below(corpus.len())];
                input.extend_from_slice(a);
                input.extend_from_slice(b);
                match rng.below(3) {
                    0 => input.truncate(rng.below(input.len() + 1)),
                    1 => {
                        let n = rng.below(input.len());
                        input.drain(..n);
                    }
                    _ => input.extend((0..rng.below(8)).map(|_| rng.byte())),
                }
            }
        }
        let max = if rng.below(8) == 0 {
            rng.below(64)
        } else {
            MAX
        };
        decoded += decode_stream(&input, max);
    }
    println!("random decode: {decoded} packets decoded and round-tripped");
    assert!(
        decoded > iterations / 4,
        "mutations too destructive to be useful"
    );
}
