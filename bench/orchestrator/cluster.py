"""The scratch Postgres 15 cluster and Redis server every system runs against.

One cluster, one set of settings for every system (listed in SETTINGS and printed into results.md), started fresh
for each benchmark run under bench/work/pg. Postgres refuses to run as root, so initdb and pg_ctl run as the
`postgres` user through sudo when the orchestrator is root. Each system gets its own database, dropped and
recreated before every scenario run so no run inherits another's bloat.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import psycopg

PG_BIN = Path(os.environ.get("BENCH_PG_BIN", os.environ.get("HATCHET_PG_BIN_DIR", "/usr/lib/postgresql/15/bin")))
PG_SHAREDIR = Path(os.environ.get("BENCH_PG_SHAREDIR") or subprocess.run(
    [str(PG_BIN / "pg_config"), "--sharedir"], capture_output=True, text=True, check=True).stdout.strip())

# The same for every system. synchronous_commit stays on (the default): every system pays for durable commits.
# shared_buffers and max_wal_size are raised from the tiny defaults so checkpoints and buffer eviction do not
# dominate short runs; autovacuum_naptime 10 s as queue-tuning guides recommend (it applies to all systems).
SETTINGS = {
    "shared_buffers": "1GB",
    "max_connections": "200",
    "synchronous_commit": "on",
    "fsync": "on",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "autovacuum_naptime": "10s",
    "track_io_timing": "off",
    "log_min_messages": "warning",
    "listen_addresses": "''",
}


def hatchet_installed() -> bool:
    """pg_hatchet is available when its control file is in the server's extension directory."""
    return (PG_SHAREDIR / "extension" / "pg_hatchet.control").exists()


