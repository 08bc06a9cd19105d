"""The Prefect UI in a real browser: `modelgate stack up` (S3, Prefect server, worker) and
`modelgate deploy`, then headless Chromium starts the intent-ood deployment with the quick profile
from its page, the worker runs it on real CLINC150 data with the real encoder, and the run page
shows its metrics artifacts. A screenshot of that page is saved (MODELGATE_TEST_ARTIFACTS, default
test-artifacts/ in the checkout)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirror import REAL_MIRROR
from modelgate.stack.processes import free_port
from prefect_ui import UI_TIMEOUT_MS, api, chromium_executable, start_custom_run, wait_for_flow_run
from stack_env import local_stack_env

REPO = Path(__file__).resolve().parents[1]
DEPLOYMENT = "train-intent-ood"
RUN_TIMEOUT_S = 45 * 60  # the quick profile embeds ~16k queries with MiniLM on the CPU

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ui_stack(tmp_path_factory):
    from modelgate.stack.deploy import deploy
    from modelgate.settings import load_settings
    from modelgate.stack import stack_down, stack_up

    with pytest.MonkeyPatch.context() as monkeypatch:
        local_stack_env(monkeypatch, tmp_path_factory.mktemp("ui"), free_port(), free_port())
        monkeypatch.setenv("MODELGATE_DATA_MIRROR", str(REAL_MIRROR))
        settings = load_settings()
        try:
            status = stack_up(settings)  # the worker inherits this environment
            assert status.all_running, status.describe()
            result = deploy(settings.prefect_api_url, REPO, [f"intent-ood/{DEPLOYMENT}"])
            yield settings, result
        finally:
            stack_down(settings)


@pytest.mark.timeout(RUN_TIMEOUT_S + 900)
def test_a_quick_run_started_from_the_ui_completes_with_its_metrics(ui_stack):
    from playwright.sync_api import sync_playwright

    from modelgate.registry import Registry

    settings, deployed = ui_stack
    assert deployed.deployments == [f"intent-ood/{DEPLOYMENT}"]
    api_url = settings.prefect_api_url
    ui_url = api_url[: -len("/api")]
    [deployment] = api(api_url, "/deployments/filter", {
        "deployments": {"name": {"any_": [DEPLOYMENT]}}, "limit": 1, "offset": 0,
    })
    shots = Path(os.environ.get("MODELGATE_TEST_ARTIFACTS") or REPO / "test-artifacts")
    shots.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_executable(), args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            start_custom_run(page, ui_url, DEPLOYMENT, "quick")
            # The confirmation toast (rendered more than once by the UI, hence .first).
            page.get_by_text("scheduled to start").first.wait_for(timeout=UI_TIMEOUT_MS)

            run = wait_for_flow_run(api_url, deployment["id"], RUN_TIMEOUT_S)
            assert run["parameters"]["profile"] == "quick"  # what the form sent
            assert run["state"]["type"] == "COMPLETED", run["state"]

            page.goto(f"{ui_url}/runs/flow-run/{run['id']}", timeout=UI_TIMEOUT_MS)
            page.get_by_text("Artifacts", exact=True).click(timeout=UI_TIMEOUT_MS)
            for key in ("intent-ood-metrics", "intent-ood-gate-verdict", "intent-ood-report"):
                page.get_by_text(key, exact=True).first.wait_for(timeout=UI_TIMEOUT_MS)
            page.get_by_text("Gate decision:").first.wait_for(timeout=UI_TIMEOUT_MS)
            # The metrics table itself, on the artifact's own page (whatever the verdict).
            page.get_by_text("intent-ood-metrics", exact=True).first.click(timeout=UI_TIMEOUT_MS)
            page.get_by_text("ood_auprc").first.wait_for(timeout=UI_TIMEOUT_MS)
        finally:
            page.screenshot(path=str(shots / "prefect-ui-quick-run-artifacts.png"), full_page=True)
            browser.close()

    runs = api(api_url, "/flow_runs/filter", {
        "deployments": {"id": {"any_": [deployment["id"]]}}, "limit": 10, "offset": 0,
    })
    assert [r["id"] for r in runs] == [run["id"]]  # one Submit, one run
    version = Registry.from_settings(settings).resolve("intent-ood")
    assert version.manifest["prefect_flow_run_id"] == run["id"]
    assert version.manifest["config"]["profile"] == "quick"
