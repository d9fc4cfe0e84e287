"""One chaos worker process: `python worker.py NAME SLOTS [cron]`. Its environment names the tenant, the replica
(HATCHET_CLIENT_HOST_PORT) and the ledger directory (see chaos.py)."""

import os
import sys


def main() -> None:
    name, slots = sys.argv[1], int(sys.argv[2])
    os.environ["CHAOS_WORKER_NAME"] = name
    import flows

    workflows = list(flows.WORKFLOWS)
    if "cron" in sys.argv[3:]:
        workflows += flows.CRON_WORKFLOWS
    flows.hatchet.worker(name, slots=slots, workflows=workflows).start()


if __name__ == "__main__":
    main()
