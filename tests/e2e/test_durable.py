"""Durable tasks with the real Python SDK (engine v0.80.0: the V1Dispatcher.DurableTask stream): sleeps, event
waits, or-groups won both ways, child and bulk child runs, memoized steps that do not run again after a retry or an
eviction and restore, a non-deterministic replay, and an evicted task surviving a restart of hatchet-server and of
Postgres. The workflows and their worker are in durable_flows.py."""

import asyncio
import json
import os
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

import conftest
from conftest import HERE, Server, WorkerProcess, wait_for

MARKERS = Path(tempfile.mkdtemp(prefix="pg_hatchet-e2e-durable-markers-"))
SCRIPT = HERE / "durable_flows.py"


def psql(server: Server, sql: str) -> str:
    """One statement as the superuser on the dev cluster's socket."""
    return conftest.psql(server, "-c", sql)


def marks(token: str) -> list[str]:
    path = MARKERS / token
    return path.read_text().splitlines() if path.exists() else []


def token() -> str:
    return uuid.uuid4().hex[:12]


def waiting_entries(server: Server, run_id: str) -> int:
    return int(psql(server, f"SELECT count(*) FROM hatchet.durable_log('{run_id}') WHERE status = 'WAITING'"))


def evictions(server: Server, run_id: str) -> list[str]:
    rows = psql(server, f"SELECT reason FROM hatchet.task_events('{run_id}') WHERE event_type = 'EVICTED'")
    return [r for r in rows.splitlines() if r]


@pytest.fixture(scope="module")
def durable(server):
    """The durable worker on the session's server, and the workflow module."""
    worker = WorkerProcess(server, "durable", {"E2E_MARKER_DIR": str(MARKERS)}, script=SCRIPT)
    worker.wait_healthy()
    import durable_flows

    yield durable_flows
    worker.stop()


def test_sleep(durable):
    t = token()
    start = time.monotonic()
    result = durable.durable_sleep.run(durable.Sleep(token=t, seconds=2))
    assert time.monotonic() - start >= 2
    assert result == {"slept": 2.0, "invocation": 1}
    assert marks(t) == ["start 1"]


def test_event_wait(server, durable):
    t = token()
    ref = durable.durable_event.run(durable.Token(token=t), wait_for_result=False)
    wait_for(lambda: waiting_entries(server, ref.workflow_run_id) == 1, 30, "the event wait")
    # An event for another token does not satisfy the wait's CEL expression.
    durable.hatchet.event.push(durable.EVENT_KEY, {"id": "other", "token": "not-" + t})
    time.sleep(1.5)
    assert waiting_entries(server, ref.workflow_run_id) == 1
    durable.hatchet.event.push(durable.EVENT_KEY, {"id": "mine", "token": t})
    assert ref.result() == {"event_id": "mine"}
    log = psql(server, f"SELECT kind || ' ' || status FROM hatchet.durable_log('{ref.workflow_run_id}')")
    assert log.splitlines() == ["WAIT_FOR SATISFIED"]


def test_or_group_event_wins(server, durable):
    t = token()
    ref = durable.durable_or.run(durable.Sleep(token=t, seconds=120), wait_for_result=False)
    wait_for(lambda: waiting_entries(server, ref.workflow_run_id) == 1, 30, "the or-group wait")
    durable.hatchet.event.push(durable.OR_EVENT_KEY, {"token": t, "n": 1})
    result = ref.result()
    assert result["action"] == "CREATE"
    assert result["keys"] == [durable.OR_EVENT_KEY]
    assert result["data"][durable.OR_EVENT_KEY] == [{"token": t, "n": 1}]


def test_or_group_sleep_wins(durable):
    t = token()
    start = time.monotonic()
    result = durable.durable_or.run(durable.Sleep(token=t, seconds=2))
    assert time.monotonic() - start >= 2
    assert result["action"] == "CREATE"
    assert len(result["keys"]) == 1 and result["keys"][0].startswith("sleep:"), result
    assert result["data"][result["keys"][0]] == [{"sleep_duration": result["keys"][0][len("sleep:"):]}]


