"""Alerts (issue 17, docs/alerts.md): alert channels set over REST, and a run that fails for good reported once per
channel to a local HTTP sink (Slack payload and generic JSON webhook) and a local SMTP sink (aiosmtpd, with AUTH),
each message linking to `<public url>/runs/<run id>`; a worker killed without a goodbye reported as `worker_died`,
and a cron three days behind as `cron_missed`, to the channel that asked for it. A delivery that fails is retried
by the engine with backoff; deliveries are runs of their own (of the internal workflow `hatchet:alerts`), visible
through the runs API. Everything listens on 127.0.0.1 only.

The worker is this file run as a script (`python test_alerts.py worker`). Every test leaves the tenant without
channels, and waits for its deliveries to finish, so the other e2e tests see no alert traffic.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.error
import urllib.request
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hatchet_sdk import Context, EmptyModel, FailedTaskRunExceptionGroup, Hatchet, NonRetryableException

from conftest import free_port, wait_for

FAILURE = "alerts-e2e: the report server is gone"

# The SMTP sink requires AUTH without TLS on purpose (loopback only); aiosmtpd warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def build_workflows():
    hatchet = Hatchet()

    @hatchet.task(name="alerts-breaks")
    def breaks(input: EmptyModel, ctx: Context) -> dict[str, str]:
        raise NonRetryableException(FAILURE)

    @hatchet.task(name="alerts-flaky", retries=2, backoff_factor=1.0, backoff_max_seconds=1)
    def flaky(input: EmptyModel, ctx: Context) -> dict[str, int]:
        if ctx.retry_count < 1:
            raise ValueError("first attempt fails on purpose")
        return {"attempt": ctx.retry_count}

    return hatchet, [breaks, flaky]


# ---------------------------------------------------------------------------------------------------------------------
# Sinks
# ---------------------------------------------------------------------------------------------------------------------

class HttpSink:
    """Records every POST (path, headers, JSON body); answers 500 to the first `fail_next[path]` requests of a path."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.fail_next: dict[str, int] = {}
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with sink.lock:
                    failing = sink.fail_next.get(self.path, 0) > 0
                    if failing:
                        sink.fail_next[self.path] -= 1
                    sink.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                          "body": json.loads(body), "answered": 500 if failing else 200})
                self.send_response(500 if failing else 200)
                self.end_headers()
                self.wfile.write(b"sink says no" if failing else b"ok")

            def log_message(self, *args) -> None:
                pass

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.fail_next.clear()


class SmtpSink:
    """aiosmtpd on 127.0.0.1 that requires AUTH (mailer / pa55, allowed without TLS on loopback) and keeps every
    message it accepts."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: list[dict] = []
        self.logins: list[str] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
                sink.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                      "message": message_from_bytes(envelope.content)})
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login == b"mailer" and auth_data.password == b"pa55"
            if ok:
                sink.logins.append(auth_data.login.decode())
            return AuthResult(success=ok)

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, authenticator=authenticator,
                                     auth_required=True, auth_require_tls=False)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


# ---------------------------------------------------------------------------------------------------------------------
# Fixtures and REST helpers
# ---------------------------------------------------------------------------------------------------------------------

class Api:
    def __init__(self, server) -> None:
        self.base = server.rest_url
        self.token = server.env["HATCHET_CLIENT_TOKEN"]
        payload = self.token.split(".")[1]
        self.tenant = json.loads(__import__("base64").urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]

    def call(self, method: str, path: str, body=None, token: str | None = "default") -> tuple[int, dict | None]:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if token is not None:
            req.add_header("Authorization", f"Bearer {self.token if token == 'default' else token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, json.loads(raw) if raw else None

    def channel(self, kind: str, tenant: str | None = None) -> str:
        return f"/api/v1/stable/tenants/{tenant or self.tenant}/alert-channels/{kind}"

    def channels(self) -> list[dict]:
        status, body = self.call("GET", f"/api/v1/stable/tenants/{self.tenant}/alert-channels")
        assert status == 200, body
        return body["rows"]


@pytest.fixture(scope="module")
def alerts(server):
    from conftest import WorkerProcess

    worker = WorkerProcess(server, "worker", script=Path(__file__).resolve(), log_name="alerts")
    http, smtp = HttpSink(), SmtpSink()
    api = Api(server)
    try:
        worker.wait_healthy()
        hatchet, (breaks, flaky) = build_workflows()
        yield api, http, smtp, hatchet, breaks, flaky
    finally:
        for c in api.channels():
            api.call("DELETE", api.channel(c["kind"]))
        worker.stop()
        smtp.stop()
        http.httpd.shutdown()


@pytest.fixture
def clean(alerts):
    api, http, smtp, *_ = alerts
    http.clear()
    smtp.messages.clear()
    yield alerts
    for c in api.channels():
        api.call("DELETE", api.channel(c["kind"]))


def sql_rows(server, query: str, *args) -> list[tuple]:
    """Runs a query in the dev cluster's database (the deliveries are tasks of the extension, read in SQL)."""
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{server.pg_port}/hatchet") as conn:
        return conn.execute(query, args).fetchall()


