"""`train.backend`: the training child runs the Keras backend the configuration names, the model it
saves is evaluated under the caller's backend, and training in a process on another backend is
refused with a line that says what to do."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fixtures_clinc import clinc_tiny_preset, write_clinc_config, write_clinc_mirror
from modelgate.pipelines.intent_ood import PIPELINE as intent_ood
from modelgate.training.backend import TrainingBackendError, training_environment
from modelgate.training.isolated import IN_PROCESS_ENV, train_in_subprocess, train_stage

# A backend other than the one this process runs (the suite runs TensorFlow unless told otherwise).
OTHER = "jax" if keras.backend.backend() != "jax" else "tensorflow"


@pytest.fixture
def fixture_config(tmp_path):
    mirror = write_clinc_mirror(tmp_path / "mirror")
    return write_clinc_config(tmp_path, mirror, clinc_tiny_preset(tmp_path / "preset"))


def test_a_model_trained_on_another_backend_is_evaluated_under_the_callers_backend(
        modelgate_env, object_store, fixture_config, monkeypatch):
    monkeypatch.delenv(IN_PROCESS_ENV, raising=False)
    cfg = intent_ood.load_config("default", fixture_config, [f"train.backend={OTHER}", "train.epochs=1"])
    snapshot = intent_ood.ingest(cfg, object_store)
    validated = intent_ood.validate(cfg, object_store, snapshot, "backend-test")
    features = intent_ood.preprocess(cfg, object_store, validated)

    trained = train_in_subprocess(intent_ood, cfg, features, log=lambda line: None)
    assert trained.backend == OTHER  # what the child process ran, not this one

    evaluation = intent_ood.evaluate(cfg, object_store, trained, features, "backend-test")
    accuracy = evaluation.metrics["accuracy"]["value"]
    assert 0.0 <= accuracy <= 1.0 and np.isfinite(evaluation.metrics["ood_auprc"]["value"])

    # The backend is part of the training key: the same run under the caller's backend trains anew.
    inherited = intent_ood.load_config("default", fixture_config, ["train.epochs=1"])
    assert intent_ood.load_config("default", fixture_config, [f"train.backend={OTHER}", "train.epochs=1"]) \
        .digest("train") != inherited.digest("train")


def test_training_in_a_process_on_another_backend_is_refused(modelgate_env, object_store, fixture_config):
    cfg = intent_ood.load_config("default", fixture_config, [f"train.backend={OTHER}"])
    with pytest.raises(TrainingBackendError, match=f"train.backend={OTHER}, but this process runs Keras on"):
        train_stage(intent_ood, cfg, features=None)


def test_the_child_environment_names_the_backend_and_inherit_keeps_the_callers(fixture_config):
    jax_cfg = intent_ood.load_config("default", fixture_config, ["train.backend=jax"])
    assert training_environment(jax_cfg, {"KERAS_BACKEND": "tensorflow", "A": "1"}) == {
        "KERAS_BACKEND": "jax", "A": "1"}
    inherit_cfg = intent_ood.load_config("default", fixture_config, ["train.backend=inherit"])
    assert training_environment(inherit_cfg, {"A": "1"}) == {"A": "1"}


def test_an_unknown_backend_is_one_config_line(fixture_config):
    from modelgate.config import ConfigError

    with pytest.raises(ConfigError, match="train.backend"):
        intent_ood.load_config("default", fixture_config, ["train.backend=mxnet"])
