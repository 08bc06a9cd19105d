"""promote-model: gate a registered version, optionally wait for a person's approval, promote.

1. Re-check the candidate's gate against the version that holds the alias now.
2. If approval is required, pause: the run waits in the Prefect UI (Resume shows a form), and
   whoever answers is recorded in the registry's audit events with their decision.
3. Move the alias with If-Match on its ETag, so a simultaneous promotion cannot be lost.
"""

from __future__ import annotations

from prefect import flow
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from modelgate.registry.promotion import PromotionRefused, default_actor
from modelgate.tasks.promotion import gate_candidate, move_alias, publish_promotion, record_approval


class PromotionApproval(RunInput):
    """The form a reviewer fills in to resume a paused promotion."""

    approve: bool = Field(description="Promote this version? (unticked = reject)")
    approver: str = Field(min_length=1, description="Your name; recorded in the audit log")
    comment: str = Field("", description="Why (optional)")


@flow(name="promote-model", log_prints=True)
def promote_model(
    model: str,
    version: int,
    alias: str = "production",
    require_approval: bool = True,
    approval_timeout_minutes: int = 24 * 60,
    force: bool = False,
    reason: str = "",
) -> dict:
    """Promote MODEL:VERSION to an alias after its gate (and, optionally, a person) says yes.

    Args:
        model: the registered model, e.g. "intent-ood".
        version: the candidate version number.
        alias: the alias to move.
        require_approval: pause for a person to approve or reject in the Prefect UI.
        approval_timeout_minutes: how long to wait for that decision before the run fails.
        force: promote even though the gate refused (needs a reason; recorded).
        reason: why this promotion (recorded with the alias move).
    """
    ref = f"{model}:{version}"
    gate = gate_candidate(ref, alias)
    if gate["exit_code"] == 2:
        publish_promotion(ref, alias, gate, "not decided", None, "")
        raise RuntimeError(f"gate could not decide for {ref}: {gate['reason']}")
    if gate["exit_code"] == 1 and not (force and reason.strip()):
        publish_promotion(ref, alias, gate, "refused by the gate", None, "")
        raise PromotionRefused(f"{ref}: {gate['reason']}" + ("" if not force else " (--force needs a reason)"))

    actor = default_actor()
    if require_approval:
        print(f"waiting for approval of {ref} -> @{alias} (Resume in the Prefect UI)")
        answer = pause_flow_run(
            wait_for_input=PromotionApproval.with_initial_data(
                description=f"Promote **{ref}** to **@{alias}**? Gate: {gate['reason']}", approve=False
            ),
            timeout=approval_timeout_minutes * 60,
        )
        record_approval(ref, alias, answer.approve, answer.approver, answer.comment)
        if not answer.approve:
            publish_promotion(ref, alias, gate, "rejected", answer.approver, answer.comment)
            return {"ref": ref, "alias": alias, "decision": "rejected", "approver": answer.approver}
        actor, reason = answer.approver, answer.comment or reason

    move = move_alias(ref, alias, actor, reason, force)
    publish_promotion(ref, alias, gate, "promoted", actor, reason)
    return {"ref": ref, "alias": alias, "decision": "promoted", **move}
