#!/usr/bin/env bash
# `make bench`: ingest, processing and read-side figures for ghingest on this machine, loopback only.
#
# Every server this script starts listens on 127.0.0.1 and is stopped on exit (trap); every load is bounded in
# time. The summary table is printed at the end and written to bench/results/latest.txt.
#
# Placement (2-core machines): the server runs on BENCH_SERVER_CPUS, the load generators on BENCH_LOAD_CPUS
# (taskset). Defaults: both on all CPUs ("0-1"), as load tool and server would share a small machine anyway;
# set e.g. BENCH_SERVER_CPUS=1 BENCH_LOAD_CPUS=0 to pin them apart.
# Knobs: BENCH_PROFILE=scale-out (profiles side by side instead, see below), BENCH_PROFILE=aws (Lambda handlers), BENCH_PROFILE=github (issue 11 only), BENCH_PROFILE=rejections (issue 12 item 3 only), BENCH_QUICK=1 (short runs, small seed), BENCH_SEED_EVENTS, BENCH_SEED_RELEASES, BENCH_SKIP_READ=1,
# BENCH_NICE=-10 (run server and load generators at that nice level, against other work on a shared machine).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY="$ROOT/.venv/bin/python"
GHINGEST="$ROOT/.venv/bin/ghingest"
RESULTS="$ROOT/bench/results"
SERVER_CPUS=${BENCH_SERVER_CPUS:-0-1}
LOAD_CPUS=${BENCH_LOAD_CPUS:-0-1}
NICE=${BENCH_NICE:-0}
SAT_CONNECTIONS=${BENCH_CONNECTIONS:-128}
QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
  SAT_RUNS=1 SAT_SECONDS=5 FIXED_SECONDS=8 PROC_COUNT=6000 PROC_RUNS=1
  SEED_EVENTS=${BENCH_SEED_EVENTS:-100000} SEED_RELEASES=${BENCH_SEED_RELEASES:-10000} READ_REPEAT=10 READ_PAGES=20
else
  SAT_RUNS=3 SAT_SECONDS=10 FIXED_SECONDS=20 PROC_COUNT=30000 PROC_RUNS=3
  SEED_EVENTS=${BENCH_SEED_EVENTS:-1000000} SEED_RELEASES=${BENCH_SEED_RELEASES:-100000} READ_REPEAT=40 READ_PAGES=100
fi

if ! command -v wrk >/dev/null 2>&1; then
  echo "== installing wrk"
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi

# BENCH_PROFILE=aws: the AWS profile's Lambda handlers in process against a moto server (bench/aws_bench.py).
if [[ ${BENCH_PROFILE:-embedded} == aws ]]; then
  mkdir -p "$RESULTS"
  exec "$PY" bench/aws_bench.py --count "$([[ $QUICK == 1 ]] && echo 200 || echo 500)" --out "$RESULTS/aws.txt"
fi

# BENCH_PROFILE=github: only issue 11's figures (reconciliation, release tracking) against the fake GitHub.
if [[ ${BENCH_PROFILE:-embedded} == github ]]; then
  mkdir -p "$RESULTS"
  exec "$PY" bench/github_bench.py $([[ $QUICK == 1 ]] && echo "--deliveries 2000 --repositories 200") \
    --out "$RESULTS/github.txt"
fi

# BENCH_PROFILE=rejections: only issue 12's rejected-requests figure (500 good req/s with and without 2,000 bad-signature
# req/s), on the embedded profile.
REJECTIONS_ONLY=0
if [[ ${BENCH_PROFILE:-embedded} == rejections ]]; then
  REJECTIONS_ONLY=1
fi

# BENCH_PROFILE=scale-out: the scale-out profile (3-node NATS cluster, PostgreSQL, 2 receivers, 2 workers, a
# dashboard) and the embedded profile, measured the same way in the same run (bench/profiles.py).
if [[ ${BENCH_PROFILE:-embedded} != embedded && $REJECTIONS_ONLY == 0 ]]; then
  mkdir -p "$RESULTS"
  # BENCH_BASELINE=DIR: another checkout with its own .venv (e.g. `git worktree add DIR <rev>`), measured first.
  exec "$PY" bench/profiles.py --profiles "embedded,${BENCH_PROFILE}" $([[ $QUICK == 1 ]] && echo --quick) \
    $([[ -n ${BENCH_BASELINE:-} ]] && echo --baseline "$BENCH_BASELINE") --out "$RESULTS/profiles.txt"
