#!/bin/bash
# Prepared for a loaned multi-core host (the device tool); not run by CI. Expects, under
# results/device/ (git-ignored, carried with the working tree): shardmq-new and shardmq-old
# (stripped broker builds to compare), shardmq-bench, and mosq/ (Debian mosquitto 2.0.11 with
# its shared libraries except libc/libm, from `ldd /usr/sbin/mosquitto`).
#   bash scripts/device/run2.sh
# Device run 2: 8-shard p2p after the congestion fix (new) against 963e93b (old), and
# idle-connection density at 18,000 connections (the device also caps open files at 20,000).
set -u
# shellcheck source=scripts/device/common.sh
. "$(dirname "$0")/common.sh"
ulimit -n 20000
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
