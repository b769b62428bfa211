#!/usr/bin/env bash
# bench-side-by-side.sh — actormq against Mosquitto on loopback, same machine, same run.
#
# Starts Mosquitto (Debian's `mosquitto`: apt-get install -y mosquitto) and actormq (built from
# this tree) on free loopback ports, runs every workload of tests/load against each broker in
# alternation (workload by workload, broker by broker, ROUNDS times), and prints a Markdown table
# of medians with the ratio actormq/mosquitto. With CROSS=1 it runs the same workloads with
# ../shared/mqttbench too, as a check on the project's own tool.
#
# Environment (defaults in brackets):
#   ROUNDS      rounds per workload and broker                             [3]
#   DURATION    measurement window per run                                 [5s]
#   WARMUP      warm-up before the window                                  [1s]
#   ONLY        space-separated workload names to run (see WORKLOADS below) [all]
#   PIN         client: load generator on CPU 1 (taskset -c 1), brokers free;
#               both:   also every broker on CPU 0; none: no pinning        [client]
#   CROSS       1: also run /work/shared/mqttbench (MQTTBENCH_DIR)          [0]
#   CONNS       connections for connect-rate and idle                      [10000]
#   OUT         directory for the raw JSON lines and logs                  [a new temp dir]
#   ACTORMQ_BIN a prebuilt actormq binary instead of building this tree   []
#   MOCHI_BIN   a third broker: a mochi-mqtt v2 program that takes -tcp ADDR and -ws ADDR
#               (listen addresses; built outside this repo, see docs/BENCHMARKS.md)  []
#   SOURCES     -sources of the load generator (local addresses to dial from) [1]
#   ONE_CORE    1: also run actormq with GOMAXPROCS=1 ("actormq1"), the same binary and
#               config on its own ports: the broker on one core, as Mosquitto is     [0]
#   FLOOR       1: also run tests/load/floor, the least a Go server does per connection
#               (CONNECT in, CONNACK out), as "floor" (net's goroutine per socket) and
#               "rawfloor" (-raw: raw descriptors in one epoll set, as Mosquitto works),
#               in the connect and idle workloads only: the yardsticks for those two  [0]
#
# Needs: go, mosquitto, python3 (for the medians), taskset (util-linux).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
PIN=${PIN:-client}
CROSS=${CROSS:-0}
CONNS=${CONNS:-10000}
SOURCES=${SOURCES:-1}
BROKERS="mosquitto actormq"
[ "${ONE_CORE:-0}" = 1 ] && BROKERS="$BROKERS actormq1"
[ -n "${MOCHI_BIN:-}" ] && BROKERS="$BROKERS mochi"
[ "${FLOOR:-0}" = 1 ] && BROKERS="$BROKERS floor rawfloor"
MQTTBENCH_DIR=${MQTTBENCH_DIR:-/work/shared/mqttbench}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/bench-side-by-side.XXXXXX)}
mkdir -p "$OUT"

