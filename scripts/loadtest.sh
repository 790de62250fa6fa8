#!/usr/bin/env bash
# Side-by-side load test: shardmq (--shards 2) against Debian's mosquitto, on loopback.
#
#   scripts/loadtest.sh [--quick] [--tls] [--reps N] [--secs S] [--out DIR] [--no-build]
#
# --tls: both brokers serve TLS only (the test certificate of tests/fixtures/tls/), and the
# generator connects with TLS (--tls-ca).
#
# Builds release, starts both brokers on free loopback ports, runs a scenario matrix against
# each (alternating brokers, several repetitions), stops everything it started, and writes
# results/<timestamp>/: results.jsonl (one shardmq-bench JSON summary per run), the raw logs,
# report.md (medians, min–max, ratios against mosquitto) and SVG plots (scripts/plot.py).
# A broker that does not start or dies is marked failed in the report; the script goes on.
#
# Without --tls, the three issue-3 comparison scenarios also run against shardmq-floor
# (bench/floor.rs): a single-threaded epoll forwarder that does only the reads and writes no
# broker can avoid. Its CPU per message is this machine's floor for that scenario; the
# report quotes shardmq against it.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

QUICK=0 TLS=0 REPS="" SECS="" OUT="" BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --tls) TLS=1 ;;
    --reps) REPS="$2"; shift ;;
    --secs) SECS="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then REPS=${REPS:-2}; SECS=${SECS:-2}; CONNS="500 1000 2000"; SUB_CONNS="1000 2000"
else REPS=${REPS:-3}; SECS=${SECS:-10}; CONNS="1000 4000 9000"; SUB_CONNS="4000 9000"; fi

TARGET=${CARGO_TARGET_DIR:-target}
if [ "$BUILD" = 1 ]; then
  cargo build --release --bins || { echo "build failed" >&2; exit 1; }
fi
BENCH="$TARGET/release/shardmq-bench"
SHARDMQ="$TARGET/release/shardmq"
FLOOR="$TARGET/release/shardmq-floor"
[ -x "$BENCH" ] || { echo "missing $BENCH" >&2; exit 1; }

OUT=${OUT:-results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RES="$OUT/results.jsonl"
: > "$RES"

FIXTURES="$(pwd)/tests/fixtures/tls"
TLS_ARGS=()
[ "$TLS" = 1 ] && TLS_ARGS=(--tls-ca "$FIXTURES/ca.pem")

declare -A PID PORT
STARTED=()
cleanup() {
  for p in "${STARTED[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 0.3
  for p in "${STARTED[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_shardmq() {
  PID[shardmq]="" PORT[shardmq]=""
  [ -x "$SHARDMQ" ] || return 1
  local config=()
  if [ "$TLS" = 1 ]; then
    printf 'listen_plain = false\n[tls]\nport = 0\ncert_file = "%s"\nkey_file = "%s"\n' \
      "$FIXTURES/server.pem" "$FIXTURES/server.key" >"$OUT/shardmq-tls.toml"
    config=(--config "$OUT/shardmq-tls.toml")
  fi
  "$SHARDMQ" --bind 127.0.0.1 --port 0 --shards 2 "${config[@]}" >"$OUT/shardmq.stdout" 2>>"$OUT/shardmq.log" &
  STARTED+=("$!")
  await_listening shardmq "$!"
}

# await_listening NAME PID: waits up to 10 s for the `listening ADDR` line on
# $OUT/NAME.stdout (a TLS-only shardmq prints `listening tls ADDR`), then records the
# process and its port; fails (and stops the process) if it exits or never prints it.
await_listening() {
  local name=$1 p=$2 line=""
  for _ in $(seq 100); do
    line=$(head -n1 "$OUT/$name.stdout" 2>/dev/null | sed 's/^listening tls /listening /')
    case "$line" in listening\ *:*) break ;; esac
    kill -0 "$p" 2>/dev/null || return 1
    sleep 0.1
  done
  case "$line" in listening\ *:*) ;; *) kill -TERM "$p" 2>/dev/null; return 1 ;; esac
  PID[$name]=$p PORT[$name]=${line##*:}
}

