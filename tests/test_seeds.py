"""`modelgate run PIPELINE --seeds N`: one recipe trained under N seeds, each a task run, and the
spread of its main metric (mean, std, min, max) as a table artifact. Real SeaweedFS and Prefect
servers, a tiny random encoder on the CLINC fixture."""

from __future__ import annotations

import os
import statistics

import pytest
from typer.testing import CliRunner

from fixtures_clinc import clinc_tiny_preset, write_clinc_config, write_clinc_mirror
from prefect_ui import api, artifact_keys

from modelgate.flows.seeds import seeds  # before CliRunner swaps the streams: TensorFlow logs to stderr
from modelgate.cli import app
from modelgate.training.isolated import IN_PROCESS_ENV
from modelgate.tasks.seeds import spread


def test_spread_is_mean_sample_std_min_max():
    assert spread([0.5, 0.7, 0.9]) == pytest.approx({"mean": 0.7, "std": 0.2, "min": 0.5, "max": 0.9})
    assert spread([0.4]) == {"mean": 0.4, "std": 0.0, "min": 0.4, "max": 0.4}


def test_bad_task_runner_is_refused_before_anything_runs():
    result = CliRunner().invoke(app, ["run", "intent-ood", "--seeds", "2", "--task-runner", "ray"])
    assert result.exit_code == 2
    assert result.output.strip() == "run failed: task runner 'ray': use local, dask or dask://HOST:PORT"


@pytest.mark.slow
def test_seeds_train_separately_and_report_the_spread(tmp_path, monkeypatch, modelgate_env, prefect_server, object_store):
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    monkeypatch.delenv(IN_PROCESS_ENV, raising=False)  # the two seeds train at once: one process each
    config = write_clinc_config(tmp_path, write_clinc_mirror(tmp_path / "mirror"), clinc_tiny_preset(tmp_path))
    state = seeds(pipeline="intent-ood", count=2, config_file=config, overrides=["seed=7"], return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert result["metric"] == "ood_auprc"  # the intent-ood gate's first threshold
    assert [r["seed"] for r in result["runs"]] == [7, 8]
    assert len({r["train_key"] for r in result["runs"]}) == 2  # the seed is part of the training key
    values = [r["metrics"]["ood_auprc"] for r in result["runs"]]
    assert result["spread"] == pytest.approx(
        {"mean": statistics.fmean(values), "std": statistics.stdev(values), "min": min(values), "max": max(values)})
    assert not object_store.exists("registry/intent-ood/versions/1/manifest.json")  # nothing registered
    run_id = str(state.state_details.flow_run_id)
    assert "seed-spread" in artifact_keys(os.environ["PREFECT_API_URL"], run_id)
    task_runs = api(os.environ["PREFECT_API_URL"], "/task_runs/filter",
                    {"flow_runs": {"id": {"any_": [run_id]}}, "task_runs": {"name": {"like_": "seed-"}}})
    assert sorted(t["name"] for t in task_runs) == ["seed-7", "seed-8"]
