"""A trial's score on validation data; the test split is never read while tuning.

Two paths, by what the pipeline's data has:

- **history** (intent-ood, nli, job-similarity): training already scores the validation split
  after every epoch (``val_accuracy``, ``val_loss``); the trial's score is the last epoch's value
  in the trained model's history.
- **holdout** (toxicity: ETHOS has only train and test): the tuning dataset keeps the training
  comments only; the last ``HOLDOUT_FRACTION`` of them (in the recipe's shuffled order) are held
  out and take the place of the test split, and the real test comments are left out of it
  altogether. The pipeline's own evaluate scores the held-out comments (F1, ROC-AUC, accuracy).
"""

from __future__ import annotations

from typing import Any

from modelgate.config import PipelineConfig
from modelgate.data.snapshot import load_snapshot, snapshot_table
from modelgate.pipelines.base import Pipeline
from modelgate.pipelines.results import FeatureSet, TrainedModel
from modelgate.storage import ObjectStore
from modelgate.validations.runner import ValidationReport

HISTORY_METRICS = {
    "intent-ood": ("val_accuracy", "val_loss"),
    "nli": ("val_accuracy", "val_loss"),
    "job-similarity": ("val_loss",),
}
HOLDOUT_METRICS = {"toxicity": ("f1", "roc_auc", "accuracy")}
HOLDOUT_FRACTION = 0.2
HOLDOUT_BOOTSTRAP = 100  # the point estimate is the score; intervals are not needed for it


def validation_metrics(pipeline: str) -> tuple[str, ...]:
    """The metrics a space's objective may name for ``pipeline``."""
    return HISTORY_METRICS.get(pipeline) or HOLDOUT_METRICS.get(pipeline) or ()


def tuning_report(store: ObjectStore, pipeline: Pipeline, validated: ValidationReport) -> ValidationReport:
    """The validated data trials train on: unchanged, or (holdout pipelines) the training rows
    only, with the held-out tail as the split evaluate scores."""
    if pipeline.name not in HOLDOUT_METRICS:
        return validated
    snapshot = validated.filtered_snapshot
    frame = load_snapshot(store, snapshot)
    train = frame[frame["split"] == "train"].sort_values("order", kind="stable").copy()
    held_out = max(1, round(len(train) * HOLDOUT_FRACTION))
    train.iloc[len(train) - held_out:, train.columns.get_loc("split")] = "test"
    tuning = snapshot_table(
        store, f"{snapshot.dataset}-tuning", train.sort_values("row_id").reset_index(drop=True),
        source=f"training rows of {snapshot.uri}; the last {held_out} (shuffled order) held out for validation",
        extra={"parent_sha256": snapshot.sha256, "held_out": held_out},
    )
    return validated.model_copy(update={"filtered_snapshot": tuning})


def validation_score(
    pipeline: Pipeline, cfg: PipelineConfig, store: ObjectStore, features: FeatureSet, trained: TrainedModel,
    run_id: str,
) -> dict[str, float]:
    """Every validation metric of a trained trial, by name."""
    if pipeline.name in HOLDOUT_METRICS:
        scoring = cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={"bootstrap_samples": HOLDOUT_BOOTSTRAP})})
        evaluation = pipeline.evaluate(scoring, store, trained, features, run_id)
        return {name: float(evaluation.metrics[name]["value"]) for name in HOLDOUT_METRICS[pipeline.name]}
    history: dict[str, Any] = trained.history or {}
    scores = {name: float(history[name][-1]) for name in HISTORY_METRICS.get(pipeline.name, ()) if history.get(name)}
    if not scores:
        raise ValueError(f"{pipeline.name}: the trained model {trained.train_key} recorded no validation metrics")
    return scores
