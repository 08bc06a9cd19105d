"""TensorBoard logs for every pipeline's training: where a training loop wrote none (the encoder
classifiers, toxicity's causal LM), the train task writes them from the run's per-epoch history
beside its checkpoints in S3 (real SeaweedFS); a run that has its own logs keeps them."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from modelgate.pipelines import PIPELINES
from modelgate.pipelines.results import TrainedModel
from modelgate.tasks.training import with_tensorboard_logs


def _trained(history: dict, resumed: int | None = None, tensorboard_uri: str = "") -> TrainedModel:
    return TrainedModel(uri="s3://b/runs/x/model", train_key="key1", epochs_run=len(history["loss"]),
                        resumed_from_epoch=resumed, seconds=1.0, examples_per_second=1.0, backend="jax",
                        device="CPU", parameters=1, trainable_parameters=1, history=history,
                        tensorboard_uri=tensorboard_uri)


def _scalars(store, uri: str, run: str, tag: str, tmp_path: Path) -> list[tuple[int, float]]:
    local = tmp_path / "logs"
    store.download_dir(store.key_of(uri), local)
    events = EventAccumulator(str(local / run))
    events.Reload()
    return [(e.step, round(e.value, 4)) for e in events.Scalars(tag)]


@pytest.mark.parametrize("pipeline", ["intent-ood", "nli", "toxicity"])
def test_history_becomes_tensorboard_scalars_after_the_resumed_epochs(pipeline, modelgate_env, object_store, tmp_path):
    cfg = PIPELINES[pipeline].load_config("quick")
    history = {"loss": [0.9, 0.5], "val_loss": [1.0, 0.7]}
    trained = with_tensorboard_logs(object_store, cfg, _trained(history, resumed=1))
    assert trained.tensorboard_uri == object_store.uri(f"runs/{pipeline}/train/key1/tensorboard/")
    assert _scalars(object_store, trained.tensorboard_uri, "train", "epoch_loss", tmp_path) == [(1, 0.9), (2, 0.5)]
    assert _scalars(object_store, trained.tensorboard_uri, "validation", "epoch_loss", tmp_path) == [(1, 1.0), (2, 0.7)]
    # Reused later: the same logs, no second set of event files.
    files = sorted(object_store.list_keys(object_store.key_of(trained.tensorboard_uri)))
    again = with_tensorboard_logs(object_store, cfg, _trained(history, resumed=1))
    assert again.tensorboard_uri == trained.tensorboard_uri
    assert sorted(object_store.list_keys(object_store.key_of(trained.tensorboard_uri))) == files


def test_a_run_with_its_own_logs_keeps_them(modelgate_env, object_store):
    cfg = PIPELINES["job-similarity"].load_config("quick")
    own = "s3://b/runs/job-similarity/train/key1/tensorboard/"
    assert with_tensorboard_logs(object_store, cfg, _trained({"loss": [1.0]}, tensorboard_uri=own)).tensorboard_uri == own
    assert not list(object_store.list_keys("runs/"))
