"""Prefect events for automations, against a real Prefect server and a real SeaweedFS: a promotion
and a rollback from the command line arrive through the events API with their payloads, and the
automation documented in docs/automations.md is accepted by the server as written."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from typer.testing import CliRunner

from candidates import register_candidate
from modelgate.cli import app
from modelgate.registry import Registry
from prefect_ui import api

REPO = Path(__file__).resolve().parents[1]


def events_of(api_url: str, resource_id: str, wanted: set[str], timeout: float = 60) -> list[dict]:
    """The events about a resource, once every name in ``wanted`` has arrived (or the time is up):
    the server stores events asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        found = api(api_url, "/events/filter", {"filter": {"resource": {"id": [resource_id]}}, "limit": 50})["events"]
        if wanted <= {e["event"] for e in found} or time.monotonic() > deadline:
            return found
        time.sleep(1)


def test_promote_and_rollback_send_events_with_their_versions(modelgate_env, object_store, prefect_server,
                                                              monkeypatch, tmp_path):
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    registry = Registry(object_store)
    first = register_candidate(registry, tmp_path, "events-model", 0.90)
    cli = CliRunner()
    assert cli.invoke(app, ["promote", f"events-model:{first}", "--to", "production", "--actor", "ci"]).exit_code == 0
    second = register_candidate(registry, tmp_path, "events-model", 0.92)
    assert cli.invoke(app, ["promote", f"events-model:{second}", "--to", "production", "--actor", "ci"]).exit_code == 0
    rolled = cli.invoke(app, ["rollback", "events-model", "--actor", "oncall", "--reason", "latency"])
    assert rolled.exit_code == 0, rolled.output

    found = events_of(prefect_server, "modelgate.model.events-model",
                       {"modelgate.model.promoted", "modelgate.model.rolled-back"})
    promoted = sorted((e["payload"]["version"], e["payload"]["previous_version"])
                      for e in found if e["event"] == "modelgate.model.promoted")
    assert promoted == [(first, None), (second, first)]
    [rollback] = [e for e in found if e["event"] == "modelgate.model.rolled-back"]
    assert {k: rollback["payload"][k] for k in ("version", "previous_version", "alias", "actor", "reason")} == {
        "version": first, "previous_version": second, "alias": "production", "actor": "oncall", "reason": "latency"}
    assert {"prefect.resource.id": f"modelgate.version.events-model:{first}", "prefect.resource.role": "model-version",
            "prefect.resource.name": f"events-model:{first}"} in rollback["related"]


def test_the_documented_automation_is_accepted_by_the_server(prefect_server):
    from prefect.blocks.notifications import SlackWebhook

    block_id = SlackWebhook(url="https://hooks.slack.com/services/T0/B0/XXXX").save("gate-alerts", overwrite=True)
    text = (REPO / "docs" / "automations.md").read_text()
    [definition] = re.findall(r"```json\n(.*?)```", text, re.S)
    body = json.loads(definition.replace("BLOCK_DOCUMENT_ID", str(block_id)))
    created = api(prefect_server, "/automations/", body)
    stored = api(prefect_server, f"/automations/{created['id']}")
    assert stored["trigger"]["expect"] == ["modelgate.gate.refused"]
    assert stored["trigger"]["match"] == {"prefect.resource.id": "modelgate.model.*"}
    assert stored["actions"][0]["type"] == "send-notification"
    assert stored["actions"][0]["block_document_id"] == str(block_id)


def test_an_approved_promotion_says_the_approver_is_not_authenticated(modelgate_env, object_store,
                                                                      prefect_server, tmp_path):
    """Prefect's open-source server records no user for a resume: the approval event says so,
    and the audit event's actor is the name typed in the form."""
    from prefect.flow_runs import resume_flow_run

    from modelgate.events import resumed_by
    from test_flow_promotion import _paused_run, _run_in_thread

    registry = Registry(object_store, cache_dir=tmp_path / "cache")
    register_candidate(registry, tmp_path, "approved-model", 0.90)
    thread, box = _run_in_thread(model="approved-model", version=1, require_approval=True)
    paused = _paused_run("promote-model")
    resume_flow_run(paused.id, run_input={"approve": True, "approver": "dana", "comment": "checked"})
    thread.join(timeout=180)
    assert box["state"].result()["decision"] == "promoted"

    assert resumed_by(str(paused.id)) is None
    found = events_of(prefect_server, "modelgate.model.approved-model",
                       {"modelgate.model.approval", "modelgate.model.promoted"})
    [approval] = [e for e in found if e["event"] == "modelgate.model.approval"]
    assert {k: approval["payload"][k] for k in ("decision", "approver_as_typed", "resumed_by", "authenticated")} == {
        "decision": "approved", "approver_as_typed": "dana", "resumed_by": None, "authenticated": False}
    [promoted] = [e for e in found if e["event"] == "modelgate.model.promoted"]
    assert promoted["payload"]["actor"] == "dana"
    assert f"prefect.flow-run.{paused.id}" in {r["prefect.resource.id"] for r in promoted["related"]}
    audit = next(e for e in registry.audit_events("approved-model") if e["event"] == "approval")
    assert audit["actor"] == "dana"
