#!/usr/bin/env bash
# scripts/test.sh: run pg_hatchet's test layers, in order, and print one summary line at the end.
#
# Usage: scripts/test.sh [LAYER...]          no LAYER means all of them: fmt clippy unit pgrx sql cluster upgrade e2e
#                                           chaos bench
#
#   fmt        cargo fmt --all -- --check
#   clippy     cargo clippy -D warnings for hatchet-core (all targets and features), pg_hatchet (feature pg15),
#              hatchet-server (all targets) and hatchet-bench (all targets, only if that crate is in the workspace)
#   unit       cargo test -p hatchet-core --all-features, cargo test -p hatchet-server (and -p hatchet-bench if
#              present)
#   pgrx       cargo pgrx test pg15 inside pg_hatchet/ (#[pg_test]s; Postgres runs as the postgres user)
#   sql        scripts/install-ext.sh (release build), then a scratch cluster with shared_preload_libraries='pg_hatchet':
#              pg_regress over tests/regress/sql/*.sql (database contrib_regression), then
#              pg_isolation_regress over tests/isolation/specs/*.spec (database isolation_regression)
#   regress    the sql layer with pg_regress only
#   isolation  the sql layer with pg_isolation_regress only
#   cluster    self-contained scripts with their own scratch cluster: tests/cluster/*.sh (library must be preloaded),
#              tests/restart/*_restart.sh (behaviour across a Postgres restart), tests/stress/*_stress.sh (flow-control stress)
#   upgrade    scripts/install-ext.sh, then tests/upgrade/run.sh: from every released version (sql/releases/) through
#              the sql/upgrades/ scripts to the current one, on a scratch cluster: work in every state created with the
#              old version finishes after ALTER EXTENSION UPDATE, and the upgraded catalog equals a fresh install's
#              (docs/releasing.md)
#   e2e        .venv/bin/pytest tests/e2e
#   chaos      scripts/install-ext.sh, then the chaos suite's short run (tests/chaos/run.sh --short: three server
#              replicas, SDK workers for two tenants, every fault kind at least once with a fixed seed, then the
#              history checker; about 5 minutes); one test per invariant
#   bench      bash bench/smoke.sh (every scenario and system at tiny sizes)
#
# setup.sh runs first; on a machine that is already set up it takes about a second and needs no network
# (SKIP_SETUP=1 skips it). A failing layer does not stop the run. The exit status is non-zero if anything failed,
# and the last line printed is always `N passed, N failed`, counting individual tests (cargo tests, pg_regress
# tests, isolation specs, pytest tests), one per check for fmt/clippy/bench, and one failure for a layer that
# broke before its tests could run (a compile error, a cluster that would not start).
#
# The SQL layers copy their output to tests/results/{regress,isolation}/ (git-ignored), with the server log. To
# accept a changed output after reading the diff: cp tests/results/regress/results/NAME.out tests/regress/expected/
set -uo pipefail # not -e: a failing layer is recorded and the run goes on

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
ROOT="${PWD}"
if [[ -d "${HOME}/.cargo/bin" && ":${PATH}:" != *":${HOME}/.cargo/bin:"* ]]; then
    export PATH="${HOME}/.cargo/bin:${PATH}"
fi

PG_MAJOR=15
# HATCHET_PG_BIN_DIR: another Postgres 15 installation (scripts/private-pg.sh makes one, so that several work trees
# on one machine can install and test their own builds side by side).
PG_BIN="${HATCHET_PG_BIN_DIR:-/usr/lib/postgresql/${PG_MAJOR}/bin}"
PG_CONFIG="${PG_BIN}/pg_config"
PGXS_TEST="$(dirname "$(dirname "$("${PG_CONFIG}" --pgxs 2>/dev/null || echo "/usr/lib/postgresql/${PG_MAJOR}/lib/pgxs/src/makefiles/pgxs.mk")")")/test"
PG_REGRESS="${PGXS_TEST}/regress/pg_regress"
PG_ISOLATION_REGRESS="${PGXS_TEST}/isolation/pg_isolation_regress"
EXTENSION=pg_hatchet
REGRESS_DB=contrib_regression
ISOLATION_DB=isolation_regression
# Base directory for cargo pgrx test's clusters; its parent must be writable by postgres (DESIGN.md).
PGRX_PGDATA=/tmp/pg_hatchet-pgrx-test/pgdata
# The pgrx and sql layers both install the extension into the system Postgres and the pgrx layer uses a fixed
# port and data dir; this lock keeps two runs on one machine (several engineers, one box) from interleaving.
# A private installation (HATCHET_PG_BIN_DIR) comes with its own lock (HATCHET_TEST_LOCK).
PG_LOCK="${HATCHET_TEST_LOCK:-/tmp/pg_hatchet-test.lock}"
export HATCHET_TEST_LOCK="${PG_LOCK}"
RESULTS="${ROOT}/tests/results"