def sql(server, query: str, *args):
    rows = sql_rows(server, query, *args)
    return rows[0][0] if rows else None


def email_settings(smtp: SmtpSink) -> dict:
    return {"host": "127.0.0.1", "port": smtp.port, "tls": "none", "from": "hatchet@example.test",
            "to": ["ops@example.test", "oncall@example.test"]}


def run_failing(breaks) -> str:
    ref = breaks.run(wait_for_result=False)
    with pytest.raises(FailedTaskRunExceptionGroup):
        ref.result()
    return ref.workflow_run_id


# ---------------------------------------------------------------------------------------------------------------------
# Settings over REST
# ---------------------------------------------------------------------------------------------------------------------

def test_channels_are_set_over_rest_and_secrets_never_come_back(clean):
    api, http, smtp, *_ = clean
    secret_url = http.url("/slack/T000/B000/very-secret-token")

    # Bad input: 400 and nothing stored.
    for kind, body in [
        ("sms", {"secret": {"url": secret_url}}),
        ("slack", {}),
        ("slack", {"secret": {"url": "ftp://example.test/"}}),
        ("slack", {"secret": {"url": secret_url}, "colour": "red"}),
        ("webhook", {"secret": {"url": secret_url, "headers": {"X-Token": 5}}}),
        ("webhook", {"secret": {"url": secret_url}, "events": ["everything"]}),
        ("email", {"settings": {**email_settings(smtp), "port": 0}}),
        ("email", {"settings": {**email_settings(smtp), "to": []}}),
        ("email", {"settings": email_settings(smtp), "secret": {"username": "only"}}),
    ]:
        status, answer = api.call("PUT", api.channel(kind), body)
        assert status == 400, (kind, body, status, answer)
    status, _ = api.call("PUT", api.channel("slack"), b"{not json")
    assert status == 400
    assert api.channels() == []

    # Another tenant's path, or no token.
    other = "00000000-0000-7000-8000-000000000017"
    assert api.call("PUT", api.channel("slack", tenant=other), {"secret": {"url": secret_url}})[0] == 403
    assert api.call("GET", api.channel("slack"), token=None)[0] == 401
    assert api.channels() == []

    status, created = api.call("PUT", api.channel("slack"), {"secret": {"url": secret_url}})
    assert status == 201, created
    assert created["kind"] == "slack" and created["enabled"] is True and created["events"] == ["run_failed"]
    assert created["secretFields"] == ["url"] and created["settings"] == {}
    status, created = api.call("PUT", api.channel("email"), {
        "settings": email_settings(smtp), "secret": {"username": "mailer", "password": "pa55"}})
    assert status == 201, created
    assert created["settings"] == email_settings(smtp) and created["secretFields"] == ["password", "username"]

    # The secret's values appear in no answer.
    status, listed = api.call("GET", f"/api/v1/stable/tenants/{api.tenant}/alert-channels")
    assert status == 200 and [c["kind"] for c in listed["rows"]] == ["email", "slack"]
    text = json.dumps(listed)
    assert "very-secret-token" not in text and "pa55" not in text

    # Changing settings without the secret keeps the secret; the answer says 200 (replaced).
    status, changed = api.call("PUT", api.channel("slack"), {"enabled": False})
    assert status == 200 and changed["enabled"] is False and changed["secretFields"] == ["url"]
    status, one = api.call("GET", api.channel("slack"))
    assert status == 200 and one["enabled"] is False

    assert api.call("DELETE", api.channel("slack"))[0] == 204
    assert api.call("DELETE", api.channel("slack"))[0] == 404
    assert api.call("GET", api.channel("slack"))[0] == 404
    assert [c["kind"] for c in api.channels()] == ["email"]


# ---------------------------------------------------------------------------------------------------------------------
# Delivery
# ---------------------------------------------------------------------------------------------------------------------

