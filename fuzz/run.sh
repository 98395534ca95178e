#!/usr/bin/env bash
# Runs hotfix's fuzz targets, one after the other, each for a bounded time.
#
#   fuzz/run.sh [SECONDS-PER-TARGET] [TARGET...]
#
# Default: 60 s for every target in fuzz/fuzz_targets/. Needs a nightly
# toolchain and cargo-fuzz (`rustup toolchain install nightly`,
# `cargo install cargo-fuzz`). Not part of the test suite or .ci/run.
#
# Each target starts from its committed seeds (fuzz/seeds/<target>/) and the
# corpus earlier runs grew (fuzz/corpus/<target>/, not committed), with its
# dictionary when there is one (fuzz/dicts/<target>.dict). An input that
# crashes (a panic, a failed check, a sanitizer report), hangs longer than
# HOTFIX_FUZZ_TIMEOUT seconds (default 5) or needs more than
# HOTFIX_FUZZ_RSS_MB of memory (default 2048) is written to
# fuzz/artifacts/<target>/; replay one with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
# The whole log of each target is in fuzz/logs/<target>.log.
#
# Prints one line per target (runs, coverage, features, corpus size, result)
# and exits 1 if any target found something.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

secs="${1:-60}"
shift || true
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -eq 0 ]; then
    echo "usage: fuzz/run.sh [SECONDS-PER-TARGET] [TARGET...]" >&2
    exit 2
fi
timeout_s="${HOTFIX_FUZZ_TIMEOUT:-5}"
rss_mb="${HOTFIX_FUZZ_RSS_MB:-2048}"
toolchain="${HOTFIX_FUZZ_TOOLCHAIN:-nightly}"

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in fuzz_targets/*.rs; do
        targets+=("$(basename "$f" .rs)")
    done
fi
for t in "${targets[@]}"; do
    if [ ! -f "fuzz_targets/$t.rs" ]; then
        echo "no such fuzz target: $t (see fuzz/fuzz_targets/)" >&2
        exit 2
    fi
done

if ! cargo "+$toolchain" fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz on a $toolchain toolchain is needed:" >&2
    echo "  rustup toolchain install $toolchain && cargo install cargo-fuzz" >&2
    exit 2
fi

# Release code with debug assertions and overflow checks, under
# AddressSanitizer (cargo-fuzz's defaults: do not pass -O, which turns the
# debug assertions off).
echo "building ${#targets[@]} fuzz target(s)..." >&2
if [ "$#" -eq 0 ]; then
    cargo "+$toolchain" fuzz build >&2
else
    for t in "${targets[@]}"; do
        cargo "+$toolchain" fuzz build "$t" >&2
    done
fi
triple="$(rustc "+$toolchain" -vV | sed -n 's/^host: //p')"
bin_dir="$here/target/$triple/release"

mkdir -p logs
found=0
printf '%-20s %6s %10s %7s %8s %6s  %s\n' target secs runs cov features corpus result
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    dict=()
    if [ -f "dicts/$t.dict" ]; then
        dict=("-dict=dicts/$t.dict")
    fi
    before="$(find "artifacts/$t" -type f | wc -l)"
    log="logs/$t.log"
    set +e
    # New inputs go to the first directory (corpus/); the seeds stay as
    # committed. One process (no -jobs/-fork): other builds share the cores.
    "$bin_dir/$t" "corpus/$t" "seeds/$t" "${dict[@]}" \
        -max_total_time="$secs" -timeout="$timeout_s" -rss_limit_mb="$rss_mb" \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    after="$(find "artifacts/$t" -type f | wc -l)"
    # The last status line: `#RUNS <kind> cov: N ft: N corp: N/...`.
    last="$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)"
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    [ -n "$runs" ] || runs="$(sed -E -n 's/^#([0-9]+).*/\1/p' <<<"$last")"
    cov="$(sed -E -n 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")"
    ft="$(sed -E -n 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")"
    corp="$(sed -E -n 's/.* corp: ([0-9]+).*/\1/p' <<<"$last")"
    took="$(sed -E -n 's/^Done [0-9]+ runs in ([0-9]+) second.*/\1/p' "$log" | tail -n 1)"
    if [ "$rc" -eq 0 ] && [ "$after" -eq "$before" ]; then
        result="nothing found"
    else
        found=1
        what="$(grep -E -o 'libFuzzer: (deadly signal|timeout|out-of-memory[^)]*\)?|fuzz target exited|malloc limit)|ERROR: AddressSanitizer: [a-z-]+' "$log" | head -n 1 || true)"
        art="$(grep -E -o "artifacts/$t/[a-z]+-[0-9a-f]+" "$log" | tail -n 1 || true)"
        result="FOUND ${what:-exit $rc}${art:+: fuzz/$art} (see fuzz/$log)"
    fi
    printf '%-20s %6s %10s %7s %8s %6s  %s\n' "$t" "${took:-$secs}" "${runs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
done
exit "$found"