# name|load generator flags|mqttbench flags|metric of load|metric of mqttbench|what
WORKLOADS=(
  "fanin_q0|-workload fan-in -qos 0|-scenario fanin -qos 0|deliveries_per_s|msgs_per_s|fan-in 50→1, QoS 0 (deliveries/s)"
  "fanin_q0_cpu|-workload fan-in -qos 0|-scenario fanin -qos 0|broker_cpu_us_per_msg|broker_cpu_us_per_msg|broker CPU per delivery, fan-in QoS 0 (µs)"
  "fanin_q1|-workload fan-in -qos 1|-scenario fanin -qos 1|deliveries_per_s|msgs_per_s|fan-in 50→1, QoS 1 (deliveries/s)"
  "fanout_q0|-workload fan-out -qos 0|-scenario fanout -qos 0|deliveries_per_s|msgs_per_s|fan-out 1→100, QoS 0 (deliveries/s)"
  "fanout_q1|-workload fan-out -qos 1|-scenario fanout -qos 1|deliveries_per_s|msgs_per_s|fan-out 1→100, QoS 1 (deliveries/s)"
  "pairs_q1|-workload pairs -qos 1 -proto 3.1.1|-scenario pairs -qos 1 -proto 4|deliveries_per_s|msgs_per_s|200 pairs, QoS 1, 3.1.1 (deliveries/s)"
  "pairs_q1_v5|-workload pairs -qos 1 -proto 5.0|-scenario pairs -qos 1 -proto 5|deliveries_per_s|msgs_per_s|200 pairs, QoS 1, 5.0 (deliveries/s)"
  "fanin_q1_lat|-workload fan-in -qos 1 -rate 5000|-scenario fanin -qos 1 -rate 5000|p99_ms|lat_p99_ms|p99 at 5,000/s, fan-in QoS 1 (ms)"
  "fanout_q1_lat|-workload fan-out -qos 1 -rate 5000|-scenario fanout -qos 1 -rate 5000|p99_ms|lat_p99_ms|p99 at 5,000/s, fan-out QoS 1 (ms)"
  "pairs_q1_lat|-workload pairs -qos 1 -rate 5000|-scenario pairs -qos 1 -rate 5000|p99_ms|lat_p99_ms|p99 at 5,000/s, pairs QoS 1 (ms)"
  "retained_q1|-workload retained -qos 1|-scenario retained -qos 1|retained_ms|all_ms|10,000 retained to a new '#' subscriber, QoS 1 (ms)"
  "retained_q1_n|-workload retained -qos 1|-scenario retained -qos 1|delivered|received|10,000 retained: delivered"
  "connect|-workload connect-rate -conns $CONNS|-scenario conns -conns $CONNS -hold 1s|connects_per_s|connect_per_s|connect rate, 50 in parallel (/s)"
  "connect_cpu|-workload connect-rate -conns $CONNS|-scenario conns -conns $CONNS -hold 1s|broker_cpu_us_per_msg|broker_cpu_us_per_msg|broker CPU per connect (µs)"
  "idle|-workload idle -conns $CONNS|-scenario conns -conns $CONNS -hold 2s|broker_rss_per_conn_kb|rss_per_conn_kb|$CONNS idle connections: broker RSS per connection (KB)"
  "ws_fanin_q0|WS -workload fan-in -qos 0|WS -scenario fanin -qos 0|deliveries_per_s|msgs_per_s|WebSocket fan-in QoS 0 (deliveries/s)"
  "ws_pairs_q1|WS -workload pairs -qos 1|WS -scenario pairs -qos 1|deliveries_per_s|msgs_per_s|WebSocket 200 pairs QoS 1 (deliveries/s)"
)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo "building into $OUT" >&2
if [ -n "${ACTORMQ_BIN:-}" ]; then cp "$ACTORMQ_BIN" "$OUT/actormq"; else (cd "$ROOT" && go build -o "$OUT/actormq" .); fi
(cd "$ROOT" && go build -o "$OUT/load" ./tests/load)
if [ "${FLOOR:-0}" = 1 ]; then (cd "$ROOT" && go build -o "$OUT/floor" ./tests/load/floor); fi
if [ "$CROSS" = 1 ]; then (cd "$MQTTBENCH_DIR" && go build -o "$OUT/mqttbench" .); fi

BROKER_CPU=()
CLIENT_CPU=()
case "$PIN" in
  client) CLIENT_CPU=(taskset -c 1) ;;
  both) CLIENT_CPU=(taskset -c 1); BROKER_CPU=(taskset -c 0) ;;
  none) ;;
  *) echo "PIN must be client, both or none" >&2; exit 2 ;;
esac

# Every port is picked before any broker starts: a port picked while a broker that was given
# another is still starting could be the same one.
MQ_PORT=$(free_port); MQ_WS=$(free_port)
A_TCP=$(free_port); A_TCP5=$(free_port); A_WS=$(free_port)
A1_TCP=$(free_port); A1_TCP5=$(free_port); A1_WS=$(free_port)
M_TCP=$(free_port); M_WS=$(free_port); F_TCP=$(free_port); RF_TCP=$(free_port)

