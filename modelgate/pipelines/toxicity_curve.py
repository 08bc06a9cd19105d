"""The toxicity learning curve: F1 and ROC-AUC over a grid of training sizes x epochs.

Each grid point trains and evaluates like the main pipeline (its ``train`` / ``evaluate`` stages)
with ``train.examples`` and ``train.epochs`` set, on the same tokenized splits, so points differ
only in those two settings. Training runs in a process of its own, as the flow's train task does
(``modelgate.training.isolated``): parallel points never share Keras' global state, and each frees
its memory when it ends. Identical points are reused from object storage like any training run.
The Prefect tasks around these functions are in ``tasks/learning_curve.py``.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from modelgate.evaluation.plots import plot_learning_curves
from modelgate.pipelines.base import Pipeline
from modelgate.pipelines.results import FeatureSet
from modelgate.pipelines.toxicity import ToxicityConfig
from modelgate.storage import ObjectStore
from modelgate.training.isolated import train_in_subprocess

METRICS = ("f1", "roc_auc")
_slots: dict[int, threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


def grid(cfg: ToxicityConfig) -> list[tuple[int, int]]:
    """(training examples, epochs) for every point of the configured grid."""
    return [(int(size), int(epochs)) for size in cfg.learning_curve.sizes for epochs in cfg.learning_curve.epochs]


def point_config(cfg: ToxicityConfig, examples: int, epochs: int) -> ToxicityConfig:
    data = cfg.model_dump(mode="json")
    data["train"] = {**data["train"], "examples": int(examples), "epochs": int(epochs)}
    return type(cfg).model_validate(data)


def _slot(parallel: int) -> threading.BoundedSemaphore:
    """One semaphore per ``learning_curve.parallel`` value, shared by the points of a process."""
    with _slots_lock:
        return _slots.setdefault(parallel, threading.BoundedSemaphore(parallel))


def curve_point(
    pipeline: Pipeline, cfg: ToxicityConfig, store: ObjectStore, features: FeatureSet, examples: int,
    epochs: int, run_id: str, log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train (in a child process) and evaluate one grid point; a flat row of its metrics.

    At most ``learning_curve.parallel`` points run at once, whatever the task runner allows.
    """
    point = point_config(cfg, examples, epochs)
    with _slot(cfg.learning_curve.parallel):
        trained = train_in_subprocess(pipeline, point, features, log=log)
        evaluation = pipeline.evaluate(point, store, trained, features, f"{run_id}-n{examples}-e{epochs}")
    row: dict[str, Any] = {"examples": examples, "epochs": epochs}
    for name in METRICS:
        metric = evaluation.metrics[name]
        row.update({name: metric["value"], f"{name}_low": metric["low"], f"{name}_high": metric["high"]})
    row.update({"train_seconds": round(trained.seconds, 1), "reused": trained.reused, "model_uri": trained.uri})
    return row


def curve_table(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for a table artifact, sorted by size then epochs; intervals as text."""
    rows = []
    for p in sorted(points, key=lambda p: (p["examples"], p["epochs"])):
        row = {"training examples": p["examples"], "epochs": p["epochs"]}
        for name in METRICS:
            row[name] = round(p[name], 4)
            row[f"{name} 95% interval"] = f"[{p[f'{name}_low']:.4f}, {p[f'{name}_high']:.4f}]"
        row["train s"] = p["train_seconds"]
        rows.append(row)
    return rows


def upload_curve_plot(store: ObjectStore, points: list[dict[str, Any]], run_id: str) -> str:
    """The PNG of F1 and ROC-AUC against epochs, one line per training size; its s3 URI."""
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_learning_curves(points, Path(tmp) / "learning_curve.png", METRICS,
                                    title="toxicity: test F1 and ROC-AUC by training size and epochs")
        key = f"runs/toxicity-learning-curve/{run_id}/learning_curve.png"
        store.upload_file(path, key)
    return store.uri(key)
