//! Interoperability with an independent client library, rumqttc 0.24 (MQTT 3.1.1 and 5.0),
//! against the real broker (two shards).

mod common;

use common::{unique, Broker};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

mod v4 {
    use super::*;
    pub use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, Publish, QoS};

    /// A connected rumqttc 3.1.1 client. Its event loop is polled inline while the test
    /// waits for a packet, or by a background task (`background`) for publishers.
    pub struct C {
        pub client: AsyncClient,
        pub eventloop: Option<EventLoop>,
        pub task: Option<JoinHandle<()>>,
        pub session_present: bool,
    }

    pub async fn connect(addr: SocketAddr, opts: impl FnOnce(&mut MqttOptions)) -> C {
        let mut o = MqttOptions::new(unique("rumqttc"), addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        opts(&mut o);
        let (client, mut eventloop) = AsyncClient::new(o, 1000);
        let session_present = loop {
            match timeout(WAIT, eventloop.poll())
                .await
                .expect("CONNACK in time")
            {
                Ok(Event::Incoming(Packet::ConnAck(a))) => {
                    assert_eq!(a.code, rumqttc::ConnectReturnCode::Success);
                    break a.session_present;
                }
                Ok(_) => {}
                Err(e) => panic!("connection failed before CONNACK: {e}"),
            }
        };
        C {
            client,
            eventloop: Some(eventloop),
            task: None,
            session_present,
        }
    }

    impl C {
        /// Polls until `pick` accepts an incoming packet.
        pub async fn until<T>(
            &mut self,
            what: &str,
            mut pick: impl FnMut(Packet) -> Option<T>,
        ) -> T {
            let el = self.eventloop.as_mut().expect("event loop polled inline");
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                match tokio::time::timeout_at(deadline, el.poll()).await {
                    Err(_) => panic!("{what}: timed out"),
                    Ok(Ok(Event::Incoming(p))) => {
                        if let Some(t) = pick(p) {
                            return t;
                        }
                    }
                    Ok(Ok(Event::Outgoing(_))) => {}
                    Ok(Err(e)) => panic!("{what}: connection error {e}"),
                }
            }
        }

        pub async fn next_publish(&mut self) -> Publish {
            self.until("PUBLISH", |p| match p {
                Packet::Publish(p) => Some(p),
                _ => None,
            })
            .await
        }

        pub async fn suback(&mut self) {
            self.until("SUBACK", |p| matches!(p, Packet::SubAck(_)).then_some(()))
                .await
        }

        /// Polls the event loop in a background task from now on.
        pub fn background(&mut self) {
            let mut el = self.eventloop.take().expect("not yet in the background");
            self.task = Some(tokio::spawn(
                async move { while el.poll().await.is_ok() {} },
            ));
        }

        /// Drops the connection without DISCONNECT.
        pub fn kill(mut self) {
            if let Some(t) = self.task.take() {
                t.abort();
            }
            self.eventloop = None;
        }

        /// Sends DISCONNECT and polls until the connection ends.
        pub async fn disconnect(mut self) {
            self.client.disconnect().await.unwrap();
            let el = self.eventloop.as_mut().expect("inline");
            let _ = timeout(WAIT, async { while el.poll().await.is_ok() {} }).await;
        }
    }
}

/// rumqttc 3.1.1: QoS 0, 1 and 2 between two rumqttc clients, 200 messages per QoS in
/// order [MQTT-4.3, MQTT-4.6.0-6].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_v311_qos_flows() {
    use v4::*;
    let broker = Broker::start();
    let topic = unique("rq/t");
    let mut sub = connect(broker.addr, |_| {}).await;
    sub.client
        .subscribe(&topic, QoS::ExactlyOnce)
        .await
        .unwrap();
    sub.suback().await;
    let mut publ = connect(broker.addr, |_| {}).await;
    publ.background();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        for i in 0..200u32 {
            publ.client
                .publish(&topic, qos, false, i.to_be_bytes().to_vec())
                .await
                .unwrap();
        }
        for i in 0..200u32 {
            let p = sub.next_publish().await;
            assert_eq!(p.qos, qos);
            assert_eq!(u32::from_be_bytes(p.payload[..].try_into().unwrap()), i);
        }
    }
    let quiet = timeout(
        std::time::Duration::from_millis(300),
        sub.until("nothing", |p| matches!(p, Packet::Publish(_)).then_some(())),
    );
    assert!(quiet.await.is_err(), "unexpected extra PUBLISH");
}

