"""A FastAPI sign-up endpoint three ways (docs/migrate-from-fastapi-background-tasks.md):

* `POST /before/signup`: the starting point, FastAPI's BackgroundTasks. The email is sent in the web process after
  the response; if the process dies, it is lost, and there is no retry.
* `POST /signup`: the same endpoint with a pg_hatchet task triggered from the request through the SDK. The email is
  durable and retried by a worker; but the trigger and the request's own writes are two separate commits.
* `POST /signup-tx`: what only pg_hatchet offers. The welcome email is enqueued with `hatchet.run_workflow` in the
  same database transaction as the new user's row: if the request fails after the insert and rolls back, no email
  is ever sent, and if it commits, the email is as durable as the user.

Configuration: DATABASE_URL (the Postgres that has the pg_hatchet extension, e.g. `hatchet-server dev`'s) and the
usual HATCHET_CLIENT_* variables. `uvicorn app:app` serves it.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

import psycopg
from fastapi import BackgroundTasks, FastAPI, HTTPException
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from emails import WELCOME_WORKFLOW, WelcomeEmail, deliver, send_welcome

DATABASE_URL = os.environ["DATABASE_URL"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS app_users (
    email      text PRIMARY KEY,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


@asynccontextmanager
async def lifespan(app: FastAPI):
    with psycopg.connect(DATABASE_URL) as conn:
        conn.execute(SCHEMA)
    yield


app = FastAPI(lifespan=lifespan)


class SignUp(BaseModel):
    email: str
    name: str
    # For the demonstration: fail the request after the user row was written (a bug, a timeout, a failed check).
    fail_after_insert: bool = False


def insert_user(conn: psycopg.Connection, body: SignUp) -> None:
    conn.execute("INSERT INTO app_users (email, name) VALUES (%s, %s)", (body.email, body.name))
    if body.fail_after_insert:
        raise HTTPException(status_code=500, detail="sign-up failed after the insert")


# Before: FastAPI's BackgroundTasks.
@app.post("/before/signup")
def signup_before(body: SignUp, background: BackgroundTasks) -> dict[str, str]:
    with psycopg.connect(DATABASE_URL) as conn:
        insert_user(conn, body)
    background.add_task(deliver, body.email, body.name, "background-tasks")
    return {"status": "ok"}


# After, step 1: a durable task triggered from the request.
@app.post("/signup")
def signup(body: SignUp) -> dict[str, str]:
    with psycopg.connect(DATABASE_URL) as conn:
        insert_user(conn, body)
    ref = send_welcome.run(WelcomeEmail(email=body.email, name=body.name), wait_for_result=False)
    return {"status": "ok", "run_id": ref.workflow_run_id}


# After, step 2: enqueued in the request's own transaction.
@app.post("/signup-tx")
def signup_tx(body: SignUp) -> dict[str, str]:
    # psycopg's connection context commits on success and rolls back on any exception: the user row and the run
    # are committed together or not at all.
    with psycopg.connect(DATABASE_URL) as conn:
        insert_user(conn, body)
        run_id = conn.execute(
            "SELECT hatchet.run_workflow(%s, %s)",
            (WELCOME_WORKFLOW, Jsonb({"email": body.email, "name": body.name})),
        ).fetchone()[0]
    return {"status": "ok", "run_id": str(run_id)}
