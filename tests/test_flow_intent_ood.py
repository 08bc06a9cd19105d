"""The whole intent-ood flow on a small CLINC fixture with a tiny backbone, against a real Prefect
server and a real SeaweedFS: registration, stored verdict and report, UI artifacts, predict, and
the exit codes of `modelgate run`."""

from __future__ import annotations

import json
import os

import pytest

from fixtures_clinc import (
    FIXTURE_INTENTS,
    clinc_tiny_preset,
    make_clinc_payload,
    write_clinc_config as write_config,
    write_clinc_mirror,
)
from prefect_ui import artifact_keys
from modelgate.training.isolated import IN_PROCESS_ENV

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def train_in_process(monkeypatch):
    """These tests are about what a run records; a child process per training would only add its
    start-up (the child-process path is test_isolated_training.py's, and the stack's in
    test_browser_ui.py)."""
    monkeypatch.setenv(IN_PROCESS_ENV, "1")


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    return clinc_tiny_preset(tmp_path_factory.mktemp("preset"))


def test_flow_registers_gated_version_with_report_and_artifacts(tmp_path, flow_env, object_store, tiny_preset):
    from modelgate.predict import load_predictor
    from modelgate.runner import run_pipeline

    mirror = write_clinc_mirror(tmp_path / "mirror")
    config = write_config(tmp_path, mirror, tiny_preset)

    # The default gate (accuracy >= 0.95 ...) is out of reach for a tiny random encoder:
    # the version is registered all the same, marked failed, with its verdict.
    outcome = run_pipeline("intent-ood", profile="default", config_file=config)
    assert outcome.exit_code == 0, outcome.error
    summary = outcome.summary
    assert summary["version"] == 1
    assert summary["status"] == "failed"
    assert summary["verdict"]["decision"] == "fail"

    prefix = "registry/intent-ood/versions/1"
    manifest = object_store.get_json(f"{prefix}/manifest.json")
    for name in ("model.keras", "metrics.json", "labels.json", "inference.json",
                 "report/report.md", "report/report.html", "report/model_card.md"):
        assert name in manifest["files"], name
        assert object_store.exists(f"{prefix}/{name}")
    assert manifest["status"] == "failed"
    assert manifest["verdict"]["decision"] == "fail"
    assert manifest["datasets"]["raw"]["sha256"]
    # The default profile trains with the supervised contrastive loss: the labels reached it.
    assert manifest["config"]["train"]["supervised_contrastive_weight"] == 0.5
    assert manifest["prefect_flow_run_id"] == outcome.flow_run_id
    assert set(manifest["metrics"]) >= {"accuracy", "ece", "ood_auprc", "ood_auroc", "ood_average_precision"}
    stored = object_store.get_json(f"{prefix}/metrics.json")
    assert stored["verdict"] == manifest["verdict"]
    for metric in stored["metrics"].values():
        # Percentile intervals of a small test set need not contain the point estimate exactly
        # (AUPRC is biased on resamples), but they must be ordered and near it.
        assert metric["low"] <= metric["high"]
        assert metric["low"] - 0.05 <= metric["value"] <= metric["high"] + 0.05
    assert "ood_threshold" in json.loads(object_store.get_bytes(f"{prefix}/inference.json"))

    keys = artifact_keys(os.environ["PREFECT_API_URL"], outcome.flow_run_id)
    assert {"intent-ood-metrics", "intent-ood-gate-verdict", "intent-ood-report", "intent-ood-validation", "intent-ood-training", "intent-ood-model-version"} <= keys
    assert {"intent-ood-plot-reliability-diagram", "intent-ood-plot-ood-precision-recall", "intent-ood-plot-ood-roc"} <= keys

    predictor = load_predictor("intent-ood:1", object_store)
    predictions = predictor.predict(["please help with alarm, test query 0", "zzz"])
    assert len(predictions) == 2
    assert all(p.intent in FIXTURE_INTENTS and 0.0 <= p.confidence <= 1.0 for p in predictions)

    # The same version through the command line.
    from typer.testing import CliRunner

    from modelgate.cli import app

    cli = CliRunner()
    listed = cli.invoke(app, ["registry", "list", "intent-ood", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [(r["version"], r["status"], r["decision"]) for r in rows] == [(1, "failed", "fail")]
    shown = cli.invoke(app, ["registry", "show", "intent-ood:1"])
    assert shown.exit_code == 0, shown.output
    assert "intent-ood:1" in shown.stdout and "ood_auprc" in shown.stdout and "FAIL" in shown.stdout
    predicted = cli.invoke(app, ["predict", "intent-ood:1", "please help with weather, test query 1", "--json"])
    assert predicted.exit_code == 0, predicted.output
    [row] = json.loads(predicted.stdout)
    assert row["intent"] in FIXTURE_INTENTS and isinstance(row["out_of_scope"], bool)
    missing = cli.invoke(app, ["predict", "intent-ood:9", "hello"])
    assert missing.exit_code == 2 and "intent-ood:9" in missing.output

    # A second run with the same training inputs reuses the trained model and gets the next
    # version; this one scores out-of-scope by the distance to the intents' centroids, which the
    # version carries beside the model and its predictor uses.
    second = run_pipeline("intent-ood", profile="default", config_file=config,
                          overrides=["evaluate.ood_score=class_distance"])
    assert second.exit_code == 0, second.error
    assert second.summary["version"] == 2
    manifest = object_store.get_json("registry/intent-ood/versions/2/manifest.json")
    assert manifest["training"]["reused"] is True
    assert "ood_scorer.npz" in manifest["files"]
    assert manifest["evaluation"]["ood_score"].startswith("class_distance")
    assert {c["ood_score"] for c in manifest["evaluation"]["ood_score_candidates"]} == {"class_distance"}
    inference = json.loads(object_store.get_bytes("registry/intent-ood/versions/2/inference.json"))
    assert inference["ood_score"] == "class_distance" and inference["ood_scorer"]["classes"] == len(FIXTURE_INTENTS)
    predictor = load_predictor("intent-ood:2", object_store)
    assert predictor.scorer is not None
    far, near = predictor.predict(["zzz qqq xxx", "please help with alarm, test query 0"])
    assert isinstance(far.out_of_scope, bool) and near.intent in FIXTURE_INTENTS

    # Scored by the cosine distance to the nearest training queries, which the version carries.
    third = run_pipeline("intent-ood", profile="default", config_file=config,
                         overrides=["evaluate.ood_score=nearest_neighbor", "evaluate.nearest_neighbors=[3]"])
    assert third.exit_code == 0, third.error
    manifest = object_store.get_json("registry/intent-ood/versions/3/manifest.json")
    assert manifest["evaluation"]["ood_score"].startswith("nearest_neighbor")
    assert [(c["ood_score"], c["k"]) for c in manifest["evaluation"]["ood_score_candidates"]] == [("nearest_neighbor", 3)]
    inference = json.loads(object_store.get_bytes("registry/intent-ood/versions/3/inference.json"))
    assert inference["ood_score"] == "nearest_neighbor" and inference["ood_scorer"]["k"] == 3
    predictor = load_predictor("intent-ood:3", object_store)
    assert type(predictor.scorer).__name__ == "NearestNeighborDistance"
    assert predictor.scorer.get_config()["references"] == inference["ood_scorer"]["references"] > 0


def test_gate_without_thresholds_refuses(tmp_path, flow_env, object_store, tiny_preset):
    from modelgate.runner import run_pipeline

    mirror = write_clinc_mirror(tmp_path / "mirror")
    config = write_config(tmp_path, mirror, tiny_preset, gate={"thresholds": [], "change_thresholds": []})
    outcome = run_pipeline("intent-ood", config_file=config)
    assert outcome.exit_code == 0, outcome.error
    assert outcome.summary["verdict"]["decision"] == "refuse"
    assert outcome.summary["status"] == "failed"


def test_validation_failure_stops_before_training(tmp_path, flow_env, object_store, tiny_preset):
    from modelgate.runner import EXIT_VALIDATION, run_pipeline

    payload = make_clinc_payload()
    payload["test"][0][0] = "   "  # a whitespace-only query
    mirror = write_clinc_mirror(tmp_path / "mirror", payload)
    config = write_config(tmp_path, mirror, tiny_preset)
    outcome = run_pipeline("intent-ood", config_file=config)
    assert outcome.exit_code == EXIT_VALIDATION
    assert "expect_column_values_to_match_regex" in outcome.error
    assert "Data Docs" in outcome.error
    assert not list(object_store.list_keys("runs/intent-ood/train/"))
    assert not list(object_store.list_keys("registry/"))


def test_unknown_override_is_a_clear_error(flow_env):
    from modelgate.runner import EXIT_ERROR, run_pipeline

    outcome = run_pipeline("intent-ood", overrides=["train.epoch=3"])
    assert outcome.exit_code == EXIT_ERROR
    assert "train.epoch" in outcome.error
