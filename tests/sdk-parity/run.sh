#!/usr/bin/env bash
# tests/sdk-parity/run.sh [options] SDKS_PYTHON [-- PYTEST_ARGS...]
#
# Runs Hatchet's own Python SDK test suite (the test_*.py files under sdks/python/examples/ of the public
# hatchet-dev/hatchet repository) against `hatchet-server dev` and prints ran / passed / failed / skipped per example
# directory. SDKS_PYTHON is a local copy of that repository's sdks/python (see README.md for how to get one); nothing
# of Hatchet's is committed here. Not part of `make test`.
#
#   --timeout S        per-test limit (pytest-timeout), default 60
#   --rerun-timeout S  tests that hit --timeout run once more with this limit, default 180 (0: no rerun)
#   --jobs N           pytest-xdist processes, default 8 (as Hatchet's CI)
#   --ci-workers       let Hatchet's conftest start examples/worker.py in every pytest-xdist process, as its CI
#                      does; by default this script starts ONE all-in-one worker that every process shares
#   PYTEST_ARGS        instead of the whole examples/ directory, e.g. `-- examples/simple examples/dag`
#
# Environment: HATCHET_SERVER_BIN (default: `cargo build -p hatchet-server`, then target/debug/hatchet-server),
# PARITY_VENV (default /tmp/pg_hatchet-sdk-parity-venv), PARITY_OUT (default tests/output/sdk-parity),
# PG_HATCHET_TEST_LOCK_HELD=1 (the caller holds /tmp/pg_hatchet-test.lock until the server is up; otherwise the
# script takes it itself while the server creates its cluster and the extension).
#
# The SDK is the project's (.venv from scripts/setup.sh, hatchet-sdk 1.43.1): the script makes a separate venv that
# sees .venv's packages through a .pth file and installs into it only what the examples and Hatchet's test setup
# need on top (pytest-xdist, pytest-timeout, pytest-env, psutil, requests, boto3, psycopg, OpenTelemetry). The
# suite runs from a copy of SDKS_PYTHON without its hatchet_sdk/ source, so the installed SDK is the one tested.
# Needs the extension installed in the system Postgres 15 (`make dev`).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "${HERE}/../.." && pwd)"

timeout_s=60
rerun_timeout_s=180
jobs=8
ci_workers=0
sdk_dir=""
pytest_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --timeout) timeout_s="$2"; shift 2 ;;
        --rerun-timeout) rerun_timeout_s="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --ci-workers) ci_workers=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        --) shift; pytest_args=("$@"); break ;;
        -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
        *) [[ -z "${sdk_dir}" ]] || { echo "one SDKS_PYTHON only" >&2; exit 2; }; sdk_dir="$1"; shift ;;
    esac
done
[[ -n "${sdk_dir}" ]] || { echo "usage: $0 [options] SDKS_PYTHON [-- PYTEST_ARGS...] (see --help)" >&2; exit 2; }
sdk_dir="$(cd "${sdk_dir}" && pwd)"
[[ -f "${sdk_dir}/examples/worker.py" && -f "${sdk_dir}/conftest.py" ]] ||
    { echo "${sdk_dir} is not a copy of hatchet-dev/hatchet's sdks/python (no examples/worker.py)" >&2; exit 2; }

say() { printf '== %s\n' "$*" >&2; }

OUT="${PARITY_OUT:-${ROOT}/tests/output/sdk-parity}"
VENV="${PARITY_VENV:-/tmp/pg_hatchet-sdk-parity-venv}"
PROJECT_PY="${ROOT}/.venv/bin/python"
[[ -x "${PROJECT_PY}" ]] || { echo "no ${ROOT}/.venv (run scripts/setup.sh)" >&2; exit 2; }
rm -rf "${OUT}"
mkdir -p "${OUT}"

# --- the Python environment -----------------------------------------------------------------------------------------
EXTRA_PACKAGES=(
    pytest-xdist pytest-timeout pytest-env psutil requests boto3 "psycopg[binary,pool]"
    opentelemetry-api opentelemetry-sdk opentelemetry-instrumentation opentelemetry-distro
    opentelemetry-exporter-otlp opentelemetry-exporter-otlp-proto-http
)
if [[ ! -f "${VENV}/.parity-ready" ]]; then
    say "creating ${VENV} (the project's .venv plus ${EXTRA_PACKAGES[*]})"
    rm -rf "${VENV}"
    "${PROJECT_PY}" -m venv "${VENV}"
    site="$("${VENV}/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    "${PROJECT_PY}" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' >"${site}/pg_hatchet_project.pth"
    "${VENV}/bin/pip" install --quiet "${EXTRA_PACKAGES[@]}"
    touch "${VENV}/.parity-ready"