ALL_LAYERS=(fmt clippy unit pgrx sql cluster upgrade e2e chaos bench)

PASSED=0
FAILED=0
INTERRUPTED=""
SUMMARY=()
DIAGNOSIS=()
LOG_DIR="$(mktemp -d /tmp/pg_hatchet-test-logs.XXXXXX)"

say() { printf 'test: %s\n' "$*"; }

# Run a command as the postgres OS user when we are root (Postgres refuses to run as root); as ourselves otherwise.
as_pg() {
    if [[ ${EUID} -eq 0 ]]; then
        sudo -u postgres -- "$@"
    else
        "$@"
    fi
}

# Run one named check and leave a marker line that count_check counts.
check() {
    local name=$1
    shift
    printf '+ %s\n' "$*"
    if "$@"; then
        printf 'check ok: %s\n' "${name}"
    else
        printf 'check FAILED: %s\n' "${name}"
        return 1
    fi
}

# Hold PG_LOCK for the rest of the calling (sub)shell.
take_pg_lock() {
    exec 9>>"${PG_LOCK}"
    chmod a+rw "${PG_LOCK}" 2>/dev/null || true
    if ! flock -n 9; then
        say "waiting for another test run holding ${PG_LOCK}"
        flock 9
    fi
}

WORKSPACE_PACKAGES=""
has_package() {
    if [[ -z "${WORKSPACE_PACKAGES}" ]]; then
        WORKSPACE_PACKAGES="$(cargo metadata --no-deps --format-version 1 2>/dev/null |
            python3 -c 'import json, sys; print("\n".join(p["name"] for p in json.load(sys.stdin)["packages"]))' \
                2>/dev/null)"
    fi
    grep -qx "$1" <<<"${WORKSPACE_PACKAGES}"
}

# ---------------------------------------------------------------------------------------------------- layers

layer_fmt() {
    check "cargo fmt" cargo fmt --all -- --check
}

layer_clippy() {
    local rc=0
    check "clippy hatchet-core" cargo clippy -p hatchet-core --all-targets --all-features -- -D warnings || rc=1
    check "clippy pg_hatchet" cargo clippy -p pg_hatchet --features "pg${PG_MAJOR}" -- -D warnings || rc=1
    check "clippy hatchet-server" cargo clippy -p hatchet-server --all-targets -- -D warnings || rc=1
    if has_package hatchet-bench; then
        check "clippy hatchet-bench" cargo clippy -p hatchet-bench --all-targets -- -D warnings || rc=1
    fi
    return "${rc}"
}

layer_unit() {
    local rc=0
    printf '+ cargo test -p hatchet-core --all-features\n'
    cargo test -p hatchet-core --all-features || rc=1
    # The server's integration tests start clusters that preload the installed extension; on a new machine nothing
    # has installed it yet (the sql layer runs later), so install it here, under the lock, for the whole layer.
    take_pg_lock
    install_extension || return 1
    printf '+ cargo test -p hatchet-server\n'
    cargo test -p hatchet-server || rc=1
    if has_package hatchet-bench; then
        printf '+ cargo test -p hatchet-bench\n'
        cargo test -p hatchet-bench || rc=1
    fi
    return "${rc}"
}

layer_pgrx() {
    take_pg_lock
    # cargo pgrx test installs into the system Postgres (~/.pgrx/config.toml) on a fixed port: with a private
    # installation it still needs the machine-wide lock.
    if [[ "${PG_LOCK}" != /tmp/pg_hatchet-test.lock ]]; then
        exec 8>>/tmp/pg_hatchet-test.lock
        flock -n 8 || { say "waiting for another test run holding /tmp/pg_hatchet-test.lock"; flock 8; }
    fi
    cd "${ROOT}/${EXTENSION}" || return 1
    if [[ ${EUID} -eq 0 ]]; then
        local parent
        parent="$(dirname "${PGRX_PGDATA}")"
        mkdir -p "${parent}"
        # pgrx-tests initdb's PGRX_PGDATA/15-<pid> (as postgres, so postgres must own the parent) and removes it
        # when the tests end; this clears what a killed run left behind.
        rm -rf "${PGRX_PGDATA}"
        chown postgres: "${parent}"
        printf '+ cargo pgrx test pg%s --runas postgres --pgdata %s\n' "${PG_MAJOR}" "${PGRX_PGDATA}"
        # 9>&-: the test server must not inherit (and keep holding) PG_LOCK
        cargo pgrx test "pg${PG_MAJOR}" --runas postgres --pgdata "${PGRX_PGDATA}" 8>&- 9>&-
    else
        printf '+ cargo pgrx test pg%s\n' "${PG_MAJOR}"
        cargo pgrx test "pg${PG_MAJOR}" 8>&- 9>&-
    fi
}

