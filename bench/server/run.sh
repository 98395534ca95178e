#!/usr/bin/env bash
# Load benchmark of the team server (`hotfix serve`), 127.0.0.1 only.
#
# For each store (SQLite file; PostgreSQL when a URL is given, twice: with a
# single connection, `--db-pool 1`, then with the pool, `--db-pool N`, each
# on a fresh database) it starts the release binary, then measures with wrk:
#   1. the baseline: GET /healthz (routing + one store read), same run;
#   2. Alertmanager webhook ingestion: POST /api/v1/alerts/alertmanager, each
#      request a new group (durably stored before the 202), p50/p99 and the
#      ratio to the baseline; then how fast the workers drain the inbox;
#   3. the dashboard with N incidents (default 10,000, seeded through the API):
#      GET / and GET /api/v1/incidents, p50/p99 and ratios to the baseline.
# Results are printed and written to bench/server/last-run.md.
#
# Usage: bench/server/run.sh [--duration 10s] [--connections 16] [--incidents 10000]
#                            [--pg postgres://postgres@127.0.0.1:5432/test | --no-pg]
#                            [--pool 8]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DURATION=10s
CONNS=16
INCIDENTS=10000
PG_URL=${HOTFIX_TEST_DATABASE_URL:-}
POOL=8
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --incidents) INCIDENTS=$2; shift 2 ;;
    --pg) PG_URL=$2; shift 2 ;;
    --no-pg) PG_URL=; shift ;;
    --pool) POOL=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 2; }

cargo build --release -q -p hotfix
BIN=$ROOT/target/release/hotfix
WORK=$(mktemp -d)
SERVER_PID=
PG_DBS=()
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  for db in "${PG_DBS[@]}"; do
    psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/hotfix.toml" <<'TOML'
[team]
tech_leads = ["lead@example.com"]
reviewers = ["rev@example.com"]
on_call = ["dev@example.com"]

[notify]
console = false
file = false

[[alerts.rules]]
match = { alertname = "HighErrorRate" }
severity = "critical"
TOML

RESULTS=$WORK/results.txt
: > "$RESULTS"

# wrk_run NAME URL [script]: appends "NAME p50 p99 rps" (ms) to the results.
wrk_run() {
  local name=$1 url=$2 script=${3:-}
  local out
  if [ -n "$script" ]; then
    out=$(HOTFIX_BENCH_TOKEN=$TOKEN wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s "$script" "$url")
  else
    out=$(HOTFIX_BENCH_TOKEN=$TOKEN wrk -t2 -c"$CONNS" -d"$DURATION" --latency "$url")
  fi
  echo "$out" > "$WORK/$name.wrk"
  python3 "$ROOT/bench/server/wrkparse.py" "$name" < "$WORK/$name.wrk" >> "$RESULTS"
}

metric() {
  curl -s "$BASE/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}

# run_backend NAME URL [serve options...]
run_backend() {
  local backend=$1 url=$2
  shift 2
  local data=$WORK/data-$backend
  mkdir -p "$data"
  TOKEN=$("$BIN" serve token create --user bench@example.com --role admin --database-url "$url" 2>/dev/null)
  # One info line per request would put the log's cost in every number:
  # keep only the start-up lines (the address is read from them) and warnings.
  HOTFIX_LOG="${HOTFIX_LOG:-warn,hotfix::serve=info}" \
    "$BIN" serve --listen 127.0.0.1:0 --database-url "$url" "$@" \
    --data-dir "$data" --config "$WORK/hotfix.toml" 2> "$data/server.log" &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    BASE=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$data/server.log" | head -1 || true)
    [ -n "$BASE" ] && break
    sleep 0.1
  done
  [ -n "$BASE" ] || { cat "$data/server.log" >&2; exit 1; }
  echo "== $backend: $BASE" >&2
  wrk_run "$backend.healthz" "$BASE/healthz"
  wrk_run "$backend.alerts" "$BASE/api/v1/alerts/alertmanager" "$ROOT/bench/server/alert.lua"
  # How fast the workers turn stored alerts into decisions.
  local t0 processed
  t0=$(date +%s.%N)
  local last=-1 same=0
  while :; do
    processed=$(metric hotfix_inbox_processed_total); processed=${processed:-0}
    if [ "$processed" = "$last" ]; then same=$((same+1)); else same=0; fi
    [ $same -ge 10 ] && break
    last=$processed
    sleep 0.2
  done
  local t1
  t1=$(date +%s.%N)
  echo "$backend.inbox processed=$processed seconds_after_load=$(python3 -c "print(round($t1-$t0-2.0,2))")" >> "$RESULTS"
  echo "seeding $INCIDENTS incidents..." >&2
  local s0 s1
  s0=$(date +%s.%N)
  python3 "$ROOT/bench/server/seed.py" "$BASE" "$TOKEN" "$INCIDENTS"
  s1=$(date +%s.%N)
  echo "$backend.seed incidents=$INCIDENTS seconds=$(python3 -c "print(round($s1-$s0,1))")" >> "$RESULTS"
  # First request warms the server's folded-incident cache.
  curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" "$BASE/"
  wrk_run "$backend.dashboard" "$BASE/" "$ROOT/bench/server/auth.lua"
  wrk_run "$backend.api_list" "$BASE/api/v1/incidents" "$ROOT/bench/server/auth.lua"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

run_backend sqlite "sqlite:$WORK/bench.db"
if [ -n "$PG_URL" ]; then
  # The database name is the URL's last path segment; its parameters
  # (sslmode, sslrootcert) are kept for the bench databases.
  pg_base=${PG_URL%%\?*}
  pg_query=
  [ "$pg_base" != "$PG_URL" ] && pg_query="?${PG_URL#*\?}"
  for mode in single pool; do
    db=hf_bench_${mode}_$$
    psql "$PG_URL" -qc "CREATE DATABASE $db" >/dev/null
    PG_DBS+=("$db")
    if [ "$mode" = single ]; then
      run_backend postgres-single "${pg_base%/*}/$db$pg_query" --db-pool 1
    else
      run_backend "postgres-pool$POOL" "${pg_base%/*}/$db$pg_query" --db-pool "$POOL"
    fi
  done
else
  echo "no PostgreSQL URL (--pg or HOTFIX_TEST_DATABASE_URL): PostgreSQL run skipped" >&2
fi
python3 "$ROOT/bench/server/report.py" "$RESULTS" "$DURATION" "$CONNS" "$INCIDENTS" | tee "$ROOT/bench/server/last-run.md"
