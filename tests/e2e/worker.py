"""Runs one worker profile from flows.PROFILES: `python worker.py main`."""

import os
import sys


def main() -> None:
    profile = sys.argv[1]
    # Tasks report which worker ran them (flows.WORKER_NAME); set before flows is imported.
    os.environ.setdefault("E2E_WORKER_NAME", f"e2e-{profile}")
    import flows

    spec = flows.PROFILES[profile]
    worker = flows.hatchet.worker(
        os.environ["E2E_WORKER_NAME"],
        slots=spec["slots"],
        labels=spec.get("labels"),
        workflows=spec["workflows"],
    )
    worker.start()


if __name__ == "__main__":
    main()
