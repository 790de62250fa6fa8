#!/bin/bash
# Prepared for a loaned multi-core host (the device tool); not run by CI. Expects, under
# results/device/ (git-ignored, carried with the working tree): shardmq-new and shardmq-old
# (stripped broker builds to compare), shardmq-bench, and mosq/ (Debian mosquitto 2.0.11 with
# its shared libraries except libc/libm, from `ldd /usr/sbin/mosquitto`).
#   bash scripts/device/run2.sh
# Device run 2: 8-shard p2p after the congestion fix (new) against 963e93b (old), and
# idle-connection density at 18,000 connections (the device also caps open files at 20,000).
set -u
D=results/device
G=$D/shardmq-bench
export LD_LIBRARY_PATH=$D/mosq/lib
ulimit -n 20000
PORT=0 BPID=0
start() { # start NAME SHARDS
  local name=$1 shards=$2
  if [ "$name" = mosq ]; then
    PORT=$((20000 + RANDOM % 20000))
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\nmax_queued_messages 100000\n' $PORT > /tmp/m.conf
    taskset -c 0 $D/mosq/mosquitto -c /tmp/m.conf > /tmp/m.log 2>&1 &
    BPID=$!
    sleep 0.5
  else
    "$D/shardmq-$name" --port 0 --shards "$shards" --log warn > /tmp/b.out 2>/tmp/b.err &
    BPID=$!
    for _ in $(seq 50); do grep -q listening /tmp/b.out && break; sleep 0.1; done
    PORT=$(grep -o 'listening [0-9.:]*' /tmp/b.out | head -1 | sed 's/.*://')
  fi
}
stop() { kill $BPID 2>/dev/null; wait $BPID 2>/dev/null; sleep 0.2; }
show() {
  python3 -c "import json,sys
t=sys.stdin.read().strip().splitlines()
d=json.loads(t[-1]) if t else {}
print('$1', ' '.join(f'{k}={d[k]:.4g}' if isinstance(d.get(k),float) else f'{k}={d.get(k)}' for k in ['msgs_per_s','lost','p50_us','p99_us','broker_cpu_us_per_msg'] if k in d))"
}
echo "== B8: 8 shards on cores 0-7, generator --threads 6 --first-core 9"
for rep in 1 2 3; do
  for b in new old; do
    start $b 8
    timeout 30 $G --port "$PORT" --broker-pid "$BPID" --threads 6 --first-core 9 --secs 4 --quiet --json --qos 1 --rate 0 p2p --pairs 200 2>/dev/null | show "B8 rep=$rep $b"
    stop
  done
done
echo "== C: idle connections, 2 shards (mosquitto 1 thread), RSS at 2,000 and 18,000 (2 generator processes)"
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
for rep in 1 2; do
  for b in new old mosq; do
    for N in 2000 18000; do
      start $b 2
      R0=$(rss $BPID)
      half=$((N / 2))
      timeout 60 $G --port "$PORT" --threads 2 --first-core 8 --secs 8 --quiet conn --conns "$half" > /dev/null 2>&1 &
      g1=$!
      timeout 60 $G --port "$PORT" --threads 2 --first-core 10 --secs 8 --quiet conn --conns "$half" > /dev/null 2>&1 &
      g2=$!
      sleep 6
      echo "C rep=$rep $b N=$N rss0_kb=$R0 rssN_kb=$(rss $BPID) tcp=$(awk '/TCP:/{print $3}' /proc/net/sockstat)"
      wait $g1 $g2
      stop
    done
  done
done
echo "all done"
