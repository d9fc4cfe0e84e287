#!/usr/bin/env bash
# The chaos suite (issue 16): bash tests/chaos/run.sh [--minutes N] [--seed S] [--fault-every SECONDS] [--short] [--keep]
# --short: the run inside `make test` (under 6 minutes, fixed seed, every fault kind once). Without it: --minutes of
# load with a fault every --fault-every seconds (default 12). Needs the extension installed in the system Postgres 15
# (or HATCHET_PG_BIN_DIR's; the server runs as the postgres user), .venv with hatchet-sdk, the TypeScript SDK in
# tests/e2e/ts/node_modules, root for the pg_wal tmpfs (without it pg_wal_full is left out), and builds
# hatchet-server (debug) unless HATCHET_SERVER_BIN names one.
# Output and logs: tests/output/chaos/. The last line is `chaos: N passed, N failed` (one per invariant).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
ROOT="${PWD}"
if [[ -d "${HOME}/.cargo/bin" && ":${PATH}:" != *":${HOME}/.cargo/bin:"* ]]; then
    export PATH="${HOME}/.cargo/bin:${PATH}"
fi
args=("$@")
if [[ " $* " == *" --short "* ]]; then
    args=(--minutes 3.3 --seed 16 "$@")
fi
if [[ -z "${HATCHET_SERVER_BIN:-}" ]]; then
    cargo build --quiet -p hatchet-server || { echo "chaos: 0 passed, 1 failed"; exit 1; }
    export HATCHET_SERVER_BIN="${CARGO_TARGET_DIR:-${ROOT}/target}/debug/hatchet-server"
fi
# The cluster loads the system-wide pg_hatchet.so again at every restart the faults cause, and the test layers
# reinstall it: another build loaded against the catalog the first one created crashed a run. Hold their lock for the
# whole run, unless the caller (scripts/test.sh) already does (CHAOS_LOCK_HELD=1).
if [[ -z "${CHAOS_LOCK_HELD:-}" ]]; then
    lock="${HATCHET_TEST_LOCK:-/tmp/pg_hatchet-test.lock}"
    exec 9>>"${lock}"
    chmod a+rw "${lock}" 2>/dev/null || true
    if ! flock -n 9; then
        echo "chaos: waiting for another test run holding ${lock}"
        flock 9
    fi
fi
exec "${ROOT}/.venv/bin/python" -u tests/chaos/chaos.py "${args[@]}"
