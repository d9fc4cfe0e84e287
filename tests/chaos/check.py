"""The chaos suite's history checker: the ledger of every task execution (written by the task bodies, outside the
engine) and the acknowledged triggers against the engine's own records, dumped after quiescing.

    python check.py OUTPUT_DIR        (default tests/output/chaos)

Prints one line per invariant with its figure (`ok:` or `FAILED:`, then evidence for a failure), and last
`chaos: N passed, N failed` (as tests/cluster/*.sh do). Writes OUTPUT_DIR/summary.json.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

FINAL = {"COMPLETED", "FAILED", "CANCELLED"}
# Events that end an attempt a worker held; the attempt was lost (not reported by its worker) for the last three.
WORKER_ENDS = {"COMPLETED", "FAILED", "RETRYING"}
LOST_ENDS = {"REASSIGNED", "TIMED_OUT", "CANCELLED"}
MAX_EVIDENCE = 8


def load_jsonl(paths) -> list[dict]:
    out = []
    for path in sorted(paths):
        for line in Path(path).read_text().splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a record cut by kill -9
                pass
    return out


class Checker:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.meta = json.loads((out / "meta.json").read_text())
        self.dead_after = self.meta["dead_after_s"]
        self.tenant_label = {v: k for k, v in self.meta["tenants"].items()}
        eng = {p.stem: json.loads(p.read_text()) for p in (out / "engine").glob("*.json")}
        self.eng = eng
        self.ledger = load_jsonl((out / "ledger").glob("*.jsonl"))
        self.acks = load_jsonl((out / "acks").glob("*.jsonl"))
        faults_path = out / "faults.jsonl"
        self.all_faults = load_jsonl([faults_path]) if faults_path.exists() else []
        self.faults = [f for f in self.all_faults if f.get("id") is not None]
        rec_path = out / "recoveries.jsonl"
        self.recoveries = load_jsonl([rec_path]) if rec_path.exists() else []
        self.results: list[dict] = []

        self.runs = {r["id"]: r for r in eng["runs"]}
        self.tasks = {t["id"]: t for t in eng["tasks"]}
        for t in self.tasks.values():
            t["key"] = t["key"] or self.runs.get(t["run_id"], {}).get("key")
        # attempts[(task_id, retry)] = list of events with assigned_at (the end of a held attempt)
        self.attempt_end: dict[tuple[str, int], dict] = {}
        self.events_by_task: dict[str, list[dict]] = defaultdict(list)
        for e in eng["task_events"]:
            self.events_by_task[e["task_id"]].append(e)
            if e["assigned_at"] is not None:
                self.attempt_end[(e["task_id"], e["retry_count"])] = e
        # A timed-out attempt has a TIMED_OUT event (without assigned_at) followed by the RETRYING or FAILED that
        # `_fail_attempt` writes for it: the attempt was ended by the engine, not by its worker.
        self.timed_out = {(e["task_id"], e["retry_count"]): e for e in eng["task_events"]
                          if e["event_type"] == "TIMED_OUT"}
        for r in eng["running"]:
            self.attempt_end.setdefault((r["task_id"], r["retry_count"]), {
                "event_type": "RUNNING", "assigned_at": r["assigned_epoch"], "created_at": None, "task_id": r["task_id"],
                "retry_count": r["retry_count"], "worker_name": None, "reason": None})
        self.executions = self.pair_executions()

    def pair_executions(self) -> list[dict]:
        """One entry per execution: its start record and end record (None: the process died during the body)."""
        open_: dict[tuple, dict] = {}
        execs = []
        for rec in sorted(self.ledger, key=lambda r: r["t"]):
            k = (rec["pid"], rec["task_id"], rec["retry"])
            if rec["ph"] == "start":
                ex = {**rec, "start": rec["t"], "end": None, "ok": None}
                execs.append(ex)
                open_[k] = ex
            elif k in open_:
                ex = open_.pop(k)
                ex["end"], ex["ok"] = rec["t"], rec["ok"]
        return execs

    def end_kind(self, task_id: str, retry: int) -> str | None:
        """How the engine ended an attempt: its last event with assigned_at, or TIMED_OUT if it timed out."""
        if (task_id, retry) in self.timed_out:
            return "TIMED_OUT"
        end = self.attempt_end.get((task_id, retry))
        return end["event_type"] if end else None

    def result(self, name: str, ok: bool, figure: str, evidence: list[str] | None = None) -> None:
        self.results.append({"name": name, "ok": ok, "figure": figure, "evidence": (evidence or [])[:MAX_EVIDENCE],
                             "evidence_total": len(evidence or [])})

    # ------------------------------------------------------------------------------------------------ attribution

    def attribute(self, worker: str, t_from: float, t_to: float) -> dict | None:
        """The fault that explains an attempt lost between t_from and t_to on `worker`: one that hit the worker, its
        replica or Postgres and overlaps the window (with the time the engine needs to notice a dead worker)."""
        best = None
        for f in self.faults:
            if worker not in f.get("affects", []) and "*" not in f.get("affects", []):
                continue
            if f["t0"] <= t_to and f["t1"] + self.dead_after + 10 >= t_from:
                if best is None or worker in f["affects"]:
                    best = f
        return best

    # ------------------------------------------------------------------------------------------------ invariants

    def check_triggers(self) -> None:
        runs_by_key = defaultdict(list)
        for r in self.runs.values():
            if r["key"]:
                runs_by_key[r["key"]].append(r)
        sched = {s["id"]: s for s in self.eng["scheduled_runs"]}
        events = {e["id"] for e in self.eng["events"]}
        acked = [a for a in self.acks if a["kind"] in ("run", "schedule", "event")]
        counts = Counter(a["kind"] for a in acked)
        lost, unfinished = [], []
        for a in acked:
            if a["kind"] == "run":
                run = self.runs.get(a["id"])
                if run is None:
                    lost.append(f"run {a['id']} ({a['wf']} key {a['key']}) acknowledged by {a['replica']} at "
                                f"{a['t1']:.3f}: no such run in the engine")
                elif run["status"] not in FINAL:
                    unfinished.append(f"run {a['id']} ({a['wf']} key {a['key']}): status {run['status']}")
            elif a["kind"] == "schedule":
                s = sched.get(a["id"])
                if s is None:
                    lost.append(f"schedule {a['id']} (key {a['key']}): no such schedule")
                elif s["fired_run_id"] is None:
                    lost.append(f"schedule {a['id']} (key {a['key']}, due {s['run_at']:.3f}): never fired")
                else:
                    run = self.runs.get(s["fired_run_id"])
                    if run is None or run["status"] not in FINAL:
                        unfinished.append(f"schedule {a['id']} run {s['fired_run_id']}: "
                                          f"{run['status'] if run else 'missing'}")
            else:
                if a["id"] not in events:
                    lost.append(f"event {a['id']} (key {a['key']}): not stored")
                    continue
                rs = [r for r in runs_by_key.get(a["key"], []) if r["triggered_by"] == "event"]
                if not rs:
                    lost.append(f"event {a['id']} (key {a['key']}): triggered no run")
                for r in rs:
                    if r["status"] not in FINAL:
                        unfinished.append(f"event {a['id']} run {r['id']}: {r['status']}")
        errors = sum(1 for a in self.acks if a["kind"] == "error")
        acked_keys = {a["key"] for a in acked}
        ran_anyway = sum(1 for a in self.acks if a["kind"] == "error" and a["key"] in runs_by_key
                         and a["key"] not in acked_keys)
        self.result("no acknowledged trigger is lost (every one reaches a final state)", not lost and not unfinished,
                    f"acknowledged {len(acked)} (runs {counts['run']}, schedules {counts['schedule']}, events "
                    f"{counts['event']}), lost {len(lost)}, unfinished {len(unfinished)}; not acknowledged {errors} "
                    f"(of which {ran_anyway} ran anyway)", lost + unfinished)
        not_final = [f"run {r['id']} ({r['workflow']}, {r['triggered_by']}, key {r['key']}): {r['status']}"
                     for r in self.runs.values() if r["status"] not in FINAL]
        status = Counter(r["status"] for r in self.runs.values())
        self.result("every run in the engine is final once quiet", not not_final,
                    f"{len(self.runs)} runs: " + ", ".join(f"{k} {v}" for k, v in sorted(status.items())),
                    not_final)
        # Every kind of work the load triggers must also succeed (a workflow that only ever fails, say one the SDK
        # cannot run against this server, would pass every other invariant).
        by_wf = defaultdict(Counter)
        for r in self.runs.values():
            by_wf[r["workflow"]][r["status"]] += 1
        never = [f"{wf}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())) for wf, c in sorted(by_wf.items())
                 if not c["COMPLETED"]]
        self.result("every workflow the load runs completes (not only fails)", not never,
                    "; ".join(f"{wf} {c['COMPLETED']}/{sum(c.values())}" for wf, c in sorted(by_wf.items())), never)

    def check_completions(self) -> None:
        completed = Counter(e["task_id"] for e in self.eng["task_events"] if e["event_type"] == "COMPLETED")
        twice = [f"task {t} ({self.tasks.get(t, {}).get('readable_id')}): {n} COMPLETED events"
                 for t, n in completed.items() if n > 1]
        self.result("no task has two COMPLETED attempts", not twice,
                    f"{len(completed)} tasks completed, {len(twice)} twice", twice)
        stored = superseded = 0
        bad = []
        # A completion that never reached the engine: the attempt stayed RUNNING until its execution timeout and was
        # retried (the at-least-once path). The Python SDK drops a COMPLETED without a trace when its call is
        # cancelled: on UNAVAILABLE it closes the channel its other calls are in flight on (see README), so every
        # such completion must be next to a fault that hit the worker's replica or Postgres.
        dropped = Counter()
        for ex in self.executions:
            if ex["ok"] is not True:
                continue
            end = self.attempt_end.get((ex["task_id"], ex["retry"]))
            kind = self.end_kind(ex["task_id"], ex["retry"])
            if kind == "COMPLETED":
                stored += 1
            elif kind == "TIMED_OUT":
                f = self.attribute(ex["worker"], ex["end"] - 2, ex["end"] + 2)
                if f is None:
                    t_out = self.timed_out[(ex["task_id"], ex["retry"])]["created_at"]
                    bad.append(f"task {ex['task_id']} attempt {ex['retry']} ({ex['task']} key {ex['key']}) completed "
                               f"on {ex['worker']} at {ex['end']:.3f}, never reached the engine (timed out at "
                               f"{t_out:.3f}), and no fault hit {ex['worker']}, its replica or Postgres then")
                else:
                    dropped[f"{f['kind']}#{f['id']}"] += 1
            elif kind in LOST_ENDS:
                superseded += 1
            else:
                bad.append(f"task {ex['task_id']} attempt {ex['retry']} ({ex['task']} key {ex['key']}) completed on "
                           f"{ex['worker']} at {ex['end']:.3f} but the engine has {kind or 'no end for the attempt'}"
                           + (f" at {end['created_at']:.3f} ({end['reason']})" if end else ""))
        causes = ", ".join(f"{k} {v}" for k, v in sorted(dropped.items(), key=lambda kv: -kv[1]))
        self.result("every completion a worker reached is stored or superseded by a later attempt", not bad,
                    f"{stored} stored, {superseded} superseded (attempt lost to a fault), {sum(dropped.values())} "
                    f"dropped on the way to the engine and retried after the execution timeout (causes: "
                    f"{causes or 'none'}), {len(bad)} neither", bad)

    def check_executions(self) -> None:
        per_attempt = Counter((ex["task_id"], ex["retry"]) for ex in self.executions)
        twice = [f"task {t} attempt {r}: executed {n} times: " + "; ".join(
            f"{ex['worker']} pid {ex['pid']} {ex['start']:.3f}-{ex['end'] or 0:.3f}" for ex in self.executions
            if ex["task_id"] == t and ex["retry"] == r) for (t, r), n in per_attempt.items() if n > 1]
        unknown = [f"task {ex['task_id']} attempt {ex['retry']} ({ex['task']} key {ex['key']}) ran on {ex['worker']} "
                   f"at {ex['start']:.3f}: the engine recorded no such attempt"
                   for ex in self.executions if (ex["task_id"], ex["retry"]) not in self.attempt_end]
        self.result("executions per task <= attempts recorded (no attempt executed twice, none unknown)",
                    not twice and not unknown,
                    f"{len(self.executions)} executions of {len(per_attempt)} attempts; {len(twice)} attempts "
                    f"executed twice, {len(unknown)} executions of unknown attempts", twice + unknown)
        # Duplicates: executions of attempts the engine lost (reassigned, timed out) while the body ran anyway.
        dups, unexplained = [], []
        by_cause = Counter()
        tasks_with_more = 0
        per_task = Counter(ex["task_id"] for ex in self.executions)
        for ex in self.executions:
            end = self.attempt_end.get((ex["task_id"], ex["retry"]))
            kind = self.end_kind(ex["task_id"], ex["retry"])
            if not end or kind not in LOST_ENDS or kind == "CANCELLED":
                continue
            if per_task[ex["task_id"]] < 2:
                continue
            dups.append(ex)
            # A timed-out attempt whose body finished: its COMPLETED was lost around a fault (check_completions).
            t_to = ex["end"] + 2 if kind == "TIMED_OUT" and ex["end"] else end["created_at"] or ex["start"]
            f = self.attribute(ex["worker"], ex["start"] - 1, t_to)
            if f is None:
                unexplained.append(
                    f"task {ex['task_id']} attempt {ex['retry']} ({ex['task']} key {ex['key']}) ran on "
                    f"{ex['worker']} {ex['start']:.3f}-{ex['end'] or 0:.3f} (ok={ex['ok']}); engine: "
                    f"{kind} at {end['created_at']:.3f} ({end['reason']}), assigned {end['assigned_at']:.3f}")
            else:
                by_cause[f"{f['kind']}#{f['id']}" + (" (COMPLETED dropped, timed out)" if kind == "TIMED_OUT" else "")] += 1
        tasks_with_more = sum(1 for t, n in per_task.items() if n > 1)
        rate = len(dups) / max(1, len(self.executions))
        causes = ", ".join(f"{k} {v}" for k, v in sorted(by_cause.items(), key=lambda kv: -kv[1]))
        self.result("every duplicate execution (at-least-once) is explained by a fault", not unexplained,
                    f"{len(dups)} duplicate executions in {tasks_with_more} tasks with more than one execution "
                    f"(rate {rate:.2%} of {len(self.executions)}); causes: {causes or 'none'}; "
                    f"unexplained {len(unexplained)}", unexplained)

    def check_max_runs(self) -> None:
        group_of = {a["key"]: (a["tenant"], a.get("group")) for a in self.acks if a["wf"] == "rr"}
        intervals = defaultdict(list)
        raw = defaultdict(list)
        for ex in self.executions:
            if ex["task"] != "chaos-rr" or ex["key"] not in group_of:
                continue
            end = self.attempt_end.get((ex["task_id"], ex["retry"]))
            stop = ex["end"] or (end and end["created_at"]) or ex["start"]
            g = group_of[ex["key"]]
            raw[g].append((ex["start"], stop, ex))
            if end and end["event_type"] in WORKER_ENDS:
                intervals[g].append((ex["start"], stop, ex))

        def peak(items):
            points = sorted([(s, 1) for s, _, _ in items] + [(e, -1) for _, e, _ in items], key=lambda p: (p[0], p[1]))
            cur = best = 0
            for _, d in points:
                cur += d
                best = max(best, cur)
            return best

        import flows_constants as fc

        over = []
        for g, items in intervals.items():
            p = peak(items)
            if p > fc.RR_MAX_RUNS:
                over.append(f"tenant {g[0]} key {g[1]}: {p} at once")
        worst = max((peak(v) for v in intervals.values()), default=0)
        worst_raw = max((peak(v) for v in raw.values()), default=0)
        n = sum(len(v) for v in intervals.values())
        self.result("max_runs never exceeded (GROUP_ROUND_ROBIN, from ledger intervals)", not over,
                    f"{n} executions in {len(intervals)} keys, max_runs {fc.RR_MAX_RUNS}, most at once {worst} "
                    f"(counting executions of lost attempts too: {worst_raw})", over)

    def check_rate_limit(self) -> None:
        import flows_constants as fc

        limits = {(r["tenant_id"], r["key"]): r for r in self.eng["rate_limits"]}
        over = []
        total = windows = 0
        for tenant in self.meta["tenants"].values():
            rl = limits.get((tenant, fc.RATE_LIMIT_KEY))
            if rl is None:
                continue
            w, limit = rl["window_s"], rl["limit_value"]
            times = sorted(end["assigned_at"] for (t, _), end in self.attempt_end.items()
                           if self.tasks.get(t, {}).get("tenant_id") == tenant
                           and self.tasks.get(t, {}).get("queue", "").find("chaos-rate") >= 0)
            total += len(times)
            i = 0
            while i < len(times):
                start = times[i]
                j = i
                # 50 ms of slack: assigned_at and the rate check's clock are read apart
                while j < len(times) and times[j] < start + w - 0.05:
                    j += 1
                windows += 1
                if j - i > limit:
                    over.append(f"tenant {self.tenant_label[tenant]}: {j - i} assignments in the window from "
                                f"{start:.3f} (limit {limit} per {w}s)")
                i = max(j, i + 1)
        self.result("rate-limit units per window never exceeded", not over,
                    f"{total} rate-limited assignments in {windows} windows, {len(over)} windows over the limit", over)

    def check_quiet(self) -> None:
        e = self.eng
        self.result("no running row once quiet", not e["running"], f"{len(e['running'])} rows in hatchet.running",
                    [f"task {r['task_id']} attempt {r['retry_count']} queue {r['queue']} worker {r['worker_id']} "
                     f"assigned {r['assigned_at']} timeout {r['timeout_at']}" for r in e["running"]])
        held = [g for g in e["concurrency_groups"] if g["running"] != 0]
        self.result("no leaked concurrency slot once quiet", not e["concurrency_slots"] and not held,
                    f"{len(e['concurrency_slots'])} concurrency_slots rows, {len(held)} groups with running > 0",
                    [f"slot {s['scope']}/{s['key']} task {s['task_id']}" for s in e["concurrency_slots"]] +
                    [f"group {g['scope']}/{g['key']} running {g['running']}" for g in held])
        used = [s for s in e["worker_slots"] if s["used"] != 0]
        self.result("no leaked worker slot once quiet", not used,
                    f"{len(e['worker_slots'])} worker slot rows, {len(used)} with used > 0",
                    [f"worker {s['name']} ({s['worker_id']}, active {s['is_active']}): used {s['used']} of "
                     f"{s['capacity']}" for s in used])
        queued = e["ready_queue"] + e["delayed_queue"] + e["concurrency_queue"]
        self.result("no match and no queued attempt once quiet", not e["matches"] and not queued,
                    f"{len(e['matches'])} matches, {len(queued)} queued attempts",
                    [f"match {m['id']} run {m['run_id']} kind {m['kind']}" for m in e["matches"]] +
                    [f"queued task {q['task_id']} queue {q['queue']}" for q in queued])

    def check_crons(self) -> None:
        ticks = defaultdict(list)
        for r in self.runs.values():
            if r["triggered_by"] == "cron":
                ticks[(r["tenant_id"], r["scheduled_at"])].append(r)
        twice = [f"tick {k[1]} (tenant {self.tenant_label.get(k[0])}): runs " + ", ".join(r["id"] for r in v)
                 for k, v in ticks.items() if len(v) > 1]
        # Missed seconds between the first and the last tick, outside Postgres outages (a restart fires at most one
        # catch-up tick for what it missed, by design).
        from datetime import datetime

        def epoch(s: str) -> float:
            return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

        outages = [(r["t_down"], (r["t_bgworker"] or r["t_ready"] or r["t_down"]) + 2) for r in self.recoveries]
        missed = []
        for tenant in {k[0] for k in ticks}:
            secs = sorted(round(epoch(k[1])) for k in ticks if k[0] == tenant)
            have = set(secs)
            for s in range(secs[0], secs[-1] + 1):
                if s not in have and not any(a - 1 <= s <= b for a, b in outages):
                    missed.append(f"tenant {self.tenant_label.get(tenant)}: no run for the tick at {s}")
        n = sum(len(v) for v in ticks.values())
        self.result("each cron tick fired exactly once", not twice and not missed,
                    f"{n} cron runs for {len(ticks)} ticks, {len(twice)} ticks fired twice, {len(missed)} ticks "
                    f"missed outside Postgres outages", twice + missed)

    def check_liveness(self) -> None:
        slow_bg, slow_assign = [], []
        interrupted = 0
        assigned = sorted(end["assigned_at"] for end in self.attempt_end.values())
        figures_bg, figures_as = [], []
        for r in self.recoveries:
            if r["t_ready"] is None or r["t_bgworker"] is None:
                slow_bg.append(f"{r['kind']} at {r['t_down']:.3f}: Postgres ready {r['t_ready']}, "
                               f"background worker {r['t_bgworker']}")
                continue
            d = r["t_bgworker"] - r["t_ready"]
            figures_bg.append(d)
            if d > 10:
                slow_bg.append(f"{r['kind']} at {r['t_down']:.3f}: background worker back {d:.1f}s after Postgres")
            after = [a for a in assigned if a >= r["t_ready"]]
            # Postgres went away again before anything could be assigned: that recovery is measured on its own.
            next_down = min((x["t_down"] for x in self.recoveries if x["t_down"] > r["t_ready"]), default=None)
            if next_down is not None and next_down < r["t_ready"] + 5 and (not after or after[0] > next_down):
                interrupted += 1
                continue
            if after:
                da = after[0] - r["t_ready"]
                figures_as.append(da)
                if da > 5:
                    slow_assign.append(f"{r['kind']} at {r['t_down']:.3f}: first assignment {da:.1f}s after "
                                       f"Postgres was back")
            else:
                slow_assign.append(f"{r['kind']} at {r['t_down']:.3f}: no assignment after recovery")
        self.result("liveness: the background worker is back within 10 s of each Postgres restart", not slow_bg,
                    f"{len(self.recoveries)} restarts, slowest {max(figures_bg, default=0):.1f}s", slow_bg)
        self.result("liveness: the first assignment after each Postgres recovery within 5 s", not slow_assign,
                    f"{len(figures_as)} recoveries, slowest {max(figures_as, default=0):.1f}s ({interrupted} cut short "
                    f"by the next outage within 5 s)", slow_assign)
        # An attempt the engine held as RUNNING while no worker executed it (no ledger start) must be released within
        # the heartbeat timeout (worker_dead_after) plus a maintenance pass.
        started = {(ex["task_id"], ex["retry"]) for ex in self.executions}
        names = {w["id"]: w["name"] for w in self.eng["workers"]}
        bound = self.dead_after + 8
        orphans = []
        count = 0
        for (t, retry), end in self.attempt_end.items():
            if (t, retry) in started or end["event_type"] == "RUNNING":
                continue
            count += 1
            # After a Postgres outage every worker gets worker_dead_after again from its end (DESIGN.md): the bound
            # counts from the last recovery while the attempt was held.
            since = max([end["assigned_at"]] + [x["t_ready"] for x in self.recoveries if x["t_ready"]
                                                and end["assigned_at"] <= x["t_down"] <= (end["created_at"] or 0)])
            held = (end["created_at"] or 0) - since
            if held > bound:
                task = self.tasks.get(t, {})
                worker = names.get(end.get("worker_id"), end.get("worker_name") or "?")
                f = self.attribute(worker, end["assigned_at"], end["created_at"])
                orphans.append(f"task {t} attempt {retry} ({task.get('readable_id')} key {task.get('key')}): assigned "
                               f"{end['assigned_at']:.3f} to {worker} ({end.get('worker_id')}), never started, held "
                               f"{held:.1f}s (since {since:.3f}) until {end['event_type']} ({end['reason']})"
                               + (f"; near fault {f['kind']}#{f['id']} {f['target']}" if f else ""))
        self.result(f"no attempt held RUNNING without a worker executing it for longer than {bound} s "
                    f"(worker_dead_after + a pass)", not orphans,
                    f"{count} attempts assigned but never started, {len(orphans)} held longer", orphans)

    def check_grace(self) -> None:
        """DESIGN.md: after an outage workers get a grace period counted from when the engine was reachable again. A
        worker declared dead (its attempts REASSIGNED) must have been hit itself: killed or stopped, or its replica
        killed or stopped. Reaped only because Postgres was away is the duplicate storm of issue 16."""
        names = {w["id"]: w["name"] for w in self.eng["workers"]}
        registered = {w["id"]: w["created_at"] for w in self.eng["workers"]}
        own_kinds = {"worker_kill", "worker_stop", "server_kill", "server_kill_mid_assign", "server_stop",
                     "server_kill_left_dead"}
        storm, total = [], 0
        by_fault = Counter()
        # Workers declared dead worker_dead_after after they registered (with Postgres up): their SDK's first
        # heartbeat came later than that. The TypeScript SDK beats from a worker thread that loads the SDK again
        # first; on a loaded machine that took 18 s, more than this suite's lowered worker_dead_after (10 s).
        late_first_beat = []
        for (t, retry), end in self.attempt_end.items():
            # Only deaths count here: an attempt released because its worker never acknowledged it (an assignment
            # committed but never pushed) is REASSIGNED too, with its own reason, on a live worker by design.
            if end["event_type"] != "REASSIGNED" or "heartbeats" not in (end["reason"] or ""):
                continue
            total += 1
            name = names.get(end.get("worker_id"), end.get("worker_name") or "?")
            at = end["created_at"]
            own = [f for f in self.faults if f["kind"] in own_kinds and name in f.get("affects", [])
                   and f["t0"] <= at and f["t1"] + self.dead_after + 10 >= at - self.dead_after]
            if own:
                continue
            pg = [f for f in self.faults if "*" in f.get("affects", []) and f["t0"] <= at
                  and f["t1"] + self.dead_after + 10 >= at]
            since_register = at - (registered.get(end.get("worker_id")) or 0)
            back = max([f.get("t_ready") or f["t1"] for f in pg], default=0)
            if since_register <= self.dead_after + 2 and registered.get(end.get("worker_id"), 0) >= back:
                late_first_beat.append(f"{name} registered {since_register:.1f}s before")
                continue
            cause = f"{pg[-1]['kind']}#{pg[-1]['id']} (Postgres back at {pg[-1].get('t_ready') or pg[-1]['t1']:.3f})" \
                if pg else "no fault"
            by_fault[cause.split(" ")[0]] += 1
            task = self.tasks.get(t, {})
            storm.append(f"task {t} attempt {retry} ({task.get('readable_id')} key {task.get('key')}) on live worker "
                         f"{name}: assigned {end['assigned_at']:.3f}, REASSIGNED at {at:.3f} ({end['reason']}) "
                         f"after {cause}")
        self.result("no live worker is declared dead because Postgres was away (grace period after an outage)",
                    not storm, f"{total} attempts reassigned, {len(storm)} of them from workers no fault hit ("
                    + (", ".join(f"{k} {v}" for k, v in by_fault.items()) or "none") + f"); {len(late_first_beat)} "
                    "from workers registered with Postgres up that never heartbeated within worker_dead_after ("
                    + (", ".join(f"{k} x{v}" for k, v in Counter(late_first_beat).items()) or "none") + ")", storm)

    def check_wal_full(self) -> None:
        """pg_wal on a full volume: Postgres must stop on the failed WAL write (PANIC: nothing acknowledged without
        its WAL) and, once there is space again, come back with the engine (background worker, assignments); that
        nothing acknowledged was lost across it is the other invariants' part."""
        faults = [f for f in self.faults if f["kind"] == "pg_wal_full"]
        bad = []
        for f in faults:
            what = f"pg_wal_full#{f['id']} at {f['t0']:.3f}"
            if f.get("t_stopped") is None:
                bad.append(f"{what}: Postgres kept answering with pg_wal full ({f.get('filled', 0)} bytes filled)")
            if not f.get("enospc_log_lines"):
                bad.append(f"{what}: postgres.log shows no 'No space left on device'")
            if f.get("t_ready") is None or f.get("t_bgworker") is None:
                bad.append(f"{what}: not back after space was given back (ready {f.get('t_ready')}, background "
                           f"worker {f.get('t_bgworker')})")
        expected = bool(self.meta.get("wal_fs"))
        if expected and not faults:
            bad.append("pg_wal is on a tmpfs but no pg_wal_full fault was injected")
        stops = [f["t_stopped"] - f["t0"] for f in faults if f.get("t_stopped")]
        backs = [f["t_ready"] - f["t_space"] for f in faults if f.get("t_ready") and f.get("t_space")]
        self.result("pg_wal full: Postgres stops on the failed WAL write and the engine resumes once there is space",
                    not bad,
                    f"{len(faults)} faults" + (f" (pg_wal {self.meta.get('wal_fs')} tmpfs)" if expected else
                                               " (no tmpfs for pg_wal: not run)")
                    + (f"; stopped {min(stops):.1f}-{max(stops):.1f}s after the volume filled, back "
                       f"{min(backs):.1f}-{max(backs):.1f}s after space was freed; PANIC lines "
                       f"{sum(f.get('panic_log_lines', 0) for f in faults)}, postmaster survived "
                       f"{sum(1 for f in faults if f.get('postmaster_survived'))}" if stops and backs else ""), bad)

    def run(self) -> int:
        for check in (self.check_triggers, self.check_completions, self.check_executions, self.check_max_runs,
                      self.check_rate_limit, self.check_quiet, self.check_crons, self.check_liveness,
                      self.check_grace, self.check_wal_full):
            try:
                check()
            except Exception as err:  # a checker bug is a failure, not a crash
                import traceback

                self.result(check.__name__, False, f"checker error {type(err).__name__}: {err}",
                            traceback.format_exc().splitlines()[-6:])
        kinds = Counter(f["kind"] for f in self.faults)
        print(f"faults injected: {len(self.faults)} (" + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) + ")")
        failed_faults = [f for f in self.all_faults if f.get("error")]
        if failed_faults:
            print(f"faults that could not be injected: {len(failed_faults)}: " +
                  "; ".join(f"{f['kind']}: {f['error']}" for f in failed_faults))
        unexpected = [f for f in self.all_faults if f.get("kind") in ("self_exit", "postgres_died")]
        if unexpected:
            print(f"not injected, happened anyway: " + "; ".join(
                f"{f['kind']} {f.get('target', '')} at {f['t0']:.3f}" for f in unexpected))
        passed = failed = 0
        for r in self.results:
            print(f"{'ok' if r['ok'] else 'FAILED'}: {r['name']}: {r['figure']}")
            if not r["ok"]:
                for line in r["evidence"]:
                    print(f"    {line}")
                if r["evidence_total"] > len(r["evidence"]):
                    print(f"    ... {r['evidence_total'] - len(r['evidence'])} more")
            passed += r["ok"]
            failed += not r["ok"]
        summary = {"meta": self.meta, "faults": dict(kinds), "results": self.results}
        (self.out / "summary.json").write_text(json.dumps(summary, indent=1))
        print(f"chaos: {passed} passed, {failed} failed")
        return 0 if failed == 0 else 1


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    out = Path(argv[0]) if argv else here.parents[1] / "tests" / "output" / "chaos"
    return Checker(out).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