/// rumqttc 3.1.1: retained messages [MQTT-3.3.1-6] and the Last Will on a dropped
/// connection [MQTT-3.1.2-8].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_v311_retained_and_will() {
    use v4::*;
    let broker = Broker::start();
    let topic = unique("rq/ret");
    let will_topic = unique("rq/will");
    let mut publ = connect(broker.addr, |_| {}).await;
    publ.background();
    publ.client
        .publish(&topic, QoS::AtLeastOnce, true, b"retained".to_vec())
        .await
        .unwrap();
    let mut sub = connect(broker.addr, |_| {}).await;
    // Give the retained publish time to land before subscribing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    sub.client
        .subscribe(&topic, QoS::AtLeastOnce)
        .await
        .unwrap();
    sub.client
        .subscribe(&will_topic, QoS::AtLeastOnce)
        .await
        .unwrap();
    let p = sub.next_publish().await;
    assert!(p.retain);
    assert_eq!(&p.payload[..], b"retained");
    let dying = connect(broker.addr, |o| {
        o.set_last_will(LastWill::new(&will_topic, "dead", QoS::AtLeastOnce, false));
    })
    .await;
    dying.kill();
    let p = sub.next_publish().await;
    assert_eq!(p.topic, will_topic);
    assert_eq!(&p.payload[..], b"dead");
}

/// rumqttc 3.1.1: a persistent session (Clean Session 0) gets Session Present 1 and the
/// QoS 1 messages published while it was away [MQTT-3.1.2-5].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_v311_persistent_session() {
    use v4::*;
    let broker = Broker::start();
    let topic = unique("rq/persist");
    let id = unique("rq-persist");
    let mut c = {
        let id = id.clone();
        connect(broker.addr, move |o| {
            *o = MqttOptions::new(id, o.broker_address().0, o.broker_address().1);
            o.set_clean_session(false);
        })
        .await
    };
    c.client.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    c.suback().await;
    c.disconnect().await;
    let mut publ = connect(broker.addr, |_| {}).await;
    publ.background();
    for i in 0..5u8 {
        publ.client
            .publish(&topic, QoS::AtLeastOnce, false, vec![i])
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = connect(broker.addr, move |o| {
        *o = MqttOptions::new(id, o.broker_address().0, o.broker_address().1);
        o.set_clean_session(false);
    })
    .await;
    assert!(c.session_present);
    for i in 0..5u8 {
        assert_eq!(c.next_publish().await.payload[0], i);
    }
}

