#!/usr/bin/env bash
# Benchmark: `hotfix` against Debian's git-flow and the bare-plumbing floor.
#
# On one generated repository (default 20,000 files, 5,000 commits on main,
# develop 5 commits ahead, a bare `origin.git` beside the work clone) it times
# the git work of an emergency hotfix for three contenders:
#
#   phase   git-flow                          floor (bare plumbing)                    hotfix
#   start   git flow hotfix start NAME        git fetch origin                         hotfix start NAME --severity critical
#                                             git branch hotfix/NAME origin/main
#   finish  git flow hotfix finish -p -m M    2x (merge-tree --write-tree +            hotfix ship + hotfix backport
#           NAME                              commit-tree -p X -p hotfix/NAME),
#                                             1x git push --atomic origin main develop
#
# When the binary has `hotfix ship --backport` (main and develop in one atomic
# push), that is measured too, as a fourth contender ("hotfix ship --backport").
#
# Untimed between the phases: the same fix commit (app/fix.txt); for hotfix
# also `hotfix push` and the tech lead's `hotfix approve HF-1`. Every run
# starts from a fresh copy of the cached template (work clone + bare origin;
# `cp -a` of both .git directories, hard links for the work tree's files),
# contenders interleaved; the result of each run is verified on the
# remote (fix in main and develop, develop's own commits kept, main not
# fast-forwarded to develop). Before the measured runs one traced round
# (GIT_TRACE2_EVENT, also a warm-up) lists every git process each contender
# spawns and how long it took.
#
# Usage: bench/gitflow/run.sh
#   BENCH_FILES=20000 BENCH_COMMITS=5000 BENCH_RUNS=5   size and measured runs
#   BENCH_DEVELOP_COMMITS=5   how far develop is ahead of main
#   BENCH_PORT=18473          127.0.0.1 port of the health endpoint hotfix ship probes
#   (default)                 benchmark the work tree's hotfix: cargo build --release -p hotfix
#   BENCH_HOTFIX_REV=rev      benchmark a committed revision instead (e.g. HEAD, to compare
#                             before/after a change while the work tree does not build)
#   HOTFIX_BIN=path           benchmark this prebuilt hotfix binary
#   BENCH_OUT=dir             cache and results (default bench/out)
#   BENCH_IDLE_WAIT=120       before each round, wait up to this many seconds for the
#                             CPUs to be idle (other builds on a 2-core machine make the
#                             numbers meaningless); rounds that started busy are counted
# Smoke mode: BENCH_FILES=500 BENCH_COMMITS=200 BENCH_RUNS=1 bench/gitflow/run.sh
#
# Needs git >= 2.40, python3, git-flow (installed with apt-get when run as
# root on Debian/Ubuntu). No network: the remote is a local bare repository
# and the health endpoint listens on 127.0.0.1.
# Output: the table on stdout and in $BENCH_OUT/gitflow-results.txt, the git
# call breakdown in $BENCH_OUT/gitflow-trace.txt, raw runs in gitflow-runs.tsv.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
FILES=${BENCH_FILES:-20000}
COMMITS=${BENCH_COMMITS:-5000}
RUNS=${BENCH_RUNS:-5}
DEV=${BENCH_DEVELOP_COMMITS:-5}
PORT=${BENCH_PORT:-18473}
OUT=${BENCH_OUT:-$ROOT/bench/out}
IDLE_WAIT=${BENCH_IDLE_WAIT:-120}
NAME=bench-fix

die() { echo "bench/gitflow: $*" >&2; exit 1; }
say() { echo "bench/gitflow: $*" >&2; }

for v in FILES COMMITS RUNS DEV PORT IDLE_WAIT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_$v must be a number, got '${!v}'"
done
((FILES >= 1 && COMMITS >= 1 && RUNS >= 1 && DEV >= 1)) \
    || die "BENCH_FILES, BENCH_COMMITS, BENCH_RUNS and BENCH_DEVELOP_COMMITS must be >= 1"
[[ -n ${EPOCHREALTIME:-} ]] || die "needs bash >= 5 (for \$EPOCHREALTIME)"

# ---------------------------------------------------------------- prerequisites
command -v python3 >/dev/null || die "python3 is needed (generator, health endpoint, report)"
command -v git >/dev/null || die "git is needed"
gv=$(git version | sed -E 's/^git version ([0-9]+)\.([0-9]+).*/\1 \2/')
read -r gmaj gmin <<<"$gv"
((gmaj > 2 || (gmaj == 2 && gmin >= 40))) || die "git >= 2.40 is needed (merge-tree --write-tree), found $(git version)"
if ! git flow version >/dev/null 2>&1; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        say "installing git-flow with apt-get"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq git-flow; } >/dev/null \
            || die "apt-get install git-flow failed"
    else
        die "git-flow is not installed: run 'sudo apt-get install git-flow' (Debian/Ubuntu) and try again"
    fi
