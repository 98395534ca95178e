#!/usr/bin/env bash
# Benchmark of metric analysis on the embedded platform (issue 12).
#
# A real platform process serves the sample service on 127.0.0.1; an
# open-loop load generator sends a fixed rate of requests to the production
# port while bad releases that keep /health green are switched in: (a) 10%
# of requests answer 500, (b) p99 latency x3, (c) one rarely used route
# broken, plus a good release N times. Each is watched by the platform
# analysis (the engine's loop: platform source + Tracker) and rolled back on
# Unhealthy, and by the health-URL-only watch as the baseline; (a) also with
# a 10% canary. Bounded: about 3 minutes with the defaults.
#
# Writes bench/analysis/RESULTS.md (the machine, the date and the tables).
# Scale with BENCH_RATE, BENCH_INTERVAL_MS, BENCH_FAILURE_LIMIT,
# BENCH_REPEATS, BENCH_GOOD_RUNS, BENCH_GOOD_WATCH_S, BENCH_HEALTH_WATCH_S,
# BENCH_WORKERS (see crates/hotfix-providers/examples/analysis_bench.rs).
# PROFILE=release builds optimised binaries (default: the dev profile the
# workspace's tests already built, so the run starts in seconds).
set -euo pipefail
cd "$(dirname "$0")/../.."
profile="${PROFILE:-dev}"
dir=debug
flags=()
if [ "$profile" = release ]; then dir=release; flags=(--release); fi
cargo build -q "${flags[@]}" -p hotfix-platform --bins
cargo build -q "${flags[@]}" -p hotfix-providers --example analysis_bench
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
t0=$(date +%s)
BENCH_BIN_DIR="$PWD/target/$dir" "target/$dir/examples/analysis_bench" | tee "$out"
t1=$(date +%s)
{
  echo "# Metric analysis benchmark: results"
  echo
  echo "Measured with \`bench/analysis/run.sh\` (program:"
  echo "\`crates/hotfix-providers/examples/analysis_bench.rs\`, profile \`$profile\`)."
  echo
  echo "- machine: $(nproc) cores, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || echo 'cpu unknown')"
  echo "- date: $started, total runtime $((t1 - t0)) s, everything on 127.0.0.1"
  echo
  cat "$out"
} > bench/analysis/RESULTS.md
echo "wrote bench/analysis/RESULTS.md"
