"""`modelgate tune`: search spaces are checked before anything runs, trials are task runs scored on
validation only, the best is the argmax of the recorded validation scores, its YAML is a config
`modelgate run --config` takes, and a stopped study resumes without retraining finished trials.
Real SeaweedFS and Prefect servers, a tiny random encoder on the CLINC fixture."""

from __future__ import annotations

import os

import pytest
import yaml
from typer.testing import CliRunner

from fixtures_clinc import clinc_tiny_preset, write_clinc_config, write_clinc_mirror
from prefect_ui import api, artifact_keys

from modelgate.flows.tune import tune  # before CliRunner swaps the streams: TensorFlow logs to stderr
from modelgate.cli import app
from modelgate.pipelines import get_pipeline
from modelgate.training.isolated import IN_PROCESS_ENV

SPACE = {
    "objective": {"metric": "val_accuracy", "direction": "maximize"},
    "parameters": {
        "train.learning_rate": {"type": "float", "low": 1.0e-4, "high": 3.0e-2, "log": True},
        "train.epochs": {"type": "int", "low": 1, "high": 3},
    },
}


def write_space(tmp_path, space) -> str:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return str(path)


@pytest.mark.parametrize("parameters, expected", [
    ({"train.learnig_rate": {"type": "float", "low": 0.001, "high": 0.01}}, "no config key 'learnig_rate' in train"),
    ({"train.learning_rate": {"type": "float", "low": 0.01, "high": 0.001}}, "low (0.01) must be below high (0.001)"),
    ({"train.learning_rate": {"type": "float", "low": 0.0, "high": 0.01, "log": True}}, "a log scale needs low > 0"),
    ({"train.epochs": {"type": "float", "low": 1, "high": 3}}, "'train.epochs' is float but the config key holds int"),
    ({"train.epochs": {"type": "interval", "low": 1, "high": 3}}, "unknown type 'interval'"),
    ({"train.epochs": {"type": "int", "low": 0, "high": 3}}, "value 0 is refused by the config"),
    ({"model.head": {"type": "categorical", "choices": ["sngp", "linear"]}}, "value 'linear' is refused by the config"),
])
def test_bad_space_is_refused_with_one_line_naming_the_key(tmp_path, parameters, expected):
    space = write_space(tmp_path, {"objective": SPACE["objective"], "parameters": parameters})
    result = CliRunner().invoke(app, ["tune", "intent-ood", "--trials", "2", "--space", space])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.output
    assert next(iter(parameters)) in lines[0]


def test_objective_must_be_a_validation_metric(tmp_path):
    space = write_space(tmp_path, {**SPACE, "objective": {"metric": "accuracy", "direction": "maximize"}})
    result = CliRunner().invoke(app, ["tune", "intent-ood", "--trials", "2", "--space", space])
    assert result.exit_code == 2 and "not a validation metric of intent-ood" in result.output


@pytest.mark.slow
def test_tune_picks_best_on_validation_and_resumes(tmp_path, monkeypatch, modelgate_env, prefect_server, object_store):
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    monkeypatch.setenv(IN_PROCESS_ENV, "1")  # trials one at a time: no child process start-up each
    config = write_clinc_config(tmp_path, write_clinc_mirror(tmp_path / "mirror"), clinc_tiny_preset(tmp_path))
    space = write_space(tmp_path, SPACE)

    # A study stopped after one trial, then resumed to two: each part trains one trial.
    first = tune(pipeline="intent-ood", trials=1, space_file=space, config_file=config, return_state=True)
    assert first.is_completed(), first.message
    stopped = first.result()
    assert (stopped["resumed"], stopped["ran"], len(stopped["trials"])) == (0, 1, 1)

    resumed_state = tune(pipeline="intent-ood", trials=2, space_file=space, config_file=config, return_state=True)
    assert resumed_state.is_completed(), resumed_state.message
    result = resumed_state.result()
    assert result["study"] == stopped["study"]
    assert (result["resumed"], result["ran"], len(result["trials"])) == (1, 1, 2)
    by_number = {r["number"]: r for r in result["trials"]}
    for earlier in stopped["trials"]:  # the first one came back from S3, not from training again
        assert by_number[earlier["number"]] == earlier
    trained = [k for k in object_store.list_keys("runs/intent-ood/train/") if k.endswith("/trained.json")]
    assert len(trained) == len({r["train_key"] for r in result["trials"]})

    # The best is the argmax of the recorded validation scores; test data was never scored.
    values = [r["value"] for r in result["trials"]]
    assert result["best"]["value"] == max(values)
    assert all(set(r["validation_metrics"]) == {"val_accuracy", "val_loss"} for r in result["trials"])
    assert not any("/evaluation/" in k for k in object_store.list_keys("runs/intent-ood/"))

    # Every trial ran as a task run of the flow run; the table and plot are on the run's page.
    run_id = str(resumed_state.state_details.flow_run_id)
    task_runs = api(os.environ["PREFECT_API_URL"], "/task_runs/filter",
                    {"flow_runs": {"id": {"any_": [run_id]}}, "task_runs": {"name": {"like_": "trial-"}}})
    assert sorted(t["name"] for t in task_runs) == ["trial-1"]
    assert {"intent-ood-tuning-trials", "intent-ood-tuning-plot"} <= artifact_keys(os.environ["PREFECT_API_URL"], run_id)
    assert object_store.exists(object_store.key_of(result["plot_uri"]))

    # The best config is a file `modelgate run intent-ood --config` accepts, and it is the best trial's.
    best_file = tmp_path / "best.yaml"
    best_file.write_text(result["best_config"])
    cfg = get_pipeline("intent-ood").load_config(config_file=str(best_file))
    assert cfg.train.learning_rate == result["best"]["params"]["train.learning_rate"]
    assert cfg.train.epochs == result["best"]["params"]["train.epochs"]
    assert cfg.model.preset == get_pipeline("intent-ood").load_config(config_file=config).model.preset
