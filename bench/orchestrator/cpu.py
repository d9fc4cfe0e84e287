"""CPU accounting during a run, from /proc: how many cores the machine, Postgres, Redis, hatchet-server and the
benchmark's own client processes (drivers and the peers' worker processes) used over a time window.

A background thread samples every 0.1 s (about 1.5 ms of CPU per sample) and keeps the last 25 minutes. Each sample
holds the cumulative user+system ticks of every process, classified as `postgres` (the benchmark's cluster: its
postmaster, whose pid the orchestrator passes in, and the postmaster's children; every process named `postgres` when
no postmaster is given), `redis` and `server` (processes named `redis-server` and `hatchet-server` started by this
orchestrator: the server the through-the-server scenario starts is counted on its own, never as a client), or
`client` (everything else descending from this orchestrator). On a shared machine, other people's clusters and
servers are not counted. Clients that run in a process group of their own are also counted as
`workers` (a subset of `client`): the through-the-server drivers start their worker processes that way (the Python
and TypeScript SDK workers, Celery's), so for them `workers` is the worker processes' CPU without the producer's.
(Graphile Worker's and the SQL-path drivers' workers share their driver's group: for them it is 0.) A window's usage per class is
the sum over processes of (last tick count in the window - first), counting a process that appeared during the window
from zero.
"""

from __future__ import annotations

import collections
import os
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")


def _read_procs() -> dict[int, tuple[str, int, int, int]]:
    """pid -> (comm, ppid, utime + stime ticks, process group)."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read().decode(errors="replace")
        except OSError:
            continue
        lp, rp = raw.find("("), raw.rfind(")")
        comm = raw[lp + 1:rp]
        rest = raw[rp + 2:].split()
        # fields after comm: state(0) ppid(1) pgrp(2) ... utime(11) stime(12)
        out[int(name)] = (comm, int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[2]))
    return out


def _machine_busy() -> tuple[int, int]:
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return sum(parts[:8]) - idle, sum(parts[:8])


class Sampler:
    def __init__(self, interval: float = 0.1, keep_s: float = 1500, postmaster=None):
        """postmaster: a callable returning the benchmark cluster's postmaster pid (or None), read at every sample
        (the cluster can be restarted during a run)."""
        self.interval = interval
        self.samples: collections.deque = collections.deque(maxlen=int(keep_s / interval))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.me = os.getpid()
        self.my_pgrp = os.getpgrp()
        self.postmaster = postmaster

    def _classify(self, procs: dict[int, tuple[str, int, int, int]]) -> dict[int, tuple[str, int]]:
        """pid -> (class, ticks); class `worker` is a client in a process group other than the orchestrator's."""
        out = {}
        pm = self.postmaster() if self.postmaster else None
        for pid, (comm, ppid, ticks, pgrp) in procs.items():
            if comm == "postgres":
                if pm is not None and pid != pm and ppid != pm:
                    continue  # another cluster on this machine
                out[pid] = ("postgres", ticks)
                continue
            mine = False
            p, hops = pid, 0
            while p > 1 and hops < 20:
                if p == self.me:
                    mine = True
                    break
                p = procs.get(p, ("", 0, 0, 0))[1]
                hops += 1
            if not mine:
                continue
            if comm.startswith("redis-server"):
                cls = "redis"
            elif comm == "hatchet-server":
                cls = "server"
            else:
                cls = "worker" if pgrp != self.my_pgrp else "client"
            out[pid] = (cls, ticks)
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.time()
            self.samples.append((t, _machine_busy(), self._classify(_read_procs())))
            self._stop.wait(self.interval)

    def start(self) -> "Sampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def window(self, t0: float, t1: float) -> dict | None:
        """Cores used on average in [t0, t1] by the machine and by each class; None if too few samples.
        `client_cores` includes `worker_cores`; `server_cores` is hatchet-server alone.

        Per process: the ticks in the last sample that still shows it, minus the ticks in the first sample of the
        window (or zero if it started during the window). Processes that exit inside the window (a driver's
        connections close as it finishes) keep what they used up to their last sample."""
        inside = [s for s in list(self.samples) if t0 - self.interval / 2 <= s[0] <= t1 + self.interval / 2]
        if len(inside) < 2:
            return None
        (ta, ma, pa), (tb, mb, _) = inside[0], inside[-1]
        secs = tb - ta
        if secs <= 0:
            return None
        busy = (mb[0] - ma[0]) / TICK / secs
        last: dict[int, tuple[str, int]] = {}
        for _, _, procs in inside[1:]:
            last.update(procs)
        per: dict[str, float] = {"postgres": 0.0, "redis": 0.0, "server": 0.0, "client": 0.0, "worker": 0.0}
        for pid, (cls, ticks) in last.items():
            before = pa.get(pid, (cls, 0))[1]
            used = max(0, ticks - before)
            per[cls] += used
            if cls == "worker":
                per["client"] += used
        return {"machine_cores": round(busy, 3), **{f"{k}_cores": round(v / TICK / secs, 3) for k, v in per.items()},
                "window_s": round(secs, 3)}
