-- Harness smoke test: pg_regress loaded the extension (--load-extension=pg_hatchet) into a cluster that
-- preloads its library.
SELECT extname, extnamespace::regnamespace AS schema FROM pg_extension WHERE extname = 'pg_hatchet';
SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries';
