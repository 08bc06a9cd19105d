"""What gate, promote and predict verify before they trust a version.

1. The manifest sits in its own slot (its model and version fields) and, with a signing key
   configured, its signature matches (``Registry.verify_manifest``).
2. Every file's sha256 matches the manifest (``Registry.fetch``).
3. The decision is taken from the verified ``metrics.json``, never from the manifest's copies:
   the manifest's ``metrics``, ``verdict`` and ``status`` must equal what metrics.json says, and
   the stored verdict must agree with the gate's absolute thresholds re-applied to its metrics.

Any disagreement raises IntegrityError naming the file and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelgate.evaluation.bootstrap import metrics_from_dict
from modelgate.gate import evaluate_gate, load_gate_config
from modelgate.registry.versions import IntegrityError, ModelVersion, Registry, RegistryError

METRICS_FILE = "metrics.json"
CROSS_CHECKED = ("metrics", "verdict")


@dataclass(frozen=True)
class VerifiedVersion:
    """A version whose signature, files and recorded decision were all checked."""

    version: ModelVersion
    directory: Path  # the verified local copy (only metrics.json when metrics_only)
    metrics: dict[str, Any]  # as in metrics.json
    verdict: dict[str, Any]  # the gate verdict stored at registration, from metrics.json

    @property
    def ref(self) -> str:
        return self.version.ref

    @property
    def passed(self) -> bool:
        return self.verdict.get("decision") == "pass"

    @property
    def summary(self) -> str:
        return self.verdict.get("summary") or self.verdict.get("decision") or "no verdict stored"


def verify_version(
    registry: Registry, model: str, version: int, metrics_only: bool = False
) -> VerifiedVersion:
    """Check MODEL:VERSION as the module docstring says; ``metrics_only`` downloads and checks
    only metrics.json (a baseline's metrics), not the model."""
    found = registry.get_version(model, version)
    if METRICS_FILE not in found.files:
        raise RegistryError(f"{found.ref} has no {METRICS_FILE}: it was not registered by a pipeline")
    directory = registry.fetch(model, version, only=[METRICS_FILE] if metrics_only else None)
    try:
        content = json.loads((directory / METRICS_FILE).read_text())
    except ValueError as exc:
        raise IntegrityError(f"{found.ref}: {METRICS_FILE} is not valid JSON ({exc})") from None
    verdict, metrics = content.get("verdict"), content.get("metrics")
    if not isinstance(verdict, dict) or "decision" not in verdict or not isinstance(metrics, dict):
        raise IntegrityError(f"{found.ref}: {METRICS_FILE} holds no gate verdict and metrics")
    _cross_check(found, content, verdict)
    _check_verdict_matches_metrics(found.ref, metrics, verdict)
    return VerifiedVersion(found, directory, metrics, verdict)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)  # NaN == NaN here, unlike in Python


def _first_difference(ours: Any, theirs: Any, path: str) -> str:
    """The dotted path of the first place where two JSON values differ."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in sorted(set(ours) | set(theirs), key=str):
            if key not in ours or key not in theirs or _canonical(ours[key]) != _canonical(theirs[key]):
                return _first_difference(ours.get(key), theirs.get(key), f"{path}.{key}")
    return path


def _cross_check(found: ModelVersion, content: dict[str, Any], verdict: dict[str, Any]) -> None:
    """The manifest's copies of metrics, verdict and status against the verified metrics.json."""
    manifest = found.manifest
    for name in CROSS_CHECKED:
        if name in manifest and _canonical(manifest[name]) != _canonical(content[name]):
            where = _first_difference(manifest[name], content[name], name)
            raise IntegrityError(
                f"{found.ref}: manifest.json field {where!r} disagrees with the verified "
                f"{METRICS_FILE}: the manifest was edited after registration"
            )
    derived = "passed" if verdict["decision"] == "pass" else "failed"
    if content.get("status", derived) != derived:
        raise IntegrityError(
            f"{found.ref}: {METRICS_FILE} field 'status' is {content['status']!r} but its verdict "
            f"decision is {verdict['decision']!r}"
        )
    if "status" in manifest and manifest["status"] != derived:
        raise IntegrityError(
            f"{found.ref}: manifest.json field 'status' is {manifest['status']!r} but the verified "
            f"{METRICS_FILE} verdict is {verdict['decision']!r} (status {derived!r}): "
            "the manifest was edited after registration"
        )


def _check_verdict_matches_metrics(ref: str, metrics: dict, verdict: dict) -> None:
    """A stored pass must survive the gate's absolute thresholds re-applied to its own metrics
    (they do not depend on the baseline, so a genuine verdict always agrees)."""
    if verdict["decision"] != "pass":
        return
    config = load_gate_config(verdict.get("config"), f"gate config in {ref}'s {METRICS_FILE}")
    if config.is_empty:
        raise IntegrityError(f"{ref}: {METRICS_FILE} records a pass with no thresholds configured")
    recheck = evaluate_gate(metrics_from_dict(metrics), config.model_copy(update={"change_thresholds": []}))
    failed = [c for c in recheck.checks if c.passed is False]
    if failed:
        notes = "; ".join(f"{c.metric}: {c.note}" for c in failed)
        raise IntegrityError(
            f"{ref}: {METRICS_FILE} field 'verdict' says pass but its metrics miss the gate ({notes})"
        )