# Mosquitto: defaults (max_queued_messages 1000, max_inflight_messages 20), TCP and WebSocket.
cat >"$OUT/mosquitto.conf" <<EOF
listener $MQ_PORT 127.0.0.1
allow_anonymous true
listener $MQ_WS 127.0.0.1
protocol websockets
allow_anonymous true
persistence false
log_type error
log_dest stderr
EOF
start_mosquitto() {
  "${BROKER_CPU[@]}" mosquitto -c "$OUT/mosquitto.conf" 2>>"$OUT/mosquitto.log" &
  MQ_PID=$!; PIDS+=("$MQ_PID")
}
start_mosquitto

# actormq: the generated default config, listeners on free loopback ports, no console.
"$OUT/actormq" -config "$OUT/actormq.toml" -check >/dev/null
sed -i -e "s|^address = \":1883\"|address = \"127.0.0.1:$A_TCP\"|" \
       -e "s|^address = \":1884\"|address = \"127.0.0.1:$A_TCP5\"|" \
       -e "s|^address = \":8080\"|address = \"127.0.0.1:$A_WS\"|" \
       -e "s|^listen = \"127.0.0.1:3030\"|listen = \"\"|" \
       -e "s|^level = \"info\"|level = \"warn\"|" "$OUT/actormq.toml"
start_actormq() {
  "${BROKER_CPU[@]}" "$OUT/actormq" -config "$OUT/actormq.toml" 2>>"$OUT/actormq.log" &
  A_PID=$!; PIDS+=("$A_PID")
}
start_actormq
# actormq1 (optional): the same broker limited to one core (Go's GOMAXPROCS), on its own ports.
A1_PID=
sed -e "s|127.0.0.1:$A_TCP\"|127.0.0.1:$A1_TCP\"|" -e "s|127.0.0.1:$A_TCP5\"|127.0.0.1:$A1_TCP5\"|" \
    -e "s|127.0.0.1:$A_WS\"|127.0.0.1:$A1_WS\"|" -e 's|^data_dir = "data"|data_dir = "data1"|' \
    "$OUT/actormq.toml" >"$OUT/actormq1.toml"
start_actormq1() {
  [ "${ONE_CORE:-0}" = 1 ] || return 0
  GOMAXPROCS=1 "${BROKER_CPU[@]}" "$OUT/actormq" -config "$OUT/actormq1.toml" 2>>"$OUT/actormq1.log" &
  A1_PID=$!; PIDS+=("$A1_PID")
}
start_actormq1
# mochi (optional): TCP and WebSocket on free loopback ports.
M_PID=
start_mochi() {
  [ -n "${MOCHI_BIN:-}" ] || return 0
  "${BROKER_CPU[@]}" "$MOCHI_BIN" -tcp "127.0.0.1:$M_TCP" -ws "127.0.0.1:$M_WS" >>"$OUT/mochi.log" 2>&1 &
  M_PID=$!; PIDS+=("$M_PID")
}
start_mochi
# floor and rawfloor (optional): yardsticks for the connect and idle workloads, not brokers.
F_PID=; RF_PID=
start_floor() {
  [ "${FLOOR:-0}" = 1 ] || return 0
  "${BROKER_CPU[@]}" "$OUT/floor" -tcp "127.0.0.1:$F_TCP" >>"$OUT/floor.log" 2>&1 &
  F_PID=$!; PIDS+=("$F_PID")
  "${BROKER_CPU[@]}" "$OUT/floor" -raw -tcp "127.0.0.1:$RF_TCP" >>"$OUT/rawfloor.log" 2>&1 &
  RF_PID=$!; PIDS+=("$RF_PID")
}
start_floor
sleep 1
# restart_brokers gives the idle workload fresh processes: a broker's RSS after heavier
# workloads includes freed heap it reuses, which hides the cost of new connections.
restart_brokers() {
  kill "$MQ_PID" "$A_PID" $A1_PID $M_PID $F_PID $RF_PID 2>/dev/null || true
  wait "$MQ_PID" "$A_PID" $A1_PID $M_PID $F_PID $RF_PID 2>/dev/null || true
  start_mosquitto; start_actormq; start_actormq1; start_mochi; start_floor
  sleep 1
}
kill -0 "$MQ_PID" || { echo "mosquitto did not start: $(cat "$OUT/mosquitto.log")" >&2; exit 1; }
kill -0 "$A_PID" || { echo "actormq did not start: $(cat "$OUT/actormq.log")" >&2; exit 1; }
[ -z "$A1_PID" ] || kill -0 "$A1_PID" || { echo "actormq1 did not start: $(cat "$OUT/actormq1.log")" >&2; exit 1; }
[ -z "$F_PID" ] || kill -0 "$F_PID" || { echo "floor did not start: $(cat "$OUT/floor.log")" >&2; exit 1; }
[ -z "$RF_PID" ] || kill -0 "$RF_PID" || { echo "rawfloor did not start: $(cat "$OUT/rawfloor.log")" >&2; exit 1; }

