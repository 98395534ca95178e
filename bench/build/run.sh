#!/bin/sh
# Build once (issue 13): the same one-line hotfix of a real Rust service on the
# embedded platform, timed push -> preview serving and ship -> production
# healthy, for cold worktree builds (baseline), incremental builds (cache) and
# promotion, against the service's own incremental `cargo build` (the floor).
# Offline (cargo --offline, crates from ~/.cargo/registry pinned by this
# workspace's Cargo.lock), 127.0.0.1 only, a few minutes. Not part of `cargo test`.
#
#   bench/build/run.sh            # writes bench/build/RESULTS.md
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
# Each release must build in its own target directory.
unset CARGO_TARGET_DIR
cargo build --release --offline -p hotfix-platform --example build_bench
bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/build_bench"
out="$here/RESULTS.md"
tmp="$out.tmp"
{
  echo "# bench/build: build once (issue 13)"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(uname -sr)"
  echo "- toolchain: $(rustc --version)"
  echo
  "$bin" --lock "$root/Cargo.lock"
} > "$tmp"
mv "$tmp" "$out"
cat "$out"