def test_a_failed_run_is_reported_once_on_every_channel_with_its_link(clean, server):
    api, http, smtp, hatchet, breaks, flaky = clean
    assert api.call("PUT", api.channel("slack"), {"secret": {"url": http.url("/slack")}})[0] == 201
    assert api.call("PUT", api.channel("webhook"), {"secret": {
        "url": http.url("/hook"), "headers": {"Authorization": "Bearer sink-token"}}})[0] == 201
    assert api.call("PUT", api.channel("email"), {
        "settings": email_settings(smtp), "secret": {"username": "mailer", "password": "pa55"}})[0] == 201

    # Runs that succeed, also after a retry, raise no alert.
    assert flaky.run() == {"attempt": 1}
    run_id = run_failing(breaks)
    link = f"{server.rest_url}/runs/{run_id}"

    slack = wait_for(lambda: http.at("/slack"), 30, "the Slack alert")
    hook = wait_for(lambda: http.at("/hook"), 30, "the webhook alert")
    mail = wait_for(lambda: smtp.messages, 30, "the email alert")
    # Nothing more arrives: one alert per run and channel, and none for the run that succeeded.
    time.sleep(3)
    assert len(http.at("/slack")) == 1 and len(http.at("/hook")) == 1 and len(smtp.messages) == 1

    text = slack[0]["body"]["text"]
    assert "alerts-breaks" in text and FAILURE in text and link in text, text

    body = hook[0]["body"]
    assert body["event"] == "run_failed" and body["run_id"] == run_id and body["url"] == link
    assert body["workflow"] == "alerts-breaks" and FAILURE in body["error"] and body["tenant_id"] == api.tenant
    assert hook[0]["headers"]["authorization"] == "Bearer sink-token"
    assert hook[0]["headers"]["content-type"] == "application/json"
    delivery = hook[0]["headers"]["x-hatchet-alert-id"]

    assert smtp.logins == ["mailer"] or set(smtp.logins) == {"mailer"}
    assert mail[0]["from"] == "hatchet@example.test"
    assert sorted(mail[0]["to"]) == ["oncall@example.test", "ops@example.test"]
    message = mail[0]["message"]
    assert "alerts-breaks" in message["Subject"]
    content = message.get_payload(decode=True).decode()
    assert link in content and FAILURE in content, content

    # The alert log names the run and the delivery of each channel; a bad limit is a 400.
    status, sent = api.call("GET", f"/api/v1/stable/tenants/{api.tenant}/alerts?limit=10")
    assert status == 200, sent
    mine = sorted((r["kind"], r["event"]) for r in sent["rows"] if r["subject"] == f"run:{run_id}")
    assert mine == [("email", "run_failed"), ("slack", "run_failed"), ("webhook", "run_failed")], sent
    assert delivery in {r["deliveryRunId"] for r in sent["rows"]}
    assert api.call("GET", f"/api/v1/stable/tenants/{api.tenant}/alerts?limit=0")[0] == 400
    # The delivery is a run of its own (of the workflow hatchet:alerts), completed, with what was sent in its output.
    assert wait_for(lambda: hatchet.runs.get_status(delivery).value == "COMPLETED", 10, "the delivery run")
    assert hatchet.runs.get(delivery).run.display_name.startswith("hatchet:alerts")
    output = sql(server, "SELECT data FROM hatchet.payloads WHERE task_id = %s AND kind = 'OUTPUT'", delivery)
    assert output == {"sent": "webhook", "to": "127.0.0.1", "link": link}, output


def test_a_failed_delivery_is_retried_with_backoff(clean, server):
    api, http, smtp, hatchet, breaks, _ = clean
    http.fail_next["/hook"] = 1
    assert api.call("PUT", api.channel("webhook"), {"secret": {"url": http.url("/hook")}})[0] == 201
    run_id = run_failing(breaks)

    requests = wait_for(lambda: len(http.at("/hook")) >= 2 and http.at("/hook"), 30, "the retried webhook alert")
    assert [r["answered"] for r in requests] == [500, 200]
    # Both attempts are the same delivery (same id) about the same run.
    assert requests[0]["headers"]["x-hatchet-alert-id"] == requests[1]["headers"]["x-hatchet-alert-id"]
    assert {r["body"]["run_id"] for r in requests} == {run_id}
    delivery = requests[1]["headers"]["x-hatchet-alert-id"]
    assert wait_for(lambda: hatchet.runs.get_status(delivery).value == "COMPLETED", 10, "the delivery run")
    # The first attempt failed with the endpoint's answer and was retried after a backoff.
    events = sql_rows(server, "SELECT event_type::text, retry_count, reason FROM hatchet.task_events(%s) "
                              "ORDER BY created_at", delivery)
    kinds = [e[0] for e in events]
    assert "RETRYING" in kinds and kinds[-1] == "COMPLETED", events
    retrying = next(e for e in events if e[0] == "RETRYING")
    assert retrying[1] == 0 and "500" in retrying[2] and "sink says no" in retrying[2], retrying
    time.sleep(2)
    assert len(http.at("/hook")) == 2