fi
sdk_version="$("${VENV}/bin/python" -c 'import importlib.metadata as m; print(m.version("hatchet-sdk"))')"
copy_version="$(sed -n 's/^version = "\(.*\)"/\1/p' "${sdk_dir}/pyproject.toml" | head -1)"
say "installed hatchet-sdk ${sdk_version}; the suite's copy is sdks/python ${copy_version}"
[[ "${sdk_version}" == "${copy_version}" ]] ||
    say "WARNING: the suite was written for hatchet-sdk ${copy_version}, the SDK under test is ${sdk_version}"

# --- the suite, without Hatchet's SDK source --------------------------------------------------------------------------
# pytest puts the rootdir on sys.path; with hatchet_sdk/ there the suite would test that source instead of the
# installed SDK. Copy only what the suite needs.
WORK="$(mktemp -d /tmp/pg_hatchet-sdk-parity.XXXXXX)"
chmod 755 "${WORK}" # the postgres user runs the cluster under it
SUITE="${WORK}/suite"
mkdir -p "${SUITE}" "${WORK}/bin"
cp -a "${sdk_dir}/conftest.py" "${sdk_dir}/pyproject.toml" "${sdk_dir}/examples" "${sdk_dir}/tests" "${SUITE}/"

# Hatchet's conftest and tests start workers with `poetry run python ...`; run them with this venv's python instead.
# Unless --ci-workers, the conftest's session-wide `examples/worker.py` becomes a stand-in that lives as long as the
# fixture: the one worker this script starts answers the health check on port 8001 that the fixture waits for.
cat >"${WORK}/bin/poetry" <<EOF
#!/usr/bin/env bash
[[ "\$1" == run ]] && shift
if [[ "${ci_workers}" == 0 && "\$*" == "python examples/worker.py" ]]; then
    exec sleep infinity
fi
exec "\$@"
EOF
chmod +x "${WORK}/bin/poetry"
export PATH="${WORK}/bin:${VENV}/bin:${PATH}"