# --- the SQL layer: install, scratch cluster, pg_regress, pg_isolation_regress

SQL_WORK=""
SQL_PORT=""

install_extension() {
    # package + rename into place (scripts/install-ext.sh): never rewrites a .so a running cluster has mapped
    PG_CONFIG="${PG_CONFIG}" bash "${ROOT}/scripts/install-ext.sh"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# initdb a throwaway cluster in SQL_WORK (a fresh temp dir, so parallel runs never share a socket or data dir).
init_cluster() {
    SQL_WORK="$(mktemp -d /tmp/pg_hatchet-sql.XXXXXX)"
    chmod 755 "${SQL_WORK}"
    [[ ${EUID} -ne 0 ]] || chown postgres: "${SQL_WORK}"
    SQL_PORT="$(free_port)"
    cd "${SQL_WORK}" || return 1 # postgres may be unable to read the caller's working directory
    say "scratch cluster in ${SQL_WORK}, socket ${SQL_WORK}/.s.PGSQL.${SQL_PORT}"
    if ! as_pg "${PG_BIN}/initdb" -D "${SQL_WORK}/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
        >"${SQL_WORK}/initdb.log" 2>&1; then
        cat "${SQL_WORK}/initdb.log"
        return 1
    fi
    # Unix socket only, in our private dir: no TCP port to collide with. fsync off: the data is thrown away.
    cat >>"${SQL_WORK}/data/postgresql.conf" <<EOF

# --- scripts/test.sh
listen_addresses = ''
unix_socket_directories = '${SQL_WORK}'
port = ${SQL_PORT}
shared_preload_libraries = '${EXTENSION}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_prepared_transactions = 10
lc_messages = 'C'
log_line_prefix = '%m [%p] %q%a %d '
EOF
}

# start_cluster DBNAME LOGFILE: hatchet.database_name tells the background worker which database to serve, so
# each suite gets a start with its own database name (the database itself is created by pg_regress).
start_cluster() {
    as_pg "${PG_BIN}/pg_ctl" -D "${SQL_WORK}/data" -l "$2" -w -t 60 \
        -o "-c hatchet.database_name=$1" start >/dev/null 9>&- || {
        say "the scratch cluster did not start; server log:"
        tail -n 50 "$2"
        return 1
    }
}

stop_cluster() {
    [[ -n "${SQL_WORK}" && -f "${SQL_WORK}/data/postmaster.pid" ]] || return 0
    as_pg "${PG_BIN}/pg_ctl" -D "${SQL_WORK}/data" -m fast -t 60 stop >/dev/null 2>&1 ||
        as_pg "${PG_BIN}/pg_ctl" -D "${SQL_WORK}/data" -m immediate stop >/dev/null 2>&1
}

# Names (without suffix) of the files matching DIR/*.SUFFIX, in byte order, one per line.
list_tests() {
    local dir=$1 suffix=$2 f
    [[ -d "${dir}" ]] || return 0
    for f in "${dir}"/*."${suffix}"; do
        [[ -e "${f}" ]] || continue
        f="${f##*/}"
        printf '%s\n' "${f%."${suffix}"}"
    done | LC_ALL=C sort
}

