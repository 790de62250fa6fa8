//! One live network connection as the shard sees it: buffers, protocol, keep alive,
//! topic aliases. The socket itself stays in the runtime.

use ahash::AHashMap;
use bytes::BytesMut;

use super::slab::Key;
use crate::codec::{Connect, MqttStr, Protocol};

/// Topic aliases of one connection (MQTT 5 §3.3.2.3.4).
#[derive(Debug, Default)]
pub struct TopicAliases {
    /// Client → broker (index = alias - 1).
    pub inbound: Vec<Option<MqttStr>>,
    /// Broker → client.
    pub outbound: AHashMap<MqttStr, u16>,
}

/// Where the connection is in its life.
#[derive(Debug)]
pub enum ConnState {
    /// Waiting for CONNECT [MQTT-3.1.0-1].
    AwaitingConnect,
    /// CONNECT received; waiting for the client id's home shard to answer.
    Connecting {
        /// The CONNECT being answered.
        connect: Box<Connect>,
        /// The client id was empty and assigned by us (returned in CONNACK).
        assigned_id: bool,
    },
    /// CONNECT received; the session lives on another shard, so the runtime moves the socket
    /// there ([`crate::shard::Shard::hand_over`]). Nothing is decoded here meanwhile.
    HandingOver,
    /// CONNACK sent; packets flow.
    Active,
    /// Finished: flush what is buffered, then close.
    Closing,
}

/// The byte buffers of a connection that is not idle.
#[derive(Debug, Default)]
struct ConnBuffers {
    out: BytesMut,
    input: BytesMut,
}

/// A connection's shard-side state.
#[derive(Debug)]
pub struct Conn {
    /// Lifecycle.
    pub state: ConnState,
    /// Protocol fixed by CONNECT.
    pub protocol: Protocol,
    /// The session once connected.
    pub session: Option<Key>,
    /// Bytes to write and bytes of an incomplete packet: boxed, and only while there are
    /// some, so an idle connection pays 8 bytes for them instead of 64.
    buffers: Option<Box<ConnBuffers>>,
    /// True while an operation waits for other shards (SUBACK barrier, CONNECT claim):
    /// no further packet of this connection is processed meanwhile, which keeps order.
    pub blocked: bool,
    /// Already in the shard's ready list (output added, unblocked, or closing).
    pub ready: bool,
    /// Negotiated keep alive (seconds, 0 = none).
    pub keepalive_secs: u16,
    /// Time of the last packet received (ms); the accept time before CONNECT.
    pub last_packet_ms: u64,
    /// Second under which the timer wheel files this connection (older entries are stale).
    pub wheel_second: u64,
    /// Publish the Will when this connection ends (cleared by a normal DISCONNECT).
    pub will_on_close: bool,
    /// True while the runtime does not read this connection (backpressure): what the client
    /// sends meanwhile waits in the socket, so its keep alive cannot expire.
    pub input_paused: bool,
    /// Topic aliases in both directions; allocated on first use.
    pub aliases: Option<Box<TopicAliases>>,
    /// Size of the last output taken, as a power of two (log2; 0: none): the next output
    /// buffer starts that large instead of growing from empty by doubling, a `realloc` and
    /// copy per step (1.5% of the broker at full speed). One byte, so `Conn` stays 64.
    out_size_log2: u8,
}

/// Largest output buffer a connection starts with: 64 KiB.
const MAX_OUT_SIZE_LOG2: u32 = 16;

/// The power of two (log2) at or above `len`, at most [`MAX_OUT_SIZE_LOG2`]; 0 for 0 or 1.
fn out_size_log2(len: usize) -> u8 {
    (usize::BITS - len.saturating_sub(1).leading_zeros()).min(MAX_OUT_SIZE_LOG2) as u8
}