server_pid=""
worker_pid=""
stop() { # PID SIGNAL: signal PID and wait up to 30 s for it to exit
    [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null || return 0
    kill "-$2" "$1" 2>/dev/null
    for ((i = 0; i < 150; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.2; done
    echo "pid $1 did not exit on SIG$2; killing it" >&2
    kill -KILL "$1" 2>/dev/null
}
cleanup() {
    set +e
    stop "${worker_pid}" TERM
    stop "${server_pid}" INT # `dev` stops its Postgres cluster on SIGINT
    rm -rf "${WORK}"
}
trap cleanup EXIT

free_port() { "${VENV}/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # URL SECONDS WHAT [PID]: until URL answers 200, or PID exits
    local i
    for ((i = 0; i < $2 * 5; i++)); do
        [[ -z "${4:-}" ]] || kill -0 "$4" 2>/dev/null || { echo "$3: the process exited" >&2; return 1; }
        [[ "$(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null)" == 200 ]] && return 0
        sleep 0.2
    done
    echo "timed out waiting for $3 ($1)" >&2
    return 1
}

# --- the server -------------------------------------------------------------------------------------------------------
if [[ -n "${HATCHET_SERVER_BIN:-}" ]]; then
    server_bin="${HATCHET_SERVER_BIN}"
else
    say "cargo build -p hatchet-server"
    (cd "${ROOT}" && cargo build --quiet -p hatchet-server --bin hatchet-server)
    server_bin="${CARGO_TARGET_DIR:-${ROOT}/target}/debug/hatchet-server"
fi
grpc_port="$(free_port)" http_port="$(free_port)" pg_port="$(free_port)"
say "starting ${server_bin} dev (gRPC ${grpc_port}, REST ${http_port}, Postgres ${pg_port}); log: ${OUT}/server.log"
# scripts/install-ext.sh may be replacing the installed extension while the cluster runs CREATE EXTENSION; hold
# the test lock until the server is up (as scripts/test.sh does for its own clusters).
if [[ "${PG_HATCHET_TEST_LOCK_HELD:-}" != 1 ]]; then # set by a caller that holds the lock (to install first)
    lock="${HATCHET_TEST_LOCK:-/tmp/pg_hatchet-test.lock}"
    exec 9>>"${lock}"
    flock -n 9 || { say "waiting for another test run holding ${lock}"; flock 9; }
fi
(cd "${WORK}" && RUST_LOG="${RUST_LOG:-info,sqlx=warn}" exec "${server_bin}" dev --data-dir "${WORK}/dev" \
    --grpc-port "${grpc_port}" --http-port "${http_port}" --pg-port "${pg_port}" \
    >"${WORK}/exports" 2>"${OUT}/server.log") &
server_pid=$!
for ((i = 0; i < 600; i++)); do
    [[ "$(grep -c '^export ' "${WORK}/exports" 2>/dev/null)" -ge 4 ]] && break
    kill -0 "${server_pid}" 2>/dev/null || { echo "hatchet-server dev exited; see ${OUT}/server.log" >&2; exit 1; }
    sleep 0.2
done
wait_http "http://localhost:${http_port}/health" 30 "the server's /health" "${server_pid}"
[[ "${PG_HATCHET_TEST_LOCK_HELD:-}" == 1 ]] || flock -u 9
# shellcheck disable=SC1090
source <(grep '^export HATCHET_CLIENT_' "${WORK}/exports")
cp "${WORK}/exports" "${OUT}/exports.sh"
export HATCHET_CLIENT_WORKER_HEALTHCHECK_ENABLED=True PYTHONUNBUFFERED=1
# `from examples.x import ...` everywhere: poetry's editable install puts sdks/python on the path in Hatchet's CI.
export PYTHONPATH="${SUITE}"

# --- the all-in-one worker --------------------------------------------------------------------------------------------
cd "${SUITE}"
if [[ "${ci_workers}" == 0 ]]; then
    # hatchet-sdk 1.43.1 refuses to start a worker whose durable tasks have eviction policies, one start in five at
    # random, when the engine is older than v0.80.0 (DeprecationError "pre-eviction-engine", since 2026-08-30);
    # hatchet-server reports v0.79.0. Try again then, as a user restarting the worker would.
    for attempt in 1 2 3 4 5; do
        say "starting examples/worker.py (attempt ${attempt}); log: ${OUT}/worker.log"
        HATCHET_CLIENT_WORKER_HEALTHCHECK_PORT=8001 python examples/worker.py >>"${OUT}/worker.log" 2>&1 &
        worker_pid=$!
        wait_http "http://localhost:8001/health" 60 "examples/worker.py's health check on port 8001" "${worker_pid}" &&
            break
        worker_pid=""
        grep -q 'DeprecationError: pre-eviction-engine' "${OUT}/worker.log" && [[ ${attempt} -lt 5 ]] ||
            { echo "see ${OUT}/worker.log" >&2; exit 1; }
    done
fi

# --- the suite --------------------------------------------------------------------------------------------------------
[[ ${#pytest_args[@]} -gt 0 ]] || pytest_args=(examples)
# --tb=native: pytest's own traceback formatting parses source with `ast`, and on Python 3.11 that has ended the
# whole session with an INTERNALERROR (SystemError: AST constructor recursion depth mismatch) on a failing test here.
# pytest runs in its own session: workers that tests start and a crashed session leaves behind go with it.
run_pytest() { # JUNIT LOG TIMEOUT METHOD ARGS...
    local junit="$1" log="$2" limit="$3" method="$4"
    shift 4
    say "pytest -n ${jobs} --timeout ${limit} --timeout-method ${method} $*; log: ${log}"
    setsid python -m pytest -p no:cacheprovider -n "${jobs}" --timeout "${limit}" --timeout-method "${method}" \
        -o log_cli=false -o junit_family=xunit1 --tb=native -rA --junitxml="${junit}" "$@" >"${log}" 2>&1 &
    local pid=$!
    wait "${pid}" || true
    kill -KILL -- "-${pid}" 2>/dev/null || true
}
# The first pass interrupts a test at its limit with SIGALRM (pytest-timeout's default, as in Hatchet's CI). A test
# stuck where that signal cannot reach it kept a rerun from ever ending, so the rerun ends such a test with its
# pytest-xdist process (--timeout-method thread; pytest-xdist reports it as crashed and starts a new process).
run_pytest "${OUT}/junit.xml" "${OUT}/pytest.log" "${timeout_s}" signal "${pytest_args[@]}"

rerun_xml=()
if [[ "${rerun_timeout_s}" != 0 ]]; then
    mapfile -t timed_out < <(python "${HERE}/report.py" --timed-out "${OUT}/junit.xml")
    if [[ ${#timed_out[@]} -gt 0 ]]; then
        run_pytest "${OUT}/junit-rerun.xml" "${OUT}/pytest-rerun.log" "${rerun_timeout_s}" thread "${timed_out[@]}"
        rerun_xml=(--rerun "${OUT}/junit-rerun.xml")
    fi
fi

python "${HERE}/report.py" "${OUT}/junit.xml" "${rerun_xml[@]}" --timeout "${timeout_s}" \
    --rerun-timeout "${rerun_timeout_s}" | tee "${OUT}/table.md"
