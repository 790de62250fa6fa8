#!/bin/bash
# Helpers shared by the device scripts (sourced): start/stop a broker under test, print one
# generator summary. D is the carried folder (see run.sh), G the generator.
# shellcheck disable=SC2034 # D, G, PORT and BPID are used by the sourcing scripts
D=results/device
G=$D/shardmq-bench
export LD_LIBRARY_PATH=$D/mosq/lib
PORT=0 BPID=0
start() { # start NAME SHARDS (CFG: optional broker config file)
  local name=$1 shards=$2
  if [ "$name" = mosq ]; then
    PORT=$((20000 + RANDOM % 20000))
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\nmax_queued_messages 100000\n' $PORT > /tmp/m.conf
    taskset -c 0 $D/mosq/mosquitto -c /tmp/m.conf > /tmp/m.log 2>&1 &
    BPID=$!
    sleep 0.5
  else
    "$D/shardmq-$name" --port 0 --shards "$shards" --log warn ${CFG:+--config "$CFG"} > /tmp/b.out 2>/tmp/b.err &
    BPID=$!
    for _ in $(seq 50); do grep -q listening /tmp/b.out && break; sleep 0.1; done
    PORT=$(grep -o 'listening [0-9.:]*' /tmp/b.out | head -1 | sed 's/.*://')
  fi
}
stop() { kill $BPID 2>/dev/null; wait $BPID 2>/dev/null; sleep 0.2; }
show() { # label, json on stdin
  python3 -c "import json,sys
t=sys.stdin.read().strip().splitlines()
d=json.loads(t[-1]) if t else {}
print('$1', ' '.join(f'{k}={d[k]:.4g}' if isinstance(d.get(k),float) else f'{k}={d.get(k)}' for k in ['msgs_per_s','lost','p50_us','p99_us','broker_cpu_us_per_msg','gen_cpu_us_per_msg','bytes_per_conn','open_conns','connects_per_s'] if k in d))"
}
