"""The toxicity pipeline end to end on an ETHOS-like fixture with tiny random models, against a
real Prefect server and a real SeaweedFS: the encoder family through the flow (a whole model, then
an adapter on a verified base), and the causal-LM family through the stage functions."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import yaml
from fixtures_ethos import (
    build_tiny_gemma_preset,
    fixture_config,
    fixture_words,
    write_ethos_mirror,
)
from tiny_preset import build_tiny_preset
from prefect_ui import artifact_keys
from modelgate.training.isolated import IN_PROCESS_ENV

pytestmark = pytest.mark.slow
CLASSES = {"hateful", "not_hateful"}
TEXTS = ["i hate people, they are stupid", "i love dogs, they are nice"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return build_tiny_preset(tmp_path_factory.mktemp("preset") / "tiny-bert", extra_words=fixture_words())


def write_config(tmp_path, mirror, preset, **model) -> str:
    config = {
        **fixture_config(),
        "model": {"preset": str(preset), "sequence_length": 16, **model},
        # The packaged profile trains under JAX; the tests train under the suite's backend.
        "train": {"epochs": 2, "batch_size": 8, "learning_rate": 1.0e-2, "backend": "inherit"},
        "evaluate": {"bootstrap_samples": 100},
    }
    config["data"]["source"] = str(mirror)
    path = tmp_path / "toxicity.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_encoder_flow_registers_whole_then_adapter_versions(tmp_path, monkeypatch, flow_env, object_store, tiny_bert):
    from typer.testing import CliRunner

    from modelgate.cli import app
    from modelgate.models.adapters import BaseModelMismatch
    from modelgate.predict import load_predictor
    from modelgate.runner import run_pipeline

    # What the versions hold is the question, not where training runs (test_isolated_training.py).
    monkeypatch.setenv(IN_PROCESS_ENV, "1")
    base = tmp_path / "base"
    shutil.copytree(tiny_bert, base)
    mirror = write_ethos_mirror(tmp_path / "mirror")
    outcome = run_pipeline("toxicity", config_file=write_config(tmp_path, mirror, base))
    assert outcome.exit_code == 0, outcome.error
    assert outcome.summary["version"] == 1 and outcome.summary["verdict"]["decision"] in ("pass", "fail")
    prefix = "registry/toxicity/versions/1"
    manifest = object_store.get_json(f"{prefix}/manifest.json")
    assert "model.keras" in manifest["files"] and not any(f.startswith("adapter/") for f in manifest["files"])
    assert {"report/plots/roc_curve.png", "report/plots/confusion_matrix.png", "report/model_card.md"} <= set(manifest["files"])
    assert set(manifest["metrics"]) == {"f1", "roc_auc", "accuracy"}
    for metric in manifest["metrics"].values():
        assert metric["low"] <= metric["value"] <= metric["high"] and metric["n"] == 20
    rules = {(c["metric"], c.get("threshold")) for c in manifest["verdict"]["checks"] if c["kind"] == "absolute"}
    assert rules == {("f1", 0.8), ("roc_auc", 0.78)}
    # LoRA factors (2 layers x query/value x (128 + 32)) and the head (272 + 34) only.
    assert manifest["training"]["trainable_parameters"] == 640 + 306
    inference = json.loads(object_store.get_bytes(f"{prefix}/inference.json"))
    assert inference["family"] == "encoder" and inference["storage"] == "whole" and inference["lora_rank"] == 4

    keys = artifact_keys(os.environ["PREFECT_API_URL"], outcome.flow_run_id)
    assert {"toxicity-validation", "toxicity-training", "toxicity-metrics", "toxicity-gate-verdict", "toxicity-report", "toxicity-model-version",
            "toxicity-plot-roc-curve", "toxicity-plot-confusion-matrix"} <= keys

    predictor = load_predictor("toxicity:1", object_store)
    predictions = predictor.predict(TEXTS)
    assert [p.label in CLASSES for p in predictions] == [True, True]
    # The label follows the registered threshold (the packaged one, not 0.5); the probability
    # shown is the model's probability of that label.
    from modelgate.pipelines.toxicity import CLASS_NAMES, PIPELINE

    assert predictor.threshold == pytest.approx(PIPELINE.load_config("default").evaluate.threshold)
    for p in predictions:
        hateful = p.hateful_probability >= predictor.threshold
        assert p.label == CLASS_NAMES[int(hateful)]
        assert p.probability == pytest.approx(p.hateful_probability if hateful else 1.0 - p.hateful_probability)
    shown = CliRunner().invoke(app, ["predict", "toxicity:1", TEXTS[0]])
    assert shown.exit_code == 0, shown.output
    assert "probability" in shown.stdout and ("hateful" in shown.stdout)

    # The same recipe stored as an adapter on its base: no second copy of the base weights.
    second = run_pipeline("toxicity", config_file=write_config(tmp_path, mirror, base, base_storage="adapter"))
    assert second.exit_code == 0, second.error
    files = set(object_store.get_json("registry/toxicity/versions/2/manifest.json")["files"])
    assert {"adapter/base.json", "adapter/lora.lora.h5", "adapter/head.weights.npz"} <= files
    assert "model.keras" not in files
    adapted = load_predictor("toxicity:2", object_store).predict(TEXTS)
    assert [p.label in CLASSES for p in adapted] == [True, True]
    (base / "config.json").write_text((base / "config.json").read_text() + " ")
    with pytest.raises(BaseModelMismatch, match="refusing"):
        load_predictor("toxicity:2", object_store)


def test_causal_lm_family_end_to_end(tmp_path, object_store):
    from modelgate.pipelines import toxicity
    from modelgate.predict import load_predictor
    from modelgate.registry import release

    preset = build_tiny_gemma_preset(tmp_path / "tiny-gemma")
    mirror = write_ethos_mirror(tmp_path / "mirror")
    cfg = toxicity.PIPELINE.load_config("default", write_config(tmp_path, mirror, preset, sequence_length=40),
                                        ["train.epochs=1", "train.learning_rate=0.01"])
    assert toxicity.family(cfg) == "causal_lm"
    snapshot = toxicity.ingest(cfg, object_store)
    validated = toxicity.validate(cfg, object_store, snapshot, "run-causal")
    features = toxicity.preprocess(cfg, object_store, validated)
    assert set(features.token_keys) == {"train", "test"} and features.labels == ["not_hateful", "hateful"]
    trained = toxicity.train(cfg, object_store, features)
    assert trained.trainable_parameters == 512  # LoRA factors only: see test_causal_lm.py
    assert not trained.reused and trained.resumed_from_epoch is None and trained.epochs_run == 1
    evaluation = toxicity.evaluate(cfg, object_store, trained, features, "run-causal")
    assert set(evaluation.metrics) == {"f1", "roc_auc", "accuracy"}
    verdict = release.gate(cfg, object_store, evaluation)
    candidate = release.Candidate(pipeline=toxicity.PIPELINE, cfg=cfg, snapshot=snapshot, validated=validated,
                                  trained=trained, evaluation=evaluation, verdict=verdict)
    summary = release.register(candidate, object_store, "run-causal")
    predictor = load_predictor(f"toxicity:{summary['version']}", object_store)
    predictions = predictor.predict(TEXTS)
    assert all(p.label in CLASSES and 0.5 <= p.probability <= 1.0 for p in predictions)
    assert "probability" in predictor.format(predictions)
    # A second train call with the same inputs reuses the staged model.
    again = toxicity.train(cfg, object_store, features)
    assert again.reused and again.uri == trained.uri
