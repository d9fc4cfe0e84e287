"""The migration guides' example projects, run as a user runs them, against `hatchet-server dev`:

* examples/celery-migration (docs/migrate-from-celery.md): its worker, then `run.py`, which triggers every Celery
  equivalent (delay and get, fire and forget, a retry, countdown, chain, chord) and prints what came back;
* examples/fastapi-background (docs/migrate-from-fastapi-background-tasks.md): its worker and its FastAPI app
  (through FastAPI's TestClient, the real ASGI app): BackgroundTasks, a task triggered from the request, and a run
  enqueued in the request's own transaction, where a rolled-back request enqueues nothing and sends nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from conftest import OUTPUT, ROOT, WorkerProcess, wait_for

EXAMPLES = ROOT / "examples"


def example_env(server, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(server.env)
    env.update(extra)
    return env


def database_url(server) -> str:
    return f"postgresql://postgres@127.0.0.1:{server.pg_port}/hatchet"


# ---------------------------------------------------------------------------------------------------------------------
# Celery
# ---------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def celery_worker(server):
    directory = EXAMPLES / "celery-migration"
    worker = WorkerProcess(server, "", script=directory / "worker.py", log_name="celery-example")
    try:
        worker.wait_healthy()
        yield directory
    finally:
        worker.stop()


def test_the_celery_example_runs_every_equivalent(server, celery_worker):
    log = OUTPUT / "celery-example-run.log"
    done = subprocess.run([sys.executable, "run.py"], cwd=celery_worker, env=example_env(server),
                          capture_output=True, text=True, timeout=120)
    log.write_text(done.stdout + done.stderr)
    assert done.returncode == 0, f"run.py failed; see {log}"
    out = json.loads(done.stdout.strip().splitlines()[-1])

    assert out["delay_and_get"] == {"sent_to": "ada@example.com", "subject": "welcome", "attempt": "0"}
    # The flaky send failed once and was retried (Celery's autoretry_for).
    assert out["retried"] == {"sent_to": "bob@example.com", "subject": "flaky welcome", "attempt": "1"}
    assert len(out["fire_and_forget_run_id"]) == 36
    # countdown=2: the scheduled send ran, and not before its time.
    assert out["scheduled"]["sent_to"] == "cyd@example.com"
    assert out["scheduled_after_s"] >= 1.9
    # The chain: every step's output, each step having read its parent's.
    assert out["chain"] == {
        "validate": {"order_id": "o-1", "valid": True},
        "charge": {"charge_id": "ch_o-1", "amount_cents": 1250},
        "ship": {"tracking": "trk_o-1", "charge_id": "ch_o-1"},
    }
    # The chord: 1 + 4 + 9 + 16 gathered from four child runs.
    assert out["chord"] == {"total": 30}


# ---------------------------------------------------------------------------------------------------------------------
# FastAPI
# ---------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fastapi_app(server):
    directory = EXAMPLES / "fastapi-background"
    url = database_url(server)
    worker = WorkerProcess(server, "", script=directory / "worker.py", log_name="fastapi-example",
                           extra_env={"DATABASE_URL": url})
    os.environ["DATABASE_URL"] = url
    sys.path.insert(0, str(directory))
    try:
        worker.wait_healthy()
        from fastapi.testclient import TestClient

        import app as example

        with TestClient(example.app) as client:
            yield client, url
    finally:
        sys.path.remove(str(directory))
        worker.stop()


def sent(url: str, email: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        exists = conn.execute("SELECT to_regclass('app_sent_emails') IS NOT NULL").fetchone()[0]
        if not exists:
            return []
        return conn.execute("SELECT body, via FROM app_sent_emails WHERE email = %s", (email,)).fetchall()


def user_exists(url: str, email: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM app_users WHERE email = %s", (email,)).fetchone()[0] == 1


def runs_of_welcome(url: str, email: str) -> int:
    """Tasks of the welcome workflow whose input names this address, read in SQL from the extension."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM hatchet.tasks WHERE queue LIKE 'fastapi-send-welcome%%' AND input::text LIKE %s",
            (f"%{email}%",)).fetchone()[0]


def test_background_tasks_the_starting_point(fastapi_app):
    client, url = fastapi_app
    answer = client.post("/before/signup", json={"email": "bg@example.test", "name": "Bea"})
    assert answer.status_code == 200
    assert user_exists(url, "bg@example.test")
    assert sent(url, "bg@example.test") == [("Welcome, Bea!", "background-tasks")]


def test_a_task_triggered_in_the_request_is_sent_by_the_worker(fastapi_app):
    client, url = fastapi_app
    answer = client.post("/signup", json={"email": "sdk@example.test", "name": "Sam"})
    assert answer.status_code == 200 and len(answer.json()["run_id"]) == 36
    assert wait_for(lambda: sent(url, "sdk@example.test"), 30, "the welcome email") == \
        [("Welcome, Sam!", "pg_hatchet")]


def test_a_run_enqueued_in_the_request_transaction_commits_with_it(fastapi_app):
    client, url = fastapi_app
    answer = client.post("/signup-tx", json={"email": "tx@example.test", "name": "Tess"})
    assert answer.status_code == 200
    assert user_exists(url, "tx@example.test")
    assert wait_for(lambda: sent(url, "tx@example.test"), 30, "the welcome email") == \
        [("Welcome, Tess!", "pg_hatchet")]
    assert runs_of_welcome(url, "tx@example.test") == 1


def test_a_rolled_back_request_enqueues_nothing_and_sends_nothing(fastapi_app):
    client, url = fastapi_app
    # The request fails after its insert: the user row and the run it enqueued roll back together.
    answer = client.post("/signup-tx", json={"email": "rollback@example.test", "name": "Rob",
                                             "fail_after_insert": True})
    assert answer.status_code == 500
    assert not user_exists(url, "rollback@example.test")
    assert runs_of_welcome(url, "rollback@example.test") == 0
    # A later request that commits is served while the worker is up, so "nothing sent" is not just a slow worker.
    ok = client.post("/signup-tx", json={"email": "after@example.test", "name": "Al"})
    assert ok.status_code == 200
    wait_for(lambda: sent(url, "after@example.test"), 30, "the next welcome email")
    time.sleep(1)
    assert sent(url, "rollback@example.test") == []
