"""toxicity: the stages of the "agile" hate-speech classifier on ETHOS, as plain functions.

A pretrained model is tuned with LoRA (rank 4) on a few hundred labelled comments and scored by the
probability of each label: an encoder with a classification head, or a causal LM prompted with the
label list and read at the label tokens (the family follows from the preset; see
``toxicity_models``). F1 (positive class hateful) and ROC-AUC on the held-out test split decide.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_serializer

from modelgate.config import DataConfig, EvaluateConfig, ModelConfig, PipelineConfig, Section, TrainConfig
from modelgate.data.ethos import DATASET_NAME, load_ethos
from modelgate.data.snapshot import DatasetSnapshot, load_snapshot, snapshot_table
from modelgate.evaluation import plots
from modelgate.evaluation.bootstrap import evaluate_binary_classifier, metrics_to_dict
from modelgate.evaluation.result import Evaluation
from modelgate.models.backbones import load_tokenizer, tokenizer_id
from modelgate.models.causal_lm import PromptTemplate, encode_prompts
from modelgate.pipelines import classification as clf
from modelgate.pipelines import toxicity_contrastive as tc
from modelgate.pipelines import toxicity_models as tm
from modelgate.pipelines.base import Pipeline
from modelgate.pipelines.results import FeatureSet, TrainedModel
from modelgate.pipelines.stages import (
    Columns,
    Encode,
    TrainingRun,
    load_tokens,
    record_trained,
    reuse_or_evaluate,
    reuse_or_train,
    tokenize_splits,
    tokenize_text_splits,
    upload_plots,
)
from modelgate.storage import ObjectStore
from modelgate.summary import text_table
from modelgate.training import EpochLog, TrainResult, set_seed, train_classifier
from modelgate.training.causal_lm import fit_causal_lm
from modelgate.validations.ethos import EthosValidationConfig, validate_ethos
from modelgate.validations.runner import ValidationReport

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
    contrastive: tc.ContrastiveConfig = Field(default_factory=tc.ContrastiveConfig,
                                              description="encoders: SetFit's contrastive stage before the head")

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        # Off, the stage trains nothing: left out of the dump, it leaves the run keys (cfg.digest)
        # of runs trained before it existed as they were, so those runs are still reused.
        data = handler(self)
        return data if self.contrastive.pairs_per_comment else {k: v for k, v in data.items() if k != "contrastive"}


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


def family(cfg: ToxicityConfig) -> str:
    return tm.preset_family(cfg.model.preset) if cfg.model.family == "auto" else cfg.model.family


def prompt_template(cfg: ToxicityConfig) -> PromptTemplate:
    return PromptTemplate(tuple(cfg.prompt.labels), cfg.prompt.instructions, cfg.prompt.separator)


# -- ingest / validate -----------------------------------------------------------------------
def ingest(cfg: ToxicityConfig, store: ObjectStore) -> DatasetSnapshot:
    d = cfg.data
    frame, where = load_ethos(d.source, seed=d.split_seed, train_size=d.train_size,
                              threshold=d.hateful_threshold, store=store)
    described = f"{where} (seed {d.split_seed}, train {d.train_size}, hateful >= {d.hateful_threshold})"
    return snapshot_table(store, DATASET_NAME, frame, source=described)


def validate(cfg: ToxicityConfig, store: ObjectStore, snapshot: DatasetSnapshot, run_id: str) -> ValidationReport:
    return validate_ethos(store, snapshot, run_id, cfg.validation, frame=load_snapshot(store, snapshot))


# -- preprocess ------------------------------------------------------------------------------
def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in shuffled order: token arrays follow it, so "the first N" training rows are a prefix."""
    return frame.sort_values("order", kind="stable").reset_index(drop=True)


def _texts(frame: pd.DataFrame, split: str) -> list[str]:
    return frame.loc[frame["split"] == split, "text"].tolist()


def _labels(frame: pd.DataFrame, split: str) -> np.ndarray:
    return frame.loc[frame["split"] == split, "hateful"].astype(bool).to_numpy().astype(np.int32)


