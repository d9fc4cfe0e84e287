"""Triggers every task the Celery way and the pg_hatchet way, and prints one JSON line with what came back.

    python run.py

Celery's call forms and their equivalents are in docs/migrate-from-celery.md; each line below says which one it is.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

from hatchet_sdk import RateLimitDuration

from tasks import RECEIPTS_LIMIT, Email, Numbers, Order, checkout, hatchet, send_email, sum_of_squares


def main() -> None:
    out: dict[str, object] = {}

    # send_email.delay(...) and wait: AsyncResult.get()  ->  run() returns the output.
    out["delay_and_get"] = send_email.run(Email(to="ada@example.com", subject="welcome"))

    # send_email.delay(...) without waiting  ->  run(wait_for_result=False); the reference gives the result later.
    ref = send_email.run(Email(to="bob@example.com", subject="flaky welcome"), wait_for_result=False)
    out["fire_and_forget_run_id"] = ref.workflow_run_id
    out["retried"] = ref.result()

    # apply_async(countdown=2)  ->  schedule(run_at); the run is created when it is due.
    started = time.monotonic()
    scheduled = send_email.schedule(datetime.now(timezone.utc) + timedelta(seconds=2),
                                    Email(to="cyd@example.com", subject="later"))
    out["scheduled"] = wait_for_scheduled_run(scheduled.scheduled_workflows[0].id)
    out["scheduled_after_s"] = round(time.monotonic() - started, 1)

    # chain(validate.s(), charge.s(), ship.s())  ->  a workflow run; its result holds every step's output.
    hatchet.rate_limits.put(RECEIPTS_LIMIT, 2, RateLimitDuration.SECOND)
    out["chain"] = checkout.run(Order(order_id="o-1", amount_cents=1250))

    # chord(group(...), callback)  ->  a parent task that fans out child runs and gathers them.
    out["chord"] = sum_of_squares.run(Numbers(values=[1, 2, 3, 4]))

    print(json.dumps(out, sort_keys=True))


def wait_for_scheduled_run(scheduled_id: str, timeout: float = 30) -> dict:
    """Waits until the scheduled run was created, then for its result (Celery: AsyncResult(id).get())."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_id = hatchet.scheduled.get(scheduled_id).workflow_run_id
        if run_id:
            return hatchet.runs.get_run_ref(run_id).result()["celery-send-email"]
        time.sleep(0.3)
    raise TimeoutError(f"scheduled run {scheduled_id} was not created within {timeout}s")


if __name__ == "__main__":
    main()
