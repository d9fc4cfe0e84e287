"""The task body shared by the Celery task and the hatchet-sdk task in the through-the-server scenario, so both
workers do exactly the same work per task: one pipelined Redis round trip recording when the task started."""

from __future__ import annotations

import time


def record_start(r, t: int, g: str | None, rec: int, fair_b: int) -> None:
    now = time.time_ns() // 1000
    p = r.pipeline(transaction=False)
    p.setnx("bench:first", now)
    p.incr("bench:started")
    if rec:
        p.rpush("bench:lat", (now - t) / 1000)
    if g == "A":
        p.incr("bench:a")
    p.execute()
    if g == "B" and r.incr("bench:b") == fair_b:
        r.mset({"bench:b_done": now, "bench:a_before": int(r.get("bench:a") or 0)})
