"""Prefect events for what automations act on: a gate's decision, a registered version, an alias
moved by a promotion or a rollback, a promotion's approval (docs/automations.md).

Every event's resource is the model, ``modelgate.model.MODEL``; the version is a related resource
(``modelgate.version.MODEL:N``, role ``model-version``), and the payload carries the version, the
verdict and a metrics summary. Inside a flow or task run Prefect adds the run as related resources.

Events go to the Prefect API that is configured (``PREFECT_API_URL``); with none configured (a
command run without a server) nothing is sent. Prefect is imported inside the functions: the CLI
imports this module and must start fast.
"""

from __future__ import annotations

from typing import Any

GATE_PASSED = "modelgate.gate.passed"
GATE_REFUSED = "modelgate.gate.refused"
VERSION_REGISTERED = "modelgate.version.registered"
PROMOTED = "modelgate.model.promoted"
ROLLED_BACK = "modelgate.model.rolled-back"
APPROVAL = "modelgate.model.approval"


def model_resource(model: str) -> dict[str, str]:
    return {"prefect.resource.id": f"modelgate.model.{model}", "prefect.resource.name": model}


def version_resource(model: str, version: int | None) -> list[dict[str, str]]:
    if version is None:
        return []
    return [{"prefect.resource.id": f"modelgate.version.{model}:{version}",
             "prefect.resource.role": "model-version", "prefect.resource.name": f"{model}:{version}"}]


def metrics_summary(metrics: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """``name -> value``: what a notification shows, without the bootstrap intervals."""
    return {name: metric.get("value") for name, metric in (metrics or {}).items()}


def api_configured() -> bool:
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def emit(event: str, model: str, version: int | None, payload: dict[str, Any]):
    """Send one event about ``model`` (and ``version``); the Event, or None when no API is set."""
    if not api_configured():
        return None
    from prefect.events import emit_event

    return emit_event(event=event, resource=model_resource(model),
                      related=version_resource(model, version), payload={"model": model, "version": version, **payload})


def flush() -> None:
    """Wait until queued events are sent: a command that exits right after emitting needs this
    (flow and task runs drain their events themselves when they end)."""
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all()


def emit_gate(model: str, version: int | None, verdict: dict[str, Any], metrics: dict[str, Any]):
    """``modelgate.gate.passed`` when the verdict passed, else ``modelgate.gate.refused``."""
    passed = verdict.get("decision") == "pass"
    return emit(GATE_PASSED if passed else GATE_REFUSED, model, version, {
        "decision": verdict.get("decision"), "summary": verdict.get("summary", ""),
        "reasons": list(verdict.get("reasons") or []), "metrics": metrics_summary(metrics),
    })


def emit_registered(summary: dict[str, Any]):
    """``modelgate.version.registered`` from the summary the register step returns."""
    verdict = summary.get("verdict") or {}
    return emit(VERSION_REGISTERED, summary["model"], summary["version"], {
        "status": summary.get("status"), "decision": verdict.get("decision"),
        "summary": verdict.get("summary", ""), "metrics": metrics_summary(summary.get("metrics") or {}),
        "manifest_uri": summary.get("manifest_uri"),
    })


def emit_alias_move(move: dict[str, Any], event_type: str = "promote"):
    """``modelgate.model.promoted`` or ``modelgate.model.rolled-back`` from an AliasMove's dict."""
    event = ROLLED_BACK if event_type == "rollback" else PROMOTED
    return emit(event, move["model"], move["version"], {
        key: move.get(key) for key in ("alias", "previous_version", "actor", "reason", "forced", "changed")
    })


def emit_approval(model: str, version: int, alias: str, approved: bool, typed_name: str,
                  resumer: str | None):
    return emit(APPROVAL, model, version, {
        "alias": alias, "decision": "approved" if approved else "rejected",
        "approver_as_typed": typed_name, "resumed_by": resumer, "authenticated": resumer is not None,
    })


def resumed_by(flow_run_id: str) -> str | None:
    """Who resumed a paused flow run, where Prefect records it: Prefect Cloud relates each state
    change to its actor (a related resource with role ``actor``). Prefect's open-source server
    has no user accounts and records no actor: None."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventResourceFilter

    with get_client(sync_client=True) as client:
        page = client.read_events(EventFilter(
            resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"])), limit=50)
    for event in page.events:  # newest first: the latest resume wins
        for related in event.related:
            if related.role == "actor":
                return related.name or related.id
    return None