def test_a_disabled_channel_gets_nothing(clean):
    api, http, smtp, hatchet, breaks, _ = clean
    assert api.call("PUT", api.channel("webhook"), {"secret": {"url": http.url("/hook")}, "enabled": False})[0] == 201
    assert api.call("PUT", api.channel("slack"), {"secret": {"url": http.url("/slack")}})[0] == 201
    run_failing(breaks)
    wait_for(lambda: http.at("/slack"), 30, "the Slack alert")
    time.sleep(2)
    assert http.at("/hook") == []


def test_a_dead_worker_is_reported_on_the_channels_that_ask_for_it(clean, server):
    from conftest import WorkerProcess

    api, http, *_ = clean
    assert api.call("PUT", api.channel("webhook"), {
        "secret": {"url": http.url("/hook")}, "events": ["run_failed", "worker_died"]})[0] == 201
    assert api.call("PUT", api.channel("slack"), {"secret": {"url": http.url("/slack")}})[0] == 201
    doomed = WorkerProcess(server, "doomed", script=Path(__file__).resolve(), log_name="alerts-doomed")
    try:
        doomed.wait_healthy()
        doomed.proc.kill()  # no goodbye: only the missing heartbeats tell
        doomed.proc.wait()

        def died() -> list[dict]:
            return [r for r in http.at("/hook")
                    if r["body"].get("event") == "worker_died" and r["body"].get("worker") == "e2e-alerts-doomed"]

        # Declared dead after hatchet.worker_dead_after_ms (30 s) without a heartbeat, then delivered.
        hook = wait_for(died, 90, "the worker_died alert")
        body = hook[0]["body"]
        assert body["url"] == f"{server.rest_url}/workers#worker-{body['worker_id']}"
        assert "stopped sending heartbeats" in body["text"] and body["last_heartbeat_at"]
        time.sleep(2)
        assert len(died()) == 1
        # The Slack channel did not ask for worker deaths.
        assert [r for r in http.at("/slack") if "died" in r["body"]["text"]] == []
    finally:
        doomed.stop()


def test_a_cron_that_missed_ticks_is_reported(clean, server):
    api, http, smtp, hatchet, *_ = clean
    assert api.call("PUT", api.channel("webhook"), {
        "secret": {"url": http.url("/hook")}, "events": ["cron_missed"]})[0] == 201
    cron = hatchet.cron.create("alerts-flaky", "alerts-e2e-nightly", "0 3 * * *", {}, {})
    try:
        # As if the engine had been down for three days: the background worker fires the oldest tick once and skips
        # the two after it.
        sql_rows(server, "UPDATE hatchet.crons SET next_tick_at = now() - interval '3 days' WHERE id = %s "
                         "RETURNING id", cron.metadata.id)

        def missed() -> list[dict]:
            return [r for r in http.at("/hook")
                    if r["body"].get("event") == "cron_missed" and r["body"].get("cron") == "alerts-e2e-nightly"]

        hook = wait_for(missed, 60, "the cron_missed alert")
        body = hook[0]["body"]
        assert body["cron"] == "alerts-e2e-nightly" and body["workflow"] == "alerts-flaky"
        assert body["expression"] == "0 3 * * *" and body["cron_id"] == cron.metadata.id
        assert body["url"] == f"{server.rest_url}/crons#cron-{cron.metadata.id}"
        assert "skipped" in body["text"]
        time.sleep(2)
        assert len(missed()) == 1
    finally:
        hatchet.cron.delete(cron.metadata.id)


if __name__ == "__main__" and sys.argv[1:2] in (["worker"], ["doomed"]):
    worker_hatchet, workflows = build_workflows()
    name = "e2e-alerts" if sys.argv[1] == "worker" else "e2e-alerts-doomed"
    worker_hatchet.worker(name, slots=5, workflows=workflows).start()
