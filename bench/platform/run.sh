#!/usr/bin/env bash
# Benchmark of the embedded hosting platform (crates/hotfix-platform).
#
# Hammers the stable production URL with concurrent requests during a deploy
# and during a rollback (127.0.0.1 only, bounded in time), and prints requests
# sent/failed, rollback → previous-release-serving time, and the platform's
# overhead per deploy against the service's own start-up measured in the same
# run. Nothing to install: the load generator is the crate's own example.
#
# Usage: bench/platform/run.sh [--deploys N] [--clients N] [--startup-delay-ms N]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p hotfix-platform --bins --example platform_bench
exec cargo run --release -q -p hotfix-platform --example platform_bench -- "$@"
