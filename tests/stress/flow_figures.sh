#!/usr/bin/env bash
# Figures for the flow-control note (a benchmark, not a test: it asserts nothing, it prints numbers).
#   1. dispatch order with key A holding 10,000 queued tasks and key B 10 (GROUP_ROUND_ROBIN)
#   2. hatchet.assign latency with SMALL and LARGE queued tasks spread over 10,000 keys (defaults 1,000 / 1,000,000)
# Usage: bash tests/stress/flow_figures.sh [LARGE]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
source ../lib/scratch_cluster.sh
LARGE="${1:-1000000}"
start_cluster figures "shared_buffers = '1GB'" "max_wal_size = '4GB'" "hatchet.enable_worker = off"

echo "== 1. fairness: key A 10,000 queued, then key B 10 (max_runs 100 each), 40 dispatches one at a time"
psql -X -qtA <<'SQL'
SELECT count(*) FROM unnest(hatchet.enqueue_many('fair', array_fill('{"k": "A"}'::jsonb, ARRAY[10000]),
                                                 concurrency_key => 'A', max_runs => 100));
SELECT count(*) FROM unnest(hatchet.enqueue_many('fair', array_fill('{"k": "B"}'::jsonb, ARRAY[10]),
                                                 concurrency_key => 'B', max_runs => 100));
CREATE TEMP TABLE order_seen (pos serial, k text);
DO $$ BEGIN FOR i IN 1..40 LOOP
    INSERT INTO order_seen (k) SELECT input ->> 'k' FROM hatchet.dequeue('fair');
END LOOP; END $$;
SELECT 'order: ' || string_agg(k, '' ORDER BY pos) FROM order_seen;
SELECT 'positions of B: ' || string_agg(pos::text, ',' ORDER BY pos) FROM order_seen WHERE k = 'B';
SQL

# measure LABEL N: 20 assign(max_tasks => 100) calls against a backlog kept at its size; prints median / p95 / max.
measure() {
    local label="$1" n="$2"
    psql -X -qtA <<SQL
-- filling can take longer than hatchet.worker_dead_after_ms: the worker says it is alive before it is measured
SELECT hatchet.heartbeat(ARRAY(SELECT id FROM hatchet.workers)) AS alive_workers;
CREATE TEMP TABLE lat (ms float8);
DO \$\$
DECLARE t0 timestamptz; ids uuid[]; rcs integer[];
BEGIN
    FOR i IN 1..20 LOOP
        t0 := clock_timestamp();
        SELECT array_agg(task_id), array_agg(retry_count) INTO ids, rcs FROM hatchet.assign(max_tasks => 100);
        INSERT INTO lat VALUES (extract(epoch FROM clock_timestamp() - t0) * 1000);
        PERFORM hatchet.complete_many(ids, rcs);
        -- keep the backlog at its size: replace what was dispatched, on keys spread over the same key space
        FOR j IN 1 .. cardinality(ids) LOOP
            PERFORM hatchet.enqueue('lat', concurrency_key => 'key-' || (1 + (random() * (least(10000, ${n}) - 1))::integer),
                                    max_runs => 1000000);
        END LOOP;
    END LOOP;
END \$\$;
SELECT format('queued %s over %s keys, %s: assign(100) median %s ms, p95 %s ms, max %s ms',
              ${n}, least(10000, ${n}), '${label}',
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
              round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 2), round(max(ms)::numeric, 2))
FROM lat;
SQL
}

assign_latency() { # N: queued tasks over 10,000 keys (fewer keys when N is smaller)
    local n="$1"
    psql -X -qtA <<SQL
DELETE FROM hatchet.ready_queue WHERE queue = 'lat'; DELETE FROM hatchet.running WHERE queue = 'lat';
DELETE FROM hatchet.concurrency_slots WHERE scope = 'lat'; DELETE FROM hatchet.concurrency_groups WHERE scope = 'lat';
DELETE FROM hatchet.worker_slots; DELETE FROM hatchet.worker_actions; DELETE FROM hatchet.workers;
SELECT hatchet.register_worker('lat-worker', ARRAY['lat'], '{"default": 100}') IS NOT NULL AS registered;
DO \$\$
DECLARE per integer := greatest(1, ${n} / 10000);
BEGIN
    FOR k IN 1 .. least(10000, ${n}) LOOP
        PERFORM hatchet.enqueue_many('lat', array_fill('{}'::jsonb, ARRAY[per]), concurrency_key => 'key-' || k,
                                     max_runs => 1000000);
        IF k % 500 = 0 THEN COMMIT; END IF;
    END LOOP;
END \$\$;
-- (the history table too: the first read of a freshly written page sets its hint bits and dirties it, a one-off
-- cost of bulk loading that would otherwise be billed to the first assign calls)
VACUUM ANALYZE hatchet.ready_queue;
VACUUM ANALYZE hatchet.tasks;
SQL
    # Cold: the backlog's pages are only in the OS cache, as right after loading it.
    measure cold "${n}"
    # Warm: the backlog in shared_buffers, as for a busy queue. The claim visits the same rows either way.
    psql -X -qtA -c "CREATE EXTENSION IF NOT EXISTS pg_prewarm" \
        -c "SELECT sum(pg_prewarm(c.oid)) > 0 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'hatchet' AND c.relkind IN ('r', 'i')
              AND (c.relname LIKE 'ready_queue%' OR c.relname LIKE 'tasks_p%')" >/dev/null
    measure warm "${n}"
}
echo "== 2. assign latency"
assign_latency 1000
start=$(date +%s)
assign_latency "${LARGE}"
echo "(filling and measuring ${LARGE} took $(( $(date +%s) - start )) s)"
