#!/usr/bin/env bash
# tests/restart/cron_restart.sh: crons and schedules across Postgres restarts, on a private scratch cluster.
#
# What it proves (issue 4):
#   * a cron with a seconds field fires about once a second, before and after a restart;
#   * no tick ever fires twice, across a clean restart (pg_ctl -m fast) and a crash (-m immediate);
#   * after downtime a cron fires at most one catch-up run for the ticks it missed, never a storm;
#   * schedules are rows: one due while the server was down fires once after it is back, one due later fires on
#     time, each exactly once.
#
# Needs the extension installed (scripts/install-ext.sh) and, as root, sudo for the postgres user. Takes about 25 s.
# The last line is always `cron_restart: N passed, N failed`; the exit status is non-zero if anything failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")" || exit 2
# shellcheck source=../lib/scratch_cluster.sh
source ../lib/scratch_cluster.sh

# Stop and start the scratch cluster separately (downtime in between); fast = clean shutdown, immediate = a crash.
down() { _as_postgres "${PG_BIN}/pg_ctl" -D "${SCRATCH_DIR}/pgdata" -w -m "$1" stop >/dev/null; }
up() {
    _as_postgres "${PG_BIN}/pg_ctl" -D "${SCRATCH_DIR}/pgdata" -l "${SCRATCH_DIR}/postgres.log" -w start >/dev/null &&
        wait_for_worker
}
sql() { psql -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }

PASSED=0
FAILED=0
check() {
    local name=$1 query=$2 got
    got="$(sql "${query}" 2>&1)"
    if [[ "${got}" == "t" ]]; then
        PASSED=$((PASSED + 1))
        echo "ok     ${name}"
    else
        FAILED=$((FAILED + 1))
        echo "FAILED ${name} (got: ${got})"
    fi
}
finish() {
    echo "cron_restart: ${PASSED} passed, ${FAILED} failed"
    [[ ${FAILED} -eq 0 ]]
    exit $?
}

# The cron's runs: when each tick was due and when its run was created.
TICKS="(SELECT (additional_metadata->>'hatchet__scheduled_at')::timestamptz AS due, inserted_at AS created
        FROM hatchet.runs WHERE additional_metadata->>'hatchet__cron_name' = 'every-second') ticks"

if ! start_cluster restart_test "hatchet.poll_interval_ms = 1000"; then
    echo "could not start a scratch cluster"
    FAILED=1
    finish
fi

sql "SELECT hatchet.register_workflow('{\"name\": \"tick\", \"tasks\": [{\"readable_id\": \"t\"}]}')" >/dev/null
sql "SELECT hatchet.create_cron('tick', 'every-second', '* * * * * *')" >/dev/null
# S1 comes due while the server is down, S2 after it is back.
sql "SELECT hatchet.schedule('tick', clock_timestamp() + interval '4.5 seconds', '{\"s\": 1}')" >/dev/null
sql "SELECT hatchet.schedule('tick', clock_timestamp() + interval '9 seconds', '{\"s\": 2}')" >/dev/null

sleep 3.2
check "the cron fires about once a second (>= 2 ticks in 3 s)" "SELECT count(*) BETWEEN 2 AND 5 FROM ${TICKS}"
STOPPED_AT="$(sql "SELECT clock_timestamp()")"
down fast || { FAILED=$((FAILED + 1)); finish; }
sleep 3.5 # downtime: ~3 ticks and S1 come due while nobody is running
up || { FAILED=$((FAILED + 1)); finish; }
STARTED_AT="$(sql "SELECT clock_timestamp()")"
sleep 5

check "no tick fired twice across a clean restart" \
    "SELECT count(*) = count(DISTINCT due) FROM ${TICKS}"
check "no tick fired before it was due" \
    "SELECT bool_and(created >= due) FROM ${TICKS}"
check "at most one catch-up run for the ticks missed while down" \
    "SELECT count(*) <= 1 FROM ${TICKS} WHERE due > '${STOPPED_AT}' AND due < '${STARTED_AT}'::timestamptz - interval '1 second'"
check "the cron fires again after the restart (>= 3 ticks in 5 s)" \
    "SELECT count(*) >= 3 FROM ${TICKS} WHERE due >= '${STARTED_AT}'"
check "the schedule due during the downtime fired once, after the restart" \
    "SELECT count(*) = 1 AND bool_and(r.inserted_at >= '${STARTED_AT}'::timestamptz - interval '1 second')
     FROM hatchet.scheduled_runs s JOIN hatchet.runs r ON r.id = s.fired_run_id WHERE s.input->>'s' = '1'"
check "the schedule due after the restart fired once, on time" \
    "SELECT count(*) = 1 AND bool_and(r.inserted_at >= date_trunc('milliseconds', s.run_at))
     FROM hatchet.scheduled_runs s JOIN hatchet.runs r ON r.id = s.fired_run_id WHERE s.input->>'s' = '2'"
check "each schedule made exactly one run" \
    "SELECT count(*) = 2 FROM hatchet.runs WHERE additional_metadata->>'hatchet__triggered_by' = 'schedule'"

# A crash: whatever a pass had not committed is lost, what it committed stays; either way a tick fires once.
down immediate || { FAILED=$((FAILED + 1)); finish; }
up || { FAILED=$((FAILED + 1)); finish; }
CRASHED_AT="$(sql "SELECT clock_timestamp()")"
sleep 3
check "no tick fired twice across a crash" "SELECT count(*) = count(DISTINCT due) FROM ${TICKS}"
check "the cron fires again after the crash" "SELECT count(*) >= 2 FROM ${TICKS} WHERE due >= '${CRASHED_AT}'"
check "no run of any cron or schedule was created twice" \
    "SELECT count(*) = count(DISTINCT (additional_metadata->>'hatchet__scheduled_at', additional_metadata->>'hatchet__cron_name'))
     FROM hatchet.runs"
if grep -Eq 'PANIC|terminated by signal' "${SCRATCH_DIR}/postgres.log"; then
    FAILED=$((FAILED + 1))
    echo "FAILED the server log shows a crash besides the deliberate one:"
    grep -E 'PANIC|terminated by signal' "${SCRATCH_DIR}/postgres.log"
else
    PASSED=$((PASSED + 1))
    echo "ok     no unexpected crash in the server log"
fi
finish
