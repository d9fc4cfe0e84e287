"""TypeScript SDK smoke test: @hatchet-dev/typescript-sdk (pinned in ts/package.json) runs a task, a DAG and a
durable task and a child run (whose ctx.parentWorkflowRunId() names its parent), and batch tasks (ts/batch.js),
against the same server. npm installs it into ts/node_modules on first use."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path


TS = Path(__file__).resolve().parent / "ts"


def ensure_sdk() -> None:
    wanted = json.loads((TS / "package.json").read_text())["dependencies"]["@hatchet-dev/typescript-sdk"]
    installed = TS / "node_modules" / "@hatchet-dev" / "typescript-sdk" / "package.json"
    if installed.exists() and json.loads(installed.read_text())["version"] == wanted:
        return
    npm = shutil.which("npm")
    assert npm, "npm is needed for the TypeScript SDK smoke test (Debian: apt-get install npm)"
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--no-package-lock"], cwd=TS, check=True,
                   timeout=300)


def test_typescript_sdk_task_dag_and_child(server):
    ensure_sdk()
    env = dict(os.environ)
    env.update(server.env)
    out = subprocess.run(["node", "smoke.js"], cwd=TS, env=env, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads(next(line for line in reversed(out.stdout.splitlines()) if line.startswith("{")))
    assert result["task"] == {"lower": "hello from typescript"}
    assert result["many"] == [{"lower": "a"}, {"lower": "b"}]
    assert result["dag"] == {"first": {"n": 5}, "left": {"v": 10}, "right": {"v": 105}, "sum": {"sum": 115}}
    # ctx.parentWorkflowRunId() of a child is its parent's run; a run nobody spawned has none.
    family = result["family"]
    assert family["me"] and family["child"] == {"parent": family["me"]}, family
    assert result["orphan"] == {"parent": None}


def test_typescript_durable_task(server):
    """A TypeScript durable task sleeps, waits for an event (CEL over its payload) and spawns a child through the
    DurableTask stream (ts/durable.js)."""
    ensure_sdk()
    env = dict(os.environ)
    env.update(server.env)
    out = subprocess.run(["node", "durable.js"], cwd=TS, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    printed = json.loads(next(line for line in reversed(out.stdout.splitlines()) if line.startswith("{")))
    result = printed["result"]
    assert result["slept_at_least_2s"] is True
    assert result["event"] == {"token": printed["token"], "other": "x"}
    assert result["child"] == {"doubled": 42}
    assert result["invocation"] == 1


def test_typescript_batch_task(server):
    """TypeScript batch tasks (ts/batch.js): a batch sent when full, batches grouped by key and flushed by the
    interval, and a broadcast output, each member getting its output."""
    ensure_sdk()
    env = dict(os.environ)
    env.update(server.env)
    out = subprocess.run(["node", "batch.js"], cwd=TS, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads(next(line for line in reversed(out.stdout.splitlines()) if line.startswith("{")))
    size = result["size"]
    assert [m["upper"] for m in size] == ["ALPHA", "BRAVO", "CHARLIE"]
    # One batch of three, sent when full (the interval is 60 s).
    assert {m["size"] for m in size} == {3} and len({m["batch"] for m in size}) == 1, size
    assert result["sizeSeconds"] < 30
    keyed = result["keyed"]
    assert [(m["group"], m["upper"]) for m in keyed] == [("g1", "ONE"), ("g2", "TWO"), ("g1", "THREE"),
                                                          ("g2", "FOUR")]
    # Two of four per key: each key's pair went together, flushed by the interval, never mixed with the other key.
    assert {m["size"] for m in keyed} == {2}, keyed
    assert keyed[0]["batch"] == keyed[2]["batch"] != keyed[1]["batch"] == keyed[3]["batch"], keyed
    assert result["broadcast"] == [{"size": 3, "total": 6}] * 3