url() { # broker ws?
  case "$1/$2" in
    mosquitto/0) echo "tcp://127.0.0.1:$MQ_PORT" ;;
    mosquitto/1) echo "ws://127.0.0.1:$MQ_WS/mqtt" ;;
    actormq/0) echo "tcp://127.0.0.1:$A_TCP" ;;
    actormq/1) echo "ws://127.0.0.1:$A_WS/mqtt" ;;
    actormq1/0) echo "tcp://127.0.0.1:$A1_TCP" ;;
    actormq1/1) echo "ws://127.0.0.1:$A1_WS/mqtt" ;;
    mochi/0) echo "tcp://127.0.0.1:$M_TCP" ;;
    mochi/1) echo "ws://127.0.0.1:$M_WS/mqtt" ;;
    floor/0) echo "tcp://127.0.0.1:$F_TCP" ;;
    rawfloor/0) echo "tcp://127.0.0.1:$RF_TCP" ;;
  esac
}
pid_of() { case "$1" in mosquitto) echo "$MQ_PID" ;; mochi) echo "$M_PID" ;; floor) echo "$F_PID" ;; rawfloor) echo "$RF_PID" ;; actormq1) echo "$A1_PID" ;; *) echo "$A_PID" ;; esac; }

selected() { [ -z "${ONLY:-}" ] && return 0; for o in $ONLY; do [ "$o" = "$1" ] && return 0; done; return 1; }

