"""The shared gate step against the version that holds `production` in a real registry."""

from __future__ import annotations

import json

import pytest

from modelgate.evaluation.bootstrap import metrics_from_dict
from modelgate.evaluation.result import Evaluation
from modelgate.gate import evaluate_gate, load_gate_config
from modelgate.pipelines.intent_ood import PIPELINE as intent_ood
from modelgate.registry import Registry, release


def _metrics(accuracy: float, auprc: float, ece: float) -> dict:
    def entry(value, higher=True):
        return {"value": value, "low": value - 0.01, "high": value + 0.01, "n": 5500, "higher_is_better": higher}

    return {
        "accuracy": entry(accuracy),
        "ood_auprc": entry(auprc),
        "ece": entry(ece, higher=False),
    }


def _candidate(accuracy: float, auprc: float, ece: float) -> Evaluation:
    return Evaluation(metrics=_metrics(accuracy, auprc, ece), plots={})


def _register(store, tmp_path, metrics: dict) -> int:
    """A passed version whose metrics.json (what the baseline is read from) holds ``metrics``."""
    files = tmp_path / f"v{len(list(tmp_path.iterdir()))}"
    files.mkdir()
    (files / "model.keras").write_bytes(b"weights")
    gate = {"thresholds": [{"metric": "accuracy", "min": 0.5}]}
    verdict = evaluate_gate(metrics_from_dict(metrics), load_gate_config(gate)).to_dict()
    (files / "metrics.json").write_text(json.dumps({"metrics": metrics, "verdict": verdict}))
    fields = {"metrics": metrics, "verdict": verdict, "status": "passed"}
    return Registry(store).register("intent-ood", files, fields).version


@pytest.fixture(autouse=True)
def _home(modelgate_env):
    """MODELGATE_HOME in a temporary directory: reading the baseline caches its metrics.json."""


def test_without_production_the_change_thresholds_are_recorded_as_skipped(object_store):
    cfg = intent_ood.load_config()
    verdict = release.gate(cfg, object_store, _candidate(0.97, 0.92, 0.02)).to_dict()
    assert verdict["decision"] == "pass"
    assert verdict["baseline_ref"] is None
    changes = [c for c in verdict["checks"] if c["kind"] == "change"]
    assert changes and all(c["passed"] is None for c in changes)
    assert "no production baseline" in verdict["summary"]


@pytest.mark.parametrize(
    "candidate, decision",
    [
        ((0.970, 0.915, 0.020), "pass"),  # within every allowed change
        ((0.960, 0.915, 0.020), "fail"),  # accuracy drops 0.010 > 0.005 allowed
        ((0.970, 0.915, 0.035), "fail"),  # ECE rises 0.015 > 0.01 allowed
    ],
)
def test_change_thresholds_hold_the_candidate_against_production(object_store, tmp_path, candidate, decision):
    registry = Registry(object_store)
    version = _register(object_store, tmp_path, _metrics(0.970, 0.920, 0.020))
    registry.set_alias("intent-ood", "production", version, actor="test", reason="baseline", expected_etag=None)

    verdict = release.gate(intent_ood.load_config(), object_store, _candidate(*candidate)).to_dict()

    assert verdict["baseline_ref"] == f"intent-ood:{version}"
    changes = {c["metric"]: c for c in verdict["checks"] if c["kind"] == "change"}
    assert set(changes) == {"accuracy", "ood_auprc", "ece"}
    assert changes["accuracy"]["baseline"] == pytest.approx(0.970)
    assert verdict["decision"] == decision


def test_production_moving_changes_the_baseline(object_store, tmp_path):
    registry = Registry(object_store)
    first = _register(object_store, tmp_path, _metrics(0.950, 0.900, 0.030))
    record = registry.set_alias("intent-ood", "production", first, actor="test", reason="r", expected_etag=None)
    candidate = _candidate(0.960, 0.905, 0.025)
    assert release.gate(intent_ood.load_config(), object_store, candidate).decision == "pass"

    better = _register(object_store, tmp_path, _metrics(0.980, 0.950, 0.010))
    registry.set_alias("intent-ood", "production", better, actor="test", reason="r", expected_etag=record.etag)
    verdict = release.gate(intent_ood.load_config(), object_store, candidate).to_dict()
    assert verdict["baseline_ref"] == f"intent-ood:{better}"
    assert verdict["decision"] == "fail"
