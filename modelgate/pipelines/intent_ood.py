"""intent-ood: the stages of out-of-scope intent detection on CLINC150, as plain functions.

The model learns the 150 in-scope intents only (train split); out-of-scope queries are detected at
test time by uncertainty: score = 1 - max mean-field probability. The decision threshold a predictor
uses is tuned on the validation splits, never on test.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve

from modelgate.artifacts import load_model_dir
from modelgate.config import PipelineConfig
from modelgate.data.clinc import load_clinc, load_known_intents
from modelgate.data.snapshot import DatasetSnapshot, load_snapshot, snapshot_table
from modelgate.evaluation import plots
from modelgate.evaluation.bootstrap import evaluate_ood_classifier, metrics_to_dict
from modelgate.evaluation.calibration import Calibration, scaled_probabilities, tune_calibration
from modelgate.evaluation.metrics import ood_labels_and_scores
from modelgate.evaluation.result import Evaluation
from modelgate.pipelines import classification as clf
from modelgate.pipelines.base import Pipeline
from modelgate.pipelines.results import FeatureSet, TrainedModel
from modelgate.pipelines.stages import fetch_staged_model, load_tokens, tokenize_text_splits, upload_plots
from modelgate.preprocess import encode_texts
from modelgate.storage import ObjectStore
from modelgate.summary import text_table
from validations.clinc import ClincValidationConfig, validate_clinc
from validations.runner import ValidationReport

NAME = "intent-ood"
DATASET = "clinc_oos"


class IntentOodConfig(PipelineConfig):
    validation: ClincValidationConfig = ClincValidationConfig()


# -- ingest / validate -----------------------------------------------------------------------
def ingest(cfg: IntentOodConfig, store: ObjectStore) -> DatasetSnapshot:
    frame = load_clinc(cfg.data.source, cfg.data.variant, store=store)
    return snapshot_table(
        store, DATASET, frame, source=f"{cfg.data.source} (variant {cfg.data.variant})"
    )


def validate(cfg: IntentOodConfig, store: ObjectStore, snapshot: DatasetSnapshot, run_id: str) -> ValidationReport:
    frame = load_snapshot(store, snapshot)
    intents = load_known_intents(cfg.data.source, frame, store=store)
    return validate_clinc(store, snapshot, intents, run_id, cfg.validation, frame=frame)


# -- preprocess / train ----------------------------------------------------------------------
def preprocess(cfg: IntentOodConfig, store: ObjectStore, validated: ValidationReport) -> FeatureSet:
    snapshot = validated.filtered_snapshot
    frame = load_snapshot(store, snapshot)
    labels = sorted(set(frame.loc[frame["split"] == "train", "intent"]))
    splits = {str(split): (part["text"].tolist(),) for split, part in frame.groupby("split", sort=False)}
    return tokenize_text_splits(cfg, store, snapshot, splits, labels=labels)


def _split_xy(store: ObjectStore, features: FeatureSet, frame, split: str):
    x = load_tokens(store, features, split)
    y = clf.label_ids(frame.loc[frame["split"] == split, "intent"].tolist(), features.labels)
    return x, y


def train(cfg: IntentOodConfig, store: ObjectStore, features: FeatureSet) -> TrainedModel:
    frame = load_snapshot(store, features.snapshot)
    inference = {
        "pipeline": NAME,
        "task": "intent-ood",
        "preset": cfg.model.preset,
        "head": cfg.model.head,
        "sequence_length": cfg.model.sequence_length,
    }
    return clf.train_and_stage(
        cfg,
        store,
        features,
        train=_split_xy(store, features, frame, "train"),
        validation=_split_xy(store, features, frame, "validation"),
        inference=inference,
    )


# -- evaluate --------------------------------------------------------------------------------
def ood_threshold_from_validation(conf_in: np.ndarray, conf_ood: np.ndarray) -> float:
    """The uncertainty threshold (1 - confidence) that maximises OOS F1 on the validation splits."""
    scores = np.concatenate([1.0 - conf_in, 1.0 - conf_ood])
    is_ood = np.concatenate([np.zeros(len(conf_in)), np.ones(len(conf_ood))])
    precision, recall, thresholds = precision_recall_curve(is_ood, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def _calibrate(cfg: IntentOodConfig, model, val, oos_val, y_val) -> Calibration:
    """Mean-field factor and temperature, from the validation splits only (or the model's own)."""
    if cfg.evaluate.calibrate:
        return tune_calibration(*val, y_val, *oos_val, cfg.evaluate.mean_field_grid, cfg.evaluate.ece_bins)
    factor = model.mean_field_factor if model.head == "sngp" else 0.0
    return Calibration(factor, model.temperature)


def _plots(cfg: IntentOodConfig, probs_test, y_test, probs_oos, directory: Path) -> dict[str, Path]:
    is_ood, scores = ood_labels_and_scores(probs_test, probs_oos)
    return {
        "reliability_diagram": plots.plot_reliability_diagram(
            probs_test, y_test, directory / "reliability_diagram.png", n_bins=cfg.evaluate.ece_bins
        ),
        "ood_precision_recall": plots.plot_pr_curve(is_ood, scores, directory / "ood_precision_recall.png"),
        "ood_roc": plots.plot_roc_curve(is_ood, scores, directory / "ood_roc.png"),
    }


def evaluate(
    cfg: IntentOodConfig, store: ObjectStore, trained: TrainedModel, features: FeatureSet, run_id: str
) -> Evaluation:
    """Test metrics with intervals; calibration and the OOD threshold come from validation only."""
    frame = load_snapshot(store, features.snapshot)
    with tempfile.TemporaryDirectory() as tmp:
        model = fetch_staged_model(store, trained, Path(tmp) / "model").model

        def raw(split: str):
            """(logits before any adjustment, GP predictive variance; zeros for softmax)."""
            return model.predict_logits_and_variance(load_tokens(store, features, split), batch_size=128)

        val, oos_val = raw("validation"), raw("oos_validation")
        _, y_val = _split_xy(store, features, frame, "validation")
        calibration = _calibrate(cfg, model, val, oos_val, y_val)

        def probs(outputs) -> np.ndarray:
            return scaled_probabilities(*outputs, calibration.mean_field_factor, calibration.temperature)

        threshold = ood_threshold_from_validation(probs(val).max(axis=1), probs(oos_val).max(axis=1))
        probs_test, probs_oos = probs(raw("test")), probs(raw("oos_test"))
        _, y_test = _split_xy(store, features, frame, "test")
        metrics = evaluate_ood_classifier(
            probs_test, y_test, probs_oos,
            n_resamples=cfg.evaluate.bootstrap_samples, seed=cfg.seed, n_bins=cfg.evaluate.ece_bins,
        )
        uris = upload_plots(store, NAME, run_id, _plots(cfg, probs_test, y_test, probs_oos, Path(tmp)))
    details = {
        "ood_threshold": threshold,
        "oos_test_flagged_at_threshold": float(np.mean((1.0 - probs_oos.max(axis=1)) > threshold)),
        "in_scope_test_kept_at_threshold": float(np.mean((1.0 - probs_test.max(axis=1)) <= threshold)),
        "temperature": calibration.temperature,
        "mean_field_factor": calibration.mean_field_factor,
        "calibration_candidates": calibration.candidates,
        "test_rows": int(len(y_test)),
        "oos_test_rows": int(len(probs_oos)),
    }
    return Evaluation(
        metrics=metrics_to_dict(metrics),
        plots=uris,
        inference_updates={"ood_threshold": threshold},
        model_updates={"temperature": calibration.temperature, "mean_field_factor": calibration.mean_field_factor},
        details=details,
    )


# -- serve -----------------------------------------------------------------------------------
@dataclass
class IntentPrediction:
    text: str
    intent: str
    confidence: float
    out_of_scope: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class IntentPredictor:
    """Texts in, (intent, confidence, out-of-scope flag) out, from a loaded model directory."""

    def __init__(self, loaded):
        self.loaded = loaded
        self.threshold = float(loaded.inference.get("ood_threshold", 0.5))
        self.sequence_length = int(loaded.inference["sequence_length"])

    def predict(self, texts: list[str]) -> list[IntentPrediction]:
        arrays = encode_texts(self.loaded.tokenizer, texts, self.sequence_length)
        probs = clf.softmax(clf.predict_arrays(self.loaded.model, arrays))
        best = probs.argmax(axis=1)
        return [
            IntentPrediction(
                text=text,
                intent=self.loaded.labels[int(i)],
                confidence=float(p[i]),
                out_of_scope=bool(1.0 - p[i] > self.threshold),
            )
            for text, i, p in zip(texts, best, probs)
        ]

    @staticmethod
    def format(predictions: list[IntentPrediction]) -> str:
        rows = [
            [p.text, "oos" if p.out_of_scope else p.intent, f"{p.confidence:.3f}", "yes" if p.out_of_scope else "no", p.intent]
            for p in predictions
        ]
        return text_table(["text", "prediction", "confidence", "out of scope", "top intent"], rows)


def load_predictor(directory: Path) -> IntentPredictor:
    return IntentPredictor(load_model_dir(directory))


def model_card(cfg: IntentOodConfig) -> dict[str, Any]:
    head = "SNGP (spectral-normalised hidden layer + random-feature Gaussian process)" if cfg.model.head == "sngp" else "softmax (deterministic baseline)"
    return {
        "description": (
            f"Intent classifier over CLINC150's 150 in-scope intents: encoder `{cfg.model.preset}` "
            f"with a {head} head. Queries it is unsure about are flagged out-of-scope."
        ),
        "intended_use": (
            "Routing short user queries of a task-oriented assistant to one of 150 intents, and "
            "refusing queries outside them (flagged out-of-scope when 1 - confidence exceeds the "
            "threshold tuned on the validation splits)."
        ),
        "training_data": {
            "dataset": f"CLINC150 ({cfg.data.variant}), in-scope train split",
            "source": cfg.data.source,
        },
        "evaluation_data": {
            "in-domain": "CLINC150 test (4500 queries)",
            "out-of-scope": "CLINC150 oos_test (1000 queries)",
        },
        "limitations": [
            "English only; short, single-sentence queries like CLINC150's.",
            "Out-of-scope detection is only as good as the uncertainty: in-domain-looking "
            "out-of-scope queries can still be classified confidently.",
            f"Inputs are truncated to {cfg.model.sequence_length} tokens.",
        ],
    }


PIPELINE = Pipeline(
    name=NAME,
    config_class=IntentOodConfig,
    validation_suite=DATASET,
    ingest=ingest,
    validate=validate,
    preprocess=preprocess,
    train=train,
    evaluate=evaluate,
    load_predictor=load_predictor,
    model_card=model_card,
    predict_example='"what is my account balance" "tell me a poem about cheese"',
)