fi

if [[ -n ${HOTFIX_BIN:-} ]]; then
    [[ -x $HOTFIX_BIN ]] || die "HOTFIX_BIN=$HOTFIX_BIN is not an executable"
    HOTFIX_BIN=$(cd "$(dirname "$HOTFIX_BIN")" && pwd)/$(basename "$HOTFIX_BIN")
elif [[ -n ${BENCH_HOTFIX_REV:-} ]]; then
    # A committed revision, built apart from the work tree (which others may
    # be editing): git archive into bench/out, its own cached target dir.
    sha=$(git -C "$ROOT" rev-parse --verify -q "$BENCH_HOTFIX_REV^{commit}") \
        || die "BENCH_HOTFIX_REV=$BENCH_HOTFIX_REV is not a commit of this repository"
    mkdir -p "$OUT"
    bdir=$(cd "$OUT" && pwd)/gitflow-build
    say "building hotfix at ${sha:0:10} in ${bdir#"$ROOT"/}/src (cargo build --release -p hotfix)"
    rm -rf "$bdir/src"
    mkdir -p "$bdir/src"
    git -C "$ROOT" archive "$sha" | tar -x -C "$bdir/src"
    (cd "$bdir/src" && CARGO_TARGET_DIR=$bdir/target cargo build --release -q -p hotfix) \
        || die "cargo build of $BENCH_HOTFIX_REV failed"
    HOTFIX_BIN=$bdir/target/release/hotfix
    HOTFIX_REV="built from ${sha:0:7}"
else
    say "building hotfix (cargo build --release -p hotfix; may wait for the build lock)"
    (cd "$ROOT" && cargo build --release -q -p hotfix) \
        || die "cargo build --release -p hotfix failed; fix the build or set HOTFIX_BIN to a prebuilt binary"
    tdir=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    HOTFIX_BIN=$tdir/release/hotfix
    rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    [[ -z $(git -C "$ROOT" status --porcelain --untracked-files=no -- crates Cargo.toml Cargo.lock 2>/dev/null) ]] \
        || rev+="+local changes"
    HOTFIX_REV="built from $rev"
fi
hotfix_version="$("$HOTFIX_BIN" --version 2>/dev/null || echo "hotfix (version unknown)") (${HOTFIX_REV:-prebuilt HOTFIX_BIN})"

