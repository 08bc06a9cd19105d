"""intent-ood: the stages of out-of-scope intent detection on CLINC150, as plain functions.

The model learns the 150 in-scope intents only (train split); out-of-scope queries are detected at
test time by uncertainty: score = 1 - max mean-field probability. The decision threshold a predictor
uses is tuned on the validation splits, never on test.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from modelgate.artifacts import load_model_dir
from modelgate.config import EvaluateConfig
from modelgate.data.clinc import load_clinc, load_known_intents
from modelgate.data.snapshot import DatasetSnapshot, load_snapshot, snapshot_table
from modelgate.embedding_cache import Embedder
from modelgate.evaluation import plots
from modelgate.evaluation.bootstrap import evaluate_ood_classifier, metrics_to_dict
from modelgate.evaluation.calibration import Calibration, scaled_probabilities, tune_calibration
from modelgate.evaluation.ood import (
    MAX_PROBABILITY,
    OOD_SCORES,
    SCORERS,
    OodScore,
    ood_threshold_from_validation,
    select_ood_score,
)
from modelgate.evaluation.result import Evaluation
from modelgate.models.class_distance import ClassDistance
from modelgate.models.nearest_neighbor import NearestNeighborDistance
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
from modelgate.preprocess import encode_texts
from modelgate.storage import ObjectStore
from modelgate.summary import text_table
from modelgate.validations.clinc import ClincValidationConfig, validate_clinc
from modelgate.validations.runner import ValidationReport

NAME = "intent-ood"
DATASET = "clinc_oos"


OOD_SCORER_FILE = "ood_scorer.npz"


class IntentOodEvaluateConfig(EvaluateConfig):
    ood_score: Literal[OOD_SCORES] = Field(
        "auto", description="auto (best on validation) | max_probability (the recipe's) | class_distance | "
                            "nearest_neighbor"
    )
    distance_shrinkage: list[float] = Field(
        default_factory=lambda: [0.0, 0.5, 0.9, 0.99, 1.0],
        description="class_distance: covariance shrinkages tried (0 = Mahalanobis, 1 = Euclidean)",
    )
    distance_normalize: bool = Field(True, description="class_distance on L2-normalised embeddings")
    nearest_neighbors: list[int] = Field(
        default_factory=lambda: [1, 10],
        description="nearest_neighbor: the k tried (1 - mean cosine to the k nearest training embeddings); "
                    "empty: auto leaves nearest neighbours out",
    )


class IntentOodConfig(clf.ClassifierConfig):
    evaluate: IntentOodEvaluateConfig = IntentOodEvaluateConfig()
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
@dataclass
class SplitOutputs:
    """What evaluation reads from the model for one split, from one pass of the encoder."""

    embeddings: np.ndarray  # pooled sentence embeddings [N, dim]
    logits: np.ndarray  # before the mean-field adjustment and temperature [N, classes]
    variance: np.ndarray  # GP predictive variance [N] (zeros for a softmax head)


def _outputs(model, embed: Embedder, store: ObjectStore, features: FeatureSet, split: str) -> SplitOutputs:
    embeddings = embed(load_tokens(store, features, split))
    return SplitOutputs(embeddings, *model.logits_and_variance_from_embeddings(embeddings))


def _calibrate(cfg: IntentOodConfig, model, val: SplitOutputs, oos_val: SplitOutputs, y_val) -> Calibration:
    """Mean-field factor and temperature, from the validation splits only (or the model's own)."""
    if cfg.evaluate.calibrate:
        return tune_calibration(
            val.logits, val.variance, y_val, oos_val.logits, oos_val.variance,
            cfg.evaluate.mean_field_grid, cfg.evaluate.ece_bins,
        )
    factor = model.mean_field_factor if model.head == "sngp" else 0.0
    return Calibration(factor, model.temperature)


def _plots(cfg: IntentOodConfig, probs_test, y_test, is_ood, scores, directory: Path) -> dict[str, Path]:
    return {
        "reliability_diagram": plots.plot_reliability_diagram(
            probs_test, y_test, directory / "reliability_diagram.png", n_bins=cfg.evaluate.ece_bins
        ),
        "ood_precision_recall": plots.plot_pr_curve(is_ood, scores, directory / "ood_precision_recall.png"),
        "ood_roc": plots.plot_roc_curve(is_ood, scores, directory / "ood_roc.png"),
    }


def _stage_scorer(store: ObjectStore, ood: OodScore, run_id: str, directory: Path) -> dict[str, str]:
    """The fitted distance scorer as a file of the version (none for max probability)."""
    if ood.scorer is None:
        return {}
    path = directory / OOD_SCORER_FILE
    np.savez(path, **ood.scorer.arrays())
    key = f"runs/{NAME}/{run_id}/evaluation/{OOD_SCORER_FILE}"
    store.upload_file(path, key)
    return {OOD_SCORER_FILE: store.uri(key)}


def evaluate(
    cfg: IntentOodConfig, store: ObjectStore, trained: TrainedModel, features: FeatureSet, run_id: str
) -> Evaluation:
    """``compute_evaluation``, read back from the evaluation cache when nothing it depends on changed."""
    return reuse_or_evaluate(cfg, store, trained, features, run_id,
                             lambda: compute_evaluation(cfg, store, trained, features, run_id))


def compute_evaluation(
    cfg: IntentOodConfig, store: ObjectStore, trained: TrainedModel, features: FeatureSet, run_id: str
) -> Evaluation:
    """Test metrics with intervals; calibration, the OOD score and its threshold come from the
    validation splits only."""
    frame = load_snapshot(store, features.snapshot)
    e = cfg.evaluate
    with tempfile.TemporaryDirectory() as tmp:
        model = fetch_staged_model(store, trained, Path(tmp) / "model").model
        # A frozen encoder's embeddings come from the cache training filled (validation, train).
        embed = Embedder(model, store)
        out = {split: _outputs(model, embed, store, features, split)
               for split in ("validation", "oos_validation", "test", "oos_test")}
        y = {split: _split_xy(store, features, frame, split)[1] for split in ("train", "validation", "test")}
        calibration = _calibrate(cfg, model, out["validation"], out["oos_validation"], y["validation"])
        probs = {split: scaled_probabilities(o.logits, o.variance, calibration.mean_field_factor,
                                             calibration.temperature) for split, o in out.items()}
        train = (embed(load_tokens(store, features, "train")), y["train"]) \
            if e.ood_score != MAX_PROBABILITY else (None, None)
        print(embed.summary("evaluation"))
        ood = select_ood_score(
            e.ood_score, e.distance_shrinkage, e.distance_normalize, train,
            *((out[s].embeddings, probs[s]) for s in ("validation", "oos_validation")),
            neighbors=e.nearest_neighbors,
        )
        scores = {split: ood.scores(out[split].embeddings, probs[split]) for split in out}
        threshold = ood_threshold_from_validation(scores["validation"], scores["oos_validation"])
        metrics = evaluate_ood_classifier(
            probs["test"], y["test"], probs["oos_test"], n_resamples=e.bootstrap_samples, seed=cfg.seed,
            n_bins=e.ece_bins, ood_scores=(scores["test"], scores["oos_test"]),
        )
        is_ood = np.r_[np.zeros(len(scores["test"]), dtype=np.int64), np.ones(len(scores["oos_test"]), dtype=np.int64)]
        files = _plots(cfg, probs["test"], y["test"], is_ood, np.r_[scores["test"], scores["oos_test"]], Path(tmp))
        uris = upload_plots(store, NAME, run_id, files)
        extra = _stage_scorer(store, ood, run_id, Path(tmp))
    details = {
        "ood_score": ood.describe(),
        "ood_score_candidates": ood.candidates,
        "ood_threshold": threshold,
        "oos_test_flagged_at_threshold": float(np.mean(scores["oos_test"] > threshold)),
        "in_scope_test_kept_at_threshold": float(np.mean(scores["test"] <= threshold)),
        "temperature": calibration.temperature,
        "mean_field_factor": calibration.mean_field_factor,
        "calibration_candidates": calibration.candidates,
        "test_rows": int(len(y["test"])),
        "oos_test_rows": int(len(scores["oos_test"])),
    }
    return Evaluation(
        metrics=metrics_to_dict(metrics),
        plots=uris,
        files=extra,
        inference_updates={"ood_threshold": threshold, **ood.inference()},
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
    """Texts in, (intent, confidence, out-of-scope flag) out, from a loaded model directory.

    The out-of-scope flag uses the score chosen at evaluation (``inference.json``'s ``ood_score``)
    and its validation threshold: 1 - confidence, the distance to the nearest class centroid, or
    the cosine distance to the nearest training queries.
    """

    def __init__(self, loaded, scorer: ClassDistance | NearestNeighborDistance | None = None):
        self.loaded = loaded
        self.threshold = float(loaded.inference.get("ood_threshold", 0.5))
        self.sequence_length = int(loaded.inference["sequence_length"])
        self.scorer = scorer

    def predict(self, texts: list[str]) -> list[IntentPrediction]:
        arrays = encode_texts(self.loaded.tokenizer, texts, self.sequence_length)
        probs = clf.softmax(clf.predict_arrays(self.loaded.model, arrays))
        best = probs.argmax(axis=1)
        if self.scorer is None:
            scores = 1.0 - probs.max(axis=1)
        else:
            scores = self.scorer.score(self.loaded.model.predict_embeddings(arrays))
        return [
            IntentPrediction(
                text=text,
                intent=self.loaded.labels[int(i)],
                confidence=float(p[i]),
                out_of_scope=bool(score > self.threshold),
            )
            for text, i, p, score in zip(texts, best, probs, scores)
        ]

    @staticmethod
    def format(predictions: list[IntentPrediction]) -> str:
        rows = [
            [p.text, "oos" if p.out_of_scope else p.intent, f"{p.confidence:.3f}", "yes" if p.out_of_scope else "no", p.intent]
            for p in predictions
        ]
        return text_table(["text", "prediction", "confidence", "out of scope", "top intent"], rows)


def load_predictor(directory: Path) -> IntentPredictor:
    loaded = load_model_dir(directory)
    scorer = None
    kind = loaded.inference.get("ood_score")
    if kind in SCORERS:
        with np.load(Path(directory) / OOD_SCORER_FILE, allow_pickle=False) as arrays:
            scorer = SCORERS[kind].from_arrays(loaded.inference["ood_scorer"], dict(arrays))
    return IntentPredictor(loaded, scorer)


def model_card(cfg: IntentOodConfig) -> dict[str, Any]:
    head = "SNGP (spectral-normalised hidden layer + random-feature Gaussian process)" if cfg.model.head == "sngp" else "softmax (deterministic baseline)"
    return {
        "description": (
            f"Intent classifier over CLINC150's 150 in-scope intents: encoder `{cfg.model.preset}` "
            f"with a {head} head. Queries that score as out-of-scope are flagged; the score "
            f"({cfg.evaluate.ood_score}: the recipe's 1 - confidence, the distance of the query's "
            "embedding to the nearest intent centroid, or to its nearest training queries) is the "
            "one chosen on the validation splits, and the report names it."
        ),
        "intended_use": (
            "Routing short user queries of a task-oriented assistant to one of 150 intents, and "
            "refusing queries outside them (flagged out-of-scope when the score exceeds the "
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
            "Out-of-scope detection is only as good as its score: out-of-scope queries that look "
            "like an intent's own (in wording and in the encoder's embedding) pass as in scope.",
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