start_floor() {
  PID[floor]="" PORT[floor]=""
  [ -x "$FLOOR" ] || return 1
  "$FLOOR" --bind 127.0.0.1 --port 0 >"$OUT/floor.stdout" 2>>"$OUT/floor.log" &
  STARTED+=("$!")
  await_listening floor "$!"
}

start_mosquitto() {
  PID[mosquitto]="" PORT[mosquitto]=""
  command -v mosquitto >/dev/null || return 1
  local port; port=$(free_port)
  cat >"$OUT/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
max_queued_messages 100000
CONF
  if [ "$TLS" = 1 ]; then
    # `user`: read the fixture key as the user running this script (not as `mosquitto`).
    printf 'certfile %s\nkeyfile %s\nuser %s\n' "$FIXTURES/server.pem" "$FIXTURES/server.key" \
      "$(id -un)" >>"$OUT/mosquitto.conf"
  fi
  mosquitto -c "$OUT/mosquitto.conf" >>"$OUT/mosquitto.log" 2>&1 &
  local p=$!
  STARTED+=("$p")
  for _ in $(seq 50); do port_open "$port" && break; sleep 0.1; done
  port_open "$port" || return 1
  PID[mosquitto]=$p PORT[mosquitto]=$port
}

BROKERS=(shardmq)
command -v mosquitto >/dev/null && BROKERS+=(mosquitto)
# The floor speaks plain TCP only.
[ "$TLS" = 0 ] && [ -x "$FLOOR" ] && BROKERS+=(floor)
for b in "${BROKERS[@]}"; do
  if "start_$b"; then echo "started $b (pid ${PID[$b]}, port ${PORT[$b]})"
  else echo "WARNING: $b did not start; its runs are marked failed" >&2; fi
done

{
  echo "date: $(date -Is)   host: $(uname -n)   kernel: $(uname -r)   cores: $(nproc)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "brokers: shardmq --shards 2 $( [ -n "${PID[shardmq]}" ] || echo "(FAILED TO START)"); $(if command -v mosquitto >/dev/null; then mosquitto -h 2>&1 | head -n1; else echo "mosquitto not installed"; fi)"
  [ -n "${PID[floor]:-}" ] && echo "floor: shardmq-floor (single-threaded epoll forwarder, bench/floor.rs) on p2p-q1-max, p2p-q0-100k, fanin-q1-8x5k"
  echo "repetitions: $REPS, window: ${SECS}s per run, generator: $BENCH --threads 1"
  [ "$TLS" = 1 ] && echo "transport: TLS (both brokers TLS-only, test certificate, generator --tls-ca)"
} >"$OUT/meta.txt"

# key | shardmq-bench arguments
# The issue-3 comparison points: p2p 50 pairs QoS 1 as fast as possible; p2p QoS 0 at 100k
# msg/s offered; fan-in 8 x 5,000 msg/s QoS 1 (latency); the lossless fan-in maximum (QoS 1,
# flow-controlled) next to the QoS 0 flood into the same single subscriber.
SCENARIOS=(
  "p2p-q1-max|--qos 1 --rate 0 p2p --pairs 50"
  "p2p-q0-100k|--qos 0 --rate 2000 p2p --pairs 50"
  "fanin-q1-8x5k|--qos 1 --rate 5000 fanin --pubs 8"
  "fanout-q0|--qos 0 --rate 200 fanout --subs 50"
  "fanin-q1-max|--qos 1 --rate 0 fanin --pubs 8"
  "flood-q0|--qos 0 --rate 0 fanin --pubs 8"
)
# A fleet: many connections, each at a moderate rate (8,000 connections, 40k msg/s offered;
# full mode only). It once delivered a tenth of the offered rate (docs/benchmarks.md, "Many
# connections, each at a moderate rate").
[ "$QUICK" = 1 ] || SCENARIOS+=("p2p-q1-4000x10|--qos 1 --rate 10 p2p --pairs 4000")
for n in $CONNS; do SCENARIOS+=("conn-$n|--connect-inflight 64 conn --conns $n"); done
# The two largest counts again, each connection subscribed to a topic of its own (a device
# waiting for commands): what a subscription adds, as a slope.
for n in $SUB_CONNS; do SCENARIOS+=("connsub-$n|--connect-inflight 64 conn --conns $n --subscribe"); done
# The scenarios the floor runs.
FLOOR_KEYS=" p2p-q1-max p2p-q0-100k fanin-q1-8x5k "