# ---------------------------------------------------------------- hermetic env
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/hotfix-gitflow.XXXXXX")
RUNROOT=$OUT/gitflow-runs
HTTP_PID=
KEEP_RUN=
cleanup() {
    if [[ -n $HTTP_PID ]]; then
        kill "$HTTP_PID" 2>/dev/null || true
        wait "$HTTP_PID" 2>/dev/null || true
    fi
    rm -rf "$SCRATCH"
    if [[ -z $KEEP_RUN ]]; then rm -rf "$RUNROOT"; fi
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$SCRATCH/gitconfig" <<'EOF'
[user]
	name = Dev
	email = dev@example.com
[init]
	defaultBranch = main
[advice]
	detachedHead = false
[pull]
	rebase = false
EOF
# Nothing from this machine's git config; no editor, no pager, no prompt.
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY GIT_TRACE GIT_TRACE2 \
    GIT_TRACE2_EVENT GIT_TRACE2_PERF GIT_ALTERNATE_OBJECT_DIRECTORIES \
    HOTFIX_CONFIG HOTFIX_DATABASE_URL HOTFIX_NOW HOTFIX_FAILPOINTS HOTFIX_USER
export GIT_CONFIG_GLOBAL=$SCRATCH/gitconfig GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=Dev GIT_AUTHOR_EMAIL=dev@example.com
export GIT_COMMITTER_NAME=Dev GIT_COMMITTER_EMAIL=dev@example.com
export GIT_MERGE_AUTOEDIT=no GIT_EDITOR=true GIT_SEQUENCE_EDITOR=true GIT_PAGER=cat PAGER=cat
export GIT_TERMINAL_PROMPT=0

# ---------------------------------------------------------------- template (cached)
gen_sum=$(git hash-object --stdin <"$HERE/gen.py" | cut -c1-8)
KEY="f$FILES-c$COMMITS-d$DEV-p$PORT-g$gen_sum"
TPL=$OUT/gitflow-tpl-$KEY
if [[ ! -f $TPL/.complete ]]; then
    say "generating the template repository ($FILES files, $COMMITS commits) into ${TPL#"$ROOT"/}"
    t=$EPOCHREALTIME
    tmp=$TPL.tmp.$$
    rm -rf "$tmp"
    mkdir -p "$tmp"
    git init -q --bare "$tmp/origin.git"
    python3 "$HERE/gen.py" "$FILES" "$COMMITS" "$DEV" "$PORT" | git -C "$tmp/origin.git" fast-import --quiet
    git -C "$tmp/origin.git" symbolic-ref HEAD refs/heads/main
    git -C "$tmp/origin.git" repack -adq # fast-import's pack is not delta-compressed well
    git clone -q --no-hardlinks "$tmp/origin.git" "$tmp/work"
    (
        cd "$tmp/work"
        git branch -q --track develop origin/develop
        git config gitflow.branch.master main
        git config gitflow.branch.develop develop
        git config gitflow.prefix.feature feature/
        git config gitflow.prefix.bugfix bugfix/
        git config gitflow.prefix.release release/
        git config gitflow.prefix.hotfix hotfix/
        git config gitflow.prefix.support support/
        git config gitflow.prefix.versiontag ""
        git flow init -f -d >/dev/null 2>&1
        git config --unset gitflow.path.hooks || true # an absolute path; default is .git/hooks
        [[ $(git config gitflow.branch.master) == main && $(git config gitflow.branch.develop) == develop ]] \
            || die "git flow init did not keep main/develop"
    )
    touch "$tmp/.complete"
    rm -rf "$TPL"
    mv "$tmp" "$TPL"
    say "template ready in $(awk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}') s"
fi
n_files=$(git -C "$TPL/origin.git" ls-tree -r --name-only main | wc -l)
n_commits=$(git -C "$TPL/origin.git" rev-list --count main)
n_ahead=$(git -C "$TPL/origin.git" rev-list --count main..develop)

# ---------------------------------------------------------------- health endpoint
mkdir -p "$SCRATCH/www"
echo ok >"$SCRATCH/www/health"
probe() {
    python3 - "$1" <<'EOF'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=1) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
EOF
}
python3 - "$PORT" <<'EOF' || die "port $PORT on 127.0.0.1 is in use: set BENCH_PORT to a free port"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.close()
EOF
python3 -m http.server --bind 127.0.0.1 --directory "$SCRATCH/www" "$PORT" >"$SCRATCH/http.log" 2>&1 &
HTTP_PID=$!
for _ in $(seq 50); do probe "http://127.0.0.1:$PORT/health" && break; sleep 0.1; done
probe "http://127.0.0.1:$PORT/health" || die "the health endpoint on 127.0.0.1:$PORT did not come up"

# ---------------------------------------------------------------- one run
# R: the run directory; LOG: where every command's output goes.
R=
LOG=
TRACE=           # when set: a prefix; each timed command writes $TRACE-<label>.json
declare -A WALL  # label -> wall seconds of that traced command

