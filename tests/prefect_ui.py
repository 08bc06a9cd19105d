"""Driving the Prefect UI with Playwright, the way a person does: open a deployment, fill the
custom-run form, follow the run, read its artifacts. Headless Chromium from Debian's `chromium`
package (or PLAYWRIGHT_CHROMIUM_EXECUTABLE)."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request

UI_TIMEOUT_MS = 180_000  # the UI is slow to render on a loaded 2-core machine


def chromium_executable() -> str:
    path = os.environ.get("PLAYWRIGHT_CHROMIUM_EXECUTABLE") or shutil.which("chromium")
    if not path:
        raise RuntimeError(
            "no Chromium found: install Debian's `chromium` package (make test does) "
            "or set PLAYWRIGHT_CHROMIUM_EXECUTABLE"
        )
    return path


def api(api_url: str, path: str, body: dict | None = None):
    request = urllib.request.Request(
        f"{api_url}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def start_custom_run(page, ui_url: str, deployment: str, profile: str, overrides: list[str] = ()) -> None:
    """Deployments -> the deployment -> Run -> Custom run -> profile (-> overrides) -> Submit."""
    page.goto(f"{ui_url}/deployments", timeout=UI_TIMEOUT_MS)
    page.get_by_role("link", name=deployment, exact=True).click(timeout=UI_TIMEOUT_MS)
    run = page.get_by_role("button", name="Run", exact=True)
    run.wait_for(timeout=UI_TIMEOUT_MS)
    page.wait_for_load_state("networkidle", timeout=UI_TIMEOUT_MS)
    run.click()
    page.get_by_text("Custom run", exact=True).click(timeout=UI_TIMEOUT_MS)
    page.get_by_text("profile (Optional)").wait_for(timeout=UI_TIMEOUT_MS)
    select = page.get_by_role("button", name="default", exact=True)  # the profile's select
    select.click()
    options = page.get_by_role("listbox")
    if not options.is_visible():
        select.press("ArrowDown")  # the select opens on the keyboard when a click only focuses it
    options.get_by_role("option", name=profile, exact=True).click()
    # The select shows the chosen profile once the form has re-rendered (raises if it never does).
    page.get_by_role("button", name=profile, exact=True).wait_for(state="visible", timeout=UI_TIMEOUT_MS)
    if overrides:
        fill_list_parameter(page, list(overrides))
    page.get_by_role("button", name="Submit", exact=True).click()


def fill_list_parameter(page, items: list[str]) -> None:
    """The form's one list parameter (`overrides`): switch it from None to a list, then one
    "Add item" and one typed line per item (each new item's text box is the last on the form)."""
    page.get_by_role("button", name="list", exact=True).click(timeout=UI_TIMEOUT_MS)
    for item in items:
        page.get_by_role("button", name="Add item").click(timeout=UI_TIMEOUT_MS)
        page.get_by_role("textbox").last.fill(item, timeout=UI_TIMEOUT_MS)


def wait_for_flow_run(api_url: str, deployment_id: str, timeout: float) -> dict:
    """The deployment's flow run, once it reaches a final state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = api(api_url, "/flow_runs/filter", {
            "deployments": {"id": {"any_": [deployment_id]}},
            "sort": "START_TIME_DESC", "limit": 5, "offset": 0,
        })
        if runs and runs[0]["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return runs[0]
        time.sleep(5)
    raise AssertionError(f"no finished run of deployment {deployment_id} within {timeout:.0f} s")


def artifact_keys(api_url: str, flow_run_id: str) -> set[str]:
    """Keys of a flow run's artifacts (explicit paging: this client's defaults send nulls)."""
    artifacts = api(api_url, "/artifacts/filter", {
        "artifacts": {"flow_run_id": {"any_": [flow_run_id]}},
        "sort": "CREATED_DESC", "limit": 200, "offset": 0,
    })
    return {a["key"] for a in artifacts if a.get("key")}
