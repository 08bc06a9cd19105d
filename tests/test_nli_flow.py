"""The whole nli flow on a small SNLI fixture (with rows lacking a gold label) and a tiny backbone,
against a real Prefect server and a real SeaweedFS: quarantine, registration with a verdict, UI
artifacts, `modelgate predict nli:1 --pair PREMISE HYPOTHESIS`, and a validation failure that stops
the run before training."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import yaml

from fixtures_snli import fixture_validation_config, fixture_words, make_snli_rows, write_snli_mirror
from tiny_preset import build_tiny_preset
from prefect_ui import artifact_keys

pytestmark = pytest.mark.slow

LABELS = ["entailment", "neutral", "contradiction"]


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    return build_tiny_preset(tmp_path_factory.mktemp("preset") / "tiny-bert", extra_words=fixture_words())


def write_config(tmp_path, mirror, preset) -> str:
    validation = {k: {split: list(b) for split, b in v.items()} for k, v in fixture_validation_config().items()}
    config = {
        "data": {"source": str(mirror), "offline_validation_fraction": 0.2},
        "model": {"preset": str(preset), "sequence_length": 24},
        "train": {"epochs": 2, "batch_size": 8, "learning_rate": 1.0e-3, "backend": "inherit"},
        "evaluate": {"bootstrap_samples": 100},
        "validation": validation,
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_flow_quarantines_no_gold_rows_registers_and_predicts_pairs(tmp_path, flow_env, object_store, tiny_preset):
    from typer.testing import CliRunner

    from modelgate.cli import app
    from modelgate.pipelines import classification as clf
    from modelgate.predict import load_predictor
    from modelgate.preprocess import encode_pairs
    from modelgate.runner import run_pipeline
    from modelgate.validations.quarantine import read_quarantine

    mirror = write_snli_mirror(tmp_path / "mirror")
    outcome = run_pipeline("nli", profile="default", config_file=write_config(tmp_path, mirror, tiny_preset))
    assert outcome.exit_code == 0, outcome.error
    summary = outcome.summary
    assert summary["version"] == 1
    accuracy = summary["metrics"]["accuracy"]["value"]
    # The packaged gate (accuracy >= 0.78) decides, and the version records it either way.
    assert summary["verdict"]["decision"] == ("pass" if accuracy >= 0.78 else "fail")
    assert summary["status"] == ("passed" if accuracy >= 0.78 else "failed")

    prefix = "registry/nli/versions/1"
    manifest = object_store.get_json(f"{prefix}/manifest.json")
    for name in ("model.keras", "metrics.json", "labels.json", "inference.json",
                 "report/report.md", "report/report.html", "report/model_card.md"):
        assert name in manifest["files"], name
    assert manifest["verdict"] == summary["verdict"]
    assert {c["metric"] for c in manifest["verdict"]["checks"]} == {"accuracy"}
    # The 5 fixture rows without a gold label were dropped, counted and quarantined.
    raw_counts = manifest["datasets"]["raw"]["split_counts"]
    assert sum(raw_counts.values()) == 94 + 25 and set(raw_counts) == {"train", "validation", "test"}
    assert sum(manifest["datasets"]["validated"]["split_counts"].values()) == 94 + 25 - 5
    quarantined = read_quarantine(object_store, manifest["datasets"]["quarantine_uri"] + "/filtered.jsonl")
    assert len(quarantined) == 5
    assert all(r["reason"] == "no_gold_label" and r["row"]["label"] == -1 for r in quarantined)

    metrics = object_store.get_json(f"{prefix}/metrics.json")["metrics"]
    expected = {"accuracy", "macro_f1", "ece"} | {f"{m}_{label}" for m in ("precision", "recall", "f1")
                                                  for label in LABELS}
    assert set(metrics) == expected
    for metric in metrics.values():
        assert metric["low"] <= metric["value"] <= metric["high"]
        assert metric["n"] == 24  # the fixture's gold-labelled test pairs
    inference = json.loads(object_store.get_bytes(f"{prefix}/inference.json"))
    assert inference["pair_order"] == ["hypothesis", "premise"]
    assert json.loads(object_store.get_bytes(f"{prefix}/labels.json")) == LABELS

    keys = artifact_keys(os.environ["PREFECT_API_URL"], outcome.flow_run_id)
    assert {"nli-metrics", "nli-gate-verdict", "nli-report", "nli-validation", "nli-training", "nli-model-version",
            "nli-plot-confusion-matrix", "nli-plot-reliability-diagram"} <= keys

    # The predictor packs [CLS] hypothesis [SEP] premise [SEP], as the model was trained.
    premise, hypothesis = "a dog is sitting in the park.", "a dog is sleeping at home."
    predictor = load_predictor("nli:1", object_store)
    [prediction] = predictor.predict_pairs([(premise, hypothesis)])
    loaded = predictor.loaded
    expected_probs = clf.softmax(clf.predict_arrays(
        loaded.model, encode_pairs(loaded.tokenizer, [hypothesis], [premise], inference["sequence_length"])))[0]
    np.testing.assert_allclose([prediction.probabilities[n] for n in LABELS], expected_probs, rtol=1e-5)
    assert prediction.label == LABELS[int(expected_probs.argmax())]
    assert (prediction.premise, prediction.hypothesis) == (premise, hypothesis)

    cli = CliRunner()
    shown = cli.invoke(app, ["predict", "nli:1", "--pair", premise, hypothesis])
    assert shown.exit_code == 0, shown.output
    assert all(f"p({name})" in shown.stdout for name in LABELS)
    assert prediction.label in shown.stdout and premise in shown.stdout
    as_json = cli.invoke(app, ["predict", "nli:1", "--pair", premise, hypothesis, "--json"])
    assert as_json.exit_code == 0, as_json.output
    [row] = json.loads(as_json.stdout)
    assert row["label"] in LABELS and abs(sum(row["probabilities"].values()) - 1.0) < 1e-5
    single = cli.invoke(app, ["predict", "nli:1", "just one sentence"])
    assert single.exit_code == 2 and "single texts" in single.output


def test_validation_failure_stops_the_run_before_training(tmp_path, flow_env, object_store, tiny_preset):
    from typer.testing import CliRunner

    from modelgate.cli import app

    test_rows = make_snli_rows("test")
    test_rows[2]["hypothesis"] = "   "  # a whitespace-only hypothesis
    mirror = write_snli_mirror(tmp_path / "mirror", {
        "validation": make_snli_rows("validation", premises=30, no_gold=4), "test": test_rows})
    result = CliRunner().invoke(app, ["run", "nli", "--config", write_config(tmp_path, mirror, tiny_preset)])
    assert result.exit_code == 1, result.output
    assert "expect_column_values_to_match_regex" in result.output and "hypothesis" in result.output
    assert not list(object_store.list_keys("runs/nli/train/"))
    assert not list(object_store.list_keys("registry/"))
