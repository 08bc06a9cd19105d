"""Deciding and moving: the CI gate, promotion to an alias, rollback, and approval records.

``check_gate`` is what CI asks before a promotion: the verdict stored at registration is read from
the version's verified files, and the gate is evaluated again against the version that holds
``production`` *now* (it may have moved since the candidate was trained). Exit codes: 0 pass,
1 refused, 2 could not decide (missing version, storage unreachable, corrupted files).

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
from modelgate.registry.versions import AliasConflict, ModelVersion, Registry, RegistryError, parse_ref
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


def _stored_verdict(registry: Registry, version: ModelVersion, verify_files: bool) -> dict[str, Any]:
    """The verdict from metrics.json after every file's sha256 is checked (or the manifest's)."""
    if not verify_files:
        verdict = version.manifest.get("verdict")
    else:
        directory = registry.fetch(version.model, version.version)  # raises IntegrityError
        metrics_file = directory / "metrics.json"
        if not metrics_file.is_file():
            raise RegistryError(f"{version.ref} has no metrics.json: it was not registered by a pipeline")
        verdict = json.loads(metrics_file.read_text()).get("verdict")
    if not isinstance(verdict, dict) or "decision" not in verdict:
        raise RegistryError(f"{version.ref} holds no gate verdict")
    return verdict


def baseline(registry: Registry, model: str, alias: str = PRODUCTION, candidate: int | None = None):
    """(metrics, "MODEL:N") of the version holding ``alias`` now, or (None, None) when no version
    holds it or it is the candidate itself: what change thresholds compare with."""
    record = registry.get_alias(model, alias)
    if record is None or record.version == candidate:
        return None, None
    manifest = registry.get_manifest(model, record.version)
    return metrics_from_dict(manifest.get("metrics", {})), f"{model}:{record.version}"


def check_gate(
    registry: Registry, ref: str, against: str = PRODUCTION, verify_files: bool = True
) -> GateDecision:
    """Read the stored verdict and hold the candidate against ``against`` as it is now."""
    try:
        version = registry.resolve(ref)
        ref = version.ref
        stored = _stored_verdict(registry, version, verify_files)
        config = load_gate_config(stored.get("config"), f"gate config stored with {ref}")
        metrics = metrics_from_dict(version.manifest.get("metrics", {}))
        baseline_metrics, baseline_ref = baseline(registry, version.model, against, version.version)
    except (RegistryError, StorageError, ValueError, KeyError) as exc:
        return GateDecision(ref, EXIT_UNDECIDED, f"could not decide: {exc}")

    if stored.get("decision") != "pass":
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


def _gate_status(version: ModelVersion) -> tuple[bool, str]:
    verdict = version.manifest.get("verdict") or {}
    passed = version.manifest.get("status") == "passed" and verdict.get("decision") == "pass"
    return passed, verdict.get("summary") or verdict.get("decision") or "no verdict stored"


def _move(
    registry: Registry,
    version: ModelVersion,
    alias: str,
    *,
    event_type: str,
    actor: str,
    reason: str,
    force: bool,
    details: dict[str, Any] | None = None,
) -> AliasMove:
    passed, summary = _gate_status(version)
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
    version = registry.resolve(parsed)
    return _move(registry, version, alias, event_type="promote", actor=actor or default_actor(),
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
    """Move MODEL@ALIAS back: to ``to_version``, or to the version it held before the last move."""
    current = registry.get_alias(model, alias)
    if current is None:
        raise PromotionError(f"{model}@{alias} does not exist: nothing to roll back")
    if to_version is None:
        to_version = current.history[-1].get("previous_version") if current.history else None
        if to_version is None:
            raise PromotionError(
                f"{model}@{alias} has held only version {current.version}: give --to VERSION"
            )
    version = registry.get_version(model, int(to_version))
    return _move(registry, version, alias, event_type="rollback", actor=actor or default_actor(),
                 reason=reason, force=force,
                 details={"from_version": current.version})


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
