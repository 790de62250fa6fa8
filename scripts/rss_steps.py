#!/usr/bin/env python3
"""Broker RSS step by step: where a per-connection slope comes from.

Usage: scripts/rss_steps.py BROKER_BINARY STEP TOTAL

Starts shardmq (`--port 0 --shards 2`), opens STEP idle MQTT 3.1.1 connections at a time
(raw sockets, CONNECT, CONNACK read) up to TOTAL, and after each step prints the broker's
VmRSS and what that step cost per connection; last, the slope from the first step to the
end. A slope between two points depends on where the broker's tables are in their growth
(a hash table that doubles touches every bucket), which the steps show. Needs TOTAL open
files in this process and in the broker (ulimit -n).
"""
import resource
import socket
import subprocess
import sys
import time


def connect_packet(client_id):
    cid = client_id.encode()
    rest = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    return bytes([0x10, len(rest)]) + rest


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    binary, step, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    want = total + 100
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    broker = subprocess.Popen(
        [binary, "--port", "0", "--shards", "2", "--log", "warn"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(broker.stdout.readline().strip().rsplit(":", 1)[1])
        socks, first, prev, n = [], None, None, 0
        while n < total:
            batch = []
            for i in range(step):
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall(connect_packet(f"dev-{n + i:06d}"))
                batch.append(s)
            for s in batch:
                if len(s.recv(4)) != 4:
                    sys.exit("no CONNACK")
            socks += batch
            n += step
            time.sleep(0.3)
            rss = rss_kib(broker.pid)
            if prev is None:
                first = (n, rss)
                print(f"{n} connections: RSS {rss} KiB")
            else:
                print(f"{n} connections: RSS {rss} KiB, step {(rss - prev) * 1024 / step:.0f} B/conn")
            prev = rss
        slope = (prev - first[1]) * 1024 / (n - first[0])
        print(f"slope {first[0]} -> {n}: {slope:.0f} B/conn")
    finally:
        broker.terminate()
        broker.wait()


if __name__ == "__main__":
    main()
