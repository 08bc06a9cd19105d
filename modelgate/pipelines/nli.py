"""nli: the stages of SNLI sentence-pair classification (entailment / neutral / contradiction).

The recipe: a pretrained encoder with a classification head reads each pair packed into one
sequence, ``[CLS] hypothesis [SEP] premise [SEP]``; pairs without a gold label (-1) are filtered
out; AdamW with a triangular schedule (20% linear warmup, then linear decay to zero), 3 epochs,
learning rate 1e-4, batch 16. Test accuracy is the headline metric; the temperature a predictor
uses is fitted on the validation split, never on test.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from modelgate.artifacts import load_model_dir
from modelgate.config import DataConfig
from modelgate.data.snapshot import DatasetSnapshot, load_snapshot, snapshot_table
from modelgate.data.snli import DATASET_NAME, LABEL_NAMES, apply_offline_protocol, load_snli, subsample_split
from modelgate.embedding_cache import Embedder
from modelgate.evaluation import plots
from modelgate.evaluation.bootstrap import evaluate_multiclass_classifier, evaluate_per_class, metrics_to_dict
from modelgate.evaluation.calibration import fit_temperature, scaled_probabilities
from modelgate.evaluation.metrics import accuracy
from modelgate.evaluation.result import Evaluation
from modelgate.pipelines import classification as clf
from modelgate.pipelines.base import Pipeline
from modelgate.pipelines.results import FeatureSet, TrainedModel
from modelgate.pipelines.stages import (
    fetch_staged_model,
    load_tokens,
    reuse_or_evaluate,
    tokenize_text_splits,
    upload_plots,
)
from modelgate.preprocess import encode_pairs
from modelgate.storage import ObjectStore
from modelgate.summary import text_table
from modelgate.validations.runner import ValidationReport
from modelgate.validations.snli import SnliValidationConfig, validate_snli

NAME = "nli"
PREDICT_EXAMPLE = '--pair "A man is playing a guitar." "A man is making music."'
DATASET = DATASET_NAME
# The recipe's packing order: the hypothesis is the first segment, the premise the second.
PAIR_ORDER = ("hypothesis", "premise")


class SnliDataConfig(DataConfig):
    train_fraction: float = Field(
        0.2, gt=0.0, le=1.0, description="first fraction of SNLI train used, as the recipe's train[:20%]"
    )
    offline_validation_fraction: float = Field(
        0.1, gt=0.0, lt=1.0,
        description="without a train split (the offline mirror): share of validation premises held "
        "out for validation; the rest trains",
    )
    max_train_rows: int | None = Field(
        None, ge=1, description="a seeded subsample of the train split, for quick runs (null = all)"
    )


class NliConfig(clf.ClassifierConfig):
    data: SnliDataConfig = SnliDataConfig()
    validation: SnliValidationConfig = SnliValidationConfig()


# -- ingest / validate -----------------------------------------------------------------------
def training_protocol(frame) -> str:
    return "published" if (frame["split"] == "train").any() else "offline"


def ingest(cfg: NliConfig, store: ObjectStore) -> DatasetSnapshot:
    """SNLI as one snapshot whose train/validation/test splits are exactly what the model sees."""
    d = cfg.data
    frame = load_snli(d.source, d.train_fraction, store=store)
    protocol = training_protocol(frame)
    if protocol == "published":
        described = f"{d.source}: train[:{d.train_fraction:.0%}], validation, test"
    else:
        frame = apply_offline_protocol(frame, d.offline_validation_fraction, cfg.seed)
        described = (
            f"{d.source}: offline protocol (no train split): validation premises split by seed "
            f"{cfg.seed} into train and validation ({d.offline_validation_fraction:.0%} held out); test"
        )
    if d.max_train_rows is not None:
        frame = subsample_split(frame, "train", d.max_train_rows, cfg.seed)
        described += f"; train subsampled to at most {d.max_train_rows} rows"
    return snapshot_table(store, DATASET, frame, source=described, extra={"protocol": protocol})


def validate(cfg: NliConfig, store: ObjectStore, snapshot: DatasetSnapshot, run_id: str) -> ValidationReport:
    return validate_snli(store, snapshot, run_id, cfg.validation, frame=load_snapshot(store, snapshot))


# -- preprocess / train ----------------------------------------------------------------------
def preprocess(cfg: NliConfig, store: ObjectStore, validated: ValidationReport) -> FeatureSet:
    """Every split's pairs become token arrays once, packed in the recipe's order."""
    snapshot = validated.filtered_snapshot
    frame = load_snapshot(store, snapshot)
    splits = {
        str(split): tuple(part[column].tolist() for column in PAIR_ORDER)
        for split, part in frame.groupby("split", sort=False)
    }
    return tokenize_text_splits(cfg, store, snapshot, splits, labels=LABEL_NAMES)


def _split_xy(store: ObjectStore, features: FeatureSet, frame, split: str):
    x = load_tokens(store, features, split)
    # Label ids are SNLI's own integers: LABEL_NAMES is in that order.
    y = frame.loc[frame["split"] == split, "label"].to_numpy(dtype=np.int32)
    return x, y


def train(cfg: NliConfig, store: ObjectStore, features: FeatureSet) -> TrainedModel:
    frame = load_snapshot(store, features.snapshot)
    inference = {
        "pipeline": NAME,
        "task": "sentence-pair classification",
        "preset": cfg.model.preset,
        "head": cfg.model.head,
        "sequence_length": cfg.model.sequence_length,
        "pair_order": list(PAIR_ORDER),
    }
    return clf.train_and_stage(
        cfg, store, features,
        train=_split_xy(store, features, frame, "train"),
        validation=_split_xy(store, features, frame, "validation"),
        inference=inference,
    )


# -- evaluate --------------------------------------------------------------------------------
def _temperature(cfg: NliConfig, model, val_logits, val_variance, y_val, factor: float) -> float:
    """Fitted on validation only (or the model's own); it never changes the predicted label."""
    if cfg.evaluate.calibrate:
        return fit_temperature(val_logits, val_variance, y_val, factor)
    return model.temperature


def _metrics(cfg: NliConfig, probs_test: np.ndarray, y_test: np.ndarray) -> dict:
    """Accuracy, macro F1, ECE and per-class P/R/F1, each with its bootstrap interval."""
    options = {"n_resamples": cfg.evaluate.bootstrap_samples, "seed": cfg.seed}
    return {
        **evaluate_multiclass_classifier(probs_test, y_test, n_bins=cfg.evaluate.ece_bins, **options),
        **evaluate_per_class(y_test, probs_test.argmax(axis=1), LABEL_NAMES, **options),
    }


def _plots(cfg: NliConfig, probs_test: np.ndarray, y_test: np.ndarray, directory: Path) -> dict[str, Path]:
    directory.mkdir()
    return {
        "confusion_matrix": plots.plot_confusion_matrix(
            y_test, probs_test.argmax(axis=1), directory / "confusion_matrix.png", class_names=LABEL_NAMES,
            title="SNLI test: confusion matrix",
        ),
        "reliability_diagram": plots.plot_reliability_diagram(
            probs_test, y_test, directory / "reliability_diagram.png", n_bins=cfg.evaluate.ece_bins
        ),
    }


def _details(features: FeatureSet, y_test, y_val, val_logits, temperature: float) -> dict[str, Any]:
    return {
        "test_rows": int(len(y_test)),
        "validation_rows": int(len(y_val)),
        "train_rows": int(features.rows.get("train", 0)),
        "validation_accuracy": float(accuracy(y_val, val_logits.argmax(axis=1))),
        "temperature": float(temperature),
        "test_label_counts": {name: int((y_test == i).sum()) for i, name in enumerate(LABEL_NAMES)},
    }


def evaluate(
    cfg: NliConfig, store: ObjectStore, trained: TrainedModel, features: FeatureSet, run_id: str
) -> Evaluation:
    """``compute_evaluation``, read back from the evaluation cache when nothing it depends on changed."""
    return reuse_or_evaluate(cfg, store, trained, features, run_id,
                             lambda: compute_evaluation(cfg, store, trained, features, run_id))


def compute_evaluation(
    cfg: NliConfig, store: ObjectStore, trained: TrainedModel, features: FeatureSet, run_id: str
) -> Evaluation:
    """Test metrics with intervals; the temperature comes from the validation split only."""
    frame = load_snapshot(store, features.snapshot)
    with tempfile.TemporaryDirectory() as tmp:
        model = fetch_staged_model(store, trained, Path(tmp) / "model").model
        factor = model.mean_field_factor if model.head == "sngp" else 0.0
        embed = Embedder(model, store)

        def raw(split: str):
            tokens = load_tokens(store, features, split)
            if model.freeze_backbone:  # the head on the cached embeddings training also read
                return model.logits_and_variance_from_embeddings(embed(tokens))
            return model.predict_logits_and_variance(tokens, batch_size=128)

        val_logits, val_variance = raw("validation")
        _, y_val = _split_xy(store, features, frame, "validation")
        temperature = _temperature(cfg, model, val_logits, val_variance, y_val, factor)
        probs_test = scaled_probabilities(*raw("test"), factor, temperature)
        if model.freeze_backbone:
            print(embed.summary("evaluation"))
        _, y_test = _split_xy(store, features, frame, "test")
        metrics = _metrics(cfg, probs_test, y_test)
        uris = upload_plots(store, NAME, run_id, _plots(cfg, probs_test, y_test, Path(tmp) / "plots"))
    return Evaluation(
        metrics=metrics_to_dict(metrics),
        plots=uris,
        model_updates={"temperature": temperature, "mean_field_factor": factor},
        details=_details(features, y_test, y_val, val_logits, temperature),
    )


# -- serve -----------------------------------------------------------------------------------
@dataclass
class PairPrediction:
    premise: str
    hypothesis: str
    label: str
    confidence: float
    probabilities: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class NliPredictor:
    """(premise, hypothesis) pairs in, label and class probabilities out, from a loaded model."""

    def __init__(self, loaded):
        self.loaded = loaded
        self.sequence_length = int(loaded.inference["sequence_length"])
        self.pair_order = tuple(loaded.inference.get("pair_order", PAIR_ORDER))

    def predict_pairs(self, pairs: list[tuple[str, str]]) -> list[PairPrediction]:
        rows = [{"premise": premise, "hypothesis": hypothesis} for premise, hypothesis in pairs]
        first, second = ([row[part] for row in rows] for part in self.pair_order)
        arrays = encode_pairs(self.loaded.tokenizer, first, second, self.sequence_length)
        # The registered model applies the temperature fitted at evaluation itself.
        probs = clf.softmax(clf.predict_arrays(self.loaded.model, arrays))
        labels = self.loaded.labels
        return [
            PairPrediction(
                premise=row["premise"],
                hypothesis=row["hypothesis"],
                label=labels[int(p.argmax())],
                confidence=float(p.max()),
                probabilities={name: float(value) for name, value in zip(labels, p)},
            )
            for row, p in zip(rows, probs)
        ]

    def format(self, predictions: list[PairPrediction]) -> str:
        names = list(self.loaded.labels)
        rows = [
            [p.premise, p.hypothesis, p.label, *[f"{p.probabilities[n]:.3f}" for n in names]]
            for p in predictions
        ]
        return text_table(["premise", "hypothesis", "label", *[f"p({n})" for n in names]], rows)


def load_predictor(directory: Path) -> NliPredictor:
    return NliPredictor(load_model_dir(directory))


def model_card(cfg: NliConfig) -> dict[str, Any]:
    return {
        "description": (
            f"Natural language inference on SNLI: encoder `{cfg.model.preset}` with a "
            f"{cfg.model.head} head reads `[CLS] hypothesis [SEP] premise [SEP]` and predicts "
            "entailment, neutral or contradiction."
        ),
        "intended_use": (
            "Deciding whether a hypothesis follows from, is neutral to, or contradicts a premise, "
            "for short English descriptive sentences like SNLI's image captions. Pairs are given "
            f"premise first: `modelgate predict {NAME}:VERSION --pair PREMISE HYPOTHESIS`."
        ),
        "training_data": {
            "dataset": "SNLI 1.0, pairs with a gold label (label -1 filtered and quarantined)",
            "source": cfg.data.source,
            "train split": (
                f"train[:{cfg.data.train_fraction:.0%}] when the source has SNLI train; otherwise "
                f"the offline protocol: validation split by premise, "
                f"{1 - cfg.data.offline_validation_fraction:.0%} train / "
                f"{cfg.data.offline_validation_fraction:.0%} validation (seed {cfg.seed})"
            ),
        },
        "evaluation_data": {"test": "SNLI test, pairs with a gold label (9824)"},
        "limitations": [
            "English only; trained on image-caption premises, so other genres (news, dialogue, "
            "long documents) are out of distribution.",
            "SNLI hypotheses carry annotation artefacts (negation words suggest contradiction); "
            "the model may rely on them.",
            f"Each pair is truncated to {cfg.model.sequence_length} tokens (round robin).",
        ],
    }


PIPELINE = Pipeline(
    name=NAME,
    config_class=NliConfig,
    validation_suite=DATASET,
    ingest=ingest,
    validate=validate,
    preprocess=preprocess,
    train=train,
    evaluate=evaluate,
    load_predictor=load_predictor,
    model_card=model_card,
    predict_example=PREDICT_EXAMPLE,
)
