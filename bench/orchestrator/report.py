"""Summaries and output: percentiles, medians with spread, results.json, results.md and three SVG charts written
directly (no plotting library to install).
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

COLORS = {"pg_hatchet": "#d9480f", "baseline": "#495057", "graphile": "#1971c2", "pgboss": "#2f9e44",
          "procrastinate": "#9c36b5", "celery": "#e8590c", "hatchet_sdk": "#d9480f", "celery_server": "#868e96",
          "hatchet_sdk_2p": "#f76707", "hatchet_ts": "#1098ad"}
FALLBACK = ["#0ca678", "#f08c00", "#5c940d", "#c2255c"]


# ---------------------------------------------------------------------------------------------- statistics
def quantile(sorted_xs: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (the common 'type 7' definition)."""
    if not sorted_xs:
        return float("nan")
    pos = (len(sorted_xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def percentiles(samples: list[float]) -> dict:
    xs = sorted(float(x) for x in samples)
    return {"p50_ms": quantile(xs, 0.50), "p95_ms": quantile(xs, 0.95), "p99_ms": quantile(xs, 0.99),
            "max_ms": xs[-1], "mean_ms": sum(xs) / len(xs), "samples": len(xs)}


def brief(scenario: str, m: dict) -> str:
    if "p50_ms" in m:
        sat = " SATURATED" if m.get("saturated") else ""
        return f"p50 {m['p50_ms']:.2f} ms, p99 {m['p99_ms']:.2f} ms{sat}"
    if "tasks_per_s" in m:
        return f"{m['tasks_per_s']:.0f} tasks/s"
    if "seconds" in m:
        return f"{m['seconds']:.3f} s"
    return ""


def summarize(runs: list[dict]) -> dict:
    """(scenario, param, system) -> metric -> {median, min, max, n} over the passed repetitions."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        if r["status"] == "passed":
            groups[(r["scenario"], r["param"], r["system"])].append(r["metrics"])
    out = {}
    for key, ms in groups.items():
        agg = {}
        for k in ms[0]:
            vals = [m[k] for m in ms if isinstance(m.get(k), (int, float)) and not isinstance(m.get(k), bool)]
            if vals:
                agg[k] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}
            elif isinstance(ms[0][k], bool):
                agg[k] = {"any": any(m.get(k) for m in ms)}
        out[key] = agg
    return out


# ---------------------------------------------------------------------------------------------- formatting
def fmt(x: float | None, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if digits == 0 and float(x).is_integer():
        return f"{int(x):,}"
    if abs(x) >= 10000:
        return f"{x:,.0f}"
    if digits == 0 and abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.{max(digits, 1) if digits else 1}f}"
    return f"{x:.{max(digits, 2)}f}"


def compact(x: float) -> str:
    """Short labels for chart bars: 0.42, 3.1, 27, 8.3k."""
    if x >= 1000:
        return f"{x / 1000:.1f}k"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}".rstrip("0").rstrip(".")
    return f"{x:.2f}"


def cell(agg: dict | None, key: str, digits: int = 0) -> str:
    if not agg or key not in agg or "median" not in agg[key]:
        return "–"
    a = agg[key]
    if a["n"] > 1:
        return f"{fmt(a['median'], digits)} ({fmt(a['min'], digits)}–{fmt(a['max'], digits)})"
    return fmt(a["median"], digits)


def med(agg: dict | None, key: str) -> float | None:
    if not agg or key not in agg or "median" not in agg[key]:
        return None
    return agg[key]["median"]


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


# ---------------------------------------------------------------------------------------------- SVG charts
def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Svg:
    def __init__(self, w: int, h: int):
        self.w, self.h, self.parts = w, h, []

    def add(self, s: str) -> None:
        self.parts.append(s)

    def text(self, x, y, s, size=12, anchor="start", weight="normal", color="#212529", rotate=None):
        tr = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate else ""
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" font-weight="{weight}"'
                 f' fill="{color}" font-family="sans-serif"{tr}>{_esc(str(s))}</text>')

    def line(self, x1, y1, x2, y2, color="#adb5bd", width=1, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{color}"'
                 f' stroke-width="{width}"{d}/>')

    def rect(self, x, y, w, h, color):
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" fill="{color}"/>')

    def circle(self, x, y, r, color):
        self.add(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{color}"/>')

    def polyline(self, pts, color, width=2):
        p = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        self.add(f'<polyline points="{p}" fill="none" stroke="{color}" stroke-width="{width}"/>')

    def save(self, path: Path) -> None:
        body = "\n".join(self.parts)
        path.write_text(f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}"'
                        f' viewBox="0 0 {self.w} {self.h}">\n<rect width="100%" height="100%" fill="white"/>\n'
                        f"{body}\n</svg>\n")


def color_of(name: str, i: int) -> str:
    return COLORS.get(name, FALLBACK[i % len(FALLBACK)])


def nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * e:
            return m * e
    return 10 * e


def chart_throughput(path: Path, labels: dict, summary: dict) -> bool:
    """Horizontal bars: drain and steady-state tasks/s per system, whiskers = min..max over repetitions."""
    rows = []
    for sc in ("drain", "steady"):
        for (s_sc, param, sysname), agg in summary.items():
            if s_sc == sc and "tasks_per_s" in agg:
                rows.append((sc, sysname, agg["tasks_per_s"]))
    if not rows:
        return False
    order = list(labels)
    rows.sort(key=lambda r: (r[0] != "drain", order.index(r[1]) if r[1] in order else 99))
    left, top, bar, gap = 230, 50, 18, 6
    width = 860
    h = top + len(rows) * (bar + gap) + 60
    svg = Svg(width, h)
    svg.text(width / 2, 24, "Throughput (tasks/s, median; whiskers: min–max)", 15, "middle", "bold")
    vmax = nice_max(max(r[2]["max"] for r in rows))
    plot_w = width - left - 80
    for i in range(6):
        x = left + plot_w * i / 5
        svg.line(x, top - 5, x, h - 45, "#e9ecef")
        svg.text(x, h - 28, fmt(vmax * i / 5), 11, "middle", color="#495057")
    y = top
    for idx, (sc, sysname, a) in enumerate(rows):
        c = color_of(sysname, idx)
        svg.text(left - 8, y + bar - 4, f"{labels.get(sysname, sysname)} · {sc}", 12, "end")
        svg.rect(left, y, plot_w * a["median"] / vmax, bar, c if sc == "drain" else c + "99")
        if a["n"] > 1:
            svg.line(left + plot_w * a["min"] / vmax, y + bar / 2, left + plot_w * a["max"] / vmax, y + bar / 2,
                     "#212529", 1.5)
        svg.text(left + plot_w * a["median"] / vmax + 6, y + bar - 4, fmt(a["median"]), 11)
        y += bar + gap
    svg.save(path)
    return True


def chart_latency(path: Path, labels: dict, summary: dict, rates: list) -> bool:
    """Per offered rate: p50 / p95 / p99 enqueue-to-start latency per system, log scale."""
    panels = []
    for rate in rates:
        rows = [(sysname, agg) for (sc, param, sysname), agg in summary.items()
                if sc == "latency" and param == rate and "p50_ms" in agg]
        order = list(labels)
        rows.sort(key=lambda r: order.index(r[0]) if r[0] in order else 99)
        if rows:
            panels.append((rate, rows))
    if not panels:
        return False
    allv = [agg[k]["median"] for _, rows in panels for _, agg in rows for k in ("p50_ms", "p95_ms", "p99_ms")]
    lo = 10 ** math.floor(math.log10(max(min(allv), 0.01)))
    hi = 10 ** math.ceil(math.log10(max(allv) * 1.01))
    panel_h, top, left = 230, 50, 70
    width = 900
    h = top + len(panels) * (panel_h + 50) + 30
    svg = Svg(width, h)
    svg.text(width / 2, 24, "Enqueue-to-start latency (ms, log scale; bars p50 / p95 / p99)", 15, "middle", "bold")

    def ypos(v, y0):
        v = max(v, lo)
        return y0 + panel_h - panel_h * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    y0 = top
    for rate, rows in panels:
        svg.text(left, y0 - 8, f"offered load {rate}/s", 13, weight="bold")
        d = lo
        while d <= hi * 1.001:
            yy = ypos(d, y0)
            svg.line(left, yy, width - 20, yy, "#e9ecef")
            svg.text(left - 6, yy + 4, fmt(d, 2) if d < 1 else fmt(d), 10, "end", color="#495057")
            d *= 10
        group_w = (width - left - 40) / max(len(rows), 1)
        for i, (sysname, agg) in enumerate(rows):
            c = color_of(sysname, i)
            gx = left + 10 + i * group_w
            bw = min(22, (group_w - 20) / 3)
            for j, k in enumerate(("p50_ms", "p95_ms", "p99_ms")):
                v = agg[k]["median"]
                yy = ypos(v, y0)
                svg.rect(gx + j * (bw + 3), yy, bw, y0 + panel_h - yy, c if j == 0 else c + ("bb" if j == 1 else "77"))
                svg.text(gx + j * (bw + 3) + bw / 2, yy - 3, compact(v), 9, "middle")
            name = labels.get(sysname, sysname)
            if agg.get("saturated", {}).get("any"):
                name += " (saturated)"
            svg.text(gx + 1.5 * (bw + 3), y0 + panel_h + 14, name, 10, "middle")
        y0 += panel_h + 50
    svg.save(path)
    return True


def chart_backlog(path: Path, labels: dict, summary: dict) -> bool:
    """Claim latency p50 against backlog size, log-log, one line per system."""
    series = defaultdict(list)
    for (sc, param, sysname), agg in summary.items():
        if sc == "backlog" and "p50_ms" in agg:
            series[sysname].append((param, agg["p50_ms"]["median"], agg["p99_ms"]["median"]))
    if not series:
        return False
    xs = sorted({p for pts in series.values() for p, _, _ in pts})
    ys = [v for pts in series.values() for _, a, b in pts for v in (a, b)]
    xlo, xhi = 10 ** math.floor(math.log10(min(xs))), 10 ** math.ceil(math.log10(max(xs)))
    if xhi == xlo:
        xhi = xlo * 10
    ylo, yhi = 10 ** math.floor(math.log10(max(min(ys), 0.01))), 10 ** math.ceil(math.log10(max(ys) * 1.01))
    width, height, left, top, pw, ph = 760, 440, 80, 50, 480, 320
    svg = Svg(width, height)
    svg.text(width / 2, 24, "Claim latency vs backlog (ms, log-log; solid p50, dashed p99)", 15, "middle", "bold")

    def px(x):
        return left + pw * (math.log10(x) - math.log10(xlo)) / (math.log10(xhi) - math.log10(xlo))

    def py(y):
        y = max(y, ylo)
        return top + ph - ph * (math.log10(y) - math.log10(ylo)) / (math.log10(yhi) - math.log10(ylo))

    d = xlo
    while d <= xhi * 1.001:
        svg.line(px(d), top, px(d), top + ph, "#e9ecef")
        svg.text(px(d), top + ph + 16, f"{d:,.0f}", 10, "middle", color="#495057")
        d *= 10
    d = ylo
    while d <= yhi * 1.001:
        svg.line(left, py(d), left + pw, py(d), "#e9ecef")
        svg.text(left - 6, py(d) + 4, fmt(d, 2) if d < 1 else fmt(d), 10, "end", color="#495057")
        d *= 10
    svg.text(left + pw / 2, top + ph + 36, "tasks queued", 12, "middle")
    order = list(labels)
    for i, (sysname, pts) in enumerate(sorted(series.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99)):
        pts.sort()
        c = color_of(sysname, i)
        svg.polyline([(px(x), py(a)) for x, a, _ in pts], c)
        svg.add('<polyline points="' + " ".join(f"{px(x):.1f},{py(b):.1f}" for x, _, b in pts)
                + f'" fill="none" stroke="{c}" stroke-width="1.5" stroke-dasharray="5,4"/>')
        for x, a, _ in pts:
            svg.circle(px(x), py(a), 3.5, c)
        ly = top + 10 + i * 20
        svg.rect(left + pw + 20, ly - 9, 14, 10, c)
        svg.text(left + pw + 40, ly, labels.get(sysname, sysname), 12)
    svg.save(path)
    return True


# ---------------------------------------------------------------------------------------------- markdown
def write(out: Path, meta: dict, systems, runs: list[dict]) -> None:
    summary = summarize(runs)
    labels = {s.name: s.label for s in systems}
    labels.update({"hatchet_sdk": "hatchet-sdk → hatchet-server → pg_hatchet", "celery_server": "Celery + Redis",
                   "hatchet_sdk_2p": "hatchet-sdk, 2 worker processes → hatchet-server → pg_hatchet",
                   "hatchet_ts": "TypeScript SDK → hatchet-server → pg_hatchet"})
    charts = {
        "throughput.svg": chart_throughput(out / "throughput.svg", labels, summary),
        "latency.svg": chart_latency(out / "latency.svg", labels, summary, meta.get("sizes", {}).get("rates", [])),
        "backlog.svg": chart_backlog(out / "backlog.svg", labels, summary),
    }
    data = {
        "meta": meta,
        "systems": {s.name: {"label": s.label, "store": s.store, "config": s.config, "unavailable": s.unavailable}
                    for s in systems},
        "runs": runs,
        "summary": [{"scenario": k[0], "param": k[1], "system": k[2], "metrics": v} for k, v in summary.items()],
    }
    (out / "results.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    prof = profile_markdown(runs, labels)
    if prof:
        (out / "profile.md").write_text(prof)
    (out / "results.md").write_text(markdown(meta, systems, labels, runs, summary, charts))


def markdown(meta, systems, labels, runs, summary, charts) -> str:
    L: list[str] = []
    m = meta.get("machine", {})
    sz = meta.get("sizes", {})
    names = [s.name for s in systems]
    L.append(f"# pg_hatchet benchmark — {meta.get('date', '')} ({meta.get('size')})\n")
    L.append(f"- Machine: {m.get('cores')} cores ({m.get('cpu')}), {m.get('mem_mb')} MB RAM, {m.get('os')}")
    L.append(f"- {meta.get('postgres', 'Postgres ?')}" + (f"; Redis {meta['redis']}" if meta.get("redis") else ""))
    L.append(f"- Command: `{meta.get('command')}` ({meta.get('elapsed_s')} s)")
    if meta.get("loadavg_1m"):
        a, b = meta["loadavg_1m"]
        L.append(f"- Load average (1 min) at the start / end: {a} / {b} on {m.get('cores')} cores"
                 + (" — **other work was running: the figures are noisy**" if max(a, b) > (m.get("cores") or 1) else ""))
    L.append(f"- Sizes: {json.dumps(sz)}")
    L.append(f"- Shared knobs: {json.dumps(meta.get('common'))}")
    L.append("- Postgres settings (identical for every system): "
             + ", ".join(f"`{k}={v}`" for k, v in meta.get("pg_settings", {}).items()))
    if meta.get("interrupted"):
        L.append("- **Interrupted**: the run was stopped before its end; only the runs listed below were made.")
    if meta.get("reps_for"):
        L.append(f"- Repetitions: {sz.get('reps')} (or `--reps`), except "
                 + ", ".join(f"{k} {v}" for k, v in meta["reps_for"].items()) + " (`--reps-for`)")
    L.append("- Every figure is the median over the repetitions, with (min–max) when there is more than one. "
             "Ratios are pg_hatchet's figure divided by the other system's.\n")
    for name, ok in charts.items():
        if ok:
            L.append(f"![{name}]({name})")
    L.append("")

    def g(sc, param, sysname):
        return summary.get((sc, param, sysname))

    h = "pg_hatchet"
    # Drain
    L.append("## Drain\n")
    L.append(f"{sz.get('drain_n')} tasks enqueued in batches, then worked to completion by idle workers.\n")
    L.append("| system | tasks/s | enqueue tasks/s | pg_hatchet ÷ system | CPU cores: machine / Postgres / client |")
    L.append("|---|---|---|---|---|")
    hd = med(g("drain", None, h), "tasks_per_s")
    for n in names:
        a = g("drain", None, n)
        if a:
            L.append(f"| {labels[n]} | {cell(a, 'tasks_per_s')} | {cell(a, 'enqueue_per_s')} | "
                     f"{ratio(hd, med(a, 'tasks_per_s')) if n != h else '1.00×'} | "
                     f"{cell(a, 'cpu_machine_cores', 2)} / {cell(a, 'cpu_postgres_cores', 2)} / {cell(a, 'cpu_client_cores', 2)} |")
    L.append("")
    # Steady
    L.append("## Steady state\n")
    L.append(f"Producers and workers together for {sz.get('steady_s')} s (after {sz.get('steady_warm')} s warm-up); "
             "producers keep at most 5,000 tasks waiting. CPU in cores used on average (machine = everything "
             "running; client = drivers and worker processes); CPU ms per 1k tasks counts Postgres, Redis and "
             "client processes only.\n")
    L.append("| system | tasks/s | pg_hatchet ÷ system | CPU cores machine | Postgres | client | CPU ms per 1k tasks |")
    L.append("|---|---|---|---|---|---|---|")
    hs = med(g("steady", None, h), "tasks_per_s")
    for n in names:
        a = g("steady", None, n)
        if a:
            L.append(f"| {labels[n]} | {cell(a, 'tasks_per_s')} | {ratio(hs, med(a, 'tasks_per_s')) if n != h else '1.00×'} | "
                     f"{cell(a, 'cpu_machine_cores', 2)} | {cell(a, 'cpu_postgres_cores', 2)} | "
                     f"{cell(a, 'cpu_client_cores', 2)} | {cell(a, 'cpu_ms_per_1k_tasks')} |")
    L.append("")
    # Latency
    L.append("## Latency at fixed offered load\n")
    L.append(f"One task per enqueue transaction on a fixed schedule for {sz.get('lat_s')} s; enqueue-to-start "
             f"(the producer's clock before the enqueue call to the worker's clock when it has the task); the first "
             f"{sz.get('lat_warm')} s are not counted. *Saturated* means the system did not start everything it was "
             "offered, the producer could not offer the rate, or the median start took over 100 ms: its latency is "
             "queueing delay.\n")
    for rate in sz.get("rates", []):
        L.append(f"**{rate}/s**\n")
        L.append("| system | p50 ms | p95 ms | p99 ms | max ms | offered/s | p50 system ÷ pg_hatchet |")
        L.append("|---|---|---|---|---|---|---|")
        hp = med(g("latency", rate, h), "p50_ms")
        for n in names:
            a = g("latency", rate, n)
            if a:
                sat = " (saturated)" if a.get("saturated", {}).get("any") else ""
                L.append(f"| {labels[n]}{sat} | {cell(a, 'p50_ms', 2)} | {cell(a, 'p95_ms', 2)} | {cell(a, 'p99_ms', 2)} | "
                         f"{cell(a, 'max_ms', 2)} | {cell(a, 'offered_per_s')} | "
                         f"{ratio(med(a, 'p50_ms'), hp) if n != h else '1.00×'} |")
        L.append("")
    # Backlog
    L.append("## Claim latency vs backlog\n")
    L.append(f"Fill the queue, `ANALYZE`, then time {sz.get('samples')} single claims (each followed by its "
             f"completion, untimed for pg_hatchet and pg-boss; the baseline's claim is its claim-and-delete "
             f"transaction). pg_hatchet's backlog is spread over {sz.get('keys')} concurrency keys when "
             "`hatchet.enqueue` supports them.\n")
    sizes = sz.get("backlog", [])
    L.append("| system | " + " | ".join(f"p50 / p99 ms @ {s:,}" for s in sizes) + " | largest ÷ smallest (p50) |")
    L.append("|---|" + "---|" * (len(sizes) + 1))
    for n in names:
        cells = [g("backlog", s, n) for s in sizes]
        if any(cells):
            first, last = med(cells[0], "p50_ms"), med(cells[-1], "p50_ms")
            L.append(f"| {labels[n]} | " + " | ".join(f"{cell(c, 'p50_ms', 2)} / {cell(c, 'p99_ms', 2)}" for c in cells)
                     + f" | {ratio(last, first)} |")
    L.append("")
    # Fairness
    L.append("## Fairness under skew\n")
    L.append(f"Tenant A enqueues {sz.get('fair_a'):,} tasks, then tenant B {sz.get('fair_b')}; then the workers "
             "start. Time from the first task's start until all of B's tasks have started, and how many of A's "
             "started first. pg_hatchet gives each tenant a concurrency key with GROUP_ROUND_ROBIN; the peers have "
             "no fair queueing, so B waits behind A (FIFO).\n")
    L.append("| system | seconds until all of B started | A tasks started before that |")
    L.append("|---|---|---|")
    for n in names:
        a = g("fairness", None, n)
        if a:
            L.append(f"| {labels[n]} | {cell(a, 'seconds', 3)} | {cell(a, 'a_started_before_b_done')} |")
    L.extend(_skips(runs, "fairness", labels))
    L.append("")
    L.extend(shapes_section(summary, meta))
    # Held xmin
    L.append("## Held xmin\n")
    L.append("The drain again, while another session in the same database holds a REPEATABLE READ transaction "
             "(with an xid) open from before the enqueue until after the drain. Dead tuples (`n_dead_tup`, all "
             "tables of the system's database) are counted right after the drain, then again after a `VACUUM` run "
             "while the session is still open: what the held horizon keeps VACUUM from reclaiming.\n")
    L.append("| system | tasks/s held | tasks/s normal | change | dead tuples held (after VACUUM) | "
             "dead tuples normal (after VACUUM) | table bytes held / normal |")
    L.append("|---|---|---|---|---|---|---|")
    for n in names:
        a, b = g("held_xmin", None, n), g("drain", None, n)
        if a:
            x, y = med(a, "tasks_per_s"), med(b, "tasks_per_s")
            ch = f"{(x / y - 1) * 100:+.0f}%" if x and y else "–"
            L.append(f"| {labels[n]} | {cell(a, 'tasks_per_s')} | {cell(b, 'tasks_per_s')} | {ch} | "
                     f"{cell(a, 'dead_tuples')} ({cell(a, 'dead_tuples_after_vacuum')}) | "
                     f"{cell(b, 'dead_tuples')} ({cell(b, 'dead_tuples_after_vacuum')}) | "
                     f"{cell(a, 'table_bytes')} / {cell(b, 'table_bytes')} |")
    L.extend(_skips(runs, "held_xmin", labels))
    L.append("")
    # Cost
    L.append("## Cost per task (Postgres transactions and WAL)\n")
    L.append("From the drain: `pg_stat_database.xact_commit` of the system's database and `pg_current_wal_lsn()` "
             "deltas, divided by the number of tasks, for the enqueue phase and the work phase separately. "
             "Includes the background and autovacuum transactions of that database.\n")
    L.append("| system | enqueue xacts/task | enqueue WAL bytes/task | work xacts/task | work WAL bytes/task | full-page images (work) |")
    L.append("|---|---|---|---|---|---|")
    for n in names:
        a = g("drain", None, n)
        if a and "work_xacts_per_task" in a:
            L.append(f"| {labels[n]} | {cell(a, 'enqueue_xacts_per_task', 3)} | {cell(a, 'enqueue_wal_bytes_per_task')} | "
                     f"{cell(a, 'work_xacts_per_task', 3)} | {cell(a, 'work_wal_bytes_per_task')} | {cell(a, 'work_wal_fpi')} |")
    L.append("")
    # Server
    L.append("## Through the server\n")
    srv = [r for r in runs if r["scenario"] == "server"]
    if not srv:
        L.append("Not run.\n")
    conc = (meta.get("common") or {}).get("concurrency", 16)
    L.append("The Python `hatchet-sdk` worker through hatchet-server on pg_hatchet, and a Celery worker on Redis, "
             "with the same task body (`drivers/python/task_body.py`) and the same concurrency (SDK slots = Celery "
             f"prefork processes = {conc}); drain of the drain size, and latency at the first offered rate. The SDK "
             f"drain runs with one worker process of {conc} slots and with two of {conc // 2} each (the same total). "
             "The TypeScript SDK worker (one Node process, "
             f"{conc} slots, an async no-op task) runs the drain and the latency for the Node team's comparison "
             "below.\n")
    if meta.get("server_binary"):
        L.append(f"Server: `{meta['server_binary']}`."
                 + (f" TypeScript SDK {meta['ts_sdk_version']}." if meta.get("ts_sdk_version") else "") + "\n")
    for r in srv:
        if r["status"] == "skipped":
            L.append(f"- {labels.get(r['system'], r['system'])}: {r['extra'].get('reason')}")
    srv_rows = [(k, v) for k, v in summary.items() if k[0] == "server"]
    if srv_rows:
        L.append("\n| system | measure | tasks/s | p50 ms | p99 ms |")
        L.append("|---|---|---|---|---|")
        for (sc, param, n), a in srv_rows:
            L.append(f"| {labels.get(n, n)} | {param} | {cell(a, 'tasks_per_s')} | {cell(a, 'p50_ms', 2)} | {cell(a, 'p99_ms', 2)} |")
    L.extend(server_cpu_section(summary, labels))
    L.extend(node_team_section(summary, labels, sz, srv))
    L.append("")
    # Goals
    L.extend(goals(summary, names, sz))
    # Systems and configuration
    L.append("## Systems and configuration\n")
    L.append("Shared: `batch` tasks per claim/fetch where the system batches, `workers` claiming connections or "
             "loops for the pull-style systems, `concurrency` jobs in flight for the worker-pool systems, "
             "`enqueue_batch` tasks per enqueue call where batch enqueue exists.\n")
    for s in systems:
        setup = next((r["extra"].get("setup") for r in runs if r["system"] == s.name and r["extra"].get("setup")), None)
        ver = ""
        if setup:
            ver = " — " + ", ".join(f"{k} {v}" for k, v in setup.items() if k in ("version", "extversion", "redis"))
        L.append(f"**{s.label}**{ver}" + (f" — *not available: {s.unavailable}*" if s.unavailable else ""))
        for c in s.config:
            L.append(f"- {c}")
        L.append("")
    # Failures and skips
    bad = [r for r in runs if r["status"] != "passed"]
    if bad:
        L.append("## Skipped and failed runs\n")
        for r in bad:
            why = r.get("error") or r["extra"].get("reason") or ""
            why = why.strip().splitlines()[0][:300] if why.strip() else ""
            L.append(f"- {r['status']}: {r['scenario']} {r['param'] or ''} {r['system']} rep {r['rep']}: {why}")
        L.append("")
    passed = sum(r["status"] == "passed" for r in runs)
    failed = sum(r["status"] == "failed" for r in runs)
    L.append(f"{passed} passed, {failed} failed, {len(runs) - passed - failed} skipped.\n")
    return "\n".join(L)


def profile_markdown(runs: list[dict], labels: dict) -> str:
    """--profile: the most expensive statements of each drain phase, per system (pg_stat_statements, track=all,
    so a function's own line includes the statements nested in it)."""
    L = []
    for r in runs:
        prof = r["extra"].get("profile")
        if not prof or r["rep"] != 1:
            continue
        for phase, rows in prof.items():
            if not rows:
                continue
            L.append(f"## {labels.get(r['system'], r['system'])} — {r['scenario']} — {phase}\n")
            L.append("| top | calls | total ms | mean ms | rows | blocks | WAL bytes | statement |")
            L.append("|---|---|---|---|---|---|---|---|")
            for x in rows:
                q = str(x["query"]).replace("|", "\\|")
                L.append(f"| {'y' if x['toplevel'] else ''} | {x['calls']} | {x['total_ms']} | {x['mean_ms']} | "
                         f"{x['rows']} | {x['blocks']} | {x['wal_bytes']} | `{q}` |")
            L.append("")
    if not L:
        return ""
    return "# Where the time goes (pg_stat_statements, --profile)\n\n" + "\n".join(L)


# Hatchet's own published load test (frontend/docs/content/docs/self-hosting/benchmarking.mdx; the facts are in
# shared/reference/hatchet_engine.md): 2,000 event-triggered runs/s with the database (RDS m7g.2xlarge, 8 vCPU) at
# 83% CPU, the engine on two more c7i.4xlarge machines (16 vCPU each). Another machine, another setup: a published
# number beside ours, never a side-by-side measurement.
HATCHET_PUBLISHED = {"runs_per_s": 2000, "db_vcpu": 8, "db_cpu_share": 0.83, "engine_vcpu": 32}


def shapes_section(summary: dict, meta: dict) -> list[str]:
    """Workflow shapes: the 3-task DAG (SQL path and through the server), 1,000 GROUP_ROUND_ROBIN keys with
    max_runs 2, a task under a rate limit; beside Hatchet's published runs/s per core."""
    sz = meta.get("sizes", {})
    dag = summary.get(("dag", None, "pg_hatchet"))
    sdk = summary.get(("server", "dag drain", "hatchet_sdk"))
    rr = summary.get(("rr_keys", None, "pg_hatchet"))
    rl = summary.get(("rate_limit", None, "pg_hatchet"))
    if not any((dag, sdk, rr, rl)):
        return []
    cores = (meta.get("machine") or {}).get("cores") or 0
    L = ["## Workflow shapes (pg_hatchet)\n",
         "Each run ends by counting the finished work in the database (COMPLETED events joined to their tasks), not "
         "only the driver's counters. CPU: cores used on average during the drain (machine / Postgres / client).\n",
         "| shape | size | runs/s | tasks/s | enqueue/s | CPU cores machine / Postgres / client | checked |",
         "|---|---|---|---|---|---|---|"]
    cpu = lambda a: (f"{cell(a, 'cpu_machine_cores', 2)} / {cell(a, 'cpu_postgres_cores', 2)} / "  # noqa: E731
                     f"{cell(a, 'cpu_client_cores', 2)}")
    if dag:
        L.append(f"| 3-task DAG, SQL path (`run_workflow`; `dequeue` + `complete_many` workers) | {fmt(sz.get('dag_n'))} "
                 f"runs | {cell(dag, 'runs_per_s')} | {cell(dag, 'tasks_per_s')} | {cell(dag, 'enqueue_runs_per_s')} "
                 f"runs/s | {cpu(dag)} | {cell(dag, 'db_completed_runs')} runs with 3 completed tasks |")
    if sdk:
        L.append(f"| 3-task DAG through hatchet-server, Python SDK worker | {fmt(sz.get('server_dag_n'))} runs | "
                 f"{cell(sdk, 'runs_per_s')} | {cell(sdk, 'tasks_per_s')} | {cell(sdk, 'enqueue_runs_per_s')} runs/s "
                 f"| {cpu(sdk)} | {cell(sdk, 'db_completed_runs')} runs with 3 completed tasks |")
    if rr:
        L.append(f"| GROUP_ROUND_ROBIN, {fmt(sz.get('rr_keys'))} keys, max_runs {sz.get('rr_max')} | "
                 f"{fmt(sz.get('rr_n'))} tasks | – | {cell(rr, 'tasks_per_s')} | {cell(rr, 'enqueue_per_s')} tasks/s | "
                 f"{cpu(rr)} | {cell(rr, 'db_completed_tasks')} completed over {cell(rr, 'keys')} keys; most admitted "
                 f"per key {cell(rr, 'max_admitted_per_key')} (up to {cell(rr, 'max_keys_at_cap')} keys at the cap "
                 f"at once), most in flight per key {cell(rr, 'max_in_flight_per_key')} |")
    if rl:
        L.append(f"| rate limit {fmt(sz.get('rl_limit'))} units / SECOND, 1 unit per task | {fmt(sz.get('rl_n'))} "
                 f"tasks | – | {cell(rl, 'tasks_per_s')} | {cell(rl, 'enqueue_per_s')} tasks/s | {cpu(rl)} | "
                 f"{cell(rl, 'db_completed_tasks')} completed in {cell(rl, 'windows')} windows; most units in a "
                 f"window {cell(rl, 'max_units_per_window')} (limit {fmt(sz.get('rl_limit'))}) |")
    L.append("")
    if rl:
        L.append(f"Rate limit: the drain is bound by the limit ({fmt(sz.get('rl_limit'))}/s), not by the workers. "
                 "The assignment time of every attempt (the clock reading the limiter's refill uses) is replayed "
                 "through the fixed-window rule: no window may hold more than the limit (the run fails otherwise). "
                 f"Full windows held {cell(rl, 'mean_units_per_full_window', 1)} units on average; a window lasted "
                 f"{cell(rl, 'mean_window_ms', 1)} ms on average (1,000 ms plus the wait for the next claim after it "
                 f"ended); the rule's best is {cell(rl, 'ideal_seconds', 1)} s for the whole drain, this run took "
                 f"{cell(rl, 'seconds', 2)} s.\n")
    if rr:
        L.append("GROUP_ROUND_ROBIN: keys in blocks of n / keys tasks, so every key has a backlog deeper than "
                 "max_runs. Two checks, each failing the run above max_runs: every 20 ms during the drain the most "
                 "tasks any key has admitted (`concurrency_groups.running`: ready or running) and the number of keys "
                 "at their cap; and the workers' count of each key's tasks from the claim's return until the "
                 "completion is sent (a subset of what the database holds running).\n")
    h = HATCHET_PUBLISHED
    per_db = h["runs_per_s"] / h["db_vcpu"]
    per_all = h["runs_per_s"] / (h["db_vcpu"] + h["engine_vcpu"])
    L.append("**Beside Hatchet's published number (other hardware, not a side-by-side measurement).** Hatchet's "
             f"self-hosting benchmark reports {h['runs_per_s']:,} runs/s with the database on an {h['db_vcpu']}-vCPU "
             f"RDS instance at {h['db_cpu_share']:.0%} CPU and the engine on two more 16-vCPU machines: "
             f"{per_db:.0f} runs/s per database vCPU, {per_all:.0f} per vCPU counting the engine's. Its runs are "
             "event-triggered and the shape is not published.\n")
    L.append("| | runs/s | cores | runs/s per core | runs/s per Postgres core used |")
    L.append("|---|---|---|---|---|")
    L.append(f"| Hatchet, published (8 vCPU database + 32 vCPU engine) | {h['runs_per_s']:,} | 8 (database) | "
             f"{per_db:.0f} per database vCPU ({per_all:.0f} with the engine's) | "
             f"{h['runs_per_s'] / (h['db_vcpu'] * h['db_cpu_share']):.0f} |")
    for label, a in (("pg_hatchet 3-task DAG, SQL path (this run)", dag),
                     ("pg_hatchet 3-task DAG through hatchet-server (this run)", sdk)):
        r, pgc = med(a, "runs_per_s"), med(a, "cpu_postgres_cores")
        if r is None:
            continue
        L.append(f"| {label} | {fmt(r)} | {cores} (the whole machine: Postgres, server, workers) | "
                 f"{fmt(r / cores) if cores else '–'} | {fmt(r / pgc) if pgc else '–'} |")
    L.append("")
    return L


SERVER_DRAINS = ("hatchet_sdk", "hatchet_sdk_2p", "hatchet_ts", "celery_server")


def server_cpu_section(summary: dict, labels: dict) -> list[str]:
    """CPU per task of the drains through the server: hatchet-server and Postgres in the enqueue and the work
    phase, the worker processes in the work phase (cpu.py's classes), and the tasks COMPLETED in the database."""
    rows = [(n, summary.get(("server", "drain", n))) for n in SERVER_DRAINS]
    rows = [(n, a) for n, a in rows if a]
    if not rows:
        return []
    L = ["\n**CPU per task in the drains** (ms of CPU per task, from /proc: hatchet-server and Postgres during the "
         "enqueue phase + during the work phase; the worker processes during the work phase; Redis is not "
         "included). Cores: the average during the work phase.\n",
         "| system | tasks/s | hatchet-server ms/task (enqueue + work) | Postgres ms/task (enqueue + work) | "
         "server + Postgres ms/task | worker processes ms/task | cores: machine / Postgres / server / workers | "
         "COMPLETED in the database |",
         "|---|---|---|---|---|---|---|---|"]
    for n, a in rows:
        if "server_pg_ms_per_task" in a:
            srv = (f"{cell(a, 'enqueue_server_ms_per_task', 3)} + {cell(a, 'work_server_ms_per_task', 3)}")
            pg = (f"{cell(a, 'enqueue_postgres_ms_per_task', 3)} + {cell(a, 'work_postgres_ms_per_task', 3)}")
            tot, wk = cell(a, "server_pg_ms_per_task", 3), cell(a, "work_worker_ms_per_task", 3)
        else:  # Celery: no server; its worker processes' CPU per task from the work phase's cores
            srv = pg = tot = "–"
            t, w = med(a, "tasks_per_s"), med(a, "cpu_worker_cores")
            wk = fmt(w * 1000 / t, 3) if t and w is not None else "–"
        L.append(f"| {labels.get(n, n)} | {cell(a, 'tasks_per_s')} | {srv} | {pg} | {tot} | {wk} | "
                 f"{cell(a, 'cpu_machine_cores', 2)} / {cell(a, 'cpu_postgres_cores', 2)} / "
                 f"{cell(a, 'cpu_server_cores', 2)} / {cell(a, 'cpu_worker_cores', 2)} | "
                 f"{cell(a, 'db_completed_tasks')} |")
    return L


def node_team_section(summary: dict, labels: dict, sz: dict, srv: list[dict]) -> list[str]:
    """The Node team's choice: the TypeScript SDK through hatchet-server beside Graphile Worker's SQL-scenario
    figures from the same run."""
    rate = (sz.get("rates") or [200])[0]
    ts_d, ts_l = summary.get(("server", "drain", "hatchet_ts")), summary.get(("server", f"latency {rate}/s", "hatchet_ts"))
    gr_d, gr_l = summary.get(("drain", None, "graphile")), summary.get(("latency", rate, "graphile"))
    ts_skip = next((r["extra"].get("reason") for r in srv if r["system"] == "hatchet_ts" and r["status"] == "skipped"), None)
    ts_fail = [r for r in srv if r["system"] == "hatchet_ts" and r["status"] == "failed"]
    if not any((ts_d, ts_l, gr_d, gr_l, ts_skip, ts_fail)):
        return []
    L = ["\n**Node team: TS SDK through hatchet-server vs Graphile Worker** (same run; Graphile Worker's figures are "
         "its SQL drain and latency rows above: it runs on Postgres alone, with no server in between).\n",
         f"| system | drain tasks/s | latency {rate}/s p50 ms | p99 ms | drain CPU cores: machine / Postgres / server / "
         "client (driver + worker processes) |",
         "|---|---|---|---|---|"]

    def row(label, d, lt, why=None):
        if why:
            return f"| {label} | {why} | – | – | – |"
        return (f"| {label} | {cell(d, 'tasks_per_s')} | {cell(lt, 'p50_ms', 2)} | {cell(lt, 'p99_ms', 2)} | "
                f"{cell(d, 'cpu_machine_cores', 2)} / {cell(d, 'cpu_postgres_cores', 2)} / "
                f"{cell(d, 'cpu_server_cores', 2)} / {cell(d, 'cpu_client_cores', 2)} |")

    why = ts_skip if ts_skip else None
    if not why and ts_fail and not ts_d:
        why = "failed: " + ((ts_fail[0].get("error") or "").strip().splitlines() or ["?"])[0][:200]
    L.append(row(labels.get("hatchet_ts", "hatchet_ts"), ts_d, ts_l, why))
    L.append(row(labels.get("graphile", "Graphile Worker"), gr_d, gr_l,
                 None if (gr_d or gr_l) else "not measured in this run (`--systems graphile --scenarios drain,latency`)"))
    td, gd = med(ts_d, "tasks_per_s"), med(gr_d, "tasks_per_s")
    if td and gd:
        L.append(f"\nDrain: the TS SDK through the server does {td / gd:.2f}× Graphile Worker's tasks/s.")
    return L


def server_goals(m, sz) -> list[str]:
    """The server path's goals (issue 18): server + Postgres CPU per task, start latency through the SDK, and the
    SDK drain with one and two worker processes beside Celery."""
    L = []
    cpu1 = m("server", "drain", "hatchet_sdk", "server_pg_ms_per_task")
    if cpu1 is not None:
        parts = [f"{cpu1:.3f} ms (1 worker process)"]
        for name, what in (("hatchet_sdk_2p", "2 worker processes"), ("hatchet_ts", "TS SDK")):
            v = m("server", "drain", name, "server_pg_ms_per_task")
            if v is not None:
                parts.append(f"{v:.3f} ms ({what})")
        L.append(f"| server + Postgres CPU per task ≤ 0.25 ms (SDK drain, enqueue + work) | {'; '.join(parts)} | "
                 f"{'yes' if cpu1 <= 0.25 else 'no'} |")
    rate = (sz.get("rates") or [200])[0]
    p50, p99 = m("server", f"latency {rate}/s", "hatchet_sdk", "p50_ms"), m("server", f"latency {rate}/s", "hatchet_sdk", "p99_ms")
    if p50 is not None:
        ok = p50 <= 4 and p99 <= 10
        L.append(f"| start latency through the SDK at {rate}/s: p50 ≤ 4 ms, p99 ≤ 10 ms | p50 {p50:.2f} ms, "
                 f"p99 {p99:.2f} ms | {'yes' if ok else 'no'} |")
    one, two = m("server", "drain", "hatchet_sdk", "tasks_per_s"), m("server", "drain", "hatchet_sdk_2p", "tasks_per_s")
    cel = m("server", "drain", "celery_server", "tasks_per_s")
    if one is not None and two is not None:
        shown = f"1 process: {fmt(one)}; 2 processes: {fmt(two)}" + (f"; Celery: {fmt(cel)} tasks/s" if cel else " tasks/s")
        L.append(f"| SDK drain reported with one and with two worker processes beside Celery | {shown} | reported |")
    return L


def _skips(runs, scenario, labels) -> list[str]:
    out = []
    for r in runs:
        if r["scenario"] == scenario and r["status"] == "skipped" and r["rep"] == 1:
            out.append(f"\n- {labels.get(r['system'], r['system'])}: not available — {r['extra'].get('reason')}")
    return out


def goals(summary, names, sz) -> list[str]:
    """The issue's goals, checked against this run's medians (goals, not assertions)."""
    h = "pg_hatchet"

    def m(sc, param, sysname, key):
        return med(summary.get((sc, param, sysname)), key)

    L = ["## Goals (from the issue) against this run\n", "| goal | this run | met |", "|---|---|---|"]
    hd = m("drain", None, h, "tasks_per_s")
    if hd is None:
        L.append("| SQL path | pg_hatchet's SQL drain was not measured | – |")
        L.extend(server_goals(m, sz))
        L.append("")
        return L
    peers = {n: m("drain", None, n, "tasks_per_s") for n in names if n not in (h, "baseline")}
    peers = {k: v for k, v in peers.items() if v}
    if peers:
        best = max(peers, key=peers.get)
        r = hd / peers[best]
        L.append(f"| drain ≥ 1.5× the fastest peer | {r:.2f}× {best} ({fmt(hd)} vs {fmt(peers[best])}) | {'yes' if r >= 1.5 else 'no'} |")
    b = m("drain", None, "baseline", "tasks_per_s")
    if b:
        L.append(f"| drain ≥ SKIP LOCKED baseline | {hd / b:.2f}× ({fmt(hd)} vs {fmt(b)}) | {'yes' if hd >= b else 'no'} |")
    for rate in sz.get("rates", []):
        p50, p99 = m("latency", rate, h, "p50_ms"), m("latency", rate, h, "p99_ms")
        if p50 is not None:
            ok = p50 <= 2 and p99 <= 10
            L.append(f"| p50 ≤ 2 ms and p99 ≤ 10 ms at {rate}/s | p50 {p50:.2f} ms, p99 {p99:.2f} ms | {'yes' if ok else 'no'} |")
    sizes = sz.get("backlog", [])
    if len(sizes) >= 2:
        a, z = m("backlog", sizes[0], h, "p50_ms"), m("backlog", sizes[-1], h, "p50_ms")
        if a and z:
            L.append(f"| claim @ {sizes[-1]:,} within 1.5× of @ {sizes[0]:,} | {z / a:.2f}× ({z:.2f} vs {a:.2f} ms) | {'yes' if z / a <= 1.5 else 'no'} |")
    hx = m("held_xmin", None, h, "tasks_per_s")
    if hx:
        drop = 1 - hx / hd
        shown = f"{drop * 100:.0f}% slower" if drop > 0 else f"no drop ({-drop * 100:.0f}% faster)"
        L.append(f"| held xmin: drop ≤ 20% | {shown} ({fmt(hx)} vs {fmt(hd)} tasks/s) | {'yes' if drop <= 0.2 else 'no'} |")
    sd, cd = m("server", "drain", "hatchet_sdk", "tasks_per_s"), m("server", "drain", "celery_server", "tasks_per_s")
    if sd and cd:
        L.append(f"| server path beats Celery + Redis (same Python worker) | {sd / cd:.2f}× ({fmt(sd)} vs {fmt(cd)} tasks/s) "
                 f"| {'yes' if sd > cd else 'no'} |")
    L.extend(server_goals(m, sz))
    dag, sdk_dag = m("dag", None, h, "runs_per_s"), m("server", "dag drain", "hatchet_sdk", "runs_per_s")
    rr, rl = m("rr_keys", None, h, "tasks_per_s"), m("rate_limit", None, h, "tasks_per_s")
    if any(v is not None for v in (dag, sdk_dag, rr, rl)):
        shown = "; ".join(part for part in (
            f"DAG {fmt(dag)} runs/s (SQL)" if dag is not None else "",
            f"{fmt(sdk_dag)} runs/s (server)" if sdk_dag is not None else "",
            f"1,000 keys {fmt(rr)} tasks/s" if rr is not None else "",
            f"rate limit {fmt(rl)} tasks/s of {fmt(sz.get('rl_limit'))}" if rl is not None else "") if part)
        L.append(f"| workflow shapes reported beside Hatchet's published 2,000 runs/s on 8 vCPU (per core; other "
                 f"hardware) | {shown} | reported (see Workflow shapes) |")
    x = m("drain", None, h, "work_xacts_per_task")
    e = m("drain", None, h, "enqueue_xacts_per_task")
    if x is not None and e is not None:
        L.append(f"| well under 1 transaction per task (batched path) | {e + x:.3f} (enqueue {e:.3f} + work {x:.3f}) | {'yes' if e + x < 0.5 else 'no'} |")
    L.append("")
    return L
