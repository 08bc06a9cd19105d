"""Preprocess and train: tokens become arrays once; training checkpoints every epoch to S3."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact

from modelgate.config import PipelineConfig
from modelgate.pipelines.base import Pipeline
from modelgate.pipelines.results import FeatureSet, TrainedModel
from modelgate.training.isolated import train_in_subprocess
from tasks.context import object_store
from validations.runner import ValidationReport


@task(name="preprocess")
def preprocess_dataset(pipeline: Pipeline, cfg: PipelineConfig, validated: ValidationReport) -> FeatureSet:
    """Tokenize every split into arrays, cached by data hash + tokenizer + sequence length."""
    return pipeline.preprocess(cfg, object_store(), validated)


@task(name="train", tags=["gpu"])
def train_model(pipeline: Pipeline, cfg: PipelineConfig, features: FeatureSet) -> TrainedModel:
    """Fine-tune in a process of its own (GPU memory is freed when it ends); a rerun with the same
    inputs resumes from its last S3 checkpoint. The `gpu` tag lets a concurrency limit on that tag
    serialise GPU training across runs (see docs/design.md)."""
    trained = train_in_subprocess(pipeline, cfg, features)
    create_markdown_artifact(
        key="training", markdown=training_markdown(trained.to_dict()), description="Training run"
    )
    return trained


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
    return "\n".join(lines) + "\n"