def test_child_and_bulk_children(server, durable):
    t = token()
    ref = durable.durable_parent.run(durable.Token(token=t), wait_for_result=False)
    assert ref.result() == {"one": 49, "many": [0, 1, 4, 9, 16]}
    # Each child ran exactly once.
    assert sorted(marks(t)) == sorted(f"child {n}" for n in [7, 0, 1, 2, 3, 4])
    log = psql(server, f"SELECT kind || ' ' || status FROM hatchet.durable_log('{ref.workflow_run_id}')")
    assert log.splitlines() == ["RUN SATISFIED"] * 6
    children = psql(server, f"SELECT count(*) FROM hatchet.runs WHERE parent_task_id = '{ref.workflow_run_id}'")
    assert children == "6"


def test_memo_survives_eviction_and_restore(server, durable):
    t = token()
    ref = durable.durable_memo.run(durable.Sleep(token=t, seconds=5), wait_for_result=False)
    # While it sleeps past its 1 s TTL it is evicted: SQL shows why and what it waits for.
    wait_for(lambda: evictions(server, ref.workflow_run_id), 30, "the eviction")
    reason = evictions(server, ref.workflow_run_id)[0]
    assert "waiting for sleep 5s" in reason, reason
    result = ref.result()
    assert result["invocation"] >= 2, result
    # The memoized step ran once, in the first invocation; the replay read it (and aio_now) from the log.
    assert marks(t).count("computed") == 1, marks(t)
    assert marks(t)[0] == "invocation 1" and "invocation 2" in marks(t)
    assert result["first"] == len(t) * 1000 + 7
    assert marks(t + "-second") == ["computed"]
    kinds = psql(server, f"SELECT string_agg(kind, ',' ORDER BY node_id) FROM hatchet.durable_log('{ref.workflow_run_id}')")
    assert kinds == "MEMO,MEMO,WAIT_FOR,MEMO"


def test_evicted_task_as_the_sdk_sees_it_and_rest_restore(server, durable):
    """GetRunDetails and runs.get say the task is evicted (status RUNNING, as in Hatchet); REST restore queues it
    again now (it replays and waits again); an event then finishes it."""
    from hatchet_sdk.clients.rest.api.task_api import TaskApi
    from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus

    t = token()
    ref = durable.durable_evicted_wait.run(durable.Token(token=t), wait_for_result=False)
    run = ref.workflow_run_id
    wait_for(lambda: evictions(server, run), 30, "the eviction")

    def evicted_in_details() -> bool:
        return any(task.is_evicted for task in durable.hatchet.runs.get_details(run).task_runs.values())

    wait_for(evicted_in_details, 10, "GetRunDetails to show the eviction")
    details = durable.hatchet.runs.get_details(run)
    [task] = details.task_runs.values()
    assert task.status == V1TaskStatus.RUNNING
    summary = durable.hatchet.runs.get(run)
    assert summary.run.status == V1TaskStatus.RUNNING
    assert [x.is_evicted for x in summary.tasks] == [True]

    with durable.hatchet.runs.client() as client:
        api = TaskApi(client)
        assert api.v1_task_restore(task=task.external_id).requeued is True
        # Restored: it replays (a second invocation) and, waiting again past its TTL, is evicted again.
        wait_for(lambda: "invocation 2" in marks(t), 30, "the restored invocation")
        wait_for(lambda: len(evictions(server, run)) == 2, 30, "the second eviction")
        # An unknown task is 404; a finished one is not requeued (below).
        from hatchet_sdk.clients.rest.exceptions import NotFoundException

        with pytest.raises(NotFoundException):
            api.v1_task_restore(task=str(uuid.uuid4()))
        durable.hatchet.event.push(durable.RESUME_EVENT_KEY, {"id": "restored", "token": t})
        result = ref.result()
        assert result["event_id"] == "restored" and result["invocation"] >= 3, result
        assert api.v1_task_restore(task=task.external_id).requeued is False
    assert marks(t).count("computed") == 1, marks(t)


