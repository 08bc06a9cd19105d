"""The Prefect UI in a real browser: `modelgate stack up` (S3, Prefect server, worker) and
`modelgate deploy`, then headless Chromium starts the intent-ood deployment from its page with a
custom run: the quick profile, plus overrides typed into the form's list parameter that swap the
encoder for a tiny random one and shorten training and evaluation. The worker runs it on real
CLINC150 data (the quick profile's small set), and the run page shows its metrics artifacts and
the gate decision that the registry records. A screenshot of that page is saved
(MODELGATE_TEST_ARTIFACTS, default test-artifacts/ in the checkout). How well the quick profile
does with the real encoder is measured by benchmarks/intent_ood.py, not here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirror import REAL_MIRROR
from modelgate.stack.processes import free_port
from prefect_ui import UI_TIMEOUT_MS, api, chromium_executable, start_custom_run, wait_for_flow_run
from stack_env import local_stack_env
from tiny_preset import build_tiny_preset

REPO = Path(__file__).resolve().parents[1]
DEPLOYMENT = "train-intent-ood"
RUN_TIMEOUT_S = 10 * 60  # a tiny encoder embeds the small set's queries in seconds; the rest is start-up

pytestmark = pytest.mark.slow


def run_overrides(preset: Path) -> list[str]:
    """What the form's overrides field gets: a tiny encoder, one short training, fewer resamples.
    A tiny random encoder fails the quick gate; the test holds the UI to showing that decision."""
    return [f"model.preset={preset}", "model.num_inducing=64", "train.epochs=2",
            "evaluate.bootstrap_samples=100"]


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory) -> Path:
    return build_tiny_preset(tmp_path_factory.mktemp("preset") / "tiny-bert")


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
def test_a_quick_run_started_from_the_ui_completes_with_its_metrics(ui_stack, tiny_preset):
    from playwright.sync_api import sync_playwright

    from modelgate.registry import Registry

    settings, deployed = ui_stack
    overrides = run_overrides(tiny_preset)
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
            start_custom_run(page, ui_url, DEPLOYMENT, "quick", overrides)
            # The confirmation toast (rendered more than once by the UI, hence .first).
            page.get_by_text("scheduled to start").first.wait_for(timeout=UI_TIMEOUT_MS)

            run = wait_for_flow_run(api_url, deployment["id"], RUN_TIMEOUT_S)
            assert run["parameters"]["profile"] == "quick"  # what the form sent
            assert run["parameters"]["overrides"] == overrides
            assert run["state"]["type"] == "COMPLETED", run["state"]
            version = Registry.from_settings(settings).resolve("intent-ood")
            decision = version.manifest["verdict"]["decision"]

            page.goto(f"{ui_url}/runs/flow-run/{run['id']}", timeout=UI_TIMEOUT_MS)
            page.get_by_text("Artifacts", exact=True).click(timeout=UI_TIMEOUT_MS)
            for key in ("intent-ood-metrics", "intent-ood-gate-verdict", "intent-ood-report"):
                page.get_by_text(key, exact=True).first.wait_for(timeout=UI_TIMEOUT_MS)
            # The registered verdict, whichever it is, is the one the run page shows.
            page.get_by_text(f"Gate decision: {decision}").first.wait_for(timeout=UI_TIMEOUT_MS)
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
    assert version.manifest["prefect_flow_run_id"] == run["id"]
    assert version.manifest["config"]["profile"] == "quick"
    assert version.manifest["config"]["model"]["preset"] == str(tiny_preset)
    assert version.manifest["config"]["data"]["variant"] == "small"  # the profile's, under the overrides
    assert version.manifest["config"]["train"]["epochs"] == 2
    assert version.manifest["status"] == ("passed" if decision == "pass" else "failed")