def prompt_encoder(tokenizer, template: PromptTemplate, sequence_length: int) -> Encode:
    """Prompts alone (one column: texts), or training texts, prompt + label + end token (two
    columns: texts and their class indices as strings)."""

    def encode(columns: Columns) -> dict[str, np.ndarray]:
        labels = [int(v) for v in columns[1]] if len(columns) == 2 else None
        return encode_prompts(tokenizer, template, list(columns[0]), sequence_length, labels)

    return encode


def _tokenize_prompts(cfg: ToxicityConfig, store: ObjectStore, snapshot: DatasetSnapshot, frame) -> FeatureSet:
    """Causal LM arrays: training texts (prompt + label + end) for train, prompts alone for test."""
    tokenizer = load_tokenizer(cfg.model.preset)
    template = prompt_template(cfg)
    # The template shapes the tokens as much as the vocabulary does: both name the cache entry.
    tok_id = hashlib.sha256(f"{tokenizer_id(tokenizer)}|prompt:{template.digest()}".encode()).hexdigest()
    splits = {
        "train": (_texts(frame, "train"), [str(v) for v in _labels(frame, "train")]),
        "test": (_texts(frame, "test"),),
    }
    length = cfg.model.sequence_length
    return tokenize_splits(
        store, snapshot, splits, prompt_encoder(tokenizer, template, length), preset=cfg.model.preset,
        tokenizer_id=tok_id, sequence_length=length, labels=CLASS_NAMES,
    )


def preprocess(cfg: ToxicityConfig, store: ObjectStore, validated: ValidationReport) -> FeatureSet:
    snapshot = validated.filtered_snapshot
    frame = _ordered(load_snapshot(store, snapshot))
    if family(cfg) == tm.CAUSAL_LM:
        return _tokenize_prompts(cfg, store, snapshot, frame)
    splits = {str(split): (part["text"].tolist(),) for split, part in frame.groupby("split", sort=False)}
    return tokenize_text_splits(cfg, store, snapshot, splits, labels=CLASS_NAMES)


# -- train -----------------------------------------------------------------------------------
def _training_data(cfg: ToxicityConfig, store: ObjectStore, features: FeatureSet):
    """(token arrays, labels) of the first ``train.examples`` training comments (all by default)."""
    arrays = load_tokens(store, features, "train")
    if cfg.train.examples is not None:
        arrays = {k: v[: cfg.train.examples] for k, v in arrays.items()}
    frame = _ordered(load_snapshot(store, features.snapshot))
    return arrays, _labels(frame, "train")[: len(arrays["token_ids"])]


def _fit(cfg: ToxicityConfig, kind: str, model, x: dict[str, np.ndarray], y: np.ndarray) -> TrainResult:
    settings, callbacks = clf.train_settings(cfg), [EpochLog(cfg.train.epochs)]
    if kind == tm.CAUSAL_LM:
        return fit_causal_lm(model, x, settings, callbacks, loss_on=cfg.prompt.loss_on)
    # No per-epoch checkpoints: Keras merges LoRA factors into the kernels when it saves
    # weights, so a checkpoint could not restore them. Runs are minutes; a rerun starts over.
    stage = tc.tune_encoder(cfg.train.contrastive, model, x, y, cfg.seed)  # None when off
    return tc.with_stage_history(train_classifier(model, x, y, cfg=settings, callbacks=callbacks), stage)


def _inference(cfg: ToxicityConfig, kind: str, model, train_examples: int) -> dict[str, Any]:
    """inference.json of the staged model: what serving needs to rebuild and score it."""
    m = cfg.model
    return {
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
        "train_examples": train_examples,
    }


def train(cfg: ToxicityConfig, store: ObjectStore, features: FeatureSet) -> TrainedModel:
    """Tune LoRA (+ head) on the training comments, stage the result; reuse an identical finished run."""

    def fit(run: TrainingRun) -> TrainedModel:
        x, y = _training_data(cfg, store, features)
        kind, m = family(cfg), cfg.model
        tc.check_family(cfg.train.contrastive, kind)
        set_seed(cfg.seed)  # the head's and the LoRA factors' initial values
        model = tm.build_model(kind, m.preset, m.lora_rank, len(CLASS_NAMES), m.dropout, m.hidden_dim)
        result = _fit(cfg, kind, model, x, y)
        with tempfile.TemporaryDirectory() as tmp:
            staged = tm.stage_model(Path(tmp) / "model", model, load_tokenizer(m.preset), CLASS_NAMES,
                                    _inference(cfg, kind, model, len(y)))
            uri = run.stage(staged)
        return record_trained(run, uri, result, model)

    return reuse_or_train(cfg, store, features, fit)


