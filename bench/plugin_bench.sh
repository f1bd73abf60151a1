#!/usr/bin/env bash
# make bench-plugin: calls per second and latency of cache-hit `simulate` calls through
# `quargo serve`, 16 concurrent connections (wrk, 2 threads) on this machine's cores, with the
# embedded LMDB store and with Redis. Needs wrk and redis-server (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/quargo}
DURATION=${DURATION:-10s}
command -v wrk >/dev/null || { echo "bench-plugin needs wrk (apt-get install wrk)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "bench-plugin needs redis-server" >&2; exit 1; }
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

export QUARGO_BENCH_TOKEN=benchtoken0123456789abcdefghijkl
printf %s "$QUARGO_BENCH_TOKEN" > "$WORK/token"
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null & PIDS+=($!)
wait_port "$REDIS_PORT"

# A 12-qubit circuit with an observable: probabilities and <Z...Z> come from the cache.
QASM=$(python3 - <<'PY'
import random
random.seed(3)
n = 12
lines = ['OPENQASM 2.0;', 'include "qelib1.inc";', f'qreg q[{n}];']
for layer in range(6):
    for q in range(n):
        lines.append(f'ry({random.uniform(-3, 3):.6f}) q[{q}];')
    for q in range(n - 1):
        lines.append(f'cx q[{q}],q[{q + 1}];')
print('\n'.join(lines))
PY
)

echo "| store | calls/s | p50 ms | p90 ms | p99 ms | non-2xx | all Succeeded |"
echo "|---|---|---|---|---|---|---|"
for STORE in lmdb redis; do
  PORT=$(free_port)
  if [ "$STORE" = lmdb ]; then URL="lmdb://$WORK/lmdb"; else URL="redis://127.0.0.1:$REDIS_PORT/0"; fi
  "$BIN" serve --listen "127.0.0.1:$PORT" --token-file "$WORK/token" --cache "$URL" 2>"$WORK/serve-$STORE.log" & PIDS+=($!)
  wait_port "$PORT"
  # The first call stores the circuit and computes; the benchmark then names the circuit by key.
  FIRST=$(python3 - "$PORT" "$QASM" <<'PY'
import json, os, sys, urllib.request
port, qasm = sys.argv[1], sys.argv[2]
body = {"workflow": {"metadata": {"name": "bench", "namespace": "quantum", "uid": "bench-uid"}},
        "template": {"name": "simulate", "inputs": {}, "outputs": {}, "metadata": {},
                     "plugin": {"quargo": {"op": "simulate", "qasm": qasm, "observables": ["ZZZZZZZZZZZZ"], "nodeName": "bench.warm"}}}}
req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/template.execute", json.dumps(body).encode(),
                             {"Content-Type": "application/json", "Authorization": "Bearer " + os.environ["QUARGO_BENCH_TOKEN"]})
for _ in range(100):
    reply = json.load(urllib.request.urlopen(req))
    if reply["node"]["phase"] == "Succeeded":
        break
params = {p["name"]: p["value"] for p in reply["node"]["outputs"]["parameters"]}
body["template"]["plugin"]["quargo"] = {"op": "simulate", "circuit": params["circuit"], "observables": ["ZZZZZZZZZZZZ"], "nodeName": "bench.hot"}
print(json.dumps(body))
PY
)
  printf %s "$FIRST" > "$WORK/body.json"
  export QUARGO_BENCH_BODY="$WORK/body.json"
  # Check one hot reply.
  CHECK=$(curl -s -X POST -H "Content-Type: application/json" -H "Authorization: Bearer $QUARGO_BENCH_TOKEN" \
    --data-binary @"$WORK/body.json" "http://127.0.0.1:$PORT/api/v1/template.execute")
  echo "$CHECK" | grep -q '"phase":"Succeeded"' || { echo "hot call did not succeed: $CHECK" >&2; exit 1; }
  wrk -t2 -c16 -d1s -s bench/plugin_post.lua "http://127.0.0.1:$PORT/api/v1/template.execute" >/dev/null
  OUT=$(wrk -t2 -c16 -d"$DURATION" --latency -s bench/plugin_post.lua "http://127.0.0.1:$PORT/api/v1/template.execute")
  RPS=$(echo "$OUT" | awk '/Requests\/sec/ {print $2}')
  ms() { echo "$OUT" | awk -v q="$1" '$1 == q {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; printf "%.2f", v}'; }
  NON2XX=$(echo "$OUT" | awk '/Non-2xx/ {print $NF}')
  HITS=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/quargo_calls_total\{op="simulate",phase="Succeeded"\}/ {print $2}')
  echo "| $STORE | $RPS | $(ms 50%) | $(ms 90%) | $(ms 99%) | ${NON2XX:-0} | $HITS succeeded |"
done
