"""Stages shared by the pipelines that fine-tune an encoder classifier on labelled text.

preprocess: every split's texts become token arrays once (cached in S3 by content hash, tokenizer
identity and sequence length). train: the encoder classifier is fine-tuned with per-epoch S3
checkpoints under a key derived from its inputs, so a killed run resumes and a finished one is
reused. Both hand on small manifests; arrays and models stay in object storage.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from modelgate.config import PipelineConfig
from modelgate.storage import NotFound, ObjectStore

TRAINED_MARKER = "trained.json"


def _sha(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class FeatureSet:
    """Where each split's token arrays are, and what produced them."""

    snapshot: dict[str, Any]  # the validated DatasetSnapshot
    labels: list[str]
    preset: str
    tokenizer_id: str
    sequence_length: int
    token_keys: dict[str, str]  # split -> object key of the .npz
    rows: dict[str, int]

    @property
    def key(self) -> str:
        return _sha([self.snapshot["sha256"], self.labels, self.tokenizer_id, self.sequence_length])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FeatureSet":
        return cls(**data)


def tokenize_splits(
    cfg: PipelineConfig, store: ObjectStore, snapshot: dict, frame, labels: Sequence[str], text_column: str
) -> FeatureSet:
    from modelgate.models.backbones import load_tokenizer, tokenizer_id
    from modelgate.preprocess import (
        cached_encode,
        encode_texts,
        texts_sha256,
        token_cache_key,
    )

    tokenizer = load_tokenizer(cfg.model.preset)
    tok_id = tokenizer_id(tokenizer)
    length = cfg.model.sequence_length
    token_keys, rows = {}, {}
    for split, part in frame.groupby("split", sort=False):
        texts = part[text_column].tolist()
        digest = texts_sha256(texts)
        cached_encode(store, digest, tok_id, length, lambda: encode_texts(tokenizer, texts, length))
        token_keys[str(split)] = token_cache_key(digest, tok_id, length)
        rows[str(split)] = len(texts)
    return FeatureSet(
        snapshot=snapshot,
        labels=list(labels),
        preset=cfg.model.preset,
        tokenizer_id=tok_id,
        sequence_length=length,
        token_keys=token_keys,
        rows=rows,
    )


def load_tokens(store: ObjectStore, features: FeatureSet, split: str) -> dict[str, np.ndarray]:
    try:
        key = features.token_keys[split]
    except KeyError:
        raise KeyError(f"no token arrays for split {split!r}; have {sorted(features.token_keys)}") from None
    with np.load(io.BytesIO(store.get_bytes(key)), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def label_ids(values: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({v for v in values if v not in index})
    if unknown:
        raise ValueError(f"labels outside the model's label set: {unknown[:10]}")
    return np.asarray([index[v] for v in values], dtype=np.int32)


@dataclass
class TrainedModel:
    """A trained model staged in object storage, and how its training went."""

    uri: str  # s3 prefix of the staged model directory (see modelgate.artifacts)
    train_key: str
    epochs_run: int
    resumed_from_epoch: int | None
    seconds: float
    examples_per_second: float
    backend: str
    device: str
    parameters: int
    trainable_parameters: int
    history: dict[str, list[float]] = field(default_factory=dict)
    reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainedModel":
        return cls(**data)


class EpochLog(keras.callbacks.Callback):
    """Prints one line per epoch (Prefect turns prints into run logs): progress people can follow."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.started
        values = ", ".join(f"{k}={float(v):.4f}" for k, v in sorted((logs or {}).items()))
        print(f"epoch {epoch + 1}/{self.epochs} ({seconds:.0f} s): {values}", flush=True)


def train_key(cfg: PipelineConfig, features: FeatureSet) -> str:
    """Everything that determines the trained weights: data, tokens, model, training, seed."""
    return _sha([features.key, cfg.digest("model", "train", "seed")])


def build_classifier(cfg: PipelineConfig, num_classes: int):
    from modelgate.models.backbones import load_backbone
    from modelgate.models.classifier import EncoderClassifier

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
    )


def train_and_stage(
    cfg: PipelineConfig,
    store: ObjectStore,
    features: FeatureSet,
    train: tuple[dict[str, np.ndarray], np.ndarray],
    validation: tuple[dict[str, np.ndarray], np.ndarray] | None,
    inference: dict[str, Any],
) -> TrainedModel:
    """Train (resuming from S3 checkpoints), then stage the model directory; reuse a finished one."""
    from modelgate.artifacts import save_model_dir
    from modelgate.models.backbones import load_tokenizer
    from modelgate.training import S3Checkpointer, TrainSettings, train_classifier

    key = train_key(cfg, features)
    prefix = f"runs/{cfg.pipeline}/train/{key}"
    marker = f"{prefix}/{TRAINED_MARKER}"
    if cfg.train.resume:
        try:
            done = TrainedModel.from_dict(store.get_json(marker))
            done.reused = True
            return done
        except NotFound:
            pass
    else:
        store.delete_prefix(f"{prefix}/")

    model = build_classifier(cfg, num_classes=len(features.labels))
    settings = TrainSettings(
        epochs=cfg.train.epochs,
        batch_size=cfg.train.batch_size,
        learning_rate=cfg.train.learning_rate,
        weight_decay=cfg.train.weight_decay,
        warmup_fraction=cfg.train.warmup_fraction,
        seed=cfg.seed,
    )
    checkpointer = S3Checkpointer(store, f"{prefix}/checkpoints")
    x_train, y_train = train
    x_val, y_val = validation if validation is not None else (None, None)
    trainee = model
    if cfg.model.freeze_backbone:
        # The encoder never changes: embed once, then train only the head on the embeddings.
        embedder = model.embedding_model()
        x_train = predict_arrays(embedder, x_train)
        x_val = predict_arrays(embedder, x_val) if x_val is not None else None
        trainee = model.head_model()
    result = train_classifier(
        trainee, x_train, y_train, x_val, y_val, settings,
        checkpointer=checkpointer, callbacks=[EpochLog(cfg.train.epochs)],
    )

    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "model"
        save_model_dir(staged, model, load_tokenizer(cfg.model.preset), features.labels, inference)
        store.upload_dir(staged, f"{prefix}/model")
    trained = TrainedModel(
        uri=store.uri(f"{prefix}/model"),
        train_key=key,
        epochs_run=result.epochs_run,
        resumed_from_epoch=result.resumed_from_epoch,
        seconds=result.seconds,
        examples_per_second=result.examples_per_second,
        backend=result.backend,
        device=result.device,
        parameters=int(model.count_params()),
        trainable_parameters=int(sum(np.prod(v.shape) for v in model.trainable_weights)),
        history={k: [float(x) for x in v] for k, v in (result.history or {}).items()},
    )
    # Written last: a staged model without this marker is incomplete and is never reused.
    store.put_json(marker, trained.to_dict())
    return trained


def fetch_staged_model(store: ObjectStore, trained: TrainedModel, directory: Path):
    from modelgate.artifacts import load_model_dir

    store.download_dir(store.key_of(trained.uri), directory)
    return load_model_dir(directory)


def predict_arrays(model, arrays, batch_size: int = 128) -> np.ndarray:
    return np.asarray(model.predict(arrays, batch_size=batch_size, verbose=0))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)