restart_broker() { # broker
  local p=${PID[$1]}
  if [ -n "$p" ]; then
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  fi
  "start_$1" || true
}

run_one() { # broker key args rep
  local b=$1 key=$2 args=$3 rep=$4 log="$OUT/logs/$1-$2-$4.log"
  mkdir -p "$OUT/logs"
  local pid=${PID[$b]} port=${PORT[$b]}
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    if [ -n "$pid" ]; then
      echo "WARNING: $b died; restarting" >&2
      "start_$b" || true
      pid=${PID[$b]} port=${PORT[$b]}
    fi
  fi
  if [ -z "$pid" ]; then
    printf '{"broker":"%s","key":"%s","rep":%d,"failed":true,"error":"broker not running"}\n' "$b" "$key" "$rep" >>"$RES"
    return
  fi
  local secs=$SECS
  case "$key" in
    conn-*|connsub-*)
      secs=1
      # A fresh broker: after the traffic scenarios its heap holds freed message memory that
      # the connections would reuse (or that it returns), and bytes/conn came out negative.
      restart_broker "$b"
      pid=${PID[$b]} port=${PORT[$b]}
      if [ -z "$pid" ]; then
        printf '{"broker":"%s","key":"%s","rep":%d,"failed":true,"error":"broker did not restart"}\n' "$b" "$key" "$rep" >>"$RES"
        return
      fi
      ;;
  esac
  # shellcheck disable=SC2086
  if timeout $((secs + 60)) "$BENCH" --port "$port" --broker-pid "$pid" --label "$b" --json --quiet \
      --secs "$secs" --drain-secs 3 --setup-secs 20 "${TLS_ARGS[@]}" $args >"$log" 2>&1; then
    tail -n1 "$log" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); d.update(broker=sys.argv[1], key=sys.argv[2], rep=int(sys.argv[3])); print(json.dumps(d))' "$b" "$key" "$rep" >>"$RES" \
      || printf '{"broker":"%s","key":"%s","rep":%d,"failed":true,"error":"no JSON"}\n' "$b" "$key" "$rep" >>"$RES"
  else
    local err; err=$(tail -n1 "$log" | tr -d '"' | tr -d "\\\\" | cut -c1-200)
    printf '{"broker":"%s","key":"%s","rep":%d,"failed":true,"error":"%s"}\n' "$b" "$key" "$rep" "$err" >>"$RES"
  fi
  sleep 0.3
}

for rep in $(seq "$REPS"); do
  for s in "${SCENARIOS[@]}"; do
    key=${s%%|*} args=${s#*|}
    # Each repetition starts with the next broker: the order rotates.
    order=()
    for i in "${!BROKERS[@]}"; do
      b=${BROKERS[$(( (i + rep - 1) % ${#BROKERS[@]} ))]}
      if [ "$b" = floor ] && [[ "$FLOOR_KEYS" != *" $key "* ]]; then continue; fi
      order+=("$b")
    done
    for b in "${order[@]}"; do
      echo "rep $rep/$REPS  $key  $b"
      run_one "$b" "$key" "$args" "$rep"
    done
  done
done

python3 scripts/plot.py "$OUT"
echo "results in $OUT"
