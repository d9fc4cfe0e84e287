"""hatchet-server connected as a login role that is only a member of the server role, not a superuser
(docs/security.md, "Give hatchet-server its own role").

Every other test talks to `hatchet-server dev`, which connects as the `postgres` superuser. Here, on the same
scratch cluster, the superuser runs `sql/setup/roles.sql` (kinds=server, a tenant of its own), the `token create`
subcommand mints a token while connected as the new role, and a second server, `hatchet-server serve`, runs as that
role on its own ports. A worker (this file run as a script) connects to that second server only, and the SDK drives
through it: a task, a DAG, a retry, a cancellation, an event, a cron, logs, a stream, REST reads, the worker list and
a webhook, a child run, a rate limit, schedules, a replay, a worker pause, a filter, `/metrics`. Each of them needs the second server's request handlers and its background loops (assigner, completion
batcher, acker, run watcher, notifier) to work as that role. At the end neither that server's log nor Postgres's
has a "permission denied".
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from hatchet_sdk import Context, EmptyModel, Hatchet, RateLimit
from pydantic import BaseModel

LOGIN_ROLE = "e2e_server_login"
TENANT_NAME = "e2e-server-role"
EVENT_KEY = "e2e:server-role:event"
HOOK_KEY = "e2e:server-role:hook"
RATE_LIMIT_KEY = "e2e-server-role-limit"


class Marker(BaseModel):
    marker: str


def build_workflows(hatchet: Hatchet):
    @hatchet.task(name="e2e-role-simple")
    def simple(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"result": "as the server role"}

    dag = hatchet.workflow(name="E2ERoleDag")

    @dag.task()
    def first(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"v": 20}

    @dag.task(parents=[first])
    def second(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"v": ctx.task_output(first)["v"] + 1}

    @hatchet.task(name="e2e-role-retry", retries=2, backoff_factor=1, backoff_max_seconds=1)
    def retried(input: EmptyModel, ctx: Context) -> dict[str, int]:
        if ctx.retry_count == 0:
            raise ValueError("attempt 0 fails on purpose")
        return {"attempt": ctx.retry_count}

    @hatchet.task(name="e2e-role-cancellable", input_validator=Marker)
    async def cancellable(input: Marker, ctx: Context) -> dict[str, bool]:
        Path(input.marker + ".started").write_text("started")
        try:
            for _ in range(600):
                if ctx.exit_flag:
                    Path(input.marker + ".cancelled").write_text("exit_flag")
                    return {"cancelled": True}
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            Path(input.marker + ".cancelled").write_text("CancelledError")
            raise
        return {"cancelled": False}

    @hatchet.task(name="e2e-role-on-event", on_events=[EVENT_KEY, HOOK_KEY])
    def on_event(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"key": ctx.triggering_event_key or "", "triggered_by": ctx.data.triggered_by or ""}

    @hatchet.task(name="e2e-role-chatty")
    async def chatty(input: EmptyModel, ctx: Context) -> dict[str, int]:
        for i in range(3):
            ctx.log(f"role log line {i}")
        await asyncio.sleep(0.3)  # a subscriber that starts with the run gets to listen first
        for i in range(5):
            await ctx.aio_put_stream(f"part-{i} ")
        return {"parts": 5}

    @hatchet.task(name="e2e-role-parent")
    async def parent(input: EmptyModel, ctx: Context) -> dict[str, str]:
        await ctx.aio_refresh_timeout(timedelta(seconds=30))
        child = await simple.aio_run()
        return {"child": child["result"]}

    @hatchet.task(name="e2e-role-limited", rate_limits=[RateLimit(static_key=RATE_LIMIT_KEY, units=1)])
    def limited(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        return {"limited": True}

    return dict(simple=simple, dag=dag, retried=retried, cancellable=cancellable, on_event=on_event, chatty=chatty,
                parent=parent, limited=limited)


# ---------------------------------------------------------------------------------------------------- the setup


def psql(server, *args: str) -> str:
    from conftest import psql as run  # imported late: the worker runs this file as a script

    return run(server, *args)


class RoleServer:
    """`hatchet-server serve` connected as LOGIN_ROLE, on free loopback ports; its log is
    tests/output/e2e/server-role.log."""

    def __init__(self, server) -> None:
        from conftest import OUTPUT, free_port, http_status, server_binary, wait_for

        root = Path(__file__).resolve().parents[2]
        # The superuser's one setup step (docs/security.md, step 4): the login role joins the server role, and gets
        # a tenant of its own so that nothing here mixes with the dev server's default tenant.
        psql(server, "-q", "-v", f"role={LOGIN_ROLE}", "-v", "kinds=server", "-v", f"tenant_name={TENANT_NAME}",
             "-f", str(root / "sql" / "setup" / "roles.sql"))
        self.tenant_id = psql(server, "-c", f"SELECT tenant_id FROM hatchet.tenants WHERE name = '{TENANT_NAME}'")
        self.pg_server = server
        self.grpc_port, self.http_port = free_port(), free_port()
        self.database_url = (f"postgres://{LOGIN_ROLE}@localhost:{server.pg_port}/hatchet"
                             f"?host={server.data_dir / 'run'}")
        binary = str(server_binary())
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info,sqlx=warn"))
        env.pop("DATABASE_URL", None)
        # The token is minted by the same role: signing needs the tenant's secret, which the server role reads (and
        # creates on first use); a superuser could mint it too.
        self.token = subprocess.run(
            [binary, "token", "create", "--tenant", self.tenant_id, "--name", "e2e-server-role",
             "--database-url", self.database_url,
             "--server-url", f"http://localhost:{self.http_port}",
             "--grpc-broadcast-address", f"localhost:{self.grpc_port}"],
            check=True, capture_output=True, text=True, env=env,
        ).stdout.strip()
        self.log_path = OUTPUT / "server-role.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "--database-url", self.database_url,
             "--grpc-addr", f"127.0.0.1:{self.grpc_port}", "--http-addr", f"127.0.0.1:{self.http_port}"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env,
        )
        self.rest_url = f"http://localhost:{self.http_port}"
        wait_for(lambda: self.proc.poll() is None and http_status(f"{self.rest_url}/health") == 200, 30,
                 f"hatchet-server serve as {LOGIN_ROLE} (see {self.log_path})")
        # What a worker process needs (conftest.WorkerProcess reads `.env`).
        self.env = {
            "HATCHET_CLIENT_TOKEN": self.token,
            "HATCHET_CLIENT_HOST_PORT": f"localhost:{self.grpc_port}",
            "HATCHET_CLIENT_SERVER_URL": self.rest_url,
            "HATCHET_CLIENT_TLS_STRATEGY": "none",
        }

    def client(self) -> Hatchet:
        from hatchet_sdk import ClientConfig
        from hatchet_sdk.config import ClientTLSConfig

        return Hatchet(config=ClientConfig(
            token=self.token, tenant_id=self.tenant_id, host_port=self.env["HATCHET_CLIENT_HOST_PORT"],
            server_url=self.rest_url, tls_config=ClientTLSConfig(strategy="none")))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def role(server):
    from conftest import WorkerProcess

    srv = RoleServer(server)
    worker = None
    try:
        worker = WorkerProcess(SimpleNamespace(env=srv.env), "worker", script=Path(__file__).resolve(),
                               log_name="server-role")
        worker.wait_healthy()
        hatchet = srv.client()
        yield SimpleNamespace(server=srv, hatchet=hatchet, wf=build_workflows(hatchet), pg=server)
    finally:
        if worker is not None:
            worker.stop()
        srv.stop()


# ---------------------------------------------------------------------------------------------------- the tests


def test_the_server_connects_as_a_plain_member_of_the_server_role(role):
    row = psql(role.pg, "-F", "|", "-c",
               f"SELECT r.rolsuper, r.rolcreaterole, r.rolbypassrls, "
               f"       pg_has_role('{LOGIN_ROLE}', (SELECT role_id FROM hatchet.roles WHERE kind = 'server'), 'MEMBER'), "
               f"       pg_has_role('{LOGIN_ROLE}', (SELECT role_id FROM hatchet.roles WHERE kind = 'admin'), 'MEMBER'), "
               f"       has_table_privilege('{LOGIN_ROLE}', 'hatchet.tasks', 'SELECT') "
               f"FROM pg_roles r WHERE r.rolname = '{LOGIN_ROLE}'")
    assert row == "f|f|f|t|f|f"
    # The second server's sessions are that role's (request pool, background pool, LISTEN connection).
    sessions = int(psql(role.pg, "-c", f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{LOGIN_ROLE}'"))
    assert sessions >= 2
    assert role.hatchet.tenant_id == role.server.tenant_id


def test_a_task_runs(role):
    assert role.wf["simple"].run() == {"result": "as the server role"}


def test_a_dag_runs(role):
    result = role.wf["dag"].run()
    assert result == {"first": {"v": 20}, "second": {"v": 21}}


def test_a_failed_attempt_is_retried(role):
    ref = role.wf["retried"].run(wait_for_result=False)
    assert ref.result() == {"attempt": 1}
    events = role.hatchet.runs.get(ref.workflow_run_id).task_events
    retrying = [e for e in events if e.event_type.value == "RETRYING"]
    assert [e.retry_count for e in retrying] == [0]
    assert "attempt 0 fails on purpose" in retrying[0].message


def test_a_running_task_is_cancelled(role, tmp_path: Path):
    from conftest import wait_for
    from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus

    marker = str(tmp_path / "cancel")
    ref = role.wf["cancellable"].run(Marker(marker=marker), wait_for_result=False)
    wait_for(lambda: Path(marker + ".started").exists(), 20, "the task to start")
    role.hatchet.runs.cancel(ref.workflow_run_id)
    how = wait_for(lambda: Path(marker + ".cancelled").exists() and Path(marker + ".cancelled").read_text(), 15,
                   "the worker to cancel the task")
    assert how in ("exit_flag", "CancelledError")
    assert role.hatchet.runs.get_status(ref.workflow_run_id) == V1TaskStatus.CANCELLED


def test_an_event_triggers_a_run(role):
    from conftest import wait_for

    event = role.hatchet.event.push(EVENT_KEY, {"n": 1})
    runs = wait_for(lambda: role.hatchet.runs.list(triggering_event_external_id=event.event_id).rows, 10,
                    "the run triggered by the event")
    assert len(runs) == 1
    result = role.hatchet.runs.get_run_ref(runs[0].workflow_run_external_id).result()
    assert result["e2e-role-on-event"] == {"key": EVENT_KEY, "triggered_by": "event"}
    assert event.event_id in {e.metadata.id for e in role.hatchet.event.list(keys=[EVENT_KEY]).rows}


def test_a_cron_is_created_fires_and_is_deleted(role):
    from conftest import wait_for

    test_id = str(uuid.uuid4())
    cron = role.hatchet.cron.create(workflow_name="e2e-role-simple", cron_name=f"role-{test_id[:8]}",
                                    expression="*/2 * * * * *", input={}, additional_metadata={"test_id": test_id})
    try:
        assert cron.metadata.id in {c.metadata.id for c in role.hatchet.cron.list(workflow_name="e2e-role-simple").rows}
        fired = wait_for(lambda: role.hatchet.runs.list(additional_metadata={"test_id": test_id}).rows, 15,
                         "a run started by the cron")
        result = role.hatchet.runs.get_run_ref(fired[-1].workflow_run_external_id).result()
        assert result == {"e2e-role-simple": {"result": "as the server role"}}
    finally:
        role.hatchet.cron.delete(cron.metadata.id)
    assert cron.metadata.id not in {c.metadata.id for c in role.hatchet.cron.list(workflow_name="e2e-role-simple").rows}


async def test_logs_and_a_stream(role):
    from conftest import wait_for

    ref = await role.wf["chatty"].aio_run_no_wait()
    chunks = await asyncio.wait_for(_collect(role.hatchet.runs.subscribe_to_stream(ref.workflow_run_id)), timeout=30)
    assert chunks == [f"part-{i} " for i in range(5)]
    assert await ref.aio_result() == {"parts": 5}

    def lines():
        rows = role.hatchet.logs.list(ref.workflow_run_id).rows or []
        found = [r.message for r in rows if r.message.startswith("role log line")]
        return found if len(found) >= 3 else None

    assert wait_for(lines, 10, "three log lines") == [f"role log line {i}" for i in range(3)]


async def _collect(stream) -> list[str]:
    return [chunk async for chunk in stream]


def test_rest_reads_of_runs_and_workers(role):
    from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus

    test_id = str(uuid.uuid4())
    ref = role.wf["simple"].run(wait_for_result=False, options=_metadata(test_id))
    ref.result()
    assert role.hatchet.runs.get_status(ref.workflow_run_id) == V1TaskStatus.COMPLETED
    details = role.hatchet.runs.get(ref.workflow_run_id)
    assert details.run.status == V1TaskStatus.COMPLETED
    assert details.run.tenant_id == role.server.tenant_id
    listed = role.hatchet.runs.list(additional_metadata={"test_id": test_id}).rows
    assert [r.workflow_run_external_id for r in listed] == [ref.workflow_run_id]

    workers = role.hatchet.workers.list().rows
    assert [w.name for w in workers if w.status.value == "ACTIVE"] == ["e2e-server-role"]


def _metadata(test_id: str):
    from hatchet_sdk import TriggerWorkflowOptions

    return TriggerWorkflowOptions(additional_metadata={"test_id": test_id})


def test_a_webhook_request_triggers_a_run(role):
    from conftest import wait_for
    from hatchet_sdk.clients.rest.models.v1_webhook_basic_auth import V1WebhookBasicAuth
    from hatchet_sdk.clients.rest.models.v1_webhook_source_name import V1WebhookSourceName

    name = f"e2e-role-{uuid.uuid4().hex[:8]}"
    role.hatchet.webhooks.create(source_name=V1WebhookSourceName.GENERIC, name=name,
                                 event_key_expression=f"'{HOOK_KEY}'",
                                 auth=V1WebhookBasicAuth(username="hook", password="s3cret"))
    try:
        def post(secret: bytes) -> int:
            req = urllib.request.Request(
                f"{role.server.rest_url}/api/v1/stable/tenants/{role.server.tenant_id}/webhooks/{name}",
                data=json.dumps({"n": 2}).encode(), method="POST",
                headers={"Content-Type": "application/json",
                         "Authorization": "Basic " + base64.b64encode(b"hook:" + secret).decode()})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    body = json.loads(resp.read() or b"{}")
                    post.event_id = body["event"]["metadata"]["id"]
                    return resp.status
            except urllib.error.HTTPError as err:
                return err.code

        assert post(b"wrong") == 403
        assert post(b"s3cret") == 200
        runs = wait_for(lambda: role.hatchet.runs.list(triggering_event_external_id=post.event_id).rows, 10,
                        "the run triggered by the webhook")
        result = role.hatchet.runs.get_run_ref(runs[0].workflow_run_external_id).result()
        assert result["e2e-role-on-event"]["key"] == HOOK_KEY
    finally:
        role.hatchet.webhooks.delete(name)


def test_a_child_run_and_a_refreshed_timeout(role):
    assert role.wf["parent"].run() == {"child": "as the server role"}


def test_a_rate_limit_is_put_and_consumed(role):
    from hatchet_sdk.rate_limit import RateLimitDuration

    role.hatchet.rate_limits.put(RATE_LIMIT_KEY, 100, RateLimitDuration.MINUTE)
    assert role.wf["limited"].run() == {"limited": True}


def test_a_schedule_fires_and_another_is_deleted(role):
    from conftest import wait_for

    test_id = str(uuid.uuid4())
    run_at = datetime.now(tz=timezone.utc) + timedelta(seconds=1)
    version = role.wf["simple"].schedule(run_at, additional_metadata={"test_id": test_id})
    scheduled_id = version.scheduled_workflows[0].id
    assert scheduled_id in {s.metadata.id for s in role.hatchet.scheduled.list().rows}
    run = wait_for(lambda: role.hatchet.runs.list(additional_metadata={"test_id": test_id}).rows, 15,
                   "the scheduled run")[0]
    assert role.hatchet.runs.get_run_ref(run.workflow_run_external_id).result() == {
        "e2e-role-simple": {"result": "as the server role"}}

    never = role.hatchet.scheduled.create(workflow_name="e2e-role-simple",
                                          trigger_at=datetime.now(tz=timezone.utc) + timedelta(hours=1), input={},
                                          additional_metadata={})
    role.hatchet.scheduled.delete(never.metadata.id)
    assert never.metadata.id not in {s.metadata.id for s in role.hatchet.scheduled.list().rows}


def test_a_finished_run_is_replayed(role):
    from conftest import wait_for

    test_id = str(uuid.uuid4())
    ref = role.wf["simple"].run(wait_for_result=False, options=_metadata(test_id))
    ref.result()
    role.hatchet.runs.replay(ref.workflow_run_id)
    # The replay is a new attempt of the same task, which finishes too.
    wait_for(lambda: ("FINISHED", 1) in {(e.event_type.value, e.retry_count)
                                         for e in role.hatchet.runs.get(ref.workflow_run_id).task_events}
             and role.hatchet.runs.get_status(ref.workflow_run_id).value == "COMPLETED",
             30, "the replayed attempt to finish", interval=0.3)


def test_a_worker_is_paused_and_resumed(role):
    from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus

    worker = next(w for w in role.hatchet.workers.list().rows if w.status.value == "ACTIVE")
    assert role.hatchet.workers.pause(worker.metadata.id).status.value == "PAUSED"
    try:
        ref = role.wf["simple"].run(wait_for_result=False)
        time.sleep(1.0)
        assert role.hatchet.runs.get_status(ref.workflow_run_id) == V1TaskStatus.QUEUED
    finally:
        assert role.hatchet.workers.unpause(worker.metadata.id).status.value == "ACTIVE"
    assert ref.result() == {"result": "as the server role"}


def test_a_filter_is_created_listed_and_deleted(role):
    created = role.hatchet.filters.create(workflow_id=role.wf["on_event"].id, expression="input.n > 1",
                                          scope=f"scope-{uuid.uuid4().hex[:8]}", payload={"team": "a"})
    assert created.metadata.id in {f.metadata.id for f in role.hatchet.filters.list().rows}
    role.hatchet.filters.delete(created.metadata.id)
    assert created.metadata.id not in {f.metadata.id for f in role.hatchet.filters.list().rows}


def test_the_periodic_stream_pruning_runs_as_the_role(role):
    # The server calls it every minute (dispatch/streams.rs); call it as the role now rather than wait.
    conninfo = f"host={role.pg.data_dir / 'run'} port={role.pg.pg_port} dbname=hatchet user={LOGIN_ROLE}"
    out = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", "SELECT hatchet.prune_stream_chunks()",
                          conninfo], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 0


def test_metrics_read_the_queue_depths(role):
    # The scrape reads hatchet.ready_queue; a failed read would still answer 200, with hatchet_database_up 0.
    req = urllib.request.Request(f"{role.server.rest_url}/metrics",
                                 headers={"Authorization": f"Bearer {role.server.token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    assert resp.status == 200
    assert "hatchet_database_up 1" in text.splitlines()


def test_nothing_was_refused(role):
    # Let the periodic loops (acker, run watcher, stream pruning, worker heartbeats) go round once more.
    time.sleep(3)
    server_log = role.server.log_path.read_text()
    assert "permission denied" not in server_log
    assert "42501" not in server_log
    assert [line for line in server_log.splitlines() if "ERROR" in line or "WARN" in line] == []
    pg_log = (role.pg.data_dir / "postgres.log").read_text()
    assert "permission denied" not in pg_log, [line for line in pg_log.splitlines() if "permission denied" in line]


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    worker_hatchet = Hatchet()
    workflows = list(build_workflows(worker_hatchet).values())
    worker_hatchet.worker("e2e-server-role", slots=5, workflows=workflows).start()
