"""Promotion tasks: the gate re-check, the alias move, and the record of an approval decision."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact

from modelgate import events
from modelgate.registry import promotion
from modelgate.registry.refs import parse_ref
from modelgate.registry import Registry
from modelgate.tasks.context import current_run_id, object_store


def _registry() -> Registry:
    return Registry(object_store())


@task(name="gate-candidate")
def gate_candidate(ref: str, against: str) -> dict:
    """The stored verdict, re-checked against the version that holds `against` now."""
    decision = promotion.check_gate(_registry(), ref, against=against)
    print(decision.line())
    return decision.to_dict()


@task(name="record-approval")
def record_approval(ref: str, alias: str, approved: bool, approver: str, comment: str) -> str:
    """The decision as an audit event. The name typed in the form is not authenticated; where
    Prefect records who resumed the run (Prefect Cloud), that identity is the recorded actor and
    the typed name goes into the reason. Prefect's open-source server records no user: the typed
    name is all there is (docs/automations.md)."""
    run_id = current_run_id()
    resumer = events.resumed_by(run_id)
    actor, reason = approver, comment
    if resumer is not None:
        actor, reason = resumer, f"{comment} (typed name: {approver})".strip()
    parsed = parse_ref(ref)
    events.emit_approval(parsed.model, parsed.version, alias, approved, approver, resumer)
    return promotion.record_approval(
        _registry(), ref, alias, approved=approved, approver=actor, comment=reason, flow_run_id=run_id,
    )


@task(name="move-alias")
def move_alias(ref: str, alias: str, actor: str, reason: str, force: bool) -> dict:
    """Move the alias (If-Match on its ETag); a lost race fails this task with the reason."""
    move = promotion.promote(
        _registry(), ref, alias, actor=actor, reason=reason, force=force,
        details={"flow_run_id": current_run_id()},
    )
    print(move.line())
    if move.changed:
        events.emit_alias_move(move.to_dict(), "promote")
    return move.to_dict()


def publish_promotion(ref: str, alias: str, gate: dict, outcome: str, actor: str | None, note: str) -> None:
    lines = [
        f"## Promotion of `{ref}` to `@{alias}`: {outcome}",
        "",
        f"- gate: **{gate['decision']}**: {gate['reason']}",
        f"- baseline: {gate.get('baseline_ref') or 'none (no version holds the alias)'}",
    ]
    if actor:
        lines.append(f"- decided by: {actor}")
    if note:
        lines.append(f"- note: {note}")
    create_markdown_artifact(key="promotion", markdown="\n".join(lines), description=f"{ref} -> @{alias}")
