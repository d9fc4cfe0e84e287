"""The dashboard in a real browser: Debian's headless chromium driven through chromium-driver by `selenium`, against
`hatchet-server dev` with a real SDK worker (this file run as a script: `python test_dashboard.py worker`).

Signs in (with the token, and with the link `dev` prints), finds a run the worker completed, opens its DAG, reads a
log line, cancels a running task, replays a failed run and watches it succeed, sees a new run appear in the list
without a reload, and sets an alert channel on the alerts page whose webhook then reports a failed run. Screenshots go to tests/output/e2e/dashboard/ (git-ignored); docs/img/dashboard-*.png are copies.
No browser or driver is downloaded: the test uses /usr/bin/chromium and /usr/bin/chromedriver from scripts/setup.sh.
"""

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hatchet_sdk import Context, EmptyModel, Hatchet
from pydantic import BaseModel

SHOTS = Path(__file__).resolve().parents[2] / "tests" / "output" / "e2e" / "dashboard"
LOG_LINE = "dashboard log line: crunching 42 numbers"


class Marker(BaseModel):
    marker: str


def build_workflows():
    hatchet = Hatchet()
    dag = hatchet.workflow(name="dash-pipeline")

    @dag.task()
    def extract(input: EmptyModel, ctx: Context) -> dict[str, int]:
        ctx.log(LOG_LINE)
        return {"rows": 42}

    @dag.task(parents=[extract])
    def transform(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"rows": ctx.task_output(extract)["rows"] * 2}

    @dag.task(parents=[extract])
    def validate(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        return {"ok": True}

    @dag.task(parents=[transform, validate])
    def load(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"loaded": ctx.task_output(transform)["rows"]}

    @hatchet.task(name="dash-slow", input_validator=Marker)
    async def slow(input: Marker, ctx: Context) -> dict[str, bool]:
        Path(input.marker + ".started").write_text("started")
        for _ in range(1200):
            if ctx.exit_flag:
                return {"cancelled": True}
            await asyncio.sleep(0.05)
        return {"cancelled": False}

    @hatchet.task(name="dash-flaky", input_validator=Marker)
    def flaky(input: Marker, ctx: Context) -> dict[str, str]:
        if not Path(input.marker).exists():
            raise ValueError("the marker file is missing, so this attempt fails")
        return {"fixed": "yes"}

    return hatchet, dag, slow, flaky


@pytest.fixture(scope="module")
def dash(server):
    from conftest import WorkerProcess

    worker = WorkerProcess(server, "worker", script=Path(__file__).resolve(), log_name="dashboard")
    try:
        worker.wait_healthy()
        yield build_workflows()
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    profile = tempfile.mkdtemp(prefix="pg_hatchet-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver, name: str) -> None:
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def wait_until(driver, predicate, timeout: float, what: str):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # A live update swaps parts of the page, so an element found a moment ago may be gone: look again.
    return WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(
        lambda d: predicate(d), message=what)


def sign_in(driver, server) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{server.rest_url}/login")
    driver.find_element(By.ID, "token").send_keys(server.env["HATCHET_CLIENT_TOKEN"])
    driver.find_element(By.ID, "sign-in").click()
    wait_until(driver, lambda d: d.current_url.endswith("/runs"), 10, "the runs page after sign-in")


def run_status(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "run-status").text.strip()


def test_sign_in_with_token_and_with_dev_link(server, browser):
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(f"{server.rest_url}/runs")
    assert browser.current_url.endswith("/login"), "signed-out browsers are sent to sign in"
    browser.find_element(By.ID, "token").send_keys("eyJhbGciOiJIUzI1NiJ9.e30.forged")
    browser.find_element(By.ID, "sign-in").click()
    assert "sign-in refused" in browser.find_element(By.CSS_SELECTOR, "p.error").text
    shot(browser, "login")
    sign_in(browser, server)
    assert browser.find_element(By.CSS_SELECTOR, "header .tenant").text == server.tenant_id
    # The link `hatchet-server dev` prints signs a fresh browser in, too.
    browser.delete_all_cookies()
    assert server.dashboard_link.startswith(f"http://localhost:{server.http_port}/login?token=")
    browser.get(server.dashboard_link)
    wait_until(browser, lambda d: d.current_url.endswith("/runs"), 10, "the runs page after the dev link")
    assert browser.find_element(By.CSS_SELECTOR, "header .tenant").text == server.tenant_id


def listed(driver, server, run_id: str, status: str) -> bool:
    """Whether the runs list filtered by `status` (last hour) shows the run."""
    from selenium.webdriver.common.by import By

    driver.get(f"{server.rest_url}/runs?window=1h&status={status}")
    wait_until(driver, lambda d: d.find_elements(By.ID, "run-filters"), 10, f"the runs list filtered by {status}")
    rows = driver.find_elements(By.CSS_SELECTOR, "tr[data-run]")
    assert all(status in r.text for r in rows), f"a row of another status under {status}"
    return any(r.get_attribute("data-run") == run_id for r in rows)


def test_completed_run_dag_and_log_line(server, browser, dash):
    from selenium.webdriver.common.by import By

    _, dag, _, _ = dash
    ref = dag.run_no_wait()
    result = ref.result()
    assert result["load"] == {"loaded": 84}
    run_id = ref.workflow_run_id
    sign_in(browser, server)
    # The run is in the list with its status; open it from there.
    row = wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-run="{run_id}"]'), 10,
                     "the completed run in the list")[0]
    assert "COMPLETED" in row.text
    assert "dash-pipeline" in row.text
    shot(browser, "runs")
    row.find_element(By.LINK_TEXT, run_id).click()
    wait_until(browser, lambda d: d.current_url.endswith(f"/runs/{run_id}"), 10, "the run page")
    assert run_status(browser) == "COMPLETED"
    nodes = browser.find_elements(By.CSS_SELECTOR, "svg.dag a.dag-node")
    assert sorted(n.get_attribute("data-task") for n in nodes) == ["extract", "load", "transform", "validate"]
    assert {n.get_attribute("data-status") for n in nodes} == {"COMPLETED"}
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.dag path")) == 4, "four edges of the diamond"
    logs = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#task-extract .log-line")]
    assert any(LOG_LINE in line for line in logs), logs
    events = [e.get_attribute("data-event") for e in browser.find_elements(By.CSS_SELECTOR, "#timeline tr[data-event]")]
    assert events.count("COMPLETED") == 4 and "ASSIGNED" in events, events
    assert '"loaded": 84' in browser.find_element(By.ID, "task-load").text
    shot(browser, "run-detail")