fi

WORK=$(mktemp -d /tmp/ghingest-bench.XXXXXX)
mkdir -p "$RESULTS"
SERVER_PID=""
stop_server() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
cleanup() {
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
SECRET="bench-secret-$RANDOM$RANDOM$RANDOM"
TOKEN="bench-token-$RANDOM$RANDOM$RANDOM"

# start_server DB_FILE PORT: `ghingest serve` (uvicorn, uvloop, httptools) on 127.0.0.1, default settings.
start_server() {
  local db=$1 port=$2
  GHINGEST_DATABASE_URL="sqlite:///$db" GHINGEST_DATA_DIR="$WORK/data" GHINGEST_HOST=127.0.0.1 \
    GHINGEST_PORT="$port" GHINGEST_WEBHOOK_SECRETS="$SECRET" GHINGEST_API_TOKENS="$TOKEN" \
    nice -n "$NICE" taskset -c "$SERVER_CPUS" "$GHINGEST" serve >"$WORK/server-$port.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 150); do
    if curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$WORK/server-$port.log"; return 1; }
    sleep 0.1
  done
  echo "server did not become ready" >&2
  return 1
}

# wait_drained DB SECONDS: until the worker has processed everything recorded (bounded).
wait_drained() {
  "$PY" - "$1" "$2" <<'PYEOF'
import sqlite3, sys, time
db, limit = sys.argv[1], float(sys.argv[2])
deadline = time.time() + limit
conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
while time.time() < deadline:
    if conn.execute("SELECT count(*) FROM delivery_states WHERE status = 'received'").fetchone()[0] == 0:
        break
    time.sleep(0.2)
PYEOF
}

# rejection_flood PORT DB: good deliveries in an open loop at 500 req/s, alone and then while wrk sends about
# 2,000 bad-signature req/s (bench/bad_signature.lua, from another process), on the same server; their ack
# p50/p99 both ways, the ratio, and the rejected-requests log's rows afterwards (issue 12, item 3).
rejection_flood() {
  local port=$1 db=$2 tag
  tag="rj$(date +%s)"
  nice -n "$NICE" taskset -c "$LOAD_CPUS" "$PY" bench/openloop.py --port "$port" --bodies "$WORK/bodies.txt" --rate 500 \
    --duration "$FIXED_SECONDS" --run "${tag}a" --out "$WORK/reject-without.json" >/dev/null
  wait_drained "$db" 60
  BENCH_RATE=2000 BENCH_CONNECTIONS=20 nice -n "$NICE" taskset -c "$LOAD_CPUS" \
    wrk -t2 -c20 -d"$((FIXED_SECONDS + 4))s" --timeout 10s -s bench/bad_signature.lua "http://127.0.0.1:$port/webhooks/github" \
    >"$WORK/reject-wrk.txt" &
  local flood=$!
  sleep 2  # the flood under way before the measured loop starts
  nice -n "$NICE" taskset -c "$LOAD_CPUS" "$PY" bench/openloop.py --port "$port" --bodies "$WORK/bodies.txt" --rate 500 \
    --duration "$FIXED_SECONDS" --run "${tag}b" --out "$WORK/reject-with.json" >/dev/null
  wait "$flood" || true
  sleep 2  # the receiver's last flush (once a second)
  "$PY" - "$WORK" "$db" <<'PYEOF' | tee "$WORK/rejections.txt"
import json, re, sqlite3, sys
work, db = sys.argv[1], sys.argv[2]
without = json.load(open(f"{work}/reject-without.json"))
with_ = json.load(open(f"{work}/reject-with.json"))
wrk = open(f"{work}/reject-wrk.txt").read()
m = re.search(r"WRK_RESULT requests=(\d+) duration_us=(\d+) errors_status=(\d+)", wrk)
bad_rate = int(m.group(1)) / (int(m.group(2)) / 1e6) if m else float("nan")
conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
rows, counted = conn.execute("SELECT count(*), coalesce(sum(count), 0) FROM rejections").fetchone()
ratio = with_["ack_p99_ms"] / without["ack_p99_ms"]
print(f"rejections_bad_rate={bad_rate:.0f}/s (401s: {m.group(3) if m else '?'})")
print(f"rejections_good_rate={without['achieved_rate']:.0f}/s without, {with_['achieved_rate']:.0f}/s with")
print(f"rejections_ack_p50_ms={without['ack_p50_ms']:.2f} without, {with_['ack_p50_ms']:.2f} with")
print(f"rejections_ack_p99_ms={without['ack_p99_ms']:.2f} without, {with_['ack_p99_ms']:.2f} with (ratio {ratio:.2f}: target <= 1.20)")
print(f"rejections_good_statuses={without['statuses']} without, {with_['statuses']} with")
print(f"rejections_store_rows={rows} (requests counted in them: {counted})")
PYEOF
}

{
  echo "started=$(date -u +%FT%TZ)"
  echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src 2>/dev/null || echo '+dirty')"
  echo "cpus=$(nproc) server_cpus=$SERVER_CPUS load_cpus=$LOAD_CPUS quick=$QUICK nice=$NICE connections=$SAT_CONNECTIONS"
  echo "loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$WORK/meta.txt"

echo "== preparing signed release payloads"
"$PY" bench/prep.py --out "$WORK/bodies.txt" --secret "$SECRET" --count 2000 --releases 500 --repos 100

if [[ $REJECTIONS_ONLY == 1 ]]; then
  PORT=$(free_port)
  echo "== rejected requests: ghingest serve on 127.0.0.1:$PORT; 500 good req/s without, then with ~2,000 bad-signature req/s"
  start_server "$WORK/rejections.db" "$PORT"
  rejection_flood "$PORT" "$WORK/rejections.db"
  stop_server
  "$PY" bench/rejection_cost.py | tee -a "$WORK/rejections.txt"
  cp "$WORK/rejections.txt" "$RESULTS/rejections.txt"
  exit 0
fi

# --- Issue 2: ingest -------------------------------------------------------------------------------------------
PORT=$(free_port)
DB="$WORK/ingest.db"
echo "== ingest: ghingest serve on 127.0.0.1:$PORT (cpus $SERVER_CPUS), wrk on cpus $LOAD_CPUS"
start_server "$DB" "$PORT"
RUN_TAG="sat$(date +%s)"
BENCH_BODIES="$WORK/bodies.txt" BENCH_RUN="${RUN_TAG}w" nice -n "$NICE" taskset -c "$LOAD_CPUS" \
  wrk -t1 -c"$SAT_CONNECTIONS" -d3s -s bench/post.lua "http://127.0.0.1:$PORT/webhooks/github" >/dev/null  # warm-up
wait_drained "$DB" 60
for i in $(seq 1 "$SAT_RUNS"); do
  BENCH_BODIES="$WORK/bodies.txt" BENCH_RUN="${RUN_TAG}r$i" nice -n "$NICE" taskset -c "$LOAD_CPUS" \
    wrk -t1 -c"$SAT_CONNECTIONS" -d"${SAT_SECONDS}s" --timeout 10s -s bench/post.lua "http://127.0.0.1:$PORT/webhooks/github" \
    | tee "$WORK/wrk-$i.txt" | grep -E "Requests/sec|WRK_RESULT"
  wait_drained "$DB" 90  # the worker catches up before the next run
done
echo "== ingest: a new TCP connection per request (Connection: close), as GitHub's sender does"
BENCH_BODIES="$WORK/bodies.txt" BENCH_RUN="nc$(date +%s)" BENCH_CLOSE=1 nice -n "$NICE" taskset -c "$LOAD_CPUS" \
  wrk -t1 -c"$SAT_CONNECTIONS" -d"${SAT_SECONDS}s" --timeout 10s -s bench/post.lua "http://127.0.0.1:$PORT/webhooks/github" \
  | tee "$WORK/wrk-close.txt" | grep -E "Requests/sec|WRK_RESULT"
wait_drained "$DB" 90
echo "== ingest: open loop at 500 req/s for ${FIXED_SECONDS}s (ack and end-to-end latency)"
nice -n "$NICE" taskset -c "$LOAD_CPUS" "$PY" bench/openloop.py --port "$PORT" --bodies "$WORK/bodies.txt" --rate 500 \
  --duration "$FIXED_SECONDS" --db "$DB" --run "ol$(date +%s)" --out "$WORK/fixed500.json" >/dev/null
cat "$WORK/fixed500.json"
echo "== rejected requests: 500 good req/s without, then with ~2,000 bad-signature req/s (same server)"
rejection_flood "$PORT" "$DB"
"$PY" bench/rejection_cost.py | tee -a "$WORK/rejections.txt"
grep -E "VmHWM|VmRSS" "/proc/$SERVER_PID/status" | tr -s ' \t' ' ' >"$WORK/rss.txt" || true
"$PY" - "$DB" "$RUN_TAG" >"$WORK/stored.txt" <<'PYEOF'
import sqlite3, sys
conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
n = conn.execute("SELECT count(*) FROM deliveries WHERE delivery_id LIKE ?", (sys.argv[2] + "r%",)).fetchone()[0]
print(f"stored_saturation_rows={n}")
PYEOF
stop_server

echo "== processing: record $PROC_COUNT deliveries with the worker off, then time the worker draining them"
for i in $(seq 1 "$PROC_RUNS"); do
  nice -n "$NICE" taskset -c "$SERVER_CPUS" "$PY" bench/processing.py --bodies "$WORK/bodies.txt" --dir "$WORK" \
    --count "$PROC_COUNT" --out "$WORK/processing-$i.json" >/dev/null
  cat "$WORK/processing-$i.json"; echo
done

# --- Issue 4: forwarding (before the read side: the 1 GB seed's write-back would disturb its latency) ---------
if [[ -f bench/forward_bench.py ]]; then
  echo "== forwarding: bench/forward_bench.py"
  timeout 300 "$PY" bench/forward_bench.py 2>&1 | tee "$WORK/forward.txt" || echo "forward_bench failed ($?)" \
    | tee -a "$WORK/forward.txt"
fi

# --- Issue 3: read side on a seeded store ----------------------------------------------------------------------
if [[ ${BENCH_SKIP_READ:-0} != 1 ]]; then
  SEED_DB="$WORK/seeded.db"
  echo "== seeding $SEED_EVENTS events, $SEED_RELEASES releases, 2000 repositories"
  GHINGEST_DATABASE_URL="sqlite:///$SEED_DB" GHINGEST_DATA_DIR="$WORK/data" "$GHINGEST" db upgrade >/dev/null 2>&1
  "$PY" bench/seed.py --db "$SEED_DB" --events "$SEED_EVENTS" --releases "$SEED_RELEASES" --repos 2000 \
    | tee "$WORK/seed.json"
  PORT=$(free_port)
  start_server "$SEED_DB" "$PORT"
  echo "== read side: dashboard pages and read API, one request at a time"
  nice -n "$NICE" taskset -c "$LOAD_CPUS" "$PY" bench/read_bench.py --base "http://127.0.0.1:$PORT" --token "$TOKEN" \
    --db "$SEED_DB" --repeat "$READ_REPEAT" --pages "$READ_PAGES" --out "$WORK/read.json"
  stop_server
fi

# --- Issue 11: reconciliation with GitHub's deliveries API, release tracking (the fake GitHub, loopback) ------------
echo "== GitHub sync: bench/github_bench.py"
timeout 600 "$PY" bench/github_bench.py $([[ $QUICK == 1 ]] && echo "--deliveries 2000 --repositories 200") \
  --out "$WORK/github.txt" 2>/dev/null | grep -E '^(reconcile|track|  \()' || echo "github_bench failed"

echo "loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$WORK/meta.txt"
"$PY" bench/summary.py "$WORK" | tee "$RESULTS/latest.txt"
if [[ -f "$WORK/rejections.txt" ]]; then tee -a "$RESULTS/latest.txt" <"$WORK/rejections.txt"; fi
