"""The tasks of a small shop, as they look after moving from Celery to pg_hatchet (docs/migrate-from-celery.md).

Each block says which Celery construct it replaces. The workflows are plain hatchet-sdk code: the same file runs
against Hatchet Cloud or against `hatchet-server dev` from pg_hatchet.
"""

from __future__ import annotations

from datetime import timedelta

from hatchet_sdk import Context, EmptyModel, Hatchet, RateLimit
from pydantic import BaseModel

# Celery: app = Celery("shop", broker="redis://...")  -> one client, configured from HATCHET_CLIENT_* variables.
hatchet = Hatchet()

# A static rate-limit key (Celery: rate_limit="10/s" on the task); its limit is set with hatchet.rate_limits.put.
RECEIPTS_LIMIT = "celery-example-receipts"


class Email(BaseModel):
    to: str
    subject: str


class Order(BaseModel):
    order_id: str
    amount_cents: int


class Numbers(BaseModel):
    values: list[int]


# Celery:
#   @app.task(autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=3, time_limit=30)
#   def send_email(to, subject): ...
# Retries, backoff and the time limit become options of the task; the input is one Pydantic model.
@hatchet.task(name="celery-send-email", input_validator=Email, retries=3, backoff_factor=2.0,
              backoff_max_seconds=60, execution_timeout=timedelta(seconds=30))
def send_email(input: Email, ctx: Context) -> dict[str, str]:
    # A transient failure on the first attempt, to show the retry (Celery: self.retry()).
    if ctx.retry_count == 0 and input.subject.startswith("flaky"):
        raise ConnectionError("SMTP server not reachable yet")
    return {"sent_to": input.to, "subject": input.subject, "attempt": str(ctx.retry_count)}


# Celery: chain(validate.s(order), charge.s(), ship.s())
# A chain is a workflow whose steps name their parents; each step reads its parent's output.
checkout = hatchet.workflow(name="celery-checkout", input_validator=Order)


@checkout.task()
def validate(input: Order, ctx: Context) -> dict[str, object]:
    return {"order_id": input.order_id, "valid": input.amount_cents > 0}


@checkout.task(parents=[validate])
def charge(input: Order, ctx: Context) -> dict[str, object]:
    validated = ctx.task_output(validate)
    if not validated["valid"]:
        raise ValueError(f"order {input.order_id} is not valid")
    return {"charge_id": f"ch_{input.order_id}", "amount_cents": input.amount_cents}


# Celery: rate_limit="2/s" -> a rate limit key with units per run.
@checkout.task(parents=[charge], rate_limits=[RateLimit(static_key=RECEIPTS_LIMIT, units=1)])
def ship(input: Order, ctx: Context) -> dict[str, object]:
    return {"tracking": f"trk_{input.order_id}", "charge_id": ctx.task_output(charge)["charge_id"]}


# Celery: chord(group(square.s(n) for n in values), total.s())
# The group is a fan-out of child runs from a parent task; the chord's callback is the code after the gather.
@hatchet.task(name="celery-square", input_validator=Numbers)
def square(input: Numbers, ctx: Context) -> dict[str, int]:
    return {"square": input.values[0] ** 2}


@hatchet.task(name="celery-sum-of-squares", input_validator=Numbers, execution_timeout=timedelta(seconds=60))
async def sum_of_squares(input: Numbers, ctx: Context) -> dict[str, int]:
    results = await square.aio_run_many([square.create_bulk_run_item(Numbers(values=[n])) for n in input.values])
    return {"total": sum(r["square"] for r in results)}


# Celery beat: app.conf.beat_schedule = {"nightly": {"task": "report", "schedule": crontab(minute=0, hour=3)}}
# The schedule lives on the task itself; no separate beat process (pg_hatchet's background worker fires it).
@hatchet.task(name="celery-nightly-report", on_crons=["0 3 * * *"])
def nightly_report(input: EmptyModel, ctx: Context) -> dict[str, str]:
    return {"report": "done"}


WORKFLOWS = [send_email, checkout, square, sum_of_squares, nightly_report]