def test_cancel_a_running_task(server, browser, dash):
    from selenium.webdriver.common.by import By

    hatchet, _, slow, _ = dash
    marker = tempfile.mktemp(prefix="pg_hatchet-dash-slow-")
    ref = slow.run_no_wait(Marker(marker=marker))
    deadline = time.monotonic() + 30
    while not Path(marker + ".started").exists():
        assert time.monotonic() < deadline, "the slow task never started"
        time.sleep(0.1)
    sign_in(browser, server)
    browser.get(f"{server.rest_url}/runs/{ref.workflow_run_id}")
    wait_until(browser, lambda d: run_status(d) == "RUNNING", 10, "the run to show RUNNING")
    browser.find_element(By.CSS_SELECTOR, "section.task form[action$='/cancel'] button").click()
    wait_until(browser, lambda d: run_status(d) == "CANCELLED", 15, "the run to show CANCELLED")
    assert hatchet.runs.get_status(ref.workflow_run_id).name == "CANCELLED"
    assert "cancelled by user" in browser.find_element(By.ID, "timeline").text
    shot(browser, "cancelled")
    # The status filter of the list finds it under CANCELLED, not under RUNNING.
    assert listed(browser, server, ref.workflow_run_id, "CANCELLED")
    assert not listed(browser, server, ref.workflow_run_id, "RUNNING")


def test_replay_a_failed_run_and_watch_it_succeed(server, browser, dash):
    from selenium.webdriver.common.by import By

    hatchet, _, _, flaky = dash
    marker = tempfile.mktemp(prefix="pg_hatchet-dash-flaky-")
    ref = flaky.run_no_wait(Marker(marker=marker))
    with pytest.raises(Exception):
        ref.result()
    sign_in(browser, server)
    browser.get(f"{server.rest_url}/runs/{ref.workflow_run_id}")
    assert run_status(browser) == "FAILED"
    assert "marker file is missing" in browser.find_element(By.CSS_SELECTOR, "section.task").text
    assert listed(browser, server, ref.workflow_run_id, "FAILED")
    browser.get(f"{server.rest_url}/runs/{ref.workflow_run_id}")
    Path(marker).write_text("fixed")
    # The replay form posts and is redirected back to this same URL, so the URL alone cannot tell that the new page
    # has loaded: a mark set on the old page is gone once it has (on a loaded machine the post took long enough for
    # the check below to run on the old page, and the new page then wiped its marker).
    browser.execute_script("window.__beforeReplay = 'old page';")
    browser.find_element(By.CSS_SELECTOR, "form[action$='/replay'] button").click()
    wait_until(browser, lambda d: d.execute_script("return window.__beforeReplay") is None
               and d.current_url.endswith(f"/runs/{ref.workflow_run_id}")
               and d.execute_script("return document.readyState") == "complete", 10, "back on the run")
    # From here on the page is not reloaded: a marker set in it survives until the live update shows COMPLETED.
    browser.execute_script("window.__noReload = 'still here';")
    wait_until(browser, lambda d: run_status(d) == "COMPLETED", 30, "the replayed run to show COMPLETED live")
    assert browser.execute_script("return window.__noReload") == "still here"
    assert '"fixed": "yes"' in browser.find_element(By.CSS_SELECTOR, "section.task").text
    assert hatchet.runs.get_status(ref.workflow_run_id).name == "COMPLETED"
    shot(browser, "replayed")
    # Replayed and completed: the status filter lists it under COMPLETED and no longer under FAILED.
    assert listed(browser, server, ref.workflow_run_id, "COMPLETED")
    assert not listed(browser, server, ref.workflow_run_id, "FAILED")