def test_child_index_taken_by_another_workflow_is_nondeterminism(server, durable):
    """The SDK's child index names a durable task's child: spawning the same workflow at a used index finds that run
    again; spawning another workflow there fails the task with a non-determinism error and starts nothing."""
    def children(run_id: str) -> str:
        return psql(server, f"SELECT count(*) FROM hatchet.runs WHERE parent_task_id = '{run_id}'")

    t = token()
    same = durable.durable_rewind.run(durable.Rewind(token=t, other=False), wait_for_result=False)
    result = same.result()
    assert result["again"] == result["first"] == {"square": 1}, result
    assert children(same.workflow_run_id) == "2"
    other = durable.durable_rewind.run(durable.Rewind(token=t + "x", other=True), wait_for_result=False)
    with pytest.raises(Exception, match="non-determinism"):
        other.result()
    assert children(other.workflow_run_id) == "2"


def test_memo_survives_a_retry(durable):
    t = token()
    result = durable.durable_retry.run(durable.Token(token=t))
    assert result == {"value": len(t) * 1000 + 7, "retry_count": 1}
    assert marks(t) == ["computed"]


def test_nondeterministic_replay_fails(server, durable):
    t = token()
    ref = durable.durable_nondeterministic.run(durable.Token(token=t), wait_for_result=False)
    with pytest.raises(Exception) as err:
        ref.result()
    assert "deterministic" in str(err.value).lower(), str(err.value)
    assert psql(server, f"SELECT hatchet.run_status('{ref.workflow_run_id}')") == "FAILED"


def test_reset_durable_task_replays_from_a_node(server, durable):
    """runs.reset_durable_task (REST durable-tasks/branch): the finished task runs again on a new branch from the
    sleep's node; the memo before it is read from the log, the sleep runs again on the new branch."""
    t = token()
    ref = durable.durable_branch.run(durable.Token(token=t), wait_for_result=False)
    assert ref.result() == {"value": len(t) * 1000 + 7, "invocation": 1}
    nodes = psql(server, f"SELECT string_agg(branch_id || ':' || node_id || ':' || kind, ',' ORDER BY node_id) "
                         f"FROM hatchet.durable_log('{ref.workflow_run_id}')")
    assert nodes == "1:1:MEMO,1:2:WAIT_FOR"
    reset = durable.hatchet.runs.reset_durable_task(ref.workflow_run_id, node_id=2, branch_id=1)
    assert (reset.task_external_id, reset.node_id, reset.branch_id) == (ref.workflow_run_id, 2, 2)
    wait_for(lambda: psql(server, f"SELECT count(*) FROM hatchet.durable_log('{ref.workflow_run_id}') "
                                  "WHERE branch_id = 2 AND status = 'SATISFIED'") == "1", 30, "the replay on branch 2")
    wait_for(lambda: psql(server, f"SELECT hatchet.run_status('{ref.workflow_run_id}')") == "COMPLETED", 30,
             "the replayed run")
    output = json.loads(psql(server, f"SELECT output FROM hatchet.run_tasks('{ref.workflow_run_id}')"))
    assert output == {"value": len(t) * 1000 + 7, "invocation": 2}
    assert marks(t) == ["invocation 1", "computed", "invocation 2"]
    # Bad input: no such node.
    with pytest.raises(Exception) as err:
        durable.hatchet.runs.reset_durable_task(ref.workflow_run_id, node_id=9, branch_id=1)
    assert "404" in str(err.value) or "does not exist" in str(err.value), str(err.value)


def run_status(server: Server, run_id: str) -> str:
    return psql(server, f"SELECT hatchet.run_status('{run_id}')")


def finished(server: Server, run_id: str) -> str:
    status = run_status(server, run_id)
    return status if status in ("COMPLETED", "FAILED", "CANCELLED") else ""


