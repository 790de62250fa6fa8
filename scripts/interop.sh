#!/usr/bin/env bash
# Interop with real clients: builds the broker (release), starts it with two shards on a free
# port, and checks MQTT 3.1.1 and 5.0 with mosquitto_pub / mosquitto_sub (Debian
# mosquitto-clients) and Eclipse Paho for Python (paho-mqtt, scripts/interop_paho.py):
# QoS 0/1/2, retained messages, Wills, persistent sessions; and a second broker with a
# mosquitto password file (user names and passwords, anonymous clients refused).
#
# Prints one line per check, then "N passed, M failed"; exits non-zero if any check failed.
# The broker is stopped on exit (SIGTERM) whatever happens.
#
# Needs: cargo, mosquitto_pub, mosquitto_sub, python3 with paho-mqtt (pip install paho-mqtt).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN="$TARGET_DIR/release/shardmq"
WORK=$(mktemp -d)
BROKER_PID=""
AUTH_PID=""
TLS_PID=""
WS_PID=""
PASSED=0
FAILED=0

stop_broker() {
  local pid=$1
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

cleanup() {
  stop_broker "$BROKER_PID"
  stop_broker "$AUTH_PID"
  stop_broker "$TLS_PID"
  stop_broker "$WS_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() {
  PASSED=$((PASSED + 1))
  echo "ok   - $1"
}

fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL - $1${2:+: $2}"
}

for tool in mosquitto_pub mosquitto_sub python3; do
  command -v "$tool" >/dev/null || { echo "interop: $tool not found" >&2; exit 2; }
done
python3 -c 'import paho.mqtt' 2>/dev/null \
  || { echo "interop: python3 module paho-mqtt missing (pip install paho-mqtt)" >&2; exit 2; }

echo "building shardmq (release)..."
cargo build --release --quiet --bin shardmq

