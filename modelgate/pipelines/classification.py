"""What the encoder-classifier pipelines (intent-ood, nli) share beyond the common stages.

train: an ``EncoderClassifier`` (softmax or SNGP head on a keras-hub backbone) fine-tuned with
per-epoch S3 checkpoints, then staged with its tokenizer and labels (``reuse_or_train`` keys the
run by its inputs, so a killed run resumes and a finished one is reused). With a frozen encoder
the embeddings are computed once (``modelgate.embedding_cache``) and only the head trains. Evaluate reads probabilities back
through ``predict_arrays`` and ``softmax``. Their configs (``ClassifierConfig``) may add a supervised
contrastive loss on the pooled embeddings beside cross-entropy.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pydantic import Field, model_validator

from modelgate.artifacts import save_model_dir
from modelgate.config import PipelineConfig, TrainConfig
from modelgate.embedding_cache import Embedder
from modelgate.models.backbones import load_backbone, load_tokenizer
from modelgate.models.classifier import EncoderClassifier
from modelgate.models.padding import predict_by_length
from modelgate.pipelines.results import FeatureSet, TrainedModel
from modelgate.pipelines.stages import TrainingRun, record_trained, reuse_or_train
from modelgate.storage import ObjectStore
from modelgate.training import EpochLog, S3Checkpointer, TrainSettings, train_classifier

XY = tuple[dict[str, np.ndarray], np.ndarray]


class ClassifierTrainConfig(TrainConfig):
    """Training of an ``EncoderClassifier``: the common settings and an optional supervised
    contrastive loss on the pooled embeddings beside cross-entropy."""

    supervised_contrastive_weight: float = Field(
        0.0, ge=0.0, description="weight of a supervised contrastive loss on the pooled embeddings, "
                                 "added to cross-entropy (0: off; needs a trainable encoder)"
    )
    supervised_contrastive_temperature: float = Field(
        0.1, gt=0.0, description="temperature of the supervised contrastive loss"
    )


class ClassifierConfig(PipelineConfig):
    """A pipeline config whose model is an ``EncoderClassifier`` (intent-ood, nli)."""

    train: ClassifierTrainConfig = ClassifierTrainConfig()

    @model_validator(mode="after")
    def _contrastive_needs_a_trainable_encoder(self):
        if self.train.supervised_contrastive_weight > 0 and self.model.freeze_backbone:
            raise ValueError(
                f"train.supervised_contrastive_weight is {self.train.supervised_contrastive_weight} but "
                "model.freeze_backbone is true: the loss would have nothing to train; set "
                "train.supervised_contrastive_weight=0 with a frozen encoder"
            )
        return self


def label_ids(values: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({v for v in values if v not in index})
    if unknown:
        raise ValueError(f"labels outside the model's label set: {unknown[:10]}")
    return np.asarray([index[v] for v in values], dtype=np.int32)


def build_classifier(cfg: ClassifierConfig, num_classes: int) -> EncoderClassifier:
    m = cfg.model
    return EncoderClassifier(
        load_backbone(m.preset),
        num_classes=num_classes,
        head=m.head,
        dropout=m.dropout,
        freeze_backbone=m.freeze_backbone,
        spectral_norm_bound=m.spec_norm_bound,
        num_inducing=m.num_inducing,
        ridge_penalty=m.ridge_penalty,
        mean_field_factor=m.mean_field_factor,
        contrastive_weight=cfg.train.supervised_contrastive_weight,
        contrastive_temperature=cfg.train.supervised_contrastive_temperature,
    )


def train_settings(cfg: PipelineConfig) -> TrainSettings:
    t = cfg.train
    return TrainSettings(
        epochs=t.epochs, batch_size=t.batch_size, learning_rate=t.learning_rate,
        weight_decay=t.weight_decay, warmup_fraction=t.warmup_fraction, seed=cfg.seed,
        head_layers=EncoderClassifier.HEAD_LAYERS,
        head_learning_rate_multiplier=t.head_learning_rate_multiplier,
        length_bucketing=t.length_bucketing,
    )


def train_and_stage(
    cfg: PipelineConfig,
    store: ObjectStore,
    features: FeatureSet,
    train: XY,
    validation: XY | None,
    inference: dict[str, Any],
) -> TrainedModel:
    """Train (resuming from S3 checkpoints), then stage the model directory; reuse a finished one."""

    def fit(run: TrainingRun) -> TrainedModel:
        model = build_classifier(cfg, num_classes=len(features.labels))
        (x_train, y_train), (x_val, y_val) = train, validation or (None, None)
        trainee = model
        if cfg.model.freeze_backbone:
            # The encoder never changes: embed once (or read the embeddings an earlier run or
            # trial stored), then train only the head on the embeddings.
            embed = Embedder(model, store)
            x_train = embed(x_train)
            x_val = embed(x_val) if x_val is not None else None
            print(embed.summary("training"))
            trainee = model.head_model()
        if model.contrastive_weight > 0:
            x_train = {**x_train, "labels": y_train}  # the contrastive loss reads them in training
        result = train_classifier(
            trainee, x_train, y_train, x_val, y_val, train_settings(cfg),
            checkpointer=S3Checkpointer(store, run.checkpoints), callbacks=[EpochLog(cfg.train.epochs)],
        )
        with tempfile.TemporaryDirectory() as tmp:
            staged = Path(tmp) / "model"
            save_model_dir(staged, model, load_tokenizer(cfg.model.preset), features.labels, inference)
            uri = run.stage(staged)
        return record_trained(run, uri, result, model)

    return reuse_or_train(cfg, store, features, fit)


def predict_arrays(model, arrays, batch_size: int = 128) -> np.ndarray:
    """Predictions over token arrays, each row at its own length (``predict_by_length``)."""
    return predict_by_length(model, arrays, batch_size=batch_size)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)