class Cluster:
    def __init__(self, work: Path, port: int, profile: bool = False):
        self.root = work.resolve() / "pg"
        self.data = self.root / "data"
        self.sock = self.root / "run"
        self.log = self.root / "postgres.log"
        self.port = port
        self.preload = hatchet_installed()
        self.settings = dict(SETTINGS)
        self.profile = profile
        preload = []
        if self.preload:
            preload.append("pg_hatchet")
            # pg_hatchet's background worker serves one database: the one its benchmark runs use.
            self.settings["hatchet.database_name"] = "'bench_pg_hatchet'"
        if profile:
            # --profile: per-statement time, including statements nested in PL/pgSQL functions. It costs a little
            # on every statement, so it is never on in a measuring run.
            preload.append("pg_stat_statements")
            self.settings["pg_stat_statements.track"] = "all"
            self.settings["pg_stat_statements.max"] = "5000"
        if preload:
            self.settings["shared_preload_libraries"] = "'" + ",".join(preload) + "'"
        for kv in filter(None, os.environ.get("BENCH_PG_SETTINGS", "").split(";")):
            k, _, v = kv.partition("=")
            self.settings[k.strip()] = v.strip()

    # ------------------------------------------------------------------------------------------ lifecycle
    def _as_postgres(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:
            args = ["sudo", "-u", "postgres", *args]
        return subprocess.run(args, check=True, **kw)

    def start(self) -> None:
        self.stop(quiet=True)
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        self.sock.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
        self._as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                           "-E", "UTF8", "--locale=C", "--no-sync"], stdout=subprocess.DEVNULL)
        conf = "\n".join(f"{k} = {v}" for k, v in self.settings.items())
        conf += f"\nport = {self.port}\nunix_socket_directories = '{self.sock}'\n"
        tmp = self.root / "bench.conf"
        tmp.write_text(conf)
        self._as_postgres(["sh", "-c", f"cat {tmp} >> {self.data}/postgresql.conf"])
        self.start_existing()

    def start_existing(self) -> None:
        """Starts the cluster that start() made, as it was left by stop()."""
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                           "start"], stdout=subprocess.DEVNULL)

    def stop(self, quiet: bool = False) -> None:
        if not (self.data / "postmaster.pid").exists():
            return
        try:
            self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if quiet else None)
        except subprocess.CalledProcessError:
            if not quiet:
                raise

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    # ------------------------------------------------------------------------------------------ access
    def conninfo(self, db: str) -> str:
        return f"host={self.sock} port={self.port} user=postgres dbname={db}"

    def url(self, db: str) -> str:
        return f"postgresql://postgres@/{db}?host={self.sock}&port={self.port}"

    def connect(self, db: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.conninfo(db), autocommit=True)

    def version(self) -> str:
        with self.connect() as c:
            return c.execute("SELECT version()").fetchone()[0]

    def recreate_db(self, db: str, extensions: tuple[str, ...] = ()) -> None:
        with self.connect() as c:
            c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            c.execute(f'CREATE DATABASE "{db}"')
        if self.profile:
            extensions = (*extensions, "pg_stat_statements")
        if extensions:
            with self.connect(db) as c:
                for ext in extensions:
                    c.execute(f'CREATE EXTENSION IF NOT EXISTS "{ext}"')

    # ------------------------------------------------------------------------------------------ counters
    def counters(self, db: str) -> dict:
        """Cluster WAL position and the database's transaction counters. Backends report their counters when
        they finish a transaction (at most once a second) and at exit, so callers read this after the driver
        process has exited and the stats snapshot is cleared."""
        with self.connect(db) as c:
            c.execute("SELECT pg_stat_clear_snapshot()")
            row = c.execute(
                "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, xact_commit, xact_rollback, "
                "       (SELECT wal_records FROM pg_stat_wal), (SELECT wal_fpi FROM pg_stat_wal) "
                "  FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()
        return {"wal_bytes": int(row[0]), "xact_commit": int(row[1]), "xact_rollback": int(row[2]),
                "wal_records": int(row[3]), "wal_fpi": int(row[4])}

    def dead_tuples(self, db: str) -> dict:
        """Live and dead tuples and total size of every user table in the database."""
        with self.connect(db) as c:
            c.execute("SELECT pg_stat_clear_snapshot()")
            row = c.execute(
                "SELECT coalesce(sum(n_dead_tup), 0), coalesce(sum(n_live_tup), 0), "
                "       coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_stat_user_tables"
            ).fetchone()
        return {"dead_tuples": int(row[0]), "live_tuples": int(row[1]), "table_bytes": int(row[2])}

    def profile_reset(self, db: str) -> None:
        if self.profile:
            with self.connect(db) as c:
                c.execute("SELECT pg_stat_statements_reset()")

    def profile_top(self, db: str, limit: int = 15) -> list[dict]:
        """The statements of `db` that took the most execution time since the last reset (--profile only)."""
        if not self.profile:
            return []
        with self.connect(db) as c:
            rows = c.execute(
                "SELECT toplevel, calls, round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 4), rows,"
                "       shared_blks_hit + shared_blks_read, wal_bytes, left(regexp_replace(query, '\\s+', ' ', 'g'), 300)"
                "  FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " ORDER BY total_exec_time DESC LIMIT %s", (limit,)).fetchall()
        keys = ("toplevel", "calls", "total_ms", "mean_ms", "rows", "blocks", "wal_bytes", "query")
        out = []
        for r in rows:
            d = dict(zip(keys, r))
            d["total_ms"], d["mean_ms"], d["wal_bytes"] = float(d["total_ms"]), float(d["mean_ms"]), int(d["wal_bytes"])
            out.append(d)
        return out

    def vacuum_and_count(self, db: str) -> int:
        """Runs VACUUM on the database and returns the dead tuples it could not remove."""
        with self.connect(db) as c:
            c.execute("VACUUM")
        return self.dead_tuples(db)["dead_tuples"]

    def wait_stats_flushed(self, db: str, keep: tuple[int, ...] = ()) -> None:
        """Waits until no client backend but `keep` (pids) is connected to `db`: exiting backends flush their
        statistics."""
        with self.connect() as c:
            for _ in range(200):
                n = c.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'"
                    " AND pid <> pg_backend_pid() AND pid <> ALL(%s)", (db, list(keep))).fetchone()[0]
                if n == 0:
                    return
                time.sleep(0.025)


class Redis:
    """A throwaway redis-server (Debian package) for Celery: no persistence files in the repo, its own port."""

    def __init__(self, work: Path, port: int, profile: bool = False):
        self.dir = work.resolve() / "redis"
        self.port = port
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        # Debian's default persistence (RDB snapshots, no AOF) is kept; the dump goes to bench/work/redis.
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "no", "--save", "3600 1 300 100 60 10000", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL)
        import redis  # from the venv

        r = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                r.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.025)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def version(self) -> str:
        import redis

        return redis.Redis(port=self.port).info()["redis_version"]
