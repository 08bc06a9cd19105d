"""Seed-spread tasks: one seed's training and test evaluation, and the table of the spread."""

from __future__ import annotations

import statistics
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact

from modelgate.config import PipelineConfig
from modelgate.pipelines.base import Pipeline
from modelgate.pipelines.results import FeatureSet
from modelgate.task_runners import worker_name
from modelgate.training.isolated import train_in_subprocess
from modelgate.tasks.context import object_store


def main_metric(cfg: PipelineConfig) -> str:
    """The metric a pipeline is judged by: its gate's first threshold (the recipe's headline)."""
    if not cfg.gate.thresholds:
        raise ValueError(f"{cfg.pipeline}: no gate thresholds, so no main metric to report a spread of")
    return cfg.gate.thresholds[0].metric


# retries: a seed run that raises runs once more (a dead Dask worker's task is rescheduled by Dask).
@task(name="seed-run", tags=["gpu"], retries=1, task_run_name="seed-{seed}")
def seed_run(pipeline: Pipeline, cfg: PipelineConfig, features: FeatureSet, seed: int, run_id: str) -> dict[str, Any]:
    """Train the recipe under `seed` (in a child process) and evaluate it; the metric values."""
    seeded = cfg.model_copy(update={"seed": seed})
    trained = train_in_subprocess(pipeline, seeded, features)
    evaluation = pipeline.evaluate(seeded, object_store(), trained, features, f"{run_id}-seed{seed}")
    metrics = {name: float(m["value"]) for name, m in evaluation.metrics.items() if isinstance(m, dict) and "value" in m}
    return {"seed": seed, "metrics": metrics, "train_key": trained.train_key, "worker": worker_name()}


def spread(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


@task(name="summarise-seeds")
def summarise_seeds(pipeline: str, runs: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """One table artifact: every seed's main metric, then its mean, std (sample), min and max."""
    runs = sorted(runs, key=lambda r: r["seed"])
    summary = spread([r["metrics"][metric] for r in runs])
    table = [{"seed": r["seed"], metric: round(r["metrics"][metric], 4), "worker": r["worker"]} for r in runs]
    table += [{"seed": name, metric: round(value, 4), "worker": ""} for name, value in summary.items()]
    create_table_artifact(key="seed-spread", table=table,
                          description=f"{pipeline}: test {metric} under {len(runs)} seeds, and its spread")
    return {"pipeline": pipeline, "metric": metric, "runs": runs, "spread": summary}