fail() {
    KEEP_RUN=1
    echo "bench/gitflow: FAILED: $*" >&2
    [[ -n $LOG && -f $LOG ]] && { echo "---- last lines of $LOG:" >&2; tail -n 40 "$LOG" >&2; }
    echo "bench/gitflow: the run is kept in $R" >&2
    exit 1
}
# Runs a command with its output in $LOG; on failure prints that output and aborts.
x() { "$@" >>"$LOG" 2>&1 || fail "$*"; }
# x, traced to $TRACE-LABEL.json when tracing.
tx() {
    local label=$1
    shift
    if [[ -n $TRACE ]]; then
        local t=$EPOCHREALTIME
        GIT_TRACE2_EVENT=$TRACE-$label.json x "$@"
        WALL[$label]=$(awk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.6f", b-a}')
    else
        x "$@"
    fi
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.6f", b-a}'; }

fresh() {
    R=$RUNROOT/$1
    LOG=$R.log
    rm -rf "$R" "$LOG"
    mkdir -p "$R/work"
    # Both repositories (.git and origin.git: a few hundred files) are real
    # copies. The 20,000 files of the work tree are hard links to the
    # template's: git never writes into a tracked file, it unlinks it and
    # creates a new one (and fix_commit does the same), so the template stays
    # pristine (checked at the end). A full `cp -a` costs 13-19 s of kernel
    # time per run on a VM where creating files is slow; this costs 0.4 s.
    cp -a "$TPL/origin.git" "$R/"
    cp -a "$TPL/work/.git" "$R/work/"
    find "$TPL/work" -mindepth 1 -maxdepth 1 ! -name .git -exec cp -al -t "$R/work/" {} +
    cd "$R/work"
    x git remote set-url origin "$R/origin.git"
    # cp -a changes inodes and ctimes: refresh the index now so that no
    # contender pays for re-checking 20,000 files in its first command.
    x git update-index -q --refresh
    # Write back the copy (and the previous run's removal) before the clock
    # starts, so that no contender pays for another's writeback.
    sync
}

fix_commit() {
    rm -f app/fix.txt # a hard link to the template's file: replace it, never write into it
    echo "status = fixed" >app/fix.txt
    x git commit -q -am "Fix the broken status"
    FIX_SHA=$(git rev-parse HEAD)
}

verify() {
    local o=$R/origin.git b
    for b in main develop; do
        git -C "$o" merge-base --is-ancestor "$FIX_SHA" "refs/heads/$b" || fail "$1: the fix is not in $b on the remote"
        [[ $(git -C "$o" show "refs/heads/$b:app/fix.txt") == "status = fixed" ]] || fail "$1: app/fix.txt not fixed on $b"
        git -C "$o" rev-parse -q --verify "refs/heads/$b^2" >/dev/null \
            || fail "$1: the tip of $b on the remote is not a merge commit"
    done
    git -C "$o" cat-file -e "refs/heads/develop:develop/feature-0.txt" 2>/dev/null || fail "$1: develop lost its own commits"
    ! git -C "$o" cat-file -e "refs/heads/main:develop" 2>/dev/null || fail "$1: develop's commits leaked into main"
}

run_gitflow() {
    fresh "gitflow-$1"
    T0=$EPOCHREALTIME
    tx gitflow-start git flow hotfix start "$NAME"
    T1=$EPOCHREALTIME
    fix_commit
    T2=$EPOCHREALTIME
    tx gitflow-finish git flow hotfix finish -p -m "Hotfix $NAME" "$NAME"
    T3=$EPOCHREALTIME
    SHIP=- BACKPORT=-
    verify git-flow
}

run_floor() {
    fresh "floor-$1"
    local m cm d cdv
    T0=$EPOCHREALTIME
    tx floor-start git fetch -q origin
    tx floor-start git branch -q "hotfix/$NAME" origin/main
    T1=$EPOCHREALTIME
    x git checkout -q "hotfix/$NAME"
    fix_commit
    T2=$EPOCHREALTIME
    if [[ -n $TRACE ]]; then export GIT_TRACE2_EVENT=$TRACE-floor-finish.json; fi
    m=$(git merge-tree --write-tree origin/main "hotfix/$NAME") || fail "merge-tree main"
    cm=$(git commit-tree "$m" -p origin/main -p "hotfix/$NAME" -m "Merge branch 'hotfix/$NAME'") || fail "commit-tree main"
    d=$(git merge-tree --write-tree origin/develop "hotfix/$NAME") || fail "merge-tree develop"
    cdv=$(git commit-tree "$d" -p origin/develop -p "hotfix/$NAME" -m "Merge branch 'hotfix/$NAME' into develop") || fail "commit-tree develop"
    x git push -q --atomic origin "$cm:refs/heads/main" "$cdv:refs/heads/develop"
    T3=$EPOCHREALTIME
    unset GIT_TRACE2_EVENT
    SHIP=- BACKPORT=-
    verify floor
}

# $2: "" = `hotfix ship` + `hotfix backport` (two pushes, the contender the
# issue names); "1push" = `hotfix ship --backport` (main and develop in one
# atomic push; measured as well when the binary has that option).
run_hotfix() {
    local c=hotfix${2:-} t
    fresh "$c-$1"
    T0=$EPOCHREALTIME
    HOTFIX_USER=dev@example.com tx "$c-start" "$HOTFIX_BIN" start "$NAME" --severity critical
    T1=$EPOCHREALTIME
    fix_commit
    HOTFIX_USER=dev@example.com x "$HOTFIX_BIN" push
    HOTFIX_USER=lead@example.com x "$HOTFIX_BIN" approve HF-1
    T2=$EPOCHREALTIME
    if [[ -n ${2:-} ]]; then
        HOTFIX_USER=dev@example.com tx "$c-ship" "$HOTFIX_BIN" ship --backport
        T3=$EPOCHREALTIME
        SHIP=$(secs "$T2" "$T3") BACKPORT=0
    else
        HOTFIX_USER=dev@example.com tx "$c-ship" "$HOTFIX_BIN" ship
        t=$EPOCHREALTIME
        HOTFIX_USER=dev@example.com tx "$c-backport" "$HOTFIX_BIN" backport
        T3=$EPOCHREALTIME
        SHIP=$(secs "$T2" "$t") BACKPORT=$(secs "$t" "$T3")
    fi
    verify "$c"
    local state
    state=$(HOTFIX_USER=dev@example.com "$HOTFIX_BIN" status HF-1 --json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])') || fail "hotfix status"
    [[ $state == backported ]] || fail "hotfix: incident state is '$state', not backported"
}

run_hotfix1push() { run_hotfix "$1" 1push; }
CONTENDERS=(gitflow floor hotfix)
LABELS=(gitflow-start gitflow-finish floor-start floor-finish hotfix-start hotfix-ship hotfix-backport)
if "$HOTFIX_BIN" ship --help 2>/dev/null | grep -q -- --backport; then
    CONTENDERS+=(hotfix1push)
    LABELS+=(hotfix1push-start hotfix1push-ship)
fi

# CPU busy percentage of the whole machine over half a second.
busy_pct() {
    local u n s i w q sq st b1 t1
    read -r _ u n s i w q sq st _ </proc/stat
    b1=$((u + n + s + q + sq + st)) t1=$((u + n + s + i + w + q + sq + st))
    sleep 0.5
    read -r _ u n s i w q sq st _ </proc/stat
    echo $(((u + n + s + q + sq + st - b1) * 100 / (u + n + s + i + w + q + sq + st - t1 + 1)))
}
BUSY_ROUNDS=0
wait_idle() {
    [[ -r /proc/stat ]] || return 0
    local start=$SECONDS p told=
    while p=$(busy_pct); ((p > 15)); do
        if ((SECONDS - start >= IDLE_WAIT)); then
            say "the CPUs are still ${p}% busy with other work after ${IDLE_WAIT} s; measuring anyway"
            BUSY_ROUNDS=$((BUSY_ROUNDS + 1))
            return 0
        fi
        [[ -n $told ]] || say "waiting for other work to leave the CPUs (${p}% busy)"
        told=1
    done
}

# ---------------------------------------------------------------- traced warm-up round
say "repository: $n_files files, $n_commits commits on main, develop $n_ahead ahead; $hotfix_version"
say "traced warm-up round (GIT_TRACE2_EVENT)"
rm -f "$OUT"/gitflow-trace-*.json
TRACE_ARGS=()
wait_idle
for c in "${CONTENDERS[@]}"; do
    TRACE=$OUT/gitflow-trace
    "run_$c" trace
    TRACE=
    cd "$OUT"
    rm -rf "$R" "$LOG"
done
for label in "${LABELS[@]}"; do
    f=$OUT/gitflow-trace-$label.json
    [[ -f $f ]] || die "no trace written for $label"
    w=
    # The tool's own wall time, to show the time spent outside git (not for
    # the floor: it is git alone).
    [[ $label == floor-* ]] || w=${WALL[$label]:-}
    TRACE_ARGS+=("$label=$f${w:+:$w}")
done
python3 "$HERE/trace2.py" "${TRACE_ARGS[@]}" >"$OUT/gitflow-trace.txt"

# ---------------------------------------------------------------- measured rounds
TSV=$OUT/gitflow-runs.tsv
: >"$TSV"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
for i in $(seq "$RUNS"); do
    wait_idle
    line="run $i/$RUNS:"
    for c in "${CONTENDERS[@]}"; do
        "run_$c" "$i"
        s=$(secs "$T0" "$T1")
        f=$(secs "$T2" "$T3")
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$i" "$s" "$f" "$SHIP" "$BACKPORT" >>"$TSV"
        line+=$(printf ' %s %.3f+%.3f' "$c" "$s" "$f")
        cd "$OUT"
        rm -rf "$R" "$LOG"
    done
    say "$line"
done

# The hard-linked work trees must have left the template as it was.
git -C "$TPL/work" update-index -q --refresh >/dev/null || true
[[ -z $(git -C "$TPL/work" status --porcelain --untracked-files=all) ]] \
    || die "the template work tree was modified through a hard link: delete $TPL and report this"

{
    python3 "$HERE/report.py" "$TSV" "$FILES" "$COMMITS" "$DEV"
    echo "machine: $(nproc) cores; $(uname -sr); load average before/after the measured rounds:" \
        "$LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?");" \
        "rounds started while other work kept the CPUs busy: $BUSY_ROUNDS of $RUNS"
    echo "versions: $(git version), git-flow $(git flow version 2>/dev/null | head -n1), $hotfix_version"
} | tee "$OUT/gitflow-results.txt"
echo
echo "git processes per command (traced warm-up round; full list in ${OUT#"$ROOT"/}/gitflow-trace.txt):"
grep -E "^== |^  in git" "$OUT/gitflow-trace.txt"
