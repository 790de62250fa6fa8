#!/usr/bin/env python3
"""Broker memory per idle connection, with or without one subscription each.

Usage: scripts/conn_rss.py BROKER_BINARY N [plain|will|sub]

Starts the broker (shardmq with `--port 0 --shards $SHARDS`, default 2, or anything whose path contains
"mosquitto" with a listener on a free-ish port), opens N MQTT 3.1.1 connections from raw
sockets, reads the broker's VmRSS, opens N more and reads it again, and prints the slope:
what one more connection costs, without the memory a broker touches once whatever the count.
  plain  CONNECT only;
  will   CONNECT with a Will (QoS 1, `dev/{i}/status`);
  sub    CONNECT, then SUBSCRIBE QoS 1 to a topic of its own (`dev/{i}/cmd`), as a device
         waiting for commands does.
Needs 2N open files in this process and in the broker (ulimit -n).
"""
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in ("plain", "will", "sub"):
        sys.exit(__doc__)
    binary, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if "mosquitto" in binary:
        port = 20000 + os.getpid() % 20000
        conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
        conf.write(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_connections -1\n")
        conf.close()
        broker = subprocess.Popen([binary, "-c", conf.name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
    else:
        shards = os.environ.get("SHARDS", "2")
        broker = subprocess.Popen([binary, "--port", "0", "--shards", shards, "--log", "info"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        port = None
        while port is None:
            line = broker.stdout.readline()
            if not line:
                sys.exit("the broker exited before listening")
            m = re.search(r"127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
        time.sleep(0.3)
    try:
        socks = []
        open_connections(port, socks, n, mode)
        time.sleep(0.5)
        before = rss_kib(broker.pid)
        open_connections(port, socks, n, mode)
        time.sleep(0.5)
        after = rss_kib(broker.pid)
        print(f"{os.path.basename(binary)} {mode}: RSS {before} -> {after} KiB over {n} more "
              f"connections: {(after - before) * 1024 / n:.0f} B per connection")
    finally:
        broker.kill()


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def mqtt_string(b):
    return struct.pack(">H", len(b)) + b


def remaining_length(n):
    out = b""
    while True:
        digit, n = n % 128, n // 128
        out += bytes([digit | (0x80 if n else 0)])
        if not n:
            return out


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise RuntimeError("connection closed by the broker")
        data += chunk
    return data


def open_connections(port, socks, n, mode):
    for i in range(len(socks), len(socks) + n):
        flags = 0x02  # clean session
        payload = mqtt_string(f"c{i:06d}".encode())
        if mode == "will":
            flags |= 0x04 | 0x08  # Will, Will QoS 1
            payload += mqtt_string(f"dev/{i}/status".encode()) + mqtt_string(b"offline")
        body = mqtt_string(b"MQTT") + bytes([4, flags]) + struct.pack(">H", 60) + payload
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(bytes([0x10]) + remaining_length(len(body)) + body)
        if recv_exactly(s, 4)[:2] != b"\x20\x02":
            raise RuntimeError("no CONNACK")
        if mode == "sub":
            body = struct.pack(">H", 1) + mqtt_string(f"dev/{i}/cmd".encode()) + b"\x01"
            s.sendall(bytes([0x82]) + remaining_length(len(body)) + body)
            if recv_exactly(s, 5)[0] != 0x90:
                raise RuntimeError("no SUBACK")
        socks.append(s)


if __name__ == "__main__":
    main()
