"""toxicity: the stages of the "agile" hate-speech classifier on ETHOS, as plain functions.

A pretrained model is tuned with LoRA (rank 4) on a few hundred labelled comments and scored by the
probability of each label: an encoder with a classification head, or a causal LM prompted with the
label list and read at the label tokens (the family follows from the preset; see
``toxicity_models``). F1 (positive class hateful) and ROC-AUC on the held-out test split decide.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from modelgate.config import (
    DataConfig,
    EvaluateConfig,
    ModelConfig,
    PipelineConfig,
    Section,
    TrainConfig,
)
from modelgate.config import load_config as _load_config
from modelgate.evaluation.result import Evaluation
from modelgate.pipelines import classification as clf
from modelgate.pipelines import toxicity_models as tm
from modelgate.storage import NotFound, ObjectStore
from validations.ethos import EthosValidationConfig

NAME = "toxicity"
CLASS_NAMES = ["not_hateful", "hateful"]  # class 1 is the positive class of F1


class EthosDataConfig(DataConfig):
    source: str = Field("auto", description="auto | mirror | a local path | an s3:// or https:// URL of the CSV")
    variant: str = "binary"
    split_seed: int = Field(32, description="seed of the shuffle before the train/test cut")
    train_size: int = Field(800, ge=1, description="the first N shuffled comments train, the rest test")
    hateful_threshold: float = Field(0.5, gt=0.0, le=1.0, description="hateful = isHate >= this")


class ToxicityModelConfig(ModelConfig):
    head: Literal["softmax"] = Field("softmax", description="encoders: a softmax head (no SNGP here)")
    sequence_length: int = Field(64, ge=8, le=2048)
    family: Literal["auto", "encoder", "causal_lm"] = Field("auto", description="auto: from the preset")
    lora_rank: int = Field(4, ge=1)
    hidden_dim: int | None = Field(None, description="encoder head width; None = the encoder's")
    base_storage: Literal["auto", "adapter", "whole"] = Field(
        "auto", description="auto: adapter + base identity for a known preset, the whole model otherwise"
    )


class PromptConfig(Section):
    labels: list[str] = Field(default_factory=lambda: ["no", "yes"], min_length=2, max_length=2,
                              description="label words for not hateful, hateful (one token each)")
    instructions: str = "Classify the following text into one of the following classes"
    separator: str = "<separator>"
    loss_on: Literal["completion", "all"] = Field(
        "completion", description="tuning loss on the label + end tokens only, or on every token")


class ToxicityTrainConfig(TrainConfig):
    examples: int | None = Field(None, ge=1, description="train on the first N training comments only")


class ToxicityEvaluateConfig(EvaluateConfig):
    calibrate: bool = False
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="hateful when its probability >= this")


class LearningCurveConfig(Section):
    sizes: list[int] = Field(default_factory=lambda: [200, 400, 800], min_length=1)
    epochs: list[int] = Field(default_factory=lambda: [4, 6, 8, 10], min_length=1)
    parallel: int = Field(2, ge=1, description="grid points trained at the same time")


class ToxicityConfig(PipelineConfig):
    data: EthosDataConfig = EthosDataConfig()
    model: ToxicityModelConfig = ToxicityModelConfig()
    train: ToxicityTrainConfig = ToxicityTrainConfig()
    evaluate: ToxicityEvaluateConfig = ToxicityEvaluateConfig()
    prompt: PromptConfig = PromptConfig()
    learning_curve: LearningCurveConfig = LearningCurveConfig()
    validation: EthosValidationConfig = EthosValidationConfig()


def load_config(profile: str = "default", config_file=None, overrides=None) -> ToxicityConfig:
    return _load_config(NAME, ToxicityConfig, profile, config_file, overrides)


def family(cfg: ToxicityConfig) -> str:
    return tm.preset_family(cfg.model.preset) if cfg.model.family == "auto" else cfg.model.family


def prompt_template(cfg: ToxicityConfig):
    from modelgate.models.causal_lm import PromptTemplate

    return PromptTemplate(tuple(cfg.prompt.labels), cfg.prompt.instructions, cfg.prompt.separator)


# -- ingest / validate -----------------------------------------------------------------------
def ingest(cfg: ToxicityConfig, store: ObjectStore):
    from modelgate.data.ethos import DATASET_NAME, load_ethos
    from modelgate.data.snapshot import snapshot_table

    d = cfg.data
    frame, where = load_ethos(d.source, seed=d.split_seed, train_size=d.train_size,
                              threshold=d.hateful_threshold, store=store)
    described = f"{where} (seed {d.split_seed}, train {d.train_size}, hateful >= {d.hateful_threshold})"
    return snapshot_table(store, DATASET_NAME, frame, source=described)


def validate(cfg: ToxicityConfig, store: ObjectStore, snapshot: dict, run_id: str):
    from modelgate.data.snapshot import DatasetSnapshot, load_snapshot
    from validations.ethos import validate_ethos

    snap = DatasetSnapshot.from_dict(snapshot)
    return validate_ethos(store, snap, run_id, cfg.validation, frame=load_snapshot(store, snap))


# -- preprocess / train ----------------------------------------------------------------------
def _ordered(frame):
    """Rows in shuffled order: token arrays follow it, so "the first N" training rows are a prefix."""
    return frame.sort_values("order", kind="stable").reset_index(drop=True)


def _labels(frame, split: str) -> np.ndarray:
    return frame.loc[frame["split"] == split, "hateful"].astype(bool).to_numpy().astype(np.int32)


def _encode_prompt_splits(cfg: ToxicityConfig, store: ObjectStore, snapshot: dict, frame) -> clf.FeatureSet:
    """Causal LM arrays: training texts (prompt + label + end) for train, prompts alone for test."""
    import hashlib

    from modelgate.models.backbones import load_tokenizer, tokenizer_id
    from modelgate.models.causal_lm import encode_prompts
    from modelgate.preprocess import cached_encode, texts_sha256, token_cache_key

    tokenizer = load_tokenizer(cfg.model.preset)
    template = prompt_template(cfg)
    # The template shapes the tokens as much as the vocabulary does: both name the cache entry.
    tok_id = hashlib.sha256(f"{tokenizer_id(tokenizer)}|prompt:{template.digest()}".encode()).hexdigest()
    length = cfg.model.sequence_length
    token_keys, rows = {}, {}
    for split in ("train", "test"):
        part = frame.loc[frame["split"] == split]
        texts = part["text"].tolist()
        labels = _labels(frame, split) if split == "train" else None
        digest = texts_sha256(texts, [str(v) for v in labels] if labels is not None else ["<prompt>"])
        cached_encode(store, digest, tok_id, length,
                      lambda texts=texts, labels=labels: encode_prompts(tokenizer, template, texts, length, labels))
        token_keys[split] = token_cache_key(digest, tok_id, length)
        rows[split] = len(texts)
    return clf.FeatureSet(snapshot=snapshot, labels=CLASS_NAMES, preset=cfg.model.preset,
                          tokenizer_id=tok_id, sequence_length=length, token_keys=token_keys, rows=rows)


def preprocess(cfg: ToxicityConfig, store: ObjectStore, validated: dict) -> clf.FeatureSet:
    from modelgate.data.snapshot import load_snapshot

    snapshot = validated["filtered_snapshot"]
    frame = _ordered(load_snapshot(store, snapshot))
    if family(cfg) == tm.CAUSAL_LM:
        return _encode_prompt_splits(cfg, store, snapshot, frame)
    return clf.tokenize_splits(cfg, store, snapshot, frame, CLASS_NAMES, text_column="text")


def _first(arrays: dict[str, np.ndarray], count: int | None) -> dict[str, np.ndarray]:
    return arrays if count is None else {k: v[:count] for k, v in arrays.items()}


def train(cfg: ToxicityConfig, store: ObjectStore, features: dict) -> clf.TrainedModel:
    """Tune LoRA (+ head) on the training comments, stage the result; reuse an identical finished run."""
    from modelgate.data.snapshot import load_snapshot
    from modelgate.models.backbones import load_tokenizer
    from modelgate.models.lora import count_parameters
    from modelgate.training import TrainSettings
    from modelgate.training.trainer import describe_device, set_seed

    fs = clf.FeatureSet.from_dict(features)
    key = clf.train_key(cfg, fs)
    prefix = f"runs/{NAME}/train/{key}"
    marker = f"{prefix}/{clf.TRAINED_MARKER}"
    if cfg.train.resume:
        try:
            done = clf.TrainedModel.from_dict(store.get_json(marker))
            done.reused = True
            return done
        except NotFound:
            pass
    frame = _ordered(load_snapshot(store, fs.snapshot))
    kind = family(cfg)
    m, t = cfg.model, cfg.train
    x = _first(clf.load_tokens(store, fs, "train"), t.examples)
    y = _labels(frame, "train")[: len(x["token_ids"])]
    settings = TrainSettings(epochs=t.epochs, batch_size=t.batch_size, learning_rate=t.learning_rate,
                             weight_decay=t.weight_decay, warmup_fraction=t.warmup_fraction, seed=cfg.seed)
    set_seed(cfg.seed)  # the head's and the LoRA factors' initial values
    model = tm.build_model(kind, m.preset, m.lora_rank, len(CLASS_NAMES), m.dropout, m.hidden_dim)
    callbacks = [clf.EpochLog(t.epochs)]
    if kind == tm.CAUSAL_LM:
        from modelgate.models.causal_lm import fit_causal_lm

        result = fit_causal_lm(model, x, settings, callbacks, loss_on=cfg.prompt.loss_on)
        resumed = None
    else:
        from modelgate.training import train_classifier

        # No per-epoch checkpoints: Keras merges LoRA factors into the kernels when it saves
        # weights, so a checkpoint could not restore them. Runs are minutes; a rerun starts over.
        result = train_classifier(model, x, y, cfg=settings, callbacks=callbacks)
        resumed = result.resumed_from_epoch
    inference = {
        "pipeline": NAME,
        "task": "binary-text-classification",
        "family": kind,
        "preset": m.preset,
        "storage": tm.storage_for(m.preset, m.base_storage),
        "lora_rank": m.lora_rank,
        "sequence_length": m.sequence_length,
        "threshold": cfg.evaluate.threshold,
        "positive_label": CLASS_NAMES[1],
        "dropout": m.dropout,
        "hidden_dim": getattr(model, "hidden_dim", None) if kind == tm.ENCODER else None,
        "prompt": prompt_template(cfg).to_dict() if kind == tm.CAUSAL_LM else None,
        "train_examples": len(y),
    }
    with tempfile.TemporaryDirectory() as tmp:
        staged = tm.stage_model(Path(tmp) / "model", model, load_tokenizer(m.preset), CLASS_NAMES, inference)
        store.upload_dir(staged, f"{prefix}/model")
    device = describe_device()
    trained = clf.TrainedModel(
        uri=store.uri(f"{prefix}/model"),
        train_key=key,
        epochs_run=result.epochs_run,
        resumed_from_epoch=resumed,
        seconds=result.seconds,
        examples_per_second=result.examples_per_second,
        backend=device["backend"],
        device=device["device"],
        parameters=int(model.count_params()),
        trainable_parameters=count_parameters(model.trainable_weights),
        history={k: [float(v) for v in values] for k, values in (result.history or {}).items()},
    )
    store.put_json(marker, trained.to_dict())  # last: an incomplete run is never reused
    return trained


# -- evaluate --------------------------------------------------------------------------------


def test_probabilities(cfg: ToxicityConfig, store: ObjectStore, trained: dict, features: dict):
    """(true labels, hateful probabilities) on the test split, from the staged model."""
    from modelgate.data.snapshot import load_snapshot

    fs = clf.FeatureSet.from_dict(features)
    frame = _ordered(load_snapshot(store, fs.snapshot))
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "model"
        store.download_dir(store.key_of(clf.TrainedModel.from_dict(trained).uri), directory)
        model = tm.load_staged(directory)
        probs = model.probabilities(clf.load_tokens(store, fs, "test"))
    return _labels(frame, "test"), probs[:, 1]


def evaluate(cfg: ToxicityConfig, store: ObjectStore, trained: dict, features: dict, run_id: str) -> Evaluation:
    from modelgate.evaluation import plots
    from modelgate.evaluation.bootstrap import (
        evaluate_binary_classifier,
        metrics_to_dict,
    )

    y_true, hateful = test_probabilities(cfg, store, trained, features)
    threshold = cfg.evaluate.threshold
    metrics = evaluate_binary_classifier(
        y_true, hateful, threshold=threshold, n_resamples=cfg.evaluate.bootstrap_samples, seed=cfg.seed
    )
    predicted = (hateful >= threshold).astype(np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            "roc_curve": plots.plot_roc_curve(y_true, hateful, Path(tmp) / "roc_curve.png",
                                              positive_name="hateful"),
            "confusion_matrix": plots.plot_confusion_matrix(
                y_true, predicted, Path(tmp) / "confusion_matrix.png", class_names=CLASS_NAMES,
                normalize=False, title=f"Confusion matrix (hateful when p >= {threshold})"),
        }
        uris = {}
        for name, path in files.items():
            key = f"runs/{NAME}/{run_id}/evaluation/{Path(path).name}"
            store.upload_file(path, key)
            uris[name] = store.uri(key)
    counts = np.bincount(y_true * 2 + predicted, minlength=4)
    return Evaluation(
        metrics=metrics_to_dict(metrics),
        plots=uris,
        inference_updates={"threshold": threshold},
        details={
            "threshold": threshold,
            "test_rows": len(y_true),
            "test_hateful": int(y_true.sum()),
            "true_negatives": int(counts[0]), "false_positives": int(counts[1]),
            "false_negatives": int(counts[2]), "true_positives": int(counts[3]),
            "train_examples": int(cfg.train.examples or clf.FeatureSet.from_dict(features).rows["train"]),
            "epochs": cfg.train.epochs,
        },
    )


# -- serve -----------------------------------------------------------------------------------
@dataclass
class ToxicityPrediction:
    text: str
    label: str
    probability: float  # of the predicted label
    hateful_probability: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ToxicityPredictor:
    """Texts in, (label, its probability) out."""

    def __init__(self, model: tm.ToxicityModel):
        self.model = model
        self.threshold = float(model.inference.get("threshold", 0.5))

    def predict(self, texts: list[str]) -> list[ToxicityPrediction]:
        hateful = self.model.predict_texts(list(texts))[:, 1]
        out = []
        for text, p in zip(texts, hateful):
            is_hateful = bool(p >= self.threshold)
            out.append(ToxicityPrediction(text, CLASS_NAMES[int(is_hateful)],
                                          float(p if is_hateful else 1.0 - p), float(p)))
        return out

    @staticmethod
    def format(predictions: list[ToxicityPrediction]) -> str:
        from modelgate.summary import text_table

        rows = [[p.text, p.label, f"{p.probability:.3f}"] for p in predictions]
        return text_table(["text", "label", "probability"], rows)


def predictor(loaded: tm.ToxicityModel) -> ToxicityPredictor:
    return ToxicityPredictor(loaded)


def load_predictor(directory, registry=None) -> ToxicityPredictor:
    """A registered version's directory -> predictor; an adapter version reloads and verifies its base."""
    return ToxicityPredictor(tm.load_staged(Path(directory)))


