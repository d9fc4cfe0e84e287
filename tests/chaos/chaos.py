"""The chaos harness (issue 16): a scratch Postgres 15 with pg_hatchet preloaded, three `hatchet-server serve`
replicas on it, real hatchet-sdk workers and load generators for two tenants spread across the replicas, faults at
random moments from a fixed seed, then quiescing, a dump of the engine's records and the history checker (check.py).

    python chaos.py --minutes N --seed S [--short] [--keep]

Everything a run leaves goes to tests/output/chaos/: logs of every process, the ledger (ledger/*.jsonl, one line per
start and end of every task execution), the acknowledged triggers (acks/*.jsonl), the faults (faults.jsonl), the
liveness measurements (recoveries.jsonl) and the engine dump (engine/*.json). `python check.py tests/output/chaos`
checks a finished run again.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import flows_constants as fc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = Path(os.environ.get("CHAOS_OUTPUT", ROOT / "tests" / "output" / "chaos"))
PG_BIN = Path(os.environ.get("HATCHET_PG_BIN_DIR", "/usr/lib/postgresql/15/bin"))
DB = "chaos"
TENANT_A = "707d0855-80ab-4e1f-a156-f1c4546cbf52"  # the default tenant
TENANT_B = "3c0ffee0-0000-4000-8000-00000000000b"
# Lowered from the default 30 s so that the long faults (stops, the long postmaster outage) outlast it quickly.
DEAD_AFTER_S = 10
LONG_FAULT_S = DEAD_AFTER_S + 5
FAULT_KINDS = [
    "worker_kill", "server_kill", "server_kill_mid_assign", "server_stop", "worker_stop", "pg_terminate", "backend_kill",
    "postmaster_kill", "postmaster_kill_long", "pg_wal_full", "server_kill_left_dead",
]
# pg_wal lives on a tmpfs of this size (initdb --waldir); the pg_wal_full fault fills it. max_wal_size keeps normal
# use far below it.
WAL_FS_SIZE = "384m"
TS_DIR = ROOT / "tests" / "e2e" / "ts"


def log(msg: str) -> None:
    print(f"chaos {time.strftime('%H:%M:%S')} {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except Exception:
        return False


def append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record, separators=(",", ":")) + "\n")


class Postgres:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.data = workdir / "pgdata"
        self.port = free_port()
        self.logfile = OUT / "postgres.log"
        # The tmpfs that holds pg_wal (None: it could not be mounted, the pg_wal_full fault is left out).
        self.walfs: Path | None = None

    def mount_walfs(self) -> None:
        walfs = self.dir / "walfs"
        walfs.mkdir()
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={WAL_FS_SIZE},mode=0755", "tmpfs", str(walfs)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            log(f"cannot mount a tmpfs for pg_wal ({out.stderr.strip()}); pg_wal_full is left out")
            return
        self.walfs = walfs
        if os.geteuid() == 0:
            shutil.chown(walfs, "postgres")

    def unmount_walfs(self) -> None:
        if self.walfs is not None:
            subprocess.run(["umount", "-l", str(self.walfs)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.walfs = None

    def init(self) -> None:
        self.mount_walfs()
        waldir = ["--waldir", str(self.walfs / "pg_wal")] if self.walfs else []
        subprocess.run(as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                                    *waldir]), check=True, stdout=subprocess.DEVNULL)
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(
                "shared_preload_libraries = 'pg_hatchet'\n"
                f"hatchet.database_name = '{DB}'\n"
                f"hatchet.worker_dead_after_ms = {DEAD_AFTER_S * 1000}\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.dir}'\n"
                "listen_addresses = '127.0.0.1'\n"
                "fsync = off\n"
                "max_connections = 200\n"
                "max_wal_size = '96MB'\n"
                "min_wal_size = '32MB'\n"
                "log_line_prefix = '%m [%p] %b '\n"
                # Evidence for the checker's failures: a lock wait longer than deadlock_timeout (1 s) is logged with
                # the statement waiting and the process holding the lock.
                "log_lock_waits = on\n"
            )
        # The log is written by postgres; OUT belongs to root.
        self.logfile.touch()
        shutil.chown(self.logfile, "postgres") if os.geteuid() == 0 else None

    def start(self) -> None:
        subprocess.run(as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile), "-w",
                                    "-t", "60", "start"]), check=True, stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        subprocess.run(as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-m", "immediate", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DB}"

    def psql(self, sql: str, db: str = DB, timeout: float = 60) -> str:
        out = subprocess.run(
            ["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-h", str(self.dir), "-p", str(self.port), "-U", "postgres",
             "-d", db, "-c", sql],
            capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr.strip()}")
        return out.stdout.strip()

    def try_psql(self, sql: str, timeout: float = 5) -> str | None:
        try:
            return self.psql(sql, timeout=timeout)
        except Exception:
            return None

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def children(self, ppid: int) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(ppid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def wait_ready(self, timeout: float) -> float | None:
        """Seconds until a query succeeds, or None."""
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.try_psql("SELECT 1", timeout=3) == "1":
                return time.time()
            time.sleep(0.1)
        return None

    def wait_bgworker(self, timeout: float) -> float | None:
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.try_psql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_hatchet'") == "1":
                return time.time()
            time.sleep(0.1)
        return None


class Proc:
    """A child process in its own session (so a signal reaches the SDK's helper processes too)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.name, self.argv, self.env, self.cwd = name, argv, env, cwd
        self.popen: subprocess.Popen | None = None
        self.stopped = False
        self.incarnation = 0

    def start(self) -> None:
        self.incarnation += 1
        logf = open(OUT / "logs" / f"{self.name}.log", "a")
        logf.write(f"==== start {self.incarnation} at {time.time():.3f}\n")
        logf.flush()
        self.popen = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=logf, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        logf.close()
        self.stopped = False

    def signal(self, sig: int) -> None:
        if self.popen is not None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def terminate(self, grace: float = 10) -> None:
        if self.stopped:
            self.signal(signal.SIGCONT)
        if not self.alive():
            return
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill9()


class Harness:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.workdir = Path(tempfile.mkdtemp(prefix="pg_hatchet-chaos."))
        self.workdir.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
        self.pg = Postgres(self.workdir)
        self.server_bin = Path(args.server_bin)
        self.replicas: list[dict] = []
        self.servers: list[Proc] = []
        self.dead_replicas: set[int] = set()
        self.workers: dict[str, Proc] = {}
        self.worker_replica: dict[str, int] = {}
        self.loaders: dict[str, Proc] = {}
        self.loader_replica: dict[str, int] = {}
        self.tokens: dict[str, str] = {}
        self.stop_file = self.workdir / "stop-load"
        self.fault_seq = 0

    # ------------------------------------------------------------------------------------------------ setup

    def setup(self) -> None:
        if OUT.exists():
            shutil.rmtree(OUT)
        for sub in ("logs", "ledger", "acks", "engine"):
            (OUT / sub).mkdir(parents=True)
        log(f"cluster in {self.workdir}, output in {OUT}")
        self.pg.init()
        self.pg.start()
        self.pg.psql(f"CREATE DATABASE {DB}", db="postgres")
        self.pg.psql("CREATE EXTENSION pg_hatchet")
        self.pg.psql(f"INSERT INTO hatchet.tenants (tenant_id, name) VALUES ('{TENANT_B}', 'chaos-b')")
        for tenant in (TENANT_A, TENANT_B):
            self.pg.psql(f"SELECT hatchet.put_rate_limit('{fc.RATE_LIMIT_KEY}', {fc.RATE_LIMIT_PER_SECOND}, 'SECOND', "
                         f"'{tenant}')")
        if self.pg.wait_bgworker(30) is None:
            raise RuntimeError("the pg_hatchet background worker did not start")
        for i in range(3):
            grpc, http = free_port(), free_port()
            self.replicas.append({"grpc": grpc, "http": http})
            # hatchet_server::dispatch (not its assigner and completer loops) at debug: each push to a worker's stream
            # (or its wait for a reconnect) and each STARTED is logged, so that an attempt released as unacknowledged
            # can be told from one never delivered.
            rust_log = "info,sqlx=warn,hatchet_server::dispatch=debug,hatchet_server::dispatch::assigner=info," \
                       "hatchet_server::dispatch::completer=info"
            env = dict(os.environ, RUST_LOG=rust_log, DATABASE_URL=self.pg.url)
            proc = Proc(f"server{i}", [str(self.server_bin), "serve", "--grpc-addr", f"127.0.0.1:{grpc}",
                                       "--http-addr", f"127.0.0.1:{http}", "--max-connections", "10"], env, ROOT)
            self.servers.append(proc)
            proc.start()
        for i in range(3):
            self.wait_server(i, 60)
        for label, tenant in (("a", TENANT_A), ("b", TENANT_B)):
            out = subprocess.run(
                [str(self.server_bin), "token", "create", "--tenant", tenant, "--name", "chaos",
                 "--server-url", f"http://127.0.0.1:{self.replicas[0]['http']}",
                 "--grpc-broadcast-address", f"127.0.0.1:{self.replicas[0]['grpc']}", "--database-url", self.pg.url],
                capture_output=True, text=True, check=True)
            self.tokens[label] = out.stdout.strip().splitlines()[-1]
        # Workers: three per tenant, one on each replica; tenant A's declare the every-second cron.
        for label in ("a", "b"):
            for i in range(3):
                name = f"{label}-w{i}"
                extra = ["cron"] if label == "a" else []
                self.worker_replica[name] = i
                self.workers[name] = Proc(name, [sys.executable, str(HERE / "worker.py"), name, "8", *extra],
                                          self.sdk_env(label, i), HERE)
                self.workers[name].start()
        # A TypeScript worker per tenant (tenant A's on replica 1, B's on replica 2), serving chaos-ts.
        if not (TS_DIR / "node_modules" / "@hatchet-dev" / "typescript-sdk").is_dir():
            raise RuntimeError(f"the TypeScript SDK is not installed in {TS_DIR} (npm ci there)")
        for label, i in (("a", 1), ("b", 2)):
            name = f"{label}-ts"
            self.worker_replica[name] = i
            self.workers[name] = Proc(name, ["node", str(HERE / "ts_worker.js"), name, "8"], self.sdk_env(label, i),
                                      HERE)
            self.workers[name].start()
        self.wait_workers(90)
        for label, rate in (("a", self.args.rate), ("b", self.args.rate * 0.6)):
            for i in range(3):
                name = f"{label}-l{i}"
                self.loader_replica[name] = i
                seed = self.args.seed * 100 + (0 if label == "a" else 50) + i
                self.loaders[name] = Proc(
                    name, [sys.executable, str(HERE / "load.py"), name, str(seed), str(rate),
                           str(OUT / "acks" / f"{name}.jsonl"), str(self.stop_file)], self.loader_env(label, i), HERE)
                self.loaders[name].start()

    def sdk_env(self, label: str, replica: int) -> dict[str, str]:
        r = self.replicas[replica]
        return dict(
            os.environ,
            HATCHET_CLIENT_TOKEN=self.tokens[label],
            HATCHET_CLIENT_HOST_PORT=f"127.0.0.1:{r['grpc']}",
            HATCHET_CLIENT_SERVER_URL=f"http://127.0.0.1:{r['http']}",
            HATCHET_CLIENT_TLS_STRATEGY="none",
            CHAOS_TENANT=label,
            CHAOS_LEDGER_DIR=str(OUT / "ledger"),
            PYTHONUNBUFFERED="1",
            NODE_PATH=str(TS_DIR / "node_modules"),
        )

    def loader_env(self, label: str, replica: int) -> dict[str, str]:
        # A trigger that fails is simply not acknowledged: fail fast instead of retrying for a minute.
        return dict(self.sdk_env(label, replica), HATCHET_CLIENT_TENACITY_MAX_ATTEMPTS="2")

    def wait_server(self, i: int, timeout: float) -> float:
        t0 = time.time()
        while time.time() - t0 < timeout:
            if not self.servers[i].alive():
                raise RuntimeError(f"server{i} exited; see {OUT / 'logs' / f'server{i}.log'}")
            if http_ok(f"http://127.0.0.1:{self.replicas[i]['http']}/health"):
                return time.time() - t0
            time.sleep(0.1)
        raise RuntimeError(f"server{i} did not become healthy in {timeout}s")

    def wait_workers(self, timeout: float) -> None:
        t0 = time.time()
        names = sorted(self.workers)
        while time.time() - t0 < timeout:
            got = self.pg.try_psql("SELECT string_agg(DISTINCT name, ',') FROM hatchet.workers WHERE is_active "
                                   "AND last_heartbeat_at > now() - interval '8 seconds'") or ""
            if set(names) <= set(got.split(",")):
                log(f"{len(names)} workers registered in {time.time() - t0:.1f}s")
                return
            for name in names:
                if not self.workers[name].alive():
                    raise RuntimeError(f"worker {name} exited; see {OUT / 'logs' / f'{name}.log'}")
            time.sleep(0.5)
        raise RuntimeError(f"workers did not all register in {timeout}s (got {got})")

    # ------------------------------------------------------------------------------------------------ faults

    def live_replicas(self) -> list[int]:
        return [i for i in range(3) if i not in self.dead_replicas]

    def record_fault(self, kind: str, target: str, t0: float, t1: float, affects: list[str], **extra) -> None:
        self.fault_seq += 1
        rec = {"id": self.fault_seq, "kind": kind, "target": target, "t0": t0, "t1": t1, "affects": affects, **extra}
        append_jsonl(OUT / "faults.jsonl", rec)
        log(f"fault {self.fault_seq} {kind} {target}: {t1 - t0:.1f}s {extra if extra else ''}")

    def workers_on(self, replica: int) -> list[str]:
        return [w for w, r in self.worker_replica.items() if r == replica]

    def recovered(self, kind: str, t_down: float) -> dict:
        """After Postgres came back: when it answered, when the background worker was back (None: not in 60 s)."""
        t_ready = self.pg.wait_ready(120)
        t_bg = self.pg.wait_bgworker(60)
        rec = {"kind": kind, "t_down": t_down, "t_ready": t_ready, "t_bgworker": t_bg}
        append_jsonl(OUT / "recoveries.jsonl", rec)
        return {k: v for k, v in rec.items() if k != "kind"}

    def burst(self, prefix: str, per_tenant: int) -> int:
        """Triggers per_tenant short chaos-single runs per tenant in one statement; acknowledged like the loaders'."""
        n = 0
        for label, tenant in (("a", TENANT_A), ("b", TENANT_B)):
            out = self.pg.try_psql(
                f"SELECT string_agg(hatchet.run_workflow('chaos-single', jsonb_build_object('key', "
                f"'{prefix}-{label}-' || i, 'ms', 200), tenant_id => '{tenant}')::text, ',') "
                f"FROM generate_series(1, {per_tenant}) i", timeout=10)
            t = time.time()
            for i, run_id in enumerate((out or "").split(",") if out else []):
                append_jsonl(OUT / "acks" / "harness.jsonl", {
                    "tenant": label, "loader": "harness", "replica": "sql", "wf": "single",
                    "key": f"{prefix}-{label}-{i + 1}", "kind": "run", "id": run_id, "t0": t, "t1": t})
                n += 1
        return n

    def inject(self, kind: str) -> None:
        rng = self.rng
        t0 = time.time()
        if kind == "worker_kill":
            name = rng.choice(sorted(self.workers))
            self.workers[name].kill9()
            time.sleep(rng.uniform(0.5, 3))
            self.workers[name].start()
            self.record_fault(kind, name, t0, time.time(), [name])
        elif kind == "worker_stop":
            name = rng.choice(sorted(self.workers))
            self.workers[name].signal(signal.SIGSTOP)
            self.workers[name].stopped = True
            time.sleep(LONG_FAULT_S)
            self.workers[name].signal(signal.SIGCONT)
            self.workers[name].stopped = False
            self.record_fault(kind, name, t0, time.time(), [name])
        elif kind == "server_kill":
            i = rng.choice(self.live_replicas())
            # A burst first, so that the replica is likely killed between committing an assignment and pushing it.
            burst = self.burst(f"burst{self.fault_seq + 1}", 20)
            time.sleep(rng.uniform(0.05, 0.5))
            self.servers[i].kill9()
            time.sleep(rng.uniform(0.5, 3))
            self.servers[i].start()
            self.wait_server(i, 60)
            self.record_fault(kind, f"server{i}", t0, time.time(), self.workers_on(i), burst=burst)
        elif kind == "server_kill_mid_assign":
            # The replica dies while its hatchet.assign statement waits for a lock: once the lock is gone the
            # statement commits, and its answer goes nowhere (an assignment committed but never pushed).
            i = rng.choice(self.live_replicas())
            locker = subprocess.Popen(
                ["psql", "-X", "-qAt", "-h", str(self.pg.dir), "-p", str(self.pg.port), "-U", "postgres", "-d", DB],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            locker.stdin.write("BEGIN;\nLOCK TABLE hatchet.worker_slots IN SHARE ROW EXCLUSIVE MODE;\n"
                               "SELECT 'locked';\n")
            locker.stdin.flush()
            locker.stdout.readline()
            burst = self.burst(f"burst{self.fault_seq + 1}", 20)
            time.sleep(1.5)
            waiting = self.pg.psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                   "AND query LIKE '%hatchet.assign%'")
            self.servers[i].kill9()
            time.sleep(0.5)
            locker.stdin.write("ROLLBACK;\n")
            locker.stdin.close()
            locker.wait(timeout=30)
            time.sleep(rng.uniform(0.5, 2))
            self.servers[i].start()
            self.wait_server(i, 60)
            self.record_fault(kind, f"server{i}", t0, time.time(), self.workers_on(i), burst=burst,
                              assign_calls_waiting=int(waiting))
        elif kind == "server_stop":
            i = rng.choice(self.live_replicas())
            self.servers[i].signal(signal.SIGSTOP)
            self.servers[i].stopped = True
            time.sleep(LONG_FAULT_S)
            self.servers[i].signal(signal.SIGCONT)
            self.servers[i].stopped = False
            self.record_fault(kind, f"server{i}", t0, time.time(), self.workers_on(i))
        elif kind == "server_kill_left_dead":
            live = self.live_replicas()
            i = rng.choice([r for r in live if r != 0] or live)
            self.servers[i].kill9()
            self.dead_replicas.add(i)
            affected = self.workers_on(i)
            time.sleep(3)
            # What a load balancer would do: the SDK processes of the dead replica move to a live one.
            target = self.live_replicas()[0]
            for name in affected:
                self.workers[name].terminate(grace=5)
                self.worker_replica[name] = target
                label = name.split("-")[0]
                self.workers[name].env = self.sdk_env(label, target)
                self.workers[name].start()
            for name, r in list(self.loader_replica.items()):
                if r == i:
                    self.loaders[name].terminate(grace=5)
                    self.loader_replica[name] = target
                    self.loaders[name].env = self.loader_env(name.split("-")[0], target)
                    self.loaders[name].start()
            self.record_fault(kind, f"server{i}", t0, time.time(), affected, moved_to=f"server{target}")
        elif kind == "pg_terminate":
            n = self.pg.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                             "WHERE client_addr IS NOT NULL AND pid <> pg_backend_pid()")
            self.record_fault(kind, "server connections", t0, time.time(), ["*"], terminated=int(n))
        elif kind == "backend_kill":
            pids = self.pg.psql("SELECT pid FROM pg_stat_activity WHERE client_addr IS NOT NULL").split()
            if not pids:
                return
            pid = int(rng.choice(pids))
            t_down = time.time()
            os.kill(pid, signal.SIGKILL)
            time.sleep(1)
            rec = self.recovered(kind, t_down)
            self.record_fault(kind, f"backend {pid}", t0, time.time(), ["*"], **rec)
        elif kind in ("postmaster_kill", "postmaster_kill_long"):
            pm = self.pg.postmaster_pid()
            children = self.pg.children(pm)
            t_down = time.time()
            os.kill(pm, signal.SIGKILL)
            time.sleep(2 if kind == "postmaster_kill" else LONG_FAULT_S)
            # Orphaned backends exit once they notice the postmaster is gone; a restart needs them gone.
            deadline = time.time() + 10
            while time.time() < deadline and any(Path(f"/proc/{c}").exists() for c in children):
                time.sleep(0.2)
            leftovers = [c for c in children if Path(f"/proc/{c}").exists()]
            for c in leftovers:
                try:
                    os.kill(c, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.3)
            self.pg.start()
            rec = self.recovered(kind, t_down)
            self.record_fault(kind, f"postmaster {pm}", t0, time.time(), ["*"], leftovers=len(leftovers), **rec)
        elif kind == "pg_wal_full":
            self.fill_wal(t0)
        else:
            raise ValueError(kind)

    def postmaster_alive(self) -> bool:
        try:
            return Path(f"/proc/{self.pg.postmaster_pid()}").exists()
        except (OSError, ValueError, IndexError):
            return False

    def fill_wal(self, t0: float) -> None:
        """pg_wal's volume fills up: a file takes every free byte, then WAL is written (a table filled, segments
        switched) until Postgres cannot create a WAL segment and stops (PANIC). The space is given back and Postgres
        restarted (or left to finish its own crash restart). The engine must have stopped cleanly and resume."""
        assert self.pg.walfs is not None
        filler = self.pg.walfs / "filler"
        chunk = b"\0" * (1 << 20)
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(chunk)
                    f.flush()
            except OSError:
                pass
        filled = filler.stat().st_size
        log_from = self.pg.logfile.stat().st_size
        deadline = time.time() + 90
        t_stopped = None
        self.pg.try_psql("CREATE TABLE IF NOT EXISTS public.chaos_wal_filler (x text)", timeout=10)
        while time.time() < deadline:
            out = self.pg.try_psql("INSERT INTO public.chaos_wal_filler SELECT repeat('x', 1000) "
                                   "FROM generate_series(1, 20000); SELECT pg_switch_wal()", timeout=20)
            if out is None and self.pg.try_psql("SELECT 1", timeout=3) is None:
                t_stopped = time.time()
                break
        time.sleep(2)
        filler.unlink()
        t_space = time.time()
        # The postmaster may be in its own crash restart (it then finishes it), or have given up when the startup
        # process could not write the end-of-recovery checkpoint (then it is started again).
        pm_alive = self.postmaster_alive()
        wait_until = time.time() + 30
        while time.time() < wait_until and self.pg.try_psql("SELECT 1", timeout=3) is None:
            if not self.postmaster_alive():
                self.pg.start()
                break
            time.sleep(0.2)
        rec = self.recovered("pg_wal_full", t0)
        with open(self.pg.logfile, errors="replace") as f:
            f.seek(log_from)
            text = f.read()
        enospc = sum(1 for line in text.splitlines() if "No space left on device" in line)
        panics = sum(1 for line in text.splitlines() if " PANIC: " in line)
        self.pg.try_psql("DROP TABLE IF EXISTS public.chaos_wal_filler", timeout=30)
        self.record_fault("pg_wal_full", f"pg_wal ({WAL_FS_SIZE} tmpfs)", t0, time.time(), ["*"], filled=filled,
                          t_stopped=t_stopped, t_space=t_space, postmaster_survived=pm_alive,
                          enospc_log_lines=enospc, panic_log_lines=panics, **rec)

    def schedule(self, seconds: float) -> list[tuple[float, str]]:
        """(offset, kind) pairs: every kind at least once (the left-dead replica in the last third), then more at
        random in long runs."""
        kinds = [k for k in FAULT_KINDS if k != "server_kill_left_dead"
                 and (k != "pg_wal_full" or self.pg.walfs is not None)]
        self.rng.shuffle(kinds)
        if not self.args.short:
            extra = max(0, int(seconds / self.args.fault_every) - len(FAULT_KINDS))
            weights = {"worker_kill": 5, "server_kill": 3, "server_kill_mid_assign": 1, "server_stop": 1,
                       "worker_stop": 1, "pg_terminate": 3, "backend_kill": 2, "postmaster_kill": 2,
                       "postmaster_kill_long": 0.3, "pg_wal_full": 0.3}
            if self.pg.walfs is None:
                del weights["pg_wal_full"]
            kinds += self.rng.choices(list(weights), weights=list(weights.values()), k=extra)
            self.rng.shuffle(kinds)
        pos = min(len(kinds), max(1, int(len(kinds) * 0.7)))
        kinds.insert(pos, "server_kill_left_dead")
        return kinds

    def run_faults(self, seconds: float) -> None:
        kinds = self.schedule(seconds)
        end = time.time() + seconds
        slot = seconds / (len(kinds) + 1)
        log(f"{len(kinds)} faults over {seconds:.0f}s")
        for k, kind in enumerate(kinds):
            # a random moment in this fault's slot
            due = end - seconds + slot * (k + self.rng.uniform(0.5, 1.0))
            while time.time() < due:
                time.sleep(0.1)
                self.revive_crashed()
            try:
                self.inject(kind)
            except Exception as err:
                log(f"fault {kind} raised {type(err).__name__}: {err}")
                append_jsonl(OUT / "faults.jsonl", {"id": None, "kind": kind, "error": str(err), "t0": time.time()})
        while time.time() < end:
            time.sleep(0.2)
            self.revive_crashed()

    def revive_crashed(self) -> None:
        """An SDK process or Postgres that died by itself (not by a fault) is restarted and logged."""
        try:
            pm_alive = Path(f"/proc/{self.pg.postmaster_pid()}").exists()
        except (OSError, ValueError, IndexError):
            pm_alive = False
        if not pm_alive:
            log("Postgres exited by itself; restarting (see postgres.log)")
            t_down = time.time()
            self.pg.start()
            rec = self.recovered("postgres_died", t_down)
            append_jsonl(OUT / "faults.jsonl", {"id": None, "kind": "postgres_died", "t0": t_down, **rec})
        for group in (self.workers, self.loaders):
            for name, proc in group.items():
                if not proc.alive() and not self.stop_file.exists():
                    log(f"{name} exited by itself ({proc.popen.returncode}); restarting")
                    append_jsonl(OUT / "faults.jsonl", {"id": None, "kind": "self_exit", "target": name,
                                                        "t0": time.time(), "rc": proc.popen.returncode})
                    proc.start()

    # ------------------------------------------------------------------------------------------------ quiesce

    def quiesce(self, timeout: float) -> None:
        self.stop_file.touch()
        t0 = time.time()
        for proc in self.loaders.values():
            try:
                proc.popen.wait(timeout=max(1, 30 - (time.time() - t0)))
            except subprocess.TimeoutExpired:
                proc.kill9()
        t_cron_off = time.time()
        self.pg.psql("UPDATE hatchet.crons SET enabled = false")
        append_jsonl(OUT / "faults.jsonl", {"id": None, "kind": "quiesce", "t0": t0, "t_cron_off": t_cron_off})
        log("load stopped; waiting for the engine to drain")
        # Acknowledged runs still going, and every attempt in a hot table.
        busy_sql = ("SELECT (SELECT count(*) FROM hatchet.ready_queue) + (SELECT count(*) FROM hatchet.delayed_queue)"
                    " + (SELECT count(*) FROM hatchet.concurrency_queue) + (SELECT count(*) FROM hatchet.running)"
                    " + (SELECT count(*) FROM hatchet.matches)")
        deadline = time.time() + timeout
        busy = None
        while time.time() < deadline:
            self.revive_crashed_workers()
            busy = self.pg.try_psql(busy_sql, timeout=10)
            if busy == "0":
                break
            time.sleep(1)
        log(f"drained in {time.time() - t_cron_off:.0f}s (in flight: {busy})")
        # Let the reaper see every worker that died in a fault.
        time.sleep(DEAD_AFTER_S + 3)

    def revive_crashed_workers(self) -> None:
        for name, proc in self.workers.items():
            if not proc.alive():
                proc.start()

    def dump_engine(self) -> None:
        queries = {
            "tasks": """SELECT t.tenant_id, t.id, t.run_id, t.queue, t.readable_id, t.input->>'key' AS key,
                               extract(epoch FROM t.inserted_at) AS inserted_at, t.retries,
                               hatchet.task_status(t.id, t.tenant_id) AS status FROM hatchet.tasks t""",
            "task_events": """SELECT tenant_id, task_id, retry_count, event_type, extract(epoch FROM created_at) AS
                                     created_at, extract(epoch FROM assigned_at) AS assigned_at, worker_id,
                                     worker_name, reason FROM hatchet.task_events""",
            "runs": """SELECT r.tenant_id, r.id, r.triggered_by, r.input->>'key' AS key, r.parent_task_id, r.child_key,
                              r.additional_metadata->>'hatchet__scheduled_at' AS scheduled_at,
                              extract(epoch FROM r.inserted_at) AS inserted_at,
                              hatchet.run_status(r.id, r.tenant_id) AS status,
                              (SELECT w.name FROM hatchet.workflow_versions v JOIN hatchet.workflows w
                                 ON w.tenant_id = v.tenant_id AND w.id = v.workflow_id
                               WHERE v.tenant_id = r.tenant_id AND v.id = r.workflow_version_id) AS workflow
                       FROM hatchet.runs r""",
            "workers": """SELECT tenant_id, id, name, is_active, extract(epoch FROM last_heartbeat_at) AS
                                 last_heartbeat_at, extract(epoch FROM created_at) AS created_at FROM hatchet.workers""",
            "running": "SELECT *, extract(epoch FROM assigned_at) AS assigned_epoch FROM hatchet.running",
            "ready_queue": "SELECT * FROM hatchet.ready_queue",
            "delayed_queue": "SELECT * FROM hatchet.delayed_queue",
            "concurrency_queue": "SELECT * FROM hatchet.concurrency_queue",
            "concurrency_slots": "SELECT * FROM hatchet.concurrency_slots",
            "concurrency_groups": "SELECT * FROM hatchet.concurrency_groups",
            "worker_slots": """SELECT s.*, w.name, w.is_active FROM hatchet.worker_slots s
                               JOIN hatchet.workers w ON w.tenant_id = s.tenant_id AND w.id = s.worker_id""",
            "matches": "SELECT * FROM hatchet.matches",
            "scheduled_runs": "SELECT tenant_id, id, fired_run_id, extract(epoch FROM run_at) AS run_at "
                              "FROM hatchet.scheduled_runs",
            "events": "SELECT tenant_id, id, key, payload->>'key' AS payload_key FROM hatchet.events",
            "rate_limits": "SELECT tenant_id, key, limit_value, extract(epoch FROM window_size) AS window_s "
                           "FROM hatchet.rate_limits",
            "crons": "SELECT tenant_id, id, name, expression, method, enabled FROM hatchet.crons",
        }
        for name, sql in queries.items():
            out = self.pg.psql(f"SELECT coalesce(json_agg(x), '[]') FROM ({sql}) x", timeout=300)
            (OUT / "engine" / f"{name}.json").write_text(out)
        meta = {"seed": self.args.seed, "minutes": self.args.minutes, "short": self.args.short,
                "fault_every": self.args.fault_every, "wal_fs": WAL_FS_SIZE if self.pg.walfs else None,
                "dead_after_s": DEAD_AFTER_S, "tenants": {"a": TENANT_A, "b": TENANT_B}}
        (OUT / "meta.json").write_text(json.dumps(meta))

    def teardown(self) -> None:
        for group in (self.loaders, self.workers):
            for proc in group.values():
                proc.terminate(grace=5)
        for proc in self.servers:
            proc.terminate(grace=5)
        self.pg.stop()
        self.pg.unmount_walfs()
        if not self.args.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--short", action="store_true", help="every fault kind once, for `make test`")
    parser.add_argument("--fault-every", type=float, default=12, help="seconds between faults on average (long runs)")
    parser.add_argument("--rate", type=float, default=0.8, help="triggers per second per tenant-A load generator")
    parser.add_argument("--server-bin", default=os.environ.get("HATCHET_SERVER_BIN",
                                                               str(ROOT / "target" / "debug" / "hatchet-server")))
    parser.add_argument("--keep", action="store_true", help="keep the cluster's data directory")
    args = parser.parse_args()
    h = Harness(args)
    started = time.time()

    def interrupted(signum, frame):
        raise RuntimeError(f"interrupted by signal {signum}")

    # SIGTERM and Ctrl-C go through the same teardown as an error: no cluster or process is left behind.
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    try:
        h.setup()
        h.run_faults(args.minutes * 60)
        h.quiesce(timeout=120 if not args.short else 75)
        h.dump_engine()
    except Exception as err:
        log(f"harness error: {type(err).__name__}: {err}")
        h.teardown()
        print("chaos: 0 passed, 1 failed")
        return 1
    h.teardown()
    log(f"run took {time.time() - started:.0f}s; checking the history")
    import check

    return check.main([str(OUT)])


if __name__ == "__main__":
    sys.exit(main())
