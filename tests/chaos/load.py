"""One load generator: `python load.py NAME SEED RATE ACKS_FILE STOP_FILE`. Triggers the chaos workflows through the
replica in HATCHET_CLIENT_HOST_PORT at RATE triggers per second until STOP_FILE exists, and appends one JSON line per
trigger to ACKS_FILE: kind run/schedule/event with the id the server acknowledged, or kind error (not acknowledged)."""

from __future__ import annotations

import json
import os
import random
import sys
import time
from datetime import datetime, timedelta, timezone


def main() -> None:
    name, seed, rate, acks_path, stop_path = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
    import flows

    rng = random.Random(seed)
    acks = open(acks_path, "a", buffering=1)
    replica = os.environ.get("HATCHET_CLIENT_HOST_PORT", "")
    tenant = os.environ.get("CHAOS_TENANT", "?")
    seq = 0
    kinds = ["single"] * 40 + ["diamond"] * 12 + ["rr"] * 15 + ["rate"] * 10 + ["parent"] * 8 + ["schedule"] * 8 + \
        ["event"] * 7 + ["durable"] * 6 + ["ts"] * 8
    # Durable runs wait for an event with their key: pushed a few seconds after the trigger (not acknowledged as a
    # trigger: it starts no run; a lost one only makes the durable wait end on its 8 s sleep instead).
    pending_signals: list[tuple[float, str]] = []
    while not os.path.exists(stop_path):
        while pending_signals and pending_signals[0][0] <= time.time():
            _, signal_key = pending_signals.pop(0)
            try:
                event = flows.hatchet.event.push(flows.DURABLE_EVENT_KEY, {"key": signal_key})
                acks.write(json.dumps({"tenant": tenant, "loader": name, "replica": replica, "wf": "durable",
                                       "key": signal_key, "kind": "signal", "id": event.event_id, "t1": time.time()},
                                      separators=(",", ":")) + "\n")
            except Exception as err:
                acks.write(json.dumps({"tenant": tenant, "loader": name, "wf": "durable", "key": signal_key,
                                       "kind": "signal_error", "error": f"{type(err).__name__}: {err}"[:300],
                                       "t1": time.time()}, separators=(",", ":")) + "\n")
        seq += 1
        key = f"{name}-{seq}"
        kind = rng.choice(kinds)
        ms = rng.randint(50, 800)
        fail = rng.choices([0, 1, 3], weights=[85, 10, 5])[0]
        record = {"tenant": tenant, "loader": name, "replica": replica, "wf": kind, "key": key, "t0": time.time()}
        try:
            if kind == "single":
                ref = flows.single.run_no_wait(flows.Work(key=key, ms=ms, fail=fail))
                record.update(kind="run", id=ref.workflow_run_id)
            elif kind == "diamond":
                ref = flows.diamond.run_no_wait(flows.Work(key=key, ms=ms // 2))
                record.update(kind="run", id=ref.workflow_run_id)
            elif kind == "rr":
                group = f"g{rng.randint(0, 3)}"
                ref = flows.round_robin.run_no_wait(flows.Work(key=key, ms=ms, group=group))
                record.update(kind="run", id=ref.workflow_run_id, group=group)
            elif kind == "rate":
                ref = flows.rate_limited.run_no_wait(flows.Work(key=key, ms=50))
                record.update(kind="run", id=ref.workflow_run_id)
            elif kind == "parent":
                ref = flows.parent.run_no_wait(flows.Work(key=key, ms=ms // 2, children=3))
                record.update(kind="run", id=ref.workflow_run_id)
            elif kind == "schedule":
                run_at = datetime.now(timezone.utc) + timedelta(seconds=rng.uniform(1, 4))
                version = flows.single.schedule(run_at, flows.Work(key=key, ms=ms))
                record.update(kind="schedule", id=version.scheduled_workflows[0].id, run_at=run_at.timestamp())
            elif kind == "durable":
                ref = flows.durable.run_no_wait(flows.Work(key=key, ms=ms))
                record.update(kind="run", id=ref.workflow_run_id)
                pending_signals.append((time.time() + rng.uniform(1, 4), key))
                pending_signals.sort()
            elif kind == "ts":
                ref = flows.ts_task.run_no_wait(flows.Work(key=key, ms=ms, fail=fail))
                record.update(kind="run", id=ref.workflow_run_id)
            else:
                event = flows.hatchet.event.push("chaos:event", {"key": key, "ms": ms})
                record.update(kind="event", id=event.event_id)
        except Exception as err:  # not acknowledged: the checker does not count it
            record.update(kind="error", error=f"{type(err).__name__}: {err}"[:300])
        record["t1"] = time.time()
        acks.write(json.dumps(record, separators=(",", ":")) + "\n")
        if record["kind"] == "error":
            time.sleep(0.5)
        time.sleep(rng.expovariate(rate))


if __name__ == "__main__":
    main()
