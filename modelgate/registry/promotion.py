"""Deciding and moving: the CI gate, promotion to an alias, rollback, and approval records.

``check_gate`` is what CI asks before a promotion: the version is verified (registry/integrity.py:
signature, every file's sha256, manifest against metrics.json), the verdict stored at registration
is read from the verified metrics.json, and the gate is evaluated again on those metrics against
the version that holds ``production`` *now* (it may have moved since the candidate was trained).
Exit codes: 0 pass, 1 refused (failed gate, or a version that fails verification), 2 could not
decide (missing version, storage unreachable, a baseline that fails verification).

``rollback`` without a target undoes the last promotion still in effect: the alias history is
replayed as a stack (each move pushes its version, each rollback pops back to its target), and the
alias goes to the version below the top. Two rollbacks in a row step back two promotions; with
nothing below, it is refused.

``promote`` and ``rollback`` move an alias with If-Match on its ETag, so of two simultaneous moves
one wins and the other is told to retry, and each move is an audit event naming who and why.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import asdict, dataclass, field
from typing import Any

from modelgate.evaluation.bootstrap import metrics_from_dict
from modelgate.gate import evaluate_gate, load_gate_config
from modelgate.registry.integrity import VerifiedVersion, verify_version
from modelgate.registry.versions import (
    AliasConflict,
    IntegrityError,
    Registry,
    RegistryError,
    parse_ref,
)
from modelgate.storage import StorageError

EXIT_PASS, EXIT_REFUSED, EXIT_UNDECIDED = 0, 1, 2
PRODUCTION = "production"


class PromotionRefused(RuntimeError):
    """The version may not take the alias (its gate failed and the move was not forced)."""


class PromotionError(RuntimeError):
    """The move could not be made (bad arguments, a lost race, storage trouble)."""


def default_actor() -> str:
    """Who is acting: MODELGATE_ACTOR, else the CI's user (GITHUB_ACTOR), else user@host."""
    if os.environ.get("MODELGATE_ACTOR"):
        return os.environ["MODELGATE_ACTOR"]
    if os.environ.get("GITHUB_ACTOR"):
        return f"github:{os.environ['GITHUB_ACTOR']}"
    try:
        user = getpass.getuser()
    except Exception:  # no user database entry (some containers)
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


# -- the CI gate -----------------------------------------------------------------------------
@dataclass
class GateDecision:
    ref: str
    exit_code: int
    reason: str
    verdict: dict[str, Any] | None = None  # evaluated now, against the current baseline
    stored_verdict: dict[str, Any] | None = None  # as registered
    baseline_ref: str | None = None

    @property
    def decision(self) -> str:
        return {EXIT_PASS: "pass", EXIT_REFUSED: "refused"}.get(self.exit_code, "undecided")

    def line(self) -> str:
        return f"{self.decision}: {self.ref}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "decision": self.decision}


class BaselineError(RegistryError):
    """The version holding the baseline alias fails verification: nothing to compare with."""


def baseline(registry: Registry, model: str, alias: str = PRODUCTION, candidate: int | None = None):
    """(metrics, "MODEL:N") of the version holding ``alias`` now, or (None, None) when no version
    holds it or it is the candidate itself: what change thresholds compare with. Its metrics come
    from its verified metrics.json (signature and sha256 checked), not from its manifest."""
    record = registry.get_alias(model, alias)
    if record is None or record.version == candidate:
        return None, None
    ref = f"{model}:{record.version}"
    try:
        verified = verify_version(registry, model, record.version, metrics_only=True)
    except RegistryError as exc:
        raise BaselineError(f"baseline {ref} (@{alias}) cannot be trusted: {exc}") from None
    return metrics_from_dict(verified.metrics), ref


def check_gate(registry: Registry, ref: str, against: str = PRODUCTION) -> GateDecision:
    """Verify the candidate, read its stored verdict and hold its verified metrics against
    ``against`` as it is now."""
    try:
        version = registry.resolve(ref)
        ref = version.ref
        verified = verify_version(registry, version.model, version.version)
        stored = verified.verdict
        config = load_gate_config(stored.get("config"), f"gate config stored with {ref}")
        metrics = metrics_from_dict(verified.metrics)
        baseline_metrics, baseline_ref = baseline(registry, version.model, against, version.version)
    except BaselineError as exc:
        return GateDecision(ref, EXIT_UNDECIDED, f"could not decide: {exc}")
    except IntegrityError as exc:
        return GateDecision(ref, EXIT_REFUSED, f"failed verification: {exc}")
    except (RegistryError, StorageError, ValueError, KeyError) as exc:
        return GateDecision(ref, EXIT_UNDECIDED, f"could not decide: {exc}")

    if not verified.passed:
        summary = stored.get("summary") or "; ".join(stored.get("reasons", [])) or stored["decision"]
        return GateDecision(
            ref, EXIT_REFUSED, f"gate failed at registration ({summary})", None, stored, baseline_ref
        )
    verdict = evaluate_gate(metrics, config, baseline_metrics, baseline_ref)
    current = verdict.to_dict()
    if verdict.passed:
        return GateDecision(ref, EXIT_PASS, current["summary"], current, stored, baseline_ref)
    return GateDecision(
        ref, EXIT_REFUSED, f"{current['summary']} (re-checked now)", current, stored, baseline_ref
    )