def test_replay_resumes_concurrent_branches_in_the_order_they_were_satisfied(server, durable):
    """A finished durable task whose two concurrent branches each spawned two children is replayed: its entries are
    all satisfied, and the replay gets them in the order they were satisfied, so the branches ask for their second
    children in the order of the log (else the replay is refused as non-deterministic). No child runs again."""
    t = token()
    ref = durable.durable_concurrent.run(durable.Token(token=t), wait_for_result=False)
    expected = {"a": ["a-first", "a-second"], "b": ["b-first", "b-second"]}
    assert ref.result() == {**expected, "invocation": 1}
    # b's children finished before a's first one: the log holds a-first, b-first, b-second, a-second.
    labels = psql(server, "SELECT string_agg(r.input->>'label', ',' ORDER BY e.node_id) "
                          "FROM hatchet.durable_log_entries e JOIN hatchet.runs r ON r.id = e.child_run_id "
                          f"WHERE e.task_id = '{ref.workflow_run_id}'")
    assert labels == "a-first,b-first,b-second,a-second", labels
    durable.hatchet.runs.replay(ref.workflow_run_id)
    status = wait_for(lambda: finished(server, ref.workflow_run_id) if "invocation 2" in marks(t) else "", 60,
                      "the replay")
    errors = psql(server, f"SELECT string_agg(error, ' | ') FROM hatchet.run_tasks('{ref.workflow_run_id}')")
    assert status == "COMPLETED", errors
    output = json.loads(psql(server, f"SELECT output FROM hatchet.run_tasks('{ref.workflow_run_id}')"))
    assert output == {**expected, "invocation": 2}
    children = psql(server, f"SELECT count(*) FROM hatchet.runs WHERE parent_task_id = '{ref.workflow_run_id}'")
    assert children == "4"


def test_replay_of_a_cancelled_sleep_arms_it_again(server, durable):
    """A durable task cancelled while it sleeps, then replayed: the sleep (its log entry, unsatisfied, whose match went
    with the cancelled attempt) is armed again, counting from when it was first asked for, so the replay does not
    hang and does not sleep the whole time over again. Checked on the engine's own schedule (the re-armed match's
    wake_at), not on the wall clock."""
    t = token()
    ref = durable.durable_sleep.run(durable.Sleep(token=t, seconds=45), wait_for_result=False)
    run = ref.workflow_run_id
    wait_for(lambda: waiting_entries(server, run) == 1, 30, "the sleep")
    durable.hatchet.runs.cancel(run)
    wait_for(lambda: run_status(server, run) == "CANCELLED", 30, "the cancellation")
    assert psql(server, f"SELECT count(*) FROM hatchet.matches WHERE task_id = '{run}'") == "0"
    durable.hatchet.runs.replay(run)
    # The replayed invocation asks for the same sleep: one match again, due 45 s after the FIRST ask (a sleep started
    # over would be due 45 s after the replay's ask, later than that).
    armed = f"""SELECT count(*) || ' ' || coalesce(bool_and(m.wake_at = l.created_at + interval '45 seconds'), false)
                FROM hatchet.matches m, hatchet.durable_log('{run}') l
                WHERE m.task_id = '{run}' AND m.wake_at IS NOT NULL AND l.node_id = 1"""
    seen = wait_for(lambda: (lambda r: r if r.startswith("1 ") else "")(psql(server, armed)), 40,
                    "the replayed sleep's match")
    assert seen == "1 true", seen
    status = wait_for(lambda: finished(server, run) if "start 2" in marks(t) else "", 120, "the replay")
    assert status == "COMPLETED"
    output = json.loads(psql(server, f"SELECT output FROM hatchet.run_tasks('{run}')"))
    assert output == {"slept": 45.0, "invocation": 2}
    rows = psql(server, f"SELECT node_id || ' ' || status FROM hatchet.durable_log('{run}')")
    assert rows == "1 SATISFIED", rows


def test_invocation_the_task_moved_on_from_is_dropped_on_the_worker(server, durable):
    """The engine moves a waiting durable task on to its next invocation without the worker hearing of it (evicted
    and restored from SQL here, as when a cancellation is lost while the server restarts): the next poll of the old
    invocation is answered with server_evict, the worker drops it, and only the new invocation runs the code after
    the wait."""
    t = token()
    ref = durable.durable_stale.run(durable.Token(token=t), wait_for_result=False)
    task = ref.workflow_run_id
    wait_for(lambda: waiting_entries(server, task) == 1, 30, "the wait")
    assert psql(server, f"SELECT hatchet.durable_evict('{task}', 1, 'moved on without the worker')") == "1"
    assert psql(server, f"SELECT hatchet.restore_evicted('{task}')") == "t"
    wait_for(lambda: "invocation 2" in marks(t), 30, "the second invocation")
    log = conftest.OUTPUT / "worker-durable.log"
    wait_for(lambda: f"server eviction notification for task {task} invocation 1" in log.read_text(), 30,
             "server_evict for the first invocation")
    durable.hatchet.event.push(durable.RESUME_EVENT_KEY, {"id": "go", "token": t})
    assert ref.result() == {"invocation": 2}
    # A check that something does NOT happen: the first invocation, had it been left waiting, would resume on the
    # event too. The pause only gives it the chance; a slow machine can hide a regression here, never fail a good run.
    time.sleep(2)
    assert marks(t) == ["invocation 1", "invocation 2", "resumed 2"], marks(t)


