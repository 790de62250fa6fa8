# Idle connections over plain TCP, WebSocket or WebSocket over TLS, for the memory each
# costs the broker.
# Usage: python3 scripts/idle_ws.py PORT BROKER_PID N plain|ws|wss [CA_FILE]
# Opens N idle MQTT 3.1.1 connections (CONNECT, CONNACK; over WebSocket after the opening
# handshake, subprotocol mqtt; wss: inside TLS, trusting CA_FILE), holds them, and prints
# the broker's RSS in KiB. The cost of
# one connection is the slope between two counts, each on a fresh broker (docs/benchmarks.md,
# "WebSocket"). Standard library only; loopback only.
import socket, ssl, sys, time, base64, os
port, pid, n, mode = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
tls = ssl.create_default_context(cafile=sys.argv[5]) if mode == "wss" else None
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])
def connect_packet(cid):
    cid = cid.encode()
    var = b"\x00\x04MQTT\x04\x02\x00\x3c"  # 3.1.1, clean session, keepalive 60
    payload = len(cid).to_bytes(2, "big") + cid
    body = var + payload
    return bytes([0x10, len(body)]) + body
def frame(data):
    mask = os.urandom(4)
    return bytes([0x82, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))  # loopback only
    if tls:
        s = tls.wrap_socket(s, server_hostname="127.0.0.1")
    if mode in ("ws", "wss"):
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(f"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Sec-WebSocket-Protocol: mqtt\r\n\r\n".encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += s.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head
        s.sendall(frame(connect_packet(f"idle-{i}")))
        ack = s.recv(16)
        assert ack[:1] == b"\x82" and ack[2] == 0x20, ack
    else:
        s.sendall(connect_packet(f"idle-{i}"))
        ack = s.recv(16)
        assert ack[:1] == b"\x20", ack
    socks.append(s)
time.sleep(1.0)
print(rss())
