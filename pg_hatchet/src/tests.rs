//! In-backend tests (`cargo pgrx test`), run in a cluster that preloads pg_hatchet like production.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn enqueue_dequeue_complete_round_trip() {
        let id = Spi::get_one::<pgrx::Uuid>("SELECT hatchet.enqueue('pgtest', '{\"n\": 1}')")
            .unwrap()
            .unwrap();
        let status =
            Spi::get_one_with_args::<String>("SELECT hatchet.task_status($1)", &[id.into()])
                .unwrap();
        assert_eq!(status.as_deref(), Some("QUEUED"));
        let claimed =
            Spi::get_one::<pgrx::Uuid>("SELECT task_id FROM hatchet.dequeue('pgtest')").unwrap();
        assert_eq!(claimed, Some(id));
        Spi::run_with_args(
            "SELECT hatchet.complete($1, 0, '{\"ok\": true}')",
            &[id.into()],
        )
        .unwrap();
        let status =
            Spi::get_one_with_args::<String>("SELECT hatchet.task_status($1)", &[id.into()])
                .unwrap();
        assert_eq!(status.as_deref(), Some("COMPLETED"));
    }

    #[pg_test]
    fn library_is_preloaded_and_settings_exist() {
        let libs = Spi::get_one::<String>("SHOW shared_preload_libraries")
            .unwrap()
            .unwrap();
        assert!(libs.contains("pg_hatchet"));
        let poll = Spi::get_one::<String>("SHOW hatchet.poll_interval_ms")
            .unwrap()
            .unwrap();
        assert_eq!(poll, "100ms");
    }

    #[pg_test]
    fn background_worker_is_running() {
        // The worker registers from _PG_init only when preloaded and serves hatchet.database_name (this test
        // database). It may be between restarts when the test starts, so poll for up to 10 s.
        let mut seen = false;
        for _ in 0..100 {
            let n = Spi::get_one::<i64>(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_hatchet' AND datname = current_database()",
            )
            .unwrap()
            .unwrap();
            if n == 1 {
                seen = true;
                break;
            }
            // pg_stat_activity is a per-transaction snapshot unless cleared.
            Spi::run("SELECT pg_sleep(0.1), pg_stat_clear_snapshot()").unwrap();
        }
        assert!(seen, "the pg_hatchet background worker is not running");
    }

    #[pg_test]
    fn gen_id_is_v7_and_time_round_trips() {
        let ok = Spi::get_one::<bool>(
            "SELECT abs(extract(epoch FROM hatchet.uuid_time(hatchet.gen_id()) - now())) < 60",
        )
        .unwrap();
        assert_eq!(ok, Some(true));
        let v4 =
            Spi::get_one::<bool>("SELECT hatchet.uuid_time(gen_random_uuid()) IS NULL").unwrap();
        assert_eq!(v4, Some(true));
    }

    #[pg_test(error = "invalid duration \"5 minutes\"")]
    fn malformed_duration_is_an_error() {
        Spi::run("SELECT hatchet.parse_duration('5 minutes')").unwrap();
    }

    #[pg_test]
    fn due_backoff_is_promoted_by_the_worker() {
        // The worker runs in its own transactions, so commit-visible state is needed: use a dedicated queue and poll
        // hatchet.run_maintenance() ourselves instead (same code the worker runs), which is deterministic.
        let id = Spi::get_one::<pgrx::Uuid>(
            "SELECT hatchet.enqueue('pgtest_delay', run_at => clock_timestamp() + interval '50 milliseconds')",
        )
        .unwrap()
        .unwrap();
        let st = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM hatchet.delayed_queue WHERE task_id = $1)",
            &[id.into()],
        )
        .unwrap();
        assert_eq!(st, Some(true));
        Spi::run("SELECT pg_sleep(0.1)").unwrap();
        Spi::run("SELECT hatchet.run_maintenance()").unwrap();
        let st = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM hatchet.ready_queue WHERE task_id = $1)",
            &[id.into()],
        )
        .unwrap();
        assert_eq!(st, Some(true));
    }

    /// The resolver's trusted path (a superuser): what the API did before roles, a named tenant as named and no
    /// tenant as the default one; the caller is the session's role.
    #[pg_test]
    fn a_superuser_acts_for_any_tenant() {
        let same = Spi::get_one::<bool>("SELECT hatchet._tenant(NULL) = hatchet.default_tenant()")
            .unwrap();
        assert_eq!(same, Some(true));
        let named = Spi::get_one::<String>(
            "SELECT hatchet._tenant('00000000-0000-7000-8000-000000000123')::text",
        )
        .unwrap();
        assert_eq!(
            named.as_deref(),
            Some("00000000-0000-7000-8000-000000000123")
        );
        let me = Spi::get_one::<bool>(
            "SELECT hatchet._caller() = (SELECT oid FROM pg_roles WHERE rolname = session_user)",
        )
        .unwrap();
        assert_eq!(me, Some(true));
    }
}
