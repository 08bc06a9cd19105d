"""Preprocess and train: tokens become arrays once; training checkpoints every epoch to S3."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact

from modelgate.config import PipelineConfig
from modelgate.pipelines import get_pipeline
from tasks.context import object_store


@task(name="preprocess")
def preprocess_dataset(cfg: PipelineConfig, validated: dict) -> dict:
    """Tokenize every split into arrays, cached by data hash + tokenizer + sequence length."""
    features = get_pipeline(cfg.pipeline).preprocess(cfg, object_store(), validated)
    return features.to_dict()


@task(name="train", tags=["gpu"])
def train_model(cfg: PipelineConfig, features: dict) -> dict:
    """Fine-tune in a process of its own (GPU memory is freed when it ends); a rerun with the same
    inputs resumes from its last S3 checkpoint. The `gpu` tag lets a concurrency limit on that tag
    serialise GPU training across runs (see docs/design.md)."""
    from modelgate.training.isolated import train_in_subprocess

    info = train_in_subprocess(cfg, features)
    create_markdown_artifact(key="training", markdown=training_markdown(info), description="Training run")
    return info


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
