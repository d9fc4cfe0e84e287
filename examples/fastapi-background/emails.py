"""The welcome email, as a pg_hatchet task. `deliver` stands for the real email call: it records the message in the
table `app_sent_emails`, so the example (and its test) can see exactly which emails went out and how."""

from __future__ import annotations

import os

import psycopg
from hatchet_sdk import Context, Hatchet
from pydantic import BaseModel

hatchet = Hatchet()

WELCOME_WORKFLOW = "fastapi-send-welcome"


class WelcomeEmail(BaseModel):
    email: str
    name: str


def deliver(email: str, name: str, via: str) -> None:
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS app_sent_emails (email text NOT NULL, body text NOT NULL, via text NOT NULL)")
        conn.execute("INSERT INTO app_sent_emails (email, body, via) VALUES (%s, %s, %s)",
                     (email, f"Welcome, {name}!", via))


@hatchet.task(name=WELCOME_WORKFLOW, input_validator=WelcomeEmail, retries=5, backoff_factor=2.0,
              backoff_max_seconds=300)
def send_welcome(input: WelcomeEmail, ctx: Context) -> dict[str, str]:
    deliver(input.email, input.name, "pg_hatchet")
    return {"sent_to": input.email}
