"""The whole job-similarity flow on a small ESCO-like fixture with a tiny backbone, against a real
Prefect server and a real SeaweedFS: registration of the encoder, stored verdict and report with
the base-vs-tuned comparison, TensorBoard logs, UI artifacts, and predict / embed from the CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import yaml

from fixtures_esco import FIXTURE_DATA, FIXTURE_VALIDATION, STSB_DEV_ROWS, fixture_words, write_esco_mirror
from tiny_preset import build_tiny_preset
from prefect_ui import artifact_keys

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    return build_tiny_preset(tmp_path_factory.mktemp("preset") / "tiny-bert", extra_words=fixture_words())


def write_config(tmp_path, mirror, preset, gate=None) -> str:
    config = {
        "data": {"source": str(mirror), "stsb_source": str(mirror), **FIXTURE_DATA},
        "model": {"preset": str(preset), "sequence_length": 8},
        "train": {"epochs": 2, "batch_size": 8, "learning_rate": 1.0e-3},
        "evaluate": {"bootstrap_samples": 100, "stsb_sequence_length": 16},
        "validation": FIXTURE_VALIDATION,
    }
    if gate is not None:
        config["gate"] = gate
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_flow_registers_encoder_with_comparison_and_predicts(tmp_path, flow_env, object_store, tiny_preset):
    from typer.testing import CliRunner

    from modelgate.cli import app
    from modelgate.predict import load_predictor
    from modelgate.runner import run_pipeline

    from modelgate.pipelines.job_similarity import PIPELINE

    # The packaged gate is the recipe's: STS-B Pearson at most 0.02 below the base encoder, held-out
    # ESCO Spearman at least 0.05 above it.
    packaged = {(t.metric, t.min) for t in PIPELINE.load_config("default").gate.thresholds}
    assert packaged == {("stsb_pearson_change", -0.02), ("esco_spearman_gain", 0.05)}
    # Here the ESCO gain must exceed 2, which no change of a correlation can: a failed gate,
    # whatever a tiny random encoder happens to learn; the version is registered all the same.
    gate = {"thresholds": [{"metric": "stsb_pearson_change", "min": -0.02},
                           {"metric": "esco_spearman_gain", "min": 2.01}]}
    mirror = write_esco_mirror(tmp_path / "mirror")
    outcome = run_pipeline("job-similarity", config_file=write_config(tmp_path, mirror, tiny_preset, gate))
    assert outcome.exit_code == 0, outcome.error
    summary = outcome.summary
    assert summary["version"] == 1
    assert summary["verdict"]["decision"] == "fail"
    checks = {c["metric"]: c for c in summary["verdict"]["checks"] if c["kind"] == "absolute"}
    assert set(checks) == {"stsb_pearson_change", "esco_spearman_gain"}

    prefix = "registry/job-similarity/versions/1"
    manifest = object_store.get_json(f"{prefix}/manifest.json")
    for name in ("model.keras", "metrics.json", "inference.json", "report/report.md",
                 "report/model_card.md", "report/plots/title_similarity_heatmap.png"):
        assert name in manifest["files"], name
    metrics = manifest["metrics"]
    expected = {f"{who}{data}_{kind}" for who in ("", "base_") for data in ("stsb", "esco")
                for kind in ("pearson", "spearman")}
    assert expected | {"stsb_pearson_change", "esco_spearman_gain"} <= set(metrics)
    for name in ("stsb", "esco"):
        change = "change" if name == "stsb" else "gain"
        assert metrics[f"{name}_pearson_{change}"]["value"] == pytest.approx(
            metrics[f"{name}_pearson"]["value"] - metrics[f"base_{name}_pearson"]["value"], abs=1e-9)
    assert manifest["evaluation"]["stsb_test_pairs"] == 12
    assert manifest["evaluation"]["esco_test_pairs"] == 32
    assert len(manifest["evaluation"]["heatmap_tuned"]) == 9
    tensorboard = manifest["training"]["tensorboard_uri"]
    assert tensorboard and any("tfevents" in k for k in object_store.list_keys(object_store.key_of(tensorboard)))
    inference = json.loads(object_store.get_bytes(f"{prefix}/inference.json"))
    assert inference["task"] == "similarity" and inference["sequence_length"] == 8

    keys = artifact_keys(os.environ["PREFECT_API_URL"], outcome.flow_run_id)
    assert {"job-similarity-metrics", "job-similarity-gate-verdict", "job-similarity-report", "job-similarity-validation", "job-similarity-training", "job-similarity-plot-title-similarity-heatmap"} <= keys

    predictor = load_predictor("job-similarity:1", object_store)
    [pair] = predictor.predict(["Data Analyst", "data  analyst"])
    assert pair.similarity == pytest.approx(1.0, abs=1e-3)  # normalised to the same title
    scored = predictor.predict_pairs([("software engineer", "data engineer"), ("kitchen manager", "radio analyst")])
    assert all(0.0 <= p.similarity <= 1.0 for p in scored)
    vectors = predictor.embed(["software engineer", "data analyst", "hotel manager"])
    assert vectors.shape[0] == 3 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    cli = CliRunner()
    result = cli.invoke(app, ["predict", "job-similarity:1", "Data Scientist", "Machine Learning Engineer", "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert row["left"] == "Data Scientist" and 0.0 <= row["similarity"] <= 1.0
    titles = tmp_path / "titles.txt"
    titles.write_text("software engineer\ndata analyst\n")
    out = tmp_path / "emb.npy"
    result = cli.invoke(app, ["predict", "job-similarity:1", "--embed", "--file", str(titles), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert np.load(out).shape == (2, vectors.shape[1])
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("software engineer\tdata engineer\nhotel manager\tretail manager\n")
    result = cli.invoke(app, ["predict", "job-similarity:1", "--file", str(pairs)])
    assert result.exit_code == 0, result.output
    assert "hotel manager" in result.stdout and "similarity" in result.stdout


def test_validation_failure_stops_before_training(tmp_path, flow_env, object_store, tiny_preset):
    from modelgate.runner import EXIT_VALIDATION, run_pipeline

    mirror = write_esco_mirror(tmp_path / "mirror")
    pairs = tmp_path / "pairs.csv"
    # A user file whose test titles also occur in training: the leakage check stops the run.
    lines = ["left,right,similarity,split"]
    lines += [f"data analyst,software engineer {i},0.{i % 9 + 1},train" for i in range(60)]
    lines += [f"data analyst,hotel manager {i},0.5,{s}" for s in ("validation", "test") for i in range(20)]
    pairs.write_text("\n".join(lines) + "\n")
    config = write_config(tmp_path, mirror, tiny_preset)
    outcome = run_pipeline("job-similarity", config_file=config, overrides=[f"data.source={pairs}"])
    assert outcome.exit_code == EXIT_VALIDATION, outcome.error
    assert "title_also_in_train" in outcome.error
    assert not list(object_store.list_keys("runs/job-similarity/train/"))
    assert not list(object_store.list_keys("registry/"))


def test_validation_comparison_reads_validation_splits_only(tmp_path, object_store, tiny_preset):
    """Choices such as the tier scores are made on ESCO's validation pairs and STS-B dev: the
    comparison must read those, never the test splits the gate reads."""
    from modelgate.data.snapshot import load_snapshot
    from modelgate.pipelines import job_similarity as js

    mirror = write_esco_mirror(tmp_path / "mirror")
    cfg = js.PIPELINE.load_config("default", write_config(tmp_path, mirror, tiny_preset),
                                    ["train.epochs=1", "data.pairs_per_tier.validation=6"])
    snapshot = js.ingest(cfg, object_store)
    features = js.preprocess(cfg, object_store, js.validate(cfg, object_store, snapshot, "val-compare"))
    trained = js.train(cfg, object_store, features)
    metrics = js.validation_comparison(cfg, object_store, trained, features)

    splits = load_snapshot(object_store, features.snapshot)["split"].value_counts()
    assert splits["validation"] != splits["test"]
    assert STSB_DEV_ROWS != 12  # sts-test.csv holds 12 pairs
    for name in ("stsb_pearson", "base_stsb_pearson", "stsb_pearson_change"):
        assert metrics[name].n == STSB_DEV_ROWS, name
    for name in ("esco_spearman", "base_esco_spearman", "esco_spearman_gain"):
        assert metrics[name].n == splits["validation"], name
    assert metrics["esco_spearman_gain"].value == pytest.approx(
        metrics["esco_spearman"].value - metrics["base_esco_spearman"].value, abs=1e-9)