# ---------------------------------------------------------------------------------------------------------------------
# Restarts: a server of its own (hatchet-server dev restarts its Postgres cluster with it), driven through SQL
# ---------------------------------------------------------------------------------------------------------------------


def restart(server: Server) -> None:
    """Stops hatchet-server dev (and with it Postgres) and starts it again on the same data directory and ports."""
    server.proc.send_signal(signal.SIGINT)
    server.proc.wait(timeout=60)
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info,sqlx=warn"))
    server.log = open(server.log_path, "a")
    server.proc = subprocess.Popen(
        [str(Path(server.proc.args[0])), "dev", "--data-dir", str(server.data_dir),
         "--grpc-port", str(server.grpc_port), "--http-port", str(server.http_port),
         "--pg-port", str(server.pg_port)],
        stdout=subprocess.PIPE, stderr=server.log, text=True, env=env, cwd=server.workdir,
    )
    server._read_exports(timeout=120)


def test_evicted_task_survives_restart_of_server_and_postgres():
    own = Server()
    worker = None
    try:
        worker = WorkerProcess(own, "durable", {"E2E_MARKER_DIR": str(MARKERS)}, script=SCRIPT,
                               log_name="durable-restart")
        worker.wait_healthy()
        t = token()
        run = psql(own, f"SELECT hatchet.run_workflow('durable-e2e-evicted-wait', '{{\"token\": \"{t}\"}}')")
        wait_for(lambda: evictions(own, run), 40, "the eviction")
        assert psql(own, f"SELECT hatchet.task_status('{run}')") == "RUNNING"  # Hatchet's bucket for evicted tasks
        assert psql(own, f"SELECT reason FROM hatchet.delayed_queue WHERE task_id = '{run}'") == "evicted"

        worker.stop()
        restart(own)
        # Still evicted and waiting after the restart.
        assert evictions(own, run)
        assert waiting_entries(own, run) == 1
        worker = WorkerProcess(own, "durable", {"E2E_MARKER_DIR": str(MARKERS)}, script=SCRIPT,
                               log_name="durable-restart-2")
        worker.wait_healthy()
        payload = json.dumps({"id": "after-restart", "token": t})
        psql(own, f"SELECT hatchet.push_event('{durable_resume_key()}', '{payload}')")
        wait_for(lambda: psql(own, f"SELECT hatchet.run_status('{run}')") == "COMPLETED", 60, "the restored run")
        output = json.loads(psql(own, f"SELECT output FROM hatchet.run_tasks('{run}')"))
        assert output["event_id"] == "after-restart"
        assert output["invocation"] >= 2
        assert marks(t).count("computed") == 1, marks(t)
    finally:
        if worker is not None:
            worker.stop()
        own.stop()


def durable_resume_key() -> str:
    import durable_flows

    return durable_flows.RESUME_EVENT_KEY


def test_sleep_from_sql_is_visible(server, durable):
    """A sleeping durable task shows its wait in SQL: the log entry, its label and the pending match."""
    t = token()
    ref = durable.durable_sleep.run(durable.Sleep(token=t, seconds=3), wait_for_result=False)
    wait_for(lambda: waiting_entries(server, ref.workflow_run_id) == 1, 30, "the sleep")
    label = psql(server, f"SELECT label FROM hatchet.durable_log('{ref.workflow_run_id}')")
    assert label == "sleep 3s"
    assert psql(server, f"SELECT count(*) FROM hatchet.matches WHERE task_id = '{ref.workflow_run_id}' "
                        "AND kind = 'SIGNAL'") == "1"
    assert asyncio.run(ref.aio_result())["slept"] == 3.0
    assert psql(server, f"SELECT count(*) FROM hatchet.matches WHERE task_id = '{ref.workflow_run_id}'") == "0"
