"""Reads the JUnit XML of a run of Hatchet's SDK suite (run.sh) and prints the table by example directory.

    report.py JUNIT [--rerun JUNIT_RERUN] [--timeout S] [--rerun-timeout S]   the Markdown table, failures, skips
    report.py --timed-out JUNIT                                               node ids of the tests that timed out

A test counts once: its outcome in the rerun (the tests that hit the first limit, run again with a longer one)
replaces the first. Needs the XML written with `-o junit_family=xunit1` (it carries each test's file).
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass
class Case:
    nodeid: str
    directory: str
    outcome: str  # passed | failed | skipped
    reason: str = ""
    timed_out: bool = False


def one_line(text: str | None, limit: int = 220) -> str:
    for line in (text or "").splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


def is_timeout(text: str) -> bool:
    # pytest-timeout's message, or pytest-xdist's when the timeout took the whole process down.
    return "Timeout (>" in text or "crashed while running" in text


def directory_of(path: str) -> str:
    parts = PurePosixPath(path).parts
    if parts and parts[0] == "examples":
        parts = parts[1:]
    return "/".join(parts[:-1]) or "(top)"


def read(junit: str) -> list[Case]:
    cases: dict[str, Case] = {}
    for tc in ET.parse(junit).getroot().iter("testcase"):
        classname, name, file = tc.get("classname", ""), tc.get("name", ""), tc.get("file")
        if file:
            module = file[: -len(".py")].replace("/", ".")
            inner = classname[len(module) + 1 :] if classname.startswith(module + ".") else ""
            nodeid = f"{file}::{inner}::{name}" if inner else f"{file}::{name}"
        elif classname == "pytest":  # pytest's own INTERNALERROR: the session ended early
            file, nodeid = "(pytest)/x", f"pytest {name} error (the run ended early; see pytest.log)"
        else:  # a collection error: name is the module's dotted path
            file = name.replace(".", "/") + ".py"
            nodeid = file
        case = cases.setdefault(nodeid, Case(nodeid, directory_of(file), "passed"))
        for child in tc:
            text = child.get("message") or child.text or ""
            if child.tag in ("failure", "error"):
                case.outcome = "failed"
                detail = (child.text or "") + text
                case.timed_out = case.timed_out or is_timeout(detail)
                if not case.reason:
                    case.reason = one_line(text) or one_line(child.text)
                    if "crashed while running" in detail:  # the rerun's thread timeout ended the process
                        case.reason = "timed out: its pytest-xdist process was ended"
                    elif child.tag == "error" and "collection" not in text:
                        case.reason = f"(setup/teardown) {case.reason}"
            elif child.tag == "skipped" and case.outcome != "failed":
                case.outcome = "skipped"
                case.reason = one_line(text)
    return list(cases.values())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("junit")
    ap.add_argument("--rerun")
    ap.add_argument("--timeout", default="60")
    ap.add_argument("--rerun-timeout", default="180")
    ap.add_argument("--timed-out", action="store_true")
    args = ap.parse_args()

    cases = read(args.junit)
    if args.timed_out:
        for c in cases:
            if c.timed_out:
                print(c.nodeid)
        return 0

    rerun_lost = bool(args.rerun) and not Path(args.rerun).exists()  # the rerun's pytest was killed
    rerun = {c.nodeid: c for c in read(args.rerun)} if args.rerun and not rerun_lost else {}
    first_timeouts = {c.nodeid for c in cases if c.timed_out}
    cases = [rerun.get(c.nodeid, c) for c in cases]

    by_dir: dict[str, Counter[str]] = defaultdict(Counter)
    for c in cases:
        by_dir[c.directory][c.outcome] += 1
    total: Counter[str] = Counter(c.outcome for c in cases)

    out = sys.stdout
    out.write(f"Hatchet SDK suite: {len(cases)} ran, {total['passed']} passed, {total['failed']} failed, "
              f"{total['skipped']} skipped (limit {args.timeout} s per test")
    if first_timeouts and rerun_lost:
        out.write(f"; the rerun of the {len(first_timeouts)} that timed out left no result")
    elif first_timeouts and args.rerun:
        out.write(f"; the {len(first_timeouts)} that timed out were rerun with {args.rerun_timeout} s")
    out.write(")\n\n| example directory | ran | passed | failed | skipped |\n|---|---:|---:|---:|---:|\n")
    for d in sorted(by_dir):
        n = by_dir[d]
        out.write(f"| {d} | {sum(n.values())} | {n['passed']} | {n['failed']} | {n['skipped']} |\n")
    out.write(f"| **total** | {len(cases)} | {total['passed']} | {total['failed']} | {total['skipped']} |\n")

    failed = sorted((c for c in cases if c.outcome == "failed"), key=lambda c: c.nodeid)
    if failed:
        out.write("\nFailures:\n\n")
        for c in failed:
            note = ""
            if c.nodeid in first_timeouts and c.nodeid in rerun:
                note = f"[timed out at {args.timeout} s; rerun: {'timed out again' if c.timed_out else 'failed'}] "
            out.write(f"- `{c.nodeid}`: {note}{c.reason}\n")
    passed_on_rerun = sorted(n for n in first_timeouts if rerun.get(n) and rerun[n].outcome == "passed")
    if passed_on_rerun:
        out.write(f"\nPassed only with {args.rerun_timeout} s: " + ", ".join(f"`{n}`" for n in passed_on_rerun) + "\n")

    skips = Counter(c.reason for c in cases if c.outcome == "skipped")
    if skips:
        out.write("\nSkipped, by reason:\n\n")
        for reason, n in skips.most_common():
            out.write(f"- {n} × {reason}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
