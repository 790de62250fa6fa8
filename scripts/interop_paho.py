#!/usr/bin/env python3
"""Interop checks of a running broker with Eclipse Paho (paho-mqtt 2.x), MQTT 3.1.1 and 5.0.

Usage: interop_paho.py HOST PORT

Prints one line per check ("ok   - NAME" or "FAIL - NAME: DETAIL") and exits with the
number of failed checks (0 when all pass). Run by scripts/interop.sh.
"""

import queue
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HOST = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 1883
WAIT = 5.0

RESULTS = []


def check(name, fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
        RESULTS.append(False)
        print(f"FAIL - paho {name}: {e!r}", flush=True)
    else:
        RESULTS.append(True)
        print(f"ok   - paho {name}", flush=True)


def uid(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Client:
    """A paho client with its network loop in a thread; messages land in a queue."""

    def __init__(self, protocol, client_id=None, clean=True, session_expiry=None, will=None,
                 props=None):
        self.protocol = protocol
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or uid("paho"),
            protocol=protocol,
            clean_session=clean if protocol != mqtt.MQTTv5 else None,
        )
        self.messages = queue.Queue()
        self.connected = threading.Event()
        self.suback = threading.Condition()
        self.acked = set()
        self.session_present = None
        self.reason = None
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.on_subscribe = self._on_subscribe
        if will:
            topic, payload, qos, retain, will_props = will
            self.client.will_set(topic, payload, qos, retain, properties=will_props)
        kwargs = {}
        if protocol == mqtt.MQTTv5:
            p = props or Properties(PacketTypes.CONNECT)
            if session_expiry is not None:
                p.SessionExpiryInterval = session_expiry
            kwargs["properties"] = p
            kwargs["clean_start"] = clean
        self.client.connect(HOST, PORT, keepalive=30, **kwargs)
        self.client.loop_start()
        if not self.connected.wait(WAIT):
            raise AssertionError("no CONNACK")
        if self.reason is not None and self.reason != 0:
            raise AssertionError(f"CONNACK reason {self.reason}")

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.session_present = flags.session_present
        self.reason = reason_code.value if hasattr(reason_code, "value") else reason_code
        self.connected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self.suback:
            self.acked.add(mid)
            self.suback.notify_all()

    def subscribe(self, topic, qos, **kw):
        if isinstance(qos, mqtt.SubscribeOptions):
            result, mid = self.client.subscribe(topic, options=qos, **kw)
        else:
            result, mid = self.client.subscribe(topic, qos, **kw)
        assert result == mqtt.MQTT_ERR_SUCCESS, result
        with self.suback:
            if not self.suback.wait_for(lambda: mid in self.acked, WAIT):
                raise AssertionError(f"no SUBACK for {topic}")

    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        info = self.client.publish(topic, payload, qos, retain, properties=properties)
        info.wait_for_publish(WAIT)
        assert info.is_published(), f"publish of {topic} not acknowledged"

    def expect(self, n=1, timeout=WAIT):
        out = []
        deadline = time.time() + timeout
        while len(out) < n:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"expected {n} messages, got {len(out)}")
            try:
                out.append(self.messages.get(timeout=left))
            except queue.Empty:
                continue
        return out

    def expect_none(self, timeout=0.3):
        try:
            m = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message on {m.topic}: {m.payload!r}")

    def disconnect(self):
        self.client.disconnect()
        self.client.loop_stop()

    def drop(self):
        """Closes the socket without DISCONNECT (the broker sees an abnormal close)."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()


VERSIONS = [("3.1.1", mqtt.MQTTv311), ("5.0", mqtt.MQTTv5)]


def qos_round_trip(protocol):
    def run():
        topic = uid("paho/qos")
        sub = Client(protocol)
        sub.subscribe(topic, 2)
        pub = Client(protocol)
        for qos in (0, 1, 2):
            for i in range(20):
                pub.publish(topic, f"{qos}:{i}", qos)
            got = sub.expect(20)
            assert [m.payload.decode() for m in got] == [f"{qos}:{i}" for i in range(20)], \
                "out of order or wrong payload"
            assert all(m.qos == qos for m in got), [m.qos for m in got]
        sub.expect_none()
        sub.disconnect()
        pub.disconnect()
    return run


def retained(protocol):
    def run():
        topic = uid("paho/ret")
        pub = Client(protocol)
        pub.publish(topic, "kept", 1, retain=True)
        sub = Client(protocol)
        sub.subscribe(topic, 1)
        (m,) = sub.expect(1)
        assert m.retain and m.payload == b"kept", (m.retain, m.payload)
        pub.publish(topic, b"", 1, retain=True)
        sub.expect(1)  # the empty message still reaches existing subscribers
        late = Client(protocol)
        late.subscribe(topic, 1)
        late.expect_none(0.5)
        for c in (pub, sub, late):
            c.disconnect()
    return run


def will(protocol):
    def run():
        topic = uid("paho/will")
        watcher = Client(protocol)
        watcher.subscribe(topic, 1)
        dying = Client(protocol, will=(topic, "gone", 1, False, None))
        dying.drop()
        (m,) = watcher.expect(1)
        assert m.payload == b"gone", m.payload
        polite = Client(protocol, will=(topic, "never", 1, False, None))
        polite.disconnect()
        watcher.expect_none(0.5)
        watcher.disconnect()
    return run


def persistent_session(protocol):
    def run():
        topic = uid("paho/persist")
        cid = uid("paho-persist")
        if protocol == mqtt.MQTTv5:
            c = Client(protocol, cid, clean=True, session_expiry=60)
        else:
            c = Client(protocol, cid, clean=False)
        c.subscribe(topic, 1)
        c.disconnect()
        pub = Client(protocol)
        for i in range(5):
            pub.publish(topic, str(i), 1)
        if protocol == mqtt.MQTTv5:
            c = Client(protocol, cid, clean=False, session_expiry=60)
        else:
            c = Client(protocol, cid, clean=False)
        assert c.session_present, "session present 0"
        got = c.expect(5)
        assert [m.payload.decode() for m in got] == [str(i) for i in range(5)]
        c.disconnect()
        pub.disconnect()
    return run


def v5_properties():
    topic = uid("paho/props")
    sub = Client(mqtt.MQTTv5)
    sub.subscribe(topic, 1)
    pub = Client(mqtt.MQTTv5)
    p = Properties(PacketTypes.PUBLISH)
    p.UserProperty = [("k1", "v1"), ("k2", "v2")]
    p.ContentType = "text/plain"
    p.ResponseTopic = "paho/reply"
    p.CorrelationData = b"\x00\x01corr"
    p.MessageExpiryInterval = 60
    pub.publish(topic, "props", 1, properties=p)
    (m,) = sub.expect(1)
    got = m.properties
    assert got.UserProperty == [("k1", "v1"), ("k2", "v2")], got.UserProperty
    assert got.ContentType == "text/plain", got.ContentType
    assert got.ResponseTopic == "paho/reply", got.ResponseTopic
    assert got.CorrelationData == b"\x00\x01corr", got.CorrelationData
    assert 0 < got.MessageExpiryInterval <= 60, got.MessageExpiryInterval
    sub.disconnect()
    pub.disconnect()


def v5_no_local_and_shared():
    topic = uid("paho/nl")
    me = Client(mqtt.MQTTv5)
    me.subscribe(topic, mqtt.SubscribeOptions(qos=1, noLocal=True))
    other = Client(mqtt.MQTTv5)
    other.subscribe(topic, 1)
    me.publish(topic, "mine", 1)
    other.expect(1)
    me.expect_none()
    members = [Client(mqtt.MQTTv5) for _ in range(3)]
    for m in members:
        m.subscribe(f"$share/grp/{topic}", 1)
    for i in range(30):
        other.publish(topic, str(i), 1)
    other.expect(30)
    time.sleep(0.3)
    got = []
    for m in members:
        while not m.messages.empty():
            got.append(m.messages.get().payload.decode())
    assert sorted(got, key=int) == [str(i) for i in range(30)], \
        f"shared group got {len(got)} messages, each must arrive once"
    for c in [me, other] + members:
        c.disconnect()


def v5_will_delay():
    topic = uid("paho/wdelay")
    watcher = Client(mqtt.MQTTv5)
    watcher.subscribe(topic, 1)
    wp = Properties(PacketTypes.WILLMESSAGE)
    wp.WillDelayInterval = 1
    dying = Client(mqtt.MQTTv5, session_expiry=30, will=(topic, "late", 1, False, wp))
    start = time.time()
    dying.drop()
    (m,) = watcher.expect(1, timeout=5)
    waited = time.time() - start
    assert m.payload == b"late"
    assert waited >= 0.8, f"Will after {waited:.2f}s, before its 1 s delay"
    watcher.disconnect()


def main():
    for name, proto in VERSIONS:
        check(f"{name} QoS 0/1/2 pub/sub in order", qos_round_trip(proto))
        check(f"{name} retained set/delete", retained(proto))
        check(f"{name} will on abnormal close, none on DISCONNECT", will(proto))
        check(f"{name} persistent session + offline queue", persistent_session(proto))
    check("5.0 publish properties passed through", v5_properties)
    check("5.0 No Local + shared subscription", v5_no_local_and_shared)
    check("5.0 Will Delay Interval", v5_will_delay)
    failed = RESULTS.count(False)
    sys.exit(min(failed, 100))


if __name__ == "__main__":
    main()
