"""One implementation of each step the four pipelines' stages share.

- ``tokenize_splits``: every split's text columns become token arrays once, cached in S3 by
  content hash, tokenizer identity and sequence length; the encode function is the pipeline's
  (single texts, sentence pairs, prompts).
- ``reuse_or_train``: a training run keyed by everything that determines its weights; a finished
  run with the same key is reused, a killed one resumes from its checkpoints, and the marker
  ``trained.json`` is written last so an incomplete run is never taken for a finished one.
- ``record_trained``: the ``TrainedModel`` of a finished run.
- ``fetch_staged_model`` / ``load_tokens``: read back what the stages above wrote.
- ``upload_plots``: an evaluation's PNGs under ``runs/PIPELINE/RUN/evaluation/``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from modelgate.artifacts import LoadedModel, load_model_dir
from modelgate.config import PipelineConfig
from modelgate.data.snapshot import DatasetSnapshot
from modelgate.models.backbones import load_tokenizer, tokenizer_id
from modelgate.models.lora import count_parameters
from modelgate.pipelines.results import FeatureSet, TrainedModel, content_key
from modelgate.preprocess import cached_encode, encode_pairs, encode_texts, texts_sha256, token_cache_key
from modelgate.storage import NotFound, ObjectStore
from modelgate.training.trainer import TrainResult

TRAINED_MARKER = "trained.json"
# One column of texts (single texts) or two (sentence pairs, or texts and their labels).
Columns = Sequence[Sequence[str]]
Encode = Callable[[Columns], dict[str, np.ndarray]]


# -- preprocess -------------------------------------------------------------------------------
def text_encoder(tokenizer, sequence_length: int) -> Encode:
    """Single texts (one column) or sentence pairs packed into one sequence (two columns)."""

    def encode(columns: Columns) -> dict[str, np.ndarray]:
        if len(columns) == 1:
            return encode_texts(tokenizer, list(columns[0]), sequence_length)
        if len(columns) == 2:
            return encode_pairs(tokenizer, list(columns[0]), list(columns[1]), sequence_length)
        raise ValueError(f"a split has one text column or two (a pair), not {len(columns)}")

    return encode


def tokenize_splits(
    store: ObjectStore,
    snapshot: DatasetSnapshot,
    splits: Mapping[str, Columns],
    encode: Encode,
    *,
    preset: str,
    tokenizer_id: str,
    sequence_length: int,
    labels: Sequence[str] = (),
) -> FeatureSet:
    """Token arrays for every split (``split name -> columns``), each computed once and cached.

    ``tokenizer_id`` must name everything that shapes the arrays besides the texts and the length
    (the vocabulary and its options; a prompt template too): it is part of the cache key.
    """
    token_keys, rows = {}, {}
    for split, columns in splits.items():
        digest = texts_sha256(*columns)
        cached_encode(store, digest, tokenizer_id, sequence_length, lambda columns=columns: encode(columns))
        token_keys[str(split)] = token_cache_key(digest, tokenizer_id, sequence_length)
        rows[str(split)] = len(columns[0])
    return FeatureSet(
        snapshot=snapshot, labels=list(labels), preset=preset, tokenizer_id=tokenizer_id,
        sequence_length=sequence_length, token_keys=token_keys, rows=rows,
    )


def tokenize_text_splits(
    cfg: PipelineConfig, store: ObjectStore, snapshot: DatasetSnapshot, splits: Mapping[str, Columns],
    labels: Sequence[str] = (),
) -> FeatureSet:
    """``tokenize_splits`` with the tokenizer of ``cfg.model.preset`` at ``cfg.model.sequence_length``."""
    tokenizer = load_tokenizer(cfg.model.preset)
    length = cfg.model.sequence_length
    return tokenize_splits(
        store, snapshot, splits, text_encoder(tokenizer, length), preset=cfg.model.preset,
        tokenizer_id=tokenizer_id(tokenizer), sequence_length=length, labels=labels,
    )


def load_tokens(store: ObjectStore, features: FeatureSet, split: str) -> dict[str, np.ndarray]:
    try:
        key = features.token_keys[split]
    except KeyError:
        raise KeyError(f"no token arrays for split {split!r}; have {sorted(features.token_keys)}") from None
    with np.load(io.BytesIO(store.get_bytes(key)), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


# -- train ------------------------------------------------------------------------------------
def train_key(cfg: PipelineConfig, features: FeatureSet) -> str:
    """Everything that determines the trained weights: data, tokens, model, training, seed."""
    return content_key([features.key, cfg.digest("model", "train", "seed")])


@dataclass(frozen=True)
class TrainingRun:
    """Where one training run keeps its state: ``runs/PIPELINE/train/KEY/``."""

    store: ObjectStore
    pipeline: str
    key: str

    @property
    def prefix(self) -> str:
        return f"runs/{self.pipeline}/train/{self.key}"

    @property
    def checkpoints(self) -> str:
        return f"{self.prefix}/checkpoints"

    @property
    def marker(self) -> str:
        return f"{self.prefix}/{TRAINED_MARKER}"

    def stage(self, directory: Path) -> str:
        """Upload the saved model directory; its s3 URI."""
        self.store.upload_dir(directory, f"{self.prefix}/model")
        return self.store.uri(f"{self.prefix}/model")

    def stage_logs(self, directory: Path) -> str:
        """Upload TensorBoard event files, when the run wrote any; their s3 URI, else ""."""
        if not directory.exists() or not any(p.is_file() for p in directory.rglob("*")):
            return ""
        self.store.upload_dir(directory, f"{self.prefix}/tensorboard")
        return self.store.uri(f"{self.prefix}/tensorboard/")


def reuse_or_train(
    cfg: PipelineConfig, store: ObjectStore, features: FeatureSet, fit: Callable[[TrainingRun], TrainedModel]
) -> TrainedModel:
    """``fit(run)`` unless a finished run with the same key exists (and ``train.resume`` is on).

    With ``train.resume`` off, the run's earlier state (checkpoints included) is deleted first.
    """
    run = TrainingRun(store, cfg.pipeline, train_key(cfg, features))
    if cfg.train.resume:
        try:
            return TrainedModel.from_dict({**store.get_json(run.marker), "reused": True})
        except NotFound:
            pass
    else:
        store.delete_prefix(f"{run.prefix}/")
    trained = fit(run)
    store.put_json(run.marker, trained.to_dict())  # last: an incomplete run is never reused
    return trained


def record_trained(
    run: TrainingRun, uri: str, result: TrainResult, model, tensorboard_uri: str = ""
) -> TrainedModel:
    """The ``TrainedModel`` of a finished run whose model is staged at ``uri``."""
    return TrainedModel(
        uri=uri,
        train_key=run.key,
        epochs_run=result.epochs_run,
        resumed_from_epoch=result.resumed_from_epoch,
        seconds=result.seconds,
        examples_per_second=result.examples_per_second,
        backend=result.backend,
        device=result.device,
        parameters=int(model.count_params()),
        trainable_parameters=count_parameters(model.trainable_weights),
        history={k: [float(x) for x in v] for k, v in (result.history or {}).items()},
        tensorboard_uri=tensorboard_uri,
    )


def fetch_staged_model(store: ObjectStore, trained: TrainedModel, directory: Path) -> LoadedModel:
    store.download_dir(store.key_of(trained.uri), directory)
    return load_model_dir(directory)


# -- evaluate ---------------------------------------------------------------------------------
def upload_plots(store: ObjectStore, pipeline: str, run_id: str, files: Mapping[str, Path]) -> dict[str, str]:
    """Upload an evaluation's PNGs; ``name -> s3 URI``."""
    uris = {}
    for name, path in files.items():
        key = f"runs/{pipeline}/{run_id}/evaluation/{Path(path).name}"
        store.upload_file(path, key)
        uris[name] = store.uri(key)
    return uris
