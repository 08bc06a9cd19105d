"""Preprocess and train: tokens become arrays once; training checkpoints every epoch to S3."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from prefect import task
from prefect.artifacts import create_markdown_artifact

from modelgate.config import PipelineConfig
from modelgate.pipelines.base import Pipeline
from modelgate.pipelines.results import FeatureSet, TrainedModel
from modelgate.pipelines.stages import TrainingRun, finished_training, train_key
from modelgate.storage import ObjectStore
from modelgate.training.checkpoint import LATEST_FILE
from modelgate.training.history_logs import write_history_events
from modelgate.training.isolated import train_in_subprocess
from modelgate.tasks.context import object_store
from modelgate.tasks.ui import artifact_key
from modelgate.validations.runner import ValidationReport

# Fault injection for the retry path: set to a file path, the train task fails once (and writes
# that file) at the first epoch line after a checkpoint exists; with the file present it trains.
FAULT_ONCE_ENV = "MODELGATE_FAULT_TRAIN_ONCE"


class InjectedTrainingFault(RuntimeError):
    pass


@task(name="preprocess")
def preprocess_dataset(pipeline: Pipeline, cfg: PipelineConfig, validated: ValidationReport) -> FeatureSet:
    """Tokenize every split into arrays, cached by data hash + tokenizer + sequence length."""
    return pipeline.preprocess(cfg, object_store(), validated)


@task(name="train", tags=["gpu"], retries=2, retry_delay_seconds=5)
def train_model(pipeline: Pipeline, cfg: PipelineConfig, features: FeatureSet) -> TrainedModel:
    """Fine-tune in a process of its own (GPU memory is freed when it ends). A retry or a rerun
    with the same inputs resumes from the last S3 checkpoint, so a retry costs at most the epoch
    that was interrupted. The `gpu` tag lets a concurrency limit on that tag serialise GPU
    training across runs (see docs/design.md)."""
    store = object_store()
    # A finished run with the same key is reused without starting the training process (its
    # TensorFlow start-up is most of an unchanged re-run's time).
    trained = finished_training(cfg, store, features) or train_in_subprocess(
        pipeline, cfg, features, log=_fault_once_log(store, cfg, features))
    trained = with_tensorboard_logs(store, cfg, trained)
    create_markdown_artifact(
        key=artifact_key(cfg.pipeline, "training"), markdown=training_markdown(trained.to_dict()),
        description=f"{cfg.pipeline}: training run",
    )
    return trained


def _fault_once_log(store: ObjectStore, cfg: PipelineConfig, features: FeatureSet) -> Callable[[str], None] | None:
    marker = os.environ.get(FAULT_ONCE_ENV)
    if not marker or Path(marker).exists():
        return None  # the child's lines go to print (the run log)
    latest = f"{TrainingRun(store, cfg.pipeline, train_key(cfg, features)).checkpoints}/{LATEST_FILE}"

    def log(line: str) -> None:
        print(line)
        if line.startswith("epoch ") and store.exists(latest):
            Path(marker).write_text(line)
            raise InjectedTrainingFault(f"{FAULT_ONCE_ENV}: training stopped once after a checkpoint ({line})")

    return log


def with_tensorboard_logs(store: ObjectStore, cfg: PipelineConfig, trained: TrainedModel) -> TrainedModel:
    """The trained model with TensorBoard logs: the ones its training loop wrote, else event files
    written from its per-epoch history beside its checkpoints (once: a reused run keeps its own)."""
    if trained.tensorboard_uri or not trained.history:
        return trained
    run = TrainingRun(store, cfg.pipeline, trained.train_key)
    logs = f"{run.prefix}/tensorboard/"
    if next(iter(store.list_keys(logs)), None):
        return trained.model_copy(update={"tensorboard_uri": store.uri(logs)})
    with tempfile.TemporaryDirectory(prefix="modelgate-tensorboard-") as tmp:
        write_history_events(trained.history, Path(tmp), first_epoch=trained.resumed_from_epoch or 0)
        return trained.model_copy(update={"tensorboard_uri": run.stage_logs(Path(tmp))})


def training_markdown(info: dict) -> str:
    lines = ["## Training", ""]
    if "backend" in info:
        lines.append(f"- backend / device: {info['backend']} / {info.get('device', 'unknown')}")
    if "epochs_run" in info:
        resumed = info.get("resumed_from_epoch")
        reused = " (reused a finished training with the same inputs)" if info.get("reused") else ""
        lines.append(f"- epochs run: {info['epochs_run']} (resumed after epoch {resumed}){reused}")
    if "parameters" in info:
        lines.append(
            f"- parameters: {info['parameters']:,} ({info.get('trainable_parameters', 0):,} trainable)"
        )
    if "seconds" in info:
        rate = info.get("examples_per_second")
        lines.append(f"- wall time: {info['seconds']:.0f} s" + (f", {rate:.1f} examples/s" if rate else ""))
    if "uri" in info:
        lines.append(f"- staged model: `{info['uri']}`")
    if info.get("tensorboard_uri"):
        lines.append(f"- TensorBoard logs: `{info['tensorboard_uri']}` (`tensorboard --logdir` on a copy)")
    return "\n".join(lines) + "\n"