# -- evaluate --------------------------------------------------------------------------------
def test_probabilities(store: ObjectStore, trained: TrainedModel, features: FeatureSet) -> tuple[np.ndarray, np.ndarray]:
    """(true labels, hateful probabilities) on the test split, from the staged model."""
    frame = _ordered(load_snapshot(store, features.snapshot))
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "model"
        store.download_dir(store.key_of(trained.uri), directory)
        probs = tm.load_staged(directory).probabilities(load_tokens(store, features, "test"))
    return _labels(frame, "test"), probs[:, 1]


def _plots(y_true: np.ndarray, hateful: np.ndarray, predicted: np.ndarray, threshold: float,
           directory: Path) -> dict[str, Path]:
    return {
        "roc_curve": plots.plot_roc_curve(y_true, hateful, directory / "roc_curve.png", positive_name="hateful"),
        "confusion_matrix": plots.plot_confusion_matrix(
            y_true, predicted, directory / "confusion_matrix.png", class_names=CLASS_NAMES,
            normalize=False, title=f"Confusion matrix (hateful when p >= {threshold})"),
    }


def _details(cfg: ToxicityConfig, features: FeatureSet, y_true: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    counts = np.bincount(y_true * 2 + predicted, minlength=4)
    return {
        "threshold": cfg.evaluate.threshold,
        "test_rows": len(y_true),
        "test_hateful": int(y_true.sum()),
        "true_negatives": int(counts[0]), "false_positives": int(counts[1]),
        "false_negatives": int(counts[2]), "true_positives": int(counts[3]),
        "train_examples": int(cfg.train.examples or features.rows["train"]),
        "epochs": cfg.train.epochs,
    }


def evaluate(
    cfg: ToxicityConfig, store: ObjectStore, trained: TrainedModel, features: FeatureSet, run_id: str
) -> Evaluation:
    """``compute_evaluation``, read back from the evaluation cache when nothing it depends on changed."""
    return reuse_or_evaluate(cfg, store, trained, features, run_id,
                             lambda: compute_evaluation(cfg, store, trained, features, run_id))


def compute_evaluation(
    cfg: ToxicityConfig, store: ObjectStore, trained: TrainedModel, features: FeatureSet, run_id: str
) -> Evaluation:
    """F1, ROC-AUC and accuracy on the test split with bootstrap intervals; ROC and confusion plots."""
    y_true, hateful = test_probabilities(store, trained, features)
    threshold = cfg.evaluate.threshold
    metrics = evaluate_binary_classifier(
        y_true, hateful, threshold=threshold, n_resamples=cfg.evaluate.bootstrap_samples, seed=cfg.seed
    )
    predicted = (hateful >= threshold).astype(np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        uris = upload_plots(store, NAME, run_id, _plots(y_true, hateful, predicted, threshold, Path(tmp)))
    return Evaluation(
        metrics=metrics_to_dict(metrics),
        plots=uris,
        inference_updates={"threshold": threshold},
        details=_details(cfg, features, y_true, predicted),
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
        rows = [[p.text, p.label, f"{p.probability:.3f}"] for p in predictions]
        return text_table(["text", "label", "probability"], rows)


def load_predictor(directory: Path) -> ToxicityPredictor:
    """A fetched version's directory -> predictor; an adapter version reloads and verifies its base."""
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


PIPELINE = Pipeline(
    name=NAME,
    config_class=ToxicityConfig,
    validation_suite=DATASET_NAME,
    ingest=ingest,
    validate=validate,
    preprocess=preprocess,
    train=train,
    evaluate=evaluate,
    load_predictor=load_predictor,
    model_card=model_card,
    predict_example='"Women deserve respect" "go back to your country, animal"',
)
