"""One implementation of each step the four pipelines' stages share.

- ``tokenize_splits``: every split's text columns become token arrays once, cached in S3 by
  content hash, tokenizer identity and sequence length; the encode function is the pipeline's
  (single texts, sentence pairs, prompts).
- ``reuse_or_train``: a training run keyed by everything that determines its weights; a finished
  run with the same key is reused, a killed one resumes from its checkpoints, and the marker
  ``trained.json`` is written last so an incomplete run is never taken for a finished one.
- ``record_trained``: the ``TrainedModel`` of a finished run.
- ``fetch_staged_model`` / ``load_tokens``: read back what the stages above wrote.
- ``staged_model_sha256``: the content identity of a staged model (its files' sha256s).
- ``reuse_or_evaluate``: an evaluation keyed by everything that determines it (the trained
  model's key and content, the evaluated data, the ``evaluate`` config, the code); an entry with
  the same key is read back (``modelgate.evaluation.cache``) instead of evaluating again.
- ``upload_plots``: an evaluation's PNGs under ``runs/PIPELINE/RUN/evaluation/``.
"""

from __future__ import annotations

import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from modelgate.artifacts import LoadedModel, load_model_dir
from modelgate.config import PipelineConfig
from modelgate.data.snapshot import DatasetSnapshot
from modelgate.evaluation.cache import EvaluationCache, code_version
from modelgate.evaluation.result import Evaluation
from modelgate.models.backbones import load_tokenizer, tokenizer_id
from modelgate.models.lora import count_parameters
from modelgate.pipelines.results import FeatureSet, TrainedModel, content_key
from modelgate.preprocess import cached_encode, encode_pairs, encode_texts, texts_sha256, token_cache_key
from modelgate.storage import NotFound, ObjectStore, sha256_file
from modelgate.training.trainer import TrainResult

TRAINED_MARKER = "trained.json"
# Beside a staged model directory (``.../model``): its files' sha256s and one digest of them all.
MODEL_DIGEST_SUFFIX = ".sha256.json"
EVALUATION_CACHE_FIELD = "evaluation_cache"  # in Evaluation.details: key, reused, computed_in_run
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
        """Upload the saved model directory, then its digest record; its s3 URI."""
        hashes = self.store.upload_dir(directory, f"{self.prefix}/model")
        self.store.put_json(f"{self.prefix}/model{MODEL_DIGEST_SUFFIX}", _digest_record(hashes))
        return self.store.uri(f"{self.prefix}/model")

    def stage_logs(self, directory: Path) -> str:
        """Upload TensorBoard event files, when the run wrote any; their s3 URI, else ""."""
        if not directory.exists() or not any(p.is_file() for p in directory.rglob("*")):
            return ""
        self.store.upload_dir(directory, f"{self.prefix}/tensorboard")
        return self.store.uri(f"{self.prefix}/tensorboard/")


def finished_training(cfg: PipelineConfig, store: ObjectStore, features: FeatureSet) -> TrainedModel | None:
    """The finished run with these inputs (reused: True), if one exists and ``train.resume`` is on;
    cheap enough to ask before starting a training process at all."""
    if not cfg.train.resume:
        return None
    marker = TrainingRun(store, cfg.pipeline, train_key(cfg, features)).marker
    try:
        return TrainedModel.from_dict({**store.get_json(marker), "reused": True})
    except NotFound:
        return None


def reuse_or_train(
    cfg: PipelineConfig, store: ObjectStore, features: FeatureSet, fit: Callable[[TrainingRun], TrainedModel]
) -> TrainedModel:
    """``fit(run)`` unless a finished run with the same key exists (and ``train.resume`` is on).

    With ``train.resume`` off, the run's earlier state (checkpoints included) is deleted first.
    """
    run = TrainingRun(store, cfg.pipeline, train_key(cfg, features))
    if cfg.train.resume:
        finished = finished_training(cfg, store, features)
        if finished is not None:
            return finished
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


