#!/bin/bash
# Prepared for a loaned multi-core host (the device tool); not run by CI. Expects, under
# results/device/ (git-ignored, carried with the working tree): shardmq-new (stripped broker
# build), shardmq-bench, and mosq/ (Debian mosquitto 2.0.11 with its shared libraries).
#   bash scripts/device/run3.sh
# Device run 3: the batch window on uncontended cores (broker on cores 0-1, mosquitto core 0,
# generator on cores 8+), the generator's own CPU with one and two threads, fan-in latency.
set -u
# shellcheck source=scripts/device/common.sh
. "$(dirname "$0")/common.sh"
nproc; uname -r
for W in 500 1000 2000; do printf 'batch_window_us = %s\n' $W > /tmp/w$W.toml; done
run() { # label scenario-args...
  local label=$1; shift
  # shellcheck disable=SC2068 # the scenario is several words
  timeout 30 $G --port "$PORT" --broker-pid "$BPID" --secs 4 --quiet --json $@ 2>/dev/null | show "$label"
}
echo "== A: p2p 50 pairs QoS 0 at 100k msg/s, batch window W (us)"
for rep in 1 2 3; do
  for W in 0 500 1000 2000 mosq; do
    if [ $W = mosq ]; then CFG="" start mosq 1; else
      CFG=""; [ $W != 0 ] && CFG=/tmp/w$W.toml; start new 2; fi
    run "A rep=$rep W=$W" --threads 2 --first-core 8 --qos 0 --rate 2000 p2p --pairs 50
    stop
  done
done
echo "== B: p2p 50 pairs QoS 1 at full speed: generator threads T, window W"
for rep in 1 2 3; do
  for TW in 1:0 2:0 2:1000; do
    T=${TW%%:*} W=${TW#*:}
    CFG=""; [ "$W" != 0 ] && CFG=/tmp/w$W.toml
    start new 2
    run "B rep=$rep T=$T W=$W" --threads "$T" --first-core 8 --qos 1 --rate 0 p2p --pairs 50
    stop
  done
done
echo "== C: fan-in 8 x 5,000 msg/s QoS 1"
for rep in 1 2 3; do
  for b in new mosq; do
    CFG="" start $b 2
    run "C rep=$rep $b" --threads 2 --first-core 8 --qos 1 --rate 5000 fanin --pubs 8
    stop
  done
done
echo "all done"