# run_suite KIND: KIND is regress or isolation. Copies tests/KIND to SQL_WORK (pg_regress writes next to its
# output, and postgres may not write in the work tree), runs the driver as postgres, shows the diffs on failure
# and copies the output to tests/results/KIND.
run_suite() {
    local kind=$1 driver db dir suffix rc=0
    local log="${SQL_WORK}/postgres-${kind}.log"
    local -a tests
    case "${kind}" in
        regress) driver="${PG_REGRESS}" db="${REGRESS_DB}" dir=sql suffix=sql ;;
        isolation) driver="${PG_ISOLATION_REGRESS}" db="${ISOLATION_DB}" dir=specs suffix=spec ;;
    esac
    mapfile -t tests < <(list_tests "${ROOT}/tests/${kind}/${dir}" "${suffix}")
    if [[ ${#tests[@]} -eq 0 ]]; then
        say "no ${kind} tests in tests/${kind}/${dir}"
        return 0
    fi
    cp -r "${ROOT}/tests/${kind}" "${SQL_WORK}/${kind}-in"
    # The superuser's setup scripts, which tests run with \i setup/NAME.sql (psql's working directory is SQL_WORK).
    [[ -d "${SQL_WORK}/setup" ]] || cp -r "${ROOT}/sql/setup" "${SQL_WORK}/setup"
    mkdir -p "${SQL_WORK}/${kind}-in/expected" "${SQL_WORK}/${kind}-out"
    # A missing expected file would make pg_regress abort the whole suite; an empty one fails just that test
    # and its diff shows the full output, ready to be read and accepted.
    local t
    for t in "${tests[@]}"; do
        if [[ ! -e "${SQL_WORK}/${kind}-in/expected/${t}.out" ]]; then
            say "${kind}: no tests/${kind}/expected/${t}.out yet; comparing with an empty file"
            : >"${SQL_WORK}/${kind}-in/expected/${t}.out"
        fi
    done
    [[ ${EUID} -ne 0 ]] || chown -R postgres: "${SQL_WORK}/${kind}-in" "${SQL_WORK}/${kind}-out"

    start_cluster "${db}" "${log}" || return 1
    printf '+ %s --dbname=%s --load-extension=%s %s\n' "${driver##*/}" "${db}" "${EXTENSION}" "${tests[*]}"
    (cd "${SQL_WORK}" && as_pg "${driver}" \
        --bindir="${PG_BIN}" \
        --host="${SQL_WORK}" --port="${SQL_PORT}" \
        --inputdir="${SQL_WORK}/${kind}-in" --outputdir="${SQL_WORK}/${kind}-out" \
        --dbname="${db}" --load-extension="${EXTENSION}" \
        --encoding=UTF8 --no-locale \
        "${tests[@]}") || rc=$?
    stop_cluster

    rm -rf "${RESULTS:?}/${kind}"
    mkdir -p "${RESULTS}"
    cp -r "${SQL_WORK}/${kind}-out" "${RESULTS}/${kind}"
    cp "${log}" "${RESULTS}/${kind}/postgres.log"
    if [[ ${rc} -ne 0 ]]; then
        if [[ -s "${SQL_WORK}/${kind}-out/regression.diffs" ]]; then
            say "${kind} failed; regression.diffs:"
            cat "${SQL_WORK}/${kind}-out/regression.diffs"
        fi
        say "${kind} failed; last lines of the server log (all of it in tests/results/${kind}/postgres.log):"
        tail -n 30 "${log}"
    fi
    # Crashes can hide behind passing tests (a background worker dying is invisible to psql): flag them.
    local crash='PANIC|terminated by signal|terminated by exception|terminating any other active server processes'
    if grep -Eq "${crash}" "${log}"; then
        say "${kind}: the server log shows a crash:"
        grep -E "${crash}" "${log}"
        rc=1
    fi
    return "${rc}"
}

# layer_sql [regress] [isolation]
layer_sql() {
    local rc=0 kind
    take_pg_lock
    install_extension || return 1
    # Whatever happens, stop the scratch cluster and remove its directory. PIPE is ignored so that an interrupt
    # that also killed `tee` cannot kill this shell (on its next write) before the cleanup ran.
    trap '' PIPE
    trap 'stop_cluster; [[ -z "${SQL_WORK}" ]] || rm -rf "${SQL_WORK}"' EXIT
    trap 'exit 130' INT TERM
    init_cluster || return 1
    # The suites share one cluster, restarted between them with a different hatchet.database_name: the background
    # worker stays connected to its database, so a second pg_regress could not drop and recreate that database.
    for kind in "$@"; do
        run_suite "${kind}" || rc=1
    done
    return "${rc}"
}

# --- self-contained cluster scripts

# Scripts that need a cluster of their own (a restart, a cluster without the library preloaded, a stress run):
# tests/cluster/*.sh, tests/restart/*_restart.sh and tests/stress/*_stress.sh (not the measurement scripts beside
# them). Each starts and removes its own scratch
# cluster (tests/lib/scratch_cluster.sh) and ends with a `NAME: N passed, N failed` line.
cluster_scripts() {
    local f
    for f in "${ROOT}"/tests/cluster/*.sh "${ROOT}"/tests/restart/*_restart.sh "${ROOT}"/tests/stress/*_stress.sh; do
        [[ -f "${f}" ]] && printf '%s\n' "${f}"
    done
}

layer_cluster() {
    take_pg_lock
    local rc=0 f
    while read -r f; do
        printf '+ bash %s\n' "${f#"${ROOT}/"}"
        bash "${f}" || rc=1
    done < <(cluster_scripts)
    return "${rc}"
}

# The upgrade chain (tests/upgrade/run.sh starts and removes its own scratch cluster). It installs the extension
# first: the releases and upgrade scripts must be this checkout's.
layer_upgrade() {
    take_pg_lock
    install_extension || return 1
    printf '+ bash tests/upgrade/run.sh\n'
    # 9>&-: a postmaster the script starts must not inherit (and keep holding) PG_LOCK
    bash "${ROOT}/tests/upgrade/run.sh" 9>&-
}

count_scripts() {
    strip_ansi "$1" | awk -v rc="$2" '
        /: [0-9]+ passed, [0-9]+ failed$/ {
            for (i = 2; i <= NF; i++) {
                if ($i == "passed,") p += $(i - 1)
                if ($i == "failed") f += $(i - 1)
            }
        }
        END { if (rc != 0 && f == 0) f = 1; print p + 0, f + 0 }'
}

# --- later layers

layer_e2e() {
    # The e2e tests start hatchet-server (and whatever it needs) themselves.
    printf '+ .venv/bin/pytest tests/e2e\n'
    "${ROOT}/.venv/bin/pytest" -p no:cacheprovider tests/e2e
}

# The chaos suite's short run (tests/chaos/README.md). It restarts the cluster it starts many times, and every start
# loads the system-wide pg_hatchet.so: install this checkout's and hold the lock for the whole run.
layer_chaos() {
    take_pg_lock
    install_extension || return 1
    printf '+ bash tests/chaos/run.sh --short\n'
    # 9>&-: the postmaster and servers it starts must not inherit (and keep holding) PG_LOCK
    CHAOS_LOCK_HELD=1 bash "${ROOT}/tests/chaos/run.sh" --short 9>&-
}

# The benchmark's smoke run: every scenario and system at tiny sizes (bench/README.md; bench/ owns the script).
run_bench_smoke() {
    check "bench smoke" bash bench/smoke.sh
}

# ---------------------------------------------------------------------------------------------------- counting
# Each prints "PASSED FAILED" for a layer's log and exit status.

strip_ansi() { sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$1"; }

count_check() {
    strip_ansi "$1" | awk -v rc="$2" '
        /^check ok: /     { p++ }
        /^check FAILED: / { f++ }
        END { if (rc != 0 && f == 0) f = 1; print p + 0, f + 0 }'
}

# cargo test and cargo pgrx test: sum `test result: ok. 3 passed; 0 failed; ...` over every test binary.
count_cargo() {
    strip_ansi "$1" | awk -v rc="$2" '
        /^test result: / {
            for (i = 2; i <= NF; i++) {
                if ($i ~ /^passed;?$/) p += $(i - 1)
                if ($i ~ /^failed;?$/) f += $(i - 1)
            }
        }
        END { if (rc != 0 && f == 0) f = 1; print p + 0, f + 0 }'
}

# pg_regress / pg_isolation_regress: PG 15 prints `test NAME ... ok  12 ms` (or `... FAILED`); PG 16+ prints TAP.
count_pg() {
    strip_ansi "$1" | awk -v rc="$2" '
        /^(test | +)[^ ]+ +\.\.\. ok( |$)/              { p++; next }
        /^(test | +)[^ ]+ +\.\.\. (FAILED|failed)/      { f++; next }
        /^ok [0-9]+ +[-+] /                              { p++; next }
        /^not ok [0-9]+ +[-+] /                          { f++; next }
        END { if (rc != 0 && f == 0) f = 1; print p + 0, f + 0 }'
}

# pytest's last line: `==== 3 passed, 1 failed, 2 errors in 4.56s ====`.
count_pytest() {
    strip_ansi "$1" | awk -v rc="$2" '
        / in [0-9.]+s/ { line = $0 }
        END {
            n = split(line, w, /[ ,=]+/)
            for (i = 2; i <= n; i++) {
                if (w[i] == "passed") p += w[i - 1]
                if (w[i] == "failed" || w[i] ~ /^errors?$/) f += w[i - 1]
            }
            if (rc != 0 && f == 0) f = 1
            print p + 0, f + 0
        }'
}

# ---------------------------------------------------------------------------------------------------- driver

# run_layer NAME COUNTER FUNCTION [ARGS...]: run FUNCTION in a subshell (so its traps, locks and cd end with it),
# show and log its output, count its tests.
run_layer() {
    local name=$1 counter=$2
    shift 2
    local log="${LOG_DIR}/${name}.log" start=${SECONDS} rc p f status
    printf '\n==================== %s ====================\n' "${name}"
    ("$@") 2>&1 | tee -i "${log}" # -i: on Ctrl-C, keep showing the layer's cleanup
    rc=${PIPESTATUS[0]}
    read -r p f < <("${counter}" "${log}" "${rc}")
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
    if [[ ${rc} -eq 0 && ${f} -eq 0 ]]; then
        status=ok
    else
        status=FAILED
        # CI shows the end of the output: repeat the lines that say why, so they are not lost above a long trace.
        DIAGNOSIS+=("--- ${name}: the lines of its output that name an error (the full output is above)")
        mapfile -t -O "${#DIAGNOSIS[@]}" DIAGNOSIS < <(grep -E \
            'error(\[E[0-9]+\])?: |^Error|FATAL|PANIC|No space left|Permission denied|Text file busy|command not found|Failure installing| \.\.\. FAILED|^not ok' \
            "${log}" | grep -v 'test result' | tail -n 20 | cut -c1-300)
    fi
    SUMMARY+=("$(printf '%-10s %-7s %4d passed %4d failed %6ss' "${name}" "${status}" "${p}" "${f}" \
        $((SECONDS - start)))")
}

run_named_layer() {
    case "$1" in
        fmt) run_layer fmt count_check layer_fmt ;;
        clippy) run_layer clippy count_check layer_clippy ;;
        unit) run_layer unit count_cargo layer_unit ;;
        pgrx) run_layer pgrx count_cargo layer_pgrx ;;
        sql) run_layer sql count_pg layer_sql regress isolation ;;
        regress) run_layer regress count_pg layer_sql regress ;;
        isolation) run_layer isolation count_pg layer_sql isolation ;;
        cluster) run_layer cluster count_scripts layer_cluster ;;
        upgrade) run_layer upgrade count_check layer_upgrade ;;
        e2e) run_layer e2e count_pytest layer_e2e ;;
        chaos) run_layer chaos count_scripts layer_chaos ;;
        bench) run_layer bench count_check run_bench_smoke ;;
    esac
}

main() {
    local layers=("$@") layer known=" ${ALL_LAYERS[*]} regress isolation "
    [[ ${#layers[@]} -gt 0 ]] || layers=("${ALL_LAYERS[@]}")
    for layer in "${layers[@]}"; do
        if [[ "${known}" != *" ${layer} "* ]]; then
            printf 'usage: %s [%s]...\nunknown layer: %s\n' "$0" "${known# }" "${layer}" >&2
            exit 2
        fi
    done

    if [[ "${SKIP_SETUP:-0}" != 1 ]]; then
        local start=${SECONDS}
        if bash "${ROOT}/scripts/setup.sh"; then
            SUMMARY+=("$(printf '%-10s %-7s %23s %6ss' setup ok '' $((SECONDS - start)))")
        else
            FAILED=$((FAILED + 1))
            SUMMARY+=("$(printf '%-10s %-7s %23s %6ss' setup FAILED '' $((SECONDS - start)))")
        fi
    fi

    # Ctrl-C ends the current layer (its traps stop any cluster it started) and skips the rest.
    trap 'INTERRUPTED=1' INT TERM
    for layer in "${layers[@]}"; do
        if [[ -n "${INTERRUPTED}" ]]; then
            SUMMARY+=("$(printf '%-10s skipped (interrupted)' "${layer}")")
            continue
        fi
        run_named_layer "${layer}"
    done

    rm -rf "${LOG_DIR}"
    if [[ ${#DIAGNOSIS[@]} -gt 0 ]]; then
        printf '\n==================== why layers failed ====================\n'
        printf '%s\n' "${DIAGNOSIS[@]}"
    fi
    printf '\n==================== summary ====================\n'
    printf '%s\n' "${SUMMARY[@]}"
    printf '%d passed, %d failed\n' "${PASSED}" "${FAILED}"
    [[ ${FAILED} -eq 0 ]]
}

main "$@"
