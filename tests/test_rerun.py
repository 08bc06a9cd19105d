"""Unchanged re-runs: the evaluation is read back from its cache entry instead of computed again,
nothing new is registered, and any change in config, data or the cache entry itself is noticed.
Real SeaweedFS and a real Prefect server; the intent-ood flow on a tiny encoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures_clinc import clinc_tiny_preset, make_clinc_payload, write_clinc_config, write_clinc_mirror
from modelgate.evaluation.bootstrap import MetricValue, metrics_to_dict
from modelgate.evaluation.cache import ROOT, EvaluationCache
from modelgate.evaluation.result import Evaluation
from modelgate.gate import evaluate_gate, load_gate_config
from modelgate.registry import Registry
from modelgate.training.isolated import IN_PROCESS_ENV

# Passes with no production (the change threshold is skipped); against a production version with
# ECE 0 it fails, since any real model's ECE is above 0.
GATE = {"thresholds": [{"metric": "accuracy", "min": 0.0}], "change_thresholds": [{"metric": "ece", "max_rise": 0.0}]}


def _plot(store, run: str, name: str, payload: bytes) -> str:
    key = f"runs/intent-ood/{run}/evaluation/{name}"
    store.put_bytes(key, payload)
    return store.uri(key)


def _evaluation(store, run: str) -> Evaluation:
    return Evaluation(
        metrics=metrics_to_dict({"accuracy": MetricValue("accuracy", 0.9, 0.85, 0.95, 20)}),
        plots={"ood_roc": _plot(store, run, "ood_roc.png", b"\x89PNG roc " + run.encode())},
        files={"ood_scorer.npz": _plot(store, run, "ood_scorer.npz", b"scorer " + run.encode())},
    )


def test_cache_entry_is_used_only_when_complete_and_intact(object_store):
    cache = EvaluationCache(object_store, "k" * 64)
    assert cache.load() == (None, None)
    saved = cache.save(_evaluation(object_store, "run-1"), "run-1", {"what": "test"})
    assert all(uri.startswith(object_store.uri(f"{ROOT}/{'k' * 64}/")) for uri in [*saved.plots.values(), *saved.files.values()])
    found, _ = cache.load()
    assert found.evaluation == saved and found.computed_in_run == "run-1"

    # A second writer of the same key keeps its own copies; the first manifest stays.
    other = cache.save(_evaluation(object_store, "run-2"), "run-2", {"what": "test"})
    assert other.plots != saved.plots and object_store.exists(object_store.key_of(other.plots["ood_roc"]))
    assert cache.load()[0].computed_in_run == "run-1"

    scorer_key = object_store.key_of(saved.files["ood_scorer.npz"])
    object_store.delete(scorer_key)
    found, etag = cache.load()
    assert found is None and etag  # missing file: not trusted, and replaceable
    replaced = cache.save(_evaluation(object_store, "run-3"), "run-3", {"what": "test"}, replace_etag=etag)
    assert cache.load()[0].evaluation == replaced

    object_store.put_bytes(object_store.key_of(replaced.plots["ood_roc"]), b"\x89PNG edited")
    assert cache.load()[0] is None  # a file whose sha256 differs from the manifest's
    object_store.put_bytes(cache.manifest_key, b"{not json")
    assert cache.load()[0] is None


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    return clinc_tiny_preset(tmp_path_factory.mktemp("preset"))


def _config(root: Path, mirror: Path, preset: Path, gate: dict) -> str:
    root.mkdir(parents=True, exist_ok=True)
    return write_clinc_config(root, mirror, preset, gate=gate)


def _register_baseline(registry: Registry, root: Path) -> int:
    """A passed version with ECE 0 (no training): what production will hold."""
    metrics = metrics_to_dict({"ece": MetricValue("ece", 0.0, 0.0, 0.0, 20, higher_is_better=False)})
    verdict = evaluate_gate(
        {"ece": MetricValue("ece", 0.0, 0.0, 0.0, 20, higher_is_better=False)},
        load_gate_config({"thresholds": [{"metric": "ece", "max": 0.5}]}),
    ).to_dict()
    root.mkdir(parents=True)
    (root / "model.keras").write_bytes(b"weights")
    (root / "metrics.json").write_text(json.dumps({"metrics": metrics, "verdict": verdict, "status": "passed"}))
    return registry.register("intent-ood", root, {"metrics": metrics, "verdict": verdict, "status": "passed"}).version


def _evaluated_in(store, outcome) -> list[str]:
    """What the evaluate stage uploaded in that run (nothing when it was reused)."""
    return list(store.list_keys(f"runs/intent-ood/{outcome.flow_run_id}/evaluation/"))


def _run(config: str, overrides: list[str] | None = None):
    from modelgate.runner import run_pipeline

    outcome = run_pipeline("intent-ood", profile="default", config_file=config, overrides=overrides)
    assert outcome.exit_code == 0, outcome.error
    return outcome


@pytest.mark.slow
def test_unchanged_rerun_reuses_the_evaluation_and_registers_nothing(
    tmp_path, monkeypatch, flow_env, object_store, tiny_preset
):
    monkeypatch.setenv(IN_PROCESS_ENV, "1")  # what is reused is the question here, not where training runs
    registry = Registry(object_store)
    baseline = _register_baseline(registry, tmp_path / "baseline")
    mirror = write_clinc_mirror(tmp_path / "mirror")
    config = _config(tmp_path / "a", mirror, tiny_preset, GATE)

    first = _run(config)
    assert first.summary["version"] == baseline + 1 and first.summary["status"] == "passed"
    assert first.summary["evaluation_cache"]["reused"] is False and _evaluated_in(object_store, first)
    key = first.summary["evaluation_cache"]["key"]
    manifest = object_store.get_json(f"registry/intent-ood/versions/{baseline + 1}/manifest.json")
    assert manifest["identity"]["evaluation_key"] == key and manifest["evaluation"]["evaluation_cache"]["key"] == key

    # Same data, config and code: training and evaluation reused, the version already holds it.
    second = _run(config)
    ref = f"intent-ood:{baseline + 1}"
    assert second.summary["status"] == "unchanged" and second.summary["version"] == baseline + 1
    assert second.summary["evaluation_cache"] == {"key": key, "reused": True, "computed_in_run": first.flow_run_id}
    assert _evaluated_in(object_store, second) == []
    assert registry.list_versions("intent-ood") == [baseline, baseline + 1]
    assert f"unchanged: {ref} already holds this model (registered passed; gate decision now: pass)" in second.describe()

    # Production moves to a version the model loses to, and one cached file is damaged: the entry
    # is not trusted (evaluated again), the content is still the same, the gate is decided again.
    registry.set_alias("intent-ood", "production", baseline, actor="test", reason="baseline", expected_etag=None)
    entry = EvaluationCache(object_store, key)
    plot = object_store.key_of(next(iter(entry.load()[0].evaluation.plots.values())))
    object_store.put_bytes(plot, b"\x89PNG damaged")
    third = _run(config)
    assert third.summary["evaluation_cache"]["reused"] is False and _evaluated_in(object_store, third)
    assert third.summary["status"] == "unchanged" and third.summary["version"] == baseline + 1
    assert third.summary["verdict"]["decision"] == "fail" and third.summary["stored_verdict"]["decision"] == "pass"
    assert "gate decision now: fail, stored with " + ref + ": pass; reported only, no new version written" in third.describe()
    assert registry.list_versions("intent-ood") == [baseline, baseline + 1]
    assert entry.load()[0] is not None  # the entry was replaced by a verified one

    # A gate threshold changes: the evaluation is the same, the version is new.
    gate = {"thresholds": [{"metric": "accuracy", "min": 0.0}], "change_thresholds": []}
    fourth = _run(_config(tmp_path / "b", mirror, tiny_preset, gate))
    assert fourth.summary["evaluation_cache"]["reused"] is True and _evaluated_in(object_store, fourth) == []
    assert fourth.summary["version"] == baseline + 2 and fourth.summary["status"] == "passed"

    # An evaluate setting changes: evaluated again, new version.
    fifth = _run(_config(tmp_path / "b", mirror, tiny_preset, gate), ["evaluate.bootstrap_samples=150"])
    assert fifth.summary["evaluation_cache"]["reused"] is False and fifth.summary["evaluation_cache"]["key"] != key
    assert fifth.summary["version"] == baseline + 3

    # The data changes (one more out-of-scope test query): trained and evaluated again, new version.
    changed = write_clinc_mirror(tmp_path / "mirror2", make_clinc_payload(oos_rows={"oos_test": 6}))
    sixth = _run(_config(tmp_path / "c", changed, tiny_preset, gate))
    assert sixth.summary["evaluation_cache"]["reused"] is False and sixth.summary["version"] == baseline + 4
    manifest = object_store.get_json(f"registry/intent-ood/versions/{baseline + 4}/manifest.json")
    assert manifest["training"]["reused"] is False and manifest["evaluation"]["oos_test_rows"] == 6
