-- Before/after of the runs list's reads in SQL, on the cluster bench/dashboard.py --keep-dir loaded (psql -f this).
-- First create main's versions beside the new ones: from `git show main:sql/dashboard.sql`, the CREATE FUNCTION of
-- hatchet.run_status_counts and hatchet.dashboard_runs with the name changed to dashold.* (CREATE SCHEMA dashold).
-- Each page's reads run in sequence, old then new, 12 times; p50 and p90 per row at the end.
CREATE TEMP TABLE t(name text, side text, ms float8);
CREATE FUNCTION pg_temp.tm(name text, side text, q text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; BEGIN t0 := clock_timestamp(); EXECUTE q; INSERT INTO t VALUES (name, side, extract(epoch from clock_timestamp()-t0)*1000); END $$;
SELECT array_agg(external_id) AS wf FROM hatchet.workflows WHERE name = 'bench_dash' \gset
CREATE FUNCTION pg_temp.both(name text, args text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_temp.tm(name, 'old', format('SELECT (SELECT count(*) FROM dashold.dashboard_runs(%1$s "limit" => 51)) + (SELECT count(*) FROM dashold.run_status_counts(%2$s sample => 250))', args, regexp_replace(args, 'with_status => [^,]*,', '')));
  PERFORM pg_temp.tm(name, 'new', format('SELECT (SELECT count(*) FROM hatchet.dashboard_runs(%1$s "limit" => 51)) + (SELECT count(*) FROM unnest(ARRAY[''QUEUED'',''RUNNING'',''COMPLETED'',''FAILED'',''CANCELLED'']) s, hatchet.run_status_counts(%2$s up_to => 100, statuses => ARRAY[s]))', args, regexp_replace(args, 'with_status => [^,]*,', '')));
END $$;
SELECT count(*) FROM (
SELECT pg_temp.both('last 24 h', 'since => now() - interval ''24 hours'','),
       pg_temp.both('status QUEUED', 'with_status => ''QUEUED'','),
       pg_temp.both('status COMPLETED', 'with_status => ''COMPLETED'','),
       pg_temp.both('status FAILED', 'with_status => ''FAILED'','),
       pg_temp.both('metadata 1 in 1,000', format('metadata => ''{"customer": "c%s"}'',', (random()*999)::int)),
       pg_temp.both('metadata 1 in 1,000 + COMPLETED', format('with_status => ''COMPLETED'', metadata => ''{"customer": "c%s"}'',', (random()*999)::int)),
       pg_temp.both('metadata 1 in 1,000 + FAILED', format('with_status => ''FAILED'', metadata => ''{"customer": "c%s"}'',', (random()*999)::int)),
       pg_temp.both('metadata 1 in 4', format('metadata => ''{"region": "r%s"}'',', (random()*3)::int)),
       pg_temp.both('workflow + CANCELLED', format('with_status => ''CANCELLED'', workflow_ids => %L,', :'wf'))
FROM generate_series(1, 12)) x;
SELECT name, 
  round((percentile_cont(0.5) within group (order by ms) filter (where side='old'))::numeric,1) old_p50,
  round((percentile_cont(0.9) within group (order by ms) filter (where side='old'))::numeric,1) old_p90,
  round((percentile_cont(0.5) within group (order by ms) filter (where side='new'))::numeric,1) new_p50,
  round((percentile_cont(0.9) within group (order by ms) filter (where side='new'))::numeric,1) new_p90
FROM t GROUP BY name ORDER BY min(ctid);
