#!/bin/bash
# Prepared for a loaned multi-core host (the device tool); not run by CI. Expects, under
# results/device/ (git-ignored, carried with the working tree): shardmq-new and shardmq-old
# (stripped broker builds to compare), shardmq-bench, and mosq/.
#   bash scripts/device/run4.sh
# Device run 4: broker CPU per message, new against old, on uncontended cores (broker on
# cores 0-1, generator on cores 8-9), builds alternating, five runs each.
set -u
# shellcheck source=scripts/device/common.sh
. "$(dirname "$0")/common.sh"
nproc
# label, repetitions, scenario
for SC in "Q1|5|--qos 1 --rate 0" "Q0|3|--qos 0 --rate 2000"; do
  label=${SC%%|*} rest=${SC#*|}
  reps=${rest%%|*} args=${rest#*|}
  for rep in $(seq "$reps"); do
    for b in new old; do
      CFG="" start $b 2
      # shellcheck disable=SC2086 # the scenario is several words
      timeout 30 "$G" --port "$PORT" --broker-pid "$BPID" --threads 2 --first-core 8 --secs 4 --quiet --json $args p2p --pairs 50 2>/dev/null | show "$label rep=$rep $b"
      stop
    done
  done
done
echo "all done"
