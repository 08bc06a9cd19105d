"""One trial as plain Python: train the base config with the trial's values, score it on
validation, and record the result in S3 before returning it (the flow's task wraps this)."""

from __future__ import annotations

from typing import Any

from modelgate.config import PipelineConfig
from modelgate.pipelines.base import Pipeline
from modelgate.pipelines.results import FeatureSet
from modelgate.storage import ObjectStore
from modelgate.training.isolated import train_in_subprocess
from modelgate.tuning.objective import validation_score
from modelgate.tuning.space import apply_params
from modelgate.tuning.study import params_key, store_trial


def run_trial(
    pipeline: Pipeline, base: PipelineConfig, features: FeatureSet, params: dict[str, Any], number: int,
    study: str, metric: str, store: ObjectStore, worker: str = "local",
) -> dict[str, Any]:
    """The trial's record: params, objective value, every validation metric, where the model is."""
    cfg = apply_params(base, params)
    trained = train_in_subprocess(pipeline, cfg, features)
    metrics = validation_score(pipeline, cfg, store, features, trained, f"tune-{study}-trial{number}")
    record = {
        "number": number, "params": params, "params_key": params_key(params), "value": metrics[metric],
        "metric": metric, "validation_metrics": metrics, "train_key": trained.train_key,
        "model_uri": trained.uri, "reused_training": trained.reused, "train_seconds": trained.seconds,
        "worker": worker,
    }
    store_trial(store, pipeline.name, study, record)
    return record