impl Conn {
    /// A new connection waiting for CONNECT.
    pub fn new(now_ms: u64) -> Conn {
        Conn {
            state: ConnState::AwaitingConnect,
            protocol: Protocol::V311,
            session: None,
            buffers: None,
            blocked: false,
            ready: false,
            keepalive_secs: 0,
            last_packet_ms: now_ms,
            wheel_second: 0,
            will_on_close: true,
            input_paused: false,
            aliases: None,
            out_size_log2: 0,
        }
    }

    /// True once the connection is finishing.
    #[inline]
    pub fn is_closing(&self) -> bool {
        matches!(self.state, ConnState::Closing)
    }

    /// True while the runtime must move the socket to another shard: once no receive or
    /// send is pending on it, call [`crate::shard::Shard::hand_over`].
    #[inline]
    pub fn is_handing_over(&self) -> bool {
        matches!(self.state, ConnState::HandingOver)
    }

    /// True when the connection's task may decode more input now.
    #[inline]
    pub fn can_process_input(&self) -> bool {
        !self.blocked && !self.is_closing()
    }

    /// Output to append encoded packets to (allocates the buffers on first use).
    #[inline]
    pub fn out(&mut self) -> &mut BytesMut {
        let size_log2 = self.out_size_log2;
        let out = &mut self.buffers.get_or_insert_with(Box::default).out;
        if out.capacity() == 0 && size_log2 > 0 {
            out.reserve(1 << size_log2);
        }
        out
    }

    /// Bytes waiting to be written.
    #[inline]
    pub fn out_len(&self) -> usize {
        self.buffers.as_ref().map_or(0, |b| b.out.len())
    }

    /// Takes everything waiting to be written; an idle connection then drops its buffers.
    #[inline]
    pub fn take_out(&mut self) -> BytesMut {
        let Some(buffers) = self.buffers.as_mut() else {
            return BytesMut::new();
        };
        let out = std::mem::take(&mut buffers.out);
        if buffers.input.is_empty() {
            self.buffers = None;
        }
        self.out_size_log2 = out_size_log2(out.len());
        out
    }

    /// The incomplete packet kept from earlier reads (empty for almost every connection).
    #[inline]
    pub fn input(&self) -> &[u8] {
        self.buffers.as_ref().map_or(&[], |b| &b.input[..])
    }

    /// Takes the kept input, to decode it or to move it with the connection.
    #[inline]
    pub fn take_input(&mut self) -> BytesMut {
        self.buffers
            .as_mut()
            .map(|b| std::mem::take(&mut b.input))
            .unwrap_or_default()
    }

    /// Keeps `input` (an incomplete packet) for the next read; an empty one is dropped,
    /// and with it the buffers when nothing waits to be written either.
    #[inline]
    pub fn set_input(&mut self, input: BytesMut) {
        if !input.is_empty() {
            self.buffers.get_or_insert_with(Box::default).input = input;
        } else if let Some(buffers) = self.buffers.as_mut() {
            buffers.input = BytesMut::new();
            if buffers.out.is_empty() {
                self.buffers = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_output_starts_as_large_as_the_last() {
        assert_eq!(out_size_log2(0), 0);
        assert_eq!(out_size_log2(1), 0);
        assert_eq!(out_size_log2(100), 7);
        assert_eq!(out_size_log2(128), 7);
        assert_eq!(out_size_log2(129), 8);
        assert_eq!(out_size_log2(10 << 20), 16, "capped at 64 KiB");
        let mut c = Conn::new(0);
        assert_eq!(
            c.out().capacity(),
            0,
            "nothing known yet: no allocation ahead"
        );
        c.out().extend_from_slice(&[0; 3000]);
        assert_eq!(c.take_out().len(), 3000);
        assert!(c.out().capacity() >= 4096);
        // An idle connection still keeps no buffer.
        c.take_out();
        assert!(c.buffers.is_none());
        assert_eq!(
            std::mem::size_of::<Conn>(),
            64,
            "a connection's state stays one line"
        );
    }
}
