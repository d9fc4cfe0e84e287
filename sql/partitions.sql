-- Daily partitions of the history tables: created ahead by the background worker, dropped after retention.
--
-- Why daily range partitions: history is append-only and expires by age, so retention is a DROP of a whole day
-- (instant, no dead tuples, no vacuum debt) instead of a DELETE over millions of rows.

CREATE FUNCTION hatchet.partitioned_tables() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT ARRAY['runs', 'tasks', 'task_events', 'payloads', 'events', 'logs'] $$;
COMMENT ON FUNCTION hatchet.partitioned_tables() IS 'history tables partitioned by day';

-- Creates the partitions for [today - 1 day, today + days_ahead] that are missing and drops partitions that ended more
-- than retention_days ago. A partition is never dropped while a task inside it is still queued, delayed or running.
-- Returns one row per partition created or dropped.
CREATE FUNCTION hatchet.maintain_partitions(
    days_ahead     integer DEFAULT NULL,
    retention_days integer DEFAULT NULL
) RETURNS TABLE (action text, partition_name text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ahead     integer := coalesce(days_ahead, current_setting('hatchet.partition_days_ahead', true)::integer, 3);
    v_retention integer := coalesce(retention_days, current_setting('hatchet.retention_days', true)::integer, 30);
    v_today     date    := (clock_timestamp() AT TIME ZONE 'UTC')::date;
    v_oldest_live timestamptz;
    v_table     text;
    v_day       date;
    v_name      text;
    v_upper     date;
    r           record;
BEGIN
    IF v_ahead < 1 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['days_ahead must be at least 1']);
    END IF;
    IF v_retention < 1 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['retention_days must be at least 1']);
    END IF;

    -- Serialise concurrent maintainers (the worker and a manual call) so neither trips over the other's DDL.
    PERFORM pg_advisory_xact_lock(hashtext('pg_hatchet.maintain_partitions'));

    FOREACH v_table IN ARRAY hatchet.partitioned_tables() LOOP
        FOR v_day IN SELECT d::date FROM generate_series(v_today - 1, v_today + v_ahead, interval '1 day') AS d LOOP
            v_name := format('%s_p%s', v_table, to_char(v_day, 'YYYYMMDD'));
            IF to_regclass(format('hatchet.%I', v_name)) IS NULL THEN
                EXECUTE format(
                    'CREATE TABLE hatchet.%I PARTITION OF hatchet.%I FOR VALUES FROM (%L) TO (%L)',
                    v_name, v_table,
                    (v_day::timestamp AT TIME ZONE 'UTC'), ((v_day + 1)::timestamp AT TIME ZONE 'UTC'));
                action := 'created';
                partition_name := v_name;
                RETURN NEXT;
            END IF;
        END LOOP;
    END LOOP;

    -- The oldest task that still has an attempt in flight pins its partition (and every later one).
    SELECT min(x) INTO v_oldest_live FROM (
        SELECT min(task_inserted_at) AS x FROM hatchet.ready_queue
        UNION ALL SELECT min(task_inserted_at) FROM hatchet.delayed_queue
        UNION ALL SELECT min(task_inserted_at) FROM hatchet.running
        UNION ALL SELECT min(task_inserted_at) FROM hatchet.concurrency_queue
        -- An unfinished workflow run pins the day of its runs row too (a UUIDv7's first 48 bits are its creation time
        -- in ms; spelled out in SQL because this runs before the Rust functions exist, at CREATE EXTENSION).
        UNION ALL SELECT to_timestamp(min(('x' || left(replace(u_run::text, '-', ''), 12))::bit(48)::bigint) / 1000.0)
        FROM (SELECT run_id FROM hatchet.matches
              UNION ALL SELECT run_id FROM hatchet.ready_queue WHERE run_id IS NOT NULL
              UNION ALL SELECT run_id FROM hatchet.running WHERE run_id IS NOT NULL) AS unfinished(u_run)
    ) live;

    FOR r IN
        SELECT c.relname, p.relname AS parent
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        JOIN pg_namespace n ON n.oid = p.relnamespace
        WHERE n.nspname = 'hatchet' AND p.relname = ANY (hatchet.partitioned_tables())
          AND c.relname ~ '_p[0-9]{8}$'
        ORDER BY c.relname
    LOOP
        v_upper := to_date(right(r.relname, 8), 'YYYYMMDD') + 1;
        IF v_upper <= v_today - v_retention
           AND (v_oldest_live IS NULL OR (v_upper::timestamp AT TIME ZONE 'UTC') <= v_oldest_live) THEN
            EXECUTE format('DROP TABLE hatchet.%I', r.relname);
            action := 'dropped';
            partition_name := r.relname;
            RETURN NEXT;
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION hatchet.maintain_partitions(integer, integer) IS
    'create missing daily history partitions ahead of today and drop those past retention';

-- The first partitions exist as soon as the extension does, so enqueue works before the worker's first pass.
SELECT count(*) FROM hatchet.maintain_partitions();
