-- Streams: chunks a running task puts with `ctx.put_stream(...)` (PutStreamEvent), read back in order by whoever
-- subscribes to the run (SubscribeToWorkflowEvents). The chunks live in hatchet.stream_chunks, not in a server's
-- memory, so a chunk put through one server reaches a subscriber on another, and a subscriber that reconnects after a
-- server restart still gets what was put meanwhile. Every new chunk is announced on channel `hatchet_stream`
-- (payload: the run id).
--
-- Chunks are transient: hatchet.prune_stream_chunks (maintenance.sql) deletes them once their run has finished and a
-- grace period has passed (a subscriber that arrives just after the run finished still gets the whole stream).
--
-- Public: put_stream_chunk, read_stream_chunks, run_stream_state.
-- Calls: tenants.sql, runs.sql (run_status, run_tasks).

-- A chunk over hatchet.max_stream_chunk_bytes, or beyond hatchet.max_stream_chunks_per_task of one task, is refused
-- (54000) and not stored.
CREATE FUNCTION hatchet.put_stream_chunk(
    task_id     uuid,
    message     bytea,
    event_index bigint      DEFAULT NULL,
    tenant_id   uuid        DEFAULT NULL,
    created_at  timestamptz DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(put_stream_chunk.tenant_id);
    p_task   uuid := put_stream_chunk.task_id;
    v_run    uuid;
    v_retry  integer;
BEGIN
    IF p_task IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    IF put_stream_chunk.message IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['message']);
    END IF;
    PERFORM hatchet._check_size('stream chunk', octet_length(put_stream_chunk.message), 'hatchet.max_stream_chunk_bytes');
    IF put_stream_chunk.event_index < 0 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('event_index must not be negative, not %s', put_stream_chunk.event_index)]);
    END IF;
    SELECT t.run_id INTO v_run FROM hatchet.tasks t
    WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(p_task) AND t.id = p_task;
    IF v_run IS NULL THEN
        PERFORM hatchet.raise_error('unknown_task', ARRAY[p_task::text]);
    END IF;
    PERFORM hatchet._check_count('stream chunks', p_task, 'hatchet.max_stream_chunks_per_task',
        (SELECT count(*) FROM (SELECT 1 FROM hatchet.stream_chunks c
                               WHERE c.tenant_id = p_tenant AND c.run_id = v_run AND c.task_id = p_task
                               LIMIT current_setting('hatchet.max_stream_chunks_per_task')::integer) x));
    v_retry := coalesce((SELECT r.retry_count FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.task_id = p_task),
                        (SELECT max(e.retry_count) FROM hatchet.task_events e
                         WHERE e.tenant_id = p_tenant AND e.task_inserted_at = hatchet.uuid_time(p_task)
                           AND e.task_id = p_task),
                        0);
    INSERT INTO hatchet.stream_chunks (tenant_id, run_id, task_id, retry_count, event_index, message, created_at)
    VALUES (p_tenant, v_run, p_task, v_retry, put_stream_chunk.event_index, put_stream_chunk.message,
            coalesce(put_stream_chunk.created_at, clock_timestamp()))
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;  -- the same chunk again (a client retry): stored once
    END IF;
    PERFORM pg_notify('hatchet_stream', v_run::text);
    RETURN true;
END
$$;
COMMENT ON FUNCTION hatchet.put_stream_chunk(uuid, bytea, bigint, uuid, timestamptz) IS
    'append a stream chunk of a task to its run''s stream and NOTIFY hatchet_stream; false if it was already stored';

-- The chunks of a run after `after_seq`, in arrival order. `settled` tells a reader that every chunk up to this one
-- has certainly committed (older than `settle`), so it may stop re-reading before it: chunks put concurrently by two
-- tasks of a run can commit out of `seq` order, and a reader that only moved past the highest seq it saw could miss
-- the one that committed later.
CREATE FUNCTION hatchet.read_stream_chunks(
    run_id    uuid,
    after_seq bigint   DEFAULT 0,
    tenant_id uuid     DEFAULT NULL,
    settle    interval DEFAULT '5 seconds'
) RETURNS TABLE (seq bigint, task_id uuid, retry_count integer, event_index bigint, message bytea,
                 created_at timestamptz, settled boolean)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.seq, c.task_id, c.retry_count, c.event_index, c.message, c.created_at,
           c.created_at < pg_catalog.clock_timestamp() - read_stream_chunks.settle
    FROM hatchet.stream_chunks c
    WHERE c.tenant_id = hatchet._tenant(read_stream_chunks.tenant_id)
      AND c.run_id = read_stream_chunks.run_id
      AND c.seq > coalesce(read_stream_chunks.after_seq, 0)
    ORDER BY c.seq
$$;
COMMENT ON FUNCTION hatchet.read_stream_chunks(uuid, bigint, uuid, interval) IS
    'the stream chunks of a run after a sequence number, in arrival order';

-- What a run subscriber needs besides the chunks, in one round trip: the run's status and each created task's
-- status, output and error (hatchet.run_status / hatchet.run_tasks; raises for an unknown run).
CREATE FUNCTION hatchet.run_stream_state(run_id uuid, tenant_id uuid DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(run_stream_state.tenant_id);
    v_status text := hatchet.run_status(run_stream_state.run_id, p_tenant);
BEGIN
    RETURN jsonb_build_object(
        'status', v_status,
        'tasks', coalesce((
            SELECT jsonb_agg(jsonb_build_object('task_id', t.task_id, 'readable_id', t.readable_id,
                                                'status', t.status, 'retry_count', t.retry_count,
                                                'output', t.output, 'error', t.error)
                             ORDER BY t.created_at, t.task_id)
            FROM hatchet.run_tasks(run_stream_state.run_id, p_tenant) t
            WHERE t.task_id IS NOT NULL), '[]'::jsonb));
END
$$;
COMMENT ON FUNCTION hatchet.run_stream_state(uuid, uuid) IS
    'a run''s status and its tasks'' status, output and error, as one JSON object (for stream subscribers)';