# -- moving aliases --------------------------------------------------------------------------
@dataclass
class AliasMove:
    model: str
    alias: str
    version: int
    previous_version: int | None
    actor: str
    reason: str
    forced: bool = False
    changed: bool = True
    history: list[dict[str, Any]] = field(default_factory=list)

    def line(self) -> str:
        if not self.changed:
            return f"{self.model}@{self.alias} already points at version {self.version}"
        before = f"version {self.previous_version}" if self.previous_version else "nothing"
        forced = " (forced)" if self.forced else ""
        return f"{self.model}@{self.alias}: {before} -> version {self.version}{forced} by {self.actor}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _verified(registry: Registry, model: str, version: int) -> VerifiedVersion:
    """The version after verification; a version that fails it never takes an alias, forced or not."""
    try:
        return verify_version(registry, model, version)
    except IntegrityError as exc:
        raise PromotionRefused(f"{model}:{version} failed verification: {exc}") from None


def _move(
    registry: Registry,
    verified: VerifiedVersion,
    alias: str,
    *,
    event_type: str,
    actor: str,
    reason: str,
    force: bool,
    details: dict[str, Any] | None = None,
) -> AliasMove:
    version, passed, summary = verified.version, verified.passed, verified.summary
    if force and not passed and not reason.strip():
        raise PromotionError("--force needs --reason TEXT: a forced move must say why")
    if not passed and not force:
        raise PromotionRefused(
            f"{version.ref} failed its gate ({summary}); it cannot take @{alias} unless forced "
            "with --force --reason TEXT"
        )
    reason = reason.strip() or f"{event_type} to version {version.version}"
    current = registry.get_alias(version.model, alias)
    if current is not None and current.version == version.version:
        return AliasMove(version.model, alias, version.version, current.version, actor, reason,
                         force, changed=False, history=current.history)
    try:
        record = registry.set_alias(
            version.model,
            alias,
            version.version,
            actor=actor,
            reason=reason,
            expected_etag=current.etag if current else None,
            event_type=event_type,
            details={"forced": bool(force and not passed), "gate": summary, **(details or {})},
        )
    except AliasConflict as exc:
        raise PromotionError(str(exc)) from None
    return AliasMove(version.model, alias, version.version, current.version if current else None,
                     actor, reason, bool(force and not passed), history=record.history)


def promote(
    registry: Registry,
    ref: str,
    alias: str,
    *,
    actor: str | None = None,
    reason: str = "",
    force: bool = False,
    details: dict[str, Any] | None = None,
) -> AliasMove:
    """Point MODEL@ALIAS at the version ``ref`` names (If-Match on the alias's ETag)."""
    parsed = parse_ref(ref)
    if parsed.version is None:
        raise PromotionError(f"promote needs MODEL:VERSION, got {ref!r}")
    verified = _verified(registry, parsed.model, parsed.version)
    return _move(registry, verified, alias, event_type="promote", actor=actor or default_actor(),
                 reason=reason, force=force, details=details)


def rollback(
    registry: Registry,
    model: str,
    alias: str = PRODUCTION,
    to_version: int | None = None,
    *,
    actor: str | None = None,
    reason: str = "",
    force: bool = False,
) -> AliasMove:
    """Move MODEL@ALIAS back: to ``to_version``, or (None) to the version below the top of the
    alias's stack of promotions still in effect (module docstring); refused when there is none."""
    current = registry.get_alias(model, alias)
    if current is None:
        raise PromotionError(f"{model}@{alias} does not exist: nothing to roll back")
    if to_version is None:
        stack = promotions_in_effect(current.history)
        if len(stack) < 2:
            raise PromotionError(
                f"{model}@{alias}: no earlier version to roll back to (promotions still in effect: "
                f"{stack or [current.version]}); give --to VERSION"
            )
        to_version = stack[-2]
    verified = _verified(registry, model, int(to_version))
    return _move(registry, verified, alias, event_type="rollback", actor=actor or default_actor(),
                 reason=reason, force=force,
                 details={"from_version": current.version})


def promotions_in_effect(history: list[dict[str, Any]]) -> list[int]:
    """The alias history replayed as a stack, oldest first: a rollback to a version in the stack
    pops everything above it; any other move (a promotion, a rollback to a version no longer in
    the stack) pushes its version."""
    stack: list[int] = []
    for event in history:
        version = int(event["version"])
        if event.get("event") == "rollback" and version in stack:
            del stack[len(stack) - stack[::-1].index(version):]  # above its last occurrence
        elif not stack or stack[-1] != version:
            stack.append(version)
    return stack


def record_approval(
    registry: Registry,
    ref: str,
    alias: str,
    *,
    approved: bool,
    approver: str,
    comment: str = "",
    flow_run_id: str | None = None,
) -> str:
    """An approval or rejection of a promotion, as an audit event of its own."""
    parsed = parse_ref(ref)
    return registry.record_event(
        parsed.model,
        {
            "event": "approval",
            "decision": "approved" if approved else "rejected",
            "version": parsed.version,
            "alias": alias,
            "actor": approver,
            "reason": comment,
            "flow_run_id": flow_run_id,
        },
    )
