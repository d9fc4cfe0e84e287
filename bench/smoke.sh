#!/usr/bin/env bash
# CI smoke run of the benchmark: every scenario against every available system at tiny sizes, one repetition,
# well under 3 minutes once the peers are installed. Not a timed test: it only proves the benchmark still runs.
# Prints "N passed, N failed" (scenario x system runs) and exits non-zero if any run failed. Systems or features
# that are not available here (pg_hatchet not installed, no hatchet-server yet) are reported as skipped.
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$BENCH/run.sh" --size smoke --out "${BENCH_SMOKE_OUT:-$BENCH/work/smoke-results}" "$@"