def model_card(cfg: ToxicityConfig) -> dict[str, Any]:
    kind = family(cfg)
    how = (f"causal LM `{cfg.model.preset}` prompted with the labels {cfg.prompt.labels} and scored by "
           "the softmax over the label tokens" if kind == tm.CAUSAL_LM else
           f"encoder `{cfg.model.preset}` with a classification head")
    return {
        "description": (
            f"Hate-speech classifier (hateful / not hateful) for English comments: {how}, tuned with "
            f"LoRA rank {cfg.model.lora_rank} on ETHOS (an \"agile classifier\")."
        ),
        "intended_use": (
            "Flagging hateful comments for review in moderation workflows; probabilities are meant to "
            "be thresholded by a person who knows the cost of each kind of error."
        ),
        "training_data": {
            "dataset": f"ETHOS binary, the first {cfg.data.train_size} comments after a shuffle with seed "
                       f"{cfg.data.split_seed}" + (f" (first {cfg.train.examples} used)" if cfg.train.examples else ""),
            "labels": f"hateful when isHate >= {cfg.data.hateful_threshold}",
            "source": cfg.data.source,
        },
        "evaluation_data": {"test": "the remaining ETHOS comments (198 with the defaults)"},
        "limitations": [
            "English only; ETHOS comments come from YouTube and Reddit: other platforms and dialects may differ.",
            "A few hundred training examples: F1 and ROC-AUC intervals are wide (see the bootstrap intervals).",
            f"Inputs are truncated to {cfg.model.sequence_length} tokens.",
            "Hate-speech labels reflect the ETHOS annotators' judgement; the model inherits their biases.",
        ],
    }
