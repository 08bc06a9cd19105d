"""The toxicity learning-curve flow on a tiny grid: every (size, epochs) point trains in its own
task run and child process, and the run page gets one table and one plot."""

from __future__ import annotations

import json
import os

import pytest
from fixtures_ethos import fixture_words, write_ethos_mirror
from prefect_ui import artifact_keys
from test_toxicity_flow import write_config
from tiny_preset import build_tiny_preset

pytestmark = pytest.mark.slow


def test_grid_points_and_table():
    from modelgate.pipelines import toxicity, toxicity_curve

    cfg = toxicity.PIPELINE.load_config()
    assert toxicity_curve.grid(cfg) == [(s, e) for s in (200, 400, 800) for e in (4, 6, 8, 10)]
    point = toxicity_curve.point_config(cfg, 200, 6)
    assert (point.train.examples, point.train.epochs) == (200, 6) and cfg.train.examples is None
    rows = toxicity_curve.curve_table([
        {"examples": 400, "epochs": 4, "f1": 0.7, "f1_low": 0.6, "f1_high": 0.8, "roc_auc": 0.8,
         "roc_auc_low": 0.7, "roc_auc_high": 0.9, "train_seconds": 3.0},
        {"examples": 200, "epochs": 4, "f1": 0.5, "f1_low": 0.4, "f1_high": 0.6, "roc_auc": 0.6,
         "roc_auc_low": 0.5, "roc_auc_high": 0.7, "train_seconds": 2.0},
    ])
    assert [r["training examples"] for r in rows] == [200, 400]
    assert rows[0]["f1 95% interval"] == "[0.4000, 0.6000]"


def test_learning_curve_flow(tmp_path, monkeypatch, modelgate_env, prefect_server, object_store):
    from modelgate.flows.toxicity_learning_curve import toxicity_learning_curve

    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    preset = build_tiny_preset(tmp_path / "tiny-bert", extra_words=fixture_words())
    config = write_config(tmp_path, write_ethos_mirror(tmp_path / "mirror"), preset)
    state = toxicity_learning_curve(
        config_file=config,
        overrides=["learning_curve.sizes=[10, 20]", "learning_curve.epochs=[1]", "learning_curve.parallel=2"],
        return_state=True,
    )
    assert state.is_completed(), state.message
    result = state.result()
    points = sorted(result["points"], key=lambda p: p["examples"])
    assert [(p["examples"], p["epochs"]) for p in points] == [(10, 1), (20, 1)]
    for p in points:
        assert 0.0 <= p["f1_low"] <= p["f1"] <= p["f1_high"] <= 1.0
        assert 0.0 <= p["roc_auc_low"] <= p["roc_auc"] <= p["roc_auc_high"] <= 1.0
        inference = json.loads(object_store.get_bytes(object_store.key_of(p["model_uri"]) + "/inference.json"))
        assert inference["train_examples"] == p["examples"]
    assert points[0]["model_uri"] != points[1]["model_uri"]
    assert object_store.exists(object_store.key_of(result["plot_uri"]))
    run_id = str(state.state_details.flow_run_id)
    assert {"toxicity-learning-curve", "toxicity-plot-learning-curve", "toxicity-validation"} <= artifact_keys(os.environ["PREFECT_API_URL"], run_id)
