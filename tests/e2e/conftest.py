"""End-to-end harness: the real hatchet-sdk against a real hatchet-server and a real Postgres with pg_hatchet.

One session:
  * builds hatchet-server (cargo; a no-op when up to date) unless HATCHET_SERVER_BIN names a binary;
  * runs `hatchet-server dev` on free ports in a fresh temporary data directory (a scratch Postgres cluster with
    the installed extension preloaded) and reads the `export HATCHET_CLIENT_...` lines it prints;
  * starts worker processes (`worker.py <profile>`, our own workflows from `flows.py`) and waits for their health
    endpoint, which turns 200 only after Register, ListenV2 and a first Heartbeat succeeded;
  * tests drive the SDK client in this process (sync calls, and async ones on one session-wide event loop, as the
    SDK's pooled listeners expect).

Logs of the server and every worker go to tests/output/e2e/ (git-ignored); a failing test's report points there.
Needs the extension installed in the system Postgres 15 (`make dev`) and .venv from scripts/setup.sh.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUTPUT = ROOT / "tests" / "output" / "e2e"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(server, *args: str) -> str:
    """psql as the superuser on the dev cluster's socket (args such as "-c", sql); stdout, unaligned, tuples only."""
    conninfo = f"host={server.data_dir / 'run'} port={server.pg_port} dbname=hatchet user=postgres"
    out = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", *args, conninfo],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    """Polls `predicate` until it returns something truthy (returned) or `timeout` seconds pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    except Exception:
        return None


def server_binary() -> Path:
    if os.environ.get("HATCHET_SERVER_BIN"):
        return Path(os.environ["HATCHET_SERVER_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    subprocess.run(["cargo", "build", "--quiet", "-p", "hatchet-server"], cwd=ROOT, check=True)
    return target / "debug" / "hatchet-server"


class Server:
    """A running `hatchet-server dev` and the environment an SDK process needs to reach it."""

    def __init__(self) -> None:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix="pg_hatchet-e2e-"))
        # The postgres user runs the cluster and must be able to reach its data directory.
        self.workdir.chmod(0o755)
        self.data_dir = self.workdir / "dev"
        self.grpc_port, self.http_port, self.pg_port = free_port(), free_port(), free_port()
        self.log_path = OUTPUT / "server.log"
        self.log = open(self.log_path, "w")
        # The signed-in dashboard link `dev` prints after the exports.
        self.dashboard_link = ""
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info,sqlx=warn"))
        self.proc = subprocess.Popen(
            [
                str(server_binary()), "dev",
                "--data-dir", str(self.data_dir),
                "--grpc-port", str(self.grpc_port),
                "--http-port", str(self.http_port),
                "--pg-port", str(self.pg_port),
            ],
            stdout=subprocess.PIPE, stderr=self.log, text=True, env=env, cwd=self.workdir,
        )
        self.env = self._read_exports(timeout=120)
        wait_for(lambda: http_status(f"{self.rest_url}/health") == 200, 30, "the server's /health")

    def _read_exports(self, timeout: float) -> dict[str, str]:
        found: dict[str, str] = {}
        done = threading.Event()

        def reader() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.startswith("export "):
                    key, _, value = line[len("export "):].strip().partition("=")
                    found[key] = value
                elif line.startswith("# dashboard: "):
                    self.dashboard_link = line[len("# dashboard: "):].strip()
                if len(found) >= 4 and self.dashboard_link:
                    done.set()
            done.set()

        threading.Thread(target=reader, daemon=True).start()
        if not done.wait(timeout) or len(found) < 4:
            self.stop()
            raise RuntimeError(f"hatchet-server dev printed no exports; see {self.log_path}")
        return found

    @property
    def tenant_id(self) -> str:
        """The tenant of the dev token (`dev` mints it for the extension's default tenant)."""
        return "707d0855-80ab-4e1f-a156-f1c4546cbf52"

    @property
    def rest_url(self) -> str:
        return f"http://localhost:{self.http_port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


class WorkerProcess:
    """A `worker.py <profile>` subprocess (or `<script> <profile>`: test files that define their own workflows run
    themselves as the worker) with the SDK's health endpoint. The log goes to tests/output/e2e/worker-<log_name>.log."""

    def __init__(self, server: Server, profile: str, extra_env: dict[str, str] | None = None,
                 script: Path | None = None, log_name: str | None = None) -> None:
        self.profile = profile
        self.health_port = free_port()
        self.log_path = OUTPUT / f"worker-{log_name or profile}.log"
        self.log = open(self.log_path, "w")
        env = dict(os.environ)
        env.update(server.env)
        env.update(
            HATCHET_CLIENT_WORKER_HEALTHCHECK_ENABLED="True",
            HATCHET_CLIENT_WORKER_HEALTHCHECK_PORT=str(self.health_port),
            HATCHET_CLIENT_WORKER_HEALTHCHECK_BIND_ADDRESS="127.0.0.1",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra_env or {})
        self.proc = subprocess.Popen(
            [sys.executable, str(script or HERE / "worker.py"), profile],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=HERE,
        )

    def wait_healthy(self, timeout: float = 40) -> None:
        def healthy() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.profile} exited ({self.proc.returncode}); see {self.log_path}")
            return http_status(f"http://127.0.0.1:{self.health_port}/health") == 200

        wait_for(healthy, timeout, f"worker {self.profile} to become healthy", interval=0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    srv = Server()
    # The SDK client in this process reads its configuration from the environment when flows.py is imported.
    os.environ.update(srv.env)
    os.environ["HATCHET_CLIENT_TENACITY_MAX_ATTEMPTS"] = "3"
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def start_worker(server: Server):
    """Starts worker profiles (see worker.py); all are stopped at the end of the session."""
    started: list[WorkerProcess] = []

    def start(*profiles: str, extra_env: dict[str, str] | None = None) -> list[WorkerProcess]:
        workers = [WorkerProcess(server, p, extra_env) for p in profiles]
        started.extend(workers)
        for w in workers:
            w.wait_healthy()
        return workers

    yield start
    for w in started:
        w.stop()


@pytest.fixture(scope="session")
def main_worker(start_worker):
    """The worker serving every workflow of tiers 0-2 that needs no special worker."""
    return start_worker("main")[0]


@pytest.fixture(scope="session")
def flows(server):
    """The workflow module, imported once the environment points at the server."""
    import flows as module

    return module
