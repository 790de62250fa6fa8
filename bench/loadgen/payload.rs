//! The benchmark payload header: publisher id, sequence number and the scheduled send time.
//!
//! Layout (big endian): `pub_id: u32 | seq: u64 | ts_ns: u64`, then zero padding up to the
//! requested size. `ts_ns` is CLOCK_MONOTONIC nanoseconds of the *intended* send time, so
//! latency measured against it includes any delay the sender suffered (coordinated omission
//! corrected).

/// Bytes of the header; payloads are never smaller.
pub const HEADER_LEN: usize = 20;

/// What a payload says about its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Which publisher sent it (dense, 0-based over the run).
    pub pub_id: u32,
    /// The publisher's sequence number, from 0.
    pub seq: u64,
    /// Intended send time, CLOCK_MONOTONIC ns.
    pub ts_ns: u64,
}

/// Writes the header into the first bytes of `payload` (which must hold `HEADER_LEN`).
#[inline]
pub fn write(payload: &mut [u8], h: Header) {
    payload[0..4].copy_from_slice(&h.pub_id.to_be_bytes());
    payload[4..12].copy_from_slice(&h.seq.to_be_bytes());
    payload[12..20].copy_from_slice(&h.ts_ns.to_be_bytes());
}

/// Reads the header; `None` for a payload too short to carry one.
#[inline]
pub fn read(payload: &[u8]) -> Option<Header> {
    if payload.len() < HEADER_LEN {
        return None;
    }
    Some(Header {
        pub_id: u32::from_be_bytes(payload[0..4].try_into().ok()?),
        seq: u64::from_be_bytes(payload[4..12].try_into().ok()?),
        ts_ns: u64::from_be_bytes(payload[12..20].try_into().ok()?),
    })
}

/// A payload of `size` bytes (at least `HEADER_LEN`) carrying `h`.
pub fn build(size: usize, h: Header) -> Vec<u8> {
    let mut v = vec![0u8; size.max(HEADER_LEN)];
    write(&mut v, h);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = Header {
            pub_id: 7,
            seq: u64::MAX - 3,
            ts_ns: 123_456_789_012,
        };
        let p = build(64, h);
        assert_eq!(p.len(), 64);
        assert_eq!(read(&p), Some(h));
        assert!(p[HEADER_LEN..].iter().all(|&b| b == 0));
    }

    #[test]
    fn short_payloads() {
        assert_eq!(read(&[0u8; 19]), None);
        assert_eq!(
            build(
                4,
                Header {
                    pub_id: 1,
                    seq: 2,
                    ts_ns: 3
                }
            )
            .len(),
            HEADER_LEN
        );
    }
}
