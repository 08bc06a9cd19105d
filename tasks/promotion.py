"""Promotion tasks: the gate re-check, the alias move, and the record of an approval decision."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact

from modelgate.registry import promotion
from modelgate.registry import Registry
from tasks.context import current_run_id, object_store


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
    return promotion.record_approval(
        _registry(), ref, alias, approved=approved, approver=approver, comment=comment,
        flow_run_id=current_run_id(),
    )


@task(name="move-alias")
def move_alias(ref: str, alias: str, actor: str, reason: str, force: bool) -> dict:
    """Move the alias (If-Match on its ETag); a lost race fails this task with the reason."""
    move = promotion.promote(
        _registry(), ref, alias, actor=actor, reason=reason, force=force,
        details={"flow_run_id": current_run_id()},
    )
    print(move.line())
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
