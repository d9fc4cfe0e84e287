"""Shared helpers for the Python drivers (Procrastinate, Celery): the driver contract (one JSON spec in argv[1],
one JSON result line on stdout), the epoch clock in microseconds, and paced sending for fixed offered load."""

from __future__ import annotations

import json
import math
import sys
import threading
import time
import traceback

DEFAULTS = {
    "queue": "bench", "n": 1000, "enqueue_batch": 1000, "batch": 100, "workers": 4, "concurrency": 16,
    "processes": 2, "rate": 200, "duration_s": 10, "warmup_s": 1, "backlog_cap": 5000, "samples": 200,
    "keys": 0, "tail_s": 30, "fair_a": 50000, "fair_b": 50, "idle_poll_ms": 2, "timeout_s": 600,
}


def now_us() -> int:
    """Microseconds since the Unix epoch (the same clock every driver stamps tasks with)."""
    return time.time_ns() // 1000


def read_spec() -> dict:
    spec = dict(DEFAULTS)
    spec.update(json.loads(sys.argv[1]))
    return spec


def emit(result: dict) -> None:
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def main(scenarios: dict, run) -> None:
    """Looks up the scenario, runs it through `run(fn, spec)` and prints the result line."""
    spec = read_spec()
    fn = scenarios.get(spec["scenario"])
    try:
        if fn is None:
            raise ValueError(f"unknown scenario {spec['scenario']!r}")
        out = run(fn, spec)
        emit({"ok": True, **out})
    except Exception:  # noqa: BLE001 - every failure must become a result line
        emit({"ok": False, "error": traceback.format_exc()})
        sys.exit(1)


def sleep_until_us(target: int) -> None:
    left = target - now_us()
    if left > 0:
        time.sleep(left / 1e6)


def producer_count(rate: float) -> int:
    """Producer connections for a fixed offered load: one per 200 tasks/s, so one slow commit never holds up the
    rest (the same rule in every driver)."""
    return max(1, math.ceil(rate / 200))


def paced_send_threads(spec: dict, make_sender) -> dict:
    """Fixed offered load from producer_count(rate) threads sharing one schedule (task i is due at t0 + i / rate), so
    one slow call does not delay the others. `make_sender()` returns a callable `send(t_us)` per thread."""
    total = round(spec["rate"] * spec["duration_s"])
    producers = producer_count(spec["rate"])
    t0 = now_us() + 50_000
    sent = [0] * producers
    lag = [0] * producers
    errors: list[BaseException] = []

    def loop(p: int) -> None:
        try:
            send = make_sender()
            for i in range(p, total, producers):
                due = t0 + int(i * 1e6 / spec["rate"])
                sleep_until_us(due)
                t = now_us()
                lag[p] = max(lag[p], t - due)
                send(t)
                sent[p] += 1
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            errors.append(e)

    threads = [threading.Thread(target=loop, args=(p,)) for p in range(producers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    return {"sent": sum(sent), "seconds": (now_us() - t0) / 1e6, "max_lag_ms": max(lag) / 1000, "t0": t0}
