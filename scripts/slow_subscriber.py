#!/usr/bin/env python3
"""Subscribers that fall behind, for measuring what they do to everyone else.

Connects COUNT MQTT 5 clients that subscribe to FILTER at QoS 1 and then either
acknowledge each message after --ack-delay-ms (paho-mqtt acknowledges when the callback
returns), or with --never-ack read everything and acknowledge nothing (a raw socket).
Runs for --secs, then prints what each received. Loopback only.

  python3 scripts/slow_subscriber.py --port 1883 --ack-delay-ms 10 --secs 9
  python3 scripts/slow_subscriber.py --port 1883 --count 12 --never-ack --secs 12
"""
import argparse
import socket
import sys
import threading
import time


def mqtt_str(s):
    b = s.encode()
    return len(b).to_bytes(2, "big") + b


def remaining_length(n):
    out = b""
    while True:
        digit, n = n % 128, n // 128
        out += bytes([digit | 0x80 if n else digit])
        if not n:
            return out


def never_ack(port, filt, client_id, secs, counts, index):
    s = socket.create_connection(("127.0.0.1", port))
    connect = mqtt_str("MQTT") + bytes([5, 2]) + (60).to_bytes(2, "big") + b"\x00"
    connect += mqtt_str(client_id)
    s.sendall(b"\x10" + remaining_length(len(connect)) + connect)
    sub = (1).to_bytes(2, "big") + b"\x00" + mqtt_str(filt) + b"\x01"
    s.sendall(b"\x82" + remaining_length(len(sub)) + sub)
    s.settimeout(0.5)
    end = time.time() + secs
    while time.time() < end:
        try:
            data = s.recv(65536)
            if not data:
                return
            counts[index] += data.count(b"\x32")  # rough: PUBLISH QoS 1 header bytes
        except socket.timeout:
            pass
        except OSError:
            return


def acking(port, filt, client_id, delay_s, secs, counts, index):
    import paho.mqtt.client as mqtt

    def on_message(_c, _u, _m):
        counts[index] += 1
        time.sleep(delay_s)

    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.subscribe(filt, qos=1)
    c.loop_start()
    time.sleep(secs)
    c.loop_stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--filter", default="#")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--ack-delay-ms", type=float, default=10.0)
    ap.add_argument("--never-ack", action="store_true")
    ap.add_argument("--secs", type=float, default=10.0)
    a = ap.parse_args()
    counts = [0] * a.count
    threads = []
    for i in range(a.count):
        cid = f"slow-subscriber-{i}"
        if a.never_ack:
            args = (a.port, a.filter, cid, a.secs, counts, i)
            t = threading.Thread(target=never_ack, args=args, daemon=True)
        else:
            args = (a.port, a.filter, cid, a.ack_delay_ms / 1000, a.secs, counts, i)
            t = threading.Thread(target=acking, args=args, daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(a.secs + 2)
    print(f"slow subscribers received {counts}", file=sys.stderr)


if __name__ == "__main__":
    main()