mod v5c {
    use super::*;
    pub use rumqttc::v5::mqttbytes::v5::{
        ConnectProperties, LastWill, Packet, Publish, PublishProperties, SubscribeProperties,
    };
    pub use rumqttc::v5::mqttbytes::QoS;
    pub use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};

    pub struct C {
        pub client: AsyncClient,
        pub eventloop: Option<EventLoop>,
        pub task: Option<JoinHandle<()>>,
        pub session_present: bool,
    }

    pub async fn connect(addr: SocketAddr, id: &str, opts: impl FnOnce(&mut MqttOptions)) -> C {
        let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        opts(&mut o);
        let (client, mut eventloop) = AsyncClient::new(o, 1000);
        let session_present = loop {
            match timeout(WAIT, eventloop.poll())
                .await
                .expect("CONNACK in time")
            {
                Ok(Event::Incoming(Packet::ConnAck(a))) => break a.session_present,
                Ok(_) => {}
                Err(e) => panic!("connection failed before CONNACK: {e}"),
            }
        };
        C {
            client,
            eventloop: Some(eventloop),
            task: None,
            session_present,
        }
    }

    impl C {
        /// Polls until `pick` accepts an incoming packet.
        pub async fn until<T>(
            &mut self,
            what: &str,
            mut pick: impl FnMut(Packet) -> Option<T>,
        ) -> T {
            let el = self.eventloop.as_mut().expect("event loop polled inline");
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                match tokio::time::timeout_at(deadline, el.poll()).await {
                    Err(_) => panic!("{what}: timed out"),
                    Ok(Ok(Event::Incoming(p))) => {
                        if let Some(t) = pick(p) {
                            return t;
                        }
                    }
                    Ok(Ok(Event::Outgoing(_))) => {}
                    Ok(Err(e)) => panic!("{what}: connection error {e}"),
                }
            }
        }

        pub async fn next_publish(&mut self) -> Publish {
            self.until("PUBLISH", |p| match p {
                Packet::Publish(p) => Some(p),
                _ => None,
            })
            .await
        }

        pub async fn suback(&mut self) {
            self.until("SUBACK", |p| matches!(p, Packet::SubAck(_)).then_some(()))
                .await
        }

        /// Polls the event loop in a background task from now on.
        pub fn background(&mut self) {
            let mut el = self.eventloop.take().expect("not yet in the background");
            self.task = Some(tokio::spawn(
                async move { while el.poll().await.is_ok() {} },
            ));
        }

        /// Drops the connection without DISCONNECT.
        pub fn kill(mut self) {
            if let Some(t) = self.task.take() {
                t.abort();
            }
            self.eventloop = None;
        }

        /// Sends DISCONNECT and polls until the connection ends.
        pub async fn disconnect(mut self) {
            self.client.disconnect().await.unwrap();
            let el = self.eventloop.as_mut().expect("inline");
            let _ = timeout(WAIT, async { while el.poll().await.is_ok() {} }).await;
        }
    }
}

/// rumqttc 5.0: QoS 1/2 flows with properties (user properties, content type, response
/// topic, correlation data) passed through [MQTT-3.3.2-17], and a Subscription Identifier
/// returned [MQTT-3.3.4-3].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_v5_properties_and_subscription_id() {
    use v5c::*;
    let broker = Broker::start();
    let topic = unique("r5/t");
    let mut sub = connect(broker.addr, &unique("r5-sub"), |_| {}).await;
    sub.client
        .subscribe_with_properties(
            &topic,
            QoS::ExactlyOnce,
            SubscribeProperties {
                id: Some(12),
                user_properties: vec![],
            },
        )
        .await
        .unwrap();
    sub.suback().await;
    let mut publ = connect(broker.addr, &unique("r5-pub"), |_| {}).await;
    publ.background();
    let props = PublishProperties {
        payload_format_indicator: Some(1),
        content_type: Some("application/json".into()),
        response_topic: Some("r5/reply".into()),
        correlation_data: Some(bytes::Bytes::from_static(b"corr")),
        user_properties: vec![("a".into(), "1".into()), ("b".into(), "2".into())],
        ..Default::default()
    };
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        publ.client
            .publish_with_properties(&topic, qos, false, "{}", props.clone())
            .await
            .unwrap();
        let p = sub.next_publish().await;
        assert_eq!(p.qos, qos);
        let got = p.properties.expect("properties");
        assert_eq!(got.content_type, props.content_type);
        assert_eq!(got.response_topic, props.response_topic);
        assert_eq!(got.correlation_data, props.correlation_data);
        assert_eq!(got.user_properties, props.user_properties);
        assert_eq!(got.payload_format_indicator, Some(1));
        assert_eq!(got.subscription_identifiers, vec![12]);
    }
}

