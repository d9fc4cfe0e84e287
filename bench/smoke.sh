#!/usr/bin/env bash
# CI smoke run of the benchmark: every scenario against every available system at tiny sizes, one repetition,
# well under 3 minutes once the peers are installed. Not a timed test: it only proves the benchmark still runs.
# Prints "N passed, N failed" (scenario x system runs) and exits non-zero if any run failed. Systems or features
# that are not available here (pg_hatchet not installed, no hatchet-server yet) are reported as skipped.
# The workflow shapes (dag, rr_keys, rate_limit) run at smoke size with the rest (about 5 s together), and so do the
# server scenario's rows (Python SDK drains with one and two worker processes, Celery, the TypeScript SDK's drain and
# latency, the DAG through the SDK) when a hatchet-server build exists.
# Then the idle scenario (bench/idle.py --smoke: 10 idle workers on one hatchet-server, a 10 s window, one start).
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${BENCH_SMOKE_OUT:-$BENCH/work/smoke-results}"
status=0
bash "$BENCH/run.sh" --size smoke --out "$OUT" "$@" || status=$?
py="$BENCH/work/venv/bin/python"   # run.sh's venv (psycopg)
[ -x "$py" ] || py=python3
mkdir -p "$OUT"
# The idle scenario runs the debug builds (this checkout's, built here: a smoke run must not skip for want of one),
# unless $BENCH_HATCHET_SERVER names a server build with an idle-load beside it (then those run, nothing is built).
target="${CARGO_TARGET_DIR:-$BENCH/../target}"
idle_args=()
if [ -n "${BENCH_HATCHET_SERVER:-}" ] && [ -x "$(dirname "$BENCH_HATCHET_SERVER")/idle-load" ]; then
    idle_args=(--server-bin "$BENCH_HATCHET_SERVER")
elif (cd "$BENCH/.." && cargo build --quiet -p hatchet-server -p idle-load); then
    idle_args=(--server-bin "$target/debug/hatchet-server")
else
    echo "idle: cargo build -p hatchet-server -p idle-load failed"
    status=1
fi
if "$py" "$BENCH/idle.py" --smoke "${idle_args[@]}" --json "$OUT/idle.json" --markdown "$OUT/idle.md" > /dev/null; then
    echo "idle: 1 passed, 0 failed (or skipped: see above)"
else
    echo "idle: 0 passed, 1 failed"
    status=1
fi
exit "$status"
