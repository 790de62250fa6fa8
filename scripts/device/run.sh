#!/bin/bash
# Prepared for a loaned multi-core host (the device tool); not run by CI. Expects, under
# results/device/ (git-ignored, carried with the working tree): shardmq-new and shardmq-old
# (stripped broker builds to compare), shardmq-bench, and mosq/ (Debian mosquitto 2.0.11 with
# its shared libraries except libc/libm, from `ldd /usr/sbin/mosquitto`).
#   bash scripts/device/run.sh
# Device run (16 cores): uncontended latency, multi-core scaling, connection density.
# Brokers: new (this session), old (963e93b, previous head), mosquitto 2.0.11 (carried).
set -u
# shellcheck source=scripts/device/common.sh
. "$(dirname "$0")/common.sh"
nproc; uname -r
ulimit -n 1048576 2>/dev/null || ulimit -n 500000 2>/dev/null || true
echo "nofile $(ulimit -n)"
sysctl -w net.ipv4.ip_local_port_range="1024 65000" >/dev/null 2>&1
sysctl -w net.core.somaxconn=65535 >/dev/null 2>&1
sysctl -w net.ipv4.tcp_max_syn_backlog=65535 >/dev/null 2>&1

echo "== A: latency, broker on cores 0-1 (mosquitto core 0), generator on cores 8-9"
for rep in 1 2 3; do
  for b in new old mosq; do
    start $b 2
    for SC in "fanin-q1-8x5k|--qos 1 --rate 5000 fanin --pubs 8" "p2p-q0-100k|--qos 0 --rate 2000 p2p --pairs 50" "p2p-q1-max|--qos 1 --rate 0 p2p --pairs 50"; do
      # shellcheck disable=SC2086 # the scenario is several words
      timeout 30 $G --port "$PORT" --broker-pid "$BPID" --threads 2 --first-core 8 --secs 4 --quiet --json ${SC#*|} 2>/dev/null | show "A rep=$rep $b ${SC%%|*}"
    done
    stop
  done
done

echo "== B: scaling, shards on cores 0..S-1, generator --threads 6 --first-core 9"
for S in 1 2 4 8; do
  for b in new old; do
    start $b $S
    timeout 30 $G --port "$PORT" --broker-pid "$BPID" --threads 6 --first-core 9 --secs 4 --quiet --json --qos 1 --rate 0 p2p --pairs 200 2>/dev/null | show "B shards=$S $b p2p-q1-200"
    stop
  done
done

echo "== C: density, idle connections (fresh broker per point), generator --threads 4 --first-core 9"
for N in 10000 100000; do
  for b in new old mosq; do
    start $b 8
    timeout 90 $G --port "$PORT" --broker-pid "$BPID" --threads 4 --first-core 9 --secs 3 --quiet --json conn --conns "$N" 2>/dev/null | show "C conns=$N $b"
    grep VmRSS /proc/$BPID/status 2>/dev/null
    stop
  done
done
echo "all done"