/// rumqttc 5.0 with Topic Alias Maximum: the broker's server → client aliases are resolved
/// by an independent implementation [§3.3.2.3.4]; 300 messages over 5 topics arrive with
/// the right topic names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_v5_server_topic_aliases() {
    use v5c::*;
    let broker = Broker::start();
    let root = unique("r5/alias");
    let mut sub = connect(broker.addr, &unique("r5-alias"), |o| {
        o.set_topic_alias_max(Some(3));
    })
    .await;
    sub.client
        .subscribe(format!("{root}/#"), QoS::AtLeastOnce)
        .await
        .unwrap();
    sub.suback().await;
    let mut publ = connect(broker.addr, &unique("r5-pub"), |_| {}).await;
    publ.background();
    for i in 0..300u32 {
        publ.client
            .publish(
                format!("{root}/{}", i % 5),
                QoS::AtLeastOnce,
                false,
                i.to_be_bytes().to_vec(),
            )
            .await
            .unwrap();
    }
    for i in 0..300u32 {
        let p = sub.next_publish().await;
        assert_eq!(u32::from_be_bytes(p.payload[..].try_into().unwrap()), i);
        assert_eq!(p.topic, format!("{root}/{}", i % 5).as_bytes());
    }
}

/// rumqttc 5.0: Session Expiry keeps the session across a disconnect; Session Present 1 and
/// the queued QoS 1 message on reconnect; a Will with Will Delay published after the delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_v5_session_expiry_and_will() {
    use v5c::*;
    let broker = Broker::start();
    let topic = unique("r5/sess");
    let id = unique("r5-sess");
    let expiry = |o: &mut MqttOptions| {
        o.set_clean_start(false);
        o.set_connect_properties(ConnectProperties {
            session_expiry_interval: Some(60),
            ..ConnectProperties::new()
        });
    };
    let mut c = connect(broker.addr, &id, expiry).await;
    c.client.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    c.suback().await;
    c.disconnect().await;
    let mut publ = connect(broker.addr, &unique("r5-pub"), |_| {}).await;
    publ.background();
    publ.client
        .publish(&topic, QoS::AtLeastOnce, false, "while away")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = connect(broker.addr, &id, expiry).await;
    assert!(c.session_present);
    assert_eq!(&c.next_publish().await.payload[..], b"while away");

    let will_topic = unique("r5/will");
    let mut watcher = connect(broker.addr, &unique("r5-watch"), |_| {}).await;
    watcher
        .client
        .subscribe(&will_topic, QoS::AtLeastOnce)
        .await
        .unwrap();
    watcher.suback().await;
    let dying = connect(broker.addr, &unique("r5-dying"), |o| {
        o.set_last_will(LastWill::new(
            &will_topic,
            "late",
            QoS::AtLeastOnce,
            false,
            Some(rumqttc::v5::mqttbytes::v5::LastWillProperties {
                delay_interval: Some(1),
                payload_format_indicator: None,
                message_expiry_interval: None,
                content_type: None,
                response_topic: None,
                correlation_data: None,
                user_properties: Vec::new(),
            }),
        ));
        o.set_connect_properties(ConnectProperties {
            session_expiry_interval: Some(10),
            ..ConnectProperties::new()
        });
    })
    .await;
    let start = std::time::Instant::now();
    dying.kill();
    let p = watcher.next_publish().await;
    assert_eq!(&p.payload[..], b"late");
    assert!(
        start.elapsed() >= Duration::from_millis(800),
        "{:?}",
        start.elapsed()
    );
}

/// rumqttc 5.0 publishing 300 QoS 2 messages as fast as it can stays within the broker's
/// Receive Maximum and all arrive in order (no DISCONNECT 0x93 for a conforming client).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_v5_qos2_burst_within_receive_maximum() {
    use v5c::*;
    let broker = Broker::start();
    let topic = unique("r5/burst");
    let mut sub = connect(broker.addr, &unique("r5-bsub"), |_| {}).await;
    sub.client
        .subscribe(&topic, QoS::ExactlyOnce)
        .await
        .unwrap();
    sub.suback().await;
    let mut publ = connect(broker.addr, &unique("r5-bpub"), |_| {}).await;
    publ.background();
    for i in 0..300u32 {
        publ.client
            .publish(&topic, QoS::ExactlyOnce, false, i.to_be_bytes().to_vec())
            .await
            .unwrap();
    }
    for i in 0..300u32 {
        let p = sub.next_publish().await;
        assert_eq!(u32::from_be_bytes(p.payload[..].try_into().unwrap()), i);
    }
}
