"""Training in a process of its own: the child's errors come back with their message, its output
lines are passed on, and the in-process switch trains in the caller."""

from __future__ import annotations

import pytest

from modelgate.data.snapshot import DatasetSnapshot
from modelgate.pipelines.intent_ood import PIPELINE as intent_ood
from modelgate.pipelines.results import FeatureSet, TrainedModel
from modelgate.training.isolated import IN_PROCESS_ENV, TrainingProcessError, train_in_subprocess


def _missing_features(store) -> FeatureSet:
    """A well-formed feature set whose snapshot is not in the bucket: training must fail on it."""
    snapshot = DatasetSnapshot(dataset="clinc_oos", uri=store.uri("datasets/clinc_oos/bogus/data.jsonl"),
                               sha256="bogus", rows=1)
    return FeatureSet(snapshot=snapshot, labels=["a"], preset="none", tokenizer_id="t",
                      sequence_length=8, token_keys={}, rows={})


def test_a_failing_child_reports_its_error_and_output(modelgate_env, object_store, monkeypatch):
    monkeypatch.delenv(IN_PROCESS_ENV, raising=False)
    cfg = intent_ood.load_config("quick", None, ["train.backend=inherit"])
    lines: list[str] = []
    with pytest.raises(TrainingProcessError, match=r"training failed: \w+: .*bogus"):
        train_in_subprocess(intent_ood, cfg, _missing_features(object_store), log=lines.append)
    # The child's traceback reached the caller's log, line by line.
    assert any("Traceback" in line for line in lines)
    assert any("bogus" in line for line in lines)
    # TensorFlow's start-up notices in the child (absl, "no CUDA driver") are not passed on.
    assert not [line for line in lines if "absl::InitializeLog" in line or "cuda" in line.lower()]


def test_the_in_process_switch_trains_in_the_caller(modelgate_env, object_store, monkeypatch):
    monkeypatch.setenv(IN_PROCESS_ENV, "1")
    cfg = intent_ood.load_config("quick", None, ["train.backend=inherit"])
    with pytest.raises(Exception, match="bogus") as raised:
        train_in_subprocess(intent_ood, cfg, _missing_features(object_store))
    assert not isinstance(raised.value, TrainingProcessError)  # raised here, not in a child


def test_the_child_hands_back_a_typed_trained_model():
    """The JSON a child writes is read back into the same typed result the stage returned."""
    trained = TrainedModel(uri="s3://b/runs/x/model", train_key="k", epochs_run=1, seconds=1.0,
                           examples_per_second=2.0, backend="jax", device="CPU", parameters=3,
                           trainable_parameters=1, history={"loss": [0.5]})
    assert TrainedModel.from_dict(trained.to_dict()) == trained
