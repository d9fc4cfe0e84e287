#!/usr/bin/env bash
# tests/restart/cron_precision.sh: how late do crons and one-off schedules fire? A measurement, not a test.
#
# On a private scratch cluster with default settings (hatchet.poll_interval_ms = 1000) it runs a cron with a seconds
# field ('* * * * * *') for DURATION seconds and, at the same time, COUNT schedules due at arbitrary sub-second times
# (each created at least 2 s ahead), then prints, for each, the delay between the due time and the creation of the
# run (the run id's UUIDv7 timestamp, millisecond resolution): median, p90, p99 and worst.
#
# The first tick of a cron created less than poll_interval_ms before it is due can be up to poll_interval_ms late:
# the worker computed its wake-up before the cron existed. Every later tick is fired by a worker that woke for it.
#
# Usage: tests/restart/cron_precision.sh [DURATION=30] [COUNT=30]     (needs the extension installed)
#        SHOW_TICKS=1 tests/restart/cron_precision.sh                  also list every tick's delay
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

DURATION=${1:-30}
COUNT=${2:-30}

start_cluster precision || exit 1
sql "SELECT hatchet.register_workflow('{\"name\": \"precise\", \"tasks\": [{\"readable_id\": \"t\"}]}')" >/dev/null
sql "SELECT hatchet.create_cron('precise', 'every-second', '* * * * * *')" >/dev/null
# Schedules spread over the run, at arbitrary fractions of a second.
sql "SELECT count(hatchet.schedule('precise', clock_timestamp() + make_interval(secs => 2 + k * ${DURATION}::float8 / ${COUNT} + random()),
                                   jsonb_build_object('k', k)))
     FROM generate_series(1, ${COUNT}) k" >/dev/null
sleep "$((DURATION + 3))"
if [[ -n "${SHOW_TICKS:-}" ]]; then  # every tick's delay, in order
    sql "SELECT row_number() OVER (ORDER BY inserted_at),
                extract(epoch FROM inserted_at - (additional_metadata->>'hatchet__scheduled_at')::timestamptz) * 1000
         FROM hatchet.runs WHERE additional_metadata->>'hatchet__cron_name' = 'every-second' ORDER BY 1"
fi
sql "SELECT hatchet.delete_cron(cron_id) FROM hatchet.list_crons('precise')" >/dev/null

echo "firing delay (run created - due), ms; hatchet.poll_interval_ms = $(sql "SHOW hatchet.poll_interval_ms")"
sql "WITH d AS (
         SELECT CASE WHEN n = 1 THEN 'cron, first tick' ELSE 'cron, later ticks' END AS what, ms
         FROM (SELECT row_number() OVER (ORDER BY inserted_at) AS n,
                      extract(epoch FROM inserted_at - (additional_metadata->>'hatchet__scheduled_at')::timestamptz)
                          * 1000 AS ms
               FROM hatchet.runs WHERE additional_metadata->>'hatchet__cron_name' = 'every-second') c
         UNION ALL
         SELECT 'schedule', extract(epoch FROM hatchet.uuid_time(s.fired_run_id) - s.run_at) * 1000
         FROM hatchet.scheduled_runs s WHERE s.fired_run_id IS NOT NULL)
     SELECT format('%-20s n=%-4s median=%6s  p90=%6s  p99=%6s  worst=%6s  (pending: %s)', what, count(*),
                   round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
                   round(percentile_cont(0.9) WITHIN GROUP (ORDER BY ms)::numeric, 1),
                   round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1),
                   round(max(ms)::numeric, 1),
                   CASE WHEN what = 'schedule' THEN (SELECT count(*) FROM hatchet.scheduled_runs WHERE fired_run_id IS NULL)::text
                        ELSE '-' END)
     FROM d GROUP BY what ORDER BY what"
echo "(negative values are the millisecond truncation of the run id's timestamp; a tick never fires early)"
