"""Celery: `celery -A shop worker -Q default --concurrency 8`  ->  `python worker.py`."""

from tasks import WORKFLOWS, hatchet


def main() -> None:
    # slots is the worker's concurrency (Celery's --concurrency); the workflows it registers are its queues (-Q).
    hatchet.worker("celery-example-worker", slots=8, workflows=WORKFLOWS).start()


if __name__ == "__main__":
    main()
