"""The README's Python worker, exactly as written there, against `hatchet-server dev`: the code blocks headed
`# worker.py` and `# run.py` are extracted from README.md, written to a fresh directory, and run with only the
environment `hatchet-server dev` prints (`export HATCHET_CLIENT_...`). So the README can never drift from what works.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from conftest import OUTPUT, ROOT, wait_for


def readme_blocks() -> dict[str, str]:
    """The README's ```python blocks whose first line is `# <file name>`, by file name."""
    text = (ROOT / "README.md").read_text()
    blocks = {}
    for body in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        first = body.splitlines()[0]
        match = re.match(r"#\s*([\w.]+\.py)\b", first)
        if match:
            blocks[match.group(1)] = body
    return blocks


def worker_registered(proc: subprocess.Popen) -> bool:
    from hatchet_sdk import Hatchet

    if proc.poll() is not None:
        raise RuntimeError(f"the README worker exited ({proc.returncode})")
    rows = Hatchet().workers.list().rows or []
    return any(w.name == "hello-worker" and "say-hello" in " ".join(w.actions or []) for w in rows)


def test_readme_has_the_worker_and_the_client():
    blocks = readme_blocks()
    assert {"worker.py", "run.py"} <= blocks.keys(), blocks.keys()
    # The README tells the reader what run.py prints; the next test checks it does.
    assert re.search(r"print\(say_hello\.run\(\)\)\s*#\s*\{'greeting': 'hello'\}", blocks["run.py"])


def test_readme_worker_runs_a_task(server):
    blocks = readme_blocks()
    workdir = Path(tempfile.mkdtemp(prefix="readme-worker-"))
    for name in ("worker.py", "run.py"):
        (workdir / name).write_text(blocks[name])
    # Only what the reader has: the exports `hatchet-server dev` printed (plus PATH etc.), no test settings.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HATCHET_")}
    env.update(server.env)
    env["PYTHONUNBUFFERED"] = "1"
    log_path = OUTPUT / "worker-readme.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen([sys.executable, "worker.py"], cwd=workdir, env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
        try:
            # As the README says: the worker is started first, the client second (run.py's trigger would be
            # NOT_FOUND while the worker has not registered say-hello yet).
            wait_for(lambda: worker_registered(worker), 60, "the README worker to register")
            run = subprocess.run([sys.executable, "run.py"], cwd=workdir, env=env, capture_output=True, text=True,
                                 timeout=90)
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
    assert run.returncode == 0, f"run.py failed:\n{run.stdout}\n{run.stderr}\n(worker log: {log_path})"
    assert run.stdout.strip().splitlines()[-1] == "{'greeting': 'hello'}", run.stdout