def test_a_new_run_appears_without_a_reload(server, browser, dash):
    from selenium.webdriver.common.by import By

    _, dag, _, _ = dash
    sign_in(browser, server)
    browser.get(f"{server.rest_url}/runs?window=1h")
    wait_until(browser, lambda d: "live" in d.find_element(By.ID, "live-status").text, 10, "the live feed to open")
    browser.execute_script("window.__noReload = 'still here';")
    ref = dag.run_no_wait()
    selector = f'tr[data-run="{ref.workflow_run_id}"]'
    wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, selector), 15, "the new run in the list")
    ref.result()
    wait_until(browser, lambda d: "COMPLETED" in d.find_element(By.CSS_SELECTOR, selector).text, 15,
               "the new run to turn COMPLETED in the list")
    assert browser.execute_script("return window.__noReload") == "still here"
    shot(browser, "live")


def test_other_pages_render(server, browser, dash):
    from selenium.webdriver.common.by import By

    sign_in(browser, server)
    for path, shot_name in [("/workers", "workers"), ("/workflows", "workflows"), ("/queues", "queues"),
                            ("/crons", None), ("/events", None), ("/rate-limits", None), ("/concurrency", None)]:
        browser.get(f"{server.rest_url}{path}")
        assert browser.find_element(By.TAG_NAME, "h1").text, path
        assert not browser.find_elements(By.CSS_SELECTOR, "p.error"), path
        if shot_name:
            shot(browser, shot_name)
    browser.get(f"{server.rest_url}/workers")
    assert "e2e-dashboard" in browser.find_element(By.TAG_NAME, "main").text
    browser.get(f"{server.rest_url}/queues")
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart"), "the throughput chart"


def test_alert_channel_set_in_the_dashboard_reports_a_failed_run(server, browser, dash):
    """Alerts page: add a webhook channel pointed at a local sink, send a test, see the alert of a failed run arrive
    (at the sink and in the page's list of alerts sent), delete the channel. The secret URL is never shown back."""
    from selenium.webdriver.common.by import By
    from test_alerts import Api, HttpSink

    _, _, _, flaky = dash
    sink, api = HttpSink(), Api(server)
    hook = sink.url("/dash-alerts")
    try:
        sign_in(browser, server)
        browser.get(f"{server.rest_url}/alerts")
        form = browser.find_element(By.ID, "put-webhook")
        form.find_element(By.NAME, "url").send_keys(hook)
        assert form.find_element(By.NAME, "ev_run_failed").is_selected()
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        row = 'tr[data-channel="webhook"]'
        wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, row), 15, "the webhook channel listed")
        assert "url set" in browser.find_element(By.CSS_SELECTOR, row).text
        assert hook not in browser.page_source, "the secret URL is not shown back"

        browser.find_element(By.CSS_SELECTOR, f"{row} form[action='/alerts/webhook/test'] button").click()
        wait_until(browser, lambda d: d.find_elements(By.ID, "test-result"), 30, "the test send's result")
        result = browser.find_element(By.ID, "test-result")
        assert result.get_attribute("data-delivered") == "true", result.text
        wait_until(browser, lambda d: [r for r in sink.at("/dash-alerts") if r["body"]["event"] == "test"], 15,
                   "the test alert at the sink")
        shot(browser, "alerts")

        ref = flaky.run_no_wait(Marker(marker=tempfile.mktemp(prefix="pg_hatchet-dash-alert-")))
        with pytest.raises(Exception):
            ref.result()
        run_id = ref.workflow_run_id

        def delivered(_):
            return [r for r in sink.at("/dash-alerts")
                    if r["body"]["event"] == "run_failed" and r["body"].get("run_id") == run_id]

        got = wait_until(browser, delivered, 60, "the run_failed alert at the sink")
        assert got[0]["body"]["url"].endswith(f"/runs/{run_id}")

        def listed(d):
            d.get(f"{server.rest_url}/alerts")
            return f"run:{run_id}" in d.find_element(By.ID, "alerts-sent").text

        wait_until(browser, listed, 30, "the alert in the page's list of alerts sent")

        browser.find_element(By.CSS_SELECTOR, f"{row} form[action='/alerts/webhook/delete'] button").click()
        wait_until(browser, lambda d: d.current_url.endswith("/alerts") and not d.find_elements(By.CSS_SELECTOR, row),
                   15, "the channel gone")
        assert all(c["kind"] != "webhook" for c in api.channels())
    finally:
        # Other modules share this server: never leave a channel behind.
        for c in api.channels():
            api.call("DELETE", api.channel(c["kind"]))
        sink.httpd.shutdown()


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    worker_hatchet, dag_wf, slow_task, flaky_task = build_workflows()
    worker_hatchet.worker("e2e-dashboard", slots=10, workflows=[dag_wf, slow_task, flaky_task]).start()
