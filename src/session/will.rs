//! The Will a session keeps until its connection ends: most devices of a fleet set one (a
//! retained "offline" status), and it waits, unused, as long as the device stays connected.
//!
//! The decoded [`Will`] is about 200 bytes of handles (topic, payload and five optional
//! properties), and its topic and payload are slices of the read buffer the CONNECT came in,
//! which they keep alive. Kept here instead: topic and payload copied into one exact
//! allocation, the delay beside them, and the other properties, which few Wills carry,
//! behind one pointer.

use bytes::Bytes;

use crate::codec::{MqttStr, QoS, Will, WillProperties};

/// A session's Will, compact; [`StoredWill::into_will`] gives back what was decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWill {
    /// The topic, then the payload.
    text: Box<[u8]>,
    /// Bytes of `text` that are the topic (an MQTT string: at most 65,535).
    topic_bytes: u16,
    qos: QoS,
    retain: bool,
    /// Will Delay Interval (absent: 0).
    delay_secs: u32,
    /// The Will properties other than the delay, when there are any, copied out of the read
    /// buffer.
    properties: Option<Box<WillProperties>>,
}

impl StoredWill {
    /// Copies `will` out of its read buffer.
    pub fn new(will: &Will) -> StoredWill {
        let topic = will.topic.as_str().as_bytes();
        let mut text = Vec::with_capacity(topic.len() + will.payload.len());
        text.extend_from_slice(topic);
        text.extend_from_slice(&will.payload);
        let p = &will.properties;
        let has_properties = p.payload_format_indicator.is_some()
            || p.message_expiry_interval.is_some()
            || p.content_type.is_some()
            || p.response_topic.is_some()
            || p.correlation_data.is_some()
            || !p.user_properties.is_empty();
        let owned = |s: &MqttStr| MqttStr::from(s.as_str());
        let properties = has_properties.then(|| {
            Box::new(WillProperties {
                will_delay_interval: None,
                payload_format_indicator: p.payload_format_indicator,
                message_expiry_interval: p.message_expiry_interval,
                content_type: p.content_type.as_ref().map(owned),
                response_topic: p.response_topic.as_ref().map(owned),
                correlation_data: p
                    .correlation_data
                    .as_ref()
                    .map(|d| Bytes::copy_from_slice(d)),
                user_properties: p
                    .user_properties
                    .iter()
                    .map(|(k, v)| (owned(k), owned(v)))
                    .collect(),
            })
        });
        StoredWill {
            text: text.into_boxed_slice(),
            // The codec decoded the topic as an MQTT string: it fits in 16 bits.
            topic_bytes: u16::try_from(topic.len()).unwrap_or(u16::MAX),
            qos: will.qos,
            retain: will.retain,
            delay_secs: p.will_delay_interval.unwrap_or(0),
            properties,
        }
    }

    /// Seconds between the end of the connection and the Will's publication.
    pub fn delay_secs(&self) -> u32 {
        self.delay_secs
    }

    /// The Will as decoded (the delay as `Some` only when it is not 0).
    pub fn into_will(self) -> Will {
        let (topic, payload) = self.text.split_at(usize::from(self.topic_bytes));
        let mut properties = self.properties.map(|p| *p).unwrap_or_default();
        properties.will_delay_interval = (self.delay_secs != 0).then_some(self.delay_secs);
        Will {
            topic: MqttStr::from_validated(Bytes::copy_from_slice(topic)),
            payload: Bytes::copy_from_slice(payload),
            qos: self.qos,
            retain: self.retain,
            properties,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn will(properties: WillProperties) -> Will {
        Will {
            topic: MqttStr::from("dev/7/status"),
            payload: Bytes::from_static(b"offline"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties,
        }
    }

    #[test]
    fn gives_back_the_will_it_stored() {
        let plain = will(WillProperties::default());
        assert_eq!(StoredWill::new(&plain).into_will(), plain);

        let delayed = will(WillProperties {
            will_delay_interval: Some(30),
            ..WillProperties::default()
        });
        let stored = StoredWill::new(&delayed);
        assert_eq!(stored.delay_secs(), 30);
        assert!(stored.properties.is_none(), "a delay alone is kept inline");
        assert_eq!(stored.into_will(), delayed);

        let full = will(WillProperties {
            will_delay_interval: Some(5),
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(60),
            content_type: Some(MqttStr::from("text/plain")),
            response_topic: Some(MqttStr::from("dev/7/reply")),
            correlation_data: Some(Bytes::from_static(b"\x01\x02")),
            user_properties: vec![(MqttStr::from("k"), MqttStr::from("v"))],
        });
        assert_eq!(StoredWill::new(&full).into_will(), full);
    }

    #[test]
    fn empty_topic_part_and_payload() {
        let mut w = will(WillProperties::default());
        w.payload = Bytes::new();
        assert_eq!(StoredWill::new(&w).into_will(), w);
    }
}
