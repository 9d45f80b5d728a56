"""The dashboard as a researcher sees it, in a real browser (Playwright driving Debian's chromium,
no browser download): the deployment served by `python -m pipeline.serve` is started with its
Run button, the flow run finishes, and its `run-summary` artifact shows the verdicts table with
every claim. The project is a toy DAG holding the smoke run's reports, so the run is short and
the verdicts are real. Screenshots of both pages go to the test's folder."""

import re
import shutil
from pathlib import Path

import pytest
from conftest import served, wait_until
from test_serve import toy_project

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def deployment(smoke_run, prefect_server, tmp_path):
    """A toy DAG (its stages run in seconds) holding the smoke run's reports, so the run's
    run-summary artifact has real verdicts; served as the deployment digit-run/digit."""
    (tmp_path / "work").mkdir()
    work = toy_project(tmp_path / "work")
    shutil.copytree(smoke_run / "reports", work / "reports")
    with served(work, tmp_path / "serve.log") as found:
        yield found


def flow_runs_of(deployment_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )


def test_run_button_starts_a_run_and_the_summary_reads_right(deployment, prefect_server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        # The deployment may have runs from other tests of the session (same name, same server).
        before = {r.id for r in flow_runs_of(deployment.id)}

        def new_runs():
            return [r for r in flow_runs_of(deployment.id) if r.id not in before]

        page.goto(f"{prefect_server}/deployments/deployment/{deployment.id}")
        page.wait_for_load_state("networkidle")  # the page's scripts hold the button's handler
        page.get_by_role("button", name="Run", exact=True).click()
        quick = page.get_by_text("Quick run")  # the deployment's own parameters
        expect(quick).to_be_visible(timeout=60_000)
        quick.click()
        wait_until(lambda: len(new_runs()) == 1, 180, "a flow run from the UI")

        def finished():
            state = new_runs()[0].state
            return state is not None and state.is_final()

        # The serving process picks the run up and runs the stale stage (the bound: a failure).
        wait_until(finished, 600, "the flow run started from the UI to finish", every=1.0)
        run = new_runs()[0]
        assert run.state.is_completed(), run.state
        page.goto(f"{prefect_server}/runs/flow-run/{run.id}")
        expect(page.get_by_text("Completed").first).to_be_visible(timeout=60_000)
        page.screenshot(path=str(tmp_path / "flow_run.png"), full_page=True)

        page.goto(f"{prefect_server}/artifacts/key/run-summary")  # its versions, newest first
        page.get_by_role("link", name=re.compile(r"^[0-9a-f]{8}$")).first.click()
        verdicts = page.locator("table").filter(
            has=page.get_by_role("columnheader", name="verdict")
        )
        expect(verdicts).to_have_count(1, timeout=60_000)
        assert verdicts.locator("tbody tr").count() >= 5
        premises = page.locator("table").filter(
            has=page.get_by_role("columnheader", name="gates claims")
        )
        expect(premises).to_have_count(1)
        page.screenshot(path=str(tmp_path / "run_summary.png"), full_page=True)
        browser.close()