# Starts the broker with two shards on a free port; $1 names its output files in $WORK,
# the rest are extra flags. Sets STARTED_PID, and STARTED_PORT (empty if it did not start).
start_broker() {
  local name=$1
  shift
  "$BIN" --bind 127.0.0.1 --port 0 --shards 2 --log warn "$@" \
    >"$WORK/$name.stdout" 2>"$WORK/$name.stderr" &
  STARTED_PID=$!
  STARTED_PORT=""
  for _ in $(seq 200); do
    if line=$(grep -m1 '^listening ' "$WORK/$name.stdout" 2>/dev/null); then
      STARTED_PORT=${line##*:}
      break
    fi
    kill -0 "$STARTED_PID" 2>/dev/null || break
    sleep 0.05
  done
}

# The port of broker $1's second listener, from its `listening $2 ADDR` line (printed after
# the plain one); empty if it did not appear within 5 s.
extra_listener_port() {
  local line
  for _ in $(seq 100); do
    if line=$(grep -m1 "^listening $2 " "$WORK/$1.stdout" 2>/dev/null); then
      echo "${line##*:}"
      return
    fi
    sleep 0.05
  done
}

# A subscriber waiting for one message while a publisher repeats it until it has arrived.
# $1 names the check, $2 is the message; then the subscriber's arguments, `--`, and the
# publisher's.
check_delivery() {
  local name=$1 message=$2 out="$WORK/delivery" sub sub_args=()
  shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do sub_args+=("$1"); shift; done
  shift
  mosquitto_sub "${sub_args[@]}" -C 1 -W 5 >"$out" 2>&1 &
  sub=$!
  for _ in $(seq 40); do
    kill -0 "$sub" 2>/dev/null || break
    mosquitto_pub "$@" -m "$message" 2>/dev/null || true
    sleep 0.1
  done
  wait "$sub" || true
  if [ "$(cat "$out")" = "$message" ]; then
    pass "$name"
  else
    fail "$name" "subscriber got '$(tr '\n' ' ' <"$out")'"
  fi
}

start_broker main
BROKER_PID=$STARTED_PID
PORT=$STARTED_PORT
if [ -z "$PORT" ]; then
  echo "interop: broker did not start" >&2
  cat "$WORK/main.stderr" >&2
  exit 1
fi
echo "broker pid $BROKER_PID listening on 127.0.0.1:$PORT (2 shards)"

H=(-h 127.0.0.1 -p "$PORT")
RUN=$$-$RANDOM

# Live delivery: a subscriber waiting for one message while the publisher repeats it until
# the subscriber has it (QoS 0 gives no other way to know the subscription is in place).
# $1 sub protocol, $2 pub protocol, $3 QoS.
check_live() {
  local sv=$1 pv=$2 q=$3 topic="interop/$RUN/live/$1/$2/$3" out="$WORK/live.$1.$2.$3"
  local name="mosquitto $sv sub <- $pv pub, QoS $q live"
  mosquitto_sub "${H[@]}" -V "$sv" -q "$q" -t "$topic" -C 1 -W 5 -F '%t %q %p' >"$out" 2>&1 &
  local sub=$!
  for _ in $(seq 40); do
    kill -0 "$sub" 2>/dev/null || break
    mosquitto_pub "${H[@]}" -V "$pv" -q "$q" -t "$topic" -m "hello-$q" 2>/dev/null || true
    sleep 0.1
  done
  if ! wait "$sub"; then
    fail "$name" "subscriber got nothing ($(tr '\n' ' ' <"$out"))"
  elif [ "$(cat "$out")" = "$topic $q hello-$q" ]; then
    pass "$name"
  else
    fail "$name" "got '$(cat "$out")'"
  fi
}

# Persistent session: subscribe (-E: exit once SUBACK arrived), go away, publish five
# messages, come back and read them in order. $1 protocol, $2 QoS.
check_queue() {
  local v=$1 q=$2 topic="interop/$RUN/queue/$1/$2" id="interop-$RUN-q-$1-$2"
  local name="mosquitto $v persistent session, QoS $q offline queue in order"
  local expiry=()
  [ "$v" = mqttv5 ] && expiry=(-x 60)
  if ! mosquitto_sub "${H[@]}" -V "$v" -q "$q" -c -i "$id" "${expiry[@]}" -t "$topic" -E \
      >/dev/null 2>"$WORK/err"; then
    fail "$name" "subscribe: $(cat "$WORK/err")"
    return
  fi
  local other=mqttv311
  [ "$v" = mqttv311 ] && other=mqttv5
  printf '%s\n' m1 m2 m3 m4 m5 | mosquitto_pub "${H[@]}" -V "$other" -q "$q" -t "$topic" -l
  local got
  got=$(mosquitto_sub "${H[@]}" -V "$v" -q "$q" -c -i "$id" "${expiry[@]}" -t "$topic" \
    -C 5 -W 5 2>&1 | tr '\n' ' ') || true
  if [ "$got" = "m1 m2 m3 m4 m5 " ]; then
    pass "$name"
  else
    fail "$name" "got '$got'"
  fi
}

# Retained: set, read on subscribe (retain flag 1), replace, delete. $1 protocol.
check_retained() {
  local v=$1 topic="interop/$RUN/retained/$1"
  local name="mosquitto $v retained set/replace/delete"
  mosquitto_pub "${H[@]}" -V "$v" -q 1 -r -t "$topic" -m first
  mosquitto_pub "${H[@]}" -V "$v" -q 1 -r -t "$topic" -m second
  local got
  got=$(mosquitto_sub "${H[@]}" -V "$v" -q 1 -t "$topic" -C 1 -W 5 -F '%r %p' 2>&1) || true
  if [ "$got" != "1 second" ]; then
    fail "$name" "after replace got '$got'"
    return
  fi
  mosquitto_pub "${H[@]}" -V "$v" -q 1 -r -t "$topic" -n
  got=$(mosquitto_sub "${H[@]}" -V "$v" -q 1 -t "$topic" -C 1 -W 1 2>/dev/null) || true
  if [ -n "$got" ]; then
    fail "$name" "deleted retained message still sent: '$got'"
  else
    pass "$name"
  fi
}

# Will: a client killed with SIGKILL (no DISCONNECT) has its retained Will published; a
# client that disconnects normally does not. $1 protocol.
check_will() {
  local v=$1 topic="interop/$RUN/will/$1"
  local name="mosquitto $v will on abnormal close, none after DISCONNECT"
  mosquitto_sub "${H[@]}" -V "$v" -t "interop/$RUN/idle" -k 30 \
    --will-topic "$topic" --will-payload died --will-qos 1 --will-retain >/dev/null 2>&1 &
  local dying=$!
  sleep 0.3
  kill -KILL "$dying" 2>/dev/null || true
  wait "$dying" 2>/dev/null || true
  local got
  got=$(mosquitto_sub "${H[@]}" -V "$v" -q 1 -t "$topic" -C 1 -W 5 2>&1) || true
  if [ "$got" != "died" ]; then
    fail "$name" "Will not published (got '$got')"
    return
  fi
  local topic2="$topic/polite"
  mosquitto_pub "${H[@]}" -V "$v" -t "interop/$RUN/x" -m x \
    --will-topic "$topic2" --will-payload wrong --will-qos 1 --will-retain
  got=$(mosquitto_sub "${H[@]}" -V "$v" -q 1 -t "$topic2" -C 1 -W 1 2>/dev/null) || true
  if [ -n "$got" ]; then
    fail "$name" "Will published after a normal DISCONNECT"
  else
    pass "$name"
  fi
}

for v in mqttv311 mqttv5; do
  for q in 0 1 2; do
    other=mqttv5
    [ "$v" = mqttv5 ] && other=mqttv311
    check_live "$v" "$v" "$q"
    check_live "$v" "$other" "$q"
  done
  for q in 1 2; do
    check_queue "$v" "$q"
  done
  check_retained "$v"
  check_will "$v"
done

# $SYS: the broker's counters, retained (published at start, then every 10 s).
for v in mqttv311 mqttv5; do
  name="mosquitto $v reads \$SYS/broker/version and clients/connected"
  # shellcheck disable=SC2016 # a literal $ in the topic
  got=$(mosquitto_sub "${H[@]}" -V "$v" -t '$SYS/broker/version' -t '$SYS/broker/clients/connected' \
    -C 2 -W 5 -v 2>&1 | sort | tr '\n' ' ') || true
  if [[ "$got" =~ ^\$SYS/broker/clients/connected\ [0-9]+\ \$SYS/broker/version\ shardmq\  ]]; then
    pass "$name"
  else
    fail "$name" "got '$got'"
  fi
done

# Paho (Python): prints its own ok/FAIL lines; count them.
set +e
python3 scripts/interop_paho.py 127.0.0.1 "$PORT" >"$WORK/paho" 2>&1
paho_rc=$?
set -e
cat "$WORK/paho"
PASSED=$((PASSED + $(grep -c '^ok ' "$WORK/paho" || true)))
FAILED=$((FAILED + $(grep -c '^FAIL ' "$WORK/paho" || true)))
if [ "$paho_rc" -ne 0 ] && ! grep -q '^FAIL ' "$WORK/paho"; then
  fail "paho run" "exit status $paho_rc"
fi

if ! kill -0 "$BROKER_PID" 2>/dev/null; then
  fail "broker still running after the checks"
fi

# A second broker with a password file, written by mosquitto_passwd (mosquitto 2.0.11):
# alice / "s3cret pass", bob / hunter2; anonymous clients refused.
cat >"$WORK/passwd" <<'PASSWD'
alice:$7$101$25a6oOoXVgNT3wCK$JQyEqg4XYYR8FKro69WEKDEDguSxSIsgOiE8yqwglQGI+/E2XZaGdcfIX3HQ4vwsyf14wAM8IExivKjvNHmtmA==
bob:$7$101$3ku7LAvSZOAJ20LQ$NaCB68fyPHKImw9knfZrueBZdRtxa3mG4QaMdIn/XjTsxST6Aw0ZTq0gABGo/RUG8qpE97YqfSyudSmWpgN2MA==
PASSWD
# bob reads everything and writes his own topics; each client writes only its telemetry.
cat >"$WORK/acl" <<'ACL'
user alice
topic read interop/#
user bob
topic readwrite interop/#
pattern write fleet/%c/telemetry
ACL
printf '[auth]\nallow_anonymous = false\npassword_file = "passwd"\nacl_file = "acl"\n' \
  >"$WORK/auth.toml"
start_broker auth --config "$WORK/auth.toml"
AUTH_PID=$STARTED_PID
AUTH_PORT=$STARTED_PORT
if [ -z "$AUTH_PORT" ]; then
  fail "broker with a password file started" "$(cat "$WORK/auth.stderr")"
else
  A=(-h 127.0.0.1 -p "$AUTH_PORT")
  for v in mqttv311 mqttv5; do
    topic="interop/$RUN/auth/$v"
    check_delivery "mosquitto $v user name and password from a mosquitto_passwd file" \
      secret-hello "${A[@]}" -V "$v" -u alice -P 's3cret pass' -q 1 -t "$topic" \
      -- "${A[@]}" -V "$v" -u bob -P hunter2 -q 1 -t "$topic"
    name="mosquitto $v wrong password and anonymous client refused"
    wrong=$(mosquitto_pub "${A[@]}" -V "$v" -u bob -P hunter3 -t "$topic" -m x 2>&1) && wrong_rc=0 || wrong_rc=$?
    anon=$(mosquitto_pub "${A[@]}" -V "$v" -t "$topic" -m x 2>&1) && anon_rc=0 || anon_rc=$?
    if [ "$wrong_rc" -ne 0 ] && [ "$anon_rc" -ne 0 ] \
        && grep -qi 'bad user name or password' <<<"$wrong" \
        && grep -qi 'not authori[sz]ed' <<<"$anon"; then
      pass "$name"
    else
      fail "$name" "wrong password: rc $wrong_rc '$wrong'; anonymous: rc $anon_rc '$anon'"
    fi
  done
  # ACL: alice may not publish to interop/# nor subscribe to fleet/#; mosquitto_pub and
  # mosquitto_sub report the broker's codes (-d): MQTT 5 0x87 = 135, 3.1.1 SUBACK 0x80 = 128.
  for v in mqttv311 mqttv5; do
    name="mosquitto $v ACL file refuses a PUBLISH and a SUBSCRIBE outside the rules"
    puback=135 suback=135
    [ "$v" = mqttv311 ] && puback=0 suback=128
    pub=$(mosquitto_pub "${A[@]}" -V "$v" -u alice -P 's3cret pass' -i "acl-$RUN" -q 1 \
      -t "interop/$RUN/acl" -m x -d 2>&1) || true
    sub=$(mosquitto_sub "${A[@]}" -V "$v" -u alice -P 's3cret pass' -i "acl-$RUN" -q 1 \
      -t 'fleet/#' -W 1 -d 2>&1) || true
    own=$(mosquitto_pub "${A[@]}" -V "$v" -u alice -P 's3cret pass' -i "acl-$RUN" -q 1 \
      -t "fleet/acl-$RUN/telemetry" -m x -d 2>&1) || true
    if grep -q "received PUBACK (Mid: 1, RC:$puback)" <<<"$pub" \
        && grep -q "Subscribed (mid: 1): $suback" <<<"$sub" \
        && grep -q "received PUBACK (Mid: 1, RC:0)" <<<"$own"; then
      pass "$name"
    else
      fail "$name" "publish: $(tr '\n' ' ' <<<"$pub"); subscribe: $(tr '\n' ' ' <<<"$sub"); own: $(tr '\n' ' ' <<<"$own")"
    fi
  done
  # Paho: the reason codes of MQTT 5 CONNACK (134 bad user name or password, 135 not
  # authorized) and success with the right password.
  name="paho v5 CONNACK 0 / 134 / 135 for right, wrong and no password"
  if got=$(python3 - 127.0.0.1 "$AUTH_PORT" <<'PY' 2>&1
import sys, threading
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
host, port = sys.argv[1], int(sys.argv[2])
def attempt(user, pw):
    done, codes = threading.Event(), []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if user is not None:
        c.username_pw_set(user, pw)
    def on_connect(client, userdata, flags, reason, props):
        codes.append(reason.value)
        done.set()
    c.on_connect = on_connect
    c.connect(host, port)
    c.loop_start()
    done.wait(5)
    c.loop_stop()
    c.disconnect()
    return codes[0] if codes else None
print(attempt("alice", "s3cret pass"), attempt("alice", "nope"), attempt(None, None))
PY
  ) && [ "$got" = "0 134 135" ]; then
    pass "$name"
  else
    fail "$name" "got '$got'"
  fi
  if ! kill -0 "$AUTH_PID" 2>/dev/null; then
    fail "broker with a password file still running after the checks"
  fi
fi

# A third broker with a TLS listener beside the plain one, requiring client certificates
# of the test CA (tests/fixtures/tls/, see make.sh there).
TLS_DIR="$(pwd)/tests/fixtures/tls"
printf '[tls]\nport = 0\ncert_file = "%s"\nkey_file = "%s"\nclient_ca_file = "%s"\n' \
  "$TLS_DIR/server.pem" "$TLS_DIR/server.key" "$TLS_DIR/ca.pem" >"$WORK/tls.toml"
start_broker tls --config "$WORK/tls.toml"
TLS_PID=$STARTED_PID
TLS_PORT=$(extra_listener_port tls tls)
if [ -z "$TLS_PORT" ] || [ -z "$STARTED_PORT" ]; then
  fail "broker with a TLS listener started" "$(cat "$WORK/tls.stderr")"
else
  T=(-h 127.0.0.1 -p "$TLS_PORT" --cafile "$TLS_DIR/ca.pem")
  ID=(--cert "$TLS_DIR/client.pem" --key "$TLS_DIR/client.key")
  for v in mqttv311 mqttv5; do
    topic="interop/$RUN/tls/$v"
    check_delivery "mosquitto $v over TLS with a client certificate, QoS 1" tls-hello \
      "${T[@]}" "${ID[@]}" -V "$v" -q 1 -t "$topic" -- "${T[@]}" "${ID[@]}" -V "$v" -q 1 -t "$topic"
  done
  name="mosquitto over TLS without a client certificate, or a rogue CA's, refused"
  none=$(mosquitto_pub "${T[@]}" -t "interop/$RUN/tls/x" -m x 2>&1) && none_rc=0 || none_rc=$?
  rogue=$(mosquitto_pub "${T[@]}" --cert "$TLS_DIR/rogue.pem" --key "$TLS_DIR/rogue.key" \
    -t "interop/$RUN/tls/x" -m x 2>&1) && rogue_rc=0 || rogue_rc=$?
  if [ "$none_rc" -ne 0 ] && [ "$rogue_rc" -ne 0 ]; then
    pass "$name"
  else
    fail "$name" "no certificate: rc $none_rc '$none'; rogue: rc $rogue_rc '$rogue'"
  fi
  name="paho v5 over TLS with a client certificate: publish to a plain-TCP subscriber"
  topic="interop/$RUN/tls/paho"
  mosquitto_sub -h 127.0.0.1 -p "$STARTED_PORT" -q 1 -t "$topic" -C 1 -W 8 >"$WORK/tls.paho" 2>&1 &
  sub=$!
  sleep 0.3
  if got=$(python3 - 127.0.0.1 "$TLS_PORT" "$TLS_DIR" "$topic" <<'PY' 2>&1
import sys, threading
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
host, port, tls_dir, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
c.tls_set(ca_certs=f"{tls_dir}/ca.pem", certfile=f"{tls_dir}/client.pem", keyfile=f"{tls_dir}/client.key")
connected = threading.Event()
c.on_connect = lambda client, userdata, flags, reason, props: connected.set()
c.connect(host, port)
c.loop_start()
assert connected.wait(5), "no CONNACK over TLS"
info = c.publish(topic, b"paho-over-tls", qos=1)
info.wait_for_publish(5)
print("published" if info.is_published() else "not published")
c.disconnect()
c.loop_stop()
PY
  ) && [ "$got" = published ] && wait "$sub" && [ "$(cat "$WORK/tls.paho")" = paho-over-tls ]; then
    pass "$name"
  else
    kill "$sub" 2>/dev/null || true
    fail "$name" "paho: '$got'; plain subscriber got '$(tr '\n' ' ' <"$WORK/tls.paho")'"
  fi
  if ! kill -0 "$TLS_PID" 2>/dev/null; then
    fail "broker with a TLS listener still running after the checks"
  fi
fi

# A fourth broker with WebSocket listeners (MQTT 5.0 §6), `ws://` and `wss://` (the test
# certificate): paho-mqtt's own WebSocket transport, v5 and 3.1.1, against plain-TCP
# mosquitto clients.
printf '[tls]\nport = 0\ncert_file = "%s"\nkey_file = "%s"\n[websocket]\nport = 0\ntls_port = 0\n' \
  "$TLS_DIR/server.pem" "$TLS_DIR/server.key" >"$WORK/ws.toml"
start_broker ws --config "$WORK/ws.toml"
WS_PID=$STARTED_PID
WS_PORT=$(extra_listener_port ws ws)
WSS_PORT=$(extra_listener_port ws wss)
if [ -z "$WS_PORT" ] || [ -z "$WSS_PORT" ] || [ -z "$STARTED_PORT" ]; then
  fail "broker with WebSocket listeners started" "$(cat "$WORK/ws.stderr")"
else
  for transport in ws wss; do
  for v in 5 311; do
    name="paho $v over $transport://: publish to and receive from plain-TCP mosquitto clients, QoS 1"
    topic="interop/$RUN/$transport/$v"
    port=$WS_PORT
    [ "$transport" = wss ] && port=$WSS_PORT
    mosquitto_sub -h 127.0.0.1 -p "$STARTED_PORT" -q 1 -t "$topic/out" -C 1 -W 8 \
      >"$WORK/ws.sub" 2>&1 &
    sub=$!
    sleep 0.3
    if got=$(python3 - 127.0.0.1 "$port" "$STARTED_PORT" "$topic" "$v" "$transport" "$TLS_DIR" <<'PY' 2>&1
import subprocess, sys, threading
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
host, ws_port, plain_port, topic, v = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
proto = mqtt.MQTTv5 if v == "5" else mqtt.MQTTv311
c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=proto, transport="websockets")
c.ws_set_options(path="/mqtt")
if sys.argv[6] == "wss":
    c.tls_set(ca_certs=f"{sys.argv[7]}/ca.pem")
connected, subscribed, got = threading.Event(), threading.Event(), []
c.on_connect = lambda client, userdata, flags, reason, props: connected.set()
c.on_subscribe = lambda client, userdata, mid, codes, props: subscribed.set()
def on_message(client, userdata, msg):
    got.append(msg.payload)
c.on_message = on_message
c.connect(host, ws_port)
c.loop_start()
assert connected.wait(5), "no CONNACK over WebSocket"
c.subscribe(f"{topic}/in", qos=1)
assert subscribed.wait(5), "no SUBACK over WebSocket"
subprocess.run(["mosquitto_pub", "-h", host, "-p", plain_port, "-q", "1",
                "-t", f"{topic}/in", "-m", "to-ws"], check=True, timeout=5)
info = c.publish(f"{topic}/out", b"from-ws", qos=1)
info.wait_for_publish(5)
for _ in range(50):
    if got:
        break
    threading.Event().wait(0.1)
print("ok" if info.is_published() and got == [b"to-ws"] else f"published={info.is_published()} got={got}")
c.disconnect()
c.loop_stop()
PY
    ) && [ "$got" = ok ] && wait "$sub" && [ "$(cat "$WORK/ws.sub")" = from-ws ]; then
      pass "$name"
    else
      kill "$sub" 2>/dev/null || true
      fail "$name" "paho: '$got'; plain subscriber got '$(tr '\n' ' ' <"$WORK/ws.sub")'"
    fi
  done
  done
  if ! kill -0 "$WS_PID" 2>/dev/null; then
    fail "broker with WebSocket listeners still running after the checks"
  fi
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
