"""The figures of a finished chaos run as Markdown, for a results note: `python report.py OUTPUT_DIR`.

Reads what the run and check.py left in OUTPUT_DIR (meta.json, faults.jsonl, recoveries.jsonl, acks/, engine/,
summary.json); prints the faults by kind, the triggers, the runs, and every invariant with its figure.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from check import load_jsonl


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    meta = json.loads((out / "meta.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    faults = [f for f in load_jsonl([out / "faults.jsonl"]) if f.get("id") is not None]
    others = [f for f in load_jsonl([out / "faults.jsonl"]) if f.get("id") is None and f.get("kind") != "quiesce"]
    acks = load_jsonl((out / "acks").glob("*.jsonl"))
    runs = json.loads((out / "engine" / "runs.json").read_text())
    kinds = Counter(f["kind"] for f in faults)
    t_first = min(f["t0"] for f in faults)
    t_last = max(f["t1"] for f in faults)
    print(f"- seed {meta['seed']}, {meta['minutes']} minutes of load, a fault every {meta.get('fault_every')} s on "
          f"average; pg_wal on a {meta.get('wal_fs')} tmpfs; worker_dead_after {meta['dead_after_s']} s")
    print(f"- faults injected: **{len(faults)}** in {(t_last - t_first) / 60:.1f} minutes")
    print()
    print("| fault | count |")
    print("|---|---|")
    for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"| {kind} | {n} |")
    print()
    if others:
        print("Not injected by the harness but seen (restarted by it): " + ", ".join(
            f"{k} {v}" for k, v in Counter(f["kind"] for f in others).items()))
        print()
    acked = Counter(a["kind"] for a in acks)
    print(f"- triggers acknowledged: runs {acked['run']}, schedules {acked['schedule']}, events {acked['event']} "
          f"(durable signals {acked['signal']}); not acknowledged (the call failed during a fault, not counted): "
          f"{acked['error']}")
    status = Counter(r["status"] for r in runs)
    print(f"- runs in the engine: {len(runs)} (" + ", ".join(f"{k} {v}" for k, v in sorted(status.items())) + ")")
    print()
    print("| invariant | result | figure |")
    print("|---|---|---|")
    for r in summary["results"]:
        figure = r["figure"].replace("|", "/")
        print(f"| {r['name']} | {'ok' if r['ok'] else '**FAILED**'} | {figure} |")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main(sys.argv[1:]))
