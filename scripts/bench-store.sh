#!/usr/bin/env bash
# bench-store.sh — what the on-disk store costs: QoS 1 throughput with persistent sessions,
# actormq with store.persistence on (sync batch, the default; and sync always) against the
# same broker with it off, in alternation on loopback, and with clean sessions for reference
# (never written, whatever the setting).
#
# Environment (defaults in brackets):
#   ROUNDS    rounds per case and broker        [3]
#   DURATION  measurement window per run        [5s]
#   OUT       directory for results and logs    [a new temp dir]
#
# Needs: go, python3, taskset (the load generator runs on CPU 1).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/bench-store.XXXXXX)}
mkdir -p "$OUT"

# name|load generator flags|what
CASES=(
  "pairs_p|-workload pairs -qos 1 -persistent|200 pairs, QoS 1, persistent sessions (deliveries/s)"
  "fanin_p|-workload fan-in -qos 1 -persistent|fan-in 50→1, QoS 1, persistent sessions (deliveries/s)"
  "pairs_c|-workload pairs -qos 1|200 pairs, QoS 1, clean sessions (deliveries/s)"
)
BROKERS=(off batch always)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

echo "building into $OUT" >&2
(cd "$ROOT" && go build -o "$OUT/actormq" . && go build -o "$OUT/load" ./tests/load)

declare -A PORT PID
for b in "${BROKERS[@]}"; do
  mkdir -p "$OUT/$b"
  "$OUT/actormq" -config "$OUT/$b/actormq.toml" -check >/dev/null
  PORT[$b]=$(free_port)
  persistence=true; sync=$b
  [ "$b" = off ] && { persistence=false; sync=batch; }
  sed -i -e "s|^address = \":1883\"|address = \"127.0.0.1:${PORT[$b]}\"|" \
         -e "s|^address = \":1884\"|address = \"127.0.0.1:0\"|" \
         -e "s|^address = \":8080\"|address = \"127.0.0.1:0\"|" \
         -e "s|^listen = \"127.0.0.1:3030\"|listen = \"\"|" \
         -e "s|^level = \"info\"|level = \"warn\"|" \
         -e "s|^persistence = true|persistence = $persistence|" \
         -e "s|^sync = \"batch\"|sync = \"$sync\"|" "$OUT/$b/actormq.toml"
  "$OUT/actormq" -config "$OUT/$b/actormq.toml" 2>>"$OUT/$b/actormq.log" &
  PID[$b]=$!; PIDS+=("${PID[$b]}")
done
sleep 1

RAW="$OUT/results.jsonl"
: >"$RAW"
for round in $(seq 1 "$ROUNDS"); do
  for entry in "${CASES[@]}"; do
    IFS='|' read -r name flags _ <<<"$entry"
    for b in "${BROKERS[@]}"; do
      # shellcheck disable=SC2086
      line=$(taskset -c 1 "$OUT/load" -url "tcp://127.0.0.1:${PORT[$b]}" -pid "${PID[$b]}" -duration "$DURATION" \
             -prefix "$name" -label "$b" $flags 2>>"$OUT/load.log" || true)
      [ -n "$line" ] || line='{"error":"no output"}'
      printf '{"name":"%s","broker":"%s","round":%d,"r":%s}\n' "$name" "$b" "$round" "$line" >>"$RAW"
      echo "round $round $name store=$b done" >&2
      sleep 0.5
    done
  done
done

printf '%s\n' "${CASES[@]}" >"$OUT/cases.txt"
python3 - "$RAW" "$OUT/cases.txt" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(name, b, key):
    v = [x["r"].get(key) for x in rows if x["name"] == name and x["broker"] == b]
    v = [x for x in v if isinstance(x, (int, float))]
    return statistics.median(v) if v else None
f = lambda v: "—" if v is None else f"{v:,.0f}"
print("| case | store off | store on, sync batch | batch / off | store on, sync always | always / off |")
print("|---|---:|---:|---:|---:|---:|")
for line in open(sys.argv[2]):
    name, _, what = line.rstrip("\n").split("|")
    off, batch, always = (med(name, b, "deliveries_per_s") for b in ("off", "batch", "always"))
    r = lambda a: f"{a / off:.2f}" if a and off else "—"
    print(f"| {what} | {f(off)} | {f(batch)} | {r(batch)} | {f(always)} | {r(always)} |")
lost = [(x["name"], x["broker"], x["r"].get("lost")) for x in rows if x["r"].get("lost")]
print("\nlost messages:", lost if lost else "none")
PY
echo "raw results: $RAW" >&2