RAW="$OUT/results.jsonl"
: >"$RAW"
for round in $(seq 1 "$ROUNDS"); do
  for entry in "${WORKLOADS[@]}"; do
    IFS='|' read -r name lflags bflags _ _ _ <<<"$entry"
    selected "$name" || continue
    case "$name" in fanin_q0_cpu|retained_q1_n|connect_cpu) continue ;; esac # read from fanin_q0 / retained_q1 / connect
    for broker in $BROKERS; do
      case "$broker" in floor|rawfloor) case "$name" in connect|idle) ;; *) continue ;; esac ;; esac
      for tool in load mqttbench; do
        [ "$tool" = mqttbench ] && [ "$CROSS" != 1 ] && continue
        if [ "$name" = idle ]; then restart_brokers; fi
        ws=0; flags=$lflags; [ "$tool" = mqttbench ] && flags=$bflags
        case "$flags" in WS\ *) ws=1; flags=${flags#WS } ;; esac
        u=$(url "$broker" "$ws"); p=$(pid_of "$broker")
        if [ "$tool" = load ]; then
          # shellcheck disable=SC2086
          line=$("${CLIENT_CPU[@]}" "$OUT/load" -url "$u" -pid "$p" -duration "$DURATION" -warmup "$WARMUP" \
                 -sources "$SOURCES" -label "$broker" $flags 2>>"$OUT/load.log" || true)
        else
          # shellcheck disable=SC2086
          line=$("${CLIENT_CPU[@]}" "$OUT/mqttbench" -url "$u" -pid "$p" -duration "$DURATION" -warmup "$WARMUP" \
                 -label "$broker" $flags 2>>"$OUT/mqttbench.log" || true)
        fi
        [ -n "$line" ] || line='{"error":"no output"}'
        printf '{"name":"%s","broker":"%s","tool":"%s","round":%d,"r":%s}\n' "$name" "$broker" "$tool" "$round" "$line" >>"$RAW"
        echo "round $round $name $broker $tool done" >&2
        sleep 0.5
      done
    done
  done
done

printf '%s\n' "${WORKLOADS[@]}" >"$OUT/workloads.txt"
python3 - "$RAW" "$OUT/workloads.txt" "$CROSS" "$BROKERS" <<'PY'
import json, statistics, sys
raw, wl, cross = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
mochi = "mochi" in sys.argv[4].split()
one = "actormq1" in sys.argv[4].split()
floor = "floor" in sys.argv[4].split()
rows = [json.loads(l) for l in open(raw) if l.strip()]
def metric(r, key, tool):
    if tool == "mqttbench":
        if key == "lat_p99_ms" and "lat_p99_us" in r: return r["lat_p99_us"] / 1000
        if key == "rss_per_conn_kb" and "broker_bytes_per_conn" in r: return r["broker_bytes_per_conn"] / 1024
    return r.get(key)
def med(name, broker, tool, key):
    src = {"fanin_q0_cpu": "fanin_q0", "retained_q1_n": "retained_q1", "connect_cpu": "connect"}.get(name, name)
    vals = [metric(x["r"], key, tool) for x in rows if x["name"] == src and x["broker"] == broker and x["tool"] == tool]
    vals = [v for v in vals if isinstance(v, (int, float))]
    return (statistics.median(vals), len(vals)) if vals else (None, 0)
def fmt(v):
    if v is None: return "—"
    if abs(v) >= 1000: return f"{v:,.0f}"
    if abs(v) >= 10: return f"{v:.1f}"
    return f"{v:.2f}"
tools = ["load"] + (["mqttbench"] if cross else [])
per = 3 + (2 if mochi else 0) + (2 if one else 0) + (4 if floor else 0)
hdr = "| workload | " + " | ".join(f"mosquitto ({t}) | actormq ({t}) | ratio ({t})" + (f" | mochi ({t}) | actormq/mochi ({t})" if mochi else "")
                                  + (f" | actormq, 1 core ({t}) | 1 core/mosquitto ({t})" if one else "")
                                  + (f" | Go floor ({t}) | actormq/floor ({t}) | raw Go floor ({t}) | actormq/raw floor ({t})" if floor else "") for t in tools) + " |"
print(hdr); print("|" + "---|" * (1 + per * len(tools)))
for line in open(wl):
    line = line.rstrip("\n")
    if not line: continue
    name, _, _, lkey, bkey, what = line.split("|")
    cells = []
    for t in tools:
        key = lkey if t == "load" else bkey
        m, _ = med(name, "mosquitto", t, key); a, _ = med(name, "actormq", t, key)
        ratio = fmt(a / m) if (a is not None and m) else "—"
        cells += [fmt(m), fmt(a), ratio]
        if mochi:
            mo, _ = med(name, "mochi", t, key)
            cells += [fmt(mo), fmt(a / mo) if (a is not None and mo) else "—"]
        if one:
            a1, _ = med(name, "actormq1", t, key)
            cells += [fmt(a1), fmt(a1 / m) if (a1 is not None and m) else "—"]
        if floor:
            for fl in ("floor", "rawfloor"):
                f, _ = med(name, fl, t, key)
                cells += [fmt(f), fmt(a / f) if (a is not None and f) else "—"]
    if all(c == "—" for c in cells): continue
    print(f"| {what} | " + " | ".join(cells) + " |")
errs = [x for x in rows if x["r"].get("error")]
lost = [x for x in rows if x["r"].get("qos", 0) >= 1 and (x["r"].get("lost") or 0) > 0]
print()
print(f"runs: {len(rows)}, with an error: {len(errs)}, QoS≥1 runs with lost > 0: {len(lost)}; medians of the rounds; ratio = actormq / mosquitto" + (", actormq/mochi = actormq / mochi" if mochi else "")
      + ("; the Go floors are tests/load/floor (raw: -raw), connect and idle only" if floor else ""))
for x in errs: print(f"- error: {x['name']} {x['broker']} {x['tool']} round {x['round']}: {x['r']['error'][:160]}")
for x in lost: print(f"- lost: {x['name']} {x['broker']} {x['tool']} round {x['round']}: {x['r']['lost']}")
sat = [x for x in rows if x["r"].get("client_saturated")]
for x in sat: print(f"- client saturated: {x['name']} {x['broker']} {x['tool']} round {x['round']}")
PY
echo "raw results: $RAW" >&2
