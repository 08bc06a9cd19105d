"""Registered candidates without training: real gate verdicts over given metrics, stored the way
the pipelines store them (metrics.json with the verdict, manifest with metrics, verdict, status)."""

from __future__ import annotations

import json
from pathlib import Path

from modelgate.evaluation.bootstrap import MetricValue, metrics_from_dict, metrics_to_dict
from modelgate.gate import evaluate_gate, load_gate_config
from modelgate.registry import Registry

GATE = {
    "thresholds": [{"metric": "accuracy", "min": 0.80}],
    "change_thresholds": [{"metric": "accuracy", "max_drop": 0.01}],
}


def register_candidate(registry: Registry, root: Path, model: str, accuracy: float, gate=GATE) -> int:
    """Gate ``accuracy`` against the current production version and register the result."""
    metrics = {"accuracy": MetricValue("accuracy", accuracy, accuracy - 0.01, accuracy + 0.01, 500)}
    baseline, baseline_ref = None, None
    production = registry.get_alias(model, "production")
    if production is not None:
        manifest = registry.get_manifest(model, production.version)
        baseline, baseline_ref = metrics_from_dict(manifest["metrics"]), f"{model}:{production.version}"
    verdict = evaluate_gate(metrics, load_gate_config(gate), baseline, baseline_ref)
    verdict_dict = {**verdict.to_dict(), "summary": verdict.summary()}
    files = root / f"{model}-{accuracy}-{len(list(root.glob('*')))}"
    files.mkdir(parents=True)
    (files / "model.keras").write_bytes(b"weights " * 100)
    (files / "metrics.json").write_text(
        json.dumps({"metrics": metrics_to_dict(metrics), "verdict": verdict_dict})
    )
    status = "passed" if verdict.passed else "failed"
    fields = {"metrics": metrics_to_dict(metrics), "verdict": verdict_dict, "status": status}
    return registry.register(model, files, fields).version
