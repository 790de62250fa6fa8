//! The MQTT 3.1.1 and 5.0 wire format: pure, zero-copy, strict.
//!
//! * **Decoding** works on the connection's `BytesMut` read buffer. An incomplete frame
//!   returns `Ok(None)` and leaves the buffer untouched; a complete one is split off and every
//!   string, topic and payload of the packet is a `Bytes` slice of it (no copies). Every rule
//!   of the specs that a receiver can check is checked, and every failure is a
//!   [`DecodeError`] that knows its reason code.
//! * **Borrowed decoding** ([`PacketView`]) reads PUBLISH and the acknowledgements in place,
//!   for readers that do not keep the packet; same checks, no allocation.
//! * **Encoding** computes the exact frame size first, reserves once and writes straight into
//!   the buffer's spare capacity. [`Publish::encode_shared`] encodes a message once for many
//!   receivers, who only patch their packet identifier.
//!
//! One file per packet family; [`Packet`] ties them together.

mod ack;
mod connect;
mod control;
mod error;
mod packet;
pub mod properties;
mod publish;
mod reason;
mod subscribe;
mod types;
mod view;
pub mod wire;

pub use ack::{PubResponse, PUBACK, PUBCOMP, PUBREC, PUBREL};
pub use connect::{ConnAck, Connect, Will, CONNACK, CONNECT};
pub use control::{Auth, Disconnect, AUTH, DISCONNECT, PINGREQ, PINGRESP};
pub use error::{DecodeError, EncodeError};
pub use packet::{parse_frame_header, FrameHeader, Packet};
pub use properties::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, SubscribeProperties, UnsubscribeProperties, UserProperty, WillProperties,
};
pub use publish::{BarePublish, EncodedPublish, Publish, PUBLISH};
pub use reason::ReasonCode;
pub use subscribe::{
    RetainHandling, SubAck, Subscribe, SubscribeFilter, SubscriptionOptions, UnsubAck, Unsubscribe,
    SUBACK, SUBSCRIBE, UNSUBACK, UNSUBSCRIBE,
};
pub use types::{MqttStr, Protocol, QoS};
pub use view::{AckView, PacketView, PublishView};

/// The largest frame MQTT can express: 268,435,455 bytes of body plus a 5-byte header.
pub const MAX_FRAME_BYTES: usize = wire::MAX_VAR_INT as usize + 5;