def _digest_record(hashes: Mapping[str, str]) -> dict[str, Any]:
    return {"files": dict(sorted(hashes.items())), "sha256": content_key(dict(sorted(hashes.items())))}


def staged_model_sha256(store: ObjectStore, trained: TrainedModel) -> str:
    """One sha256 over the staged model's files, from the record ``TrainingRun.stage`` writes
    beside them; a model staged before that record existed is hashed once and the record added."""
    prefix = store.key_of(trained.uri).rstrip("/")
    record_key = prefix + MODEL_DIGEST_SUFFIX
    try:
        digest = json.loads(store.get_bytes(record_key)).get("sha256")
        if isinstance(digest, str) and digest:
            return digest
    except (NotFound, ValueError, AttributeError):
        pass
    with tempfile.TemporaryDirectory() as tmp:
        hashes = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in store.download_dir(prefix, tmp)}
    if not hashes:
        raise NotFound(f"no staged model under {store.uri(prefix)}/")
    record = _digest_record(hashes)
    store.put_json(record_key, record)
    return record["sha256"]


# -- evaluate ---------------------------------------------------------------------------------
def upload_plots(store: ObjectStore, pipeline: str, run_id: str, files: Mapping[str, Path]) -> dict[str, str]:
    """Upload an evaluation's PNGs; ``name -> s3 URI``."""
    uris = {}
    for name, path in files.items():
        key = f"runs/{pipeline}/{run_id}/evaluation/{Path(path).name}"
        store.upload_file(path, key)
        uris[name] = store.uri(key)
    return uris


def evaluation_key_parts(
    cfg: PipelineConfig, store: ObjectStore, trained: TrainedModel, features: FeatureSet,
    data: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """What determines an evaluation. ``data``: sha256s of datasets the evaluate stage reads
    besides the features' snapshot (job-similarity's STS-B test), by name."""
    return {
        "pipeline": cfg.pipeline,
        "train_key": trained.train_key,
        "model_sha256": staged_model_sha256(store, trained),
        "data": {"snapshot_sha256": features.snapshot.sha256, "features": features.key,
                 "tokens": dict(sorted(features.token_keys.items())), **dict(data or {})},
        "evaluate_config": cfg.digest("evaluate", "seed"),
        "code": code_version(),
    }


def reuse_or_evaluate(
    cfg: PipelineConfig, store: ObjectStore, trained: TrainedModel, features: FeatureSet, run_id: str,
    evaluate: Callable[[], Evaluation], data: Mapping[str, str] | None = None,
) -> Evaluation:
    """``evaluate()`` unless a verified cache entry with the same key exists; either way the
    Evaluation's details say so under ``evaluation_cache`` (key, reused, computed_in_run)."""
    parts = evaluation_key_parts(cfg, store, trained, features, data)
    cache = EvaluationCache(store, content_key(parts))
    found, etag = cache.load()
    if found is not None:
        print(f"evaluation reused: {store.uri(cache.prefix)}/ (computed in run {found.computed_in_run})")
        return _with_cache_details(found.evaluation, cache.key, True, found.computed_in_run)
    computed = _with_cache_details(evaluate(), cache.key, False, run_id)
    return cache.save(computed, run_id, parts, replace_etag=etag)


def _with_cache_details(evaluation: Evaluation, key: str, reused: bool, run_id: str) -> Evaluation:
    record = {"key": key, "reused": reused, "computed_in_run": run_id}
    return evaluation.model_copy(update={"details": {**evaluation.details, EVALUATION_CACHE_FIELD: record}})


def evaluation_cache_record(evaluation: Evaluation) -> dict[str, Any]:
    """The ``evaluation_cache`` record of an Evaluation made by ``reuse_or_evaluate`` ({} else)."""
    record = evaluation.details.get(EVALUATION_CACHE_FIELD)
    return record if isinstance(record, dict) else {}
